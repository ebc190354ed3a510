// The command plugin's pure parts (command.hpp): placeholders, params as
// text, output tails, the program's environment. (JSON <-> Value is the
// host's: tests/unit/value_json_test.cpp.)
#include "command.hpp"

#include <doctest/doctest.h>

#include <cstdint>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

using namespace fedflow::command;
using fedflow::Bytes;
using fedflow::Dict;
using fedflow::List;
using fedflow::Value;

namespace {

Placeholders train_placeholders() {
    Placeholders p;
    p.add("task_id", "3");
    p.add("group", "clients");
    p.add("round", "0");
    p.add("device", "cuda:1");
    p.add("workdir", "/runs/x/clients/3");
    p.add("lr", "0.1");
    p.add("device", "shadowed by the built-in");
    return p;
}

std::string error_of(const Placeholders& p, const std::string& text) {
    try {
        p.expand(text, "train[2]");
    } catch (const std::invalid_argument& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST_CASE("placeholders") {
    const Placeholders p = train_placeholders();
    SUBCASE("are replaced anywhere in an argument") {
        CHECK(p.expand("--lr={lr}", "x") == "--lr=0.1");
        CHECK(p.expand("{workdir}/out-{task_id}.bin", "x") == "/runs/x/clients/3/out-3.bin");
        CHECK(p.expand("{group}{round}{device}", "x") == "clients0cuda:1");
        CHECK(p.expand("plain", "x") == "plain");
        CHECK(p.expand("", "x") == "");
    }
    SUBCASE("the built-in names win over a param of the same name") {
        CHECK(p.expand("{device}", "x") == "cuda:1");
        CHECK(p.known() == "{task_id}, {group}, {round}, {device}, {workdir}, {lr}");
    }
    SUBCASE("{{ and }} are literal braces") {
        CHECK(p.expand("{{lr}}", "x") == "{lr}");
        CHECK(p.expand("print({{'a': {lr}}})", "x") == "print({'a': 0.1})");
        CHECK(p.expand("}}{{", "x") == "}{");
    }
    SUBCASE("errors name the argument, the text and the problem") {
        CHECK(error_of(p, "--lr={lrr}") ==
              "param train[2] = \"--lr={lrr}\": unknown placeholder {lrr}; known: {task_id}, {group}, {round}, "
              "{device}, {workdir}, {lr}");
        CHECK(error_of(p, "{}").find("unknown placeholder {}") != std::string::npos);
        CHECK(error_of(p, "{lr") == "param train[2] = \"{lr\": '{' without a closing '}' (write {{ for a literal '{')");
        CHECK(error_of(p, "a}b") ==
              "param train[2] = \"a}b\": '}' without an opening '{' (write }} for a literal '}')");
    }
    SUBCASE("a forbidden name says why") {
        Placeholders load;
        load.add("task_id", "3");
        load.forbid("device", "is known only in train: load runs before a device is assigned");
        CHECK(load.known() == "{task_id}");
        try {
            load.expand("--device={device}", "load[1]");
            FAIL("no error");
        } catch (const std::invalid_argument& e) {
            CHECK(std::string(e.what()) == "param load[1] = \"--device={device}\": {device} is known only in train: "
                                           "load runs before a device is assigned");
        }
    }
}

TEST_CASE("params as text") {
    CHECK(to_text(Value("a b")) == "a b");
    CHECK(to_text(Value(42)) == "42");
    CHECK(to_text(Value(-7)) == "-7");
    CHECK(to_text(Value(0.1)) == "0.1");
    CHECK(to_text(Value(1.0)) == "1.0");
    CHECK(to_text(Value(2.5e-5)) == "2.5e-05");
    CHECK(to_text(Value(std::numeric_limits<double>::quiet_NaN())) == "nan");
    CHECK(to_text(Value(-std::numeric_limits<double>::infinity())) == "-inf");
    CHECK(to_text(Value(true)) == "true");
    CHECK(to_text(Value(false)) == "false");
    CHECK(to_text(Value(List{1, "x", 0.5})) == "[1,\"x\",0.5]");
    CHECK(to_text(Value(Dict{{"b", 1}, {"a", List{}}})) == "{\"b\":1,\"a\":[]}");
    CHECK(to_text(Value(Bytes(3))) == "{\"$bytes\":{\"size\":3}}");
}

TEST_CASE("the last line of stdout") {
    CHECK(last_line("a\n{\"x\": 1}\n", false) == std::optional<std::string>("{\"x\": 1}"));
    CHECK(last_line("a\n{\"x\": 1}\n\n  \n", false) == std::optional<std::string>("{\"x\": 1}"));
    CHECK(last_line("a\r\nb\r\n", false) == std::optional<std::string>("b"));
    CHECK(last_line("no newline", false) == std::optional<std::string>("no newline"));
    CHECK(last_line("", false) == std::nullopt);
    CHECK(last_line(" \n\n", false) == std::nullopt);
    // The start of a cut tail is not a whole line.
    CHECK(last_line("tail of a long line", true) == std::nullopt);
    CHECK(last_line("cut\nwhole", true) == std::optional<std::string>("whole"));
}

TEST_CASE("a bounded tail") {
    Tail t(10);
    t.append("0123456789", 10);
    CHECK(t.text() == "0123456789");
    CHECK_FALSE(t.cut());
    t.append("abc", 3);
    CHECK(t.text() == "3456789abc");
    CHECK(t.cut());
    for (int i = 0; i < 100; ++i) t.append("xyz", 3);
    CHECK(t.text() == "zxyzxyzxyz");
}

TEST_CASE("the end of stderr in a message") {
    std::string many;
    for (int i = 1; i <= 30; ++i) many += "line " + std::to_string(i) + "\n";
    std::string last20;
    for (int i = 11; i <= 30; ++i) last20 += (i > 11 ? "\nline " : "line ") + std::to_string(i);
    CHECK(excerpt(many, 20, 4096) == last20);
    CHECK(excerpt(many, 2, 4096) == "line 29\nline 30");
    CHECK(excerpt(many, 20, 16) == "line 29\nline 30");  // whole lines only
    CHECK(excerpt("x\n\n\n", 20, 100) == "x");
    // One long line: its end.
    CHECK(excerpt(std::string(50, 'a') + "END", 20, 10) == "...aaaaEND");
    // Never half a UTF-8 character.
    CHECK(excerpt("\xc3\xa9\xc3\xa9\xc3\xa9", 20, 5) == "...\xc3\xa9");
}

TEST_CASE("the program's environment") {
    const std::vector<std::string> base = {"PATH=/bin", "HOME=/h", "FEDFLOW_DEVICE=stale", "EMPTY="};
    CHECK(make_environment(base, {{"FEDFLOW_TASK_ID", "1"}, {"HOME", "/x"}, {"A", "1"}, {"A", "2"}},
                           {"FEDFLOW_DEVICE"}) ==
          std::vector<std::string>{"PATH=/bin", "EMPTY=", "FEDFLOW_TASK_ID=1", "HOME=/x", "A=2"});
}

TEST_CASE("reserved params") {
    for (const char* k : {"load", "train", "env", "result"}) CHECK(is_reserved_param(k));
    CHECK_FALSE(is_reserved_param("lr"));
}
