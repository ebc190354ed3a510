#include "common/units.hpp"

#include <doctest/doctest.h>

#include <stdexcept>
#include <string_view>
#include <vector>

using namespace fedflow::units;

TEST_CASE("sizes") {
    CHECK(parse_size("0") == 0);
    CHECK(parse_size("512") == 512);
    CHECK(parse_size("512B") == 512);
    CHECK(parse_size("2GB") == 2000000000ull);
    CHECK(parse_size("2.5GB") == 2500000000ull);
    CHECK(parse_size("1200MB") == 1200000000ull);
    CHECK(parse_size("1 KiB") == 1024);
    CHECK(parse_size("1.5GiB") == 1610612736ull);
    CHECK(parse_size("1TiB") == 1099511627776ull);

    SUBCASE("bad sizes say what is accepted") {
        CHECK_THROWS_WITH_AS(parse_size("2 gigs"), doctest::Contains("unknown unit 'gigs'"), std::invalid_argument);
        CHECK_THROWS_AS(parse_size("GB"), std::invalid_argument);
        CHECK_THROWS_AS(parse_size("-1GB"), std::invalid_argument);
        CHECK_THROWS_AS(parse_size(""), std::invalid_argument);
        CHECK_THROWS_AS(parse_size("1e30TB"), std::invalid_argument);
    }
    SUBCASE("at most 1 PiB, where sums of estimates still fit in 64 bits") {
        CHECK(parse_size("1024TiB") == max_size);
        CHECK_THROWS_WITH_AS(parse_size("1125.9TB"),
                             doctest::Contains("'1125.9TB' is out of range: a size is at most 1 PiB"),
                             std::invalid_argument);
        CHECK_THROWS_AS(parse_size("18446744073709551615"), std::invalid_argument);
    }
}

TEST_CASE("durations") {
    CHECK(parse_duration("0").count() == 0);
    CHECK(parse_duration("30").count() == 30000);
    CHECK(parse_duration("30s").count() == 30000);
    CHECK(parse_duration("250ms").count() == 250);
    CHECK(parse_duration("5m").count() == 300000);
    CHECK(parse_duration("1.5h").count() == 5400000);
    CHECK_THROWS_WITH_AS(parse_duration("3 days"), doctest::Contains("use ms, s, m or h"), std::invalid_argument);
    CHECK_THROWS_AS(parse_duration("soon"), std::invalid_argument);

    SUBCASE("0, or from 1ms to a year: no deadline overflows, no tiny timeout rounds to none") {
        CHECK(parse_duration("8760h") == max_duration);
        CHECK(parse_duration("0.5ms").count() == 1);
        CHECK(parse_duration("0ms").count() == 0);
        for (const char* bad : {"8760.001h", "9999999h", "1e30h", "1e300", "0.4ms", "1e-9s"}) {
            CAPTURE(bad);
            CHECK_THROWS_WITH_AS(parse_duration(bad),
                                 doctest::Contains("is out of range: a duration is \"0\" (none) or from 1ms to 8760h"),
                                 std::invalid_argument);
        }
    }
}

TEST_CASE("the number is digits with an optional fraction and exponent, nothing else") {
    CHECK(parse_size(".5KB") == 500);
    CHECK(parse_size("5.KB") == 5000);
    CHECK(parse_size("1e3") == 1000);
    CHECK(parse_size("1E3 B") == 1000);
    CHECK(parse_size("2.5e-1KB") == 250);
    CHECK(parse_duration("1e+3ms").count() == 1000);
    SUBCASE("hex, a sign, a space before it, two spaces before the unit: not a number") {
        // strtod took every one of these (0x1p4GB was 16 GB).
        for (const char* bad : {"0x1p4GB", "0x10", "+5GB", " 5GB", "5  GB", ".", "1.5.5GB", "inf", "nan", "e3"}) {
            CAPTURE(bad);
            CHECK_THROWS_WITH_AS(parse_size(bad), doctest::Contains("is not a size"), std::invalid_argument);
        }
        for (const char* bad : {"0x10s", "+5s", " 5s", "-0s", "5\ts", "infinity"}) {
            CAPTURE(bad);
            CHECK_THROWS_WITH_AS(parse_duration(bad), doctest::Contains("is not a duration"), std::invalid_argument);
        }
    }
    SUBCASE("too small for a double is still positive: refused, not none") {
        // 1e-400 is 0 as a double, and 0 means no timeout.
        CHECK_THROWS_WITH_AS(parse_duration("1e-400s"), doctest::Contains("'1e-400s' is out of range"),
                             std::invalid_argument);
        CHECK(parse_duration("0e5s").count() == 0);
        CHECK(parse_duration("0.000s").count() == 0);
    }
    SUBCASE("too large for a double is out of range, not 'not a number'") {
        CHECK_THROWS_WITH_AS(parse_duration("1e400h"), doctest::Contains("is out of range"), std::invalid_argument);
        CHECK_THROWS_WITH_AS(parse_size("1e400"), doctest::Contains("is out of range"), std::invalid_argument);
    }
    SUBCASE("a unit that begins like an exponent") {
        CHECK_THROWS_WITH_AS(parse_size("1e"), doctest::Contains("unknown unit 'e'"), std::invalid_argument);
    }
}

TEST_CASE("comma lists and digits") {
    using V = std::vector<std::string_view>;
    CHECK(split_commas("0,2") == V{"0", "2"});
    CHECK(split_commas("7") == V{"7"});
    CHECK(split_commas("0,,2") == V{"0", "", "2"});
    CHECK(split_commas("") == V{""});
    CHECK(all_digits("042"));
    CHECK_FALSE(all_digits(""));
    CHECK_FALSE(all_digits("4a"));
}
