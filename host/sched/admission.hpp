// admission.hpp: whether a stage may start now, and on which device.
//
// Pure functions of the plan's limits, a Snapshot of the machine and the
// Ledger of what Fedflow's tasks hold, so that tests decide them against a
// device table they write themselves. The rules, in plain words, are in
// docs/scheduling.md:
//
//   load:  a process slot is free (max-processes), not too many loaded tasks
//          wait (max-waiting), the CPUs are not busier than cpu-utilization
//          (others' measured use, plus one CPU per load of Fedflow's; one
//          load may always run), and
//          the RAM Fedflow may use still holds the task's memory estimate.
//   train: a pinned device is used as it is; otherwise the first GPU in
//          gpu-order whose free memory holds the gpu-memory estimate; "cpu"
//          when there is no GPU to use.
#pragma once

#include "sched/config.hpp"
#include "sched/ledger.hpp"
#include "sched/resources.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace fedflow::sched {

struct Verdict {
    enum class Kind {
        go,     // start the stage now (on device)
        wait,   // not now: resource and reason say why
        never,  // can never start on this machine: reason says why
    };
    Kind kind = Kind::go;
    std::string device;    // train: "cuda:N", "sim:N" or "cpu"
    int gpu = -1;          // train: N of "cuda:N" or "sim:N", -1 on the CPU
    std::string resource;  // what it waits for: processes, waiting, cpu, memory, gpu-memory
    std::string reason;    // which resource, how much is needed, how much is free

    bool go() const noexcept { return kind == Kind::go; }
};

// What Fedflow's tasks are doing now.
struct Counts {
    std::size_t processes = 0;  // live workers
    std::size_t waiting = 0;    // loaded (or loading) tasks that have no device yet
};

// The most of a resource that Fedflow may fill: total times the
// utilization limit, and never into the reserve.
std::uint64_t memory_capacity(const Limits& r, std::uint64_t total) noexcept;
std::uint64_t gpu_capacity(const Limits& r, std::uint64_t total) noexcept;

// Free for Fedflow's next stage: capacity - others' use - the ledger's
// charges. Negative when over-committed.
std::int64_t memory_free(const Limits& r, const Snapshot& s, const Ledger& l) noexcept;
std::int64_t gpu_free(const Limits& r, const Gpu& g, const Ledger& l) noexcept;

// The GPUs that unpinned tasks may train on (the plan's gpus that exist).
std::vector<const Gpu*> usable_gpus(const Limits& r, const Snapshot& s);

Verdict admit_load(const Limits& r, const Policy& sc, const Snapshot& s, const Ledger& l, const Counts& c,
                   std::uint64_t memory);
// pinned: the task's device ("cpu", "cuda:N" or "sim:N": GPU N) or empty.
Verdict admit_train(const Limits& r, const Policy& sc, const Snapshot& s, const Ledger& l, std::string_view pinned,
                    std::uint64_t gpu_memory);

// -- estimates --

struct Estimate {
    std::uint64_t bytes = 0;
    const char* source = "default";  // grown, task, learned, group, default
};
// The estimate a stage is admitted on, first found of: grown after an
// out-of-memory, the task's own, learned from the group's finished tasks
// (auto-adjust), the group's, the default. Learned and default estimates
// are cut to capacity (a guess must not make a task impossible); an
// estimate the plan wrote is not.
Estimate choose_estimate(std::optional<std::uint64_t> grown, std::optional<std::uint64_t> task,
                         std::optional<std::uint64_t> learned, std::optional<std::uint64_t> group,
                         std::uint64_t fallback, std::uint64_t capacity);
// After an out-of-memory: half as much again as the larger of the estimate
// and the measured peak, at most capacity.
std::uint64_t grow_estimate(std::uint64_t estimate, std::uint64_t peak, std::uint64_t capacity) noexcept;
// auto-adjust: the largest peak of the group's finished tasks, plus a fifth.
std::uint64_t learned_estimate(std::uint64_t peak) noexcept;

}  // namespace fedflow::sched
