#include "worker/fork_server.hpp"

#include "common/failpoints.hpp"
#include "common/fork_packet.hpp"

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
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

void reply(int fd, Dict body) {
    // The host gone: nothing left to serve (the children die with us).
    if (!fork_packet::send(fd, body)) std::_Exit(0);
}

// The children in a cgroup of their own: the host counts what each left
// there, then kills it.
std::set<pid_t> in_cgroup;

// Tells the host of every child that exited or stopped. An exited child's
// process group is killed before it is reaped (its pid, and so the group's
// id, cannot be reused while it is a zombie), as the host does for the
// workers it starts itself; not a child's in a cgroup, whose processes the
// host first counts as what the task left running, then kills.
void reap(int fd) {
    for (;;) {
        siginfo_t info{};
        if (::waitid(P_ALL, 0, &info, WEXITED | WSTOPPED | WNOHANG | WNOWAIT) != 0 || info.si_pid == 0) return;
        pid_t pid = info.si_pid;
        if (info.si_code == CLD_STOPPED || info.si_code == CLD_TRAPPED) {
            siginfo_t taken{};
            ::waitid(P_PID, static_cast<id_t>(pid), &taken, WSTOPPED | WNOHANG);
            Dict m;
            m["stopped"] = std::int64_t{pid};
            m["signal"] = std::int64_t{info.si_status};
            reply(fd, m);
            continue;
        }
        if (in_cgroup.erase(pid) == 0) ::kill(-pid, SIGKILL);
        int status = 0;
        if (::waitpid(pid, &status, WNOHANG) != pid) return;
        Dict m;
        m["exited"] = std::int64_t{pid};
        m["status"] = std::int64_t{status};
        reply(fd, m);
    }
}

// In the child: the descriptors, group, cwd and signals of an exec'd worker.
// fds: channel, stdout.log, stderr.log[, the task cgroup's cgroup.procs].
// Returns why it could not enter that cgroup, or "".
std::string set_up_child(const std::vector<int>& received, const std::string& workdir) {
    // A received descriptor may sit where another goes (fd 3, when the
    // server has no signalfd there): each is lifted above them first.
    std::vector<int> fds;
    for (int f : received) {
        int lifted = ::fcntl(f, F_DUPFD_CLOEXEC, 10);
        fds.push_back(lifted >= 0 ? lifted : f);
    }
    std::string cgroup_error;
    if (fds.size() == 4) {
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
    if (::chdir(workdir.c_str()) != 0) {
        std::fprintf(stderr, "fedflow-worker: cannot change to %s: %s\n", workdir.c_str(), std::strerror(errno));
        std::_Exit(127);
    }
    return cgroup_error;
}

std::string text(const Dict& d, const char* key) {
    const Value* v = d.find(key);
    return v != nullptr && v->is<std::string>() ? v->as<std::string>() : std::string();
}

std::int64_t integer(const Dict& d, const char* key) {
    const Value* v = d.find(key);
    return v != nullptr && v->is<std::int64_t>() ? v->as<std::int64_t>() : 0;
}

void close_all(std::vector<int>& fds) {
    for (int f : fds) ::close(f);
    fds.clear();
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
    close_all(fds);
    const Value* preload = first ? first->find("preload") : nullptr;
    if (preload == nullptr || !preload->is<Dict>()) std::_Exit(2);
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
    const fork_packet::ForkedAnswer forked;
    // Only the server's own loop runs from here on, which starts no thread:
    // once it has been seen to run one thread it always does, and threads
    // are not counted again (opening /proc for each fork cost ~0.15 ms).
    bool single_threaded = count_threads() == 1;

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
            reap(fd);
        }
        if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        std::optional<Dict> m;
        try {
            m = fork_packet::receive(fd, fds);
        } catch (const std::exception&) {
            std::_Exit(2);
        }
        if (!m) std::_Exit(0);  // the host closed the socket: it is ending
        const Value* request = m->find("fork");
        // channel, stdout.log, stderr.log[, the task cgroup's cgroup.procs]
        if (request == nullptr || !request->is<Dict>() || fds.size() < 3 || fds.size() > 4) {
            close_all(fds);
            std::_Exit(2);
        }
        const Dict& r = request->as<Dict>();
        if (!single_threaded) {
            int threads = count_threads();
            single_threaded = threads == 1;
            if (!single_threaded) {
                Dict answer;
                answer["refused"] = threads < 0 ? std::string("cannot count its threads (/proc/self/task)")
                                                : "it runs " + std::to_string(threads) +
                                                      " threads (the plugin started threads when it was loaded)";
                close_all(fds);
                reply(fd, answer);
                continue;
            }
        }
        std::string workdir = text(r, "workdir");
        Child child{self, static_cast<long>(integer(r, "nofile")), text(r, "contain"), {}};
        const bool contained = fds.size() == 4;
        if (hooks.fork != nullptr) hooks.fork(0);
        pid_t pid = ::fork();
        if (pid == 0) {
            if (hooks.fork != nullptr) hooks.fork(2);
            ::close(sfd);
            child.start_error = set_up_child(fds, workdir);
            std::_Exit(hooks.child(child));
        }
        int err = errno;
        // The host waits for this answer and can do nothing else meanwhile:
        // it goes first, before the server writes any of the pages it now
        // shares with the child (each write would copy one, tens of
        // microseconds on some VMs). Before, the host waited 2.0-2.8 ms per
        // fork on the 2-CPU test VM, 1.1 ms now.
        if (pid > 0 && !forked.send(fd, pid)) std::_Exit(0);
        if (hooks.fork != nullptr) hooks.fork(1);
        close_all(fds);
        if (pid < 0) {
            Dict answer;
            answer["refused"] = std::string("fork: ") + std::strerror(err);
            answer["errno"] = std::int64_t{err};
            reply(fd, answer);
        } else if (contained) {
            in_cgroup.insert(pid);
        }
    }
}

}  // namespace fedflow::worker::fork_server
