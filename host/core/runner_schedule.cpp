// runner_schedule.cpp: the Runner's side of scheduling (sched/ decides): which
// stage starts now, out-of-memory retries, samples of the machine, waits.
#include "runner.hpp"

#include "log.hpp"
#include "units.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>

#include <sys/wait.h>

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

namespace fedflow {

void Runner::select_visible_gpus(const std::string& visible) {
    if (!resources_.use_gpus || !resources_.gpus.empty() || !options_.gpus.empty()) {
        log::info("CUDA_VISIBLE_DEVICES={} is not passed on: the plan or --gpus chooses the GPUs", visible);
        return;
    }
    std::vector<int> chosen;
    for (std::string_view item : units::split_commas(visible)) {
        if (item.empty()) continue;
        bool number = units::all_digits(item) && item.size() <= 9;  // an index, not a UUID
        int found = -1;
        for (const auto& g : snapshot_.gpus)
            if ((number && g.index == std::stoi(std::string(item))) || (!number && g.uuid.rfind(item, 0) == 0))
                found = g.index;
        if (found < 0) break;  // CUDA, too, ignores everything from an unknown entry on
        if (std::find(chosen.begin(), chosen.end(), found) == chosen.end()) chosen.push_back(found);
    }
    if (chosen.empty()) {
        resources_.use_gpus = false;
        log::info("CUDA_VISIBLE_DEVICES={} names no GPU of this machine: tasks train on \"cpu\"", visible);
        return;
    }
    resources_.gpus = chosen;
    std::string names;
    for (int i : chosen) names += fmt::format("{}cuda:{}", names.empty() ? "" : ", ", i);
    log::info("CUDA_VISIBLE_DEVICES={}: scheduling {} (numbered by PCI bus id; workers see every GPU)", visible, names);
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
                    {"round", group.round()},
                    {"task", task.task_id()},
                    {"stage", stage},
                    {"resource", v.resource},
                    {"reason", v.reason}});
}

void Runner::start_trains(TaskGroup& group) {
    // Only a live task can be loaded and waiting for a device.
    for (const auto& l : live_) {
        Task& t = *l->task;
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
        sched::Counts counts{live_.size(), ledger_.loading() + waiting_count()};
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

std::size_t Runner::waiting_count() const {
    return static_cast<std::size_t>(std::count_if(live_.begin(), live_.end(), [](const auto& l) {
        return l->task->status() == TaskStatus::WAITING;
    }));
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
    bool candidates = restarts_pending_ > 0 || waiting_count() > 0 || group.retrieve_task(TaskStatus::INIT) != nullptr;
    if (!candidates) return;
    sample_if_older_than(options_.sample_period);
    start_trains(group);
    start_loads(group);
    // While something waits for resources, or tasks train on a GPU, the
    // loop wakes for the next sample.
    gpu_training_ = gpu_training_ && !waiting_on_resources_;
    waiting_on_resources_ = waiting_on_resources_ || gpu_training;
}

}  // namespace fedflow
