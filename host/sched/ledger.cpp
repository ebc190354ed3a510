#include "sched/ledger.hpp"

#include <algorithm>

namespace fedflow::sched {

std::uint64_t Ledger::Entry::memory_charge() const noexcept { return std::max(memory_estimate, memory_measured); }

std::uint64_t Ledger::Entry::gpu_charge(int device) const noexcept {
    auto it = gpu_measured.find(device);
    std::uint64_t measured = it == gpu_measured.end() ? 0 : it->second;
    return gpu == device ? std::max(gpu_estimate, measured) : measured;
}

Ledger::Entry& Ledger::open(Key key, int pid, std::uint64_t memory_estimate) {
    Entry& e = entries_[key];
    e = Entry{};
    e.pid = pid;
    e.memory_estimate = memory_estimate;
    return e;
}

Ledger::Entry* Ledger::find(Key key) noexcept {
    auto it = entries_.find(key);
    return it == entries_.end() ? nullptr : &it->second;
}

void Ledger::close(Key key) noexcept { entries_.erase(key); }

void Ledger::start_train(Key key, int gpu, std::uint64_t estimate) {
    if (Entry* e = find(key)) {
        e->loading = false;
        e->gpu = gpu;
        e->gpu_estimate = gpu < 0 ? 0 : estimate;
    }
}

void Ledger::end_train(Key key) noexcept {
    if (Entry* e = find(key)) {
        e->gpu = -1;
        e->gpu_estimate = 0;
    }
}

void Ledger::measure(const Snapshot& s) {
    std::uint64_t ours = 0;
    for (auto& [key, e] : entries_) {
        auto rss = s.rss.find(e.pid);
        if (rss != s.rss.end()) e.memory_measured = rss->second;
        ours += e.memory_measured;
        e.gpu_measured.clear();
        for (const Gpu& g : s.gpus) {
            auto p = g.processes.find(e.pid);
            if (p != g.processes.end()) e.gpu_measured[g.index] = p->second;
        }
    }
    std::uint64_t used = s.ram_total > s.ram_available ? s.ram_total - s.ram_available : 0;
    foreign_memory_ = used > ours ? used - ours : 0;

    foreign_gpu_.clear();
    for (const Gpu& g : s.gpus) {
        std::uint64_t mine = 0;
        for (const auto& [key, e] : entries_) {
            auto it = e.gpu_measured.find(g.index);
            if (it != e.gpu_measured.end()) mine += it->second;
        }
        foreign_gpu_[g.index] = g.used > mine ? g.used - mine : 0;
    }
}

void Ledger::keep(Key key) noexcept {
    if (Entry* e = find(key)) e->kept = ++keep_seq_;
}

void Ledger::unkeep(Key key) noexcept {
    if (Entry* e = find(key)) e->kept = 0;
}

void Ledger::evicting(Key key) noexcept {
    if (Entry* e = find(key)) e->evicting = true;
}

std::size_t Ledger::kept() const noexcept {
    std::size_t n = 0;
    for (const auto& [key, e] : entries_) n += e.kept != 0;
    return n;
}

std::optional<Ledger::Key> Ledger::eviction_candidate(std::string_view resource, int gpu) const {
    if (resource != "memory" && resource != "gpu-memory" && resource != "processes") return std::nullopt;
    std::optional<Key> best;
    std::uint64_t best_seq = 0;
    for (const auto& [key, e] : entries_) {
        if (e.evicting) return std::nullopt;
        if (e.kept == 0) continue;
        if (resource == "gpu-memory") {
            bool holds = false;
            for (const auto& [device, bytes] : e.gpu_measured)
                holds = holds || (bytes > 0 && (gpu < 0 || device == gpu));
            if (!holds) continue;
        }
        if (!best || e.kept < best_seq) {
            best = key;
            best_seq = e.kept;
        }
    }
    return best;
}

std::uint64_t Ledger::memory_charge() const noexcept {
    std::uint64_t sum = 0;
    for (const auto& [key, e] : entries_) sum += e.memory_charge();
    return sum;
}

std::uint64_t Ledger::gpu_charge(int gpu) const noexcept {
    std::uint64_t sum = 0;
    for (const auto& [key, e] : entries_) sum += e.gpu_charge(gpu);
    return sum;
}

std::size_t Ledger::loading() const noexcept {
    return static_cast<std::size_t>(
        std::count_if(entries_.begin(), entries_.end(), [](const auto& kv) { return kv.second.loading; }));
}

std::uint64_t Ledger::foreign_gpu(int gpu) const noexcept {
    auto it = foreign_gpu_.find(gpu);
    return it == foreign_gpu_.end() ? 0 : it->second;
}

}  // namespace fedflow::sched
