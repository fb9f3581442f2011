// Tests for handgraph/weights.hpp: the safetensors container checks, the weight-file
// checks, and bit-exact equality with torch.load on the fixture's checkpoints.
#include <doctest/doctest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "handgraph/weights.hpp"
#include "test_support.hpp"

using namespace handgraph;
namespace fs = std::filesystem;

namespace {

std::vector<unsigned char> make_file(const std::string& header, std::size_t data_bytes, std::uint64_t declared = UINT64_MAX) {
    std::uint64_t n = declared == UINT64_MAX ? header.size() : declared;
    std::vector<unsigned char> out(8 + header.size() + data_bytes, 0);
    for (int i = 0; i < 8; ++i) out[std::size_t(i)] = static_cast<unsigned char>(n >> (8 * i));
    std::copy(header.begin(), header.end(), out.begin() + 8);
    return out;
}

std::string error_of(std::vector<unsigned char> bytes) {
    try {
        safetensors_file::from_bytes(std::move(bytes), "t.safetensors");
    } catch (const error& e) {
        return e.what();
    }
    return "";
}

const std::string meta = R"("__metadata__":{"format":"handgraph-weights","format_version":"1"})";

}  // namespace

TEST_CASE("a well-formed file parses") {
    auto f = safetensors_file::from_bytes(
        make_file(R"({"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},"b":{"dtype":"I32","shape":[],"data_offsets":[24,28]},)" + meta + "}", 28),
        "t.safetensors");
    REQUIRE(f.tensors().size() == 2);
    CHECK(f.find("a")->shape == std::vector<std::int64_t>{2, 3});
    CHECK(f.find("b")->numel() == 1);
    CHECK(f.metadata().at("format") == "handgraph-weights");
}

TEST_CASE("damaged containers are refused with a message naming the problem") {
    CHECK(error_of({1, 2, 3}).find("shorter than") != std::string::npos);
    CHECK(error_of(make_file("{}", 0, 1000)).find("runs past the end") != std::string::npos);
    CHECK(error_of(make_file("{}", 0, std::uint64_t(1) << 60)).find("absurd") != std::string::npos);
    CHECK(error_of(make_file("{\"a\":", 0)).find("invalid JSON") != std::string::npos);
    CHECK(error_of(make_file("[1,2]", 0)).find("not a JSON object") != std::string::npos);
    CHECK(error_of(make_file(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8)).find("\"w\"") != std::string::npos);
    CHECK(error_of(make_file(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8)).find("past the end of the data") != std::string::npos);
    CHECK(error_of(make_file(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,12]}})", 16)).find("do not hold shape (4,)") != std::string::npos);
    CHECK(error_of(make_file(R"({"w":{"dtype":"Q7","shape":[4],"data_offsets":[0,16]}})", 16)).find("unsupported dtype") != std::string::npos);
    CHECK(error_of(make_file(R"({"w":{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}})", 16)).find("non-negative") != std::string::npos);
    CHECK(error_of(make_file(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[16,0]}})", 16)).find("reversed") != std::string::npos);
    CHECK(error_of(make_file(R"({"w":{"dtype":"F32","shape":[1099511627776,1099511627776],"data_offsets":[0,16]}})", 16)).find("overflows") != std::string::npos);
    CHECK(error_of(make_file(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", 16)).find("overlap") != std::string::npos);
    CHECK(error_of(make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8)).find("duplicate") != std::string::npos);
    CHECK(error_of(make_file(R"({"__metadata__":{"x":1}})", 0)).find("not a string") != std::string::npos);
    CHECK(error_of(make_file(R"({"w":{"dtype":"F32","shape":[1]}})", 4)).find("data_offsets") != std::string::npos);
}

TEST_CASE("random bytes never crash the reader") {
    std::uint32_t state = 12345;
    auto next = [&] { state = state * 1664525u + 1013904223u; return state >> 8; };
    const std::string good = R"({"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},)" + meta + "}";
    for (int iter = 0; iter < 3000; ++iter) {
        auto bytes = make_file(good, 24);
        int pokes = 1 + int(next() % 4);
        for (int p = 0; p < pokes; ++p) bytes[next() % bytes.size()] = static_cast<unsigned char>(next());
        if (next() % 4 == 0) bytes.resize(next() % bytes.size());
        try {
            auto f = safetensors_file::from_bytes(bytes, "fuzz");
            for (auto& t : f.tensors()) CHECK(t.end <= bytes.size());
        } catch (const error&) {
        }
    }
}

TEST_CASE("weight_file checks format, version, names, shapes, dtypes and finiteness") {
    auto wf = [](const std::string& header, std::size_t n, std::vector<float> values = {}) {
        auto bytes = make_file(header, n);
        if (!values.empty()) std::memcpy(bytes.data() + bytes.size() - n, values.data(), values.size() * 4);
        return weight_file(safetensors_file::from_bytes(bytes, "m.safetensors"));
    };
    CHECK_THROWS_WITH_AS(wf(R"({"__metadata__":{"format":"other"}})", 0), doctest::Contains("not a handgraph weight file"), error);
    CHECK_THROWS_WITH_AS(wf(R"({"__metadata__":{"format":"handgraph-weights","format_version":"9"}})", 0), doctest::Contains("version \"9\""), error);
    // The header must be padded so that float data are aligned: 8 + header length multiple of 4.
    std::string h = R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"i":{"dtype":"I32","shape":[1],"data_offsets":[16,20]},)" + meta + "}";
    while ((8 + h.size()) % 64) h += ' ';
    auto f = wf(h, 20, {1, 2, 3, 4, 0});
    CHECK(f.f32("w", {2, 2})[3] == 4.0f);
    CHECK_THROWS_WITH_AS(f.f32("w", {4}), doctest::Contains("has shape (2, 2), expected (4,)"), error);
    CHECK_THROWS_WITH_AS(f.f32("i", {1}), doctest::Contains("\"i\" has dtype I32, expected F32"), error);
    CHECK_THROWS_WITH_AS(f.f32("missing.weight", {1}), doctest::Contains("\"missing.weight\" is missing"), error);
    auto g = wf(h, 20, {1, std::numeric_limits<float>::quiet_NaN(), 3, 4, 0});
    CHECK_THROWS_WITH_AS(g.f32("w", {2, 2}), doctest::Contains("non-finite"), error);
    auto k = wf(h, 20, {1, 2, 3, 4, 0});
    k.f32("w", {2, 2});
    CHECK_THROWS_WITH_AS(k.check_all_used(), doctest::Contains("unexpected tensor(s): i"), error);
}

TEST_CASE("NaN and Inf are found anywhere in a tensor (block and tail of the check), by flat index") {
    // 200 floats: indices 0..191 are checked in blocks of 64, 192..199 one by one.
    std::string h = R"({"w":{"dtype":"F32","shape":[200],"data_offsets":[0,800]},)" + meta + "}";
    while ((8 + h.size()) % 64) h += ' ';
    for (std::size_t at : {std::size_t(0), std::size_t(63), std::size_t(64), std::size_t(130), std::size_t(191),
                           std::size_t(192), std::size_t(199)})
        for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                          -std::numeric_limits<float>::infinity()}) {
            std::vector<float> v(200, 0.5f);
            v[at] = bad;
            auto bytes = make_file(h, 800);
            std::memcpy(bytes.data() + bytes.size() - 800, v.data(), 800);
            weight_file f(safetensors_file::from_bytes(bytes, "m.safetensors"));
            CAPTURE(at);
            const std::string want = "non-finite value (NaN or Inf) at flat index " + std::to_string(at);
            CHECK_THROWS_WITH_AS(f.f32("w", {200}), doctest::Contains(want.c_str()), error);
        }
    // The largest finite values are accepted.
    std::vector<float> v(200, std::numeric_limits<float>::max());
    v[7] = -std::numeric_limits<float>::max();
    v[150] = std::numeric_limits<float>::denorm_min();
    auto bytes = make_file(h, 800);
    std::memcpy(bytes.data() + bytes.size() - 800, v.data(), 800);
    weight_file f(safetensors_file::from_bytes(bytes, "m.safetensors"));
    CHECK(f.f32("w", {200})[150] == std::numeric_limits<float>::denorm_min());
}

TEST_CASE("converted files equal torch.load bit for bit (legacy and zip checkpoints)") {
    for (int seed : {1, 2, 3}) {
        fs::path dir = handgraph_test::testdata() / ("seed" + std::to_string(seed));
        fs::path ref = dir / "state_dict.safetensors";
        HANDGRAPH_SKIP_IF(!fs::exists(ref), "no " << ref << " (the fixture could not make it; see its README)");
        auto expected = safetensors_file::read(ref.string());
        for (const char* name : {"weights.safetensors", "weights_zip.safetensors"}) {
            if (seed != 1 && !fs::exists(dir / name)) continue;  // the zip serialisation is made for seed 1 only
            auto got = weight_file::read((dir / name).string());
            CAPTURE(name);
            std::size_t compared = 0;
            for (auto& t : expected.tensors()) {
                if (t.type != dtype::f32) continue;  // num_batches_tracked is dropped by the converter
                const tensor_info* g = got.file().find(t.name);
                REQUIRE_MESSAGE(g, t.name);
                CHECK(g->type == dtype::f32);
                CHECK(g->shape == t.shape);
                REQUIRE(g->end - g->begin == t.end - t.begin);
                std::vector<unsigned char> a(t.end - t.begin), b(t.end - t.begin);
                got.file().read_into(*g, a.data());
                expected.read_into(t, b.data());
                CHECK(a == b);
                ++compared;
            }
            CHECK(compared > 1000);
            CHECK(got.metadata("num_joints") == "21");
        }
    }
}
