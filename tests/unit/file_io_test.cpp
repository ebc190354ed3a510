// Whole files (common/file_io.hpp): written never through a symlink, and
// replaced atomically.
#include "common/file_io.hpp"

#include "support/files.hpp"

#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <sys/stat.h>
#include <unistd.h>

using namespace fedflow;
namespace fs = std::filesystem;
using fedflow::test::slurp;
using fedflow::test::TempDir;

namespace {

std::size_t entries(const fs::path& dir) {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++n;
    return n;
}

}  // namespace

TEST_CASE("write_file creates, truncates, and never follows a symlink") {
    TempDir dir("fedflow-file-io");
    file_io::write_file(dir.path / "a", "hello", 5);
    file_io::write_file(dir.path / "a", "hi", 2);
    CHECK(slurp(dir.path / "a") == "hi");

    std::ofstream(dir.path / "target") << "keep";
    fs::create_symlink(dir.path / "target", dir.path / "link");
    CHECK_THROWS_WITH_AS(file_io::write_file(dir.path / "link", "x", 1),
                         doctest::Contains(("create " + (dir.path / "link").string()).c_str()), std::system_error);
    CHECK(slurp(dir.path / "target") == "keep");
}

TEST_CASE("write_file_atomic replaces a file whole") {
    TempDir dir("fedflow-file-io");
    const fs::path p = dir.path / "run.json";
    file_io::write_file_atomic(p, "{\"a\": 1}\n");
    file_io::write_file_atomic(p, "{\"a\": 2}\n");
    CHECK(slurp(p) == "{\"a\": 2}\n");
    CHECK(entries(dir.path) == 1);  // no temporary file left

    SUBCASE("a temporary file a killed process with our pid left is replaced") {
        const fs::path stale = dir.path / (".run.json." + std::to_string(::getpid()) + ".tmp");
        std::ofstream(stale) << "stale";
        file_io::write_file_atomic(p, "new");
        CHECK(slurp(p) == "new");
        CHECK_FALSE(fs::exists(stale));
    }
    SUBCASE("a symlink at the temporary name is removed, not followed") {
        std::ofstream(dir.path / "target") << "keep";
        fs::create_symlink(dir.path / "target", dir.path / (".run.json." + std::to_string(::getpid()) + ".tmp"));
        file_io::write_file_atomic(p, "new");
        CHECK(slurp(p) == "new");
        CHECK(slurp(dir.path / "target") == "keep");
    }
    SUBCASE("a failed rename leaves the old file and no temporary one") {
        const fs::path d = dir.path / "a-directory";
        fs::create_directory(d);
        std::ofstream(d / "inside") << "x";  // rename over a non-empty directory fails
        CHECK_THROWS_WITH_AS(file_io::write_file_atomic(d, "x"), doctest::Contains("rename"), std::system_error);
        CHECK(slurp(p) == "{\"a\": 2}\n");
        CHECK(entries(dir.path) == 2);
    }
    SUBCASE("a folder it cannot write in: an error that names the file") {
        if (::geteuid() == 0) return;  // root writes anyway
        fs::permissions(dir.path, fs::perms::owner_read | fs::perms::owner_exec);
        CHECK_THROWS_WITH_AS(file_io::write_file_atomic(p, "x"), doctest::Contains("create"), std::system_error);
        fs::permissions(dir.path, fs::perms::owner_all);
        CHECK(slurp(p) == "{\"a\": 2}\n");
    }
}

TEST_CASE("read_file reads regular files only") {
    TempDir dir("fedflow-file-io");
    std::string big(200000, 'x');
    file_io::write_file(dir.path / "big", big.data(), big.size());
    CHECK(file_io::read_file(dir.path / "big") == big);
    CHECK_THROWS_WITH_AS(file_io::read_file(dir.path / "missing"), doctest::Contains("open"), std::system_error);
    CHECK_THROWS_WITH_AS(file_io::read_file(dir.path), doctest::Contains("not a regular file"), std::system_error);
    fs::create_symlink(dir.path / "big", dir.path / "link");
    CHECK_THROWS(file_io::read_file(dir.path / "link"));
}

TEST_CASE("remove_temporaries removes what a killed writer left, and nothing else") {
    TempDir dir("fedflow-file-io");
    for (const char* name : {".run.json.123.tmp", ".report.html.9.tmp", "run.json", "notes.tmp", ".hidden"})
        std::ofstream(dir.path / name) << "x";
    file_io::remove_temporaries(dir.path);
    CHECK_FALSE(fs::exists(dir.path / ".run.json.123.tmp"));
    CHECK_FALSE(fs::exists(dir.path / ".report.html.9.tmp"));
    CHECK(fs::exists(dir.path / "run.json"));
    CHECK(fs::exists(dir.path / "notes.tmp"));
    CHECK(fs::exists(dir.path / ".hidden"));
}
