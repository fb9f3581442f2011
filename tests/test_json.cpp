// Tests for handgraph/json.hpp.
#include <doctest/doctest.h>

#include "handgraph/json.hpp"

using namespace handgraph;

TEST_CASE("json parses values, escapes and integers") {
    auto v = json::parse(R"( {"a": [1, -2, 3.5e1, true, false, null], "s": "x\"\u00e9\ud83d\ude00\n", "big": 9223372036854775807} )");
    REQUIRE(v.is_object());
    auto* a = v.find("a");
    REQUIRE(a);
    CHECK(a->items.size() == 6);
    CHECK(a->items[1].integer == -2);
    CHECK(a->items[2].num == 35.0);
    CHECK_FALSE(a->items[2].is_integer);
    CHECK(v.find("s")->str == "x\"\xc3\xa9\xf0\x9f\x98\x80\n");
    CHECK(v.find("big")->integer == INT64_MAX);
    CHECK_FALSE(json::parse("92233720368547758070").is_integer);
}

TEST_CASE("json refuses malformed text with an offset") {
    for (const char* bad : {"", "{", "[1,]", "{\"a\" 1}", "\"abc", "01", "1.", "tru", "{\"a\":1,\"a\":2}", "\"\\ud800\"", "[1] x", "\"\x01\""}) {
        CAPTURE(bad);
        CHECK_THROWS_AS(json::parse(bad), error);
    }
    std::string deep(1000, '[');
    CHECK_THROWS_WITH_AS(json::parse(deep), doctest::Contains("nesting"), error);
}

TEST_CASE("json writer quotes and formats") {
    CHECK(json::quote("a\"b\\\n\x01") == "\"a\\\"b\\\\\\n\\u0001\"");
    CHECK(json::number(1.5) == "1.5");
    CHECK(json::number(0.0 / 0.0) == "null");
    float m[] = {1, 2, 3, 4};
    CHECK(json::matrix(m, 2, 2) == "[[1,2],[3,4]]");
}
