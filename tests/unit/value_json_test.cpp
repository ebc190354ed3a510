// Value <-> JSON with byte files (common/value_json.hpp): the one
// implementation the host's result.json and the command plugin share, and
// its one rule for byte files.
#include "common/value_json.hpp"

#include "support/files.hpp"

#include <doctest/doctest.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

using namespace fedflow;
using value_json::json;
namespace fs = std::filesystem;
using fedflow::test::TempDir;

namespace {

Bytes owned(std::size_t n) { return Bytes(n); }

// What from_json says about a "$bytes" object naming file, with a reader that
// reads from dir.
std::string refusal(const std::string& file, const fs::path& dir) {
    try {
        value_json::from_json(json{{"w", {{"$bytes", {{"file", file}}}}}},
                              [&](const std::string& f, std::optional<std::uint64_t> size,
                                  std::optional<std::uint64_t>) {
                                  return Value(value_json::read_byte_file(dir, f, size, owned));
                              });
    } catch (const std::runtime_error& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST_CASE("JSON to Value") {
    const json j = json::parse(R"({"n": 3, "neg": -4, "big": 18446744073709551615, "x": 0.5, "whole": 2.0,
                                   "e": 1e3, "s": "hi", "ok": true, "none": null,
                                   "l": [1, [2], {"k": "v"}], "d": {"z": 1, "a": 2}})");
    const Value v = value_json::from_json(j);
    REQUIRE(v.is<Dict>());
    const Dict& d = v.as<Dict>();
    CHECK(d.at("n") == Value(3));
    CHECK(d.at("n").is<std::int64_t>());
    CHECK(d.at("neg") == Value(-4));
    CHECK(d.at("big").is<double>());  // does not fit in int64
    CHECK(d.at("big").as<double>() == 18446744073709551615.0);
    CHECK(d.at("x") == Value(0.5));
    CHECK(d.at("whole").is<double>());  // written with a fraction: a double
    CHECK(d.at("e").is<double>());
    CHECK(d.at("s") == Value("hi"));
    CHECK(d.at("ok") == Value(true));
    CHECK(d.at("none").is_null());
    CHECK(d.at("l") == Value(List{1, List{2}, Dict{{"k", "v"}}}));
    // Document order, not sorted.
    std::vector<std::string> keys;
    for (const auto& [k, item] : d.at("d").as<Dict>()) keys.push_back(k);
    CHECK(keys == std::vector<std::string>{"z", "a"});
    CHECK(value_json::from_json(json::parse("9223372036854775807")) == Value(INT64_MAX));
    CHECK(value_json::from_json(json::parse("-9223372036854775808")) == Value(INT64_MIN));
}

TEST_CASE("the shape of a byte value in JSON") {
    std::vector<std::pair<std::string, std::optional<std::uint64_t>>> asked;
    auto reader = [&](const std::string& file, std::optional<std::uint64_t> size,
                      std::optional<std::uint64_t>) -> Value {
        asked.emplace_back(file, size);
        return Value(Bytes(static_cast<std::size_t>(size.value_or(2))));
    };
    const json j = json::parse(R"({"w": {"$bytes": {"file": "w.bin", "size": 8}},
                                   "v": {"$bytes": {"file": "v.bin"}},
                                   "not1": {"$bytes": {"file": "x.bin", "size": 1, "extra": 0}},
                                   "not2": {"$bytes": {"file": 7}},
                                   "not3": {"$bytes": {"file": "x", "size": -1}},
                                   "not4": {"$bytes": {"file": "x"}, "other": 1},
                                   "not5": {"$bytes": "not a file"}})");
    const Dict d = value_json::from_json(j, reader).as<Dict>();
    CHECK(d.at("w").is<Bytes>());
    CHECK(d.at("w").as<Bytes>().size() == 8);
    CHECK(d.at("v").as<Bytes>().size() == 2);
    for (const char* k : {"not1", "not2", "not3", "not4", "not5"}) {
        CAPTURE(k);
        CHECK(d.at(k).is<Dict>());
    }
    REQUIRE(asked.size() == 2);
    CHECK(asked[0] == std::make_pair(std::string("w.bin"), std::optional<std::uint64_t>(8)));
    CHECK(asked[1] == std::make_pair(std::string("v.bin"), std::optional<std::uint64_t>()));
    // Without a reader, {"$bytes": ...} stays a dict.
    CHECK(value_json::from_json(j).as<Dict>().at("w").is<Dict>());
}

TEST_CASE("a byte value's checksum, as the host writes it, reaches the reader") {
    std::optional<std::uint64_t> got;
    auto reader = [&](const std::string&, std::optional<std::uint64_t>, std::optional<std::uint64_t> sum) -> Value {
        got = sum;
        return Value(Bytes(1));
    };
    const Value v = value_json::from_json(
        json{{"w", {{"$bytes", {{"file", "w.bin"}, {"size", 1}, {"checksum", "00000000000000ff"}}}}}}, reader);
    CHECK(v.as<Dict>().at("w").is<Bytes>());
    CHECK(got == std::optional<std::uint64_t>(0xff));
    // Not 16 hex digits, or a key the rule does not have: a dict, as any other.
    for (const json& other : {json{{"file", "w.bin"}, {"checksum", "ff"}}, json{{"file", "w.bin"}, {"checksum", 255}},
                              json{{"file", "w.bin"}, {"size", 1}, {"checksum", "00000000000000ff"}, {"x", 1}}}) {
        CAPTURE(other.dump());
        CHECK(value_json::from_json(json{{"w", {{"$bytes", other}}}}, reader).as<Dict>().at("w").is<Dict>());
    }
}

TEST_CASE("Value to JSON, with the key path of each byte value") {
    Bytes w(4);
    const Dict inputs{{"clients", Dict{{"0", Dict{{"weights", w},
                                                  {"loss", 0.5},
                                                  {"bad", std::numeric_limits<double>::infinity()},
                                                  {"layers", List{w}}}}}}};
    std::vector<std::string> paths;
    auto writer = [&](const Bytes& b, const std::string& key_path) -> json {
        paths.push_back(key_path);
        return json{{"$bytes", json{{"file", "f" + std::to_string(paths.size())}, {"size", b.size()}}}};
    };
    const json j = value_json::to_json(Value(inputs), writer);
    CHECK(j.dump() == R"({"clients":{"0":{"weights":{"$bytes":{"file":"f1","size":4}},"loss":0.5,"bad":null,)"
                      R"("layers":[{"$bytes":{"file":"f2","size":4}}]}}})");
    CHECK(paths == std::vector<std::string>{"clients.0.weights", "clients.0.layers.0"});
    CHECK(value_json::to_json(Value(Bytes(3))).dump() == R"({"$bytes":{"size":3}})");
}

TEST_CASE("byte file names from key paths") {
    std::set<std::string> used;
    CHECK(value_json::file_name_for("weights", used) == "weights.bin");
    CHECK(value_json::file_name_for("weights", used) == "weights-2.bin");
    CHECK(value_json::file_name_for("meta.a/b", used) == "meta.a_b.bin");
    CHECK(value_json::file_name_for(".hidden", used) == "_.hidden.bin");
    CHECK(value_json::file_name_for("", used) == "_.bin");
    CHECK(value_json::file_name_for("caf\xc3\xa9\n", used) == "caf___.bin");
    const std::string long_name = value_json::file_name_for(std::string(300, 'k'), used);
    CHECK(long_name.size() == 204);
    for (const std::string& name : used) CHECK(value_json::check_file_name(name).empty());
}

TEST_CASE("the rule for byte files: a plain name in the folder of the JSON") {
    TempDir dir("fedflow-value-json");
    std::ofstream(dir.path / "w.bin") << "1234";
    const std::string plain_name =
        "a byte file is a plain name in the folder of its JSON: 1 to 255 characters of [A-Za-z0-9._-], not '.' or "
        "'..' (no '/')";

    SUBCASE("a plain name is read, its size checked when given") {
        const Value v = value_json::from_json(json{{"$bytes", {{"file", "w.bin"}}}},
                                              [&](const std::string& f, std::optional<std::uint64_t> size,
                                                  std::optional<std::uint64_t>) {
                                                  return Value(value_json::read_byte_file(dir.path, f, size, owned));
                                              });
        REQUIRE(v.is<Bytes>());
        CHECK(std::string(reinterpret_cast<const char*>(v.as<Bytes>().data()), v.as<Bytes>().size()) == "1234");
        CHECK_THROWS_WITH_AS(value_json::read_byte_file(dir.path, "w.bin", 9, owned),
                             "byte file \"w.bin\": it has 4 bytes, not the 9 its JSON says", std::runtime_error);
    }
    SUBCASE("paths, '.', '..' and odd characters are refused before anything is opened") {
        for (const std::string& bad :
             {std::string("/etc/passwd"), std::string("../w.bin"), std::string("sub/w.bin"), std::string("."),
              std::string(".."), std::string(""), std::string("w.bin\n"), std::string("a b"), std::string(256, 'x')}) {
            CAPTURE(bad);
            CHECK(refusal(bad, dir.path).find(plain_name) != std::string::npos);
        }
        CHECK(refusal("/etc/passwd", dir.path) == "byte file \"/etc/passwd\": " + plain_name);
        CHECK(refusal(std::string("w\x1b]0;x\x07"), dir.path).find("\"w\\u001b]0;x\\u0007\"") != std::string::npos);
    }
    SUBCASE("a missing file, a symlink, a folder, a FIFO") {
        CHECK(refusal("nowhere.bin", dir.path).find("byte file \"nowhere.bin\": No such file or directory") == 0);
        fs::create_symlink(dir.path / "w.bin", dir.path / "link.bin");
        CHECK(refusal("link.bin", dir.path) == "byte file \"link.bin\": is a symbolic link; a byte file must be a "
                                               "regular file");
        fs::create_directory(dir.path / "d.bin");
        CHECK(refusal("d.bin", dir.path) == "byte file \"d.bin\": not a regular file");
        REQUIRE(::mkfifo((dir.path / "f.bin").c_str(), 0600) == 0);
        CHECK(refusal("f.bin", dir.path) == "byte file \"f.bin\": not a regular file");  // and does not hang
    }
}
