// MAT v5 reader and writer (include/handgraph/mat.hpp), checked against scipy.io.
#include <doctest/doctest.h>

#include <handgraph/mat.hpp>

#include <cmath>
#include <cstring>
#include <random>

#include "test_eval_support.hpp"

using namespace handgraph;
using namespace handgraph_test;

namespace {

// Compares what we read with what scipy read (an eval_mat_dump.py file).
void check_against_dump(const mat_file& f, const std::vector<dumped_var>& ref) {
    REQUIRE(f.variables.size() == ref.size());
    for (std::size_t i = 0; i < ref.size(); ++i) {
        const auto& r = ref[i];
        const auto& a = f.variables[i];
        INFO("file " << f.path << ", variable " << r.name);
        CHECK(a.name() == r.name);
        if (r.unsupported) {
            CHECK_FALSE(a.is_supported());
            CHECK_THROWS_AS(a.as_double(), handgraph::error);
            continue;
        }
        REQUIRE(a.is_supported());
        CHECK(std::string(a.class_name()) == r.cls);
        if (r.cls == "cell") {
            CHECK(a.dims() == r.dims);
            CHECK(a.strings() == r.strings);
        } else if (r.cls == "char") {
            // scipy drops nothing with chars_as_strings=False: dims are MATLAB's.
            CHECK(a.dims() == r.dims);
            CHECK(a.strings() == r.strings);
        } else {
            CHECK(a.dims() == r.dims);
            auto v = a.as_double_row_major();
            REQUIRE(v.size() == r.numbers.size());
            std::size_t bad = 0;
            for (std::size_t k = 0; k < v.size(); ++k)
                if (!(v[k] == r.numbers[k] || (std::isnan(v[k]) && std::isnan(r.numbers[k])))) ++bad;
            if (a.class_id() == mat_class::int64 || a.class_id() == mat_class::uint64) {
                // exact 64-bit integers: column index of each C-order position
                std::vector<double> iota(v.size());
                for (std::size_t k = 0; k < iota.size(); ++k) iota[k] = double(k);
                auto order = mat_array::numeric<double>("i", a.dims(), iota).as_double_row_major();
                for (std::size_t k = 0; k < v.size(); ++k) {
                    auto c = std::size_t(order[k]);
                    std::string mine = a.class_id() == mat_class::int64 ? std::to_string(a.values<std::int64_t>()[c])
                                                                        : std::to_string(a.values<std::uint64_t>()[c]);
                    if (mine != r.numbers_text[k]) ++bad;
                }
            }
            CHECK(bad == 0);
        }
    }
}

mat_file read_and_check(const std::string& path, scratch_dir& tmp) {
    mat_file f = read_mat(path);
    std::string dump = tmp / (std::filesystem::path(path).filename().string() + ".txt");
    REQUIRE(run_reference("eval_mat_dump.py", {path, dump}));
    check_against_dump(f, read_dump(dump));
    return f;
}

// Every parse of `bytes` must either succeed or throw handgraph::error naming `origin`.
int parse_or_throw(const std::vector<unsigned char>& bytes, const std::string& origin, const mat_read_options& opt = {}) {
    try {
        mat_file f = parse_mat(bytes.data(), bytes.size(), origin, opt);
        // touch everything that parsed
        for (const auto& v : f.variables) {
            if (v.is_numeric()) (void)v.as_double_row_major();
            if (v.is_char()) (void)v.strings();
        }
        return 0;
    } catch (const handgraph::error& e) {
        CHECK(std::string(e.what()).find(origin) != std::string::npos);
        return 1;
    }
}

}  // namespace

TEST_CASE("mat: the release's MAT files read as scipy reads them") {
    HANDGRAPH_SKIP_IF(!have_shared_data(), "the release's data is absent (HANDGRAPH_SHARED_DATA=" << shared_data() << ")");
    HANDGRAPH_SKIP_IF(!have_reference_python(), "no Python with numpy, scipy and cv2 (HANDGRAPH_PYTHON)");
    scratch_dir tmp("mat_release");
    int files = 0;
    for (const auto& e : std::filesystem::recursive_directory_iterator(shared_data())) {
        if (e.path().extension() != ".mat") continue;
        ++files;
        read_and_check(e.path().string(), tmp);
    }
    CHECK(files >= 3);

    // What the loaders rely on.
    auto params = read_mat(shared_data() / "real_world_testset" / "params.mat");
    const auto& scale = params.get("pose_scale");
    CHECK(scale.class_id() == mat_class::float64);  // a double array stored as miUINT8
    CHECK(scale.dims() == std::vector<std::size_t>{1, 583});
    CHECK(scale.at(0, 582) == 5.0);
    const auto& paths = params.get("image_path");
    CHECK(paths.class_id() == mat_class::character);  // a 583x16 char matrix, not a cell
    auto names = paths.strings();
    REQUIRE(names.size() == 583);
    CHECK(names[0] == "images/00000.jpg");
    CHECK(names[582] == "images/00582.jpg");
    CHECK(params.get("bbox").class_id() == mat_class::int32);
    auto gt = read_mat(shared_data() / "real_world_testset" / "pose_gt.mat").get("pose_gt");
    CHECK(gt.class_id() == mat_class::float32);
    gt.require_dims({583, 21, 3});
    auto rm = gt.as_float_row_major();
    CHECK(rm[(5 * 21 + 7) * 3 + 2] == gt.values<float>()[gt.index(5, 7, 2)]);
    auto boxes = read_mat(shared_data() / "STB_eval_bboxes.mat").get("bboxes");
    CHECK(boxes.class_id() == mat_class::float32);
    CHECK(boxes.dims() == std::vector<std::size_t>{3000, 4});
    CHECK_THROWS_WITH_AS(params.get("nope"), doctest::Contains("params.mat"), handgraph::error);
    CHECK_THROWS_WITH_AS(gt.values<double>(), doctest::Contains("pose_gt"), handgraph::error);
    CHECK_THROWS_AS(gt.at(583, 0, 0), handgraph::error);
}

TEST_CASE("mat: MATLAB-style compressed, big-endian and scipy-written files") {
    HANDGRAPH_SKIP_IF(!have_reference_python(), "no Python with numpy, scipy and cv2 (HANDGRAPH_PYTHON)");
    scratch_dir tmp("mat_synthetic");
    REQUIRE(run_reference("eval_mat_make.py", {tmp.path.string()}));
    auto compressed = read_and_check(tmp / "matlab_compressed.mat", tmp);
    auto big = read_and_check(tmp / "matlab_bigendian.mat", tmp);
    read_and_check(tmp / "scipy_plain.mat", tmp);
    CHECK(big.big_endian);
    CHECK_FALSE(compressed.big_endian);

    for (const mat_file* f : {&compressed, &big}) {
        CHECK(f->get("dbl_u8").class_id() == mat_class::float64);
        CHECK(f->get("dbl_u8").at(1, 2) == 255.0);
        CHECK(f->get("dbl_i16").at(0, 0) == -300.0);
        CHECK(f->get("i32_i16").values<std::int32_t>()[3] == -32768);
        CHECK(f->get("s1").at(0) == 5.0);
        CHECK(f->get("lg").is_logical());
        CHECK(f->get("wide").strings()[0] == "h\xc3\xa9llo \xe2\x86\x92");
        CHECK(f->get("cel").strings() == std::vector<std::string>{"ab", "", "xyz"});
        CHECK(f->get("st").unsupported_reason().find("struct") != std::string::npos);
        CHECK_THROWS_WITH_AS(f->get("st").strings(), doctest::Contains("variable 'st'"), handgraph::error);
        CHECK(f->get("empty_dbl").dims() == std::vector<std::size_t>{0, 3});
        CHECK(f->get("pose").dims() == std::vector<std::size_t>{3, 21, 4});
    }
    // The two files hold the same values.
    for (const auto& v : compressed.variables) {
        if (v.is_numeric()) CHECK(v.as_double() == big.get(v.name()).as_double());
        if (v.is_char()) CHECK(v.chars() == big.get(v.name()).chars());
    }
}

TEST_CASE("mat: column-major indexing and the row-major helper") {
    // 2x3x2 array, column-major values 0..11: element (i,j,k) = i + 2j + 6k.
    std::vector<double> col(12);
    for (int i = 0; i < 12; ++i) col[i] = i;
    auto a = mat_array::numeric<double>("a", {2, 3, 2}, col);
    CHECK(a.index(1, 2, 1) == 1 + 2 * 2 + 6 * 1);
    CHECK(a.at(1, 0, 1) == 7.0);
    auto rm = a.as_double_row_major();  // numpy order: [i][j][k]
    for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 3; ++j)
            for (int k = 0; k < 2; ++k) CHECK(rm[(i * 3 + j) * 2 + k] == i + 2 * j + 6 * k);
    auto b = mat_array::from_row_major<double>("b", {2, 3, 2}, rm);
    CHECK(b.as_double() == col);
    CHECK_THROWS_AS(a.index(2, 0, 0), handgraph::error);
    CHECK_THROWS_AS(a.index(0, 3, 0), handgraph::error);
    CHECK_THROWS_AS(a.index(0, 0, 2), handgraph::error);
    CHECK_THROWS_AS(mat_array::numeric<double>("c", {2, 2}, {1.0, 2.0, 3.0}), handgraph::error);
    CHECK(mat_array::numeric<float>("v", {3}, {1, 2, 3}).dims() == std::vector<std::size_t>{1, 3});
}

TEST_CASE("mat: writer round trip through scipy.io.loadmat and savemat") {
    HANDGRAPH_SKIP_IF(!have_reference_python(), "no Python with numpy, scipy and cv2 (HANDGRAPH_PYTHON)");
    scratch_dir tmp("mat_writer");
    std::mt19937 rng(11);
    std::normal_distribution<double> nd(0, 10);
    std::vector<double> pose(7 * 21 * 3);
    for (auto& x : pose) x = nd(rng);
    std::vector<float> posef(pose.begin(), pose.end());
    std::vector<mat_array> vars;
    vars.push_back(mat_array::from_row_major<double>("est_pose_xyz", {7, 21, 3}, pose));
    vars.push_back(mat_array::from_row_major<float>("gt_pose_xyz", {7, 21, 3}, posef));
    vars.push_back(mat_array::numeric<std::int32_t>("image_ids", {1, 4}, {0, -5, 2147483647, -2147483647 - 1}));
    vars.push_back(mat_array::numeric<std::uint8_t>("u8", {2, 2}, {0, 1, 254, 255}));
    vars.push_back(mat_array::numeric<double>("scalar", {1, 1}, {3.25}));
    vars.push_back(mat_array::numeric<double>("empty", {0, 0}, {}));
    vars.push_back(mat_array::char_rows("names", {"images/00000.jpg", "b", "h\xc3\xa9llo"}));
    vars.push_back(mat_array::text("one", "B1Counting/SK_color_0.png"));
    vars.push_back(mat_array::cell_of_strings("ids", {"a", "", "B1Random/SK_color_1499"}));
    std::string path = tmp / "out.mat";
    write_mat(path, vars);
    // No temporary files left beside it.
    int files = 0;
    for (const auto& e : std::filesystem::directory_iterator(tmp.path)) (void)e, ++files;
    CHECK(files == 1);

    // scipy reads what we wrote ...
    std::string dump = tmp / "out.txt", resaved = tmp / "resaved.mat";
    REQUIRE(run_reference("eval_mat_dump.py", {path, dump, "--resave", resaved}));
    auto ref = read_dump(dump);
    mat_file ours = read_mat(path);
    check_against_dump(ours, ref);
    CHECK(ref[6].strings == std::vector<std::string>{"images/00000.jpg", "b               ", "h\xc3\xa9llo           "});
    CHECK(ref[8].strings == std::vector<std::string>{"a", "", "B1Random/SK_color_1499"});
    // ... and what scipy writes back holds the same values.
    mat_file back = read_mat(resaved);
    for (const auto& v : vars) {
        INFO(v.name());
        const auto& w = back.get(v.name());
        if (v.is_numeric()) {
            CHECK(w.class_id() == v.class_id());
            CHECK(w.dims() == v.dims());
            CHECK(w.as_double() == v.as_double());
        } else if (v.name() == "names" || v.name() == "one") {
            CHECK(w.strings() == v.strings());
        } else if (v.name() == "ids") {
            CHECK(w.strings() == v.strings());
        }
    }
    CHECK(ours.get("est_pose_xyz").as_double_row_major() == pose);
    CHECK(ours.get("gt_pose_xyz").as_float_row_major() == posef);

    // Errors name the file; nothing is left behind.
    CHECK_THROWS_WITH_AS(write_mat(tmp.path / "missing" / "x.mat", vars), doctest::Contains("missing"), handgraph::error);
    CHECK_THROWS_AS(write_mat(tmp / "bad.mat", {mat_array::numeric<double>("1x", {1, 1}, {1.0})}), handgraph::error);
    CHECK_THROWS_AS(write_mat(tmp / "dup.mat", {vars[4], vars[4]}), handgraph::error);
    CHECK_FALSE(std::filesystem::exists(tmp / "bad.mat"));
    // Overwriting an existing file replaces it.
    write_mat(path, {vars[4]});
    CHECK(read_mat(path).variables.size() == 1);
}

TEST_CASE("mat: damaged files throw handgraph::error, never crash") {
    std::vector<std::pair<std::string, std::vector<unsigned char>>> seeds;
    std::vector<mat_array> vars;
    vars.push_back(mat_array::numeric<double>("d", {2, 3}, {1, 2, 3, 4, 5, 6}));
    vars.push_back(mat_array::numeric<std::uint8_t>("u", {1, 3}, {1, 2, 3}));
    vars.push_back(mat_array::char_rows("c", {"ab", "cd"}));
    vars.push_back(mat_array::cell_of_strings("k", {"x", "yz"}));
    std::string plain = serialize_mat(vars);
    seeds.push_back({"written.mat", std::vector<unsigned char>(plain.begin(), plain.end())});
    scratch_dir tmp("mat_damaged");
    if (have_reference_python() && run_reference("eval_mat_make.py", {tmp.path.string()})) {
        for (const char* n : {"matlab_compressed.mat", "matlab_bigendian.mat", "scipy_plain.mat"})
            seeds.push_back({n, file_bytes(tmp / n)});
    } else {
        MESSAGE("no reference Python: fuzzing only the file we write");
    }
    if (have_shared_data()) seeds.push_back({"params.mat", file_bytes((shared_data() / "real_world_testset" / "params.mat").string())});

    std::mt19937 rng(1234);
    for (const auto& [name, bytes] : seeds) {
        INFO(name);
        REQUIRE(parse_or_throw(bytes, name) == 0);
        // every truncation
        int thrown = 0;
        for (std::size_t n = 0; n < bytes.size(); n += (bytes.size() > 4000 ? 7 : 1))
            thrown += parse_or_throw(std::vector<unsigned char>(bytes.begin(), bytes.begin() + n), name + "(truncated)");
        CHECK(thrown > 0);
        // random corruption of 1 to 8 bytes
        for (int it = 0; it < 3000; ++it) {
            auto b = bytes;
            int k = 1 + int(rng() % 8);
            for (int j = 0; j < k; ++j) b[128 + rng() % (b.size() - 128)] = static_cast<unsigned char>(rng());
            parse_or_throw(b, name + "(corrupt)");
        }
    }

    // Crafted damage on a one-variable file: d = 2x3 double.
    std::string one = serialize_mat({vars[0]});
    auto craft = [&](std::size_t at, std::uint32_t value) {
        std::vector<unsigned char> b(one.begin(), one.end());
        std::memcpy(&b[at], &value, 4);
        return b;
    };
    // layout: 128 header, 136 flags tag, 144 flags, 152 dims tag, 160 dims, 168 name (small), 176 data tag
    CHECK(parse_or_throw(craft(132, 0xFFFFFFF0u), "craft") == 1);           // matrix larger than the file
    CHECK(parse_or_throw(craft(160, 0x7FFFFFFFu), "craft") == 1);           // huge dims, little data
    CHECK(parse_or_throw(craft(164, 0x7FFFFFFFu), "craft") == 1);
    CHECK(parse_or_throw(craft(160, 0xFFFFFFFFu), "craft") == 1);           // negative dim
    CHECK(parse_or_throw(craft(156, 0x40000000u), "craft") == 1);           // dims element past the end
    CHECK(parse_or_throw(craft(144, 0x63u), "craft") == 1);                 // invalid class
    CHECK(parse_or_throw(craft(136, 9u), "craft") == 1);                    // flags not miUINT32
    CHECK(parse_or_throw(craft(176, 0x00080009u), "craft") == 1);           // small element of 8 bytes
    CHECK(parse_or_throw(craft(176, 99u), "craft") == 1);                   // unknown storage type
    CHECK(parse_or_throw(craft(128, 3u), "craft") == 1);                    // top-level non-matrix
    CHECK(parse_or_throw(craft(124, 0x0200u | ('I' << 16) | ('M' << 24)), "craft") == 1);  // v7.3
    {
        auto b = craft(0, 0);
        b[126] = 'X';
        CHECK_THROWS_WITH_AS(parse_mat(b.data(), b.size(), "v4.mat"), doctest::Contains("not a MAT v5"), handgraph::error);
    }
    // double class stored as double but with a fractional value into an int32 class
    {
        auto b = craft(144, 12u);  // class int32, data still miDOUBLE 1..6: exact ints, accepted
        CHECK(parse_or_throw(b, "craft") == 0);
        std::vector<unsigned char> c(b);
        double half = 0.5;
        std::memcpy(&c[184], &half, 8);
        CHECK(parse_or_throw(c, "craft") == 1);
        double huge = 1e300;
        std::memcpy(&c[184], &huge, 8);
        CHECK(parse_or_throw(c, "craft") == 1);
        double nan = std::nan("");
        std::memcpy(&c[184], &nan, 8);
        CHECK(parse_or_throw(c, "craft") == 1);
    }
    // empty arrays with huge other dims: nothing is allocated for them
    {
        std::string e = serialize_mat({mat_array::char_rows("c", {})});
        std::vector<unsigned char> b(e.begin(), e.end());
        std::uint32_t big = 0x7FFFFFFF;
        std::memcpy(&b[164], &big, 4);
        auto f = parse_mat(b.data(), b.size(), "empty.mat");
        CHECK(f.get("c").dims() == std::vector<std::size_t>{0, 0x7FFFFFFF});
        CHECK(f.get("c").strings().empty());
        std::memcpy(&b[160], &big, 4);  // now 2^31-1 x 2^31-1 chars in 0 bytes
        CHECK_THROWS_AS(parse_mat(b.data(), b.size(), "empty.mat"), handgraph::error);
    }
    // a cell claiming 2^31-1 elements in a few bytes
    {
        std::string cs = serialize_mat({vars[3]});
        std::vector<unsigned char> b(cs.begin(), cs.end());
        std::uint32_t big = 0x7FFFFFFF;
        std::memcpy(&b[164], &big, 4);
        CHECK_THROWS_WITH_AS(parse_mat(b.data(), b.size(), "cells.mat"), doctest::Contains("does not fit"), handgraph::error);
    }
    // cells nested deeper than the limit
    {
        mat_array a = mat_array::text("", "x");
        for (int i = 0; i < 40; ++i) a = mat_array::cell("", {1, 1}, {a});
        std::string deep = serialize_mat({mat_array::cell("deep", {1, 1}, {a})});
        CHECK_THROWS_WITH_AS(parse_mat(deep.data(), deep.size(), "deep.mat"), doctest::Contains("nested"), handgraph::error);
    }
    // decompression bombs
    if (std::filesystem::exists(tmp / "bomb_small_budget.mat")) {
        mat_read_options small;
        small.max_bytes = 8 << 20;
        CHECK_THROWS_WITH_AS(read_mat(tmp / "bomb_small_budget.mat", small), doctest::Contains("limit"), handgraph::error);
        CHECK_THROWS_WITH_AS(read_mat(tmp / "bomb_liar.mat", small), doctest::Contains("bomb_liar.mat"), handgraph::error);
        CHECK_THROWS_WITH_AS(read_mat(tmp / "bad_zlib.mat"), doctest::Contains("bad_zlib.mat"), handgraph::error);
        // With room to spare both read; the liar's trailing bytes are ignored as scipy does.
        CHECK(read_mat(tmp / "bomb_small_budget.mat").get("zeros").numel() == (64u << 20));
        CHECK(read_mat(tmp / "bomb_liar.mat").get("x").at(0) == 1.0);
        // The bounded path (worst case over budget, declared size within it) reads normal files.
        mat_read_options tight;
        tight.max_bytes = 64 << 10;
        auto f = read_mat(tmp / "matlab_compressed.mat", tight);
        CHECK(f.get("pose").numel() == 3 * 21 * 4);
    }
    CHECK_THROWS_WITH_AS(read_mat(tmp / "no_such.mat"), doctest::Contains("no_such.mat"), handgraph::error);
}
