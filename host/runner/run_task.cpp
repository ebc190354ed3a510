#include "runner/run_task.hpp"

#include "common/device.hpp"
#include "common/log.hpp"
#include "exec/worker_process.hpp"
#include "runner/runner.hpp"

#include <fmt/core.h>

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <system_error>

#include <unistd.h>

namespace fs = std::filesystem;

namespace fedflow {

namespace {

// word, quoted for a POSIX shell where it needs to be.
std::string shell_quote(const std::string& word) {
    if (!word.empty() && word.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
                                                "_-./:=@%+,") == std::string::npos)
        return word;
    std::string out = "'";
    for (char c : word) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

bool on_path(const std::string& program) {
    const char* path = std::getenv("PATH");
    std::string dirs = path != nullptr ? path : "/usr/bin:/bin";
    for (std::size_t start = 0; start <= dirs.size();) {
        std::size_t end = dirs.find(':', start);
        if (end == std::string::npos) end = dirs.size();
        fs::path candidate = fs::path(dirs.substr(start, end - start)) / program;
        if (::access(candidate.c_str(), X_OK) == 0) return true;
        start = end + 1;
    }
    return false;
}

fs::path new_temporary_dir() {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern =
        (fs::path(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") / "fedflow-run-task-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr)
        throw std::system_error(errno, std::generic_category(), "cannot create a directory like " + pattern);
    return pattern;
}

}  // namespace

int run_task(const plan::Plan& plan, const std::vector<PluginFile>& plugins, const RunTaskOptions& o,
             const fs::path& worker) {
    std::size_t slash = o.target.find('/');
    if (slash == std::string::npos)
        throw std::invalid_argument(
            fmt::format("run-task: '{}' is not GROUP/ID (a group's name and a task's id)", o.target));
    const std::string group = o.target.substr(0, slash), id = o.target.substr(slash + 1);
    std::size_t gi = plan.groups.size();
    std::string names;
    for (std::size_t i = 0; i < plan.groups.size(); ++i) {
        if (plan.groups[i].name == group && gi == plan.groups.size()) gi = i;
        names += (names.empty() ? "" : ", ") + plan.groups[i].name;
    }
    if (gi == plan.groups.size())
        throw std::invalid_argument(fmt::format("run-task: the plan has no group '{}' (its groups: {})", group, names));
    const plan::GroupSpec& g = plan.groups[gi];
    const plan::TaskSpec* task = nullptr;
    std::string ids;
    for (std::size_t i = 0; i < g.task_count() && (task == nullptr || ids.size() < 200); ++i) {
        const std::string ti = g.task_id(i);
        if (ti == id) task = &g.task(i);
        if (ids.size() < 200) ids += (ids.empty() ? "" : ", ") + ti;
    }
    if (task == nullptr)
        throw std::invalid_argument(fmt::format("run-task: group '{}' has no task '{}' (its tasks: {}{})", group, id,
                                                ids, g.task_count() > 20 ? ", ..." : ""));
    if (!o.device.empty() && !device::valid(o.device))
        throw std::invalid_argument(fmt::format("run-task: --device {}: not \"cpu\" or \"cuda:N\"", o.device));

    // The plan of this one task: its group alone, once, nothing to end it.
    plan::Plan one = plan;
    plan::GroupSpec only = g;
    only.index = 1;
    only.block = 0;
    only.inputs.clear();
    only.count = 0;
    only.tasks = {*task};
    only.tasks.front().id = std::string(id);
    if (!o.device.empty()) only.tasks.front().device = o.device;
    one.groups = {only};
    one.rounds.clear();
    one.notify.reset();
    one.scheduler.max_processes = 1;
    one.scheduler.task_timeout = std::chrono::milliseconds(0);

    RunOptions ro;
    ro.worker = worker;
    ro.progress = Progress::none;
    ro.foreground = true;
    if (o.gdb) ro.wrapper = {"gdb", "--args"};

    if (o.print_command) {
        fs::path dir = o.dir.empty() ? fs::path("DIR") : fs::absolute(o.dir);
        SpawnOptions so;
        so.worker = worker;
        so.foreground = true;
        so.wrapper = ro.wrapper;
        std::string command;
        for (const auto& a : WorkerProcess::command_line(so)) command += (command.empty() ? "" : " ") + shell_quote(a);
        std::printf("cwd: %s\n", (dir / group / id).c_str());
        std::printf(
            "environment: fedflow-host's, with CUDA_DEVICE_ORDER=PCI_BUS_ID (and without CUDA_VISIBLE_DEVICES)\n");
        std::printf("command: %s\n", command.c_str());
        std::printf("fd 3: the control channel, on which fedflow-host sends the task (config, load, train): "
                    "fedflow-host run-task %s %s%s runs this command and drives it\n",
                    shell_quote(plan.file.string()).c_str(), shell_quote(o.target).c_str(), o.gdb ? " --gdb" : "");
        return exit_ok;
    }
    if (o.gdb && !on_path("gdb")) throw std::invalid_argument("run-task --gdb: gdb is not on PATH");

    fs::path dir = o.dir.empty() ? new_temporary_dir() : fs::absolute(o.dir);
    one.workdir = dir;
    ro.workdir = dir;
    ro.overwrite = o.overwrite;
    log::info("run-task: {} of {} (plugin {}) in {}", o.target, plan.file.string(), plugins[gi].name,
              (dir / group / id).string());
    if (!g.inputs.empty()) {
        std::string inputs;
        for (const auto& name : g.inputs) inputs += (inputs.empty() ? "" : ", ") + name;
        log::warning("run-task: {} gets no inputs (its group takes those of {}, which do not run here)", o.target,
                     inputs);
    }
    Runner runner(one, {plugins[gi]}, ro);
    int rc = runner.run();

    const TaskGroup& ran = *runner.groups().front();
    const Task& t = *ran.tasks().front();
    if (t.status() == TaskStatus::FINISHED || t.status() == TaskStatus::EXITED) {
        std::printf("%s\n", t.result().dump(2).c_str());
        log::info("run-task: {} finished; its result.json and logs are in {}", o.target, ran.task_dir(t).string());
    } else {
        auto entry = ran.result()["tasks"][id];
        log::error("run-task: {} failed in {}: {}", o.target, entry.value("stage", "?"), entry.value("message", "?"));
    }
    return rc;
}

}  // namespace fedflow
