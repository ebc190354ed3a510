// The one reader of FEDFLOW_FAILPOINTS (common/failpoints.hpp).
#include "common/failpoints.hpp"

#include <doctest/doctest.h>

#include <cstdlib>

using fedflow::failpoints::armed;

TEST_CASE("failpoints: NAME and NAME@WHERE in a comma-separated list") {
    ::unsetenv("FEDFLOW_FAILPOINTS");
    CHECK_FALSE(armed("host-kill", "journal-open"));

    ::setenv("FEDFLOW_FAILPOINTS", "host-kill@journal-open", 1);
    CHECK(armed("host-kill", "journal-open"));
    CHECK_FALSE(armed("host-kill", "workdir-locked"));
    CHECK_FALSE(armed("host-kill"));  // NAME alone is another point
    CHECK_FALSE(armed("host", "journal-open"));

    ::setenv("FEDFLOW_FAILPOINTS", "result-corrupt@g/0,bytes-corrupt@g/0,fork-server-emfile", 1);
    CHECK(armed("result-corrupt", "g/0"));
    CHECK(armed("bytes-corrupt", "g/0"));
    CHECK(armed("fork-server-emfile"));
    CHECK_FALSE(armed("result-corrupt", "g/1"));
    CHECK_FALSE(armed("result-truncate", "g/0"));  // no substring matches
    CHECK_FALSE(armed("result-corrupt", "g/"));

    ::setenv("FEDFLOW_FAILPOINTS", ",,", 1);
    CHECK_FALSE(armed(""));
    ::unsetenv("FEDFLOW_FAILPOINTS");
}
