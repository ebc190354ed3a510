// Starting and waiting for a child (common/process.hpp): what the child
// gets, and a wait that ends when the child does or the timeout passes.
#include "common/proc_stat.hpp"
#include "common/process.hpp"

#include "support/files.hpp"

#include <doctest/doctest.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <system_error>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace fedflow;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
using fedflow::test::slurp;
using fedflow::test::TempDir;

namespace {

process::Spec shell(const std::string& script) {
    process::Spec s;
    s.argv = {"/bin/sh", "-c", script};
    return s;
}

}  // namespace

TEST_CASE("a child's exit status, described") {
    process::Child c = process::spawn(shell("exit 3"));
    CHECK(c.pid() > 0);
    REQUIRE(c.wait_for(30s));
    CHECK(c.exited());
    CHECK(describe_wait_status(*c.wait_status()) == "exited with code 3");
}

TEST_CASE("wait_for gives up after its timeout; kill ends the child's whole group") {
    TempDir dir("fedflow-process");
    process::Spec s = shell("sleep 60 & echo $! > bg.pid; sleep 60; wait");
    s.cwd = dir.path;
    process::Child c = process::spawn(s);
    CHECK_FALSE(c.wait_for(50ms));
    CHECK_FALSE(c.exited());
    CHECK(::getpgid(c.pid()) == c.pid());  // a process group of its own
    c.kill(SIGKILL);
    REQUIRE(c.wait_for(30s));
    CHECK(c.signal_sent() == SIGKILL);
    CHECK(describe_wait_status(*c.wait_status()) == "killed by signal SIGKILL (Killed)");
    // What it started in its group is gone too (at most a zombie, until
    // init reaps it).
    std::string bg;
    for (int i = 0; i < 1000 && bg.empty(); ++i, ::usleep(1000)) bg = slurp(dir.path / "bg.pid");
    REQUIRE_FALSE(bg.empty());
    // SIGKILL reaches it at once, but it takes a moment to become a zombie.
    const pid_t bg_pid = std::stoi(bg);
    std::optional<proc::Brief> st = proc::read_brief(bg_pid);
    for (int i = 0; i < 5000 && st && !st->ended(); ++i, ::usleep(1000)) st = proc::read_brief(bg_pid);
    CHECK((!st || st->ended()));
}

TEST_CASE("what the child gets: cwd, files, closed descriptors, an empty signal mask") {
    TempDir dir("fedflow-process");
    const int leaked = ::open("/dev/null", O_RDONLY);  // not close-on-exec
    REQUIRE(leaked >= 3);
    const int kept = ::open("/dev/null", O_RDONLY);
    process::Spec s = shell("pwd; ls /proc/self/fd | sort -n | tr '\\n' ' '; echo; grep SigBlk /proc/self/status; "
                            "echo oops >&2");
    s.cwd = dir.path;
    s.files = {process::Spec::open(1, "out.txt", O_WRONLY | O_CREAT | O_TRUNC, 0644), process::Spec::dup(1, 2),
               process::Spec::dup(kept, 3)};
    s.close_from = 4;
    // The host blocks SIGTERM; the child must not inherit that.
    sigset_t term, old;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    ::sigprocmask(SIG_BLOCK, &term, &old);
    process::Child c = process::spawn(s);
    ::sigprocmask(SIG_SETMASK, &old, nullptr);
    REQUIRE(c.wait_for(30s));
    ::close(leaked);
    ::close(kept);
    CHECK(*c.wait_status() == 0);
    const std::string out = slurp(dir.path / "out.txt");
    CAPTURE(out);
    CHECK(out.find(fs::canonical(dir.path).string() + "\n") == 0);
    // 0 (the host's stdin), 1 and 2 (out.txt), 3 (kept), and ls's own
    // descriptor for /proc/self/fd; not the leaked one.
    CHECK(out.find("\n0 1 2 3 4 \n") != std::string::npos);
    CHECK(out.find("SigBlk:\t0000000000000000") != std::string::npos);
    CHECK(out.find("oops") != std::string::npos);
}

TEST_CASE("a program looked up in PATH, an environment of its own") {
    TempDir dir("fedflow-process");
    char env0[] = "FEDFLOW_PROCESS_TEST=hello";
    char env1[] = "PATH=/usr/bin:/bin";
    char* envp[] = {env0, env1, nullptr};
    process::Spec s;
    s.argv = {"sh", "-c", "echo $FEDFLOW_PROCESS_TEST > env.txt"};
    s.search_path = true;
    s.envp = envp;
    s.cwd = dir.path;
    process::Child c = process::spawn(s);
    REQUIRE(c.wait_for(30s));
    CHECK(slurp(dir.path / "env.txt") == "hello\n");
}

TEST_CASE("a program that cannot start is an error that names it") {
    process::Spec s;
    s.argv = {"/nonexistent/fedflow-program"};
    CHECK_THROWS_WITH_AS(process::spawn(s), doctest::Contains("cannot start /nonexistent/fedflow-program"),
                         std::system_error);
    s.argv = {"/bin/true"};
    s.cwd = "/nonexistent-dir";
    CHECK_THROWS_WITH_AS(process::spawn(s), doctest::Contains("in /nonexistent-dir"), std::system_error);
}

TEST_CASE("a child that is dropped is killed and reaped") {
    pid_t pid = -1;
    {
        process::Child c = process::spawn(shell("sleep 60"));
        pid = c.pid();
        process::Child moved = std::move(c);
        CHECK(c.pid() == -1);
        CHECK(moved.pid() == pid);
    }
    CHECK(::kill(pid, 0) != 0);  // gone, not a zombie: reaped
}

TEST_CASE("signals and wait statuses in words") {
    CHECK(signal_name(SIGTERM) == "SIGTERM");
    CHECK(signal_name(1000) == "signal 1000");
    CHECK(describe_signal(SIGSEGV) == "SIGSEGV (Segmentation fault)");
    CHECK(describe_wait_status(0) == "exited with code 0");
    CHECK(describe_wait_status(SIGKILL) == "killed by signal SIGKILL (Killed)");
}

TEST_CASE("a stopped child: take_stop says so once, a signal reaches it, resume continues it") {
    process::Child c = process::spawn(shell("kill -STOP $$; exit 4"));
    int stop = 0;
    for (int i = 0; i < 30000 && stop == 0; ++i, ::usleep(1000)) stop = c.take_stop();
    CHECK(stop == SIGSTOP);
    CHECK(c.take_stop() == 0);  // each stop once
    CHECK_FALSE(c.wait_for(20ms));
    c.resume();
    REQUIRE(c.wait_for(30s));
    CHECK(describe_wait_status(*c.wait_status()) == "exited with code 4");

    // SIGTERM to a stopped child is followed by SIGCONT: it acts on it.
    process::Child d = process::spawn(shell("kill -STOP $$; sleep 60"));
    for (int i = 0; i < 30000 && d.take_stop() == 0; ++i) ::usleep(1000);
    d.kill(SIGTERM);
    REQUIRE(d.wait_for(30s));
    CHECK(describe_wait_status(*d.wait_status()) == "killed by signal SIGTERM (Terminated)");
}

TEST_CASE("try_reap runs on_exit once the child has exited, before it is reaped") {
    process::Child c = process::spawn(shell("exit 0"));
    bool zombie_seen = false;
    int calls = 0;
    const pid_t pid = c.pid();
    auto on_exit = [&] {
        ++calls;
        // Not reaped yet: its pid is still a zombie's.
        zombie_seen = slurp("/proc/" + std::to_string(pid) + "/stat").find(") Z ") != std::string::npos;
    };
    for (int i = 0; i < 30000 && !c.try_reap(on_exit); ++i) ::usleep(1000);
    CHECK(c.exited());
    CHECK(calls == 1);
    CHECK(zombie_seen);
    CHECK(c.try_reap(on_exit));
    CHECK(calls == 1);
}

TEST_CASE("a detached child is left to its caller") {
    pid_t pid = -1;
    {
        process::Child c = process::spawn(shell("exit 5"));
        pid = c.detach();
        CHECK(c.pid() == -1);
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);  // not reaped by the Child
    CHECK(describe_wait_status(status) == "exited with code 5");
}
