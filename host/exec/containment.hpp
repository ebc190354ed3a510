// containment.hpp: how the processes a task starts end with it.
//
// A task's plugin may start programs, and those may start daemons (double
// fork, setsid) that leave the worker's process group. One mechanism per
// run keeps track of them, the best this machine allows:
//
//   cgroup     a cgroup v2 per task, below the host's own cgroup: the host
//              moves each worker into its own, counts and kills (cgroup.kill)
//              what is left there when the worker ends, and a guard process
//              (fedflow-worker --guard) kills everything of the run's cgroups
//              when the host dies, however it dies.
//   pidns      a PID namespace per task (fedflow-worker --contain pidns,
//              host/worker/shim.hpp): the end of its init ends them all.
//   subreaper  a shim per task that adopts the task's orphans and kills them
//              (fedflow-worker --contain subreaper).
//
// FEDFLOW_CONTAIN=cgroup|pidns|subreaper forces one (for tests). What each
// covers and what it does not is in docs/architecture.md ("Descendants").
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <sys/types.h>

namespace fedflow {

enum class Containment { cgroup, pidns, subreaper };

const char* to_string(Containment c) noexcept;

class Descendants {
public:
    // Chooses the mechanism: FEDFLOW_CONTAIN when set (std::invalid_argument
    // when it names none, or one this machine cannot give), else a cgroup
    // when one can be created below the host's own, else a PID namespace
    // when worker_exe --probe-pidns may create one, else a subreaper.
    // run_name names the run's cgroup.
    static std::unique_ptr<Descendants> open(const std::filesystem::path& worker_exe, const std::string& run_name);
    // cgroup: kills what is left in the run's cgroups, removes them, and
    // lets the guard go.
    ~Descendants();
    Descendants(const Descendants&) = delete;
    Descendants& operator=(const Descendants&) = delete;

    Containment kind() const noexcept { return kind_; }
    // For the log: which mechanism, where, and why not a better one.
    const std::string& description() const noexcept { return description_; }
    // What the worker's command line needs ("--contain", "pidns"), if anything.
    std::vector<std::string> worker_args() const;
    // cgroup: a cgroup for the next task's worker: one that an earlier task
    // left empty (reuse()), else a new one; empty for the other mechanisms.
    std::filesystem::path new_task_cgroup();
    // cgroup: dir's worker has ended and no process is left in dir or below
    // it: it serves a later task. Creating a cgroup and removing it again
    // cost the host's loop about 30 µs (the kernel makes and unmakes every
    // controller's files), a fifth of what a short task costs it; the run
    // keeps at most as many as it ever ran workers at once.
    void reuse(std::filesystem::path dir);
    // cgroup: a task cgroup whose processes were killed but may not be gone
    // yet: removed once they are (at a later call, or at the end).
    void retire(std::filesystem::path dir);

private:
    Descendants() = default;
    void start_guard(const std::filesystem::path& worker_exe);
    void remove_retired();

    Containment kind_ = Containment::subreaper;
    std::string description_;
    std::filesystem::path run_cgroup_;
    std::uint64_t task_seq_ = 0;
    std::vector<std::filesystem::path> retired_;
    std::vector<std::filesystem::path> spare_;  // empty task cgroups, for new_task_cgroup
    int guard_pipe_ = -1;                       // the write end; the guard reads EOF when the host is gone
    pid_t guard_pid_ = -1;
};

}  // namespace fedflow
