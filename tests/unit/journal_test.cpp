// The journal keeps whole lines only: a torn last line (a host killed, or a
// disk that filled up, in the middle of a write) is cut off when the journal
// is opened again, and a line that cannot be written leaves nothing of
// itself in the file and goes in before the next one that can be written.
#include "runner/journal.hpp"

#include <doctest/doctest.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include <sys/resource.h>
#include <unistd.h>

using namespace fedflow;
namespace fs = std::filesystem;

namespace {

struct TempFile {
    fs::path path = fs::temp_directory_path() / ("fedflow-journal-test-" + std::to_string(::getpid()) + ".jsonl");
    ~TempFile() { fs::remove(path); }
    std::string text() const {
        std::ifstream in(path, std::ios::binary);
        return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    }
    void write(const std::string& s) const { std::ofstream(path, std::ios::binary) << s; }
};

std::size_t lines(const std::string& text) {
    std::size_t n = 0;
    for (char c : text) n += c == '\n';
    return n;
}

}  // namespace

TEST_CASE("a torn last line is cut off when the journal opens") {
    TempFile f;
    SUBCASE("after whole lines") {
        f.write("{\"a\":1}\n{\"b\":2}\n{\"event\":\"sta");
        Journal j;
        CHECK(j.open(f.path, nullptr) == 13);
        CHECK(f.text() == "{\"a\":1}\n{\"b\":2}\n");
        j.write({{"event", "run_start"}});
        std::string text = f.text();
        CHECK(lines(text) == 3);
        CHECK(text.rfind("{\"time\":", 16) == 16);
    }
    SUBCASE("with no whole line at all") {
        f.write("{\"time\":");
        Journal j;
        CHECK(j.open(f.path, nullptr) == 8);
        CHECK(f.text().empty());
    }
    SUBCASE("a torn line longer than one read") {
        f.write("{\"a\":1}\n" + std::string(200000, 'x'));
        Journal j;
        CHECK(j.open(f.path, nullptr) == 200000);
        CHECK(f.text() == "{\"a\":1}\n");
    }
    SUBCASE("whole lines stay as they are") {
        f.write("{\"a\":1}\n");
        Journal j;
        CHECK(j.open(f.path, nullptr) == 0);
        CHECK(f.text() == "{\"a\":1}\n");
    }
}

TEST_CASE("a line that does not fit leaves nothing of itself and goes in later") {
    // RLIMIT_FSIZE stands in for a full disk: a write past it fails (EFBIG)
    // after writing what fits, as one on a full disk does (ENOSPC).
    TempFile f;
    Journal j;
    j.open(f.path, nullptr);
    j.write({{"event", "first"}});
    const std::string first = f.text();
    REQUIRE(lines(first) == 1);

    struct sigaction ignore {
    }, old{};
    ignore.sa_handler = SIG_IGN;
    ::sigaction(SIGXFSZ, &ignore, &old);
    rlimit saved{};
    ::getrlimit(RLIMIT_FSIZE, &saved);
    rlimit small = saved;
    small.rlim_cur = first.size() + 20;  // room for part of a line
    REQUIRE(::setrlimit(RLIMIT_FSIZE, &small) == 0);
    j.write({{"event", "second"}, {"padding", std::string(100, 'p')}});
    j.write({{"event", "third"}});
    CHECK(j.error() == EFBIG);
    CHECK_FALSE(j.complete());
    // keep-rounds removes a round's folder only when sync() says that its
    // round_removed line is on disk: this one waits for space.
    j.write({{"event", "round_removed"}, {"round", 1}, {"block", 1}});
    CHECK_FALSE(j.sync());
    ::setrlimit(RLIMIT_FSIZE, &saved);
    ::sigaction(SIGXFSZ, &old, nullptr);
    CHECK(f.text() == first);  // not a byte of the lines that did not fit

    j.write({{"event", "fourth"}});
    CHECK(j.complete());
    CHECK(j.sync());
    const std::string text = f.text();
    REQUIRE(lines(text) == 5);
    CHECK(text.find("second") < text.find("third"));
    CHECK(text.find("third") < text.find("fourth"));
}
