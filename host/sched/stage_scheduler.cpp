#include "sched/stage_scheduler.hpp"

#include "common/device.hpp"

#include <algorithm>
#include <csignal>
#include <limits>
#include <string_view>

#include <sys/wait.h>

namespace fedflow::sched {

StageScheduler::StageScheduler(Config config, std::unique_ptr<Probe> probe)
    : config_(std::move(config)), probe_(std::move(probe)) {
    snapshot_ = probe_->sample({});
    sampled_at_ = Clock::now();
    oom_kills_ = snapshot_.oom_kills;
    // What other processes hold counts from the first admission on: without
    // it the first stages would be admitted as if the machine were idle.
    ledger_.measure(snapshot_);
}

void StageScheduler::set_gpus(bool use_gpus, std::vector<int> gpus) {
    config_.limits.use_gpus = use_gpus;
    config_.limits.gpus = std::move(gpus);
}

bool StageScheduler::sample_if_older_than(std::chrono::milliseconds age, const std::vector<int>& pids) {
    auto now = Clock::now();
    if (now - sampled_at_ < age) return false;
    snapshot_ = probe_->sample(pids);
    sampled_at_ = now;
    if (snapshot_.oom_kills >= 0) oom_kills_ = snapshot_.oom_kills;
    ledger_.measure(snapshot_);
    return true;
}

std::int64_t StageScheduler::rss_of(int pid) const noexcept {
    auto it = snapshot_.rss.find(pid);
    return it == snapshot_.rss.end() ? -1 : static_cast<std::int64_t>(it->second);
}

std::int64_t StageScheduler::gpu_memory_of(int pid) const noexcept {
    std::int64_t on_gpus = -1;
    for (const auto& g : snapshot_.gpus)
        if (auto it = g.processes.find(pid); it != g.processes.end())
            on_gpus = std::max<std::int64_t>(on_gpus, 0) + static_cast<std::int64_t>(it->second);
    return on_gpus;
}

void StageScheduler::start_group(std::optional<std::uint64_t> memory, std::optional<std::uint64_t> gpu_memory) {
    group_memory_ = memory;
    group_gpu_memory_ = gpu_memory;
    inputs_memory_ = 0;
    learned_memory_ = 0;
    learned_gpu_memory_ = 0;
}

void StageScheduler::learn(std::int64_t peak_memory, std::int64_t peak_gpu_memory) {
    if (peak_memory > 0) learned_memory_ = std::max(learned_memory_, static_cast<std::uint64_t>(peak_memory));
    if (peak_gpu_memory > 0)
        learned_gpu_memory_ = std::max(learned_gpu_memory_, static_cast<std::uint64_t>(peak_gpu_memory));
}

Estimate StageScheduler::memory_estimate(std::optional<std::uint64_t> grown, std::optional<std::uint64_t> task) const {
    std::optional<std::uint64_t> learned;
    if (config_.auto_adjust && learned_memory_ > 0) learned = learned_estimate(learned_memory_);
    const std::uint64_t cap = memory_capacity(config_.limits, snapshot_.ram_total);
    Estimate e = choose_estimate(grown, task, learned, group_memory_, config_.default_memory, cap);
    const std::string_view from = e.source;
    if (inputs_memory_ != 0 && from != "grown" && from != "learned") {
        const std::uint64_t with = e.bytes > std::numeric_limits<std::uint64_t>::max() - inputs_memory_
                                       ? std::numeric_limits<std::uint64_t>::max()
                                       : e.bytes + inputs_memory_;
        e.bytes = std::max(e.bytes, std::min(with, cap));
    }
    return e;
}

Estimate StageScheduler::gpu_memory_estimate(std::optional<std::uint64_t> grown, std::optional<std::uint64_t> task,
                                             std::string_view pinned) const {
    std::uint64_t cap = 0;
    int index = device::gpu_index(pinned);
    if (index < 0)
        for (const Gpu* g : usable_gpus(config_.limits, snapshot_))
            cap = std::max(cap, gpu_capacity(config_.limits, g->total));
    for (const auto& g : snapshot_.gpus)
        if (g.index == index) cap = gpu_capacity(config_.limits, g.total);
    std::optional<std::uint64_t> learned;
    if (config_.auto_adjust && learned_gpu_memory_ > 0) learned = learned_estimate(learned_gpu_memory_);
    return choose_estimate(grown, task, learned, group_gpu_memory_, config_.default_gpu_memory, cap);
}

std::uint64_t StageScheduler::grow(std::uint64_t estimate, std::int64_t peak, int gpu) const {
    std::uint64_t cap = 0;
    if (gpu >= 0) {
        for (const auto& g : snapshot_.gpus)
            if (g.index == gpu) cap = gpu_capacity(config_.limits, g.total);
    } else {
        cap = memory_capacity(config_.limits, snapshot_.ram_total);
    }
    return grow_estimate(estimate, static_cast<std::uint64_t>(std::max<std::int64_t>(0, peak)), cap);
}

Verdict StageScheduler::admit_load(const Counts& counts, std::uint64_t memory) const {
    return sched::admit_load(config_.limits, config_.policy, snapshot_, ledger_, counts, memory);
}

Verdict StageScheduler::admit_train(std::string_view pinned, std::uint64_t gpu_memory) const {
    return sched::admit_train(config_.limits, config_.policy, snapshot_, ledger_, pinned, gpu_memory);
}

bool StageScheduler::killed_for_memory(int wait_status, bool host_sent_sigkill) {
    if (!WIFSIGNALED(wait_status) || WTERMSIG(wait_status) != SIGKILL || host_sent_sigkill) return false;
    // The kernel counts its OOM kills (the cgroup's memory.events, else
    // /proc/vmstat): one more than at the last look is this worker.
    Snapshot now = probe_->sample({});
    if (now.oom_kills >= 0 && oom_kills_ >= 0 && now.oom_kills > oom_kills_) {
        ++oom_kills_;
        return true;
    }
    // Without a count: a SIGKILL that Fedflow did not send, while RAM was
    // short, is taken for the OOM killer's.
    return now.oom_kills < 0 && now.ram_total > 0 && now.ram_available < now.ram_total / 20;
}

}  // namespace fedflow::sched
