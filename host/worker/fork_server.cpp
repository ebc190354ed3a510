#include "worker/fork_server.hpp"

#include "common/failpoints.hpp"
#include "common/fork_packet.hpp"

#include <array>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

namespace fedflow::worker::fork_server {

namespace {

// Threads of this process (/proc/self/task), -1 when it cannot tell.
int count_threads() {
    DIR* d = ::opendir("/proc/self/task");
    if (d == nullptr) return -1;
    int n = 0;
    while (dirent* e = ::readdir(d))
        if (e->d_name[0] != '.') ++n;
    ::closedir(d);
    return n;
}

// What the server writes for each fork, in memory its children do not share
// (MADV_DONTFORK): writing it is no copy-on-write fault. See fork_packet.hpp.
struct Scratch {
    fork_packet::ForkRequest request;
    // One bit per pid (PID_MAX_LIMIT on 64-bit Linux): the children in a
    // cgroup of their own, whose processes the host first counts as what
    // the task left running, then kills. Only the pages of pids in use are
    // ever touched.
    static constexpr std::size_t max_pids = std::size_t{1} << 22;
    std::uint64_t in_cgroup[max_pids / 64];

    void mark(pid_t pid, bool contained) {
        auto i = static_cast<std::size_t>(pid);
        if (i >= max_pids) return;
        if (contained) in_cgroup[i / 64] |= std::uint64_t{1} << (i % 64);
        else in_cgroup[i / 64] &= ~(std::uint64_t{1} << (i % 64));
    }
    bool contained(pid_t pid) const {
        auto i = static_cast<std::size_t>(pid);
        return i < max_pids && (in_cgroup[i / 64] >> (i % 64) & 1) != 0;
    }
};

// Maps the scratch memory; nullptr (errno set) when it cannot.
Scratch* map_scratch() {
    void* m = ::mmap(nullptr, sizeof(Scratch), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1,
                     0);
    if (m == MAP_FAILED) return nullptr;
    if (::madvise(m, sizeof(Scratch), MADV_DONTFORK) != 0) {
        int e = errno;
        ::munmap(m, sizeof(Scratch));
        errno = e;
        return nullptr;
    }
    return static_cast<Scratch*>(m);
}

struct Answers {
    fork_packet::IntAnswer forked{"forked"};
    fork_packet::IntAnswer spare{"spare"};
    fork_packet::IntAnswer exited{"exited", "status"};
    fork_packet::IntAnswer stopped{"stopped", "signal"};
};

void send_or_exit(bool sent) {
    // The host gone: nothing left to serve (the children die with us).
    if (!sent) std::_Exit(0);
}

// A rare answer (ready, failed, refused): encoded when sent.
void reply(int fd, const Dict& body) { send_or_exit(fork_packet::send(fd, body)); }

// Tells the host of every child that exited or stopped. An exited child's
// process group is killed before it is reaped (its pid, and so the group's
// id, cannot be reused while it is a zombie), as the host does for the
// workers it starts itself; not a child's in a cgroup (see Scratch).
void reap(int fd, Scratch& scratch, const Answers& answers) {
    for (;;) {
        siginfo_t info{};
        if (::waitid(P_ALL, 0, &info, WEXITED | WSTOPPED | WNOHANG | WNOWAIT) != 0 || info.si_pid == 0) return;
        pid_t pid = info.si_pid;
        if (info.si_code == CLD_STOPPED || info.si_code == CLD_TRAPPED) {
            siginfo_t taken{};
            ::waitid(P_PID, static_cast<id_t>(pid), &taken, WSTOPPED | WNOHANG);
            send_or_exit(answers.stopped.send(fd, pid, info.si_status));
            continue;
        }
        if (!scratch.contained(pid)) ::kill(-pid, SIGKILL);
        scratch.mark(pid, false);
        int status = 0;
        if (::waitpid(pid, &status, WNOHANG) != pid) return;
        send_or_exit(answers.exited.send(fd, pid, status));
    }
}

// In the child: the descriptors, group, cwd and signals of an exec'd worker.
// fds: channel, stdout.log, stderr.log[, the task cgroup's cgroup.procs].
// Returns why it could not enter that cgroup, or "".
std::string set_up_child(std::array<int, 4> fds, std::size_t nfds, const char* workdir) {
    // A received descriptor may sit where another goes (fd 3, when the
    // server has no signalfd there): each is lifted above them first.
    for (std::size_t i = 0; i < nfds; ++i) {
        int lifted = ::fcntl(fds[i], F_DUPFD_CLOEXEC, 10);
        if (lifted >= 0) fds[i] = lifted;
    }
    std::string cgroup_error;
    if (nfds == 4) {
        // "0": the process that writes. Before anything else: what the
        // child starts from now on is in the task's cgroup.
        bool failed = failpoints::armed("fork-cgroup-enter");
        if (failed) errno = EACCES;
        else failed = ::write(fds[3], "0", 1) != 1;
        if (failed) cgroup_error = std::string("cannot enter the task's cgroup: ") + std::strerror(errno);
    }
    ::setpgid(0, 0);
    ::dup2(fds[0], 3);
    ::dup2(fds[1], 1);
    ::dup2(fds[2], 2);
    int null = ::open("/dev/null", O_RDONLY);
    if (null >= 0 && null != 0) {
        ::dup2(null, 0);
        ::close(null);
    }
    ::closefrom(4);
    sigset_t none;
    sigemptyset(&none);
    for (int sig : {SIGINT, SIGTERM, SIGPIPE, SIGCHLD, SIGHUP}) ::signal(sig, SIG_DFL);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    if (::chdir(workdir) != 0) {
        std::fprintf(stderr, "fedflow-worker: cannot change to %s: %s\n", workdir, std::strerror(errno));
        std::_Exit(127);
    }
    return cgroup_error;
}

// In the child, forked on request or a spare given its request: set up as
// an exec'd worker, then the worker. Never returns.
[[noreturn]] void run_child(long self, long nofile, const char* contain, const char* workdir,
                            const std::array<int, 4>& fds, std::size_t nfds, const Hooks& hooks) {
    Child child{self, nofile, contain, {}};
    child.start_error = set_up_child(fds, nfds, workdir);
    std::_Exit(hooks.child(child));
}

void close_all(const std::array<int, 4>& fds, std::size_t& nfds) {
    for (std::size_t i = 0; i < nfds; ++i) ::close(fds[i]);
    nfds = 0;
}

// Forks a spare (fork_packet.hpp): a child that waits on a socket of its own
// for the fork request of the next task, and is then set up as a child
// forked on request. Its socket goes to the host with its pid; pid -1 when
// it cannot be forked (the host then asks for the next task's fork).
void fork_spare(int fd, int sfd, long self, bool contained, Scratch& scratch, const Answers& answers,
                const Hooks& hooks) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        send_or_exit(answers.spare.send(fd, -1));
        return;
    }
    if (hooks.fork != nullptr) hooks.fork(0);
    pid_t pid = ::fork();
    if (pid == 0) {
        if (hooks.fork != nullptr) hooks.fork(2);
        ::close(sfd);
        ::close(fd);
        ::close(sv[0]);
        // It dies with the server as a child forked on request does, and
        // ends when the host drops its socket unused (EOF).
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (::getppid() != self) std::_Exit(0);
        fork_packet::ForkRequest request;  // its own memory: the scratch is not shared
        std::array<int, 4> received{};
        std::size_t nfds = 0;
        fork_packet::Received got = fork_packet::Received::malformed;
        try {
            got = fork_packet::receive_fork(sv[1], request, received, nfds);
        } catch (const std::exception&) {
            std::_Exit(0);
        }
        ::close(sv[1]);
        if (got != fork_packet::Received::request || nfds < 3) std::_Exit(0);
        run_child(self, static_cast<long>(request.nofile), request.contain, request.workdir, received, nfds, hooks);
    }
    ::close(sv[1]);
    if (pid > 0) scratch.mark(pid, contained);
    send_or_exit(pid > 0 ? answers.spare.send(fd, pid, 0, sv[0]) : answers.spare.send(fd, -1));
    if (hooks.fork != nullptr) hooks.fork(1);
    ::close(sv[0]);
}

}  // namespace

void run(int fd, long host_pid, const Hooks& hooks) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (host_pid != 0 && ::getppid() != host_pid) std::_Exit(0);
    ::fcntl(fd, F_SETFD, FD_CLOEXEC);

    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    ::sigprocmask(SIG_BLOCK, &chld, nullptr);
    int sfd = ::signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);

    std::vector<int> fds;
    std::optional<Dict> first = fork_packet::receive(fd, fds);
    for (int f : fds) ::close(f);
    const Value* preload = first ? first->find("preload") : nullptr;
    if (preload == nullptr || !preload->is<Dict>()) std::_Exit(2);
    Scratch* scratch = map_scratch();
    if (scratch == nullptr) {
        reply(fd, Dict{{"failed", std::string("cannot map its scratch memory: ") + std::strerror(errno)}});
        std::_Exit(0);
    }
    {
        // A BLAS (numpy's OpenBLAS) starts a thread per CPU when it is
        // loaded, and a process with threads cannot fork safely.
        std::vector<std::pair<const char*, std::optional<std::string>>> saved;
        for (const char* name : preload_thread_variables) {
            const char* v = std::getenv(name);
            saved.emplace_back(name, v != nullptr ? std::optional<std::string>(v) : std::nullopt);
            ::setenv(name, "1", 1);
        }
        std::string error = hooks.preload(preload->as<Dict>());
        for (auto& [name, value] : saved) {
            if (value) ::setenv(name, value->c_str(), 1);
            else ::unsetenv(name);
        }
        Dict m;
        if (error.empty()) m["ready"] = Dict{};
        else m["failed"] = error;
        reply(fd, m);
        if (!error.empty()) std::_Exit(0);
    }
    const long self = ::getpid();
    // Nothing a preload buffered is written again by each child: flushed
    // once here, as the server writes nothing through stdio from now on.
    std::fflush(nullptr);
    const Answers answers;
    // Only the server's own loop runs from here on, which starts no thread:
    // once it has been seen to run one thread it always does, and threads
    // are not counted again (opening /proc for each fork cost ~0.15 ms).
    bool single_threaded = count_threads() == 1;
    // Read once: the loop allocates nothing.
    const bool no_spares = failpoints::armed("fork-spare-none");
    const bool die_after_fork = failpoints::armed("fork-server-die");

    // From here on the loop allocates nothing (fork_packet.hpp says why).
    std::array<int, 4> received{};
    std::size_t nfds = 0;
    for (;;) {
        pollfd p[2] = {{fd, POLLIN, 0}, {sfd, POLLIN, 0}};
        if (::poll(p, 2, -1) < 0) {
            if (errno == EINTR) continue;
            std::_Exit(3);
        }
        if (p[1].revents & POLLIN) {
            signalfd_siginfo si;
            while (::read(sfd, &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
            }
            reap(fd, *scratch, answers);
        }
        if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        fork_packet::Received got = fork_packet::Received::malformed;
        try {
            got = fork_packet::receive_fork(fd, scratch->request, received, nfds);
        } catch (const std::exception&) {
            std::_Exit(2);
        }
        if (got == fork_packet::Received::eof) std::_Exit(0);  // the host closed the socket: it is ending
        if (got == fork_packet::Received::spare) {
            // Asked for after a fork on request: the threads are counted.
            if (no_spares || !single_threaded) send_or_exit(answers.spare.send(fd, -1));
            else fork_spare(fd, sfd, self, scratch->request.nofile != 0, *scratch, answers, hooks);
            continue;
        }
        // channel, stdout.log, stderr.log[, the task cgroup's cgroup.procs]
        if (got != fork_packet::Received::request || nfds < 3) {
            close_all(received, nfds);
            std::_Exit(2);
        }
        if (!single_threaded) {
            int threads = count_threads();
            single_threaded = threads == 1;
            if (!single_threaded) {
                Dict answer;
                answer["refused"] =
                    threads < 0 ? std::string("cannot count its threads (/proc/self/task)")
                                : "it runs " + std::to_string(threads) +
                                      " threads (the plugin or a preload module started them when it was loaded)";
                close_all(received, nfds);
                reply(fd, answer);
                continue;
            }
        }
        // What the child needs of the request, on the stack: the scratch
        // memory is not the child's.
        const fork_packet::ForkRequest& r = scratch->request;
        char workdir[sizeof r.workdir];
        std::memcpy(workdir, r.workdir, std::strlen(r.workdir) + 1);
        char contain[sizeof r.contain];
        std::memcpy(contain, r.contain, sizeof contain);
        const long nofile = static_cast<long>(r.nofile);
        const bool contained = nfds == 4;
        if (hooks.fork != nullptr) hooks.fork(0);
        pid_t pid = ::fork();
        if (pid == 0) {
            if (hooks.fork != nullptr) hooks.fork(2);
            ::close(sfd);
            run_child(self, nofile, contain, workdir, received, nfds, hooks);
        }
        int err = errno;
        // The host waits for this answer and can do nothing else meanwhile:
        // it goes first, before the server writes any of the pages it now
        // shares with the child. Before, the host waited 2.0-2.8 ms per
        // fork on the 2-CPU test VM, 1.1 ms now.
        if (pid > 0) send_or_exit(answers.forked.send(fd, pid));
        if (pid > 0 && die_after_fork) ::kill(::getpid(), SIGKILL);
        if (hooks.fork != nullptr) hooks.fork(1);
        close_all(received, nfds);
        if (pid < 0) {
            Dict answer;
            answer["refused"] = std::string("fork: ") + std::strerror(err);
            answer["errno"] = std::int64_t{err};
            reply(fd, answer);
        } else {
            scratch->mark(pid, contained);
        }
    }
}

}  // namespace fedflow::worker::fork_server
