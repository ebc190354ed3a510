// Reports how its worker process was set up, for the tests of the fork
// server (a forked worker must look like an exec'd one): pid, parent,
// process group, cwd, open descriptors, blocked signals, threads, and the
// parent's command line. Param `thread_at_load` is not read: the variant
// built with -DTHREAD_AT_LOAD (fault_thread_at_load) starts a thread when
// the library is loaded, which a plugin must not do under a fork server.
#include <fedflow/task.hpp>

#include <csignal>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include <dirent.h>
#include <unistd.h>

#ifdef THREAD_AT_LOAD
namespace {
struct StartsAThread {
    StartsAThread() {
        std::thread([] {
            for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
        }).detach();
    }
} starts_a_thread;
}  // namespace
#endif

namespace {
fedflow::List entries(const char* dir) {
    fedflow::List out;
    DIR* d = ::opendir(dir);
    if (d == nullptr) return out;
    int self = ::dirfd(d);
    while (dirent* e = ::readdir(d)) {
        if (e->d_name[0] == '.') continue;
        if (std::stoi(e->d_name) == self) continue;
        out.emplace_back(std::int64_t{std::stoi(e->d_name)});
    }
    ::closedir(d);
    return out;
}

std::string parent_command() {
    std::ifstream f("/proc/" + std::to_string(::getppid()) + "/cmdline");
    std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    for (char& c : s)
        if (c == '\0') c = ' ';
    return s;
}
}  // namespace

class ProcessInfo final : public fedflow::Task {
public:
    void load(fedflow::Context&) override {}
    fedflow::Dict train(fedflow::Context& ctx, std::string_view) override {
        sigset_t blocked;
        ::sigprocmask(SIG_BLOCK, nullptr, &blocked);
        fedflow::List signals;
        for (int s = 1; s < 32; ++s)
            if (sigismember(&blocked, s)) signals.emplace_back(std::int64_t{s});
        char cwd[4096] = {};
        if (::getcwd(cwd, sizeof cwd) == nullptr) cwd[0] = '\0';
        struct sigaction term {};
        ::sigaction(SIGTERM, nullptr, &term);
        double seconds = ctx.param<double>("seconds", 0.0);
        if (seconds > 0) std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
        return fedflow::Dict{{"pid", std::int64_t{::getpid()}},
                             {"ppid", std::int64_t{::getppid()}},
                             {"pgrp", std::int64_t{::getpgrp()}},
                             {"cwd", std::string(cwd)},
                             {"fds", entries("/proc/self/fd")},
                             {"threads", std::int64_t(entries("/proc/self/task").size())},
                             {"blocked", signals},
                             {"sigterm_default", term.sa_handler == SIG_DFL},
                             {"parent", parent_command()},
                             {"omp",
                              std::string(std::getenv("OMP_NUM_THREADS") ? std::getenv("OMP_NUM_THREADS") : "")}};
    }
};
#ifdef THREAD_AT_LOAD
FEDFLOW_TASK(ProcessInfo, "fault_thread_at_load")
#else
FEDFLOW_TASK(ProcessInfo, "process_info")
#endif
