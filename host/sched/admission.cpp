#include "sched/admission.hpp"

#include "common/device.hpp"
#include "common/text.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <cmath>

namespace fedflow::sched {

namespace {

std::uint64_t capacity(double utilization, std::uint64_t reserve, std::uint64_t total) noexcept {
    auto share = static_cast<std::uint64_t>(std::floor(static_cast<double>(total) * utilization));
    std::uint64_t unreserved = total > reserve ? total - reserve : 0;
    return std::min(share, unreserved);
}

std::int64_t signed_free(std::uint64_t cap, std::uint64_t foreign, std::uint64_t charge) noexcept {
    return static_cast<std::int64_t>(cap) - static_cast<std::int64_t>(foreign) - static_cast<std::int64_t>(charge);
}

std::string size(std::int64_t bytes) {
    return bytes < 0 ? "-" + text::format_size(static_cast<std::uint64_t>(-bytes))
                     : text::format_size(static_cast<std::uint64_t>(bytes));
}

Verdict wait(std::string resource, std::string reason) {
    return Verdict{Verdict::Kind::wait, {}, -1, std::move(resource), std::move(reason)};
}

Verdict never(std::string resource, std::string reason) {
    return Verdict{Verdict::Kind::never, {}, -1, std::move(resource), std::move(reason)};
}

int percent(double share) { return static_cast<int>(std::lround(share * 100)); }

}  // namespace

std::uint64_t memory_capacity(const Limits& r, std::uint64_t total) noexcept {
    return capacity(r.memory_utilization, r.memory_reserve, total);
}

std::uint64_t gpu_capacity(const Limits& r, std::uint64_t total) noexcept {
    return capacity(r.gpu_memory_utilization, r.gpu_memory_reserve, total);
}

std::int64_t memory_free(const Limits& r, const Snapshot& s, const Ledger& l) noexcept {
    return signed_free(memory_capacity(r, s.ram_total), l.foreign_memory(), l.memory_charge());
}

std::int64_t gpu_free(const Limits& r, const Gpu& g, const Ledger& l) noexcept {
    return signed_free(gpu_capacity(r, g.total), l.foreign_gpu(g.index), l.gpu_charge(g.index));
}

std::vector<const Gpu*> usable_gpus(const Limits& r, const Snapshot& s) {
    std::vector<const Gpu*> out;
    if (!r.use_gpus) return out;
    for (const Gpu& g : s.gpus)
        if (r.gpus.empty() || std::find(r.gpus.begin(), r.gpus.end(), g.index) != r.gpus.end()) out.push_back(&g);
    return out;
}

Verdict admit_load(const Limits& r, const Policy& sc, const Snapshot& s, const Ledger& l, const Counts& c,
                   std::uint64_t memory) {
    if (sc.max_processes != 0 && c.processes >= sc.max_processes)
        return wait("processes", fmt::format("max-processes: {} task processes are alive", c.processes));
    if (sc.max_waiting != 0 && c.waiting >= sc.max_waiting)
        return wait("waiting", fmt::format("max-waiting: {} loaded tasks wait for a device", c.waiting));

    std::uint64_t cap = memory_capacity(r, s.ram_total);
    if (memory > cap)
        return never("memory",
                     fmt::format("RAM: needs {} (memory estimate), but Fedflow may use at most {} of this "
                                 "machine's {} (memory-utilization {}, memory-reserve {})",
                                 text::format_size(memory), text::format_size(cap), text::format_size(s.ram_total),
                                 r.memory_utilization, text::format_size(r.memory_reserve)));

    // cpu-utilization = 1 turns the check off: CPUs are never busier. The
    // check limits how many loads run at once on busy CPUs; it never stops
    // Fedflow altogether, so one load may always run.
    if (r.cpu_utilization < 1.0 && s.cpu_utilization >= 0 && s.cpus > 0 && l.loading() > 0) {
        // Others' use is measured; a load of Fedflow's counts one CPU, as
        // it has only just started and the last sample cannot show it yet.
        double others = std::max(0.0, s.cpu_utilization - s.own_cpu_utilization);
        double loads = static_cast<double>(l.loading()) / s.cpus;
        if (others + loads > r.cpu_utilization)
            return wait("cpu", fmt::format("CPU: {}% busy (other processes {}%, {} load(s) of Fedflow's on {} CPUs), "
                                           "above cpu-utilization {}%",
                                           percent(others + loads), percent(others), l.loading(), s.cpus,
                                           percent(r.cpu_utilization)));
    }

    std::int64_t free = memory_free(r, s, l);
    if (free < static_cast<std::int64_t>(memory))
        return wait("memory", fmt::format("RAM: needs {}, {} free (Fedflow may use {}: other processes hold {}, "
                                          "Fedflow's tasks {})",
                                          text::format_size(memory), size(free), text::format_size(cap),
                                          text::format_size(l.foreign_memory()), text::format_size(l.memory_charge())));
    return Verdict{};
}

Verdict admit_train(const Limits& r, const Policy& sc, const Snapshot& s, const Ledger& l, std::string_view pinned,
                    std::uint64_t gpu_memory) {
    Verdict v;
    if (pinned == "cpu") {
        v.device = "cpu";
        return v;
    }
    std::vector<const Gpu*> candidates;
    if (!pinned.empty()) {
        int index = device::gpu_index(pinned);
        for (const Gpu& g : s.gpus)
            if (g.index == index) candidates.push_back(&g);
        if (candidates.empty())
            return never("device", s.gpus.empty() ? fmt::format("device {} does not exist: no GPU was found", pinned)
                                                  : fmt::format("device {} does not exist: this machine has {} GPU(s), "
                                                                "{} to {}",
                                                                pinned, s.gpus.size(), s.gpus.front().device(),
                                                                s.gpus.back().device()));
    } else {
        candidates = usable_gpus(r, s);
        if (candidates.empty()) {
            v.device = "cpu";
            return v;
        }
    }

    bool fits_somewhere = std::any_of(candidates.begin(), candidates.end(),
                                      [&](const Gpu* g) { return gpu_memory <= gpu_capacity(r, g->total); });
    if (!fits_somewhere) {
        std::uint64_t largest = 0;
        for (const Gpu* g : candidates) largest = std::max(largest, gpu_capacity(r, g->total));
        return never("gpu-memory",
                     fmt::format("GPU memory: needs {} (gpu-memory estimate), but Fedflow may use at most "
                                 "{} of any GPU it may use (gpu-memory-utilization {}, "
                                 "gpu-memory-reserve {})",
                                 text::format_size(gpu_memory), text::format_size(largest), r.gpu_memory_utilization,
                                 text::format_size(r.gpu_memory_reserve)));
    }

    struct Option {
        const Gpu* gpu;
        std::int64_t free;
    };
    std::vector<Option> options;
    for (const Gpu* g : candidates) options.push_back({g, gpu_free(r, *g, l)});
    std::stable_sort(options.begin(), options.end(), [&](const Option& a, const Option& b) {
        switch (sc.gpu_order) {
        case GpuOrder::total_memory:
            if (a.gpu->total != b.gpu->total) return a.gpu->total > b.gpu->total;
            break;
        case GpuOrder::free_memory:
            if (a.free != b.free) return a.free > b.free;
            break;
        case GpuOrder::pci: break;
        }
        return a.gpu->index < b.gpu->index;
    });
    for (const Option& o : options) {
        if (o.free >= static_cast<std::int64_t>(gpu_memory)) {
            v.gpu = o.gpu->index;
            v.device = o.gpu->device();
            return v;
        }
    }
    std::string free;
    for (const Option& o : options)
        free += fmt::format("{}{} {} (others {}, Fedflow {})", free.empty() ? "" : ", ", o.gpu->device(), size(o.free),
                            text::format_size(l.foreign_gpu(o.gpu->index)),
                            text::format_size(l.gpu_charge(o.gpu->index)));
    return wait("gpu-memory", fmt::format("GPU memory: needs {}; free: {}", text::format_size(gpu_memory), free));
}

Estimate choose_estimate(std::optional<std::uint64_t> grown, std::optional<std::uint64_t> task,
                         std::optional<std::uint64_t> learned, std::optional<std::uint64_t> group,
                         std::uint64_t fallback, std::uint64_t capacity) {
    if (grown) return {*grown, "grown"};
    if (task) return {*task, "task"};
    if (learned) return {std::min(*learned, capacity), "learned"};
    if (group) return {*group, "group"};
    return {std::min(fallback, capacity), "default"};
}

std::uint64_t grow_estimate(std::uint64_t estimate, std::uint64_t peak, std::uint64_t capacity) noexcept {
    std::uint64_t base = std::max(estimate, peak);
    return std::min(capacity, base + base / 2);
}

std::uint64_t learned_estimate(std::uint64_t peak) noexcept { return peak + peak / 5; }

}  // namespace fedflow::sched
