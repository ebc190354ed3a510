#include "runner.hpp"

#include "../common/clock.hpp"
#include "../common/shm.hpp"
#include "log.hpp"
#include "results.hpp"
#include "report/report_html.hpp"
#include "units.hpp"

#include <fedflow/abi.h>
#include <fedflow/detail/wire.hpp>

#include <fmt/core.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <random>
#include <system_error>

#include <poll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#ifndef FEDFLOW_WORKER_FROM_BINDIR
#define FEDFLOW_WORKER_FROM_BINDIR "../libexec/fedflow/fedflow-worker"
#endif
#ifndef FEDFLOW_VERSION
#define FEDFLOW_VERSION "unknown"
#endif

extern char** environ;

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

namespace fedflow {

// A task whose process has been started and not yet reaped.
struct Runner::Live {
    TaskGroup* group = nullptr;
    Task* task = nullptr;
    std::string prefix;           // the task's shared-memory name prefix
    std::optional<Clock::time_point> closed_at;  // when EOF was seen on the socket
    bool segments_removed = false;  // all of the task's segments are gone
};

namespace {

std::string stage_of(TaskStatus s) {
    switch (s) {
    case TaskStatus::LOADING: return "load";
    case TaskStatus::WAITING:
    case TaskStatus::TRAINING: return "train";
    default: return "start";
    }
}

std::string format_duration(std::chrono::milliseconds ms) {
    auto n = ms.count();
    if (n % 3600000 == 0) return fmt::format("{}h", n / 3600000);
    if (n % 60000 == 0) return fmt::format("{}m", n / 60000);
    if (n % 1000 == 0) return fmt::format("{}s", n / 1000);
    return fmt::format("{}ms", n);
}

std::string random_hex(std::size_t n) {
    std::random_device rd;
    std::string out;
    while (out.size() < n) out += fmt::format("{:08x}", rd());
    out.resize(n);
    return out;
}

}  // namespace

std::vector<PluginFile> resolve_plugins(const plan::Plan& plan, const PluginRegistry& registry) {
    std::vector<PluginFile> out;
    std::vector<std::string> errors;
    auto error = [&](const plan::GroupSpec& g, const std::string& message) {
        errors.push_back(fmt::format("{}:{}:{}: plugin of group '{}': {}", plan.file.string(), g.plugin_where.line,
                                     g.plugin_where.column, g.name, message));
    };
    for (const auto& g : plan.groups) {
        bool is_path = g.plugin.find('/') != std::string::npos || fs::path(g.plugin).extension() == ".so";
        if (is_path) {
            fs::path file = (plan.dir / g.plugin).lexically_normal();
            std::string reason;
            std::error_code ec;
            if (!fs::is_regular_file(file, ec)) {
                error(g, fmt::format("{} does not exist", file.string()));
                out.emplace_back();
            } else if (auto p = PluginRegistry::inspect(file, reason)) {
                out.push_back(*p);
            } else {
                error(g, fmt::format("{} cannot be used: {}", file.string(), reason));
                out.emplace_back();
            }
            continue;
        }
        if (const PluginFile* p = registry.find(g.plugin)) {
            out.push_back(*p);
            continue;
        }
        std::string hint;
        for (const auto& p : registry.plugins())
            if (units::edit_distance(p.name, g.plugin) <= 2) hint = fmt::format(" (did you mean '{}'?)", p.name);
        std::string rejected;
        for (const auto& r : registry.rejected())
            if (r.path.stem().string().find(g.plugin) != std::string::npos)
                rejected += fmt::format("; {} was rejected: {}", r.path.string(), r.reason);
        std::string dirs;
        for (const auto& d : registry.dirs()) dirs += (dirs.empty() ? "" : ", ") + d.string();
        error(g, fmt::format("no plugin named '{}'{} on the plugin path ({}){}", g.plugin, hint,
                             dirs.empty() ? "no plugin directory exists" : dirs, rejected));
        out.emplace_back();
    }
    if (!errors.empty()) throw plan::PlanError(std::move(errors));
    return out;
}

fs::path find_worker() {
    if (const char* env = std::getenv("FEDFLOW_WORKER"); env != nullptr && *env != '\0') return fs::absolute(env);
    std::error_code ec;
    fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    if (ec) throw std::runtime_error("cannot find the running executable (/proc/self/exe)");
    for (const fs::path& candidate : {exe.parent_path() / "fedflow-worker",
                                      (exe.parent_path() / FEDFLOW_WORKER_FROM_BINDIR).lexically_normal()}) {
        if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    }
    throw std::runtime_error(fmt::format("fedflow-worker not found next to {} nor in {} (set FEDFLOW_WORKER)",
                                         exe.string(), FEDFLOW_WORKER_FROM_BINDIR));
}

Runner::Runner(const plan::Plan& plan, std::vector<PluginFile> plugins, RunOptions options)
    : plan_(plan), plugins_(std::move(plugins)), options_(std::move(options)) {
    workdir_ = options_.workdir.empty() ? plan_.workdir : fs::absolute(options_.workdir).lexically_normal();
    shm_prefix_ = fmt::format("fedflow-{}-{}", ::getpid(), random_hex(8));
    resources_ = plan_.resources;
    if (!options_.gpus.empty()) plan::parse_gpus(options_.gpus, resources_);
    if (options_.result_limit == 0) options_.result_limit = plan_.scheduler.result_limit;

    // The workers' environment: the host's, plus what makes CUDA number
    // devices the way NVML (and so the scheduler) does.
    for (char** e = environ; *e != nullptr; ++e)
        if (std::strncmp(*e, "CUDA_DEVICE_ORDER=", 18) != 0) env_storage_.emplace_back(*e);
    env_storage_.emplace_back("CUDA_DEVICE_ORDER=PCI_BUS_ID");
    for (auto& s : env_storage_) envp_.push_back(s.data());
    envp_.push_back(nullptr);
}

Runner::~Runner() {
    live_.clear();
    for (auto& g : groups_)
        for (auto& t : g->tasks()) t->release_process();
    shm::remove_prefix(shm_prefix_ + "-");
    if (signal_fd_ >= 0) ::close(signal_fd_);
}

void Runner::prepare_workdir() {
    std::error_code ec;
    if (fs::exists(workdir_ / "run.json", ec)) {
        // A previous run of Fedflow: its outputs are replaced, never mixed
        // with this run's.
        log::warning("replacing the previous run in {}", workdir_.string());
        for (const auto& e : fs::directory_iterator(workdir_)) fs::remove_all(e.path());
    } else if (fs::exists(workdir_, ec) && !fs::is_empty(workdir_, ec)) {
        throw std::invalid_argument(fmt::format(
            "workdir {} is not empty and holds no Fedflow run: refusing to write into it (choose --workdir)",
            workdir_.string()));
    }
    fs::create_directories(workdir_);
}

void Runner::write_report() {
    // The page is a view of the run's files: failing to write it loses no
    // result, so it is a warning, never the end of the run.
    try {
        report::write_html(workdir_);
    } catch (const std::exception& e) {
        log::warning("cannot write {}: {}", (workdir_ / "report.html").string(), e.what());
    }
}

void Runner::write_run_json(const std::string& status, int exit_code) {
    json groups = json::array();
    for (const auto& g : groups_) {
        groups.push_back({{"index", g->index()},
                          {"group", g->group_name()},
                          {"report", g->group_name() + "/report.json"},
                          {"tasks", g->tasks().size()},
                          {"finished", g->count(TaskStatus::FINISHED) + g->count(TaskStatus::EXITED)},
                          {"failed", g->failed_count()}});
    }
    json cpu;
    cpu["name"] = "cpu";
    cpu["cpus"] = ::sysconf(_SC_NPROCESSORS_ONLN);
    json run;
    run["fedflow_version"] = FEDFLOW_VERSION;
    run["plugin_abi_version"] = FEDFLOW_ABI_VERSION;
    run["plan"] = plan_.file.string();
    run["plan_digest"] = plan_.digest;
    run["workdir"] = workdir_.string();
    run["host_pid"] = ::getpid();
    run["seed"] = options_.seed;
    run["started"] = started_;
    run["ended"] = status == "running" ? json(nullptr) : json(clock::utc_timestamp());
    run["status"] = status;
    run["exit_code"] = status == "running" ? json(nullptr) : json(exit_code);
    cpu["memory"] = snapshot_.ram_total;
    json devices = json::array({cpu});
    for (const auto& g : snapshot_.gpus)
        devices.push_back({{"name", fmt::format("cuda:{}", g.index)},
                           {"model", g.name},
                           {"pci_bus_id", g.pci_bus_id},
                           {"uuid", g.uuid},
                           {"memory", g.total},
                           {"used", !resources_.use_gpus ? false
                                    : resources_.gpus.empty()
                                        ? true
                                        : std::find(resources_.gpus.begin(), resources_.gpus.end(), g.index) !=
                                              resources_.gpus.end()}});
    run["devices"] = std::move(devices);
    run["groups"] = std::move(groups);
    results::write_json_file(workdir_ / "run.json", run);
}

int Runner::run() {
    // What the machine has, before anything is written: a plan that names
    // GPUs this machine lacks is bad input (exit 2).
    probe_ = std::make_unique<sched::Probe>(resources_.use_gpus);
    snapshot_ = probe_->sample({});
    sampled_at_ = Clock::now();
    oom_kills_ = snapshot_.oom_kills;
    for (int index : resources_.gpus) {
        bool found = std::any_of(snapshot_.gpus.begin(), snapshot_.gpus.end(),
                                 [&](const sched::Gpu& g) { return g.index == index; });
        if (!found)
            throw std::invalid_argument(
                snapshot_.gpus.empty()
                    ? fmt::format("gpus lists GPU {}, but no GPU was found ({})", index,
                                  probe_->nvml_status().empty() ? "NVML sees none" : probe_->nvml_status())
                    : fmt::format("gpus lists GPU {}, but this machine has {} GPU(s), 0 to {}", index,
                                  snapshot_.gpus.size(), snapshot_.gpus.size() - 1));
    }
    if (resources_.use_gpus && snapshot_.gpus.empty())
        log::info("no GPU to schedule ({}): tasks train on \"cpu\"",
                  probe_->nvml_status().empty() ? "NVML sees none" : probe_->nvml_status());
    for (const auto& g : snapshot_.gpus)
        log::info("cuda:{}: {} ({}), {} in all, {} in use", g.index, g.name, g.pci_bus_id,
                  units::format_size(g.total), units::format_size(g.used));

    prepare_workdir();
    started_ = clock::utc_timestamp();
    journal_.open(workdir_ / "events.jsonl", options_.progress);

    // SIGINT/SIGTERM arrive through a signalfd in the poll loop, so that
    // stopping is an ordinary event: start nothing new, end the workers,
    // write the reports.
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigprocmask(SIG_BLOCK, &mask, nullptr);
    signal_fd_ = ::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);

    std::size_t total = 0;
    for (const auto& g : plan_.groups) total += g.tasks.size();
    journal_.write({{"event", "run_start"},
                    {"plan", plan_.file.string()},
                    {"plan_digest", plan_.digest},
                    {"workdir", workdir_.string()},
                    {"groups", plan_.groups.size()},
                    {"tasks", total},
                    {"seed", options_.seed}});
    write_run_json("running", 0);

    try {
        for (std::size_t i = 0; i < plan_.groups.size() && stop_signal_ == 0; ++i) run_group(i);
    } catch (const std::exception& e) {
        // The host itself failed: say so in the run's files before the
        // caller reports it (the destructor ends the workers).
        try {
            write_run_json("error", exit_host_failed);
            journal_.write({{"event", "run_end"}, {"status", "error"}, {"exit_code", exit_host_failed}, {"message", e.what()}});
            write_report();
        } catch (...) {
        }
        throw;
    }

    bool failed = false;
    for (const auto& g : groups_) failed = failed || g->failed_count() > 0;
    int code = stop_signal_ != 0 ? exit_host_failed : failed ? exit_task_failed : exit_ok;
    std::string status = stop_signal_ != 0 ? "interrupted" : failed ? "failed" : "finished";
    write_run_json(status, code);
    journal_.write({{"event", "run_end"}, {"status", status}, {"exit_code", code}});
    write_report();
    return code;
}

void Runner::status_event(const TaskGroup& group, const Task& task, json extra) {
    json e{{"event", "status"}, {"group", group.group_name()}, {"task", task.task_id()}, {"status", to_string(task.status())}};
    for (auto& [k, v] : extra.items()) e[k] = std::move(v);
    journal_.write(std::move(e));
}

std::string Runner::make_inputs_segment(const TaskGroup& group, const plan::GroupSpec& spec) {
    if (spec.inputs.empty()) return {};
    Dict inputs;
    for (const auto& name : spec.inputs) {
        Dict results;
        for (const auto& g : groups_) {
            if (g->group_name() != name) continue;
            for (const auto& t : g->tasks())
                if (t->status() == TaskStatus::FINISHED || t->status() == TaskStatus::EXITED)
                    results.insert_or_assign(t->task_id(), results::read_result(t->result(), t->workdir()));
        }
        inputs.insert_or_assign(name, std::move(results));
    }
    Value doc(std::move(inputs));
    std::size_t size = wire::encoded_size(doc);
    std::string name = fmt::format("{}-in{}", shm_prefix_, group.index());
    shm::Segment seg = shm::Segment::create(name, size);
    wire::encode(doc, seg.data(), size);
    return name;  // the mapping goes; the segment stays until the group ends
}

void Runner::launch(TaskGroup& group, Task& task, const std::string& inputs_segment, std::uint64_t memory) {
    WorkerLaunch l;
    l.worker = options_.worker;
    l.envp = envp_.data();
    l.plugin = plugins_[group.index() - 1].path;
    l.plugin_name = plugins_[group.index() - 1].name;
    l.group = group.group_name();
    l.plan_dir = plan_.dir;
    l.shm_prefix = fmt::format("{}-t{}", shm_prefix_, ++task_seq_);
    l.inputs_segment = inputs_segment;
    l.result_limit = options_.result_limit;

    auto live = std::make_unique<Live>();
    live->group = &group;
    live->task = &task;
    live->prefix = l.shm_prefix;
    try {
        task.start(group.workdir() / task.task_id(), l);
    } catch (const std::exception& e) {
        fail(group, task, "start", e.what());
        return;
    }
    ledger_.open(reinterpret_cast<std::uintptr_t>(&task), task.process()->pid(), memory);
    task.estimates().admitted_memory = memory;
    status_event(group, task, {{"pid", task.process()->pid()}, {"memory_estimate", memory}});
    task.start_load();
    status_event(group, task);
    live_.push_back(std::move(live));
}

void Runner::fail(TaskGroup& group, Task& task, const std::string& stage, const std::string& message) {
    group.report_exception(task.task_id(), stage, message);
    status_event(group, task, {{"stage", stage}, {"message", message}});
    log::error("{}/{} failed in {}: {}", group.group_name(), task.task_id(), stage, message);
}

void Runner::receive_result(TaskGroup& group, Live& live, const Dict& body) {
    Task& task = *live.task;
    std::int64_t received_ns = clock::monotonic_ns();
    try {
        auto size = static_cast<std::size_t>(body.at("size").as<std::int64_t>());
        auto count = static_cast<std::uint64_t>(body.at("bytes").as<std::int64_t>());
        auto seg = std::make_shared<shm::Segment>(shm::Segment::open_read_only(shm::result_name(live.prefix)));
        if (seg->size() < size)
            throw std::runtime_error(fmt::format("result segment has {} bytes, the worker announced {}", seg->size(), size));
        auto resolve = [&](std::uint64_t id, std::uint64_t n) -> Bytes {
            if (id >= count) throw wire::Error(fmt::format("reference to bytes buffer {} of {}", id, count));
            auto b = std::make_shared<shm::Segment>(shm::Segment::open_read_only(shm::bytes_name(live.prefix, id)));
            if (b->size() < n) throw wire::Error(fmt::format("bytes buffer {} has {} bytes, not {}", id, b->size(), n));
            return Bytes::view(b->data(), n, -1, b);
        };
        Value v = wire::decode(seg->data(), size, resolve, seg);
        if (!v.is<Dict>()) throw std::runtime_error("the result is not a dict");
        results::Written w = results::write_result(v.as<Dict>(), task.workdir());
        // The names are known: no need to list /dev/shm on this path.
        shm::Segment::remove(shm::result_name(live.prefix));
        for (std::uint64_t id = 0; id < count; ++id) shm::Segment::remove(shm::bytes_name(live.prefix, id));
        live.segments_removed = true;
        task.stats().train_ms = body.at("ms").as<std::int64_t>();
        task.stats().peak_memory = std::max(task.stats().peak_memory, body.at("peak_memory").as<std::int64_t>());
        group.report_finish(task.task_id(), std::move(w.json));
        ledger_.end_train(reinterpret_cast<std::uintptr_t>(&task));
        // auto-adjust: the next tasks of the group are admitted on what
        // this one was measured to use.
        if (task.stats().peak_memory > 0)
            learned_memory_ = std::max(learned_memory_, static_cast<std::uint64_t>(task.stats().peak_memory));
        if (task.stats().peak_gpu_memory > 0)
            learned_gpu_memory_ = std::max(learned_gpu_memory_, static_cast<std::uint64_t>(task.stats().peak_gpu_memory));
        std::int64_t done_ns = clock::monotonic_ns();
        std::int64_t train_end = body.at("train_end_ns").as<std::int64_t>();
        journal_.write({{"event", "result"},
                        {"group", group.group_name()},
                        {"task", task.task_id()},
                        {"bytes", w.bytes + size},
                        {"transfer_ms", static_cast<double>(done_ns - train_end) / 1e6},
                        {"host_ms", static_cast<double>(done_ns - received_ns) / 1e6}});
        status_event(group, task, {{"train_ms", task.stats().train_ms}});
    } catch (const std::exception& e) {
        shm::remove_prefix(live.prefix + "-");
        fail(group, task, "train", fmt::format("invalid result: {}", e.what()));
    }
    task.exit();
}

void Runner::handle_message(TaskGroup& group, Live& live, channel::Message& m) {
    Task& task = *live.task;
    if (is_final(task.status())) return;  // late words of a task already judged
    switch (m.type) {
    case channel::Type::ready:
        log::debug("{}/{}: worker {} ready", group.group_name(), task.task_id(), task.process()->pid());
        break;
    case channel::Type::loaded: {
        task.stats().load_ms = m.body.at("ms").as<std::int64_t>();
        task.stats().peak_memory = m.body.at("peak_memory").as<std::int64_t>();
        task.set_status(TaskStatus::WAITING);
        if (auto* e = ledger_.find(reinterpret_cast<std::uintptr_t>(&task))) e->loading = false;
        status_event(group, task, {{"load_ms", task.stats().load_ms}, {"peak_memory", task.stats().peak_memory}});
        break;  // schedule() gives it a device
    }
    case channel::Type::result: receive_result(group, live, m.body); break;
    case channel::Type::failed: {
        std::string stage = m.body.at("stage").as<std::string>();
        std::string kind = m.body.at("kind").as<std::string>();
        std::string message = m.body.at("message").as<std::string>();
        if (const Value* ms = m.body.find("ms")) {
            (stage == "load" ? task.stats().load_ms : task.stats().train_ms) = ms->as<std::int64_t>();
        }
        if (const Value* peak = m.body.find("peak_memory"))
            task.stats().peak_memory = std::max(task.stats().peak_memory, peak->as<std::int64_t>());
        if (kind == "oom") {
            out_of_memory(group, live, stage, message, true);
        } else {
            fail(group, task, stage, message);
            task.exit();
        }
        break;
    }
    default:
        fail(group, task, stage_of(task.status()),
             fmt::format("protocol error: unexpected message '{}' from the worker", channel::type_name(m.type)));
        task.process()->kill(SIGKILL);
    }
}

void Runner::handle_exit(TaskGroup& group, Live& live) {
    Task& task = *live.task;
    WorkerProcess& process = *task.process();
    int status = *process.wait_status();
    ledger_.close(reinterpret_cast<std::uintptr_t>(&task));
    if (task.status() == TaskStatus::FINISHED) {
        task.set_status(TaskStatus::EXITED);
        status_event(group, task);
    } else if (task.status() == TaskStatus::INTERRUPT && stop_signal_ == 0) {
        ++restarts_pending_;  // out of memory in load: starts again in a new process
    } else if (!is_final(task.status())) {
        std::string stage = stage_of(task.status());
        std::string message;
        if (!task.timed_out_stage.empty()) {
            stage = task.timed_out_stage;
            message = fmt::format("timed out after {} in {}", format_duration(plan_.scheduler.task_timeout), stage);
        } else if (stop_signal_ != 0) {
            message = fmt::format("interrupted: the host received {}", sigabbrev_np(stop_signal_) != nullptr
                                                                          ? std::string("SIG") + sigabbrev_np(stop_signal_)
                                                                          : "a signal");
        } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
            message = "the worker exited without a result";
        } else if (killed_for_memory(process, status)) {
            if (!live.segments_removed) shm::remove_prefix(live.prefix + "-");
            live.segments_removed = true;
            out_of_memory(group, live, stage, "killed by the kernel's out-of-memory killer (SIGKILL)", false);
            if (task.status() == TaskStatus::INTERRUPT) ++restarts_pending_;
        } else {
            message = describe_wait_status(status);
        }
        if (!message.empty()) fail(group, task, stage, message);
    }
    // A worker that failed may have made segments it never announced.
    if (!live.segments_removed) shm::remove_prefix(live.prefix + "-");
    task.release_process();
}

bool Runner::killed_for_memory(const WorkerProcess& p, int wait_status) {
    if (!WIFSIGNALED(wait_status) || WTERMSIG(wait_status) != SIGKILL || p.signal_sent() == SIGKILL) return false;
    // The kernel counts its OOM kills (the cgroup's memory.events, else
    // /proc/vmstat): one more than at the last look is this worker.
    sched::Snapshot now = probe_->sample({});
    if (now.oom_kills >= 0 && oom_kills_ >= 0 && now.oom_kills > oom_kills_) {
        ++oom_kills_;
        return true;
    }
    // Without a count: a SIGKILL that Fedflow did not send, while RAM was
    // short, is taken for the OOM killer's.
    return now.oom_kills < 0 && now.ram_total > 0 && now.ram_available < now.ram_total / 20;
}

void Runner::out_of_memory(TaskGroup& group, Live& live, const std::string& stage, const std::string& message,
                           bool process_alive) {
    Task& task = *live.task;
    TaskEstimates& e = task.estimates();
    const bool in_load = stage != "train";
    std::uint32_t& used = in_load ? e.load_retries : e.train_retries;
    const std::uint32_t limit = in_load ? plan_.scheduler.load_retries : plan_.scheduler.train_retries;
    std::string what = message.rfind("out of memory", 0) == 0 || message.rfind("killed", 0) == 0
                           ? message
                           : "out of memory: " + message;
    if (used >= limit) {
        fail(group, task, stage,
             limit == 0 ? fmt::format("{} ({}-retries = 0)", what, in_load ? "load" : "train")
                        : fmt::format("{} (gave up after {} {} retr{}: {}-retries = {})", what, used,
                                      in_load ? "load" : "train", used == 1 ? "y" : "ies", in_load ? "load" : "train",
                                      limit));
        if (process_alive) task.exit();
        return;
    }
    ++used;

    // The estimate that was too small grows: GPU memory when CUDA said so
    // on a GPU, RAM otherwise.
    int gpu = plan::cuda_index(task.device());
    bool gpu_oom = !in_load && gpu >= 0 &&
                   (message.find("CUDA") != std::string::npos || message.find("cuda") != std::string::npos);
    json grown;
    if (gpu_oom) {
        std::uint64_t cap = 0;
        for (const auto& g : snapshot_.gpus)
            if (g.index == gpu) cap = sched::gpu_capacity(resources_, g.total);
        e.grown_gpu_memory = sched::grow_estimate(e.grown_gpu_memory.value_or(e.admitted_gpu_memory),
                                                  static_cast<std::uint64_t>(std::max<std::int64_t>(0, task.stats().peak_gpu_memory)),
                                                  cap);
        grown["gpu_memory_estimate"] = *e.grown_gpu_memory;
    } else {
        e.grown_memory = sched::grow_estimate(e.grown_memory.value_or(e.admitted_memory),
                                              static_cast<std::uint64_t>(std::max<std::int64_t>(0, task.stats().peak_memory)),
                                              sched::memory_capacity(resources_, snapshot_.ram_total));
        grown["memory_estimate"] = *e.grown_memory;
    }
    log::warning("{}/{} ran out of memory in {} (retry {} of {}): {}; estimate now {}", group.group_name(),
                 task.task_id(), stage, used, limit, message,
                 units::format_size(gpu_oom ? *e.grown_gpu_memory : *e.grown_memory));

    const bool keep_process = process_alive && !in_load;
    task.set_status(TaskStatus::INTERRUPT);
    json event{{"stage", stage}, {"message", what}, {"retry", used}, {"retries", limit}};
    for (auto& [k, v] : grown.items()) event[k] = v;
    status_event(group, task, std::move(event));
    auto key = reinterpret_cast<std::uintptr_t>(&task);
    ledger_.end_train(key);
    if (keep_process) {
        // Train again in the same process: its loaded data is kept.
        if (auto* entry = ledger_.find(key); entry && e.grown_memory)
            entry->memory_estimate = std::max(entry->memory_estimate, *e.grown_memory);
        task.set_status(TaskStatus::WAITING);
        status_event(group, task, {{"retry", used}});
    } else if (process_alive) {
        task.exit();  // load again in a new process once this one is gone
    }
}

sched::Estimate Runner::memory_estimate(const Task& task) const {
    std::optional<std::uint64_t> learned;
    if (plan_.scheduler.auto_adjust && learned_memory_ > 0) learned = sched::learned_estimate(learned_memory_);
    return sched::choose_estimate(task.estimates().grown_memory, task.estimates().memory, learned, spec_->memory,
                                  plan_.scheduler.default_memory,
                                  sched::memory_capacity(resources_, snapshot_.ram_total));
}

sched::Estimate Runner::gpu_memory_estimate(const Task& task, const std::string& pinned) const {
    std::uint64_t cap = 0;
    int index = plan::cuda_index(pinned);
    for (const sched::Gpu* g : sched::usable_gpus(resources_, snapshot_))
        if (index < 0) cap = std::max(cap, sched::gpu_capacity(resources_, g->total));
    for (const auto& g : snapshot_.gpus)
        if (g.index == index) cap = sched::gpu_capacity(resources_, g.total);
    std::optional<std::uint64_t> learned;
    if (plan_.scheduler.auto_adjust && learned_gpu_memory_ > 0) learned = sched::learned_estimate(learned_gpu_memory_);
    return sched::choose_estimate(task.estimates().grown_gpu_memory, task.estimates().gpu_memory, learned,
                                  spec_->gpu_memory, plan_.scheduler.default_gpu_memory, cap);
}

void Runner::sample_if_older_than(std::chrono::milliseconds age) {
    auto now = Clock::now();
    if (now - sampled_at_ < age) return;
    std::vector<int> pids;
    for (const auto& l : live_)
        if (l->task->process() != nullptr) pids.push_back(l->task->process()->pid());
    snapshot_ = probe_->sample(pids);
    sampled_at_ = now;
    if (snapshot_.oom_kills >= 0) oom_kills_ = snapshot_.oom_kills;
    ledger_.measure(snapshot_);
    // Peaks for the report and for auto-adjust.
    for (const auto& l : live_) {
        Task& t = *l->task;
        if (t.process() == nullptr) continue;
        int pid = t.process()->pid();
        if (auto it = snapshot_.rss.find(pid); it != snapshot_.rss.end())
            t.stats().peak_memory = std::max(t.stats().peak_memory, static_cast<std::int64_t>(it->second));
        std::int64_t on_gpus = -1;
        for (const auto& g : snapshot_.gpus)
            if (auto it = g.processes.find(pid); it != g.processes.end())
                on_gpus = std::max<std::int64_t>(on_gpus, 0) + static_cast<std::int64_t>(it->second);
        t.stats().peak_gpu_memory = std::max(t.stats().peak_gpu_memory, on_gpus);
    }
}

void Runner::note_wait(const TaskGroup& group, Task& task, const std::string& stage, const sched::Verdict& v) {
    // Limits on Fedflow's own processes change only with its own events:
    // no need to sample the machine for them, nor to log every task.
    if (v.resource == "processes" || v.resource == "waiting") {
        log::debug("{}/{} waits to {}: {}", group.group_name(), task.task_id(), stage, v.reason);
        return;
    }
    waiting_on_resources_ = true;
    if (task.waiting_for == v.resource) return;
    task.waiting_for = v.resource;
    // Every task's wait is in the journal; the log says it when the cause
    // changes (or every 10 s), not once for each of a thousand tasks held
    // up by one cause.
    std::string cause = stage + " " + v.resource;
    auto now = Clock::now();
    bool news = cause != last_logged_wait_ || now - last_logged_wait_at_ >= std::chrono::seconds(10);
    log::write(news ? log::Level::info : log::Level::debug,
               fmt::format("{}/{} waits to {}: {}", group.group_name(), task.task_id(), stage, v.reason));
    if (news) {
        last_logged_wait_ = cause;
        last_logged_wait_at_ = now;
    }
    journal_.write({{"event", "waiting"},
                    {"group", group.group_name()},
                    {"task", task.task_id()},
                    {"stage", stage},
                    {"resource", v.resource},
                    {"reason", v.reason}});
}

void Runner::start_trains(TaskGroup& group) {
    for (const auto& tp : group.tasks()) {
        Task& t = *tp;
        if (t.status() != TaskStatus::WAITING) continue;
        std::string pinned = t.pinned() ? t.device() : group.device();
        sched::Estimate est = gpu_memory_estimate(t, pinned);
        sched::Verdict v = sched::admit_train(resources_, plan_.scheduler, snapshot_, ledger_, pinned, est.bytes);
        if (v.kind == sched::Verdict::Kind::wait) {
            note_wait(group, t, "train", v);
            continue;
        }
        if (v.kind == sched::Verdict::Kind::never) {
            fail(group, t, "train", v.reason);
            t.exit();
            continue;
        }
        ledger_.start_train(reinterpret_cast<std::uintptr_t>(&t), v.gpu, est.bytes);
        t.estimates().admitted_gpu_memory = v.gpu >= 0 ? est.bytes : 0;
        t.waiting_for.clear();
        t.start_train(v.device);
        json extra{{"device", v.device}};
        if (v.gpu >= 0) {
            extra["gpu_memory_estimate"] = est.bytes;
            extra["estimate_from"] = est.source;
        }
        status_event(group, t, std::move(extra));
    }
}

Task* Runner::next_to_load(TaskGroup& group) {
    if (restarts_pending_ > 0) {
        for (const auto& t : group.tasks())
            if (t->status() == TaskStatus::INTERRUPT && t->process() == nullptr) return t.get();
    }
    return group.retrieve_task(TaskStatus::INIT);
}

void Runner::start_loads(TaskGroup& group) {
    const std::string& inputs = inputs_segment_;
    while (Task* t = next_to_load(group)) {
        sched::Counts counts{live_.size(), ledger_.loading() + group.count(TaskStatus::WAITING)};
        sched::Estimate est = memory_estimate(*t);
        sched::Verdict v = sched::admit_load(resources_, plan_.scheduler, snapshot_, ledger_, counts, est.bytes);
        if (v.kind == sched::Verdict::Kind::wait) {
            note_wait(group, *t, "load", v);
            return;  // the same limits hold for the next task
        }
        bool restart = t->status() == TaskStatus::INTERRUPT;
        if (restart) --restarts_pending_;
        if (v.kind == sched::Verdict::Kind::never) {
            fail(group, *t, "load", v.reason);
            continue;
        }
        t->waiting_for.clear();
        launch(group, *t, inputs, est.bytes);
    }
}

void Runner::schedule(TaskGroup& group) {
    waiting_on_resources_ = false;
    bool gpu_training = false;
    for (const auto& l : live_)
        gpu_training = gpu_training || (l->task->status() == TaskStatus::TRAINING &&
                                        plan::cuda_index(l->task->device()) >= 0);
    if (gpu_training) sample_if_older_than(2 * options_.sample_period);
    gpu_training_ = gpu_training;
    if (stop_signal_ != 0) return;
    bool candidates = restarts_pending_ > 0 || group.count(TaskStatus::WAITING) > 0 || group.count(TaskStatus::INIT) > 0;
    if (!candidates) return;
    sample_if_older_than(options_.sample_period);
    start_trains(group);
    start_loads(group);
    // While something waits for resources, or tasks train on a GPU, the
    // loop wakes for the next sample.
    gpu_training_ = gpu_training_ && !waiting_on_resources_;
    waiting_on_resources_ = waiting_on_resources_ || gpu_training;
}

void Runner::stop_all(int signal) {
    for (auto& l : live_) {
        if (l->task->process() == nullptr) continue;
        l->task->process()->kill(signal);
        if (!l->task->kill_deadline) l->task->kill_deadline = Clock::now() + options_.kill_grace;
    }
}

void Runner::run_group(std::size_t index) {
    const plan::GroupSpec& spec = plan_.groups[index];
    auto group = std::make_unique<TaskGroup>(spec.index, spec.name, spec.device, options_.seed);
    group->set_plugin(plugins_[index].name);
    group->set_workdir(workdir_ / spec.name);
    fs::create_directories(group->workdir());
    for (const auto& t : spec.tasks) {
        Task& task = group->add_task(Task(t.id, t.device, t.params));
        task.estimates().memory = t.memory;
        task.estimates().gpu_memory = t.gpu_memory;
    }
    TaskGroup& g = *group;
    groups_.push_back(std::move(group));
    spec_ = &spec;
    learned_memory_ = 0;
    learned_gpu_memory_ = 0;
    restarts_pending_ = 0;

    journal_.write({{"event", "group_start"}, {"group", g.group_name()}, {"index", g.index()}, {"tasks", g.tasks().size()}});
    inputs_segment_.clear();
    try {
        inputs_segment_ = make_inputs_segment(g, spec);
    } catch (const std::exception& e) {
        for (const auto& t : g.tasks()) fail(g, *t, "start", fmt::format("cannot prepare inputs: {}", e.what()));
    }

    const auto timeout = plan_.scheduler.task_timeout;
    std::vector<pollfd> fds;
    std::vector<channel::Message> messages;
    for (;;) {
        schedule(g);
        if (live_.empty() && !waiting_on_resources_) break;

        // Wait for the next event: a message, a death, a signal, a deadline.
        fds.clear();
        fds.push_back({signal_fd_, POLLIN, 0});
        for (auto& l : live_) {
            WorkerProcess* p = l->task->process();
            fds.push_back({p->channel_open() ? p->channel_fd() : -1, POLLIN, 0});
            fds.push_back({p->pid_fd(), POLLIN, 0});
        }
        auto now = Clock::now();
        std::optional<Clock::time_point> next;
        auto consider = [&](Clock::time_point t) { next = next ? std::min(*next, t) : t; };
        for (auto& l : live_) {
            Task& t = *l->task;
            if (t.kill_deadline) consider(*t.kill_deadline);
            else if (timeout.count() > 0 && (t.status() == TaskStatus::LOADING || t.status() == TaskStatus::TRAINING))
                consider(t.stage_started + timeout);
            if (l->closed_at) consider(*l->closed_at + options_.kill_grace);
            if (t.process()->pid_fd() < 0 && l->closed_at) consider(now + std::chrono::milliseconds(10));
        }
        if (waiting_on_resources_) consider(sampled_at_ + (gpu_training_ ? 2 : 1) * options_.sample_period);
        int wait_ms = -1;
        if (next) wait_ms = static_cast<int>(std::max<std::int64_t>(
                      0, std::chrono::duration_cast<std::chrono::milliseconds>(*next - now).count() + 1));
        int rc = ::poll(fds.data(), fds.size(), wait_ms);
        if (rc < 0 && errno != EINTR) throw std::system_error(errno, std::generic_category(), "poll");

        if (fds[0].revents & POLLIN) {
            signalfd_siginfo si{};
            while (::read(signal_fd_, &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
                if (stop_signal_ == 0) {
                    stop_signal_ = static_cast<int>(si.ssi_signo);
                    log::warning("received SIG{}: ending {} running task(s), starting nothing new",
                                 sigabbrev_np(stop_signal_), live_.size());
                    stop_all(SIGTERM);
                } else {
                    stop_all(SIGKILL);  // asked twice: do not wait for the grace period
                }
            }
        }

        for (std::size_t i = 0; i < live_.size(); ++i) {
            Live& l = *live_[i];
            WorkerProcess* p = l.task->process();
            const pollfd& sock = fds[1 + 2 * i];
            if (sock.fd >= 0 && (sock.revents & (POLLIN | POLLHUP | POLLERR))) {
                messages.clear();
                bool open = true;
                try {
                    open = p->read_available(messages);
                } catch (const std::exception& e) {
                    if (!is_final(l.task->status()))
                        fail(*l.group, *l.task, stage_of(l.task->status()), fmt::format("protocol error: {}", e.what()));
                    p->kill(SIGKILL);
                }
                for (auto& m : messages) handle_message(*l.group, l, m);
                if (!open && !l.closed_at) l.closed_at = Clock::now();
            }
            if (p->pid_fd() < 0 || (fds[2 + 2 * i].revents & POLLIN) || l.closed_at) p->try_reap();
        }

        // Deadlines: stage timeouts, then the grace period after SIGTERM, and
        // a worker that closed its channel but lingers.
        now = Clock::now();
        for (auto& l : live_) {
            Task& t = *l->task;
            WorkerProcess* p = t.process();
            if (p->exited()) continue;
            if (t.kill_deadline && now >= *t.kill_deadline) {
                p->kill(SIGKILL);
            } else if (!t.kill_deadline && timeout.count() > 0 &&
                       (t.status() == TaskStatus::LOADING || t.status() == TaskStatus::TRAINING) &&
                       now >= t.stage_started + timeout) {
                t.timed_out_stage = stage_of(t.status());
                p->kill(SIGTERM);
                t.kill_deadline = now + options_.kill_grace;
            } else if (l->closed_at && now >= *l->closed_at + options_.kill_grace) {
                p->kill(SIGKILL);
            }
        }

        for (std::size_t i = 0; i < live_.size();) {
            if (live_[i]->task->process()->exited()) {
                handle_exit(*live_[i]->group, *live_[i]);
                live_.erase(live_.begin() + static_cast<std::ptrdiff_t>(i));
            } else {
                ++i;
            }
        }
    }

    // Tasks never started because the host was asked to stop.
    for (const auto& t : g.tasks()) {
        if (t->status() == TaskStatus::INIT)
            fail(g, *t, "start", fmt::format("not started: the host received SIG{}", sigabbrev_np(stop_signal_)));
        else if (t->status() == TaskStatus::INTERRUPT)
            fail(g, *t, "load", fmt::format("not restarted after running out of memory: the host received SIG{}",
                                            sigabbrev_np(stop_signal_)));
    }
    if (!inputs_segment_.empty()) shm::Segment::remove(inputs_segment_);

    results::write_json_file(g.workdir() / "report.json", g.result());
    journal_.write({{"event", "group_end"},
                    {"group", g.group_name()},
                    {"finished", g.count(TaskStatus::FINISHED) + g.count(TaskStatus::EXITED)},
                    {"failed", g.failed_count()}});
    write_run_json("running", 0);
    write_report();
}

}  // namespace fedflow
