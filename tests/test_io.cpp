// Output helpers (include/handgraph/io.hpp): the one atomic file writer that write_png
// and write_mat use too, and OBJ export.
#include <doctest/doctest.h>

#include <handgraph/image.hpp>
#include <handgraph/io.hpp>
#include <handgraph/mat.hpp>

#include <fstream>
#include <iterator>

#include "test_eval_support.hpp"

using namespace handgraph;
using namespace handgraph_test;

namespace {

std::string contents(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::size_t files_in(const std::filesystem::path& dir) {
    std::size_t n = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir)) (void)e, ++n;
    return n;
}

}  // namespace

TEST_CASE("io: write_file_atomic writes, replaces, and leaves nothing behind on failure") {
    scratch_dir tmp("io_atomic");
    const std::filesystem::path f = tmp.path / "out.bin";
    const std::string bytes("a\0b\nc", 5);
    write_file_atomic(f, bytes);
    CHECK(contents(f) == bytes);
    write_file_atomic(f, "second");  // replaces
    CHECK(contents(f) == "second");
    write_file_atomic(f, "");
    CHECK(std::filesystem::file_size(f) == 0);
    CHECK(files_in(tmp.path) == 1);  // no temporary left

    // A missing folder: the error names the path (and `what`, when given).
    CHECK_THROWS_WITH_AS(write_file_atomic(tmp.path / "nodir" / "x.txt", "x"), doctest::Contains("nodir"), error);
    CHECK_THROWS_WITH_AS(write_file_atomic(tmp.path / "nodir" / "x.txt", "x", "JSON"), doctest::Contains("JSON '"), error);

    // The rename fails (a folder that is not empty stands at the path): the temporary is
    // removed, the folder is untouched, the error says so.
    std::filesystem::create_directories(tmp.path / "busy" / "inside");
    CHECK_THROWS_WITH_AS(write_file_atomic(tmp.path / "busy", "x"), doctest::Contains("cannot move the finished file into place"), error);
    CHECK(std::filesystem::is_directory(tmp.path / "busy" / "inside"));
    CHECK(files_in(tmp.path) == 2);  // out.bin and busy/
}

TEST_CASE("io: write_png and write_mat go through the same writer") {
    scratch_dir tmp("io_users");
    std::filesystem::create_directories(tmp.path / "busy.png" / "inside");
    std::filesystem::create_directories(tmp.path / "busy.mat" / "inside");
    CHECK_THROWS_WITH_AS(write_png(tmp.path / "busy.png", image(4, 4)), doctest::Contains("PNG '"), error);
    CHECK_THROWS_WITH_AS(write_mat(tmp.path / "busy.mat", {mat_array::numeric<double>("x", {1, 1}, {1.0})}),
                         doctest::Contains("cannot move the finished file into place"), error);
    CHECK(files_in(tmp.path) == 2);  // the two folders; no temporaries
    write_png(tmp.path / "a.png", image(4, 4));
    write_mat(tmp.path / "a.mat", {mat_array::numeric<double>("x", {1, 1}, {1.0})});
    CHECK(files_in(tmp.path) == 4);
}

TEST_CASE("io: obj_text") {
    CHECK(obj_text({0, 1, 2, 3, 4, 5, 6, 7, 8}, {0, 1, 2}, "tri") == "# tri\nv 0.000000 1.000000 2.000000\nv 3.000000 4.000000 5.000000\n"
                                                                       "v 6.000000 7.000000 8.000000\nf 1 2 3\n");
    CHECK(obj_text({}, {}) == "");
}
