#include "worker/shim.hpp"

#include "common/cgroup.hpp"
#include "common/channel.hpp"
#include "common/messages.hpp"
#include "common/proc_stat.hpp"

#include <fedflow/value.hpp>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

namespace fedflow::worker::shim {

namespace {

namespace ch = fedflow::channel;

int channel = -1;  // the channel's fd, once run() knows it

// As the worker does when it cannot start: a line in stderr.log, a `failed`
// message, exit code 2.
[[noreturn]] void die(const std::string& message) {
    std::fprintf(stderr, "fedflow-worker: %s\n", message.c_str());
    std::fflush(stderr);
    if (channel >= 0) {
        try {
            messages::Failed failed;
            failed.stage = messages::Failed::Stage::start;
            failed.message = message;
            ch::send(channel, failed.type, failed.encode());
        } catch (const std::exception&) {
        }
    }
    std::_Exit(2);
}

// The children of pid, as /proc/PID/task/TID/children lists them for each
// of its threads (a child belongs to the thread that forked it).
std::vector<pid_t> children_of(pid_t pid) {
    std::vector<pid_t> out;
    std::string task = "/proc/" + std::to_string(pid) + "/task";
    DIR* d = ::opendir(task.c_str());
    if (d == nullptr) return out;
    while (dirent* e = ::readdir(d)) {
        if (e->d_name[0] == '.') continue;
        std::ifstream in(task + "/" + e->d_name + "/children");
        pid_t child = 0;
        while (in >> child) out.push_back(child);
    }
    ::closedir(d);
    return out;
}

bool zombie(pid_t pid) {
    auto stat = proc::read_brief(pid);
    return !stat || stat->ended();
}

// Every live process below root.
std::vector<pid_t> subtree(pid_t root) {
    std::vector<pid_t> out, todo = children_of(root);
    std::set<pid_t> seen;
    while (!todo.empty()) {
        pid_t p = todo.back();
        todo.pop_back();
        if (!seen.insert(p).second) continue;
        if (!zombie(p)) out.push_back(p);
        for (pid_t c : children_of(p)) todo.push_back(c);
    }
    return out;
}

void reap_all() {
    while (::waitpid(-1, nullptr, WNOHANG) > 0) {
    }
}

void pause_ms(long ms) {
    timespec ts{0, ms * 1000000};
    ::nanosleep(&ts, nullptr);
}

// Subreaper: kills every process below this one until none is left (what
// is killed leaves its children to this process, which kills them in the
// next round). Returns how many it killed.
std::size_t kill_descendants() {
    std::set<pid_t> killed;
    for (int round = 0; round < 2000; ++round) {
        std::vector<pid_t> live = subtree(::getpid());
        reap_all();
        if (live.empty() && children_of(::getpid()).empty()) break;
        for (pid_t p : live) {
            killed.insert(p);
            ::kill(p, SIGKILL);
        }
        pause_ms(1);
    }
    reap_all();
    return killed.size();
}

// fork, tried again while it fails for want of a process slot (the user's
// process limit: the end of another task frees one), for at most 10 s.
pid_t fork_retrying(const char* what) {
    constexpr long patience_ms = 10000;
    for (long waited = 0;;) {
        pid_t p = ::fork();
        if (p >= 0) return p;
        if (errno != EAGAIN || waited >= patience_ms)
            die(std::string("cannot start ") + what + ": fork: " + std::strerror(errno) +
                (errno == EAGAIN ? " (the process limit did not clear within 10 s)" : ""));
        long step = std::min(100L, 5 + waited / 10);
        pause_ms(step);
        waited += step;
    }
}

[[noreturn]] void end_as(int status) {
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        // The worker's core dump is the one that matters, not the shim's.
        rlimit none{0, 0};
        ::setrlimit(RLIMIT_CORE, &none);
        ::signal(sig, SIG_DFL);
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, sig);
        ::sigprocmask(SIG_UNBLOCK, &set, nullptr);
        ::raise(sig);
        std::_Exit(128 + sig);  // a signal whose default is not to end
    }
    std::_Exit(WIFEXITED(status) ? WEXITSTATUS(status) : 2);
}

template <class Message>
void tell_host(int channel_fd, const Message& m) {
    try {
        ch::send(channel_fd, Message::type, m.encode());
    } catch (const std::exception&) {
        // The host is gone or the channel broken: nobody to tell.
    }
}

}  // namespace

pid_t run(const std::string& mode, int channel_fd, long host_pid) {
    channel = channel_fd;
    bool pidns = mode == "pidns";
    if (!pidns && mode != "subreaper") die("unknown --contain mode '" + mode + "'");
    // pidns: dying with the host is enough (the init dies with this
    // process, and the namespace with the init). subreaper: this process
    // must outlive the host long enough to kill what the task left.
    ::prctl(PR_SET_PDEATHSIG, pidns ? SIGKILL : SIGUSR1);
    if (host_pid != 0 && ::getppid() != host_pid) std::_Exit(0);
    pid_t shim = ::getpid();

    sigset_t events, old;
    sigemptyset(&events);
    for (int sig : {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGCONT, SIGUSR1}) sigaddset(&events, sig);
    ::sigprocmask(SIG_BLOCK, &events, &old);

    pid_t init = -1;
    int alive[2] = {-1, -1};  // the shim holds the write end: EOF when it is gone
    if (pidns) {
        if (::unshare(CLONE_NEWPID) != 0)
            die(std::string("cannot create a PID namespace for the task: ") + std::strerror(errno));
        if (::pipe2(alive, O_CLOEXEC) != 0) die(std::string("pipe: ") + std::strerror(errno));
        init = fork_retrying("the PID namespace's init");
        if (init == 0) {
            // pid 1 of the namespace: reaps the orphans that come to it,
            // holds no file of the task, and ends with the shim. (Its
            // parent is outside the namespace, so getppid() says 0: the
            // pipe tells whether the shim died before the signal was armed.)
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);
            for (int fd = 0; fd < 1024; ++fd)
                if (fd != alive[0]) ::close(fd);
            int sfd = ::signalfd(-1, &events, SFD_CLOEXEC | SFD_NONBLOCK);
            for (;;) {
                pollfd fds[2] = {{alive[0], POLLIN, 0}, {sfd, POLLIN, 0}};
                ::poll(fds, 2, -1);
                if (fds[0].revents != 0) std::_Exit(0);
                signalfd_siginfo si;
                while (::read(sfd, &si, sizeof si) > 0) {
                }
                reap_all();
            }
        }
        ::close(alive[0]);
    } else if (::prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
        die(std::string("cannot become a child subreaper: ") + std::strerror(errno));
    }

    pid_t worker = fork_retrying("the worker");
    if (worker == 0) {
        ::sigprocmask(SIG_SETMASK, &old, nullptr);
        if (alive[1] >= 0) ::close(alive[1]);
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        // In the namespace the shim is outside, and getppid() says 0; a shim
        // that died before the signal was armed took the init with it, and
        // the init this process.
        if (pidns) return 0;
        if (::getppid() != shim) std::_Exit(0);
        return shim;
    }
    ::close(STDIN_FILENO);
    ::close(STDOUT_FILENO);
    tell_host(channel_fd, messages::ShimWorker{worker});

    int status = 0;
    bool worker_ended = false;
    while (!worker_ended) {
        siginfo_t si{};
        if (::sigwaitinfo(&events, &si) < 0) continue;
        switch (si.si_signo) {
        case SIGCHLD:
            for (;;) {
                int st = 0;
                pid_t p = ::waitpid(-1, &st, WNOHANG | WUNTRACED);
                if (p <= 0) break;
                if (p == worker && WIFSTOPPED(st)) {
                    // Stopped: so is the shim, for the host to see (it
                    // continues the process group, the worker with it).
                    ::raise(SIGSTOP);
                } else if (p == worker) {
                    status = st;
                    worker_ended = true;
                } else if (p == init) {
                    init = -1;  // the namespace is gone, the worker with it
                }
            }
            break;
        case SIGUSR1:
            if (::getppid() == host_pid) break;  // not the parent-death signal
            ::kill(worker, SIGKILL);
            kill_descendants();
            std::_Exit(0);
        default:
            // Meant for the worker, which may have left the shim's process
            // group: passed on (a second SIGTERM or SIGCONT does no harm).
            ::kill(worker, si.si_signo);
        }
    }

    std::size_t left = 0;
    if (pidns) {
        // After the worker's end, every process of the namespace is below
        // its init (orphans go to it); killing the init kills them all, and
        // its wait returns once they are gone.
        if (init > 0) {
            left = subtree(init).size();
            ::kill(init, SIGKILL);
            while (::waitpid(init, nullptr, 0) < 0 && errno == EINTR) {
            }
        }
    } else {
        left = kill_descendants();
    }
    if (left > 0) tell_host(channel_fd, messages::ShimLeftovers{static_cast<std::int64_t>(left)});
    end_as(status);
}

int guard(const std::string& dir) {
    ::signal(SIGINT, SIG_IGN);
    ::signal(SIGHUP, SIG_IGN);
    char c;
    for (;;) {
        ssize_t n = ::read(STDIN_FILENO, &c, 1);
        if (n == 0 || (n < 0 && errno != EINTR)) break;
    }
    if (!cgroup::kill(dir) && errno == ENOENT) return 0;  // the host removed it
    cgroup::wait_empty(dir, std::chrono::seconds(5));
    if (!cgroup::remove(dir)) {
        std::fprintf(stderr, "fedflow-worker --guard: cannot remove cgroup %s: processes are left in it\n",
                     dir.c_str());
        return 1;
    }
    return 0;
}

void probe_pidns() {
    if (::unshare(CLONE_NEWPID) != 0) {
        std::fprintf(stderr, "unshare(CLONE_NEWPID): %s\n", std::strerror(errno));
        std::fflush(stderr);
        std::_Exit(1);
    }
    // From here on the process ends by _Exit: LeakSanitizer's check at exit
    // (build-asan) forks, and a PID namespace whose init has ended refuses
    // every fork, so the check would fail the probe.
    pid_t child = ::fork();
    if (child < 0) {
        std::fprintf(stderr, "fork into a new PID namespace: %s\n", std::strerror(errno));
        std::fflush(stderr);
        std::_Exit(1);
    }
    if (child == 0) std::_Exit(0);
    int status = 0;
    while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    std::_Exit(WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1);
}

}  // namespace fedflow::worker::shim
