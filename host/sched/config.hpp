// config.hpp: what the scheduler is told, in its own terms. The runner fills
// these from the plan's [resources] and [scheduler] (and --gpus), so that the
// scheduler depends on nothing but common/ and its tests write them by hand.
#pragma once

#include <cstdint>
#include <vector>

namespace fedflow::sched {

enum class GpuOrder { pci, total_memory, free_memory };

// How much of the machine Fedflow may use (the plan's [resources]).
struct Limits {
    double cpu_utilization = 0.8;                      // start no load while CPUs are busier
    double memory_utilization = 0.8;                   // share of RAM Fedflow may fill
    double gpu_memory_utilization = 0.9;               // ... of each GPU
    std::uint64_t memory_reserve = 1'000'000'000;      // RAM always left free
    std::uint64_t gpu_memory_reserve = 1'000'000'000;  // ... on each GPU
    bool use_gpus = true;                              // false: train on the CPU
    std::vector<int> gpus;                             // indices; empty = all
};

// How stages are admitted (the scheduling part of the plan's [scheduler]).
struct Policy {
    std::uint32_t max_processes = 0;  // 0 = no limit
    std::uint32_t max_waiting = 0;    // loaded tasks waiting for a device; 0 = no limit
    GpuOrder gpu_order = GpuOrder::free_memory;
};

}  // namespace fedflow::sched
