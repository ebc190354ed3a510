// executor.hpp: the seam between the runner and where its workers run.
//
// The runner decides what runs (groups, rounds, which task next, retries);
// an executor decides whether a stage may start now and where, starts the
// workers, carries their messages and tells how they ended. The runner
// names a worker by the WorkerId it chose when it asked for the start (its
// task sequence number) and never sees a process, a socket or a machine.
//
// Today's implementation is LocalExecutor (this machine, one exec'd
// fedflow-worker per task). The seam is cut so that others fit behind it
// without the runner changing: a fork server (a zygote starts the workers
// instead of posix_spawn), workers kept across rounds (release() may keep a
// process for the next start of the same task), and remote node agents on
// a cluster (each node its own probe, ledger and admission: start_load and
// start_train pick the node; SlurmExecutor, slurm_executor.hpp).
#pragma once

#include "common/messages.hpp"
#include "exec/fork_server.hpp"
#include "sched/admission.hpp"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace fedflow::exec {

using Clock = std::chrono::steady_clock;
using WorkerId = std::uint64_t;

// A task's load: start its worker in workdir, send it config, then `load`.
struct LoadRequest {
    WorkerId id = 0;
    std::filesystem::path workdir;
    std::function<messages::Config()> config;   // the config message, made only when the worker starts
    std::optional<std::uint64_t> grown_memory;  // after an out of memory
    std::optional<std::uint64_t> memory;        // the task's own estimate
    // What a fork server for this task would load: the executor may fork
    // the worker from one instead of exec'ing it. Absent: exec.
    std::optional<PreloadSpec> preload;
    // A load that must wait may end an idle kept worker to make room
    // (keep). False: it only waits. A SlurmExecutor lets one node evict
    // for a load, not every node it asks.
    bool may_evict = true;
    // The pinned device (TrainRequest::pinned) of the train that will
    // follow this load, for a worker that will not be kept (that train is
    // its last): when it is bound to run on "cpu" whatever the machine then
    // holds (pinned there, or no GPU the executor may use), the executor
    // may send it with the load (messages::Train::ahead), and start_train
    // then sends nothing. Absent: start_train sends it.
    std::optional<std::string> train_pinned;
};

// A loaded worker's train.
struct TrainRequest {
    std::string pinned;  // "cpu", "cuda:N", or empty: the executor chooses
    std::optional<std::uint64_t> grown_gpu_memory;
    std::optional<std::uint64_t> gpu_memory;
    // Nothing of the worker is kept after a result (no keep-loaded next
    // round): it exits by itself once it has sent one (messages::Train).
    bool last = false;
};

// What a start_* call decided. verdict.kind == go: the stage started, on
// verdict.device for a train; `estimate` is what it was admitted on.
struct Admission {
    sched::Verdict verdict;
    sched::Estimate estimate;
    int pid = -1;  // go of a load: the new worker's pid
    // go of a load: the device of the train sent with it (LoadRequest::
    // train_pinned), or empty. That train runs as soon as the load has
    // ended well: the runner takes it as started at the worker's `loaded`
    // (its result may come in the same read, and its exit too, after which
    // the executor knows the worker no more).
    std::string train_ahead;
};

// The most a worker was seen to hold (-1: not seen).
struct Peaks {
    std::int64_t memory = -1;
    std::int64_t gpu_memory = -1;
};

struct Event {
    enum class Kind {
        message,  // the worker sent `message`, in its turn (messages::Conversation)
        broken,   // the worker sent what is no valid message, or one out of turn (`error`); it is being killed
        stopped,  // the worker was found stopped by `signal`, the `stops`-th time: continued, or killed (`ended`)
        exited,   // the worker is gone and reaped: `wait_status`
    };
    Kind kind = Kind::message;
    WorkerId id = 0;
    messages::FromWorker message;
    std::string error;
    int wait_status = 0;
    bool killed_for_memory = false;  // exited: by the kernel's out-of-memory killer
    bool signalled_by_host = false;  // exited: by a signal the host sent
    bool closed_channel = false;     // exited: it had closed its channel while it ran on (a plugin closed fd 3)
    Peaks peaks;                     // exited: what the worker was seen to hold
    std::size_t leftovers = 0;       // exited: processes the task left running, which were killed
    int signal = 0;                  // stopped: the signal that stopped it
    int stops = 0;                   // stopped: how often it was found stopped
    bool ended = false;              // stopped: too often; it is being killed
    // message of a result from another machine: its segments were copied
    // into files of this folder (named as the segments), not in /dev/shm.
    std::filesystem::path result_dir;
    // exited: a kept worker (Executor::keep) the executor ended to make
    // room for a stage that waited for memory or a process slot.
    bool evicted = false;
    // exited: not the worker's doing; the node it ran on, or the node's
    // agent, was lost (`error` says how). What it ran may run again elsewhere.
    bool node_lost = false;
    // exited: not the worker's doing either; it was killed with its fork
    // server, which died (an out-of-memory kill, a user's kill) or was
    // given up (`error` says how). What it ran may run again.
    bool server_lost = false;
};

// What one device holds now, for the live view.
struct DeviceUse {
    std::string name;        // "RAM", "cuda:0"
    std::uint64_t used = 0;  // in use on the machine, by anyone
    std::uint64_t total = 0;
    std::uint64_t reserved = 0;  // held by the running stages (the ledger)
    int tasks = 0;               // workers on it now (RAM: every live worker)
};

class Executor {
public:
    virtual ~Executor() = default;

    // What the machine has: GPUs (for run.json and the log) and limits.
    virtual const sched::Snapshot& machine() const = 0;
    // Why no GPU is used, when none is ("libnvidia-ml.so.1 not found").
    virtual std::string gpu_status() const = 0;
    // The GPUs to schedule, chosen after construction (CUDA_VISIBLE_DEVICES).
    virtual void set_gpus(bool use_gpus, std::vector<int> gpus) = 0;

    // A new group starts: its own estimates apply and nothing is learned.
    virtual void start_group(std::optional<std::uint64_t> memory, std::optional<std::uint64_t> gpu_memory) = 0;
    // The group's tasks each map `bytes` of input byte files (the data
    // path): added to every estimate the plan gave or defaulted, since a
    // task that reads its inputs needs them in RAM (docs/scheduling.md,
    // "Memory of mapped inputs"). Called after start_group; an executor
    // that cannot place memory ignores it.
    virtual void group_inputs(std::uint64_t bytes) { (void)bytes; }
    // A finished task's peaks teach the group's estimates (auto-adjust).
    virtual void learn(const Peaks& peaks) = 0;
    // After an out of memory in a stage: the estimate that was too small, grown.
    virtual std::uint64_t grow(std::uint64_t estimate, std::int64_t peak, const std::string& device) const = 0;

    // Starts the load when the machine admits it now. Throws when the worker
    // cannot be started (the task fails; the run goes on).
    virtual Admission start_load(const LoadRequest& request) = 0;
    // Starts the train of a worker whose load finished, when admitted.
    virtual Admission start_train(WorkerId id, const TrainRequest& request) = 0;
    // The stage ended (a result or a failure): its device is free again; the
    // process keeps what it holds until it exits.
    virtual void end_stage(WorkerId id) = 0;
    // Updates what the ledger reserves for a worker whose estimate grew.
    virtual void reserve_memory(WorkerId id, std::uint64_t memory) = 0;

    // The worker is done: ask it to exit (kill it if it cannot be asked).
    virtual void release(WorkerId id) = 0;
    // keep-loaded: the worker's train ended and it is kept, loaded, for
    // its task's next round. Until next_round it is idle and keeps its
    // reservation (RAM, and the GPU memory it was measured to hold); when a
    // stage waits for memory or a process slot, the executor ends the
    // least recently kept idle worker that holds some (an `exited` event
    // with `evicted`). An executor that cannot keep workers releases it.
    virtual void keep(WorkerId id) { release(id); }
    // The next round of a kept worker: sends it `config` (its new round,
    // workdir and inputs; messages::Config). It is then loaded: start_train
    // next. False when it is gone or on its way out: load the task anew.
    virtual bool next_round(WorkerId id, const messages::Config& config) {
        (void)id;
        (void)config;
        return false;
    }
    // Sends a signal to the worker and what it started; after SIGTERM it is
    // killed when it has not exited within the grace period.
    virtual void signal(WorkerId id, int signal) = 0;
    virtual void signal_all(int signal) = 0;
    // SIGTERM to the worker and what it started, and SIGKILL after `grace`
    // (a stage past its timeout gets less than an interrupted run's).
    virtual void terminate(WorkerId id, std::chrono::milliseconds grace) = 0;

    // How what a task starts ends with it ("cgroup", "pidns", "subreaper",
    // or "none" under run-task): for the journal.
    virtual std::string containment() const = 0;

    virtual std::size_t live() const = 0;
    // RAM first, then every GPU.
    virtual std::vector<DeviceUse> devices() const = 0;
    virtual Peaks peaks(WorkerId id) const = 0;
    virtual int pid(WorkerId id) const = 0;

    // Waits for the next events (messages, exits) and appends them to out.
    // Returns when there are some, at `until`, when wake_fd is readable, or
    // when the machine should be looked at again (a stage waits for
    // resources). Deadlines of its own (kill grace periods) it keeps itself.
    virtual void wait(std::optional<Clock::time_point> until, int wake_fd, std::vector<Event>& out) = 0;
};

}  // namespace fedflow::exec
