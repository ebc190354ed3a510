// runner.hpp: runs a checked plan: groups in order, the tasks of a group in
// parallel up to max-processes, each in its own fedflow-worker.
//
// The loop is event-driven: it sleeps in poll() on every worker's socket and
// pidfd (and a signalfd for SIGINT/SIGTERM), and wakes the moment a worker
// sends a message or dies. There is no fixed sleep anywhere.
#pragma once

#include "journal.hpp"
#include "plan.hpp"
#include "plugin_registry.hpp"
#include "task_group.hpp"

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace fedflow {

struct RunOptions {
    std::filesystem::path workdir;      // overrides the plan's when set
    std::filesystem::path worker;       // the fedflow-worker executable
    std::uint64_t seed = 0;
    Progress progress = Progress::plain;
    std::uint64_t result_limit = 0;     // max bytes of one task's result (0 = none)
    std::chrono::milliseconds kill_grace{5000};  // SIGTERM -> SIGKILL
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
    struct Live;
    void prepare_workdir();
    void run_group(std::size_t index);
    void launch(TaskGroup& group, Task& task, const std::string& inputs_segment);
    void handle_message(TaskGroup& group, Live& live, channel::Message& m);
    void receive_result(TaskGroup& group, Live& live, const Dict& body);
    void handle_exit(TaskGroup& group, Live& live);
    void fail(TaskGroup& group, Task& task, const std::string& stage, const std::string& message);
    void status_event(const TaskGroup& group, const Task& task, nlohmann::ordered_json extra = {});
    std::string make_inputs_segment(const TaskGroup& group, const plan::GroupSpec& spec);
    void write_run_json(const std::string& status, int exit_code);
    void stop_all(int signal);

    const plan::Plan& plan_;
    std::vector<PluginFile> plugins_;
    RunOptions options_;
    std::filesystem::path workdir_;
    std::string shm_prefix_;
    Journal journal_;
    std::vector<std::string> env_storage_;
    std::vector<char*> envp_;
    std::vector<std::unique_ptr<TaskGroup>> groups_;
    std::vector<std::unique_ptr<Live>> live_;
    std::uint64_t task_seq_ = 0;
    int signal_fd_ = -1;
    int stop_signal_ = 0;
    std::string started_;
};

}  // namespace fedflow
