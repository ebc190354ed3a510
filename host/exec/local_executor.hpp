// local_executor.hpp: the executor of this machine. One fedflow-worker per
// task, started with posix_spawn (worker_process.hpp); admission by a
// StageScheduler over this machine's probe and ledger.
//
// wait() sleeps in poll() on every worker's socket and pidfd (and the
// runner's wake fd, and a signalfd for SIGCHLD, which tells of a worker that
// stopped), and wakes the moment a worker sends a message, stops or dies.
//
// A worker that cannot start yet for want of a descriptor or a process slot
// (SpawnDeferred) makes its load wait (resource "spawn") and is tried again;
// with no worker running to free one, it fails after spawn_patience.
// There is no fixed sleep: the machine is sampled only while a stage waits
// for resources or a worker trains on a GPU (for its peaks).
#pragma once

#include "exec/containment.hpp"
#include "exec/executor.hpp"
#include "exec/worker_process.hpp"
#include "sched/stage_scheduler.hpp"

#include <map>
#include <memory>

#include <poll.h>

namespace fedflow::exec {

class LocalExecutor final : public Executor {
public:
    struct Options {
        std::filesystem::path worker;  // the fedflow-worker executable
        char* const* envp = nullptr;   // the workers' environment (NULL-terminated)
        sched::StageScheduler::Config scheduler;
        std::chrono::milliseconds kill_grace{5000};  // SIGTERM -> SIGKILL
        // How old a sample of the machine may be when a stage waits for
        // resources (twice that while workers train on GPUs, for their peaks).
        std::chrono::milliseconds sample_period{250};
        // fedflow-host run-task: workers on the host's terminal, under
        // wrapper when given (gdb), without containment of what they start.
        bool foreground = false;
        std::vector<std::string> wrapper;
        std::string run_name;  // names the run's cgroup (containment.hpp)
        std::chrono::milliseconds spawn_patience{10000};
        // Workers of a LoadRequest with a preload are forked by a fork
        // server per preload (exec/fork_server.hpp); none in the foreground.
        bool fork_server = true;
        std::chrono::milliseconds preload_patience{120000};  // a fork server's preload (import torch)
        std::chrono::milliseconds answer_patience{10000};    // its answer to a fork or a spare request
        // The name a worker is told for GPU N when it is not "cuda:N" (a
        // Slurm step's GPUs, renumbered by CUDA: node_agent.hpp).
        std::map<int, std::string> told_devices;
    };
    // Throws std::invalid_argument when FEDFLOW_CONTAIN asks for a
    // containment this machine cannot give (containment.hpp).
    LocalExecutor(Options options, std::unique_ptr<sched::Probe> probe);
    ~LocalExecutor() override;

    const sched::Snapshot& machine() const override { return scheduler_.snapshot(); }
    std::string gpu_status() const override { return scheduler_.probe().nvml_status(); }
    void set_gpus(bool use_gpus, std::vector<int> gpus) override;

    void start_group(std::optional<std::uint64_t> memory, std::optional<std::uint64_t> gpu_memory) override;
    void group_inputs(std::uint64_t bytes) override;
    void learn(const Peaks& peaks) override;
    std::uint64_t grow(std::uint64_t estimate, std::int64_t peak, const std::string& device) const override;

    Admission start_load(const LoadRequest& request) override;
    Admission start_train(WorkerId id, const TrainRequest& request) override;
    void end_stage(WorkerId id) override;
    void reserve_memory(WorkerId id, std::uint64_t memory) override;

    void release(WorkerId id) override;
    void keep(WorkerId id) override;
    bool next_round(WorkerId id, const messages::Config& config) override;
    void signal(WorkerId id, int signal) override;
    void signal_all(int signal) override;
    void terminate(WorkerId id, std::chrono::milliseconds grace) override;
    std::string containment() const override;

    std::size_t live() const override { return workers_.size(); }
    std::vector<DeviceUse> devices() const override;
    Peaks peaks(WorkerId id) const override;
    int pid(WorkerId id) const override;

    void wait(std::optional<Clock::time_point> until, int wake_fd, std::vector<Event>& out) override;

    const sched::StageScheduler& scheduler() const noexcept { return scheduler_; }

private:
    struct Worker {
        enum class Stage { loading, loaded, training, kept, released };
        std::unique_ptr<WorkerProcess> process;
        Stage stage = Stage::loading;
        int gpu = -1;         // the GPU of a running train stage
        bool broken = false;  // sent what is no valid message, or out of turn: killed, not read
        Peaks peaks;
        std::optional<Clock::time_point> closed_at;  // EOF seen on the socket
        // Forked and sent SIGKILL: by then its server should have told of
        // its end (else the server is stopped or stuck, and is abandoned).
        std::optional<Clock::time_point> relay_deadline;
        std::optional<Clock::time_point> kill_deadline;  // SIGKILL if still alive then
        int stops = 0;                                   // how often it was found stopped
        bool evicted = false;                            // a kept worker ended to make room
        bool train_ahead = false;                        // its Train went with its Load
    };
    Worker* find(WorkerId id);
    const Worker* find(WorkerId id) const;
    std::vector<int> pids() const;
    void sample_if_older_than(std::chrono::milliseconds age);
    // Reads and decodes what a worker sent, and checks its turn; a message
    // the executor tracks (loaded) also updates its state. A worker that
    // breaks the protocol is killed (a `broken` event).
    void read(WorkerId id, Worker& w, std::vector<Event>& out);
    void note_wait(const sched::Verdict& v);
    // A stage waits (v): ends the kept idle worker the ledger picks, if any.
    void evict_for(const sched::Verdict& v);
    // Continues (or, at the third time, kills) the workers that stopped.
    void take_stops(std::vector<Event>& out);
    // The start that SpawnDeferred refused: wait, or fail after spawn_patience.
    Admission spawn_deferred(const std::string& why);
    // Starts the worker: forked by `server` (ready) when it can, else exec'd.
    std::unique_ptr<WorkerProcess> start_worker(ForkServer* server, const SpawnOptions& spawn);
    // The fork server of a preload, started at its first use without
    // waiting for it (its loads wait until it is ready); nullptr when it
    // cannot start or can no longer fork (told once, in the log). One that
    // could not start for a passing reason (EMFILE) is started again later
    // (Server::retry_at); one whose preload failed is not.
    ForkServer* fork_server(const PreloadSpec& preload);
    // A server that may fork no more (it holds threads): its tasks start by
    // exec from now on.
    void drop_fork_server(ForkServer* server, const std::string& why);
    // A server that is gone (ForkServer::alive() false: it died, or was
    // ended) is started again a second later, up to max_server_restarts
    // times in the run; its tasks start by exec meanwhile, and from then on.
    void server_ended(ForkServer* server);
    // Ends the fork server with that pid, which did not tell of a worker's
    // end (ForkServer::abandon); its workers are reaped as killed.
    void abandon_fork_server(pid_t server_pid, pid_t worker_pid);

    Options options_;
    sched::StageScheduler scheduler_;
    std::unique_ptr<Descendants> descendants_;  // none in the foreground
    int sigchld_fd_ = -1;
    // Since when starts have been refused (SpawnDeferred), why, and when
    // to try again.
    std::optional<Clock::time_point> spawn_failing_since_, spawn_retry_at_;
    std::chrono::milliseconds spawn_backoff_{0};
    std::string spawn_why_;
    struct Server {
        std::unique_ptr<ForkServer> server;  // null: it could not start, or stopped forking
        std::string plugin;                  // for the log
        // A start that failed for want of a descriptor, a process slot or
        // memory is tried again at the first load from then on (the
        // backoff doubles, up to a minute); any other failure is final.
        std::optional<Clock::time_point> retry_at;
        std::chrono::milliseconds backoff{0};
        int ends = 0;  // times it died, or was ended, in the run
    };
    // A server with torch preloaded saves each task seconds: one that died
    // (the out-of-memory killer may choose it) is started again; one that
    // keeps dying is not, for what it takes with it each time.
    static constexpr int max_server_restarts = 3;
    // How long the host's loop waits for a fork server, just started or
    // asked for a spare, before it moves on (the load waits, and the
    // server's socket wakes the loop): a compiled plugin's server loads,
    // and a small server forks, well within it.
    static constexpr std::chrono::milliseconds server_grace{100};
    std::map<std::string, Server> servers_;  // by the preload's encoding
    // Servers that may fork no more (threads): they still reap their workers.
    std::vector<std::unique_ptr<ForkServer>> retired_servers_;
    std::vector<ForkServer*> servers_polled_;
    std::map<WorkerId, Worker> workers_;
    bool waiting_on_machine_ = false;  // a stage waited for CPU, RAM or GPU memory since the last wait()
    std::vector<::pollfd> fds_;
    std::vector<WorkerId> polled_;
    // Failpoint executor-pause-after-poll (common/failpoints.hpp).
    bool pause_after_poll_ = false;
};

}  // namespace fedflow::exec
