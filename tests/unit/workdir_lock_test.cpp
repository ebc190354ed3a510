// The workdir's lock (runner/workdir_lock.hpp): one run at a time, and a
// run refused once it holds the lock leaves the lock file as it was.
#include "runner/workdir_lock.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

using fedflow::WorkdirLock;
namespace fs = std::filesystem;

namespace {

std::string read(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write(const fs::path& p, const std::string& text) { std::ofstream(p, std::ios::binary) << text; }

struct timespec mtime(const fs::path& p) {
    struct stat st {};
    REQUIRE(::stat(p.c_str(), &st) == 0);
    return st.st_mtim;
}

bool operator==(const struct timespec& a, const struct timespec& b) {
    return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

struct TempDir {
    fs::path path;
    TempDir() {
        char t[] = "/tmp/fedflow-lock-test-XXXXXX";
        REQUIRE(::mkdtemp(t) != nullptr);
        path = t;
    }
    ~TempDir() { fs::remove_all(path); }
};

// A workdir that holds a run (its run.json), without a lock file.
struct Workdir : TempDir {
    fs::path wd = path / "wd";
    fs::path lock = wd / WorkdirLock::file_name;
    Workdir() {
        fs::create_directory(wd);
        write(wd / "run.json", "{}\n");
    }
};

}  // namespace

TEST_CASE("a workdir takes one run at a time, and the refusal names the holder") {
    TempDir tmp;
    const fs::path wd = tmp.path / "wd";
    WorkdirLock first(wd);
    CHECK(read(wd / WorkdirLock::file_name).find("\"pid\":" + std::to_string(::getpid())) != std::string::npos);
    CHECK_THROWS_WITH_AS(WorkdirLock{wd}, doctest::Contains("is in use by another run: fedflow-host (pid"),
                         std::invalid_argument);
}

TEST_CASE("a run refused before accept() leaves the lock file as it found it") {
    Workdir tmp;
    const fs::path& wd = tmp.wd;
    const fs::path& lock = tmp.lock;

    SUBCASE("its bytes and its modification time") {
        const std::string before = "{\"host\":\"node7\",\"pid\":4251,\"started\":\"2026-01-01T00:00:00.000Z\"}\n";
        write(lock, before);
        const struct timespec t = mtime(lock);
        ::usleep(20000);
        {
            WorkdirLock refused(wd);
            CHECK(read(lock) != before);  // names this run while it holds it
        }
        CHECK(read(lock) == before);
        CHECK(mtime(lock) == t);
    }
    SUBCASE("a lock file that this run created is removed, and the directory keeps its times") {
        const struct timespec t = mtime(wd);
        ::usleep(20000);
        { WorkdirLock refused(wd); }
        CHECK_FALSE(fs::exists(lock));
        CHECK(mtime(wd) == t);
    }
    SUBCASE("a workdir that this run created is removed") {
        const fs::path fresh = tmp.path / "fresh";
        { WorkdirLock refused(fresh); }
        CHECK_FALSE(fs::exists(fresh));
    }
}

TEST_CASE("a run that was accepted leaves the file naming it") {
    Workdir tmp;
    const fs::path& wd = tmp.wd;
    const fs::path& lock = tmp.lock;
    write(lock, "old\n");
    SUBCASE("an existing workdir") {
        WorkdirLock accepted(wd);
        accepted.accept();
    }
    SUBCASE("a new workdir") {
        const fs::path fresh = tmp.path / "fresh";
        {
            WorkdirLock accepted(fresh);
            accepted.accept();
        }
        CHECK(read(fresh / WorkdirLock::file_name).find("\"pid\":" + std::to_string(::getpid())) != std::string::npos);
        return;
    }
    CHECK(read(lock).find("\"pid\":" + std::to_string(::getpid())) != std::string::npos);
}
