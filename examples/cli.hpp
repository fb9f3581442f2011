// cli.hpp: what handgraph's own binaries (hand_demo, hand_eval, hand_bench, compare_dump)
// share on the command line: the `main` wrapper that turns an exception into one
// `error: ...` line and exit status 1, a reader of `--flag value` arguments, whole numbers
// in a range, comma-separated numbers, and the check that an output can be written.
//
// Not part of the installed library: the benchmarks include it by a relative path.
// Depends on handgraph/error.hpp and the standard library only.
#pragma once

#include <array>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "handgraph/error.hpp"

namespace cli {

// main(): `return cli::guarded_main(run, argc, argv);`. Every error ends in one line
// on stderr and exit status 1.
inline int guarded_main(int (*run)(int, char**), int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        std::cerr << "error: " << e.what() << "\n";
        return 1;
    }
}

// Walks argv: `while (args.next()) { if (args.flag() == "--x") x = args.value(); ... }`.
// value() takes the argument after the flag, refusing a flag at the end of the line with
// "<flag> needs a value<hint>".
class arguments {
public:
    arguments(int argc, char** argv, std::string hint = " (see --help)") : argc_(argc), argv_(argv), hint_(std::move(hint)) {}
    bool next() {
        if (++i_ >= argc_) return false;
        flag_ = argv_[i_];
        return true;
    }
    const std::string& flag() const { return flag_; }
    std::string value() {
        if (i_ + 1 >= argc_) throw handgraph::error(flag_ + " needs a value" + hint_);
        return argv_[++i_];
    }
    // The arguments after the flag up to the next one starting with "--" (at least one).
    std::vector<std::string> values() {
        std::vector<std::string> out;
        while (i_ + 1 < argc_ && std::string(argv_[i_ + 1]).rfind("--", 0) != 0) out.push_back(argv_[++i_]);
        if (out.empty()) throw handgraph::error(flag_ + " needs a value" + hint_);
        return out;
    }
    // The refusal of an argument no branch took.
    handgraph::error unknown() const { return handgraph::error("unknown argument \"" + flag_ + "\"" + hint_); }

private:
    int argc_;
    char** argv_;
    std::string hint_;
    int i_ = 0;
    std::string flag_;
};

// How a binary words the range in "<flag>: "<text>" is not <words>".
using range_words = std::string (*)(long lo, long hi);
inline std::string whole_number_in(long lo, long hi) { return "a whole number in " + std::to_string(lo) + ".." + std::to_string(hi); }
inline std::string integer_in(long lo, long hi) { return "an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]"; }
inline std::string thread_count_in(long lo, long hi) { return "a thread count (" + std::to_string(lo) + "-" + std::to_string(hi) + ")"; }

// A decimal integer in lo..hi; anything else (empty, trailing characters, out of range or
// of long) is refused naming the flag and the text.
inline long parse_integer(const std::string& flag, const std::string& text, long lo, long hi, range_words words = whole_number_in) {
    char* end = nullptr;
    errno = 0;
    long n = std::strtol(text.c_str(), &end, 10);
    if (text.empty() || *end || errno || n < lo || n > hi) throw handgraph::error(flag + ": \"" + text + "\" is not " + words(lo, hi));
    return n;
}

// Exactly N comma-separated finite numbers ("-3.2,11.0,42.4").
template <std::size_t N>
std::array<float, N> parse_floats(const std::string& flag, const std::string& text) {
    std::array<float, N> out{};
    std::stringstream ss(text);
    std::string item;
    std::size_t i = 0;
    while (std::getline(ss, item, ',')) {
        char* end = nullptr;
        if (i >= N) throw handgraph::error(flag + ": expected " + std::to_string(N) + " comma-separated numbers, got more: \"" + text + "\"");
        out[i] = std::strtof(item.c_str(), &end);
        if (item.empty() || *end != '\0' || !std::isfinite(out[i]))
            throw handgraph::error(flag + ": \"" + item + "\" is not a number");
        ++i;
    }
    if (i != N) throw handgraph::error(flag + ": expected " + std::to_string(N) + " comma-separated numbers, got \"" + text + "\"");
    return out;
}

// Whether a new file can be made in folder `dir`: probed by creating and removing one
// (`probe_name` in it), which also tells the truth for root, unlike permission bits.
inline bool can_create_in(const std::filesystem::path& dir, const std::string& probe_name) {
    const std::filesystem::path probe = dir / probe_name;
    std::FILE* f = std::fopen(probe.string().c_str(), "wb");
    if (!f) return false;
    std::fclose(f);
    std::error_code ec;
    std::filesystem::remove(probe, ec);
    return true;
}

// Refuses an output path that cannot be written, before any work is done, so that a run
// never stops between its outputs (one written, the other not): the path must not be a
// folder, and its folder must exist and take a new file.
inline void check_writable(const std::string& flag, const std::string& path) {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (fs::is_directory(path, ec)) throw handgraph::error(flag + " " + path + ": is a folder, give a file name");
    fs::path dir = fs::path(path).parent_path();
    if (dir.empty()) dir = ".";
    if (!fs::is_directory(dir, ec))
        throw handgraph::error(flag + " " + path + ": '" + dir.string() + "' " + (fs::exists(dir, ec) ? "is not a folder" : "does not exist"));
    if (!can_create_in(dir, ".handgraph_probe_" + std::to_string(std::uintptr_t(&path)) + std::to_string(std::rand())))
        throw handgraph::error(flag + " " + path + ": cannot write in folder '" + dir.string() + "'");
}

}  // namespace cli
