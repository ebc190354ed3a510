// runner.hpp: runs a checked plan: groups in order, the tasks of a group in
// parallel up to max-processes, each in its own fedflow-worker.
//
// The loop is event-driven: it sleeps in poll() on every worker's socket and
// pidfd (and a signalfd for SIGINT/SIGTERM), and wakes the moment a worker
// sends a message or dies. There is no fixed sleep anywhere: the machine is
// sampled (sched/probe.hpp) only while a stage waits for resources or a task
// trains on a GPU, and stages are admitted by sched/admission.hpp against
// the ledger of what the running tasks hold (docs/scheduling.md).
#pragma once

#include "../common/shm.hpp"
#include "../notify/notify.hpp"
#include "../sched/admission.hpp"
#include "../sched/ledger.hpp"
#include "../sched/probe.hpp"
#include "journal.hpp"
#include "plan.hpp"
#include "plugin_registry.hpp"
#include "task_group.hpp"
#include "workdir_lock.hpp"

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <sys/signalfd.h>

namespace fedflow {

struct RunOptions {
    std::filesystem::path workdir;      // overrides the plan's when set
    std::filesystem::path worker;       // the fedflow-worker executable
    std::uint64_t seed = 0;
    Progress progress = Progress::plain;
    std::uint64_t result_limit = 0;     // max bytes of one task's result (0 = none)
    std::chrono::milliseconds kill_grace{5000};  // SIGTERM -> SIGKILL
    std::string gpus;                   // --gpus: replaces [resources] gpus when set
    bool resume = false;                // --resume: run only what has not finished
    bool force = false;                 // --force: resume even if the plan changed
    // How old a sample of the machine may be when a stage waits for
    // resources (twice that while tasks train on GPUs, for their peaks).
    std::chrono::milliseconds sample_period{250};
};

// Exit codes of fedflow-host (SPEC.md).
inline constexpr int exit_ok = 0;
inline constexpr int exit_task_failed = 1;
inline constexpr int exit_bad_input = 2;
inline constexpr int exit_host_failed = 3;

// The plugin file of every group, in plan order. Throws plan::PlanError
// (with file:line:column of the group's plugin key) for a plugin that is not
// on the search path or cannot serve.
std::vector<PluginFile> resolve_plugins(const plan::Plan& plan, const PluginRegistry& registry);

// The fedflow-worker next to this executable (or FEDFLOW_WORKER, or the
// install's libexec dir). Throws std::runtime_error when there is none.
std::filesystem::path find_worker();

class Runner {
public:
    Runner(const plan::Plan& plan, std::vector<PluginFile> plugins, RunOptions options);
    ~Runner();
    // Runs every group; returns the exit code. Throws std::invalid_argument
    // when the workdir cannot be used (nothing was started: exit 2), other
    // exceptions for failures of the host itself (exit 3).
    int run();

    const std::vector<std::unique_ptr<TaskGroup>>& groups() const noexcept { return groups_; }

private:
    // A task whose process has been started and not yet reaped.
    struct Live {
        TaskGroup* group = nullptr;
        Task* task = nullptr;
        std::string prefix;  // the task's shared-memory name prefix
        std::optional<std::chrono::steady_clock::time_point> closed_at;  // when EOF was seen on the socket
        bool segments_removed = false;  // all of the task's segments are gone
    };
    // Removes the segments of runs that are provably gone (shm::remove_abandoned).
    void remove_stale_segments();
    // Takes the workdir's lock (one run at a time), after refusing a
    // directory that holds something other than a Fedflow run. Throws
    // std::invalid_argument (exit 2).
    void claim_workdir();
    // A fresh run: empties the workdir (but for the lock).
    void prepare_workdir();
    // FEDFLOW_FAILPOINTS="host-kill@POINT", for the tests of the start
    // sequence (and nothing else): the host dies by SIGKILL at POINT.
    static void failpoint(const char* point);
    // --resume: reads what the earlier run in the workdir finished (its
    // journal, result files and reports). Throws std::invalid_argument when
    // there is nothing to resume, the run is still going, or the plan
    // changed (without --force).
    void load_previous();
    // CUDA_VISIBLE_DEVICES of the host (indices in PCI order, or UUIDs)
    // becomes the GPU selection when neither the plan nor --gpus makes one.
    void select_visible_gpus(const std::string& visible);
    // Runs plan group `index` once; in round `round` (1..) of its [[round]].
    void run_group(std::size_t index, std::uint32_t round = 0);
    // A [[round]]: its groups, count times, until stop-when says so.
    void run_rounds(const plan::RoundSpec& rounds);
    std::filesystem::path group_dir(const plan::GroupSpec& spec, std::uint32_t round) const;
    void write_rounds_csv();
    void launch(TaskGroup& group, Task& task, const std::string& inputs_segment, std::uint64_t memory);
    // Admits what may start now: trains of loaded tasks, then loads.
    void schedule(TaskGroup& group);
    void start_trains(TaskGroup& group);
    std::size_t waiting_count() const;  // live tasks loaded and waiting for a device
    void start_loads(TaskGroup& group);
    Task* next_to_load(TaskGroup& group);
    void note_wait(const TaskGroup& group, Task& task, const std::string& stage, const sched::Verdict& v);
    void sample_if_older_than(std::chrono::milliseconds age);
    sched::Estimate memory_estimate(const Task& task) const;
    sched::Estimate gpu_memory_estimate(const Task& task, const std::string& pinned) const;
    // Ran out of memory in stage: retried (the estimate grows) or failed.
    void out_of_memory(TaskGroup& group, Live& live, const std::string& stage, const std::string& message,
                       bool process_alive);
    bool killed_for_memory(const WorkerProcess& p, int wait_status);
    void handle_message(TaskGroup& group, Live& live, channel::Message& m);
    void receive_result(TaskGroup& group, Live& live, const Dict& body);
    void handle_exit(TaskGroup& group, Live& live);
    void fail(TaskGroup& group, Task& task, const std::string& stage, const std::string& message);
    void status_event(const TaskGroup& group, const Task& task, nlohmann::ordered_json extra = {});
    std::string make_inputs_segment(const TaskGroup& group, const plan::GroupSpec& spec);
    void write_run_json(const std::string& status, int exit_code);
    // report.html, after every group and at the end of the run.
    void write_report();
    void stop_all(int signal);
    // The live task whose worker, or a process it started, sent this
    // signal to the host (its pid, process group or parents lead to the
    // worker); null for any other sender. A sender already exited and
    // reaped when the host looks cannot be traced: it counts as any other.
    Live* signalled_by_task(const signalfd_siginfo& si);

    const plan::Plan& plan_;
    std::vector<PluginFile> plugins_;
    RunOptions options_;
    std::filesystem::path workdir_;
    // Held from before the workdir is touched until the Runner is gone:
    // declared first so that it is released last.
    std::optional<WorkdirLock> workdir_lock_;
    shm::RunLock shm_lock_;  // our segment names' prefix, and the proof that we live
    std::string shm_prefix_;
    std::optional<notify::Notifier> notifier_;
    void notify_group(const TaskGroup& g);
    void notify_run(const std::string& status);
    std::unique_ptr<ProgressView> view_;  // before journal_: the journal shows through it
    Journal journal_;
    std::chrono::steady_clock::time_point shown_at_{};  // the last LiveStatus given to view_
    void show_status(bool force = false);
    std::vector<std::string> env_storage_;
    std::optional<std::string> cuda_visible_;  // the host's CUDA_VISIBLE_DEVICES, not passed to workers
    std::vector<char*> envp_;
    std::vector<std::unique_ptr<TaskGroup>> groups_;
    std::vector<std::unique_ptr<Live>> live_;
    std::uint64_t task_seq_ = 0;
    int signal_fd_ = -1;
    int stop_signal_ = 0;
    std::string started_;
    struct Previous {  // a task the resumed run finished
        nlohmann::ordered_json result;  // its result.json
        nlohmann::ordered_json report;  // its entry in the group's report.json
    };
    // (round, group) -> task id -> what it left
    std::map<std::pair<std::uint32_t, std::string>, std::map<std::string, Previous>> previous_;
    // (block, round): rounds keep-rounds removed in the resumed run. By
    // block: another [[round]] block's round of that number is still there.
    std::set<std::pair<std::size_t, std::uint32_t>> removed_rounds_;
    struct RoundRow {  // one line of rounds.csv
        std::size_t block;
        std::uint32_t round;
        double wall_s;
        nlohmann::ordered_json values;  // scalars of the round's last group
    };
    std::vector<RoundRow> round_rows_;
    std::uint64_t inputs_seq_ = 0;

    // -- scheduling --
    plan::Resources resources_;
    std::unique_ptr<sched::Probe> probe_;
    sched::Snapshot snapshot_;
    std::chrono::steady_clock::time_point sampled_at_{};
    sched::Ledger ledger_;
    std::int64_t oom_kills_ = -1;       // the kernel's OOM-kill count at the last look
    const plan::GroupSpec* spec_ = nullptr;  // the group being run
    std::uint64_t learned_memory_ = 0;  // the largest peaks of its finished tasks
    std::uint64_t learned_gpu_memory_ = 0;
    std::size_t restarts_pending_ = 0;  // INTERRUPT tasks whose process has ended
    bool waiting_on_resources_ = false; // a stage waits for CPU, RAM or GPU memory (or GPU peaks are sampled)
    bool gpu_training_ = false;         // only GPU peaks are sampled: at half the rate
    std::string inputs_segment_;        // the running group's inputs, or empty
    std::string last_logged_wait_;      // "load memory": the cause the log last told, and when
    std::chrono::steady_clock::time_point last_logged_wait_at_{};
};

}  // namespace fedflow
