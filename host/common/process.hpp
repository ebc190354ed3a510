// process.hpp: starting a child process and waiting for it, the one way the
// host does it (workers, [notify] commands).
//
// A child is started with posix_spawn (vfork + exec: never a bare fork of a
// host that may hold threads or CUDA state) with an empty signal mask,
// default handlers for SIGINT, SIGTERM, SIGPIPE, SIGCHLD and SIGHUP (the host
// blocks SIGINT/SIGTERM and reads them from a signalfd; both a mask and
// ignored signals are inherited through exec), in a process group of its
// own unless Spec::own_group says otherwise (a Ctrl-C in the terminal
// reaches the host alone, and the host can end the child with all it
// started). The host watches it through a pidfd, which becomes readable
// when it has exited. Workers (exec/), the host's helpers and [notify]
// commands are all started here.
#pragma once

#include "common/signals.hpp"  // describe_wait_status

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace fedflow::process {

// What a child gets.
struct Spec {
    // argv[0] is the program: a path, or with search_path a name looked up
    // in PATH (posix_spawnp).
    std::vector<std::string> argv;
    bool search_path = false;
    // NULL-terminated "NAME=value" entries; nullptr: the host's environment.
    char* const* envp = nullptr;
    // Its working directory (empty: the host's); relative paths of `files`
    // are opened in it.
    std::filesystem::path cwd;
    // A process group of its own (the default), or the host's: a child that
    // must read the terminal (a debugger) cannot from a background group.
    bool own_group = true;

    // A descriptor of the child, set up in order after the chdir: a file
    // opened at `path` (with flags and mode), or a copy of the host's `from`.
    struct Fd {
        int fd;
        std::string path;
        int flags = 0;
        mode_t mode = 0;
        int from = -1;
    };
    std::vector<Fd> files;
    // Every descriptor from this one up is closed in the child, whatever
    // the host forgot to mark close-on-exec; -1: none closed.
    int close_from = -1;

    static Fd open(int fd, std::string path, int flags, mode_t mode = 0) {
        return {fd, std::move(path), flags, mode, -1};
    }
    static Fd dup(int from, int fd) { return {fd, {}, 0, 0, from}; }
};

// A started child. Destroying a child that has not been reaped kills its
// process group (SIGKILL) and reaps it.
class Child {
public:
    Child() = default;
    Child(Child&& o) noexcept;
    Child& operator=(Child&& o) noexcept;
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;
    ~Child();

    pid_t pid() const noexcept { return pid_; }
    // Readable once the child has exited; -1 without pidfd (Linux < 5.3).
    int pid_fd() const noexcept { return pidfd_; }
    bool exited() const noexcept { return wait_status_.has_value(); }
    std::optional<int> wait_status() const noexcept { return wait_status_; }

    // Reaps the child if it has exited (never blocks); true once exited. What
    // it left running in its process group is killed first, while its pid
    // (and so the group's id) cannot have been reused; before that,
    // on_exit() runs, for what else the child's end must clear.
    bool try_reap(const std::function<void()>& on_exit = nullptr);
    // Waits until the child has exited and is reaped, or `timeout` has
    // passed; true when it exited. Sleeps on the pidfd (poll), not in steps.
    bool wait_for(std::chrono::milliseconds timeout);
    // Sends a signal to its process group (or to it alone when it leads
    // none), unless it was reaped already; after any signal but SIGKILL and
    // SIGCONT also SIGCONT: a stopped process acts on nothing else until it
    // is continued.
    void kill(int signal) noexcept;
    // Continues a stopped child (SIGCONT to its process group).
    void resume() noexcept;
    // The signal that stopped the child (SIGSTOP, SIGTSTP, ...) since the
    // last call, or 0; never blocks, and reports each stop once.
    int take_stop() noexcept;
    // The last signal kill() sent (0: none): an end by that signal is the
    // host's doing, not a crash.
    int signal_sent() const noexcept { return signal_sent_; }
    // Gives the child up: returns its pid, which the caller now reaps, and
    // leaves this Child empty (its destructor then does nothing).
    pid_t detach() noexcept;

private:
    friend Child spawn(const Spec& spec);
    void release() noexcept;

    pid_t pid_ = -1;
    int pidfd_ = -1;
    int signal_sent_ = 0;
    std::optional<int> wait_status_;
};

// Starts spec.argv. Throws std::system_error "cannot start PROGRAM[ in DIR]:
// why" when it cannot (the program missing or not executable, the cwd
// missing, a file that cannot be opened).
Child spawn(const Spec& spec);

}  // namespace fedflow::process
