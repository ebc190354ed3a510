// plan.hpp: the plan file (TOML), read and checked before anything runs.
//
// Every key of docs/plan.md is read; unknown keys are errors with a "did you
// mean", never ignored. All problems of a plan are collected and reported
// together, each as "file:line:column: message".
//
// What configures another part is read straight into that part's own type
// ([resources] into sched::Limits, [notify] into notify::Config): one
// definition of each setting, which those parts take as it is.
#pragma once

#include "notify/notify.hpp"
#include "sched/config.hpp"

#include <fedflow/value.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace fedflow::plan {

struct Location {
    std::uint32_t line = 0;
    std::uint32_t column = 0;
};

// Every problem found in a plan, formatted "file:line:column: message", with
// control characters escaped (text::printable): a name in a plan cannot
// write to the terminal.
class PlanError : public std::runtime_error {
public:
    explicit PlanError(std::vector<std::string> messages);
    const std::vector<std::string>& messages() const noexcept { return messages_; }

private:
    std::vector<std::string> messages_;
};

// Where each param key was written (the level that set it: the plan, a
// [[round]], the group or the task), for errors about a param's value.
using ParamWhere = std::vector<std::pair<std::string, Location>>;

struct TaskSpec {
    std::string id;          // [A-Za-z0-9._-]+, unique in its group
    Dict params;             // the plan's, the [[round]]'s and the group's params, the task's own on top
    ParamWhere param_where;  // the task's own keys ([[group.task]] params); the group's param_where for the others
    std::string device;      // pinned device ("cpu", "cuda:N", "sim:N"), or empty
    // The task's own estimates (bytes); the group's apply when absent.
    std::optional<std::uint64_t> memory;
    std::optional<std::uint64_t> gpu_memory;
    Location where;
};

struct GroupSpec {
    std::size_t index = 0;  // 1-based position in the plan (file order, rounds included)
    std::size_t block = 0;  // 0: runs once; else the 1-based [[round]] block it belongs to
    std::string name;       // default group-<index>
    std::string plugin;     // registered name, or a path to a .so
    Location plugin_where;
    std::string device;  // pinned device for every task, or empty
    // The group's tasks, in this order: `count` tasks alike (`tasks = N`,
    // ids "0" to "N-1"), then those of [[group.task]] (`tasks`). The alike
    // ones are one spec, `alike` (its id empty), and a count, not N specs:
    // `tasks = 1000000` is allowed, and a TaskSpec is about 200 bytes. A
    // group with neither has one task alike ("0"). Read them through
    // task_count(), task_id(i) and task(i).
    std::size_t count = 0;
    TaskSpec alike;
    std::vector<TaskSpec> tasks;  // [[group.task]]: ids unique, none of them "0" to "count-1"
    std::size_t task_count() const noexcept { return count + tasks.size(); }
    // The id of task i (0 <= i < task_count()).
    std::string task_id(std::size_t i) const;
    // The spec of task i: `alike` for i < count (whose id is empty: take
    // task_id(i)), else tasks[i - count].
    const TaskSpec& task(std::size_t i) const noexcept { return i < count ? alike : tasks[i - count]; }
    // Each spec once (`alike` when count > 0, then those of tasks): for what
    // looks at the specs, not at each task (checks of params).
    std::vector<TaskSpec*> specs();
    std::vector<const TaskSpec*> specs() const;
    ParamWhere param_where;  // the keys the group has from the plan, its [[round]] and its own params
    // Names of groups whose results this group receives: the most recent
    // finished instance of each (in a round, this round's or an earlier one).
    std::vector<std::string> inputs;
    // Modules the fork server of the group's plugin imports before it forks
    // (the python plugin: `preload = ["torch", "numpy"]`).
    std::vector<std::string> preload;
    // Each task checks the checksum of every input byte file before its
    // load (verify-inputs): costs a read of every byte, finds a file that
    // changed on disk.
    bool verify_inputs = false;
    // keep-loaded (only in a [[round.group]]): task i keeps its worker, and
    // what its load built, from round to round; each round trains it again
    // with that round's inputs (docs/scheduling.md, "Kept clients").
    bool keep_loaded = false;
    // Estimates per task (bytes); [scheduler] defaults apply when absent.
    std::optional<std::uint64_t> memory;
    std::optional<std::uint64_t> gpu_memory;
    Location where;
};

// [[round]]: its groups ([[round.group]], kept in Plan::groups with
// `block` set) run `count` times, in order, before the plan goes on.
struct RoundSpec {
    std::uint32_t count = 1;
    std::string stop_when;          // end after a round where a task returned this key = true
    std::uint32_t keep_rounds = 0;  // keep the folders of the last N rounds only (0 = all)
    // A round in which a group failed entirely (every task) ends the run:
    // later rounds would only repeat the failure.
    bool stop_on_failure = true;
    std::size_t first = 0, last = 0;  // its groups: Plan::groups[first, last)
    Location where;
};

// The name of round r's folder: "round-001" (wider when there are more
// than 999 rounds).
std::string round_dir(std::uint32_t round, std::uint32_t count);

struct Plan;
// The folder of a group's instance in a run's workdir: <workdir>/<group>
// outside rounds, <workdir>/round-NNN/<group> in round `round` (1..).
std::filesystem::path group_dir(const Plan& plan, const std::filesystem::path& workdir, const GroupSpec& spec,
                                std::uint32_t round);

// How a task's worker starts: forked by a fork server that has loaded the
// plugin, or exec'd (docs/scheduling.md, "Starting workers").
enum class WorkerStart { fork_server, exec };

// [scheduler]
struct Scheduler {
    std::uint32_t max_processes = 0;  // 0 = no limit
    std::uint32_t max_waiting = 0;    // loaded tasks waiting for a device; 0 = no limit
    std::uint32_t load_retries = 3;   // out of memory in load: new process
    std::uint32_t train_retries = 3;  // out of memory in train: same process
    sched::GpuOrder gpu_order = sched::GpuOrder::free_memory;
    std::uint64_t default_memory = 2'000'000'000;
    std::uint64_t default_gpu_memory = 2'000'000'000;
    bool auto_adjust = true;                    // learn estimates from finished tasks
    std::chrono::milliseconds task_timeout{0};  // per stage; 0 = none
    std::uint64_t result_limit = 0;             // bytes of one task's result and Bytes; 0 = none
    WorkerStart worker_start = WorkerStart::fork_server;
};

// [slurm]: run across the nodes of a Slurm allocation (docs/slurm.md).
struct Slurm {
    bool enabled = false;       // as --slurm
    std::uint32_t requeue = 1;  // times a task whose node was lost runs again on another
};

struct Plan {
    std::filesystem::path file;                      // absolute
    std::filesystem::path given_file;                // as it was named (in messages, as every plan error names it)
    std::filesystem::path dir;                       // absolute directory of file
    std::string digest;                              // "sha256:<hex>" of the file's bytes
    std::string text;                                // the file's bytes (kept in run.json for --resume)
    std::filesystem::path workdir;                   // absolute
    std::vector<std::filesystem::path> plugin_path;  // absolute, in order
    sched::Limits resources;                         // [resources]: how much of the machine Fedflow may use
    Scheduler scheduler;
    Slurm slurm;
    std::vector<GroupSpec> groups;  // file order; a round's groups are consecutive
    std::vector<RoundSpec> rounds;
    std::optional<notify::Config> notify;  // [notify]: tell someone when a group or the run ends

    const GroupSpec* find_group(std::string_view name) const;
};

// The largest plan file load reads (a plan of a million tasks is a few
// MiB); a larger one, or a file that is not a regular file (a directory,
// a FIFO, /dev/zero), is refused with a PlanError.
inline constexpr std::uint64_t max_plan_size = 64ull << 20;

// Reads and checks the plan file. Throws PlanError.
Plan load(const std::filesystem::path& file);
// Same, from text (file names the errors and anchors relative paths).
Plan parse(std::string_view text, const std::filesystem::path& file);

// One param a plugin declares (FEDFLOW_PARAMS in <fedflow/abi.h>, or a
// Python task class's declared_params).
struct ParamDecl {
    std::string name;
    Value::Type type = Value::Type::null;  // null: any type
    std::optional<Value> default_value;
    bool required = false;
};

// A plugin's declaration (TOML text). Throws PlanError whose messages are
// "<origin>:line:column: ..." for a malformed one.
std::vector<ParamDecl> parse_param_declaration(std::string_view text, const std::string& origin);

// Checks the params of every task of plan.groups[group] against the
// declaration of its plugin (named `plugin` in messages), and adds the
// defaults of the params a task does not set. Appends one message per
// problem ("file:line:column: ...", where the param is written, else where
// the group is) to errors.
void apply_param_declaration(Plan& plan, std::size_t group, const std::vector<ParamDecl>& decls,
                             const std::string& plugin, std::vector<std::string>& errors);

// A GPU selection as --gpus takes it: "all", "none" or "0,2". Throws
// std::invalid_argument.
void parse_gpus(std::string_view text, sched::Limits& into);
// Hex SHA-256 of data, prefixed "sha256:".
std::string digest(std::string_view data);

}  // namespace fedflow::plan
