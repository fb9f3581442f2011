// handgraph/eval/checkpoint.hpp: what an evaluation run keeps of each frame
// (frame_estimate), the checkpoint file that lets an interrupted run resume
// (serialize_checkpoint, parse_checkpoint: magic, FNV-1a checksum, every size checked),
// and the fingerprint that ties a checkpoint to its run (weights, data set, labels, vis).
// Depends on error.hpp, eval/pose.hpp and eval/datasets.hpp.
#pragma once
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "../error.hpp"
#include "datasets.hpp"
#include "pose.hpp"

namespace handgraph {

// What a run keeps of one frame's estimate: run_evaluation's result, and what a
// checkpoint stores.
struct frame_estimate {
    std::array<float, pose_joint_count * 3> pose_xyz{};  // cm, as the pipeline gives them
    std::array<std::int32_t, pose_joint_count * 2> uv{};  // crop pixels
    std::vector<float> mesh_xyz;                          // cm, only for frames < vis
};

namespace detail {

constexpr std::uint64_t fnv_offset = 1469598103934665603ull, fnv_prime = 1099511628211ull;

inline std::uint64_t fnv1a(const void* data, std::size_t n, std::uint64_t h = fnv_offset) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * fnv_prime;
    return h;
}

inline std::string hex64(std::uint64_t v) {
    char b[20];
    std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(v));
    return b;
}

inline std::uint64_t fnv1a_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw error(path.string() + ": cannot read");
    std::uint64_t h = fnv_offset;
    std::vector<char> buf(1 << 20);
    while (in) {
        in.read(buf.data(), std::streamsize(buf.size()));
        h = fnv1a(buf.data(), std::size_t(in.gcount()), h);
    }
    return h;
}

// Checkpoint file: "HGEVALC1", u64 fingerprint length + bytes, u64 frames in the run,
// u64 vis, u64 mesh floats per vis frame, u64 frames done; per done frame 63 float32
// pose values, 42 int32 uv, and the mesh when the frame is < vis; then the FNV-1a hash of
// everything before it. Host byte order (the magic would read differently elsewhere).
constexpr char checkpoint_magic[9] = "HGEVALC1";

template <class T>
void put_raw(std::string& s, const T& v) {
    s.append(reinterpret_cast<const char*>(&v), sizeof v);
}

struct byte_reader {
    const std::string& s;
    std::size_t off;
    std::string where;
    template <class T>
    T get() {
        T v;
        if (s.size() - off < sizeof v) throw error(where + ": truncated");
        std::memcpy(&v, s.data() + off, sizeof v);
        off += sizeof v;
        return v;
    }
    void bytes(void* dst, std::size_t n) {
        if (s.size() - off < n) throw error(where + ": truncated");
        std::memcpy(dst, s.data() + off, n);
        off += n;
    }
};

}  // namespace detail

struct evaluation_checkpoint {
    std::string fingerprint;
    std::size_t frames = 0, vis = 0, mesh_floats = 0;
    std::vector<frame_estimate> done;
};

inline std::string serialize_checkpoint(const evaluation_checkpoint& c) {
    std::string s(detail::checkpoint_magic, 8);
    detail::put_raw(s, std::uint64_t(c.fingerprint.size()));
    s += c.fingerprint;
    for (std::uint64_t v : {std::uint64_t(c.frames), std::uint64_t(c.vis), std::uint64_t(c.mesh_floats), std::uint64_t(c.done.size())})
        detail::put_raw(s, v);
    for (std::size_t i = 0; i < c.done.size(); ++i) {
        const auto& e = c.done[i];
        s.append(reinterpret_cast<const char*>(e.pose_xyz.data()), sizeof e.pose_xyz);
        s.append(reinterpret_cast<const char*>(e.uv.data()), sizeof e.uv);
        if (i < c.vis) {
            if (e.mesh_xyz.size() != c.mesh_floats) throw error("checkpoint: frame " + std::to_string(i) + " lacks its mesh");
            s.append(reinterpret_cast<const char*>(e.mesh_xyz.data()), e.mesh_xyz.size() * sizeof(float));
        }
    }
    detail::put_raw(s, detail::fnv1a(s.data(), s.size()));
    return s;
}

inline evaluation_checkpoint parse_checkpoint(const std::string& s, const std::string& where) {
    if (s.size() < 8 + 8 || std::memcmp(s.data(), detail::checkpoint_magic, 8) != 0)
        throw error(where + ": not a hand_eval checkpoint (wrong magic)");
    std::uint64_t stored = 0;
    std::memcpy(&stored, s.data() + s.size() - 8, 8);
    if (detail::fnv1a(s.data(), s.size() - 8) != stored) throw error(where + ": checksum mismatch (damaged checkpoint)");
    std::string body = s.substr(0, s.size() - 8);
    detail::byte_reader r{body, 8, where};
    evaluation_checkpoint c;
    auto flen = r.get<std::uint64_t>();
    if (flen > body.size()) throw error(where + ": truncated");
    c.fingerprint.resize(std::size_t(flen));
    r.bytes(c.fingerprint.data(), c.fingerprint.size());
    c.frames = std::size_t(r.get<std::uint64_t>());
    c.vis = std::size_t(r.get<std::uint64_t>());
    c.mesh_floats = std::size_t(r.get<std::uint64_t>());
    auto done = r.get<std::uint64_t>();
    if (done > c.frames || c.mesh_floats > (std::size_t(1) << 24)) throw error(where + ": inconsistent header");
    for (std::uint64_t i = 0; i < done; ++i) {
        frame_estimate e;
        r.bytes(e.pose_xyz.data(), sizeof e.pose_xyz);
        r.bytes(e.uv.data(), sizeof e.uv);
        if (i < c.vis) {
            e.mesh_xyz.resize(c.mesh_floats);
            r.bytes(e.mesh_xyz.data(), c.mesh_floats * sizeof(float));
        }
        c.done.push_back(std::move(e));
    }
    if (r.off != body.size()) throw error(where + ": trailing bytes");
    return c;
}

// Identifies a run for its checkpoint: the weight file's contents, the data set's name,
// frame count and labels (ids, cameras, boxes, roots, scales, ground truth) of the
// frames evaluated, and vis. Images are not hashed.
inline std::string evaluation_fingerprint(const dataset& ds, std::size_t limit, std::size_t vis,
                                          const std::filesystem::path& weights, bool estimate_root = false) {
    std::size_t n = evaluation_frames(ds, limit);
    std::uint64_t h = detail::fnv_offset;
    for (std::size_t i = 0; i < n; ++i) {
        sample s = ds.load(i, false);
        h = detail::fnv1a(s.image_id.data(), s.image_id.size() + 1, h);
        h = detail::fnv1a(s.cam.data(), sizeof s.cam, h);
        h = detail::fnv1a(s.bbox.data(), sizeof s.bbox, h);
        h = detail::fnv1a(s.root_cm.data(), sizeof s.root_cm, h);
        h = detail::fnv1a(&s.scale_cm, sizeof s.scale_cm, h);
        h = detail::fnv1a(s.gt_pose_cm.data(), sizeof s.gt_pose_cm, h);
    }
    return "hand_eval checkpoint v1; dataset " + ds.name() + "; frames " + std::to_string(n) + "; vis " + std::to_string(std::min(vis, n)) +
           "; labels " + detail::hex64(h) + "; weights " + detail::hex64(detail::fnv1a_file(weights)) + (estimate_root ? "; root estimated" : "");
}

}  // namespace handgraph
