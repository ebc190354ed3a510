#include "common/process.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <system_error>
#include <utility>

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace fedflow::process {

namespace {

int pidfd_open(pid_t pid) {
#ifdef SYS_pidfd_open
    return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
#else
    (void)pid;
    errno = ENOSYS;
    return -1;
#endif
}

struct Attributes {
    posix_spawnattr_t attr;
    explicit Attributes(bool own_group) {
        posix_spawnattr_init(&attr);
        sigset_t none, defaults;
        sigemptyset(&none);
        sigemptyset(&defaults);
        for (int sig : {SIGINT, SIGTERM, SIGPIPE, SIGCHLD, SIGHUP}) sigaddset(&defaults, sig);
        posix_spawnattr_setsigmask(&attr, &none);
        posix_spawnattr_setsigdefault(&attr, &defaults);
        short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
        if (own_group) {
            posix_spawnattr_setpgroup(&attr, 0);
            flags |= POSIX_SPAWN_SETPGROUP;
        }
        posix_spawnattr_setflags(&attr, flags);
    }
    ~Attributes() { posix_spawnattr_destroy(&attr); }
};

// Owns a posix_spawn_file_actions_t for the duration of one spawn.
struct FileActions {
    posix_spawn_file_actions_t fa;
    FileActions() { posix_spawn_file_actions_init(&fa); }
    ~FileActions() { posix_spawn_file_actions_destroy(&fa); }
    FileActions(const FileActions&) = delete;
    FileActions& operator=(const FileActions&) = delete;
    void check(int rc, const std::string& what) const {
        if (rc != 0) throw std::system_error(rc, std::generic_category(), "spawn: " + what);
    }
};

}  // namespace

Child spawn(const Spec& spec) {
    if (spec.argv.empty() || spec.argv.front().empty()) throw std::invalid_argument("spawn: no program given");
    FileActions fa;
    const std::string dir = spec.cwd.string();
    if (!dir.empty()) fa.check(posix_spawn_file_actions_addchdir_np(&fa.fa, dir.c_str()), "chdir " + dir);
    for (const Spec::Fd& f : spec.files) {
        if (f.from >= 0) fa.check(posix_spawn_file_actions_adddup2(&fa.fa, f.from, f.fd), fmt::format("fd {}", f.fd));
        else
            fa.check(posix_spawn_file_actions_addopen(&fa.fa, f.fd, f.path.c_str(), f.flags, f.mode),
                     fmt::format("fd {} ({})", f.fd, f.path));
    }
    if (spec.close_from >= 0) fa.check(posix_spawn_file_actions_addclosefrom_np(&fa.fa, spec.close_from), "closefrom");

    std::vector<char*> argv;
    for (const std::string& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    static const Attributes own_group(true), hosts_group(false);
    const Attributes& attributes = spec.own_group ? own_group : hosts_group;
    char* const* envp = spec.envp != nullptr ? spec.envp : environ;
    pid_t pid = -1;
    const int rc = spec.search_path ? ::posix_spawnp(&pid, argv[0], &fa.fa, &attributes.attr, argv.data(), envp)
                                    : ::posix_spawn(&pid, argv[0], &fa.fa, &attributes.attr, argv.data(), envp);
    if (rc != 0)
        throw std::system_error(rc, std::generic_category(),
                                fmt::format("cannot start {}{}", spec.argv.front(), dir.empty() ? "" : " in " + dir));
    Child c;
    c.pid_ = pid;
    c.pidfd_ = pidfd_open(pid);
    if (c.pidfd_ >= 0) ::fcntl(c.pidfd_, F_SETFD, FD_CLOEXEC);
    return c;
}

Child::Child(Child&& o) noexcept
    : pid_(std::exchange(o.pid_, -1)),
      pidfd_(std::exchange(o.pidfd_, -1)),
      signal_sent_(o.signal_sent_),
      wait_status_(o.wait_status_) {}

Child& Child::operator=(Child&& o) noexcept {
    if (this != &o) {
        release();
        pid_ = std::exchange(o.pid_, -1);
        pidfd_ = std::exchange(o.pidfd_, -1);
        signal_sent_ = o.signal_sent_;
        wait_status_ = o.wait_status_;
    }
    return *this;
}

Child::~Child() { release(); }

void Child::release() noexcept {
    if (!wait_status_ && pid_ > 0) {
        if (::kill(-pid_, SIGKILL) != 0) ::kill(pid_, SIGKILL);
        int status = 0;
        while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
        }
    }
    if (pidfd_ >= 0) ::close(pidfd_);
    pidfd_ = -1;
    pid_ = -1;
}

bool Child::try_reap(const std::function<void()>& on_exit) {
    if (wait_status_) return true;
    if (pid_ <= 0) return false;
    // Exited, but not reaped yet (WNOWAIT): while the child is a zombie its
    // pid, and so its process group id, cannot be reused, so what it left
    // running in its group (a task's program, say) can be killed safely.
    siginfo_t info{};
    if (::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) != 0 || info.si_pid != pid_)
        return false;
    if (on_exit) on_exit();
    ::kill(-pid_, SIGKILL);
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        wait_status_ = status;
        return true;
    }
    return false;
}

bool Child::wait_for(std::chrono::milliseconds timeout) {
    using Clock = std::chrono::steady_clock;
    const auto deadline = Clock::now() + timeout;
    for (;;) {
        if (try_reap()) return true;
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        if (left.count() <= 0) return false;
        if (pidfd_ < 0) {
            // No pidfd (Linux < 5.3): nothing to sleep on but time.
            ::usleep(static_cast<useconds_t>(std::min<std::int64_t>(left.count(), 10) * 1000));
            continue;
        }
        pollfd p{pidfd_, POLLIN, 0};
        const int r = ::poll(&p, 1, static_cast<int>(std::min<std::int64_t>(left.count(), 1 << 30)));
        if (r < 0 && errno != EINTR) return try_reap();
    }
}

void Child::kill(int signal) noexcept {
    if (wait_status_ || pid_ <= 0) return;
    signal_sent_ = signal;
    // The child leads its own process group: the signal reaches what it
    // started too (a command task's program).
    if (::kill(-pid_, signal) != 0) ::kill(pid_, signal);
    if (signal != SIGKILL && signal != SIGCONT) resume();
}

void Child::resume() noexcept {
    if (wait_status_ || pid_ <= 0) return;
    if (::kill(-pid_, SIGCONT) != 0) ::kill(pid_, SIGCONT);
}

int Child::take_stop() noexcept {
    if (wait_status_ || pid_ <= 0) return 0;
    siginfo_t info{};
    if (::waitid(P_PID, static_cast<id_t>(pid_), &info, WSTOPPED | WNOHANG) != 0 || info.si_pid != pid_ ||
        info.si_code != CLD_STOPPED)
        return 0;
    return info.si_status;
}

pid_t Child::detach() noexcept {
    if (pidfd_ >= 0) ::close(pidfd_);
    pidfd_ = -1;
    return std::exchange(pid_, -1);
}

}  // namespace fedflow::process
