#include "exec/worker_process.hpp"

#include <fmt/core.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <system_error>

#include <fcntl.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

namespace fedflow {

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

// The host blocks SIGINT/SIGTERM (it reads them from a signalfd), and the
// mask is inherited through exec: a worker gets an empty mask and default
// handlers back, and its own process group, so that a Ctrl-C in the terminal
// reaches the host alone and the host ends its workers in order.
struct Attributes {
    posix_spawnattr_t attr;
    Attributes() {
        posix_spawnattr_init(&attr);
        sigset_t none, defaults;
        sigemptyset(&none);
        sigemptyset(&defaults);
        for (int sig : {SIGINT, SIGTERM, SIGPIPE, SIGCHLD, SIGHUP}) sigaddset(&defaults, sig);
        posix_spawnattr_setsigmask(&attr, &none);
        posix_spawnattr_setsigdefault(&attr, &defaults);
        posix_spawnattr_setpgroup(&attr, 0);
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
    }
    ~Attributes() { posix_spawnattr_destroy(&attr); }
};

// Owns a posix_spawn_file_actions_t for the duration of one spawn.
struct FileActions {
    posix_spawn_file_actions_t fa;
    FileActions() { posix_spawn_file_actions_init(&fa); }
    ~FileActions() { posix_spawn_file_actions_destroy(&fa); }
    void check(int rc, const char* what) {
        if (rc != 0) throw std::system_error(rc, std::generic_category(), what);
    }
};

}  // namespace

std::unique_ptr<WorkerProcess> WorkerProcess::spawn(const std::filesystem::path& worker_exe,
                                                    const std::filesystem::path& workdir, char* const* envp) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        throw std::system_error(errno, std::generic_category(), "socketpair");
    std::unique_ptr<WorkerProcess> w(new WorkerProcess());
    w->sock_ = sv[0];

    const std::string dir = workdir.string();
    FileActions fa;
    // Order matters: chdir first, so the logs open relative to the workdir;
    // fd 3 is the channel; closefrom(4) drops every other inherited fd.
    fa.check(posix_spawn_file_actions_addchdir_np(&fa.fa, dir.c_str()), "spawn: chdir");
    fa.check(posix_spawn_file_actions_addopen(&fa.fa, 0, "/dev/null", O_RDONLY, 0), "spawn: stdin");
    fa.check(posix_spawn_file_actions_addopen(&fa.fa, 1, "stdout.log", O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0644),
             "spawn: stdout");
    fa.check(posix_spawn_file_actions_addopen(&fa.fa, 2, "stderr.log", O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0644),
             "spawn: stderr");
    fa.check(posix_spawn_file_actions_adddup2(&fa.fa, sv[1], 3), "spawn: channel");
    fa.check(posix_spawn_file_actions_addclosefrom_np(&fa.fa, 4), "spawn: closefrom");

    const std::string exe = worker_exe.string();
    const std::string host_pid = std::to_string(::getpid());
    const char* argv[] = {exe.c_str(), "--channel", "3", "--host-pid", host_pid.c_str(), nullptr};
    pid_t pid = -1;
    static const Attributes attributes;
    int rc = ::posix_spawn(&pid, exe.c_str(), &fa.fa, &attributes.attr, const_cast<char* const*>(argv), envp);
    ::close(sv[1]);
    if (rc != 0) throw std::system_error(rc, std::generic_category(), fmt::format("cannot start {} in {}", exe, dir));
    w->pid_ = pid;
    w->pidfd_ = pidfd_open(pid);
    if (w->pidfd_ >= 0) ::fcntl(w->pidfd_, F_SETFD, FD_CLOEXEC);
    ::fcntl(w->sock_, F_SETFL, ::fcntl(w->sock_, F_GETFL) | O_NONBLOCK);
    return w;
}

WorkerProcess::~WorkerProcess() {
    if (!wait_status_ && pid_ > 0) {
        if (::kill(-pid_, SIGKILL) != 0) ::kill(pid_, SIGKILL);
        int status = 0;
        while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
        }
    }
    close_channel();
    if (pidfd_ >= 0) ::close(pidfd_);
}

void WorkerProcess::close_channel() noexcept {
    if (sock_ >= 0) ::close(sock_);
    sock_ = -1;
}

bool WorkerProcess::send(channel::Type type, const Dict& body) {
    if (sock_ < 0) return false;
    // The socket is non-blocking for reads; control messages are small and
    // the socket buffer holds them, so a send that would block means a
    // worker that stopped reading: treat it as gone.
    try {
        return channel::send(sock_, type, body);
    } catch (const std::system_error&) {
        return false;
    }
}

bool WorkerProcess::read_available(std::vector<channel::Message>& out) {
    if (sock_ < 0) return false;
    char buf[65536];
    for (;;) {
        ssize_t n = ::read(sock_, buf, sizeof buf);
        if (n > 0) {
            reader_.feed(buf, static_cast<std::size_t>(n));
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        bool eof = n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
        while (auto m = reader_.next()) out.push_back(std::move(*m));
        if (eof) {
            close_channel();
            return false;
        }
        return true;
    }
}

bool WorkerProcess::try_reap() {
    if (wait_status_) return true;
    // Exited, but not reaped yet (WNOWAIT): while the worker is a zombie its
    // pid, and so its process group id, cannot be reused, so what it left
    // running in its group (a task's program, say) can be killed safely.
    siginfo_t info{};
    if (::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) != 0 || info.si_pid != pid_)
        return false;
    ::kill(-pid_, SIGKILL);
    int status = 0;
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
        wait_status_ = status;
        return true;
    }
    return false;
}

void WorkerProcess::kill(int signal) noexcept {
    if (wait_status_ || pid_ <= 0) return;
    signal_sent_ = signal;
    // The worker leads its own process group: the signal reaches what it
    // started too (a command task's program).
    if (::kill(-pid_, signal) != 0) ::kill(pid_, signal);
}

std::string describe_wait_status(int status) {
    if (WIFEXITED(status)) return fmt::format("exited with code {}", WEXITSTATUS(status));
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        const char* abbrev = sigabbrev_np(sig);
        const char* text = strsignal(sig);
        return fmt::format("killed by signal SIG{} ({})", abbrev != nullptr ? abbrev : std::to_string(sig).c_str(),
                           text != nullptr ? text : "unknown");
    }
    return fmt::format("ended with wait status {}", status);
}

}  // namespace fedflow
