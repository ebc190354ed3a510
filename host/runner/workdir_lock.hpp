// workdir_lock.hpp: one run at a time in a workdir.
//
// A run, fresh or resumed, holds an exclusive flock(2) on
// <workdir>/.fedflow.lock from before it touches anything else in the
// workdir until it ends, so that a second fedflow-host on the same workdir
// is refused (exit 2) instead of deleting or mixing the first one's files.
// The file says who holds it (pid, host name, start time), for that
// refusal. The kernel drops the lock when the holder dies, SIGKILL included,
// so a killed run leaves no stale lock; the file itself stays, and marks the
// directory as Fedflow's (a run killed before it wrote run.json leaves a
// workdir that the next run accepts).
//
// flock is advisory: it keeps Fedflow runs apart, not other programs. On NFS
// Linux maps it to a POSIX lock on the server (NFSv4, or NLM), so it holds
// across machines that share the workdir, as long as the server keeps locks.
#pragma once

#include <filesystem>
#include <string>

namespace fedflow {

class WorkdirLock {
public:
    static constexpr const char* file_name = ".fedflow.lock";

    // Creates the workdir (and its parents) if needed, then takes the lock.
    // Throws std::invalid_argument (nothing was started: exit 2) when the
    // workdir cannot be a directory or another run holds it; the message
    // names the holder: "workdir DIR is in use by another run: fedflow-host
    // (pid 4251 on host node7, started 2026-...)".
    explicit WorkdirLock(const std::filesystem::path& workdir);
    ~WorkdirLock();  // releases the lock; the file stays
    WorkdirLock(const WorkdirLock&) = delete;
    WorkdirLock& operator=(const WorkdirLock&) = delete;

    // Throws std::invalid_argument when workdir is not a directory, or
    // cannot be one because a file lies on its path, naming what is there:
    // "workdir DIR is a regular file, not a directory (choose --workdir)".
    static void check_path(const std::filesystem::path& workdir);
    // Who holds the workdir's lock, from its file ("pid 4251 on host node7,
    // started ..."), or "" when it says nothing readable, or names a process
    // of this host that is gone (a killed run's; the run that holds the
    // lock now has not written yet).
    static std::string holder(const std::filesystem::path& workdir);

private:
    int fd_ = -1;
};

}  // namespace fedflow
