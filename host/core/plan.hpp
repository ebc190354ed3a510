// plan.hpp: the plan file (TOML), read and checked before anything runs.
//
// Every key of SPEC.md's plan is read. Keys whose behaviour belongs to a
// part not built yet are refused with "not supported yet", never ignored;
// unknown keys are errors with a "did you mean". All problems of a plan are
// collected and reported together, each as "file:line:column: message".
#pragma once

#include <fedflow/value.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace fedflow::plan {

struct Location {
    std::uint32_t line = 0;
    std::uint32_t column = 0;
};

// Every problem found in a plan, formatted "file:line:column: message".
class PlanError : public std::runtime_error {
public:
    explicit PlanError(std::vector<std::string> messages);
    const std::vector<std::string>& messages() const noexcept { return messages_; }

private:
    std::vector<std::string> messages_;
};

struct TaskSpec {
    std::string id;      // [A-Za-z0-9._-]+, unique in its group
    Dict params;         // the group's params with the task's own on top
    std::string device;  // pinned device ("cpu", "cuda:N"), or empty
    Location where;
};

struct GroupSpec {
    std::size_t index = 0;  // 1-based position in the plan
    std::string name;       // default group-<index>
    std::string plugin;     // registered name, or a path to a .so
    Location plugin_where;
    std::string device;     // pinned device for every task, or empty
    std::vector<TaskSpec> tasks;
    std::vector<std::string> inputs;  // names of earlier groups
    Location where;
};

struct Scheduler {
    std::uint32_t max_processes = 0;              // 0 = no limit
    std::chrono::milliseconds task_timeout{0};    // per stage; 0 = none
};

struct Plan {
    std::filesystem::path file;   // absolute
    std::filesystem::path dir;    // absolute directory of file
    std::string digest;           // "sha256:<hex>" of the file's bytes
    std::filesystem::path workdir;  // absolute
    std::vector<std::filesystem::path> plugin_path;  // absolute, in order
    Scheduler scheduler;
    std::vector<GroupSpec> groups;

    const GroupSpec* find_group(std::string_view name) const;
};

// Reads and checks the plan file. Throws PlanError.
Plan load(const std::filesystem::path& file);
// Same, from text (file names the errors and anchors relative paths).
Plan parse(std::string_view text, const std::filesystem::path& file);

// A name that may become a folder name: [A-Za-z0-9._-]+, not "." or "..".
bool valid_name(std::string_view name);
// "cpu" or "cuda:N".
bool valid_device(std::string_view device);
// Hex SHA-256 of data, prefixed "sha256:".
std::string digest(std::string_view data);

}  // namespace fedflow::plan
