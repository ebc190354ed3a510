// task.hpp: Task and TaskStatus, the host's side of one task (the names and
// concepts of the original Fedflow's component document).
//
// A Task is a proxy for one worker, which an executor (exec/executor.hpp)
// runs: the runner asks the executor to start the task's load or train and
// records it here with start(), start_load() and start_train(); exit() asks
// the executor to end the worker. The plugin's own load/train
// (fedflow::Task in <fedflow/task.hpp>) run only in that worker.
//
//   INIT -> AVAILABLE -> LOADING -> WAITING -> TRAINING -> FINISHED -> EXITED
//   (any running state) -> EXCEPTION
//   INTERRUPT: ran out of memory. From LOADING, the process ends and the
//   task starts again in a new one (INTERRUPT -> AVAILABLE); from TRAINING
//   it keeps its process and loaded data (INTERRUPT -> WAITING). Also: its
//   node was lost (--slurm), from LOADING, WAITING or TRAINING; it starts
//   again in a new process, on another node (INTERRUPT -> AVAILABLE).
#pragma once

#include "exec/executor.hpp"

#include <fedflow/value.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

namespace fedflow {

enum class TaskStatus { INIT, AVAILABLE, LOADING, WAITING, TRAINING, FINISHED, EXITED, EXCEPTION, INTERRUPT };

const char* to_string(TaskStatus s) noexcept;
// True for the states in which the task's outcome is known.
bool is_final(TaskStatus s) noexcept;

// Timings and peaks measured for the report.
struct TaskStats {
    std::int64_t load_ms = -1;
    std::int64_t train_ms = -1;
    std::int64_t peak_memory = -1;      // bytes, the worker's RSS peak
    std::int64_t peak_gpu_memory = -1;  // bytes, the most NVML saw the worker hold on a GPU
    // keep-loaded: this task's client (task i of its group, every round) so
    // far in the run: loads (-1: not kept-loaded) and evictions; kept: this
    // round trained in the process an earlier round had loaded.
    std::int32_t loads = -1;
    std::int32_t evictions = 0;
    bool kept = false;
};

// What the scheduler knows of a task's size, and how often it ran out of
// memory.
struct TaskEstimates {
    std::optional<std::uint64_t> memory;  // the plan's, for this task
    std::optional<std::uint64_t> gpu_memory;
    std::optional<std::uint64_t> grown_memory;  // after an out-of-memory
    std::optional<std::uint64_t> grown_gpu_memory;
    std::uint64_t admitted_memory = 0;  // what the running stages were admitted on
    std::uint64_t admitted_gpu_memory = 0;
    std::uint32_t load_retries = 0;
    std::uint32_t train_retries = 0;
    std::uint32_t requeues = 0;  // runs again after its node was lost ([slurm] requeue)
};

class Task {
public:
    // device: a device the task is pinned to ("cuda:1"), or empty.
    explicit Task(std::string task_id, std::string device = {}, Dict params = {});
    // The same with params shared: the 100,000 tasks of `tasks = 100000`
    // hold one copy of their group's params, not one each.
    Task(std::string task_id, std::string device, std::shared_ptr<const Dict> params);

    // -- attributes of the original --
    const std::string& task_id() const noexcept { return task_id_; }
    // The device train runs on: the pinned one until start_train assigns it.
    const std::string& device() const noexcept { return device_; }
    bool pinned() const noexcept { return pinned_; }
    // What train returned, as written to result.json (null until FINISHED).
    const nlohmann::ordered_json& result() const noexcept { return result_; }
    TaskStatus status() const noexcept { return status_; }

    const Dict& params() const noexcept { return *params_; }
    TaskStats& stats() noexcept { return stats_; }
    const TaskStats& stats() const noexcept { return stats_; }
    TaskEstimates& estimates() noexcept { return estimates_; }
    const TaskEstimates& estimates() const noexcept { return estimates_; }

    // -- methods of the original --
    // The executor started the task's worker `worker` (in its folder,
    // TaskGroup::task_dir). INIT -> AVAILABLE.
    void start(exec::Executor& executor, exec::WorkerId worker);
    // The worker runs load. AVAILABLE -> LOADING.
    void start_load();
    // The worker runs train on device. WAITING -> TRAINING.
    void start_train(const std::string& device);
    bool is_alive() const noexcept { return executor_ != nullptr; }
    // Asks the worker to exit (the executor kills it if it cannot be asked).
    void exit();

    // --resume: the task finished in an earlier run of the same workdir; it
    // is FINISHED with that run's result and report entry, and never runs.
    void restore(nlohmann::ordered_json result, nlohmann::ordered_json report);
    bool restored() const noexcept { return restored_; }
    const nlohmann::ordered_json& restored_report() const noexcept { return restored_report_; }

    // -- used by the scheduler --
    // Moves to status s; throws std::logic_error on a transition the state
    // machine above does not have.
    void set_status(TaskStatus s);
    void set_result(nlohmann::ordered_json result) { result_ = std::move(result); }
    // The task's current worker, while it lives (0: none).
    exec::WorkerId worker() const noexcept { return worker_; }
    // The worker exited and was reaped.
    void worker_exited() noexcept {
        executor_ = nullptr;
        worker_ = 0;
    }
    // When the task entered LOADING, WAITING or TRAINING last (for stage
    // timeouts and the live view).
    std::chrono::steady_clock::time_point stage_started() const noexcept { return stage_started_; }

private:
    // (In an order that leaves no padding: a run may hold 100,000 Tasks.)
    std::string task_id_;
    std::string device_;
    std::shared_ptr<const Dict> params_;
    // (No folder: it is always the group's folder / task_id, and a path is
    // 40 bytes and a few allocations more per task.)
    nlohmann::ordered_json result_;
    TaskStatus status_ = TaskStatus::INIT;
    bool pinned_ = false;
    bool restored_ = false;
    TaskStats stats_;
    TaskEstimates estimates_;
    nlohmann::ordered_json restored_report_;
    exec::Executor* executor_ = nullptr;  // set while the worker lives
    exec::WorkerId worker_ = 0;
    std::chrono::steady_clock::time_point stage_started_{};
};

}  // namespace fedflow
