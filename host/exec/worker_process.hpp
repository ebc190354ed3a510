// worker_process.hpp: one fedflow-worker child process, seen from the host.
//
// Started with posix_spawn (vfork + exec: never a bare fork of a host that
// may hold threads or CUDA state), cwd = the task's workdir, stdin from
// /dev/null, stdout/stderr into stdout.log/stderr.log there, the control
// socket as fd 3, and no other descriptor. The host watches two fds per
// worker: the socket (messages, and EOF the moment the worker dies) and a
// pidfd (readable once the process has exited, so it is reaped at once).
#pragma once

#include "common/channel.hpp"

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <sys/types.h>

namespace fedflow {

class WorkerProcess {
public:
    // Spawns worker_exe in workdir with environment envp (NULL-terminated).
    // Throws std::system_error when the process cannot be started.
    static std::unique_ptr<WorkerProcess> spawn(const std::filesystem::path& worker_exe,
                                                const std::filesystem::path& workdir, char* const* envp);
    ~WorkerProcess();  // kills (SIGKILL) and reaps a worker still running
    WorkerProcess(const WorkerProcess&) = delete;
    WorkerProcess& operator=(const WorkerProcess&) = delete;

    pid_t pid() const noexcept { return pid_; }
    int channel_fd() const noexcept { return sock_; }
    int pid_fd() const noexcept { return pidfd_; }
    bool channel_open() const noexcept { return sock_ >= 0; }
    bool exited() const noexcept { return wait_status_.has_value(); }
    // The wait status once exited.
    std::optional<int> wait_status() const noexcept { return wait_status_; }

    // Sends a message; false when the worker is gone.
    bool send(channel::Type type, const Dict& body = {});
    // Reads what the socket has (non-blocking) into out. Returns false at
    // EOF, after which the channel is closed. Throws on a malformed frame.
    bool read_available(std::vector<channel::Message>& out);
    // Reaps the process if it has exited (never blocks); true once exited.
    bool try_reap();
    // Sends a signal if the process has not been reaped yet.
    void kill(int signal) noexcept;
    // Which signal the host sent last (0 = none): an exit by that signal is
    // the host's doing, not a crash.
    int signal_sent() const noexcept { return signal_sent_; }

private:
    WorkerProcess() = default;
    void close_channel() noexcept;

    pid_t pid_ = -1;
    int sock_ = -1;
    int pidfd_ = -1;
    int signal_sent_ = 0;
    std::optional<int> wait_status_;
    channel::FrameReader reader_;
};

// "exited with code 3", "killed by signal SIGSEGV (Segmentation fault)".
std::string describe_wait_status(int status);

}  // namespace fedflow
