// result.json and byte files: written as SPEC.md says, and read back.
#include "runner/results.hpp"

#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

using namespace fedflow;
namespace fs = std::filesystem;

namespace {

struct TempDir {
    fs::path path;
    TempDir() {
        std::string tmpl = (fs::temp_directory_path() / "fedflow-results-XXXXXX").string();
        path = ::mkdtemp(tmpl.data());
    }
    ~TempDir() { fs::remove_all(path); }
};

std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
}

}  // namespace

TEST_CASE("a result with every kind of value") {
    TempDir dir;
    Bytes w(16);
    for (std::size_t i = 0; i < w.size(); ++i) w.data()[i] = static_cast<std::uint8_t>(i);
    Dict result{{"loss", 0.25},
                {"n", 3},
                {"ok", true},
                {"none", nullptr},
                {"name", "x"},
                {"history", List{1.0, 0.5}},
                {"weights", w},
                {"meta", Dict{{"w", Bytes(4)}, {"a/b", Bytes(1)}}},
                {"list", List{Bytes(2)}}};
    auto written = results::write_result(result, dir.path);
    const auto& j = written.json;
    CHECK(j["loss"] == 0.25);
    CHECK(j["n"] == 3);
    CHECK(j["ok"] == true);
    CHECK(j["none"].is_null());
    CHECK(j["history"].size() == 2);
    CHECK(j["weights"]["$bytes"]["file"] == "weights.bin");
    CHECK(j["weights"]["$bytes"]["size"] == 16);
    CHECK(j["meta"]["w"]["$bytes"]["file"] == "meta.w.bin");
    CHECK(j["meta"]["a/b"]["$bytes"]["file"] == "meta.a_b.bin");  // never a path
    CHECK(j["list"][0]["$bytes"]["file"] == "list.0.bin");
    CHECK(written.bytes == 16 + 4 + 1 + 2);
    CHECK(slurp(dir.path / "weights.bin") == std::string(reinterpret_cast<const char*>(w.data()), w.size()));

    // Insertion order is kept in result.json.
    std::string text = slurp(dir.path / "result.json");
    CHECK(text.find("\"loss\"") < text.find("\"n\""));
    CHECK(text.find("\"n\"") < text.find("\"weights\""));

    SUBCASE("read back, bytes included") {
        Dict back = results::read_result(nlohmann::ordered_json::parse(text), dir.path);
        CHECK(back == result);
    }
    SUBCASE("a byte file of the wrong size is refused") {
        std::ofstream(dir.path / "weights.bin") << "short";
        CHECK_THROWS_WITH_AS(results::read_result(j, dir.path), doctest::Contains("result.json says 16"), std::runtime_error);
    }
    SUBCASE("a byte file name cannot leave the directory") {
        nlohmann::ordered_json evil = {{"x", {{"$bytes", {{"file", "../../etc/passwd"}, {"size", 1}}}}}};
        CHECK_THROWS_WITH_AS(results::read_result(evil, dir.path), doctest::Contains("leaves"), std::runtime_error);
    }
}

TEST_CASE("byte files do not clobber each other or the task's files") {
    TempDir dir;
    Dict result{{"a.b", Bytes(1)}, {"a", Dict{{"b", Bytes(2)}}}, {"result", Dict{{"json", Bytes(3)}}}};
    auto j = results::write_result(result, dir.path).json;
    CHECK(j["a.b"]["$bytes"]["file"] == "a.b.bin");
    CHECK(j["a"]["b"]["$bytes"]["file"] == "a.b-2.bin");
    CHECK(fs::file_size(dir.path / "a.b-2.bin") == 2);
    CHECK(fs::file_size(dir.path / "result.json") > 10);
}

TEST_CASE("byte files never follow a symlink planted in the workdir") {
    TempDir dir;
    fs::path target = dir.path / "elsewhere";
    std::ofstream(target) << "keep";
    fs::create_symlink(target, dir.path / "weights.bin");
    CHECK_THROWS(results::write_result(Dict{{"weights", Bytes(8)}}, dir.path));
    CHECK(slurp(target) == "keep");
}

TEST_CASE("write_json_file replaces atomically") {
    TempDir dir;
    results::write_json_file(dir.path / "r.json", {{"a", 1}});
    results::write_json_file(dir.path / "r.json", {{"a", 2}});
    CHECK(nlohmann::json::parse(slurp(dir.path / "r.json"))["a"] == 2);
    CHECK_FALSE(fs::exists(dir.path / "r.json.tmp"));
}

TEST_CASE("a result dict that merely has a \"$bytes\" key stays a dict") {
    TempDir dir;
    nlohmann::ordered_json odd = {{"x", {{"$bytes", "not a file"}}}, {"y", {{"$bytes", {{"file", "f"}}}}}};
    Dict back = results::read_result(odd, dir.path);
    CHECK(back.at("x").as<Dict>().at("$bytes").as<std::string>() == "not a file");
    CHECK(back.at("y").is<Dict>());
}

TEST_CASE("a $ key (a convention's marker such as $tensor) adds nothing to a byte file's name") {
    TempDir dir;
    Dict tensor{{"dtype", "float32"}, {"shape", List{std::int64_t{2}}}, {"data", Bytes(8)}};
    Dict result{{"weights", Dict{{"$tensor", tensor}}}};
    auto j = results::write_result(result, dir.path).json;
    CHECK(j["weights"]["$tensor"]["data"]["$bytes"]["file"] == "weights.data.bin");
    CHECK(fs::file_size(dir.path / "weights.data.bin") == 8);
}
