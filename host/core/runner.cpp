#include "runner.hpp"

#include "../common/clock.hpp"
#include "../common/integrity.hpp"
#include "../common/python_version.hpp"
#include "../common/shm.hpp"
#include "log.hpp"
#include "results.hpp"
#include "units.hpp"

#include <fedflow/abi.h>
#include <fedflow/detail/wire.hpp>

#include <fmt/core.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <set>
#include <system_error>

#include <poll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#ifndef FEDFLOW_WORKER_FROM_BINDIR
#define FEDFLOW_WORKER_FROM_BINDIR "../libexec/fedflow/fedflow-worker"
#endif

extern char** environ;

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

namespace fedflow {


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
    // A plugin that embeds Python runs a plan's `python` interpreter or venv
    // only when both are the same major.minor.
    for (std::size_t i = 0; i < plan.groups.size(); ++i) {
        if (out[i].python_version.empty()) continue;
        std::set<std::string> seen;
        for (const auto& t : plan.groups[i].tasks) {
            const Value* v = t.params.find("python");
            if (v == nullptr || !v->is<std::string>() || !seen.insert(v->as<std::string>()).second) continue;
            const std::string& path = v->as<std::string>();
            std::string resolved = fs::path(path).is_absolute() ? path : (plan.dir / path).string();
            python::Interpreter in = python::inspect_interpreter(resolved);
            std::string problem = in.version.empty() ? in.error
                                                     : python::version_mismatch(path, in.version, out[i].python_version);
            if (!problem.empty()) error(plan.groups[i], problem);
        }
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

void Runner::failpoint(const char* point) {
    const char* fp = std::getenv("FEDFLOW_FAILPOINTS");
    if (fp != nullptr && std::string(fp) == std::string("host-kill@") + point) ::raise(SIGKILL);
}

Runner::Runner(const plan::Plan& plan, std::vector<PluginFile> plugins, RunOptions options)
    : plan_(plan), plugins_(std::move(plugins)), options_(std::move(options)) {
    workdir_ = options_.workdir.empty() ? plan_.workdir : fs::absolute(options_.workdir).lexically_normal();
    shm_prefix_ = shm_lock_.prefix();
    resources_ = plan_.resources;
    if (!options_.gpus.empty()) plan::parse_gpus(options_.gpus, resources_);
    if (options_.result_limit == 0) options_.result_limit = plan_.scheduler.result_limit;

    // The workers' environment: the host's, plus what makes CUDA number
    // devices the way NVML (and so the scheduler) does.
    // CUDA_VISIBLE_DEVICES would renumber the GPUs inside the workers; it
    // becomes the GPU selection instead (see run()), and workers see all.
    for (char** e = environ; *e != nullptr; ++e) {
        if (std::strncmp(*e, "CUDA_VISIBLE_DEVICES=", 21) == 0) cuda_visible_ = std::string(*e + 21);
        else if (std::strncmp(*e, "CUDA_DEVICE_ORDER=", 18) != 0) env_storage_.emplace_back(*e);
    }
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

int Runner::run() {
    // What the machine has, before anything is written: a plan that names
    // GPUs this machine lacks is bad input (exit 2).
    probe_ = std::make_unique<sched::Probe>(resources_.use_gpus);
    snapshot_ = probe_->sample({});
    sampled_at_ = Clock::now();
    oom_kills_ = snapshot_.oom_kills;
    if (cuda_visible_) select_visible_gpus(*cuda_visible_);
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

    remove_stale_segments();
    if (plan_.notify && plan_.notify->smtp && !notify::have_smtp())
        throw std::invalid_argument("[notify] smtp: this fedflow-host was built without libcurl, so it cannot send mail");
    // The start sequence is ordered so that a host killed at any point of
    // it leaves a workdir that a fresh run and --resume both accept: the
    // lock file first (it marks the directory as Fedflow's), then run.json,
    // then the journal. The failpoints are where tests kill it.
    claim_workdir();
    failpoint("workdir-locked");
    if (options_.resume) load_previous();
    else prepare_workdir();
    failpoint("workdir-ready");
    if (plan_.notify) notifier_.emplace(*plan_.notify, workdir_);
    started_ = clock::utc_timestamp();
    view_ = ProgressView::make(options_.progress);
    write_run_json("running", 0);
    failpoint("run-json-written");
    if (std::size_t cut = journal_.open(workdir_ / "events.jsonl", view_.get()))
        log::warning("events.jsonl ended in {} byte(s) of a line that was never finished (its host was killed, or the "
                     "disk was full): cut off",
                     cut);
    failpoint("journal-open");

    // SIGINT/SIGTERM arrive through a signalfd in the poll loop, so that
    // stopping is an ordinary event: start nothing new, end the workers,
    // write the reports.
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigprocmask(SIG_BLOCK, &mask, nullptr);
    signal_fd_ = ::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);

    std::size_t total = 0, planned = 0;
    for (const auto& g : plan_.groups) {
        total += g.tasks.size();
        planned += g.tasks.size() * (g.round == 0 ? 1 : plan_.rounds[g.round - 1].count);
    }
    std::size_t restored = 0;
    for (const auto& [group, tasks] : previous_) restored += tasks.size();
    journal_.write({{"event", "run_start"},
                    {"plan", plan_.file.string()},
                    {"plan_digest", plan_.digest},
                    {"workdir", workdir_.string()},
                    {"groups", plan_.groups.size()},
                    {"tasks", total},
                    {"planned_tasks", planned},
                    {"seed", options_.seed},
                    {"resume", options_.resume},
                    {"finished_before", restored}});
    if (options_.resume)
        log::info("resuming the run in {}: {} of {} task(s) finished before", workdir_.string(), restored, total);

    try {
        for (std::size_t i = 0; i < plan_.groups.size() && stop_signal_ == 0;) {
            const plan::GroupSpec& g = plan_.groups[i];
            if (g.round == 0) {
                run_group(i);
                ++i;
            } else {
                const plan::RoundSpec& rounds = plan_.rounds[g.round - 1];
                run_rounds(rounds);
                i = rounds.last;
            }
        }
    } catch (const std::exception& e) {
        // The host itself failed: say so in the run's files before the
        // caller reports it (the destructor ends the workers).
        try {
            write_run_json("error", exit_host_failed);
            journal_.write({{"event", "run_end"}, {"status", "error"}, {"exit_code", exit_host_failed}, {"message", e.what()}});
            write_report();
            notify_run("error");
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
    notify_run(status);
    if (view_) {
        if (view_->live()) show_status(true);  // nothing runs any more
        view_->finish();
    }
    return code;
}

void Runner::status_event(const TaskGroup& group, const Task& task, json extra) {
    json e{{"event", "status"}, {"group", group.group_name()}};
    if (group.round() != 0) e["round"] = group.round();
    e["task"] = task.task_id();
    e["status"] = to_string(task.status());
    for (auto& [k, v] : extra.items()) e[k] = std::move(v);
    journal_.write(std::move(e));
}

std::string Runner::make_inputs_segment(const TaskGroup& group, const plan::GroupSpec& spec) {
    if (spec.inputs.empty()) return {};
    Dict inputs;
    for (const auto& name : spec.inputs) {
        // The most recent instance of that group that ran before this one
        // (this round's, else an earlier round's); none yet: no key.
        const TaskGroup* latest = nullptr;
        for (const auto& g : groups_)
            if (g.get() != &group && g->group_name() == name) latest = g.get();
        if (latest == nullptr) continue;
        Dict results;
        for (const auto& t : latest->tasks())
            if ((t->status() == TaskStatus::FINISHED || t->status() == TaskStatus::EXITED) && !t->result().is_null())
                results.insert_or_assign(t->task_id(), results::read_result(t->result(), t->workdir()));
        inputs.insert_or_assign(name, std::move(results));
    }
    if (inputs.size() == 0) return {};
    Value doc(std::move(inputs));
    std::size_t size = wire::encoded_size(doc);
    std::string name = fmt::format("{}-in{}", shm_prefix_, ++inputs_seq_);
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
    l.round = group.round();
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
        const List& sizes = body.at("bytes_sizes").as<List>();
        const List& checksums = body.at("bytes_checksums").as<List>();
        if (sizes.size() != count || checksums.size() != count)
            throw std::runtime_error(fmt::format("the worker announced {} bytes buffers but {} sizes and {} checksums",
                                                 count, sizes.size(), checksums.size()));
        auto seg = std::make_shared<shm::Segment>(shm::Segment::open_read_only(shm::result_name(live.prefix)));
        const std::uint8_t* doc = integrity::check_result(seg->data(), seg->size(), size);
        auto resolve = [&](std::uint64_t id, std::uint64_t n) -> Bytes {
            if (id >= count) throw wire::Error(fmt::format("reference to bytes buffer {} of {}", id, count));
            std::int64_t announced = sizes[id].as<std::int64_t>();
            if (announced < 0) throw wire::Error(fmt::format("reference to bytes buffer {} of an earlier attempt", id));
            auto b = std::make_shared<shm::Segment>(shm::Segment::open_read_only(shm::bytes_name(live.prefix, id)));
            if (b->size() < static_cast<std::uint64_t>(announced))
                throw wire::Error(fmt::format("bytes buffer {} truncated: {} bytes of {}", id, b->size(), announced));
            if (n > static_cast<std::uint64_t>(announced))
                throw wire::Error(fmt::format("bytes buffer {} has {} bytes, not {}", id, announced, n));
            auto sum = static_cast<std::uint64_t>(checksums[id].as<std::int64_t>());
            if (integrity::checksum(b->data(), static_cast<std::size_t>(announced)) != sum)
                throw wire::Error(fmt::format("bytes buffer {} corrupt: its checksum does not match (written to after "
                                              "train returned?)", id));
            return Bytes::view(b->data(), n, -1, b);
        };
        Value v = wire::decode(doc, size, resolve, seg);
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
                        {"round", group.round()},
                        {"task", task.task_id()},
                        {"bytes", w.bytes + size},
                        {"transfer_ms", static_cast<double>(done_ns - train_end) / 1e6},
                        {"host_ms", static_cast<double>(done_ns - received_ns) / 1e6}});
        status_event(group, task, {{"train_ms", task.stats().train_ms},
                                   {"result_checksum", fmt::format("{:016x}", w.checksum)}});
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
        task.stage_started = Clock::now();  // waiting since (shown by the live view)
        if (auto* e = ledger_.find(reinterpret_cast<std::uintptr_t>(&task))) e->loading = false;
        json extra{{"load_ms", task.stats().load_ms}, {"peak_memory", task.stats().peak_memory}};
        // The task's own estimates (set_estimates in load) replace the plan's.
        for (auto [key, field] : {std::pair{"memory_estimate", &TaskEstimates::memory},
                                  std::pair{"gpu_memory_estimate", &TaskEstimates::gpu_memory}}) {
            const Value* v = m.body.find(key);
            if (v == nullptr || !v->is<std::int64_t>() || v->as<std::int64_t>() < 0) continue;
            task.estimates().*field = static_cast<std::uint64_t>(v->as<std::int64_t>());
            extra[key] = v->as<std::int64_t>();
        }
        status_event(group, task, std::move(extra));
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

Runner::Live* Runner::signalled_by_task(const signalfd_siginfo& si) {
    // A positive code is the kernel's (a terminal's Ctrl-C), not a process's.
    if (si.ssi_code > 0 || si.ssi_pid == 0) return nullptr;
    auto worker = [&](pid_t pid) -> Live* {
        for (auto& l : live_)
            if (l->task->process() != nullptr && l->task->process()->pid() == pid) return l.get();
        return nullptr;
    };
    auto parent = [](pid_t pid) -> pid_t {
        std::ifstream in(fmt::format("/proc/{}/stat", pid));
        std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        std::size_t close = stat.rfind(')');  // the name in (...) may hold anything
        if (close == std::string::npos) return 0;
        char state = 0;
        int ppid = 0;
        return std::sscanf(stat.c_str() + close + 1, " %c %d", &state, &ppid) == 2 ? ppid : 0;
    };
    // The sender, or the process group or parent it belongs to, up to a
    // worker (which leads its own group); a descendant that left the group
    // (setsid) is found through its parents.
    auto pid = static_cast<pid_t>(si.ssi_pid);
    for (int depth = 0; pid > 1 && pid != ::getpid() && depth < 64; ++depth) {
        if (Live* l = worker(pid)) return l;
        if (Live* l = worker(::getpgid(pid))) return l;
        pid = parent(pid);
    }
    return nullptr;
}

void Runner::stop_all(int signal) {
    for (auto& l : live_) {
        if (l->task->process() == nullptr) continue;
        l->task->process()->kill(signal);
        if (!l->task->kill_deadline) l->task->kill_deadline = Clock::now() + options_.kill_grace;
    }
}

void Runner::run_group(std::size_t index, std::uint32_t round) {
    const plan::GroupSpec& spec = plan_.groups[index];
    auto group = std::make_unique<TaskGroup>(spec.index, spec.name, spec.device, options_.seed + round);
    group->set_plugin(plugins_[index].name);
    group->set_round(round);
    group->set_workdir(group_dir(spec, round));
    fs::create_directories(group->workdir());
    auto previous = previous_.find({round, spec.name});
    for (const auto& t : spec.tasks) {
        Task& task = group->add_task(Task(t.id, t.device, t.params));
        task.estimates().memory = t.memory;
        task.estimates().gpu_memory = t.gpu_memory;
        if (!options_.resume) continue;
        fs::path dir = group->workdir() / t.id;
        if (previous != previous_.end()) {
            if (auto p = previous->second.find(t.id); p != previous->second.end()) {
                task.restore(dir, std::move(p->second.result), std::move(p->second.report));
                continue;
            }
        }
        fs::remove_all(dir);  // what did not finish starts afresh
    }
    TaskGroup& g = *group;
    groups_.push_back(std::move(group));
    spec_ = &spec;
    learned_memory_ = 0;
    learned_gpu_memory_ = 0;
    restarts_pending_ = 0;

    journal_.write({{"event", "group_start"},
                    {"group", g.group_name()},
                    {"round", round},
                    {"index", g.index()},
                    {"tasks", g.tasks().size()},
                    {"finished_before", g.count(TaskStatus::FINISHED)}});
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
        journal_.sync();  // what just finished is on disk before anything new starts
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
        if (view_ && view_->live()) {
            show_status();
            consider(shown_at_ + std::chrono::milliseconds(250));  // the clock on the screen moves on
        }
        int wait_ms = -1;
        // (A timeout may be a year away: more milliseconds than an int holds.)
        if (next) wait_ms = static_cast<int>(std::clamp<std::int64_t>(
                      std::chrono::duration_cast<std::chrono::milliseconds>(*next - now).count() + 1, 0, INT_MAX));
        int rc = ::poll(fds.data(), fds.size(), wait_ms);
        if (rc < 0 && errno != EINTR) throw std::system_error(errno, std::generic_category(), "poll");

        if (fds[0].revents & POLLIN) {
            signalfd_siginfo si{};
            while (::read(signal_fd_, &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
                if (Live* from = signalled_by_task(si)) {
                    // A task's own doing (a script's pkill, a kill of the
                    // wrong pid): that task fails, the run goes on.
                    Task& t = *from->task;
                    std::string what = fmt::format("sent SIG{} to fedflow-host (pid {}, a process of this task)",
                                                   sigabbrev_np(static_cast<int>(si.ssi_signo)), si.ssi_pid);
                    if (!is_final(t.status())) {
                        fail(*from->group, t, stage_of(t.status()), what);
                        t.process()->kill(SIGKILL);
                    } else {
                        log::warning("{}/{} {} after it ended: ignored", from->group->group_name(), t.task_id(), what);
                    }
                    continue;
                }
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
                    {"round", round},
                    {"finished", g.count(TaskStatus::FINISHED) + g.count(TaskStatus::EXITED)},
                    {"failed", g.failed_count()}});
    write_run_json("running", 0);
    write_report();
    notify_group(g);
}

}  // namespace fedflow
