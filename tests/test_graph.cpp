// Tests for obj.hpp and graph.hpp: numpy's argsort reproduced bit for bit, the release's
// hand graph (perm, nnz, Laplacians against tests/reference/hand_graph.py), the OBJ
// reader's refusals, determinism, the synthetic template (against its Python twin).
#include <doctest/doctest.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#include "handgraph/graph.hpp"
#include "handgraph/obj.hpp"
#include "handgraph/synthetic_template.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using namespace handgraph_test;

namespace {

// A scratch folder, removed at the end of the test case.
struct scratch_dir {
    fs::path path;
    explicit scratch_dir(const std::string& name) {
        path = fs::temp_directory_path() / ("handgraph_" + name + "_" + std::to_string(::getpid()));
        fs::remove_all(path);
        fs::create_directories(path);
    }
    ~scratch_dir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

std::string read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

void write_file(const fs::path& p, const std::string& text) {
    std::ofstream out(p, std::ios::binary);
    out << text;
}

// Runs a command; returns its exit status (77 = skipped).
int run(const std::string& command) {
    int status = std::system(command.c_str());
    if (status == -1) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string quoted(const fs::path& p) { return "'" + p.string() + "'"; }

// ---- a small SHA-256 (FIPS 180-4), for the spec's checked hash of perm ----
std::string sha256_hex(const std::string& message) {
    static const std::uint32_t k[64] = {
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};
    std::uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    std::string m = message;
    const std::uint64_t bits = static_cast<std::uint64_t>(message.size()) * 8;
    m += static_cast<char>(0x80);
    while (m.size() % 64 != 56) m += '\0';
    for (int i = 7; i >= 0; --i) m += static_cast<char>((bits >> (8 * i)) & 0xff);
    auto rotr = [](std::uint32_t x, int n) { return (x >> n) | (x << (32 - n)); };
    for (std::size_t block = 0; block < m.size(); block += 64) {
        std::uint32_t w[64];
        for (int i = 0; i < 16; ++i) {
            const auto* p = reinterpret_cast<const unsigned char*>(&m[block + 4 * static_cast<std::size_t>(i)]);
            w[i] = (std::uint32_t(p[0]) << 24) | (std::uint32_t(p[1]) << 16) | (std::uint32_t(p[2]) << 8) | p[3];
        }
        for (int i = 16; i < 64; ++i) {
            const std::uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
            const std::uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16] + s0 + w[i - 7] + s1;
        }
        std::uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
        for (int i = 0; i < 64; ++i) {
            const std::uint32_t t1 = hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + k[i] + w[i];
            const std::uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
            hh = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
        }
        h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
    }
    std::string hex;
    char buf[9];
    for (std::uint32_t x : h) {
        std::snprintf(buf, sizeof buf, "%08x", x);
        hex += buf;
    }
    return hex;
}

std::string int64_le_bytes(const std::vector<std::int32_t>& v) {
    std::string out;
    for (std::int32_t x : v) {
        const auto u = static_cast<std::uint64_t>(static_cast<std::int64_t>(x));
        for (int i = 0; i < 8; ++i) out += static_cast<char>((u >> (8 * i)) & 0xff);
    }
    return out;
}

// ---- a minimal safetensors reader for the reference dump (test-only; the library's
// own loader is weights.hpp) ----
struct st_tensor {
    std::string dtype;
    std::vector<std::int64_t> shape;
    std::string bytes;
    template <class T>
    std::vector<T> as() const {
        std::vector<T> out(bytes.size() / sizeof(T));
        std::memcpy(out.data(), bytes.data(), out.size() * sizeof(T));
        return out;
    }
};

st_tensor st_get(const std::string& file, const std::string& name) {
    std::uint64_t n = 0;
    std::memcpy(&n, file.data(), 8);
    const std::string header = file.substr(8, n);
    const std::size_t at = header.find("\"" + name + "\":{");
    REQUIRE_MESSAGE(at != std::string::npos, "tensor " << name << " missing from the reference dump");
    const std::string entry = header.substr(at, header.find('}', at) - at);
    st_tensor t;
    std::size_t d = entry.find("\"dtype\":\"") + 9;
    t.dtype = entry.substr(d, entry.find('"', d) - d);
    std::size_t s = entry.find("\"shape\":[") + 9;
    std::istringstream shape(entry.substr(s, entry.find(']', s) - s));
    for (std::string x; std::getline(shape, x, ',');)
        if (!x.empty()) t.shape.push_back(std::stoll(x));
    std::size_t o = entry.find("\"data_offsets\":[") + 16;
    const std::size_t comma = entry.find(',', o);
    const std::uint64_t b = std::stoull(entry.substr(o, comma - o));
    const std::uint64_t e = std::stoull(entry.substr(comma + 1));
    t.bytes = file.substr(8 + n + b, e - b);
    return t;
}

}  // namespace

// ---------------------------------------------------------------------------------------
// (a) argsort

// McIlroy's adversary ("A killer adversary for quicksort", 1999): answers comparisons so
// that a quicksort goes quadratic, i.e. numpy's introsort falls back to heapsort.
struct adversary {
    std::vector<std::int32_t> value;
    std::int32_t gas, solid = 0, candidate = -1;
    explicit adversary(std::int32_t n) : value(static_cast<std::size_t>(n), n), gas(n) {}
    void freeze(std::int32_t x) { value[x] = solid++; }
    bool operator()(std::int32_t x, std::int32_t y) {
        if (value[x] == gas && value[y] == gas) {
            if (x == candidate) freeze(x);
            else freeze(y);
        }
        if (value[x] == gas) candidate = x;
        else if (value[y] == gas) candidate = y;
        return value[x] < value[y];
    }
};

TEST_CASE("numpy_argsort is numpy.argsort (numpy <= 1.24) bit for bit") {
    std::mt19937 rng(20190615);
    std::vector<std::vector<float>> arrays;
    const float specials[] = {-0.0f, 0.0f, std::numeric_limits<float>::infinity(),
                              -std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN()};
    auto random_array = [&](std::size_t n, int distinct, bool special) {
        std::vector<float> v(n);
        std::vector<float> pool;
        for (int i = 0; i < distinct; ++i) pool.push_back(static_cast<float>(static_cast<int>(rng() % 41) - 10) * 0.5f);
        for (auto& x : v) {
            x = pool[rng() % pool.size()];
            if (special && rng() % 10 == 0) x = specials[rng() % 5];
        }
        return v;
    };
    for (std::size_t n = 0; n <= 70; ++n) arrays.push_back(random_array(n, 1 + static_cast<int>(rng() % 6), n % 3 == 0));
    for (int i = 0; i < 300; ++i) {
        const std::size_t n = 1 + rng() % 2000;
        arrays.push_back(random_array(n, 1 + static_cast<int>(rng() % (i % 4 == 0 ? 200 : 8)), i % 5 == 0));
    }
    // sorted, reversed, organ-pipe inputs
    for (std::size_t n : {17u, 100u, 1000u, 1999u}) {
        std::vector<float> up(n), down(n), pipe(n);
        for (std::size_t i = 0; i < n; ++i) {
            up[i] = static_cast<float>(i % 7 == 0 ? i - 1 : i);
            down[i] = static_cast<float>(n - i);
            pipe[i] = static_cast<float>(std::min(i, n - i));
        }
        arrays.push_back(up);
        arrays.push_back(down);
        arrays.push_back(pipe);
    }
    // adversarial inputs that drive the introsort into its heapsort fallback
    std::vector<std::size_t> adversarial;
    for (std::int32_t n : {64, 500, 2000}) {
        adversary adv(n);
        std::vector<std::int32_t> ids(static_cast<std::size_t>(n)), index(static_cast<std::size_t>(n));
        for (std::int32_t i = 0; i < n; ++i) ids[i] = i;
        handgraph::detail::numpy_argsort(ids.data(), index.data(), n, std::ref(adv));
        std::vector<float> v(adv.value.begin(), adv.value.end());
        int heapsorts = 0;
        handgraph::detail::numpy_argsort(v.data(), index.data(), n, handgraph::detail::numpy_float_less{}, &heapsorts);
        CHECK_MESSAGE(heapsorts > 0, "adversarial input of size " << n << " did not reach the heapsort fallback");
        adversarial.push_back(arrays.size());
        arrays.push_back(v);
    }

    scratch_dir dir("argsort");
    {
        std::ofstream out(dir.path / "in.bin", std::ios::binary);
        auto put32 = [&](std::uint32_t x) { out.write(reinterpret_cast<const char*>(&x), 4); };
        put32(static_cast<std::uint32_t>(arrays.size()));
        for (const auto& a : arrays) {
            put32(static_cast<std::uint32_t>(a.size()));
            out.write(reinterpret_cast<const char*>(a.data()), static_cast<std::streamsize>(a.size() * 4));
        }
    }
    const fs::path script = source_dir() / "tests/reference/numpy_argsort.py";
    const int rc = run(python() + " " + quoted(script) + " " + quoted(dir.path / "in.bin") + " " + quoted(dir.path / "out.bin"));
    HANDGRAPH_SKIP_IF(rc == 77, "numpy newer than 1.24 (its argsort is not the release's)");
    REQUIRE_MESSAGE(rc == 0, "running " << script << " with " << python() << " failed");
    const std::string raw = read_file(dir.path / "out.bin");
    std::size_t pos = 0, mismatches = 0;
    for (std::size_t a = 0; a < arrays.size(); ++a) {
        const std::vector<std::int32_t> mine = handgraph::detail::numpy_argsort(arrays[a]);
        REQUIRE(pos + mine.size() * 8 <= raw.size());
        std::vector<std::int64_t> theirs(mine.size());
        if (!mine.empty()) std::memcpy(theirs.data(), raw.data() + pos, mine.size() * 8);  // data() may be null when empty
        pos += mine.size() * 8;
        bool same = true;
        for (std::size_t i = 0; i < mine.size(); ++i) same = same && mine[i] == theirs[i];
        if (!same) ++mismatches;
        CHECK_MESSAGE(same, "array " << a << " (size " << arrays[a].size() << ") sorts differently from numpy");
    }
    CHECK(pos == raw.size());
    CHECK(mismatches == 0);
    MESSAGE(arrays.size() << " arrays compared with numpy.argsort, " << adversarial.size() << " of them adversarial");
}

TEST_CASE("numpy_argsort sorts (ascending, NaN last)") {
    std::vector<float> v = {3, 1, std::numeric_limits<float>::quiet_NaN(), 2, 1, -5};
    const auto idx = handgraph::detail::numpy_argsort(v);
    REQUIRE(idx.size() == v.size());
    CHECK(v[idx[0]] == -5);
    CHECK(v[idx[4]] == 3);
    CHECK(idx[5] == 2);
}

// ---------------------------------------------------------------------------------------
// (b) the release's graph

namespace {

const fs::path release_obj() { return shared_data() / "0214_lowP_vn_g.0001.obj"; }

void check_same_graph(const handgraph::hand_graph& a, const handgraph::hand_graph& b) {
    CHECK(a.num_vertices == b.num_vertices);
    CHECK(a.faces == b.faces);
    CHECK(a.perm == b.perm);
    CHECK(a.perm_reverse == b.perm_reverse);
    CHECK(a.mask == b.mask);
    CHECK(a.lmax == b.lmax);
    CHECK(a.real_sizes == b.real_sizes);
    REQUIRE(a.laplacians.size() == b.laplacians.size());
    for (std::size_t l = 0; l < a.laplacians.size(); ++l) {
        CHECK(a.laplacians[l].size == b.laplacians[l].size);
        CHECK(a.laplacians[l].row_ptr == b.laplacians[l].row_ptr);
        CHECK(a.laplacians[l].col == b.laplacians[l].col);
        CHECK(std::memcmp(a.laplacians[l].values.data(), b.laplacians[l].values.data(),
                          a.laplacians[l].values.size() * sizeof(float)) == 0);
    }
}

}  // namespace

TEST_CASE("the release template's hand graph: the spec's checked values") {
    HANDGRAPH_SKIP_IF(!have_shared_data(), "release template not found under " << shared_data());
    const handgraph::template_mesh mesh = handgraph::read_obj(release_obj());
    CHECK(mesh.num_vertices() == 1010);
    CHECK(mesh.num_faces() == 2004);
    const handgraph::hand_graph g = handgraph::build_hand_graph(mesh);
    CHECK(g.num_vertices == 954);
    CHECK(g.num_faces() == 1892);
    REQUIRE(g.perm.size() == 1280);
    const std::vector<std::int32_t> head = {457, 458, 439, 451, 437, 438, 954, 955, 455, 456,
                                            449, 450, 956, 957, 958, 959, 459, 462, 460, 960};
    CHECK(std::vector<std::int32_t>(g.perm.begin(), g.perm.begin() + 20) == head);
    CHECK(sha256_hex(int64_le_bytes(g.perm)).substr(0, 16) == "c688e1da2aa15e61");
    const std::array<std::int32_t, 5> sizes = {1280, 640, 320, 160, 80};
    const std::array<std::size_t, 5> nnz = {6970, 3662, 1916, 998, 534};
    REQUIRE(g.laplacians.size() == 5);
    for (std::size_t l = 0; l < 5; ++l) {
        CHECK(g.laplacians[l].size == sizes[l]);
        CHECK(g.laplacians[l].nnz() == nnz[l]);
    }
    CHECK(g.lmax.size() == 4);
    std::size_t real = 0;
    for (std::size_t p = 0; p < g.perm.size(); ++p) {
        CHECK(g.mask[p] == (g.perm[p] < 954 ? 1 : 0));
        real += g.mask[p];
    }
    CHECK(real == 954);
    for (std::int32_t v = 0; v < g.num_vertices; ++v) CHECK(g.perm[g.perm_reverse[v]] == v);
}

namespace {

// Runs tests/reference/hand_graph.py on `obj` and compares everything with `g`:
// integers exactly, Laplacian values within 1e-6, lmax within 1e-6 relative.
void check_against_reference(const handgraph::hand_graph& g, const fs::path& obj, bool release) {
    scratch_dir dir("graph_reference");
    const fs::path dump = dir.path / "graph.safetensors";
    const fs::path script = source_dir() / "tests/reference/hand_graph.py";
    REQUIRE_MESSAGE(run(python() + " " + quoted(script) + (release ? " --check" : "") + " --obj " + quoted(obj) +
                        " --out " + quoted(dump)) == 0,
                    "the Python reference failed" << (release ? " (or missed the spec's checked values)" : ""));
    const std::string file = read_file(dump);

    const auto perm = st_get(file, "perm").as<std::int64_t>();
    REQUIRE(perm.size() == g.perm.size());
    for (std::size_t i = 0; i < perm.size(); ++i) CHECK(perm[i] == g.perm[i]);
    const auto perm_reverse = st_get(file, "perm_reverse").as<std::int64_t>();
    REQUIRE(perm_reverse.size() == g.perm_reverse.size());
    for (std::size_t i = 0; i < perm_reverse.size(); ++i) CHECK(perm_reverse[i] == g.perm_reverse[i]);
    const auto mask = st_get(file, "mask").as<std::uint8_t>();
    CHECK(mask == g.mask);
    const auto faces = st_get(file, "faces").as<std::int32_t>();
    CHECK(faces == g.faces);
    const auto lmax = st_get(file, "lmax").as<double>();
    REQUIRE(lmax.size() == g.lmax.size());
    for (std::size_t l = 0; l < lmax.size(); ++l) {
        CHECK(std::abs(g.lmax[l] - lmax[l]) <= 1e-6 * lmax[l]);
        MESSAGE("level " << l << ": lmax " << g.lmax[l] << " (scipy eigsh " << lmax[l] << ", relative difference "
                         << std::abs(g.lmax[l] - lmax[l]) / lmax[l] << ")");
    }
    REQUIRE(g.laplacians.size() == 5);
    for (std::size_t l = 0; l < 5; ++l) {
        const std::string key = "laplacian." + std::to_string(l);
        const auto row_ptr = st_get(file, key + ".row_ptr").as<std::int64_t>();
        const auto col = st_get(file, key + ".col").as<std::int64_t>();
        const auto values = st_get(file, key + ".values").as<float>();
        const handgraph::sparse_matrix& m = g.laplacians[l];
        REQUIRE(row_ptr.size() == m.row_ptr.size());
        REQUIRE(col.size() == m.col.size());
        bool same_structure = true;
        for (std::size_t i = 0; i < row_ptr.size(); ++i) same_structure = same_structure && row_ptr[i] == m.row_ptr[i];
        for (std::size_t i = 0; i < col.size(); ++i) same_structure = same_structure && col[i] == m.col[i];
        CHECK_MESSAGE(same_structure, "level " << l << ": sparsity pattern differs from the reference");
        double worst = 0.0;
        for (std::size_t i = 0; i < values.size(); ++i) worst = std::max(worst, static_cast<double>(std::abs(values[i] - m.values[i])));
        CHECK_MESSAGE(worst <= 1e-6, "level " << l << ": largest difference " << worst);
    }
}

}  // namespace

TEST_CASE("the release template's hand graph equals tests/reference/hand_graph.py") {
    HANDGRAPH_SKIP_IF(!have_shared_data(), "release template not found under " << shared_data());
    check_against_reference(handgraph::build_hand_graph(handgraph::read_obj(release_obj())), release_obj(), true);
}

TEST_CASE("the hand graph from the weight file's template arrays equals the one from the OBJ") {
    HANDGRAPH_SKIP_IF(!have_shared_data(), "release template not found under " << shared_data());
    const handgraph::template_mesh obj = handgraph::read_obj(release_obj());
    const handgraph::template_mesh arrays = handgraph::make_template_mesh(obj.vertices, obj.faces, "weights: template.*");
    check_same_graph(handgraph::build_hand_graph(obj), handgraph::build_hand_graph(arrays));
}

// ---------------------------------------------------------------------------------------
// (c) the OBJ reader

namespace {

std::string obj_error(const std::string& text, const std::string& source = "mesh.obj") {
    try {
        handgraph::parse_obj(text, source);
    } catch (const handgraph::error& e) {
        return e.what();
    }
    return "";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("parse_obj reads vertices and the first index of each face token") {
    const std::string text =
        "# comment\r\n"
        "mtllib x.mtl\n"
        "v 1 2 3\n"
        "v -1.5e0 +2.25 0.1\n"
        "vn 0 0 1\n"
        "vt 0.5 0.5\n"
        "v 7 8 9 1.0\n"
        "\n"
        "g hand\n"
        "s 1\n"
        "f 1/1/1 2/2/2 3/3/3\r\n"
        "f 3//1 2 -3\n"
        "v 4 5 6\n"
        "f\t-1/7\t1/7/7\t3\n";
    const handgraph::template_mesh m = handgraph::parse_obj(text, "t.obj");
    REQUIRE(m.num_vertices() == 4);
    CHECK(m.vertices[3] == -1.5f);
    CHECK(m.vertices[4] == 2.25f);
    CHECK(m.vertices[5] == 0.1f);  // parsed as double, rounded to float like numpy
    CHECK(m.vertices[9] == 4.0f);
    CHECK(m.faces == std::vector<std::int32_t>{0, 1, 2, 2, 1, 0, 3, 0, 2});
}

TEST_CASE("parse_obj refuses malformed input, naming the source and line") {
    const std::string ok = "v 0 0 0\nv 1 0 0\nv 0 1 0\n";
    CHECK(contains(obj_error(ok + "v 1 2\n"), "mesh.obj:4: vertex needs 3 coordinates"));
    CHECK(contains(obj_error(ok + "v 1 x 3\n"), "mesh.obj:4: vertex coordinate 'x' is not a number"));
    CHECK(contains(obj_error(ok + "v 1 2 3 4 5 6 7 8\n"), "mesh.obj:4:"));
    CHECK(contains(obj_error(ok + "v 1 nan 3\n"), "mesh.obj:4: vertex coordinate 'nan' is not a finite float"));
    CHECK(contains(obj_error(ok + "v 1 1e39 3\n"), "mesh.obj:4:"));
    CHECK(contains(obj_error(ok + "v 1 2 3garbage\n"), "mesh.obj:4:"));
    CHECK(contains(obj_error(ok + "f 1 2 3 1\n"), "mesh.obj:4: face with 4 vertices: only triangles"));
    CHECK(contains(obj_error(ok + "f 1 2\n"), "mesh.obj:4: face with 2 vertices"));
    CHECK(contains(obj_error(ok + "f 1 2 0\n"), "mesh.obj:4: face vertex index 0"));
    CHECK(contains(obj_error(ok + "f 1 2 -4\n"), "mesh.obj:4: face vertex index -4 refers before the first vertex"));
    CHECK(contains(obj_error(ok + "f 1 2 x/1/1\n"), "mesh.obj:4: face vertex 'x/1/1' does not start with an integer"));
    CHECK(contains(obj_error(ok + "f 1 2 /1/1\n"), "mesh.obj:4:"));
    CHECK(contains(obj_error(ok + "f 1 2 3/a/1\n"), "mesh.obj:4: face vertex '3/a/1' is malformed"));
    CHECK(contains(obj_error(ok + "f 1 2 3/1/1/1\n"), "mesh.obj:4:"));
    CHECK(contains(obj_error(ok + "f 1 2 99999999999999999999\n"), "mesh.obj:4:"));
    CHECK(contains(obj_error(ok + "f 1 2 3000000000\n"), "mesh.obj:4:"));
    // out of range after the whole file is read: the face's own line is named
    CHECK(contains(obj_error(ok + "f 1 2 4\n# end\n"), "mesh.obj:4: face vertex index 4 is out of range: the file has 3 vertices"));
    CHECK(contains(obj_error(ok + std::string("v 1 \0 2\n", 8)), "mesh.obj:4: binary data"));
    CHECK(contains(obj_error(""), "mesh.obj: no vertices"));
    CHECK(contains(obj_error(ok), "mesh.obj: no faces"));
    CHECK(contains(obj_error("hello\nworld\n"), "mesh.obj: no vertices"));
    // garbage never crashes
    std::mt19937 rng(7);
    for (int i = 0; i < 2000; ++i) {
        std::string junk = ok;
        const std::size_t n = rng() % 64;
        const char alphabet[] = "vf /-+0123456789.eE#\n\t\r\x01x";
        for (std::size_t k = 0; k < n; ++k) junk += alphabet[rng() % (sizeof alphabet - 1)];
        try {
            handgraph::parse_obj(junk, "junk.obj");
        } catch (const handgraph::error& e) {
            CHECK(contains(e.what(), "junk.obj"));
        }
    }
}

TEST_CASE("read_obj names the file in its errors") {
    scratch_dir dir("obj");
    const fs::path missing = dir.path / "missing.obj";
    try {
        handgraph::read_obj(missing);
        FAIL("no error for a missing file");
    } catch (const handgraph::error& e) {
        CHECK(contains(e.what(), missing.string()));
        CHECK(contains(e.what(), "cannot open"));
    }
    const fs::path bad = dir.path / "bad.obj";
    write_file(bad, "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\nf 1 2 7\n");
    try {
        handgraph::read_obj(bad);
        FAIL("no error for a bad index");
    } catch (const handgraph::error& e) {
        CHECK(contains(e.what(), bad.string() + ":5: face vertex index 7 is out of range"));
    }
    try {
        handgraph::read_obj(dir.path);
        FAIL("no error for a directory");
    } catch (const handgraph::error& e) {
        CHECK(contains(e.what(), dir.path.string()));
    }
}

TEST_CASE("make_template_mesh and build_hand_graph refuse unusable data") {
    CHECK_THROWS_WITH_AS(handgraph::make_template_mesh({0, 0}, {0, 0, 0}, "w.safetensors: template.*"),
                         doctest::Contains("w.safetensors: template.*: vertices"), handgraph::error);
    CHECK_THROWS_WITH_AS(handgraph::make_template_mesh({0, 0, 0}, {0, 0}, "src"), doctest::Contains("src: faces"), handgraph::error);
    CHECK_THROWS_WITH_AS(handgraph::make_template_mesh({0, 0, 0}, {0, 0, 1}, "src"),
                         doctest::Contains("src: face 0 has vertex index 1, outside [0, 1)"), handgraph::error);
    CHECK_THROWS_WITH_AS(handgraph::make_template_mesh({0, 0, std::numeric_limits<float>::infinity()}, {0, 0, 0}, "src"),
                         doctest::Contains("non-finite"), handgraph::error);
    handgraph::template_mesh small;
    small.vertices.assign(30, 0.0f);
    small.faces = {0, 1, 2};
    CHECK_THROWS_WITH_AS(handgraph::build_hand_graph(small), doctest::Contains("10 vertices"), handgraph::error);
    handgraph::template_mesh bad;
    bad.vertices.assign(3 * 600, 0.0f);
    bad.faces = {0, 1, 600};
    CHECK_THROWS_WITH_AS(handgraph::build_hand_graph(bad), doctest::Contains("face 0 has vertex index 600"), handgraph::error);
}

// ---------------------------------------------------------------------------------------
// (d) determinism

TEST_CASE("building the hand graph is deterministic") {
    const handgraph::template_mesh synthetic = handgraph::synthetic_template();
    check_same_graph(handgraph::build_hand_graph(synthetic), handgraph::build_hand_graph(synthetic));
    HANDGRAPH_SKIP_IF(!have_shared_data(), "release template not found under " << shared_data());
    const handgraph::template_mesh mesh = handgraph::read_obj(release_obj());
    const handgraph::hand_graph a = handgraph::build_hand_graph(mesh);
    const handgraph::hand_graph b = handgraph::build_hand_graph(mesh);
    check_same_graph(a, b);
}

// ---------------------------------------------------------------------------------------
// the synthetic template (runs without the release's data)

TEST_CASE("synthetic_template is its Python twin and coarsens like the release's") {
    const handgraph::template_mesh mesh = handgraph::synthetic_template();
    CHECK(mesh.num_vertices() == 1010);
    scratch_dir dir("synthetic");
    const fs::path obj = dir.path / "synthetic.obj";
    const fs::path script = source_dir() / "tests/reference/synthetic_template.py";
    REQUIRE(run(python() + " " + quoted(script) + " --out " + quoted(obj)) == 0);
    const handgraph::template_mesh twin = handgraph::read_obj(obj);
    CHECK(twin.vertices == mesh.vertices);
    CHECK(twin.faces == mesh.faces);

    const handgraph::hand_graph g = handgraph::build_hand_graph(mesh);
    CHECK(g.num_vertices == 954);
    const std::array<std::int32_t, 5> sizes = {1280, 640, 320, 160, 80};
    REQUIRE(g.laplacians.size() == 5);
    for (std::size_t l = 0; l < 5; ++l) CHECK(g.laplacians[l].size == sizes[l]);
    CHECK(g.real_sizes.back() == 80);
    for (std::int32_t v = 0; v < g.num_vertices; ++v) CHECK(g.perm[g.perm_reverse[v]] == v);
    // faces index the 954 hand vertices
    for (std::int32_t i : g.faces) CHECK((i >= 0 && i < 954));
    check_against_reference(g, obj, false);
    // another seed is another mesh
    CHECK(handgraph::synthetic_template(handgraph::synthetic_template_seed + 1).faces != mesh.faces);
}
