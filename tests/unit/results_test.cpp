// result.json and byte files: written as docs/architecture.md ("result.json and
// byte files") and docs/sdk.md ("Results") say, and read back; a write that
// fails (a full disk) leaves no part of itself behind.
#include "runner/results.hpp"

#include "common/integrity.hpp"
#include "support/files.hpp"

#include <doctest/doctest.h>

#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <vector>

#include <sys/resource.h>
#include <unistd.h>

using namespace fedflow;
namespace fs = std::filesystem;
using fedflow::test::slurp;
using fedflow::test::TempDir;

TEST_CASE("a result with every kind of value") {
    TempDir dir("fedflow-results");
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
    // Each byte file's own checksum, as 16 hex digits of XXH64.
    CHECK(j["weights"]["$bytes"]["checksum"] == integrity::checksum_text(integrity::checksum(w.data(), w.size())));
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
        CHECK_THROWS_WITH_AS(results::read_result(j, dir.path),
                             doctest::Contains("byte file \"weights.bin\": it has 5 bytes, not the 16 its JSON says"),
                             std::runtime_error);
    }
    SUBCASE("a corrupt byte file is refused where the reader asks for the check, naming the file") {
        std::string bad(16, 'x');
        std::ofstream(dir.path / "weights.bin", std::ios::binary) << bad;
        CHECK_NOTHROW(results::read_result(j, dir.path));
        CHECK_THROWS_WITH_AS(results::read_result(j, dir.path, true),
                             doctest::Contains("byte file \"weights.bin\" is corrupt: its checksum is not the one"),
                             std::runtime_error);
    }
    SUBCASE("an entry without a checksum (an older result) is still a byte file") {
        nlohmann::ordered_json old = j;
        old["weights"]["$bytes"].erase("checksum");
        CHECK(results::read_result(old, dir.path, true) == result);
    }
    SUBCASE("a byte file name cannot leave the directory") {
        // The same rule, and the same words, as the command plugin's
        // (test_command.py: test_byte_files_follow_the_hosts_rule).
        for (const char* name : {"../../etc/passwd", "/etc/passwd", "sub/w.bin", ".."}) {
            CAPTURE(name);
            nlohmann::ordered_json evil = {{"x", {{"$bytes", {{"file", name}, {"size", 1}}}}}};
            CHECK_THROWS_WITH_AS(results::read_result(evil, dir.path),
                                 doctest::Contains("\": a byte file is a plain name in the folder of its JSON"),
                                 std::runtime_error);
        }
    }
}

TEST_CASE("NaN and infinities are null in result.json, and their key paths are told") {
    TempDir dir("fedflow-results");
    const double nan = std::nan(""), inf = HUGE_VAL;
    Dict result{{"loss", nan}, {"ok", 0.5}, {"m", Dict{{"h", List{1.0, inf, -inf}}}}};
    results::Written w = results::write_result(result, dir.path);
    CHECK(w.json["loss"].is_null());
    CHECK(w.json["m"]["h"] == nlohmann::ordered_json::parse("[1.0, null, null]"));
    CHECK(w.non_finite == std::vector<std::string>{"loss", "m.h.1", "m.h.2"});
    CHECK(w.non_finite_count == 3);

    // Only the first few paths are kept; all are counted.
    List many;
    for (int i = 0; i < 8; ++i) many.emplace_back(nan);
    results::Written m = results::write_result(Dict{{"x", many}}, dir.path);
    CHECK(m.non_finite.size() == results::max_non_finite_paths);
    CHECK(m.non_finite.back() == "x.4");
    CHECK(m.non_finite_count == 8);

    results::Written clean = results::write_result(Dict{{"loss", 0.25}}, dir.path);
    CHECK(clean.non_finite.empty());
    CHECK(clean.non_finite_count == 0);
}

TEST_CASE("reference_result: each byte file's path, size and checksum, and no byte read") {
    TempDir dir("fedflow-results");
    Bytes w(16);
    auto j = results::write_result(Dict{{"weights", w}, {"n", 2}}, dir.path).json;
    fs::remove(dir.path / "weights.bin");  // never read: it may even be gone
    std::vector<inputs_manifest::File> files{{"/elsewhere/x.bin", 1, std::nullopt}};
    Dict d = results::reference_result(j, dir.path, files);
    REQUIRE(files.size() == 2);
    CHECK(files[1].path == (fs::absolute(dir.path) / "weights.bin").string());
    CHECK(files[1].size == 16);
    CHECK(files[1].checksum == std::optional<std::uint64_t>(integrity::checksum(w.data(), 16)));
    CHECK(d.at("weights").as<Bytes>().shm_id() == 1);  // its index in files
    CHECK(d.at("weights").as<Bytes>().size() == 16);
    CHECK(d.at("n").as<std::int64_t>() == 2);
    nlohmann::ordered_json evil = {{"x", {{"$bytes", {{"file", "../../etc/passwd"}, {"size", 1}}}}}};
    CHECK_THROWS_AS(results::reference_result(evil, dir.path, files), std::runtime_error);
}

TEST_CASE("byte files do not clobber each other or the task's files") {
    TempDir dir("fedflow-results");
    Dict result{{"a.b", Bytes(1)}, {"a", Dict{{"b", Bytes(2)}}}, {"result", Dict{{"json", Bytes(3)}}}};
    auto j = results::write_result(result, dir.path).json;
    CHECK(j["a.b"]["$bytes"]["file"] == "a.b.bin");
    CHECK(j["a"]["b"]["$bytes"]["file"] == "a.b-2.bin");
    CHECK(fs::file_size(dir.path / "a.b-2.bin") == 2);
    CHECK(fs::file_size(dir.path / "result.json") > 10);
}

TEST_CASE("byte files never follow a symlink planted in the workdir") {
    TempDir dir("fedflow-results");
    fs::path target = dir.path / "elsewhere";
    std::ofstream(target) << "keep";
    fs::create_symlink(target, dir.path / "weights.bin");
    CHECK_THROWS(results::write_result(Dict{{"weights", Bytes(8)}}, dir.path));
    CHECK(slurp(target) == "keep");
}

TEST_CASE("write_json_file replaces atomically") {
    TempDir dir("fedflow-results");
    results::write_json_file(dir.path / "r.json", {{"a", 1}});
    results::write_json_file(dir.path / "r.json", {{"a", 2}});
    CHECK(nlohmann::json::parse(slurp(dir.path / "r.json"))["a"] == 2);
    std::size_t files = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir.path)) ++files;
    CHECK(files == 1);  // no temporary file left
}

TEST_CASE("a result dict that merely has a \"$bytes\" key stays a dict") {
    TempDir dir("fedflow-results");
    nlohmann::ordered_json odd = {{"x", {{"$bytes", "not a file"}}}, {"y", {{"$bytes", {{"file", "f"}, {"n", 1}}}}}};
    Dict back = results::read_result(odd, dir.path);
    CHECK(back.at("x").as<Dict>().at("$bytes").as<std::string>() == "not a file");
    CHECK(back.at("y").is<Dict>());
}

TEST_CASE("a $ key (a convention's marker such as $tensor) adds nothing to a byte file's name") {
    TempDir dir("fedflow-results");
    Dict tensor{{"dtype", "float32"}, {"shape", List{std::int64_t{2}}}, {"data", Bytes(8)}};
    Dict result{{"weights", Dict{{"$tensor", tensor}}}};
    auto j = results::write_result(result, dir.path).json;
    CHECK(j["weights"]["$tensor"]["data"]["$bytes"]["file"] == "weights.data.bin");
    CHECK(fs::file_size(dir.path / "weights.data.bin") == 8);
}

namespace {

// RLIMIT_FSIZE stands in for a full disk: a write past it fails after
// writing what fits, as one on a full disk does.
struct FileSizeLimit {
    rlimit saved{};
    struct sigaction old {};
    explicit FileSizeLimit(rlim_t bytes) {
        struct sigaction ignore {};
        ignore.sa_handler = SIG_IGN;
        ::sigaction(SIGXFSZ, &ignore, &old);
        ::getrlimit(RLIMIT_FSIZE, &saved);
        rlimit small = saved;
        small.rlim_cur = bytes;
        ::setrlimit(RLIMIT_FSIZE, &small);
    }
    ~FileSizeLimit() {
        ::setrlimit(RLIMIT_FSIZE, &saved);
        ::sigaction(SIGXFSZ, &old, nullptr);
    }
};

}  // namespace

TEST_CASE("a result that cannot be written leaves none of its files") {
    TempDir dir;
    std::ofstream(dir.path / "stdout.log") << "the task's own\n";
    Bytes small(100), big(100000);
    Dict result{{"a", small}, {"b", big}, {"n", 1}};
    {
        FileSizeLimit limit(4096);
        CHECK_THROWS_AS(results::write_result(result, dir.path), std::system_error);
    }
    std::vector<std::string> left;
    for (const auto& e : fs::directory_iterator(dir.path)) left.push_back(e.path().filename().string());
    CHECK(left == std::vector<std::string>{"stdout.log"});
}

TEST_CASE("a JSON file that cannot be written leaves no temporary file and the old one as it was") {
    TempDir dir;
    results::write_json_file(dir.path / "run.json", nlohmann::ordered_json{{"status", "running"}});
    const std::string before = slurp(dir.path / "run.json");
    {
        FileSizeLimit limit(64);
        CHECK_THROWS_AS(results::write_json_file(dir.path / "run.json",
                                                 nlohmann::ordered_json{{"status", std::string(1000, 'x')}}),
                        std::system_error);
    }
    CHECK(slurp(dir.path / "run.json") == before);
    std::vector<std::string> left;
    for (const auto& e : fs::directory_iterator(dir.path)) left.push_back(e.path().filename().string());
    CHECK(left == std::vector<std::string>{"run.json"});
}

TEST_CASE("is_disk_full: ENOSPC and EDQUOT, from any layer, and nothing else") {
    CHECK(results::is_disk_full(std::system_error(ENOSPC, std::generic_category(), "write x")));
    CHECK(results::is_disk_full(std::system_error(EDQUOT, std::system_category(), "write x")));
    CHECK(results::is_disk_full(fs::filesystem_error("rename", std::make_error_code(std::errc::no_space_on_device))));
    CHECK_FALSE(results::is_disk_full(std::system_error(EIO, std::generic_category(), "write x")));
    CHECK_FALSE(results::is_disk_full(std::runtime_error("No space left on device")));
}

TEST_CASE("a byte file without a size, as a command task's program writes it, is read too") {
    TempDir dir("fedflow-results");
    std::ofstream(dir.path / "w.bin") << "abc";
    Dict back = results::read_result({{"w", {{"$bytes", {{"file", "w.bin"}}}}}}, dir.path);
    CHECK(back.at("w").as<Bytes>().size() == 3);
}
