// runner.hpp: runs a checked plan: groups in order, the tasks of a group in
// parallel, each in its own worker.
//
// The runner decides what runs: groups and rounds in order, which task of a
// group starts next (a seeded shuffle), retries after an out of memory,
// stage timeouts, and what the run writes (the journal, reports). Where and
// when a stage starts is its executor's (exec/executor.hpp): admission on
// the machine, the workers, their messages and exits. The loop of a group
// is: schedule (ask the executor to start what may start), wait (for the
// executor's events, a signal or a deadline), dispatch (messages and exits),
// deadlines (stage timeouts). Nothing sleeps for a fixed time.
#pragma once

#include "common/shm.hpp"
#include "common/sim_gpu.hpp"
#include "exec/executor.hpp"
#include "notify/notify.hpp"
#include "plan/plan.hpp"
#include "registry/plugin_registry.hpp"
#include "runner/journal.hpp"
#include "runner/outputs.hpp"
#include "runner/receive_thread.hpp"
#include "runner/result_receiver.hpp"
#include "runner/resume.hpp"
#include "runner/task_group.hpp"
#include "runner/workdir_lock.hpp"
#include "sched/config.hpp"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <sys/signalfd.h>
#include <sys/types.h>

namespace fedflow {

struct RunOptions {
    std::filesystem::path workdir;  // overrides the plan's when set
    std::filesystem::path worker;   // the fedflow-worker executable
    std::uint64_t seed = 0;
    Progress progress = Progress::plain;
    std::uint64_t result_limit = 0;              // max bytes of one task's result (0 = none)
    std::chrono::milliseconds kill_grace{5000};  // SIGTERM -> SIGKILL
    std::string gpus;                            // --gpus: replaces [resources] gpus when set
    // --simulate-gpus: these GPUs instead of NVML's (common/sim_gpu.hpp).
    std::vector<simgpu::Spec> simulate_gpus;
    std::string simulate_gpus_text;  // the same as given (each node of --slurm makes its own)
    // --slurm (or [slurm] enabled): the workers run on the nodes of the
    // Slurm allocation the host runs in (exec/slurm_executor.hpp).
    bool slurm = false;
    bool resume = false;  // --resume: run only what has not finished
    bool force = false;   // --force: resume even if the plan changed
    // --overwrite: replace a run in the workdir whose tasks finished (else
    // it is never deleted: claim_workdir refuses).
    bool overwrite = false;
    // run-task: workers on the host's terminal and in its process group,
    // under wrapper when given (gdb; the host then ignores SIGINT, which is
    // the debugger's), without containment of what they start.
    bool foreground = false;
    std::vector<std::string> wrapper;
    // How old a sample of the machine may be when a stage waits for
    // resources (twice that while tasks train on GPUs, for their peaks).
    std::chrono::milliseconds sample_period{250};
};

// Exit codes of fedflow-host (docs/plan.md, "Exit status").
inline constexpr int exit_ok = 0;
inline constexpr int exit_task_failed = 1;
inline constexpr int exit_bad_input = 2;
inline constexpr int exit_host_failed = 3;

// The fedflow-worker next to this executable (or FEDFLOW_WORKER, or the
// install's libexec dir). Throws std::runtime_error when there is none.
std::filesystem::path find_worker();

// What a run refuses in its workdir before it takes its lock: a path that
// cannot be a directory (WorkdirLock::check_path), --resume of a directory
// that holds no Fedflow run, and a directory that holds something else.
// Throws std::invalid_argument with the message the run gives (exit 2);
// changes nothing, so --dry-run asks it too.
void check_workdir(const std::filesystem::path& workdir, bool resume);

class Runner {
public:
    Runner(const plan::Plan& plan, std::vector<PluginFile> plugins, RunOptions options);
    ~Runner();
    // Runs every group; returns the exit code. Throws std::invalid_argument
    // when the workdir cannot be used (nothing was started: exit 2), other
    // exceptions for failures of the host itself (exit 3).
    int run();

    // The group instances run, in order; one superseded by a later instance
    // of the same group (the next round's) is null.
    const std::vector<std::unique_ptr<TaskGroup>>& groups() const noexcept { return groups_; }

private:
    // A task whose worker has been started and not yet reaped.
    struct Live {
        Live(TaskGroup& g, Task& t, ResultReceiver r, std::uint32_t worker_protocol = 1)
            : group(&g), task(&t), receiver(std::move(r)), protocol(worker_protocol) {}
        TaskGroup* group = nullptr;
        Task* task = nullptr;
        ResultReceiver receiver;      // its shared-memory segments
        std::string train_ahead;      // exec::Admission::train_ahead of its load, until its `loaded`
        std::string timed_out_stage;  // set when the stage ran past task-timeout
        bool ending = false;          // asked to stop (timeout, or the host stops)
        std::string ended_why;        // why the executor ended it (a worker stopped too often)
        std::uint32_t protocol = 1;   // the worker's (messages::Ready)
        bool kept = false;            // finished, and its worker kept for the next round: no longer live
        // Its result, being checked and written off the loop (receive_thread.hpp);
        // meanwhile its worker's exit waits here, so that the segments stay.
        std::unique_ptr<ReceiveThread> receiving;
        std::optional<exec::Event> deferred_exit;
        std::optional<exec::Event> deferred_broken;  // a protocol error that came after its result
    };
    // keep-loaded: task i of a group across rounds, by (plan group index,
    // task id).
    struct Client {
        std::int32_t loads = 0;
        std::int32_t evictions = 0;
        exec::WorkerId kept = 0;  // its idle worker, loaded for the next round (0: none)
    };
    using ClientKey = std::pair<std::size_t, std::string>;

    // Takes the workdir's lock (one run at a time), after refusing a
    // directory that holds something other than a Fedflow run. Throws
    // std::invalid_argument (exit 2).
    void claim_workdir();
    // A fresh run: empties the workdir (but for the lock).
    void prepare_workdir();
    // Failpoint host-kill@POINT (common/failpoints.hpp), for the tests of
    // the start sequence and of keep-rounds: the host dies by SIGKILL at POINT.
    static void failpoint(const char* point);
    // Removes the segments of runs that are provably gone (shm::remove_abandoned).
    void remove_stale_segments();
    // CUDA_VISIBLE_DEVICES of the host (indices in PCI order, or UUIDs)
    // becomes the GPU selection when neither the plan nor --gpus makes one.
    void select_visible_gpus(const std::string& visible);
    // Runs plan group `index` once; in round `round` (1..) of its [[round]].
    void run_group(std::size_t index, std::uint32_t round = 0);
    // A [[round]]: its groups, count times, until stop-when says so.
    void run_rounds(const plan::RoundSpec& rounds);
    // --resume: the round_end line the run before journaled for round
    // `round` of table `block`, when this round (its groups from groups_
    // [first_group]) ran every group and each of its tasks was restored;
    // nullptr otherwise.
    const nlohmann::ordered_json* restored_round(std::size_t first_group, const plan::RoundSpec& rounds,
                                                 std::size_t block, std::uint32_t round) const;
    // stop-on-failure: sets failed_stop_ when every task of group failed.
    void check_failed_entirely(const TaskGroup& group, std::uint32_t round);
    std::filesystem::path group_dir(const plan::GroupSpec& spec, std::uint32_t round) const;

    // -- the loop of a group --
    // Admits what may start now: trains of loaded tasks, then loads.
    void schedule(TaskGroup& group);
    void start_trains(TaskGroup& group);
    // Starts the train of the WAITING task of worker id, if the executor
    // admits it now.
    void start_train(TaskGroup& group, exec::WorkerId id, Live& live);
    void start_loads(TaskGroup& group);
    Task* next_to_load(TaskGroup& group);
    // Asks the executor to start the task's load. False when the machine
    // cannot take it now (nor the tasks after it).
    bool launch(TaskGroup& group, Task& task);
    messages::Config make_config(const TaskGroup& group, const Task& task, const std::string& prefix,
                                 const std::filesystem::path& workdir) const;
    // keep-loaded: the tasks whose worker was kept start their train in it
    // (no load, no admission of one); a worker gone meanwhile loads anew.
    void start_kept(TaskGroup& group);
    bool reuse(TaskGroup& group, Task& task, Client& client);
    // After a result: keeps the worker for the task's next round when its
    // group is keep-loaded, else asks it to exit.
    // Whether its worker may be kept for the next round (keep-loaded), if
    // its task finishes: else it exits after its result.
    // Warns when [[round]] `block` has more kept tasks than max-processes
    // lets wait between its rounds.
    void warn_if_kept_cannot_wait(const plan::RoundSpec& rounds, std::size_t block) const;
    // Logs that task's result held NaN or infinity at w.non_finite.
    void warn_non_finite(const TaskGroup& group, const Task& task, const results::Written& w);
    bool may_keep(const Live& live) const;
    void finish_worker(Live& live, exec::WorkerId id);
    // A kept worker exited while idle: evicted, or crashed.
    void kept_exited(const exec::Event& e);
    // The end of a [[round]] block: its kept workers exit, and are waited for.
    void release_kept();
    // The earliest stage timeout of a live task, and when the live view
    // wants to be drawn again.
    std::optional<std::chrono::steady_clock::time_point> next_deadline();
    void read_signals();
    void dispatch(exec::Event& event);
    void enforce_timeouts();
    void note_wait(const TaskGroup& group, Task& task, const std::string& stage, const sched::Verdict& v);

    // -- what workers tell --
    void handle_message(Live& live, exec::WorkerId id, const messages::FromWorker& message);
    // Starts receiving a result off the loop; finish_result settles the
    // task when the ReceiveThread is done, which collect_results looks for.
    void receive_result(Live& live, const messages::Result& announced);
    void collect_results();
    void finish_result(Live& live, exec::WorkerId id, ReceiveThread& received);
    // A worker that sent what is no valid message, or one out of turn.
    void worker_broken(Live& l, const exec::Event& event);
    // A worker exited: its leftovers, its task's outcome, and its Live goes.
    void worker_ended(std::map<exec::WorkerId, Live>::iterator it, const exec::Event& event);
    void handle_exit(Live& live, const exec::Event& e);
    // Its worker was found stopped: continued, or ended (exec::Event::stopped).
    void handle_stop(Live& live, const exec::Event& e);
    // A worker gone with its node: the task runs again elsewhere, up to
    // [slurm] requeue times, or fails.
    void requeue(Live& live, const exec::Event& e);
    // A worker killed with its fork server (exec::Event::server_lost): the
    // task runs again, from its load.
    void rerun_without_server(Live& live, const exec::Event& e);
    // What the task left running when its worker ended, which was killed.
    void report_leftovers(const Live& live, std::size_t count);
    // Ran out of memory in stage: retried (the estimate grows) or failed.
    void out_of_memory(Live& live, exec::WorkerId id, const std::string& stage, const std::string& message,
                       bool process_alive);
    void merge_peaks(Task& task, const exec::Peaks& peaks);
    // The task failed: report, journal, and (unless !log) a line in the log.
    void fail(TaskGroup& group, Task& task, const std::string& stage, const std::string& message, bool log = true);
    void status_event(const TaskGroup& group, const Task& task, nlohmann::ordered_json extra = {});
    std::string make_inputs_segment(const TaskGroup& group, const plan::GroupSpec& spec);
    void stop_all(int signal);
    // Stops the run, once: nothing new starts, running workers get SIGTERM,
    // tasks not started fail with "not started: <reason>" (one `not_started`
    // journal line for a group's, at its end), the run ends
    // "interrupted" (exit 3) with that reason.
    void stop(const std::string& reason);
    // A write to the workdir failed for want of space: frees the reserve,
    // says so once, and stops the run ("the workdir's filesystem is full").
    void disk_full(const std::string& what);
    // A journal that could not be written stops the run (disk_full for a
    // full disk).
    void check_journal();
    // Writes one of the run's own files (or makes a folder) with write; a
    // full disk stops the run and frees the reserve, and write is tried once
    // more. False when it still failed; any other error throws.
    bool write_own(const std::filesystem::path& file, const std::function<void()>& write);
    // <workdir>/.fedflow.reserve: space set aside at start, freed on a full
    // disk for the run's last writes (docs/architecture.md, "Full disk").
    static constexpr const char* reserve_file = ".fedflow.reserve";
    static constexpr off_t reserve_size = 1 << 20;
    void make_reserve();
    void release_reserve() noexcept;
    // The live task whose worker, or a process it started, sent this
    // signal to the host (its pid, process group or parents lead to the
    // worker); null for any other sender. A sender already exited and
    // reaped when the host looks cannot be traced: it counts as any other.
    std::pair<exec::WorkerId, Live*> signalled_by_task(const signalfd_siginfo& si);

    // -- outputs (run.json, rounds.csv, report.html, [notify]: outputs_) --
    void show_status(bool force = false);

    const plan::Plan& plan_;
    std::vector<PluginFile> plugins_;
    RunOptions options_;
    std::filesystem::path workdir_;
    // Held from before the workdir is touched until the Runner is gone:
    // declared first so that it is released last.
    std::optional<WorkdirLock> workdir_lock_;
    shm::RunLock shm_lock_;  // our segment names' prefix, and the proof that we live
    std::string shm_prefix_;
    sched::Limits limits_;  // the plan's [resources], with --gpus and CUDA_VISIBLE_DEVICES applied
    std::optional<Outputs> outputs_;
    std::unique_ptr<ProgressView> view_;  // before journal_: the journal shows through it
    Journal journal_;
    std::chrono::steady_clock::time_point shown_at_{};  // the last LiveStatus given to view_
    std::vector<std::string> env_storage_;
    std::optional<std::string> cuda_visible_;  // the host's CUDA_VISIBLE_DEVICES, not passed to workers
    std::vector<char*> envp_;
    std::unique_ptr<exec::Executor> executor_;
    std::vector<std::unique_ptr<TaskGroup>> groups_;
    std::map<std::string, std::size_t> latest_;  // a group's latest instance in groups_, by name
    bool superseded_failed_ = false;             // a task of a released instance failed
    std::size_t non_finite_results_ = 0;         // results that held NaN or infinity (warn_non_finite)
    std::map<exec::WorkerId, Live> live_;
    std::map<ClientKey, Client> clients_;       // keep-loaded tasks
    std::map<exec::WorkerId, ClientKey> kept_;  // idle kept workers (and evicted ones until they exit)
    bool releasing_kept_ = false;
    std::int64_t evictions_ = 0;  // kept workers evicted in the run
    // The longest the event loop went from one wait to the next: how long
    // a signal, a timeout or another task's message could go unserved
    // (run_end's loop_max_ms; bench/result-keys prints it).
    std::chrono::steady_clock::duration loop_max_{};
    exec::WorkerId task_seq_ = 0;  // the last WorkerId given out
    int signal_fd_ = -1;
    int results_fd_ = -1;  // eventfd: a ReceiveThread is done
    int wake_fd_ = -1;     // epoll of signal_fd_ and results_fd_: what the executor's wait wakes for besides workers
    std::string stop_reason_;  // why the run stops early ("the host received SIGINT"); empty: it does not
    std::string failed_stop_;  // why a round's failure ended the run ([[round]] stop-on-failure); empty: it did not
    bool signalled_ = false;   // SIGINT/SIGTERM came once: a second one kills at once
    bool disk_full_ = false;
    bool reserve_made_ = false;  // and not given back yet
    bool reserve_held_ = false;  // one was made at the start
    std::string started_;
    ResumeState previous_;  // --resume: what the earlier run finished
    std::uint64_t inputs_seq_ = 0;

    // -- the group being run --
    const plan::GroupSpec* spec_ = nullptr;
    std::size_t restarts_pending_ = 0;  // INTERRUPT tasks whose process has ended
    bool waiting_on_machine_ = false;   // a stage waits for CPU, RAM or GPU memory
    std::string inputs_segment_;        // the group's inputs, or empty
    Dict inputs_about_;                 // per group of its inputs: tasks, finished, round (Context::inputs_about)
    // The resource each waiting task last waited for (logged once per change).
    std::unordered_map<const Task*, std::string> waiting_for_;
    std::string last_logged_wait_;  // "load memory": the cause the log last told, and when
    std::chrono::steady_clock::time_point last_logged_wait_at_{};
};

}  // namespace fedflow
