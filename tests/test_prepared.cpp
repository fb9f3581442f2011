// Prepared weight files (handgraph::prepare_weights, hand_prepare): the same results, bit
// for bit, as the converted file they are made from, on every instruction set this CPU
// runs and in both convolution modes; and every damaged or mismatched prepared file
// refused with a message naming what is wrong.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "handgraph/demo.hpp"
#include "handgraph/handgraph.hpp"
#include "handgraph/weights.hpp"
#include "test_images.hpp"
#include "test_support.hpp"

using namespace handgraph;
namespace fs = std::filesystem;
using handgraph_test::read_png_bgr;

namespace {

fs::path converted() { return handgraph_test::testdata() / "seed1" / "weights.safetensors"; }
bool have_fixture() { return fs::exists(converted()); }
std::string no_fixture() { return "no converted weights in " + handgraph_test::testdata().string() + " (make_testdata)"; }

// A folder of this test process's own, removed at exit.
struct scratch_dir {
    fs::path dir;
    scratch_dir() {
        dir = fs::temp_directory_path() / ("handgraph_test_prepared_" + std::to_string(::getpid()));
        fs::create_directories(dir);
    }
    ~scratch_dir() {
        std::error_code ec;
        fs::remove_all(dir, ec);
    }
};
scratch_dir& scratch() {
    static scratch_dir s;
    return s;
}

std::vector<unsigned char> read_bytes(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::vector<unsigned char>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}
void write_bytes(const fs::path& p, const std::vector<unsigned char>& b) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
}

template <class A>
bool same_bits(const A& a, const A& b) {
    return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(a[0])) == 0);
}
bool same_trace(const hand_trace& a, const hand_trace& b) {
    return same_bits(a.heatmaps, b.heatmaps) && same_bits(a.enc0, b.enc0) && same_bits(a.enc1, b.enc1) && same_bits(a.features, b.features) && same_bits(a.mesh_nodes, b.mesh_nodes) &&
           same_bits(a.depths, b.depths) && same_bits(a.estimate.uv_px, b.estimate.uv_px) && same_bits(a.estimate.pose_uvd, b.estimate.pose_uvd) &&
           same_bits(a.estimate.mesh_uvd, b.estimate.mesh_uvd) && same_bits(a.estimate.pose_cm, b.estimate.pose_cm) &&
           same_bits(a.estimate.mesh_cm, b.estimate.mesh_cm);
}

// The fixture's file prepared with `kernels` (once per process and kernels).
fs::path prepared(const std::string& kernels) {
    const fs::path p = scratch().dir / ("prepared_" + std::string(kernels == "fma3+avx2" ? "avx2" : kernels) + ".safetensors");
    if (!fs::exists(p)) {
        load_options lo;
        lo.kernels = kernels;
        prepare_weights(converted().string(), p.string(), lo);
    }
    return p;
}

std::string load_error(const fs::path& p, const std::string& kernels = "") {
    load_options lo;
    lo.kernels = kernels;
    try {
        model m = model::load(p.string(), lo);
    } catch (const error& e) {
        return e.what();
    }
    return "";
}

// The header of a prepared file as text, and the file with a new header of the same data.
struct file_parts {
    std::string header;
    std::vector<unsigned char> data;
};
file_parts split(const std::vector<unsigned char>& b) {
    std::uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | b[std::size_t(i)];
    file_parts f;
    f.header.assign(reinterpret_cast<const char*>(b.data()) + 8, std::size_t(n));
    f.data.assign(b.begin() + std::ptrdiff_t(8 + n), b.end());
    return f;
}
std::vector<unsigned char> join(const file_parts& f) {
    std::vector<unsigned char> b(8 + f.header.size() + f.data.size());
    for (int i = 0; i < 8; ++i) b[std::size_t(i)] = (std::uint64_t(f.header.size()) >> (8 * i)) & 0xff;
    std::memcpy(b.data() + 8, f.header.data(), f.header.size());
    if (!f.data.empty()) std::memcpy(b.data() + 8 + f.header.size(), f.data.data(), f.data.size());
    return b;
}
void replace_once(std::string& s, const std::string& from, const std::string& to) {
    const std::size_t at = s.find(from);
    REQUIRE_MESSAGE(at != std::string::npos, from);
    s.replace(at, from.size(), to);
}

}  // namespace

TEST_CASE("a prepared file gives the converted file's results bit for bit, every instruction set, both modes") {
    HANDGRAPH_SKIP_IF(!have_fixture(), no_fixture());
    const fs::path images = handgraph_test::testdata() / "images";
    std::vector<std::vector<unsigned char>> crops{demo_crop()};
    for (const char* name : {"real_00150.png", "synthetic_1.png"})
        if (fs::exists(images / name)) crops.push_back(read_png_bgr(images / name));
    REQUIRE(crops.size() == 3);
    const crop_params params = demo_params();
    const auto names = available_kernels();
    for (std::size_t k = 0; k < names.size(); ++k) {
        CAPTURE(names[k]);
        load_options lo;
        lo.kernels = names[k];
        const model a = model::load(converted().string(), lo), b = model::load(prepared(names[k]).string(), lo);
        CHECK(std::string(b.kernels()) == names[k]);
        // The packed weights are the mapped file's (within a few kB of headers and the
        // copied small tensors), not a second copy in the model.
        CHECK(b.weight_bytes() >= a.weight_bytes());
        CHECK(b.weight_bytes() <= fs::file_size(prepared(names[k])) + (std::size_t(1) << 20));
        CHECK(a.faces() == b.faces());
        context ctx(2);
        // The best instruction set on every crop in both modes, the others on one crop.
        const std::size_t n = k == 0 ? crops.size() : 1;
        for (std::size_t c = 0; c < n; ++c)
            for (bool exact : {false, true}) {
                if (k > 0 && exact) continue;
                CAPTURE(c);
                CAPTURE(exact);
                estimate_options opt;
                opt.exact = exact;
                const image_view v(crops[c].data(), crop_size, crop_size);
                const hand_trace ta = a.trace(ctx, v, params, opt), tb = b.trace(ctx, v, params, opt);
                CHECK(same_trace(ta, tb));
            }
    }
}

TEST_CASE("a prepared file made for FMA kernels is refused by the sse2 kernels, and the reverse, saying why") {
    HANDGRAPH_SKIP_IF(!have_fixture(), no_fixture());
    const auto names = available_kernels();
    HANDGRAPH_SKIP_IF(names.size() < 2 || names.back() != "sse2", "this CPU does not run both FMA kernels and sse2");
    const std::string fma = names.front();
    std::string e = load_error(prepared(fma), "sse2");
    CHECK(e.find("net_hm.r1.conv1") != std::string::npos);  // the first layer that runs in double only without FMA
    CHECK(e.find("prepared with other kernels") != std::string::npos);
    e = load_error(prepared("sse2"), fma);
    CHECK(e.find("net_hm.r1.conv1") != std::string::npos);
    CHECK(e.find("run it in float") != std::string::npos);
    // Kernels with FMA share one file (the stem runs in double on all of them).
    for (std::size_t k = 1; k + 1 < names.size(); ++k) CHECK(load_error(prepared(fma), names[k]) == "");
}

TEST_CASE("damaged and mismatched prepared files are refused with a message naming the problem") {
    HANDGRAPH_SKIP_IF(!have_fixture(), no_fixture());
    const std::string best = available_kernels().front();
    const fs::path good = prepared(best);
    REQUIRE(load_error(good) == "");
    const std::vector<unsigned char> bytes = read_bytes(good);
    const file_parts parts = split(bytes);
    REQUIRE((8 + parts.header.size()) % 64 == 0);
    const fs::path bad = scratch().dir / "bad.safetensors";
    auto refused = [&](const std::vector<unsigned char>& b, const std::vector<std::string>& words) {
        write_bytes(bad, b);
        const std::string e = load_error(bad);
        CAPTURE(e);
        CHECK(!e.empty());
        CHECK(e.find(bad.string()) != std::string::npos);
        for (const auto& w : words) CHECK_MESSAGE(e.find(w) != std::string::npos, w);
    };

    SUBCASE("truncated") {
        for (std::size_t cut : {std::size_t(4), parts.header.size() / 2, bytes.size() / 2, bytes.size() - 1})
            refused(std::vector<unsigned char>(bytes.begin(), bytes.begin() + std::ptrdiff_t(cut)), {});
        refused(std::vector<unsigned char>(bytes.begin(), bytes.begin() + std::ptrdiff_t(bytes.size() / 2)), {"truncated"});
    }
    SUBCASE("a NaN in a packed tensor") {
        std::vector<unsigned char> b = bytes;
        // Inside the first packed array, the stem's (which runs in double everywhere).
        REQUIRE(parts.header.find("\"net_hm.conv1_.packed_weight64\":{\"dtype\":\"F64\",\"shape\":[9408],\"data_offsets\":[0,") != std::string::npos);
        const double nan = std::nan("");
        std::memcpy(&b[8 + parts.header.size() + 8 * 1000], &nan, 8);
        refused(b, {"non-finite", "net_hm.conv1_.packed_weight64", "flat index 1000"});
    }
    SUBCASE("data off the 64-byte alignment") {
        file_parts f = parts;
        f.header += "    ";  // 4 more bytes of header: every tensor moves by 4
        refused(join(f), {"64-byte boundary"});
    }
    SUBCASE("another format version") {
        file_parts f = parts;
        replace_once(f.header, "\"format_version\":\"1\"", "\"format_version\":\"7\"");
        refused(join(f), {"prepared weight file format version \"7\""});
    }
    SUBCASE("the Laplacian scales garbled or outside the spectrum") {
        file_parts f = parts;
        const std::size_t at = f.header.find("\"graph_lmax\":\"");
        REQUIRE(at != std::string::npos);
        f.header[at + 14] = 'x';
        refused(join(f), {"graph_lmax"});
        f = parts;
        f.header[at + 14] = '7';  // 1.99... -> 7.99...
        refused(join(f), {"outside (0, 2]"});
    }
    SUBCASE("a packed tensor renamed, so missing") {
        file_parts f = parts;
        replace_once(f.header, "net_hm.r4.conv2.packed_bias\"", "net_hm.r4.conv2.packed_bia_\"");
        refused(join(f), {"net_hm.r4.conv2.packed_bias", "missing"});
    }
    SUBCASE("prepare_weights refuses a prepared input and an output over its input") {
        const fs::path out = scratch().dir / "again.safetensors";
        CHECK_THROWS_WITH_AS(prepare_weights(good.string(), out.string()), doctest::Contains("already a prepared weight file"), error);
        CHECK(!fs::exists(out));
        const fs::path copy = scratch().dir / "converted_copy.safetensors";
        fs::copy_file(converted(), copy, fs::copy_options::overwrite_existing);
        CHECK_THROWS_WITH_AS(prepare_weights(copy.string(), copy.string()), doctest::Contains("would replace the converted weights"), error);
        CHECK(read_bytes(copy) == read_bytes(converted()));
    }
}
