// ledger.hpp: what Fedflow's own tasks hold, by the host's book.
//
// Polling free memory alone over-admits: a task that was just started has
// not allocated yet, so the next one sees the memory as free. The ledger
// reserves each running stage's estimate instead, and once the task's
// usage has been measured it charges the larger of the two. Usage by
// processes that are not Fedflow's is what the machine reports in use
// minus what Fedflow's processes were measured to use.
#pragma once

#include "sched/resources.hpp"

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string_view>

namespace fedflow::sched {

class Ledger {
public:
    using Key = std::uint64_t;  // one per task (the runner's task sequence)

    struct Entry {
        int pid = -1;
        bool loading = true;                        // AVAILABLE or LOADING: counts one CPU
        std::uint64_t memory_estimate = 0;          // reserved while the process lives
        std::uint64_t memory_measured = 0;          // RSS at the last sample
        int gpu = -1;                               // the device of a running train stage
        std::uint64_t gpu_estimate = 0;             // reserved while that stage runs
        std::map<int, std::uint64_t> gpu_measured;  // device -> bytes at the last sample
        // keep-loaded: idle between rounds since the keep() numbered so (0:
        // not kept). It keeps its charges: its RAM and the GPU memory it
        // was measured to hold stay reserved.
        std::uint64_t kept = 0;
        bool evicting = false;  // asked to exit to make room: gone soon

        std::uint64_t memory_charge() const noexcept;
        std::uint64_t gpu_charge(int device) const noexcept;
    };

    // A process started to load: it holds memory_estimate from now on.
    Entry& open(Key key, int pid, std::uint64_t memory_estimate);
    Entry* find(Key key) noexcept;
    // The process is gone: everything it held is free again.
    void close(Key key) noexcept;
    // Train stages reserve GPU memory on one device until they end; the
    // process keeps what it was measured to hold until it exits.
    void start_train(Key key, int gpu, std::uint64_t estimate);
    void end_train(Key key) noexcept;

    // keep-loaded (docs/scheduling.md, "Kept clients"): the process is idle,
    // kept for its next round, and may be evicted; unkeep: it runs again.
    void keep(Key key) noexcept;
    void unkeep(Key key) noexcept;
    void evicting(Key key) noexcept;
    // The kept process to end when a stage waits for `resource` (as
    // Verdict::resource names it: "memory", "gpu-memory" on `gpu`, -1 for
    // any GPU, "processes"): the least recently kept idle one that holds
    // some of it. None while one is already on its way out (it frees its
    // room when it is gone; one at a time ends no more than needed), or when
    // no kept process holds the resource.
    std::optional<Key> eviction_candidate(std::string_view resource, int gpu) const;
    std::size_t kept() const noexcept;

    // Takes the usage of Fedflow's processes from a snapshot and works out
    // what everything else uses.
    void measure(const Snapshot& s);

    std::uint64_t memory_charge() const noexcept;
    std::uint64_t gpu_charge(int gpu) const noexcept;
    std::size_t loading() const noexcept;
    std::size_t size() const noexcept { return entries_.size(); }
    // Use by processes that are not Fedflow's, as of the last measure().
    std::uint64_t foreign_memory() const noexcept { return foreign_memory_; }
    std::uint64_t foreign_gpu(int gpu) const noexcept;

private:
    std::map<Key, Entry> entries_;
    std::uint64_t foreign_memory_ = 0;
    std::map<int, std::uint64_t> foreign_gpu_;
    std::uint64_t keep_seq_ = 0;
};

}  // namespace fedflow::sched
