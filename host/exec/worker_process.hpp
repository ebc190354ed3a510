// worker_process.hpp: one fedflow-worker child process, seen from the host.
//
// Started by process::spawn (posix_spawn, its own process group), cwd = the
// task's workdir, stdin from /dev/null, stdout/stderr into
// stdout.log/stderr.log there, the control socket as fd 3, and no other
// descriptor. The host watches two fds per
// worker: the socket (messages, and EOF the moment the worker dies) and a
// pidfd (readable once the process has exited, so it is reaped at once).
//
// What the task starts ends with it: the run's Descendants (containment.hpp)
// puts the worker into a cgroup of its own or has it started through a
// shim, and the worker counts what was left when it ended (leftovers()).
//
// Descriptors and processes are resources of the host too: spawn refuses
// with SpawnDeferred, to be tried again once a worker has ended, when the
// host's descriptors would run short or the process limit is reached.
#pragma once

#include "common/channel.hpp"
#include "common/file_io.hpp"
#include "common/messages.hpp"
#include "common/process.hpp"

#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <sys/types.h>

namespace fedflow {

class Descendants;
class ForkServer;

// The worker cannot start now for want of something that the end of a
// running worker frees (a file descriptor, a process under RLIMIT_NPROC);
// what() says what.
class SpawnDeferred : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Whether a start that failed with errno err may succeed later, once a
// worker has ended: no process slot (RLIMIT_NPROC or the pids cgroup), no
// descriptor, no memory to fork.
bool transient_start_error(int err) noexcept;

struct SpawnOptions {
    std::filesystem::path worker;        // the fedflow-worker executable
    std::filesystem::path workdir;       // its cwd, where stdout.log and stderr.log go
    char* const* envp = nullptr;         // its environment (NULL-terminated)
    Descendants* descendants = nullptr;  // the run's containment; none: its process group only
    // fedflow-host run-task: stdin, stdout and stderr are the host's, the
    // worker stays in the host's process group (a debugger needs the
    // terminal), and runs under wrapper when given ({"gdb", "--args"}).
    bool foreground = false;
    std::vector<std::string> wrapper;
};

class WorkerProcess {
public:
    // Starts the worker. Throws SpawnDeferred (see above), or
    // std::system_error when it cannot be started.
    static std::unique_ptr<WorkerProcess> spawn(const SpawnOptions& options);
    // Starts the worker as a child of a fork server (exec/fork_server.hpp),
    // set up as spawn sets it up (options.worker, envp, foreground and
    // wrapper do not apply). Throws as spawn does, and ForkRefused.
    static std::unique_ptr<WorkerProcess> fork(ForkServer& server, const SpawnOptions& options);
    // The command line spawn runs (wrapper included), for run-task to show.
    static std::vector<std::string> command_line(const SpawnOptions& options);
    ~WorkerProcess();  // kills (SIGKILL) and reaps a worker still running
    WorkerProcess(const WorkerProcess&) = delete;
    WorkerProcess& operator=(const WorkerProcess&) = delete;

    // Raises the soft limit on open files to the hard one (a host with many
    // workers holds several descriptors for each), once, at the start of the
    // host; workers get the soft limit back (select() fails on descriptors
    // of 1024 and more, and a plugin may use it).
    static void raise_fd_limit();

    // The process that runs the plugin: the worker, once a shim has said
    // which (until then the process the host started).
    pid_t pid() const noexcept { return worker_pid_ > 0 ? worker_pid_ : started_pid(); }
    int channel_fd() const noexcept { return sock_; }
    // -1 for a forked worker: its server tells of its end.
    int pid_fd() const noexcept { return child_.pid_fd(); }
    bool channel_open() const noexcept { return sock_ >= 0; }
    bool exited() const noexcept { return wait_status().has_value(); }
    // Forked by a fork server, which tells how it ended (no pidfd to poll
    // while the server lives).
    bool relayed() const noexcept { return server_ != nullptr; }
    // The fork server that forked it, or -1.
    pid_t server_pid() const noexcept;
    // The wait status once exited.
    std::optional<int> wait_status() const noexcept { return server_ ? forked_status_ : child_.wait_status(); }

    // Sends a message; false when the worker is gone.
    bool send(const messages::FromHost& m);
    // Reads what the socket has (non-blocking) into out. Returns false at
    // EOF, after which the channel is closed. Throws channel::ProtocolError
    // on a malformed frame; the frames before it are in out.
    bool read_available(std::vector<channel::Message>& out);
    // What was said so far: Conversation::receive decodes and checks what
    // the worker sends.
    messages::Conversation& conversation() noexcept { return conversation_; }
    // The worker closed its end of the channel while it ran on (not while
    // it died): a plugin closed fd 3, or exec'd. Set by read_available at EOF.
    bool channel_closed_by_worker() const noexcept { return closed_by_worker_; }
    // Reaps the process if it has exited (never blocks); true once exited.
    bool try_reap();
    // Sends a signal to the worker's process group if the process has not
    // been reaped yet, and SIGCONT after any signal but SIGKILL: a stopped
    // process acts on nothing else until it is continued.
    void kill(int signal) noexcept;
    // Continues a stopped worker (SIGCONT to its process group).
    void resume() noexcept;
    // The signal that stopped the worker (SIGSTOP, SIGTSTP, ...) since the
    // last call, or 0; never blocks, and reports each stop once. The host
    // learns of a stop through SIGCHLD.
    int take_stop() noexcept;
    // Which signal the host sent last (0 = none): an exit by that signal is
    // the host's doing, not a crash.
    int signal_sent() const noexcept { return server_ ? forked_signal_sent_ : child_.signal_sent(); }
    // Once exited: how many processes the task left running, all killed.
    std::size_t leftovers() const noexcept { return leftovers_; }
    // Once exited: not empty when the worker was killed with its fork
    // server, which died or was given up (ForkServer::Exit::lost says how).
    const std::string& lost_with_server() const noexcept { return lost_with_server_; }

private:
    WorkerProcess() = default;
    void close_channel() noexcept;
    // What spawn and fork share: the channel's socket pair (the worker's end
    // into worker_end), containment and the cgroup of a new worker.
    static std::unique_ptr<WorkerProcess> prepare(const SpawnOptions& o, file_io::Fd& worker_end);
    // The shim's frames (worker, leftovers) are the process's business,
    // not the task's: taken here, true when m was one.
    bool take_shim_frame(const channel::Message& m);
    // cgroup: counts and kills what the worker left in its cgroup.
    void end_cgroup() noexcept;
    // The process the host started (or its fork server forked).
    pid_t started_pid() const noexcept { return server_ ? forked_pid_ : child_.pid(); }

    process::Child child_;   // the process the host started (the worker, or its shim)
    pid_t worker_pid_ = -1;  // with a shim: the worker
    int sock_ = -1;
    bool closed_by_worker_ = false;
    channel::FrameReader reader_;
    Descendants* descendants_ = nullptr;
    std::filesystem::path cgroup_;  // cgroup: the worker's own
    std::size_t leftovers_ = 0;
    bool shim_ = false;
    messages::Conversation conversation_;
    // Forked: the server that is its parent, and what a Child would hold.
    ForkServer* server_ = nullptr;
    pid_t forked_pid_ = -1;
    std::optional<int> forked_status_;
    std::string lost_with_server_;
    int forked_signal_sent_ = 0;
};

// Starts a helper process of the host (fedflow-worker --guard, --probe-pidns,
// --fork-server) by process::spawn (its own process group, an empty signal
// mask), with stdin from `in` (or /dev/null), stdout on /dev/null, stderr on
// `err` (or the host's) and the environment envp (or the host's). Throws
// std::system_error; the caller reaps it.
pid_t spawn_helper(const std::filesystem::path& exe, const std::vector<std::string>& args, int in = -1, int err = -1,
                   char* const* envp = nullptr);

}  // namespace fedflow
