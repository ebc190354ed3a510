// runner_schedule.cpp: the Runner's side of scheduling: which task asks the
// executor next, out-of-memory retries, and what a wait is logged as. The
// executor admits (exec/executor.hpp, sched/admission.hpp).
#include "runner/runner.hpp"

#include "common/device.hpp"
#include "common/log.hpp"
#include "common/sim_gpu.hpp"
#include "common/text.hpp"
#include "common/units.hpp"
#include "runner/results.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <utility>

#include <sys/wait.h>

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

namespace fedflow {

void Runner::select_visible_gpus(const std::string& visible) {
    if (!limits_.use_gpus || !limits_.gpus.empty() || !options_.gpus.empty()) {
        log::info("CUDA_VISIBLE_DEVICES={} is not passed on: the plan or --gpus chooses the GPUs", visible);
        return;
    }
    std::vector<int> chosen;
    for (std::string_view item : units::split_commas(visible)) {
        if (item.empty()) continue;
        bool number = units::all_digits(item) && item.size() <= 9;  // an index, not a UUID
        int found = -1;
        for (const auto& g : executor_->machine().gpus)
            if ((number && g.index == std::stoi(std::string(item))) || (!number && g.uuid.rfind(item, 0) == 0))
                found = g.index;
        if (found < 0) break;  // CUDA, too, ignores everything from an unknown entry on
        if (std::find(chosen.begin(), chosen.end(), found) == chosen.end()) chosen.push_back(found);
    }
    if (chosen.empty()) {
        limits_.use_gpus = false;
        executor_->set_gpus(false, {});
        log::info("CUDA_VISIBLE_DEVICES={} names no GPU of this machine: tasks train on \"cpu\"", visible);
        return;
    }
    limits_.gpus = chosen;
    executor_->set_gpus(true, chosen);
    std::string names;
    const bool simulated = executor_->machine().gpus.front().simulated;
    for (int i : chosen) names += fmt::format("{}{}", names.empty() ? "" : ", ", device::gpu_name(i, simulated));
    log::info("CUDA_VISIBLE_DEVICES={}: scheduling {} (numbered by PCI bus id; workers see every GPU)", visible, names);
}

void Runner::out_of_memory(Live& live, exec::WorkerId id, const std::string& stage, const std::string& message,
                           bool process_alive) {
    TaskGroup& group = *live.group;
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
             limit == 0
                 ? fmt::format("{} ({}-retries = 0)", what, in_load ? "load" : "train")
                 : fmt::format("{} (gave up after {} {} retr{}: {}-retries = {})", what, used,
                               in_load ? "load" : "train", used == 1 ? "y" : "ies", in_load ? "load" : "train", limit));
        if (process_alive) task.exit();
        return;
    }
    ++used;

    // The estimate that was too small grows: GPU memory when CUDA said so
    // on a GPU, RAM otherwise.
    merge_peaks(task, executor_->peaks(id));
    bool gpu_oom = !in_load && device::gpu_index(task.device()) >= 0 &&
                   (message.find("CUDA") != std::string::npos || message.find("cuda") != std::string::npos ||
                    message.find(simgpu::oom_text) != std::string::npos);
    json grown;
    if (gpu_oom) {
        e.grown_gpu_memory = executor_->grow(e.grown_gpu_memory.value_or(e.admitted_gpu_memory),
                                             task.stats().peak_gpu_memory, task.device());
        grown["gpu_memory_estimate"] = *e.grown_gpu_memory;
    } else {
        e.grown_memory = executor_->grow(e.grown_memory.value_or(e.admitted_memory), task.stats().peak_memory, "cpu");
        grown["memory_estimate"] = *e.grown_memory;
    }
    // The estimate before the message: a Python task's message ends with
    // the lines of its last frames.
    log::warning("{}/{} ran out of memory in {} (retry {} of {}, estimate now {}): {}", group.group_name(),
                 task.task_id(), stage, used, limit, text::format_size(gpu_oom ? *e.grown_gpu_memory : *e.grown_memory),
                 message);

    const bool keep_process = process_alive && !in_load;
    task.set_status(TaskStatus::INTERRUPT);
    json event{{"stage", stage}, {"message", what}, {"retry", used}, {"retries", limit}};
    for (auto& [k, v] : grown.items()) event[k] = v;
    status_event(group, task, std::move(event));
    executor_->end_stage(id);
    if (keep_process) {
        // Train again in the same process: its loaded data is kept.
        if (e.grown_memory) executor_->reserve_memory(id, *e.grown_memory);
        task.set_status(TaskStatus::WAITING);
        status_event(group, task, {{"retry", used}});
    } else if (process_alive) {
        task.exit();  // load again in a new process once this one is gone
    }
}

void Runner::note_wait(const TaskGroup& group, Task& task, const std::string& stage, const sched::Verdict& v) {
    // Limits on Fedflow's own processes change only with its own events:
    // no need to wait for the machine, nor to log every task.
    if (v.resource == "processes" || v.resource == "waiting") {
        log::debug("{}/{} waits to {}: {}", group.group_name(), task.task_id(), stage, v.reason);
        // Kept workers hold process slots; one is ended to free one, and
        // the group waits for that (its exit ends the wait).
        if (!kept_.empty()) waiting_on_machine_ = true;
        return;
    }
    waiting_on_machine_ = true;
    std::string& waiting_for = waiting_for_[&task];
    if (waiting_for == v.resource) return;
    waiting_for = v.resource;
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
                    {"round", group.round()},
                    {"task", task.task_id()},
                    {"stage", stage},
                    {"resource", v.resource},
                    {"reason", v.reason}});
}

void Runner::start_trains(TaskGroup& group) {
    // Only a live task can be loaded and waiting for a device.
    for (auto& [id, l] : live_)
        if (l.task->status() == TaskStatus::WAITING) start_train(group, id, l);
}

void Runner::start_train(TaskGroup& group, exec::WorkerId id, Live& l) {
    Task& t = *l.task;
    exec::TrainRequest request;
    request.pinned = t.pinned() ? t.device() : group.device();
    request.grown_gpu_memory = t.estimates().grown_gpu_memory;
    request.gpu_memory = t.estimates().gpu_memory;
    request.last = !may_keep(l);
    exec::Admission a = executor_->start_train(id, request);
    if (!l.train_ahead.empty()) {
        // Its train went with its load and runs: on that device, whatever
        // the executor says (it forgets a worker whose exit it has seen).
        a.verdict = sched::Verdict{};
        a.verdict.device = std::exchange(l.train_ahead, {});
    }
    if (a.verdict.kind == sched::Verdict::Kind::wait) {
        note_wait(group, t, "train", a.verdict);
        return;
    }
    if (a.verdict.kind == sched::Verdict::Kind::never) {
        fail(group, t, "train", a.verdict.reason);
        t.exit();
        return;
    }
    t.estimates().admitted_gpu_memory = a.verdict.gpu >= 0 ? a.estimate.bytes : 0;
    waiting_for_.erase(&t);
    t.start_train(a.verdict.device);
    json extra{{"device", a.verdict.device}};
    if (a.verdict.gpu >= 0) {
        extra["gpu_memory_estimate"] = a.estimate.bytes;
        extra["estimate_from"] = a.estimate.source;
    }
    status_event(group, t, std::move(extra));
}

Task* Runner::next_to_load(TaskGroup& group) {
    if (restarts_pending_ > 0) {
        for (const auto& t : group.tasks())
            if (t->status() == TaskStatus::INTERRUPT && !t->is_alive()) return t.get();
    }
    return group.retrieve_task(TaskStatus::INIT);
}

void Runner::start_loads(TaskGroup& group) {
    while (Task* t = next_to_load(group)) {
        if (!launch(group, *t)) return;  // the same limits hold for the next task
    }
}

messages::Config Runner::make_config(const TaskGroup& group, const Task& task, const std::string& prefix,
                                     const fs::path& workdir) const {
    const std::size_t plugin = group.index() - 1;
    messages::Config c;
    c.task_id = task.task_id();
    c.group = group.group_name();
    c.round = group.round();
    c.workdir = workdir.string();
    c.plan_dir = plan_.dir.string();
    c.plugin_path = plugins_[plugin].path.string();
    c.plugin_name = plugins_[plugin].name;
    c.shm_prefix = prefix;
    c.inputs_segment = inputs_segment_;
    c.verify_inputs = spec_->verify_inputs;
    c.inputs_about = inputs_about_;
    c.result_limit = options_.result_limit;
    c.params = task.params();
    return c;
}

void Runner::start_kept(TaskGroup& group) {
    if (!spec_->keep_loaded || kept_.empty()) return;
    for (const auto& t : group.tasks()) {
        if (t->status() != TaskStatus::INIT) continue;
        auto c = clients_.find({group.index() - 1, t->task_id()});
        if (c != clients_.end() && c->second.kept != 0 && !reuse(group, *t, c->second)) {
            // Gone or on its way out: it loads anew, as any other.
            c->second.kept = 0;
        }
    }
}

bool Runner::reuse(TaskGroup& group, Task& task, Client& client) {
    const exec::WorkerId id = client.kept;
    const std::string prefix = fmt::format("{}-t{}r{}", shm_prefix_, id, group.round());
    const fs::path workdir = group.task_dir(task);
    if (!executor_->next_round(id, make_config(group, task, prefix, workdir))) return false;
    kept_.erase(id);
    client.kept = 0;
    task.stats().loads = client.loads;
    task.stats().evictions = client.evictions;
    task.stats().kept = true;
    live_.emplace(id, Live(group, task, ResultReceiver(prefix), messages::worker_protocol));
    task.start(*executor_, id);
    status_event(group, task, {{"pid", executor_->pid(id)}, {"kept", true}});
    task.start_load();  // no load runs: what an earlier round loaded is there
    task.set_status(TaskStatus::WAITING);
    status_event(group, task, {{"kept", true}});
    return true;
}

bool Runner::launch(TaskGroup& group, Task& task) {
    const std::size_t plugin = group.index() - 1;
    const exec::WorkerId id = task_seq_ + 1;
    const std::string prefix = fmt::format("{}-t{}", shm_prefix_, id);
    exec::LoadRequest request;
    request.id = id;
    request.workdir = group.task_dir(task);
    request.grown_memory = task.estimates().grown_memory;
    request.memory = task.estimates().memory;
    // Tasks of a plugin share a fork server when they load alike: the same
    // plugin, preloads and interpreter.
    PreloadSpec& preload = request.preload.emplace();
    preload.plugin_path = plugins_[plugin].path.string();
    preload.plugin_name = plugins_[plugin].name;
    preload.modules = plan_.groups[plugin].preload;
    if (const Value* python = task.params().find("python")) preload.params["python"] = *python;
    preload.plan_dir = plan_.dir.string();
    request.config = [&] { return make_config(group, task, prefix, request.workdir); };
    // Its train, as start_trains will ask for it: a worker that is not kept
    // may get it with its load when it is bound to "cpu".
    if (!spec_->keep_loaded) request.train_pinned = task.pinned() ? task.device() : group.device();
    exec::Admission a;
    try {
        a = executor_->start_load(request);
    } catch (const std::exception& e) {
        if (task.status() == TaskStatus::INTERRUPT) --restarts_pending_;
        if (results::is_disk_full(e)) {
            disk_full(e.what());
            fail(group, task, "start", fmt::format("not started: the workdir's filesystem is full ({})", e.what()));
        } else {
            fail(group, task, "start", e.what());
        }
        return true;
    }
    if (a.verdict.kind == sched::Verdict::Kind::wait) {
        note_wait(group, task, "load", a.verdict);
        return false;
    }
    if (task.status() == TaskStatus::INTERRUPT) --restarts_pending_;
    if (a.verdict.kind == sched::Verdict::Kind::never) {
        fail(group, task, "load", a.verdict.reason);
        return true;
    }
    task_seq_ = id;
    waiting_for_.erase(&task);
    live_.emplace(id, Live(group, task, ResultReceiver(prefix))).first->second.train_ahead = a.train_ahead;
    task.start(*executor_, id);
    if (spec_->keep_loaded) {
        Client& client = clients_[{group.index() - 1, task.task_id()}];
        task.stats().loads = ++client.loads;
        task.stats().evictions = client.evictions;
    }
    task.estimates().admitted_memory = a.estimate.bytes;
    status_event(group, task, {{"pid", a.pid}, {"memory_estimate", a.estimate.bytes}});
    task.start_load();
    status_event(group, task);
    return true;
}

void Runner::schedule(TaskGroup& group) {
    waiting_on_machine_ = false;
    if (!stop_reason_.empty()) return;
    start_kept(group);
    start_trains(group);
    start_loads(group);
}

}  // namespace fedflow
