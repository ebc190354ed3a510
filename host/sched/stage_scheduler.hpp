// stage_scheduler.hpp: admission of stages on one machine, with the state
// that admission needs: the probe and its latest snapshot, the ledger of
// what running stages hold, and the estimates learned from finished tasks.
//
// The decisions themselves are the pure functions of admission.hpp; this
// class keeps what they are decided against up to date. One exists per
// machine an executor runs workers on (exec/executor.hpp).
#pragma once

#include "sched/admission.hpp"
#include "sched/config.hpp"
#include "sched/ledger.hpp"
#include "sched/probe.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

namespace fedflow::sched {

class StageScheduler {
public:
    using Clock = std::chrono::steady_clock;

    struct Config {
        Limits limits;
        Policy policy;
        std::uint64_t default_memory = 2'000'000'000;  // estimates when nothing better is known
        std::uint64_t default_gpu_memory = 2'000'000'000;
        bool auto_adjust = true;  // learn estimates from finished tasks
    };

    // Takes a first sample at once: what the machine has is known from
    // construction on.
    StageScheduler(Config config, std::unique_ptr<Probe> probe);

    const Snapshot& snapshot() const noexcept { return snapshot_; }
    const Probe& probe() const noexcept { return *probe_; }
    Probe& probe() noexcept { return *probe_; }
    const Limits& limits() const noexcept { return config_.limits; }
    // The GPUs to schedule, when chosen after construction (CUDA_VISIBLE_DEVICES).
    void set_gpus(bool use_gpus, std::vector<int> gpus);
    Ledger& ledger() noexcept { return ledger_; }
    const Ledger& ledger() const noexcept { return ledger_; }

    // Samples the machine when the last sample is older than `age`; pids are
    // the live workers (their RSS, CPU time and GPU memory are read). The
    // ledger is measured against the new sample. True when it sampled.
    bool sample_if_older_than(std::chrono::milliseconds age, const std::vector<int>& pids);
    Clock::time_point sampled_at() const noexcept { return sampled_at_; }
    // What the last sample saw a worker use (-1: not seen).
    std::int64_t rss_of(int pid) const noexcept;
    std::int64_t gpu_memory_of(int pid) const noexcept;

    // -- estimates --
    // A new group starts: its own estimates apply, and nothing is learned yet.
    void start_group(std::optional<std::uint64_t> memory, std::optional<std::uint64_t> gpu_memory);
    // Each task of the group maps `bytes` of input byte files: a task,
    // group or default estimate gets them added (at most up to capacity, so
    // that inputs larger than the machine make a task run alone, not never);
    // a learned or grown one does not, since it comes from measured peaks,
    // which count the mapped pages a task touched (RssFile is part of RSS).
    void set_inputs_memory(std::uint64_t bytes) noexcept { inputs_memory_ = bytes; }
    // A task of the group finished with these peaks (-1: unknown).
    void learn(std::int64_t peak_memory, std::int64_t peak_gpu_memory);
    Estimate memory_estimate(std::optional<std::uint64_t> grown, std::optional<std::uint64_t> task) const;
    // pinned: the task's device ("cpu", "cuda:N") or empty.
    Estimate gpu_memory_estimate(std::optional<std::uint64_t> grown, std::optional<std::uint64_t> task,
                                 std::string_view pinned) const;
    // After an out of memory: the estimate that was too small, grown (on GPU
    // `gpu` when gpu >= 0, else RAM).
    std::uint64_t grow(std::uint64_t estimate, std::int64_t peak, int gpu) const;

    // -- admission (admission.hpp against the current state) --
    Verdict admit_load(const Counts& counts, std::uint64_t memory) const;
    Verdict admit_train(std::string_view pinned, std::uint64_t gpu_memory) const;

    // Whether a worker that died of a SIGKILL the host did not send was the
    // kernel's out-of-memory killer's (its OOM-kill count went up).
    bool killed_for_memory(int wait_status, bool host_sent_sigkill);

private:
    Config config_;
    std::unique_ptr<Probe> probe_;
    Snapshot snapshot_;
    Clock::time_point sampled_at_{};
    Ledger ledger_;
    std::int64_t oom_kills_ = -1;  // the kernel's OOM-kill count at the last look
    std::optional<std::uint64_t> group_memory_, group_gpu_memory_;
    std::uint64_t inputs_memory_ = 0;   // what each task of the group maps from its inputs
    std::uint64_t learned_memory_ = 0;  // the largest peaks of the group's finished tasks
    std::uint64_t learned_gpu_memory_ = 0;
};

}  // namespace fedflow::sched
