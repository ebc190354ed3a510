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
// A run that is refused once it holds the lock (the workdir holds finished
// results and neither --resume nor --overwrite was given, or --resume of a
// plan that changed) leaves the workdir as it found it: a lock released
// without accept() puts the file's bytes and times back, or removes it if
// this run created it (and the workdir, if this run created it and it is
// empty). A run that was accepted keeps the file naming it. Its identity is
// written as soon as the lock is taken all the same, so that a run refused
// meanwhile names the holder.
//
// flock is advisory: it keeps Fedflow runs apart, not other programs. On NFS
// Linux maps it to a POSIX lock on the server (NFSv4, or NLM), so it holds
// across machines that share the workdir, as long as the server keeps locks.
#pragma once

#include <array>
#include <filesystem>
#include <string>
#include <vector>

#include <time.h>

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
    ~WorkdirLock();  // releases the lock; the file stays as this run wrote it once accept() was called
    // The run goes on in the workdir (it passed every check that could
    // refuse it): the file keeps naming it when the lock is released.
    void accept() noexcept { accepted_ = true; }
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
    std::filesystem::path workdir_;
    int fd_ = -1;
    bool created_dir_ = false;
    bool created_file_ = false;
    bool restorable_ = false;
    std::string before_;              // the file's bytes before this run wrote its identity
    struct timespec times_[2]{};      // and its access and modification times
    struct timespec dir_times_[2]{};  // the workdir's, before this run created the file
    bool accepted_ = false;
};

}  // namespace fedflow
