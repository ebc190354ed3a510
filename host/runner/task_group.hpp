// task_group.hpp: TaskGroup, the tasks of one [[group]] of the plan (names
// and concepts of the original Fedflow's component document). Groups run
// strictly in order; the tasks inside a group in any order.
#pragma once

#include "runner/task.hpp"

#include <fedflow/value.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

namespace fedflow {

class TaskGroup {
public:
    // index: 1-based order of execution. seed: makes retrieve_task's choices
    // reproducible (the run's --seed).
    TaskGroup(std::size_t index, std::string group_name, std::string device = {}, std::uint64_t seed = 0);

    // -- attributes of the original --
    std::size_t index() const noexcept { return index_; }
    const std::string& group_name() const noexcept { return group_name_; }
    // The device every task of the group is pinned to, or empty.
    const std::string& device() const noexcept { return device_; }
    const std::filesystem::path& workdir() const noexcept { return workdir_; }
    // The round this instance of the group runs in (0 outside rounds).
    std::uint32_t round() const noexcept { return round_; }
    void set_round(std::uint32_t round) noexcept { round_ = round; }
    void set_workdir(std::filesystem::path dir) { workdir_ = std::move(dir); }
    // The folder of one of its tasks: workdir() / its id.
    std::filesystem::path task_dir(const Task& task) const { return workdir_ / task.task_id(); }
    // The group's report: every task, its status and result (report.json).
    nlohmann::ordered_json result() const;

    // -- methods of the original --
    // Adds a task; throws std::invalid_argument when its id is taken.
    Task& add_task(Task task);
    // Room for n tasks in all, made once: vectors that double as 100,000
    // tasks are added hold up to twice the room, and both copies while they grow.
    void reserve(std::size_t n);
    Task* get_task(std::string_view task_id) noexcept;
    // The task finished: its result is data. Moves it to FINISHED.
    void report_finish(std::string_view task_id, nlohmann::ordered_json data);
    // The task failed in stage ("load", "train", "start") with message.
    void report_exception(std::string_view task_id, std::string stage, std::string message);
    // The same for the task at `position` in tasks(): no lookup by id (the
    // 100,000 tasks of a group that never started).
    void report_exception_at(std::size_t position, std::string stage, std::string message);
    // True when every task's outcome is known (finished or failed).
    bool finished() const noexcept;
    // A task in status s, chosen at random (reproducibly), or nullptr.
    Task* retrieve_task(TaskStatus s);

    // -- for reports --
    const std::vector<std::unique_ptr<Task>>& tasks() const noexcept { return tasks_; }
    std::size_t count(TaskStatus s) const noexcept;
    std::size_t failed_count() const noexcept { return failed_; }
    void set_plugin(std::string plugin) { plugin_ = std::move(plugin); }
    // Why a task failed, as report_exception recorded it.
    struct Failure {
        std::string stage;
        std::string message;
        bool operator<(const Failure& o) const { return std::tie(stage, message) < std::tie(o.stage, o.message); }
    };
    const Failure* failure(std::string_view task_id) const;
    // The same for the task at `position` in tasks(): no lookup by id, for
    // loops over every task (a group may hold 100,000).
    const Failure* failure_at(std::size_t position) const noexcept { return failure_of_[position]; }
    // The entry in result()'s "tasks" of the task at `position` in tasks().
    nlohmann::ordered_json entry(std::size_t position) const;
    // Its "status" alone, without building the entry.
    std::string entry_status(std::size_t position) const;
    // result() with "tasks" empty.
    nlohmann::ordered_json head() const;
    // Writes result() to path (through a temporary file and a rename), as
    // results::write_json_file would, but task by task: the report of
    // 100,000 tasks is tens of MB of text, and ten times that as a JSON tree.
    void write_result(const std::filesystem::path& path) const;

private:
    std::size_t index_;
    std::string group_name_;
    std::string device_;
    std::string plugin_;
    std::filesystem::path workdir_;
    std::uint32_t round_ = 0;
    std::string_view id_at(std::size_t i) const noexcept { return tasks_[i]->task_id(); }
    std::vector<std::unique_ptr<Task>> tasks_;
    detail::KeyIndex by_id_;  // tasks_ by task id: a group may hold 100,000 tasks
    // Every (stage, message) once: 100,000 tasks that never started share
    // one; each task's is found by its position.
    std::set<Failure> failure_pool_;
    std::vector<const Failure*> failure_of_;  // by position in tasks_; nullptr: not failed
    std::size_t failed_ = 0;
    std::size_t position(std::string_view task_id) const noexcept;
    std::mt19937_64 rng_;
    std::vector<Task*> init_order_;  // retrieve_task(INIT): shuffled, drawn from the back
};

}  // namespace fedflow
