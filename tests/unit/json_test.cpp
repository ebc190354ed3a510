// jsonio (host/common/json.hpp): objects built and parsed without a lookup
// per key, with what nlohmann's own parse() gives.
#include "common/json.hpp"

#include <doctest/doctest.h>

#include <string>

using json = nlohmann::ordered_json;
using namespace fedflow;

TEST_CASE("parse gives what nlohmann's parse gives") {
    for (const char* text : {
             R"({})",
             R"([])",
             R"(null)",
             R"(1.5)",
             R"("a")",
             R"({"b": 1, "a": [1, {"x": null, "y": [true, false]}, "s"], "c": {"d": {"e": -3}}})",
             R"([{"a": 1}, {}, [[]], {"z": 2, "y": 3}])",
             R"({"a": 1, "b": 2, "a": 3})",  // a key twice: its first place, its last value
             R"({"k0":0,"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k3":33,"k9":9})",
         }) {
        CAPTURE(text);
        CHECK(jsonio::parse(text).dump() == json::parse(text).dump());
    }
}

TEST_CASE("parse: bad text throws, or gives a discarded value") {
    CHECK_THROWS_AS(jsonio::parse(R"({"a": )"), json::parse_error);
    CHECK(jsonio::parse(R"({"a": )", false).is_discarded());
    CHECK(jsonio::parse("[1, 2", false).is_discarded());
}

TEST_CASE("an object of 300,000 keys is built and read back in order (issue 11, item 9)") {
    // ordered_json looks each key up as it adds one: this took minutes.
    json big = json::object();
    for (int i = 0; i < 300000; ++i) jsonio::append(big, "k" + std::to_string(i), i);
    std::string text = big.dump();
    json back = jsonio::parse(text);
    REQUIRE(back.size() == 300000);
    CHECK(back.begin().key() == "k0");
    CHECK((--back.end()).key() == "k299999");
    CHECK(back.dump() == text);
}
