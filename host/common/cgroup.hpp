// cgroup.hpp: the few cgroup v2 operations that end a task's processes.
//
// With cgroups, each task's worker runs in a cgroup of its own,
// <the host's cgroup>/fedflow-<run>/t<n>: every process it starts (a double
// fork and setsid included) stays in that cgroup, and cgroup.kill (Linux
// 5.14) ends them all at once. The host uses these to place a worker and
// end what it left; the run's guard (fedflow-worker --guard, see
// docs/architecture.md) uses them to end everything when the host dies.
// Plain system calls: no library wraps cgroupfs.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include <sys/types.h>

namespace fedflow::cgroup {

// The calling process's own cgroup v2 directory: its "0::" line of
// /proc/self/cgroup below the cgroup2 mount of /proc/self/mountinfo. Empty,
// with why set, when there is no cgroup v2 hierarchy.
std::filesystem::path own_dir(std::string& why);

// Moves process pid into the cgroup dir. Throws std::system_error.
void adopt(const std::filesystem::path& dir, pid_t pid);

// The processes in dir and in the cgroups below it (zombies are not in a
// cgroup any more).
std::vector<pid_t> members(const std::filesystem::path& dir);

// Sends SIGKILL to every process in dir and below (cgroup.kill). False,
// with errno set, when that file cannot be written.
bool kill(const std::filesystem::path& dir);

// Waits until no process is left in dir and below ("populated 0" in
// cgroup.events), at most timeout. True once it is empty.
bool wait_empty(const std::filesystem::path& dir, std::chrono::milliseconds timeout);

// Removes dir and the cgroups below it, deepest first. False when one is
// still populated (or cannot be removed); what could go is gone.
bool remove(const std::filesystem::path& dir);

}  // namespace fedflow::cgroup
