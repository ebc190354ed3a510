// /proc/<pid>/stat: fields found after the last ')' whatever the program's
// name holds, and what the host reads of a live, a zombie and a reaped
// process.
#include "common/proc_stat.hpp"

#include <doctest/doctest.h>

#include <csignal>
#include <optional>
#include <string_view>

#include <sys/wait.h>
#include <unistd.h>

using namespace fedflow;

TEST_CASE("parse_brief: the state, parent and flags after the last ')'") {
    // A name may hold ") S 1 " and blanks: only the last ')' ends it.
    auto b = proc::parse_brief("4242 (evil) R 1 (x) 7) S 317 4242 4242 0 -1 4194368 120 0 0 0\n");
    REQUIRE(b);
    CHECK(b->state == 'S');
    CHECK(b->ppid == 317);
    CHECK(b->flags == 4194368);
    CHECK(b->running_not_exiting());

    auto exiting = proc::parse_brief("9 (w) R 8 9 9 0 -1 4194372 0");  // PF_EXITING (0x4) set
    REQUIRE(exiting);
    CHECK_FALSE(exiting->ended());
    CHECK_FALSE(exiting->running_not_exiting());

    auto zombie = proc::parse_brief("9 (w) Z 8 9 9 0 -1 4194304 0");
    REQUIRE(zombie);
    CHECK(zombie->ended());
    CHECK_FALSE(zombie->running_not_exiting());

    CHECK_FALSE(proc::parse_brief(""));
    CHECK_FALSE(proc::parse_brief("12 no parenthesis S 1 2 3 4 5 6"));
    CHECK_FALSE(proc::parse_brief("12 (short) S 1 2"));
    CHECK_FALSE(proc::parse_brief("12 (x) S one 2 3 4 5 6"));
    CHECK_FALSE(proc::parse_brief("12 (x) SS 1 2 3 4 5 6"));
}

TEST_CASE("stat_fields fills at most n and says how many there were") {
    std::string_view f[4];
    CHECK(proc::stat_fields("1 (a b) R 2 3", f, 4) == 3);
    CHECK(f[0] == "R");
    CHECK(f[2] == "3");
    CHECK(proc::stat_fields("1 (a) R 2 3 4 5 6", f, 4) == 4);
    CHECK(f[3] == "4");
}

TEST_CASE("read_brief: this process, a zombie child, a reaped one") {
    auto self = proc::read_brief(::getpid());
    REQUIRE(self);
    CHECK(self->ppid == ::getppid());
    CHECK(self->running_not_exiting());

    pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) ::_exit(0);
    // Until it is reaped the child is a zombie; poll for it to get there.
    std::optional<proc::Brief> b;
    for (int i = 0; i < 2000; ++i) {
        b = proc::read_brief(child);
        if (b && b->ended()) break;
        ::usleep(1000);
    }
    REQUIRE(b);
    CHECK(b->ended());
    CHECK(b->ppid == ::getpid());
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    CHECK_FALSE(proc::read_brief(child));
}
