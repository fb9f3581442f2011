// hand_track: a video in, tracked hands out (issue 13). Every frame's hands as hand_demo
// gives them (schema handgraph-hands/1's `hands` entries, each with an id), one line per
// frame in OUT/frames.jsonl, and OUT/summary.json.
//
//   hand_track --video IN.mp4 | --frames DIR | --raw WxH (bgr24 on stdin) --out DIR
//              [--detector D.safetensors] [--hand-box x,y,w,h] [--max-hands N]
//              [--detect-every N] [--no-smooth] [--min-cutoff f] [--beta b] [--d-cutoff f]
//              [--obj] [--overlay-video OUT.mp4 | --overlay-dir DIR] [--threads N]
//
// Four threads of work overlap: ffmpeg (a child process) decodes, a reader thread takes its
// frames from the pipe (or reads the images, or stdin), the main thread finds and estimates
// the hands on the context's threads, and a writer thread writes the outputs.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cli.hpp"
#include "hands_json.hpp"
#include "handgraph/demo.hpp"
#include "handgraph/detector.hpp"
#include "handgraph/handgraph.hpp"
#include "handgraph/image.hpp"
#include "handgraph/io.hpp"
#include "handgraph/json.hpp"
#include "tracking.hpp"

extern char** environ;

namespace {

namespace fs = std::filesystem;
namespace js = handgraph::json;
using clock_type = std::chrono::steady_clock;

const char* usage =
    "usage: hand_track (--video FILE | --frames DIR | --raw WxH) --out DIR [options]\n"
    "\n"
    "Finds the hands of a video, follows them from frame to frame and runs the hand shape and\n"
    "pose network (Ge et al., CVPR 2019) on each, smoothing the results (One Euro filter).\n"
    "Input (one of):\n"
    "  --video FILE     any video Debian's ffmpeg reads (ffmpeg and ffprobe, package ffmpeg,\n"
    "                   run as child processes: decoded to bgr24 frames through a pipe)\n"
    "  --frames DIR     the folder's images (.png .jpg .jpeg .bmp .ppm .pgm .tga), in name\n"
    "                   order; each is handled at its own size (a frame of another size than\n"
    "                   the one before starts the tracking afresh)\n"
    "  --raw WxH        bgr24 frames of W x H on standard input, one after the other; a short\n"
    "                   last frame is refused (the frames before it are kept)\n"
    "  --fps F          the frame rate for the time stamps (default: the video's; 30 for\n"
    "                   --frames and --raw)\n"
    "Outputs in --out DIR (made if missing): frames.jsonl (one line per frame), summary.json\n"
    "  --obj            also OUT/obj/frame_NNNNNN_hand_ID.obj for every hand of every frame\n"
    "  --overlay-video OUT.mp4  the frames with the hands drawn on, encoded by ffmpeg\n"
    "  --overlay-dir DIR        the same as PNGs, DIR/frame_NNNNNN.png\n"
    "Finding and tracking:\n"
    "  --detector FILE  the palm detector (default weights/palm_detection_full.safetensors,\n"
    "                   made by tools/get_palm_detector.sh)\n"
    "  --hand-box x,y,w,h  the first frame's hand (instead of the detector on that frame)\n"
    "  --max-hands N    the most hands followed at once (default 2)\n"
    "  --detect-every N the detector runs at least every N frames (default 10), and on every\n"
    "                   frame with no hand followed or whose hand's joints disagreed with its\n"
    "                   box; 0: never (needs --hand-box; boxes from the joints only)\n"
    "  --agree-iou V    the IoU at which the box from a frame's joints agrees with the box\n"
    "                   the frame was cropped with (default 0.6); below it the detector runs\n"
    "                   on the next frame\n"
    "  --enlarge F      the box from the joints: the square of F times their box's longer side\n"
    "                   (default 1.3)\n"
    "Smoothing (One Euro filter on the 2D joints, 3D joints and mesh vertices of each hand):\n"
    "  --min-cutoff F   Hz at rest (default 1)     --beta B   per unit/s of speed (default 0.05)\n"
    "  --d-cutoff F     Hz of the speed estimate (default 1)   --no-smooth  off\n"
    "The hand network:\n"
    "  --weights W      weight file (tools/convert_weights.py); without it the deterministic\n"
    "                   random-weight model (joints and meshes meaningless; the boxes come from\n"
    "                   the detector, which has its real weights)\n"
    "  --cam fx,fy,u0,v0  --scale s  --hand left|right  as hand_demo\n"
    "  --threads N      threads for the networks (default 1)\n"
    "  --quiet          no progress line\n"
    "  --box-joints FILE  (a test aid) the 2D joints the box update uses instead of the\n"
    "                   network's: a JSON list, per frame a list of 21 [u, v] (image pixels)\n"
    "Stops at the current frame on SIGINT/SIGTERM (exit 128 + the signal): every frame done is\n"
    "in frames.jsonl and summary.json.\n";

// ---- Signals: the handler only records which one came.
std::atomic<int> g_signal{0};
extern "C" void on_signal(int s) { g_signal.store(s); }

// ---- Child processes.
std::string find_on_path(const std::string& name) {
    const char* path = std::getenv("PATH");
    std::stringstream ss(path ? path : "");
    std::string dir;
    while (std::getline(ss, dir, ':')) {
        if (dir.empty()) continue;
        const std::string p = dir + "/" + name;
        if (::access(p.c_str(), X_OK) == 0 && !fs::is_directory(p)) return p;
    }
    return "";
}

std::string need_ffmpeg(const std::string& tool, const std::string& why) {
    std::string p = find_on_path(tool);
    if (p.empty())
        throw handgraph::error(why + " needs " + tool + ", which is not on PATH: install Debian's package ffmpeg (apt-get install ffmpeg)");
    return p;
}

// A temporary file for a child's stderr, removed by the destructor.
struct temp_file {
    std::string path;
    int fd = -1;
    temp_file() {
        const char* dir = std::getenv("TMPDIR");
        std::string t = std::string(dir && *dir ? dir : "/tmp") + "/hand_track_XXXXXX";
        std::vector<char> buf(t.begin(), t.end());
        buf.push_back('\0');
        fd = ::mkstemp(buf.data());
        if (fd < 0) throw handgraph::error("cannot make a temporary file in " + std::string(dir && *dir ? dir : "/tmp"));
        ::fcntl(fd, F_SETFD, FD_CLOEXEC);
        path = buf.data();
    }
    ~temp_file() {
        if (fd >= 0) ::close(fd);
        ::unlink(path.c_str());
    }
    temp_file(const temp_file&) = delete;
    temp_file& operator=(const temp_file&) = delete;
    // Its text (the last `max` bytes), trailing newlines dropped.
    std::string text(std::size_t max = 4000) const {
        std::ifstream f(path);
        std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
        if (s.size() > max) s = s.substr(s.size() - max);
        while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
        return s;
    }
    std::string last_line() const {
        std::string s = text();
        const std::size_t nl = s.find_last_of('\n');
        return nl == std::string::npos ? s : s.substr(nl + 1);
    }
};

// Starts argv[0] (a path) with stdin/stdout/stderr on the given descriptors (-1: /dev/null
// for stdin, ours otherwise), in its own process group (a Ctrl-C reaches only us; we end it).
pid_t spawn(const std::vector<std::string>& argv, int in_fd, int out_fd, int err_fd) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (in_fd >= 0) posix_spawn_file_actions_adddup2(&fa, in_fd, 0);
    else posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    if (out_fd >= 0) posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
    if (err_fd >= 0) posix_spawn_file_actions_adddup2(&fa, err_fd, 2);
    posix_spawnattr_t at;
    posix_spawnattr_init(&at);
    posix_spawnattr_setpgroup(&at, 0);
    sigset_t def;
    sigemptyset(&def);
    sigaddset(&def, SIGINT);
    sigaddset(&def, SIGTERM);
    sigaddset(&def, SIGPIPE);
    posix_spawnattr_setsigdefault(&at, &def);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_t pid = -1;
    const int rc = posix_spawn(&pid, argv[0].c_str(), &fa, &at, args.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    if (rc != 0) throw handgraph::error("cannot start " + argv[0] + ": " + std::strerror(rc));
    return pid;
}

// Waits for a child: its exit status, or 128 + the signal that ended it.
int wait_child(pid_t pid) {
    int st = 0;
    while (::waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return -1;
    if (WIFEXITED(st)) return WEXITSTATUS(st);
    if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
    return -1;
}

// Reads exactly n bytes (fewer at the end of the stream), polling so that `stop` is seen.
std::size_t read_full(int fd, std::uint8_t* p, std::size_t n, const std::atomic<bool>& stop) {
    std::size_t got = 0;
    while (got < n) {
        if (stop.load()) return got;
        pollfd pf{fd, POLLIN, 0};
        const int pr = ::poll(&pf, 1, 100);
        if (pr < 0 && errno != EINTR) throw handgraph::error(std::string("reading frames: ") + std::strerror(errno));
        if (pr <= 0) continue;
        const ssize_t r = ::read(fd, p + got, n - got);
        if (r < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            throw handgraph::error(std::string("reading frames: ") + std::strerror(errno));
        }
        if (r == 0) break;
        got += std::size_t(r);
    }
    return got;
}

void write_all(int fd, const std::uint8_t* p, std::size_t n, const std::string& what) {
    while (n > 0) {
        const ssize_t w = ::write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            throw handgraph::error(what + ": " + std::strerror(errno));
        }
        p += w, n -= std::size_t(w);
    }
}

// ---- Frame sources.
struct frame {
    int index = 0;
    std::string name;  // the file, for --frames
    handgraph::image img;
};

class frame_source {
public:
    virtual ~frame_source() = default;
    // The next frame, or false at the end. Throws handgraph::error (naming the input) when
    // the input breaks off or cannot be read.
    virtual bool next(frame& f, const std::atomic<bool>& stop) = 0;
    // Ends a child process early (on a stop; called once the reader thread has ended).
    virtual void abort() {}
    std::optional<long> count;  // frames, when known
    bool count_exact = false;   // stated by the input (not estimated from a duration)
    double fps = 30;
    std::string description;
};

class video_source : public frame_source {
public:
    explicit video_source(const std::string& path) : path_(path) {
        const std::string ffprobe = need_ffmpeg("ffprobe", "--video");
        const std::string ffmpeg = need_ffmpeg("ffmpeg", "--video");
        std::error_code ec;
        if (!fs::is_regular_file(path, ec))
            throw handgraph::error("video '" + path + "': " + (fs::exists(path, ec) ? "is not a file" : "does not exist"));
        // Its size, frame rate and frame count from ffprobe.
        {
            temp_file out, err;
            const pid_t pid = spawn({ffprobe, "-v", "error", "-select_streams", "v:0", "-show_entries",
                                     "stream=width,height,nb_frames,avg_frame_rate,r_frame_rate:format=duration", "-of", "default=nw=1", path},
                                    -1, out.fd, err.fd);
            const int rc = wait_child(pid);
            const std::string msg = err.last_line();
            if (rc != 0) throw handgraph::error("video '" + path + "': ffmpeg cannot read it (ffprobe: " + (msg.empty() ? "exit " + std::to_string(rc) : msg) + ")");
            std::stringstream ss(out.text());
            std::string line;
            double duration = 0, avg = 0, r = 0;
            auto rate = [](const std::string& v) {
                const std::size_t s = v.find('/');
                const double a = std::atof(v.substr(0, s).c_str()), b = s == std::string::npos ? 1.0 : std::atof(v.substr(s + 1).c_str());
                return b > 0 && a > 0 ? a / b : 0.0;
            };
            while (std::getline(ss, line)) {
                const std::size_t eq = line.find('=');
                if (eq == std::string::npos) continue;
                const std::string k = line.substr(0, eq), v = line.substr(eq + 1);
                if (k == "width") width_ = std::atoi(v.c_str());
                else if (k == "height") height_ = std::atoi(v.c_str());
                else if (k == "nb_frames" && v != "N/A" && std::atol(v.c_str()) > 0) count = std::atol(v.c_str()), count_exact = true;
                else if (k == "avg_frame_rate") avg = rate(v);
                else if (k == "r_frame_rate") r = rate(v);
                else if (k == "duration" && v != "N/A") duration = std::atof(v.c_str());
            }
            if (width_ <= 0 || height_ <= 0) throw handgraph::error("video '" + path + "': ffmpeg finds no video stream in it");
            if (std::int64_t(width_) * height_ > (std::int64_t(1) << 28)) throw handgraph::error("video '" + path + "': frames of " + std::to_string(width_) + "x" + std::to_string(height_) + " are too large");
            fps = avg > 0 ? avg : r > 0 ? r : 30;
            if (!count && duration > 0) count = long(std::lround(duration * fps));
        }
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0) throw handgraph::error("cannot make a pipe for ffmpeg");
        pid_ = spawn({ffmpeg, "-nostdin", "-hide_banner", "-v", "error", "-i", path, "-map", "0:v:0", "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt",
                      "bgr24", "-"},
                     -1, fds[1], err_.fd);
        ::close(fds[1]);
        fd_ = fds[0];
        description = path + " (" + std::to_string(width_) + "x" + std::to_string(height_) + ", " + js::number(fps, 6) + " fps" +
                      (count ? std::string(", ") + (count_exact ? "" : "about ") + std::to_string(*count) + " frames" : "") + ")";
    }
    ~video_source() override {
        abort();
        if (fd_ >= 0) ::close(fd_);
    }
    bool next(frame& f, const std::atomic<bool>& stop) override {
        if (done_) return false;
        f.img = handgraph::image(width_, height_);
        const std::size_t n = f.img.pixels.size();
        const std::size_t got = read_full(fd_, f.img.pixels.data(), n, stop);
        if (stop.load()) return false;
        if (got == n) {
            f.index = frames_++;
            return true;
        }
        done_ = true;
        const int rc = wait_child(pid_);
        pid_ = -1;
        const std::string msg = err_.last_line();
        const std::string where = "video '" + path_ + "'";
        if (got != 0)
            throw handgraph::error(where + " breaks off in frame " + std::to_string(frames_) + " (" + std::to_string(got) + " of " + std::to_string(n) + " bytes)" +
                                   (msg.empty() ? "" : ": " + msg));
        if (rc != 0 || !msg.empty()) {
            if (frames_ == 0) throw handgraph::error(where + ": ffmpeg cannot read it (" + (msg.empty() ? "exit " + std::to_string(rc) : msg) + ")");
            throw handgraph::error(where + " breaks off after " + std::to_string(frames_) + " frames (ffmpeg: " + (msg.empty() ? "exit " + std::to_string(rc) : msg) + ")");
        }
        if (count_exact && frames_ < *count)
            throw handgraph::error(where + " breaks off after " + std::to_string(frames_) + " of the " + std::to_string(*count) + " frames it states");
        return false;
    }
    // After the reader has stopped: our end of the pipe is closed first (an ffmpeg blocked
    // writing into a full pipe gets EPIPE, and would not see a SIGTERM), then it is ended.
    void abort() override {
        if (fd_ >= 0) ::close(fd_), fd_ = -1;
        if (pid_ > 0) {
            ::kill(pid_, SIGTERM);
            wait_child(pid_);
            pid_ = -1;
        }
    }

private:
    std::string path_;
    int width_ = 0, height_ = 0;
    int fd_ = -1;
    pid_t pid_ = -1;
    temp_file err_;
    int frames_ = 0;
    bool done_ = false;
};

class folder_source : public frame_source {
public:
    explicit folder_source(const std::string& dir) {
        std::error_code ec;
        if (!fs::is_directory(dir, ec)) throw handgraph::error("--frames '" + dir + "': " + (fs::exists(dir, ec) ? "is not a folder" : "does not exist"));
        for (const auto& e : fs::directory_iterator(dir, ec)) {
            std::string ext = e.path().extension().string();
            std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
            if (e.is_regular_file() && (ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp" || ext == ".ppm" || ext == ".pgm" || ext == ".tga"))
                files_.push_back(e.path().string());
        }
        if (ec) throw handgraph::error("--frames '" + dir + "': cannot list it: " + ec.message());
        std::sort(files_.begin(), files_.end());
        if (files_.empty()) throw handgraph::error("--frames '" + dir + "': no images (.png .jpg .jpeg .bmp .ppm .pgm .tga) in it");
        count = long(files_.size());
        count_exact = true;
        description = dir + " (" + std::to_string(files_.size()) + " images)";
    }
    bool next(frame& f, const std::atomic<bool>&) override {
        if (i_ >= files_.size()) return false;
        f.name = files_[i_];
        f.img = handgraph::load_image(files_[i_]);  // errors name the file
        f.index = int(i_++);
        return true;
    }

private:
    std::vector<std::string> files_;
    std::size_t i_ = 0;
};

class raw_source : public frame_source {
public:
    raw_source(int w, int h) : w_(w), h_(h) { description = "standard input (bgr24, " + std::to_string(w) + "x" + std::to_string(h) + ")"; }
    bool next(frame& f, const std::atomic<bool>& stop) override {
        f.img = handgraph::image(w_, h_);
        const std::size_t n = f.img.pixels.size();
        const std::size_t got = read_full(0, f.img.pixels.data(), n, stop);
        if (stop.load() || got == 0) return false;
        if (got != n)
            throw handgraph::error("standard input (--raw " + std::to_string(w_) + "x" + std::to_string(h_) + "): the last frame is short: " + std::to_string(got) +
                                   " of " + std::to_string(n) + " bytes after " + std::to_string(frames_) + " whole frames");
        f.index = frames_++;
        return true;
    }

private:
    int w_, h_;
    int frames_ = 0;
};

// ---- A bounded queue between two threads.
template <class T>
class channel {
public:
    explicit channel(std::size_t capacity) : cap_(capacity) {}
    // False when the channel was closed (the item is dropped).
    bool push(T v) {
        std::unique_lock<std::mutex> l(m_);
        cv_.wait(l, [&] { return q_.size() < cap_ || closed_; });
        if (closed_) return false;
        q_.push_back(std::move(v));
        cv_.notify_all();
        return true;
    }
    // The next item; empty when the channel is closed and empty, or after `timeout` (then
    // *timed_out is set).
    std::optional<T> pop(std::chrono::milliseconds timeout, bool* timed_out) {
        std::unique_lock<std::mutex> l(m_);
        *timed_out = false;
        if (!cv_.wait_for(l, timeout, [&] { return !q_.empty() || closed_; })) {
            *timed_out = true;
            return std::nullopt;
        }
        if (q_.empty()) return std::nullopt;
        T v = std::move(q_.front());
        q_.pop_front();
        cv_.notify_all();
        return v;
    }
    void close() {
        std::lock_guard<std::mutex> l(m_);
        closed_ = true;
        cv_.notify_all();
    }

private:
    std::mutex m_;
    std::condition_variable cv_;
    std::deque<T> q_;
    std::size_t cap_;
    bool closed_ = false;
};

// What the reader hands the main thread: a frame, or the end (with the input's error).
struct reader_item {
    std::optional<frame> f;
    std::string error;  // at the end: why the input stopped early ("" when it simply ended)
};

// One hand of a finished frame.
struct hand_out {
    int id = 0;
    std::string source;
    tracking::box4 hand_box{};  // the box given to estimate_hand
    std::optional<handgraph::palm_detection> palm;
    handgraph::hand_result r;
};

struct frame_out {
    int index = 0;
    double time = 0;
    int width = 0, height = 0;
    bool detector_ran = false;
    std::vector<hand_out> hands;
    handgraph::image img;  // kept for an overlay only
};

std::string box_json(const tracking::box4& b) {
    return "[" + js::number(b[0]) + ", " + js::number(b[1]) + ", " + js::number(b[2]) + ", " + js::number(b[3]) + "]";
}

std::string frame_line(const frame_out& f) {
    std::string s = "{\"frame\": " + std::to_string(f.index) + ", \"time_s\": " + js::number(f.time, 12) + ", \"width\": " + std::to_string(f.width) +
                    ", \"height\": " + std::to_string(f.height) + ", \"detector_ran\": " + (f.detector_ran ? "true" : "false") + ", \"hands\": [";
    for (std::size_t i = 0; i < f.hands.size(); ++i) {
        const hand_out& h = f.hands[i];
        hands_json::hand_entry_options o;
        o.pretty = false;
        o.palm = h.palm ? &*h.palm : nullptr;
        o.box_source = h.source;
        o.leading_fields = "\"id\": " + std::to_string(h.id) + ", \"hand_box\": " + box_json(h.hand_box);
        s += (i ? ", " : "") + hands_json::hand_entry(h.r, o);
    }
    return s + "]}\n";
}

// Writes the finished frames (the writer thread's work).
class writer {
public:
    writer(const fs::path& out, bool obj, const std::string& overlay_video, const std::string& overlay_dir, const handgraph::model& m, double fps)
        : out_(out), obj_(obj), overlay_video_(overlay_video), overlay_dir_(overlay_dir), model_(m), fps_(fps) {
        const fs::path jl = out / "frames.jsonl";
        jsonl_ = std::fopen(jl.string().c_str(), "wb");
        if (!jsonl_) throw handgraph::error("--out: cannot write '" + jl.string() + "'");
        if (obj_) fs::create_directories(out / "obj");
    }
    ~writer() {
        if (jsonl_) std::fclose(jsonl_);
        if (enc_pid_ > 0) {
            if (enc_fd_ >= 0) ::close(enc_fd_);
            wait_child(enc_pid_);
        }
    }
    bool overlay() const { return !overlay_video_.empty() || !overlay_dir_.empty(); }

    void write(const frame_out& f) {
        const std::string line = frame_line(f);
        if (std::fwrite(line.data(), 1, line.size(), jsonl_) != line.size() || std::fflush(jsonl_) != 0)
            throw handgraph::error("'" + (out_ / "frames.jsonl").string() + "': write failed (disk full?)");
        ++lines_;
        if (obj_)
            for (const hand_out& h : f.hands) {
                char name[64];
                std::snprintf(name, sizeof name, "frame_%06d_hand_%d.obj", f.index, h.id);
                handgraph::write_file_atomic(out_ / "obj" / name,
                                             handgraph::obj_text(hands_json::flat(h.r.estimate.mesh_cm), model_.faces(h.r.side),
                                                                 "handgraph mesh, cm, camera space, " + std::string(handgraph::to_string(h.r.side)) +
                                                                     " hand, frame " + std::to_string(f.index) + ", hand " + std::to_string(h.id)));
            }
        if (!overlay()) return;
        handgraph::image pic = f.img;
        for (const hand_out& h : f.hands) pic = hands_json::overlay(pic, h.r, model_);
        const double t = std::max(2.0, double(std::max(pic.width, pic.height)) / 300.0);
        for (const hand_out& h : f.hands) {
            if (h.palm) hands_json::draw_detection(pic, *h.palm);
            else hands_json::draw_box(pic, h.r.box, handgraph::bgr{0, 200, 0}, t);  // a tracked box: green
        }
        if (!overlay_dir_.empty()) {
            char name[40];
            std::snprintf(name, sizeof name, "frame_%06d.png", f.index);
            handgraph::write_png(fs::path(overlay_dir_) / name, pic);
        }
        if (!overlay_video_.empty()) {
            if (enc_pid_ < 0) start_encoder(pic.width, pic.height);
            if (pic.width != enc_w_ || pic.height != enc_h_)
                throw handgraph::error("--overlay-video '" + overlay_video_ + "': frame " + std::to_string(f.index) + " is " + std::to_string(pic.width) + "x" +
                                       std::to_string(pic.height) + ", the video's frames " + std::to_string(enc_w_) + "x" + std::to_string(enc_h_) +
                                       " (a video has one size: use --overlay-dir)");
            write_all(enc_fd_, pic.pixels.data(), pic.pixels.size(), "--overlay-video '" + overlay_video_ + "': ffmpeg stopped taking frames (" + enc_err_.last_line() + ")");
        }
    }
    // Ends the overlay video (ffmpeg writes its last frames and the file's index).
    void finish() {
        if (enc_pid_ < 0) return;
        ::close(enc_fd_);
        enc_fd_ = -1;
        const int rc = wait_child(enc_pid_);
        enc_pid_ = -1;
        if (rc != 0) throw handgraph::error("--overlay-video '" + overlay_video_ + "': ffmpeg failed (" + enc_err_.last_line() + ")");
    }
    long lines() const { return lines_; }

private:
    void start_encoder(int w, int h) {
        const std::string ffmpeg = need_ffmpeg("ffmpeg", "--overlay-video");
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0) throw handgraph::error("cannot make a pipe for ffmpeg");
        enc_pid_ = spawn({ffmpeg, "-hide_banner", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", std::to_string(w) + "x" + std::to_string(h), "-r",
                          js::number(fps_, 9), "-i", "-", "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-pix_fmt", "yuv420p", overlay_video_},
                         fds[0], -1, enc_err_.fd);
        ::close(fds[0]);
        enc_fd_ = fds[1];
        enc_w_ = w, enc_h_ = h;
    }
    fs::path out_;
    bool obj_;
    std::string overlay_video_, overlay_dir_;
    const handgraph::model& model_;
    double fps_;
    std::FILE* jsonl_ = nullptr;
    long lines_ = 0;
    pid_t enc_pid_ = -1;
    int enc_fd_ = -1, enc_w_ = 0, enc_h_ = 0;
    temp_file enc_err_;
};

std::vector<tracking::joints2> read_box_joints(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw handgraph::error("--box-joints '" + path + "': cannot read it");
    const std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    const js::value v = js::parse(text, "--box-joints '" + path + "'");
    std::vector<tracking::joints2> out;
    if (!v.is_array()) throw handgraph::error("--box-joints '" + path + "': not a list of frames");
    for (const js::value& fr : v.items) {
        if (!fr.is_array() || fr.items.size() != std::size_t(handgraph::num_joints))
            throw handgraph::error("--box-joints '" + path + "': frame " + std::to_string(out.size()) + " is not a list of 21 joints");
        tracking::joints2 j{};
        for (std::size_t k = 0; k < j.size(); ++k) {
            const js::value& p = fr.items[k];
            if (!p.is_array() || p.items.size() != 2 || !p.items[0].is_number() || !p.items[1].is_number())
                throw handgraph::error("--box-joints '" + path + "': frame " + std::to_string(out.size()) + ", joint " + std::to_string(k) + " is not [u, v]");
            j[k] = {float(p.items[0].num), float(p.items[1].num)};
        }
        out.push_back(j);
    }
    return out;
}

double parse_real(const std::string& flag, const std::string& text, double lo, double hi, const std::string& words) {
    const float v = cli::parse_floats<1>(flag, text)[0];
    if (!(v >= lo && v <= hi)) throw handgraph::error(flag + ": \"" + text + "\" is not " + words);
    return v;
}

std::string format_seconds(double s) {
    char b[32];
    if (s >= 3600) std::snprintf(b, sizeof b, "%dh%02dm", int(s / 3600), int(std::fmod(s, 3600) / 60));
    else if (s >= 60) std::snprintf(b, sizeof b, "%dm%02ds", int(s / 60), int(std::fmod(s, 60)));
    else std::snprintf(b, sizeof b, "%.0fs", s);
    return b;
}

int run(int argc, char** argv) {
    std::string video, frames_dir, raw, out_dir, detector_path = "weights/palm_detection_full.safetensors", hand_box, weights, template_path;
    std::string overlay_video, overlay_dir, cam, scale, side = "right", box_joints_path;
    bool detector_given = false, smooth = true, obj = false, quiet = false;
    int threads = 1, max_hands = 2, detect_every = 10;
    std::optional<double> fps_flag;
    tracking::one_euro_params euro;
    tracking::tracker_options topt;
    for (cli::arguments args(argc, argv); args.next();) {
        const std::string& a = args.flag();
        if (a == "--help" || a == "-h") {
            std::cout << usage;
            return 0;
        }
        if (a == "--video") video = args.value();
        else if (a == "--frames") frames_dir = args.value();
        else if (a == "--raw") raw = args.value();
        else if (a == "--out") out_dir = args.value();
        else if (a == "--detector") detector_path = args.value(), detector_given = true;
        else if (a == "--hand-box") hand_box = args.value();
        else if (a == "--weights") weights = args.value();
        else if (a == "--template") template_path = args.value();
        else if (a == "--overlay-video") overlay_video = args.value();
        else if (a == "--overlay-dir") overlay_dir = args.value();
        else if (a == "--cam") cam = args.value();
        else if (a == "--scale") scale = args.value();
        else if (a == "--hand") side = args.value();
        else if (a == "--box-joints") box_joints_path = args.value();
        else if (a == "--obj") obj = true;
        else if (a == "--no-smooth") smooth = false;
        else if (a == "--quiet") quiet = true;
        else if (a == "--threads") threads = int(cli::parse_integer(a, args.value(), 1, handgraph::context::max_threads, cli::thread_count_in));
        else if (a == "--max-hands") max_hands = int(cli::parse_integer(a, args.value(), 1, 16));
        else if (a == "--detect-every") detect_every = int(cli::parse_integer(a, args.value(), 0, 1000000));
        else if (a == "--fps") fps_flag = parse_real(a, args.value(), 1e-3, 1e6, "a frame rate in [0.001, 1e6]");
        else if (a == "--min-cutoff") euro.min_cutoff = parse_real(a, args.value(), 1e-6, 1e6, "a frequency in Hz in [1e-6, 1e6]");
        else if (a == "--beta") euro.beta = parse_real(a, args.value(), 0, 1e6, "a number in [0, 1e6]");
        else if (a == "--d-cutoff") euro.d_cutoff = parse_real(a, args.value(), 1e-6, 1e6, "a frequency in Hz in [1e-6, 1e6]");
        else if (a == "--agree-iou") topt.agree_iou = parse_real(a, args.value(), 0, 1, "an IoU in [0, 1]");
        else if (a == "--enlarge") topt.enlarge = float(parse_real(a, args.value(), 0.5, 10, "a factor in [0.5, 10]"));
        else throw args.unknown();
    }
    // Every flag is checked before anything is read or written.
    const int inputs = int(!video.empty()) + int(!frames_dir.empty()) + int(!raw.empty());
    if (inputs != 1) throw handgraph::error(inputs ? "give one input: --video, --frames or --raw" : "no input: give --video FILE, --frames DIR or --raw WxH (see --help)");
    if (out_dir.empty()) throw handgraph::error("no --out DIR: where frames.jsonl and summary.json go");
    int raw_w = 0, raw_h = 0;
    if (!raw.empty()) {
        const std::size_t x = raw.find('x');
        if (x == std::string::npos) throw handgraph::error("--raw: \"" + raw + "\" is not WxH (e.g. 640x480)");
        raw_w = int(cli::parse_integer("--raw", raw.substr(0, x), 1, 16384, [](long, long) { return std::string("WxH with W and H in 1..16384"); }));
        raw_h = int(cli::parse_integer("--raw", raw.substr(x + 1), 1, 16384, [](long, long) { return std::string("WxH with W and H in 1..16384"); }));
    }
    handgraph::photo_options popt;
    if (side == "left") popt.side = handgraph::hand_side::left;
    else if (side != "right") throw handgraph::error("--hand: \"" + side + "\" is not left or right");
    if (!cam.empty()) {
        popt.camera = cli::parse_floats<4>("--cam", cam);
        if (!((*popt.camera)[0] > 0) || !((*popt.camera)[1] > 0)) throw handgraph::error("--cam: focal lengths must be positive, got \"" + cam + "\"");
    }
    if (!scale.empty()) {
        popt.scale_cm = cli::parse_floats<1>("--scale", scale)[0];
        if (!(popt.scale_cm > 0)) throw handgraph::error("--scale: the hand's scale must be positive (cm), got \"" + scale + "\"");
    }
    std::optional<tracking::box4> given_box;
    if (!hand_box.empty()) {
        given_box = cli::parse_floats<4>("--hand-box", hand_box);
        if (!((*given_box)[2] > 0 && (*given_box)[3] > 0)) throw handgraph::error("--hand-box: width and height must be positive, got \"" + hand_box + "\"");
    }
    if (detect_every == 0 && !given_box) throw handgraph::error("--detect-every 0 never runs the detector: give the first frame's hand with --hand-box");
    if (detect_every == 0 && detector_given) throw handgraph::error("--detector with --detect-every 0: the detector would never run");
    if (!overlay_video.empty() && !overlay_dir.empty()) throw handgraph::error("--overlay-video and --overlay-dir: give one");
    if (!overlay_video.empty()) {
        cli::check_writable("--overlay-video", overlay_video);
        need_ffmpeg("ffmpeg", "--overlay-video");
    }
    {
        std::error_code ec;
        fs::create_directories(out_dir, ec);
        if (!fs::is_directory(out_dir, ec)) throw handgraph::error("--out '" + out_dir + "': cannot make the folder");
        cli::check_writable("--out", (fs::path(out_dir) / "summary.json").string());
        if (!overlay_dir.empty()) {
            fs::create_directories(overlay_dir, ec);
            if (!fs::is_directory(overlay_dir, ec)) throw handgraph::error("--overlay-dir '" + overlay_dir + "': cannot make the folder");
            cli::check_writable("--overlay-dir", (fs::path(overlay_dir) / "frame_000000.png").string());
        }
    }
    std::vector<tracking::joints2> box_joints;
    if (!box_joints_path.empty()) box_joints = read_box_joints(box_joints_path);

    // Signals end the run at the current frame (one that comes while the models load: before the first).
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    ::signal(SIGPIPE, SIG_IGN);


    // The input before the model: an input that cannot be read is refused without loading it.
    std::unique_ptr<frame_source> source;
    if (!video.empty()) source = std::make_unique<video_source>(video);
    else if (!frames_dir.empty()) source = std::make_unique<folder_source>(frames_dir);
    else source = std::make_unique<raw_source>(raw_w, raw_h);
    if (fps_flag) source->fps = *fps_flag;
    const double fps = source->fps;

    std::optional<handgraph::palm_detector> detector;
    if (detect_every > 0)
        detector = hands_json::load_detector(detector_path, "", "or give --detector FILE; or --hand-box x,y,w,h with --detect-every 0");
    const auto t_load = clock_type::now();
    std::string model_desc;
    handgraph::model model = hands_json::load_hand_model(weights, template_path, model_desc);
    const double load_s = std::chrono::duration<double>(clock_type::now() - t_load).count();
    handgraph::context ctx(threads);

    std::cerr << "input:    " << source->description << "\n"
              << "model:    " << model_desc << (weights.empty() ? "  [DEMO: not the released weights; joints and meshes are meaningless]" : "") << "\n"
              << "detector: " << (detector ? detector->model_name() + " (" + detector_path + "), at least every " + std::to_string(detect_every) + " frames" : std::string("none (--detect-every 0)"))
              << "\nsmoothing: " << (smooth ? "One Euro, min_cutoff " + js::number(euro.min_cutoff, 6) + " Hz, beta " + js::number(euro.beta, 6) + ", d_cutoff " + js::number(euro.d_cutoff, 6) + " Hz" : std::string("off"))
              << "\nthreads:  " << threads << ", kernels " << model.kernels() << "\n";

    const fs::path out(out_dir);
    writer wr(out, obj, overlay_video, overlay_dir, model, fps);
    std::atomic<bool> stop_reading{false};
    channel<reader_item> frames_in(2);
    channel<frame_out> frames_out(4);

    std::thread reader([&] {
        try {
            for (;;) {
                frame f;
                if (!source->next(f, stop_reading)) break;
                if (!frames_in.push(reader_item{std::move(f), ""})) return;
            }
            frames_in.push(reader_item{std::nullopt, ""});
        } catch (const std::exception& e) {
            frames_in.push(reader_item{std::nullopt, e.what()});
        }
    });
    std::string writer_error;
    std::mutex writer_mutex;
    std::atomic<bool> writer_failed{false};
    std::thread writer_thread([&] {
        bool timed_out = false;
        for (;;) {
            std::optional<frame_out> f = frames_out.pop(std::chrono::milliseconds(200), &timed_out);
            if (!f) {
                if (timed_out) continue;
                break;
            }
            if (writer_failed.load()) continue;
            try {
                wr.write(*f);
            } catch (const std::exception& e) {
                std::lock_guard<std::mutex> l(writer_mutex);
                writer_error = e.what();
                writer_failed.store(true);
            }
        }
        try {
            if (!writer_failed.load()) wr.finish();
        } catch (const std::exception& e) {
            std::lock_guard<std::mutex> l(writer_mutex);
            writer_error = e.what();
            writer_failed.store(true);
        }
    });

    topt.max_hands = max_hands;
    topt.detect_every = detect_every;
    tracking::tracker tracker(topt);
    std::vector<std::pair<int, tracking::hand_smoother>> smoothers;  // by id
    long frames_done = 0, frames_with_hand = 0, hand_frames = 0, detector_runs = 0;
    std::string input_error, estimate_error;
    const auto t0 = clock_type::now();
    auto last_progress = t0;
    const bool tty = ::isatty(2);
    bool progress_shown = false;
    bool have_given = false;

    for (;;) {
        if (g_signal.load() || writer_failed.load()) break;
        bool timed_out = false;
        std::optional<reader_item> item = frames_in.pop(std::chrono::milliseconds(100), &timed_out);
        if (timed_out) continue;
        if (!item || !item->f) {
            if (item) input_error = item->error;
            break;
        }
        frame& f = *item->f;
        frame_out fo;
        fo.index = f.index;
        fo.time = f.index / fps;
        fo.width = f.img.width, fo.height = f.img.height;
        try {
            const handgraph::image_view view = handgraph::view_of(f.img);
            if (given_box && !have_given) {
                tracker.wants_detection(f.index, f.img.width, f.img.height);
                tracker.add_given(*given_box, f.index);
                have_given = true;
            } else if (tracker.wants_detection(f.index, f.img.width, f.img.height)) {
                tracker.apply_detections(detector->find_hands(ctx, view, max_hands), f.index);
                fo.detector_ran = true;
                ++detector_runs;
            }
            for (std::size_t i = 0; i < tracker.tracks().size(); ++i) {
                tracking::track& t = tracker.tracks()[i];
                handgraph::photo_options o = popt;
                o.hand_box = t.box;
                hand_out h;
                h.id = t.id;
                h.source = t.source;
                h.hand_box = t.box;
                h.palm = t.palm;
                h.r = model.estimate_hand(ctx, view, o);
                if (t.source == "detected") h.r.box_from = handgraph::box_source::detected;
                const tracking::joints2& uv = box_joints.empty() ? h.r.uv_image : box_joints[std::min(box_joints.size() - 1, std::size_t(f.index))];
                tracker.update_from_joints(i, uv);
                if (smooth) {
                    auto it = std::find_if(smoothers.begin(), smoothers.end(), [&](const auto& s) { return s.first == h.id; });
                    if (it == smoothers.end()) {
                        smoothers.emplace_back(h.id, tracking::hand_smoother(euro));
                        it = smoothers.end() - 1;
                    }
                    it->second.apply(h.r, fo.time);
                }
                fo.hands.push_back(std::move(h));
            }
            tracker.drop_lost(f.index);
            // Smoothers of hands no longer followed are dropped (a new id starts afresh).
            smoothers.erase(std::remove_if(smoothers.begin(), smoothers.end(),
                                           [&](const auto& s) {
                                               for (const tracking::track& t : tracker.tracks())
                                                   if (t.id == s.first) return false;
                                               return true;
                                           }),
                            smoothers.end());
        } catch (const std::exception& e) {
            estimate_error = "frame " + std::to_string(f.index) + (f.name.empty() ? "" : " ('" + f.name + "')") + ": " + e.what();
            break;
        }
        if (!fo.hands.empty()) ++frames_with_hand;
        hand_frames += long(fo.hands.size());
        if (wr.overlay()) fo.img = std::move(f.img);
        if (!frames_out.push(std::move(fo))) break;
        ++frames_done;
        const auto now = clock_type::now();
        if (!quiet && (frames_done == 1 || std::chrono::duration<double>(now - last_progress).count() >= (tty ? 0.5 : 5.0))) {
            last_progress = now;
            const double el = std::chrono::duration<double>(now - t0).count(), rate = el > 0 ? frames_done / el : 0;
            std::ostringstream p;
            p << "frame " << frames_done;
            if (source->count) p << "/" << *source->count;
            char r[32];
            std::snprintf(r, sizeof r, "  %.2f fps", rate);
            p << r;
            if (source->count && rate > 0 && *source->count > frames_done) p << "  ETA " << format_seconds(double(*source->count - frames_done) / rate);
            std::cerr << (tty ? "\r" : "") << p.str() << (tty ? "   " : "\n") << std::flush;
            progress_shown = true;
        }
    }
    // The end: stop the reader (and its ffmpeg), let the writer finish every frame handed to it.
    stop_reading.store(true);
    frames_in.close();
    reader.join();  // within 100 ms: its reads poll the stop flag, its push sees the queue closed
    source->abort();
    frames_out.close();
    writer_thread.join();
    const double wall = std::chrono::duration<double>(clock_type::now() - t0).count();
    if (progress_shown && tty) std::cerr << "\n";
    const int sig = g_signal.load();

    // summary.json, written whole (atomically) however the run ended.
    std::string stopped = "end of input";
    std::string error_text;
    if (!estimate_error.empty()) stopped = "error", error_text = estimate_error;
    else if (writer_failed.load()) stopped = "error", error_text = writer_error;
    else if (sig) stopped = sig == SIGINT ? "SIGINT" : "SIGTERM";
    else if (!input_error.empty()) stopped = "error", error_text = input_error;
    const long written = wr.lines();
    std::string s = "{\n";
    s += "  \"schema\": \"handgraph-track-summary/1\",\n";
    s += "  \"input\": " + js::quote(source->description) + ",\n";
    s += "  \"frames\": " + std::to_string(written) + ",\n";
    s += "  \"frames_with_hand\": " + std::to_string(frames_with_hand) + ",\n";
    s += "  \"hands_found\": " + std::to_string(tracker.ids_given()) + ",\n";
    s += "  \"hand_frames\": " + std::to_string(hand_frames) + ",\n";
    s += "  \"detector_runs\": " + std::to_string(detector_runs) + ",\n";
    s += "  \"fps\": " + js::number(wall > 0 ? frames_done / wall : 0, 6) + ",\n";
    s += "  \"wall_time_s\": " + js::number(wall, 6) + ",\n";
    s += "  \"load_time_s\": " + js::number(load_s, 6) + ",\n";
    s += "  \"threads\": " + std::to_string(threads) + ",\n";
    s += "  \"kernels\": " + js::quote(model.kernels()) + ",\n";
    s += "  \"model\": " + js::quote(model_desc) + ",\n";
    s += "  \"random_weights\": " + std::string(weights.empty() ? "true" : "false") + ",\n";
    s += "  \"detector\": " + (detector ? js::quote(detector_path) : std::string("null")) + ",\n";
    s += "  \"meaningful\": {\"boxes\": " + std::string(detector ? "true" : weights.empty() ? "false" : "true") +
         ", \"joints\": " + (weights.empty() ? "false" : "true") + ", \"meshes\": " + (weights.empty() ? "false" : "true") + ", \"note\": " +
         js::quote(weights.empty() ? "random hand-network weights: the joints and meshes are meaningless; the boxes come from the palm detector (trained weights)"
                                   : "the hand network's released weights: joints and meshes are its estimates") +
         "},\n";
    s += "  \"smoothing\": " + (smooth ? "{\"filter\": \"one euro\", \"min_cutoff_hz\": " + js::number(euro.min_cutoff) + ", \"beta\": " + js::number(euro.beta) +
                                             ", \"d_cutoff_hz\": " + js::number(euro.d_cutoff) + "}"
                                       : std::string("null")) + ",\n";
    s += "  \"tracking\": {\"max_hands\": " + std::to_string(max_hands) + ", \"detect_every\": " + std::to_string(detect_every) + ", \"agree_iou\": " +
         js::number(topt.agree_iou) + ", \"match_iou\": " + js::number(topt.match_iou) + ", \"enlarge\": " + js::number(topt.enlarge) + "},\n";
    s += "  \"fps_input\": " + js::number(fps, 9) + ",\n";
    s += "  \"complete\": " + std::string(stopped == "end of input" ? "true" : "false") + ",\n";
    s += "  \"stopped\": " + js::quote(stopped) + ",\n";
    s += "  \"error\": " + (error_text.empty() ? std::string("null") : js::quote(error_text)) + "\n}\n";
    handgraph::write_file_atomic(out / "summary.json", s);

    std::cerr << "frames:   " << written << " (" << frames_with_hand << " with a hand; " << tracker.ids_given() << " hands found; detector on " << detector_runs
              << ") in " << js::number(wall, 4) << " s, " << js::number(wall > 0 ? frames_done / wall : 0, 4) << " fps\n"
              << "wrote " << (out / "frames.jsonl").string() << ", " << (out / "summary.json").string() << "\n";
    if (!error_text.empty()) throw handgraph::error(error_text);
    if (sig) {
        std::cerr << "error: interrupted by " << (sig == SIGINT ? "SIGINT" : "SIGTERM") << " after " << written << " frames: they are in frames.jsonl and summary.json\n";
        return 128 + sig;
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) { return cli::guarded_main(run, argc, argv); }
