// Text for people (common/text.hpp): outside text made printable, "did you
// mean", sizes and durations.
#include "common/text.hpp"

#include <doctest/doctest.h>

#include <string>
#include <string_view>
#include <vector>

using namespace fedflow::text;
using namespace std::chrono_literals;
using namespace std::string_literals;

TEST_CASE("printable: control characters are escaped, text is kept") {
    CHECK(printable("clients-0.b_c") == "clients-0.b_c");
    CHECK(printable("caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x98\x80") == "caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x98\x80");
    SUBCASE("an ESC sequence cannot retitle the terminal") {
        CHECK(printable("a\x1b]0;pwned\x07z") == "a\\e]0;pwned\\x07z");
    }
    SUBCASE("a NUL no longer cuts the message") { CHECK(printable("before"s + '\0' + "after") == "before\\0after"); }
    SUBCASE("a newline cannot forge a line") {
        CHECK(printable("g\nfedflow: error: forged") == "g\\nfedflow: error: forged");
        CHECK(printable("a\rb\tc") == "a\\rb\\tc");
    }
    SUBCASE("DEL, C1 controls and bytes that are not UTF-8") {
        CHECK(printable("\x7f") == "\\x7f");
        CHECK(printable("\xc2\x9b"
                        "31m") == "\\xc2\\x9b31m");  // CSI as a C1 control
        CHECK(printable("\xff\xfe") == "\\xff\\xfe");
        CHECK(printable("\xc3") == "\\xc3");                    // cut sequence
        CHECK(printable("\xc0\xaf") == "\\xc0\\xaf");           // overlong '/'
        CHECK(printable("\xed\xa0\x80") == "\\xed\\xa0\\x80");  // surrogate
        CHECK(printable("\xc2\xa0") == "\xc2\xa0");             // no-break space is text
    }
    SUBCASE("escaping twice changes nothing") {
        const std::string once = printable("x\x1b[2J\n\\e"s + '\0');
        CHECK(printable(once) == once);
        CHECK(printable_lines(once) == once);
    }
}

TEST_CASE("printable_lines keeps lines, indented after the first") {
    CHECK(printable_lines("`python3` exited with code 1; the end of its stderr:\nTraceback\n\tat x") ==
          "`python3` exited with code 1; the end of its stderr:\n  Traceback\n  \tat x");
    CHECK(printable_lines("x\nfedflow: error: forged", "    ") == "x\n    fedflow: error: forged");
    CHECK(printable_lines("a\x1b[31m\r") == "a\\e[31m\\r");
}

TEST_CASE("edit distance") {
    CHECK(edit_distance("tasks", "tasks") == 0);
    CHECK(edit_distance("taks", "tasks") == 1);
    CHECK(edit_distance("plugn", "plugin") == 1);
    CHECK(edit_distance("", "abc") == 3);
    CHECK(edit_distance("kitten", "sitting") == 3);
}

TEST_CASE("did you mean: the best match") {
    const std::vector<std::string_view> plugins = {"echo", "noop", "command", "fedavg_client", "fedavg_server"};
    SUBCASE("a few edits away") {
        CHECK(closest("ecoh", plugins) == "echo");
        CHECK(closest("comand", plugins) == "command");
        CHECK(closest("fedavg_clinet", plugins) == "fedavg_client");
    }
    SUBCASE("more edits away, but a prefix or a subsequence") {
        CHECK(closest("fedavg_srv", plugins) == "fedavg_server");
        CHECK(closest("fedavg_serv", plugins) == "fedavg_server");
        CHECK(closest("fedavg_cl", plugins) == "fedavg_client");
        CHECK(closest("max-procs", {"max-waiting", "max-processes"}) == "max-processes");
        CHECK(closest("cpu-util", {"cpu-utilization", "memory-utilization"}) == "cpu-utilization");
        CHECK(closest("gpu", {"gpus", "seed", "progress"}) == "gpus");
    }
    SUBCASE("the nearest wins; equals go to the shorter, then the earlier") {
        CHECK(closest("fed", plugins) == "fedavg_client");
        CHECK(closest("tasc", {"task", "tasks"}) == "task");
        CHECK(closest("tasks2", {"tasks", "tasks3"}) == "tasks");
        CHECK(closest("ab", {"ac", "ad"}) == "ac");
    }
    SUBCASE("case is ignored; the word itself is never suggested") {
        CHECK(closest("Tasks", {"tasks"}) == "tasks");
        CHECK(closest("tasks", {"tasks"}) == std::nullopt);
    }
    SUBCASE("nothing close: no suggestion") {
        CHECK(closest("zzz", plugins) == std::nullopt);
        CHECK(closest("xyzzy-frobnicate", plugins) == std::nullopt);
        CHECK(closest("xy", plugins) == std::nullopt);
        CHECK(closest("srvr", {"fedavg_server"}) == std::nullopt);  // a subsequence, but of far more
        CHECK(closest("anything", std::vector<std::string_view>{}) == std::nullopt);
    }
    SUBCASE("the phrase, with the suggestion made printable") {
        CHECK(did_you_mean("plugn", {"plugin", "params"}) == " (did you mean 'plugin'?)");
        CHECK(did_you_mean("zzz", {"plugin"}) == "");
        CHECK(did_you_mean("a\x1b", std::vector<std::string>{"a\x1b]"}) == " (did you mean 'a\\e]'?)");
    }
}

TEST_CASE("sizes") {
    CHECK(format_size(0) == "0 B");
    CHECK(format_size(999) == "999 B");
    CHECK(format_size(1000) == "0.98 KiB");  // not "1000 B": the next unit from 1000 on
    CHECK(format_size(1536) == "1.50 KiB");
    CHECK(format_size(10 * 1024 - 1) == "10.0 KiB");
    CHECK(format_size(12345678) == "11.8 MiB");
    CHECK(format_size(1000ull << 20) == "0.98 GiB");
    CHECK(format_size(3ull << 30) == "3.00 GiB");
    CHECK(format_size(400ull << 30) == "400 GiB");
    CHECK(format_size(~0ull) == "16.0 EiB");
}

TEST_CASE("durations") {
    CHECK(format_duration(0ms) == "0ms");
    CHECK(format_duration(250ms) == "250ms");
    CHECK(format_duration(1000ms) == "1s");
    CHECK(format_duration(1500ms) == "1.5s");
    CHECK(format_duration(1234ms) == "1.23s");
    CHECK(format_duration(9996ms) == "10s");
    CHECK(format_duration(12345ms) == "12.3s");
    CHECK(format_duration(59940ms) == "59.9s");
    CHECK(format_duration(59960ms) == "1m");
    CHECK(format_duration(125s) == "2m05s");
    CHECK(format_duration(5min) == "5m");
    CHECK(format_duration(90s) == "1m30s");
    CHECK(format_duration(1h) == "1h");
    CHECK(format_duration(90min) == "1h30m");
    CHECK(format_duration(3723s) == "1h02m03s");
    CHECK(format_duration(3601s) == "1h00m01s");
    CHECK(format_duration(100h) == "100h");
    CHECK(format_duration(-1500ms) == "-1.5s");
}
