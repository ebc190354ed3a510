// Admission decided against device tables written here: several GPUs,
// memory used by other processes, pinned devices, estimates that grow after
// an out-of-memory and follow the group's peaks (auto-adjust).
#include "common/text.hpp"
#include "sched/admission.hpp"

#include <doctest/doctest.h>

using namespace fedflow;
using namespace fedflow::sched;

namespace {

constexpr std::uint64_t GB = 1'000'000'000;

Gpu gpu(int index, std::uint64_t total, std::uint64_t used = 0, std::map<int, std::uint64_t> processes = {}) {
    Gpu g;
    g.index = index;
    g.name = "Test GPU";
    g.pci_bus_id = "00000000:0" + std::to_string(index) + ":00.0";
    g.total = total;
    g.used = used;
    g.processes = std::move(processes);
    return g;
}

// A 16-CPU machine with 100 GB of RAM, 10 GB of it in use by others.
Snapshot machine(std::vector<Gpu> gpus = {}) {
    Snapshot s;
    s.cpus = 16;
    s.cpu_utilization = 0.10;
    s.own_cpu_utilization = 0.0;
    s.ram_total = 100 * GB;
    s.ram_available = 90 * GB;
    s.gpus = std::move(gpus);
    return s;
}

sched::Limits resources() {
    sched::Limits r;
    r.memory_utilization = 0.8;  // 80 GB
    r.memory_reserve = 4 * GB;
    r.gpu_memory_utilization = 0.9;
    r.gpu_memory_reserve = 1 * GB;
    r.cpu_utilization = 0.8;
    return r;
}

}  // namespace

TEST_CASE("capacity is the utilization share, never into the reserve") {
    sched::Limits r = resources();
    CHECK(memory_capacity(r, 100 * GB) == 80 * GB);
    CHECK(memory_capacity(r, 10 * GB) == 6 * GB);  // 8 GB share, but 4 GB stay free
    CHECK(memory_capacity(r, 2 * GB) == 0);
    CHECK(gpu_capacity(r, 80 * GB) == 72 * GB);
}

TEST_CASE("loads are admitted while the RAM Fedflow may use holds their estimates") {
    sched::Limits r = resources();
    sched::Policy sc;
    Snapshot s = machine();
    Ledger l;
    l.measure(s);
    CHECK(l.foreign_memory() == 10 * GB);

    // 80 GB capacity - 10 GB others = 70 GB: seven 10 GB tasks, not eight.
    int admitted = 0;
    for (int i = 0; i < 10; ++i) {
        Verdict v = admit_load(r, sc, s, l, {}, 10 * GB);
        if (!v.go()) {
            CHECK(v.kind == Verdict::Kind::wait);
            CHECK(v.resource == "memory");
            CHECK(v.reason.find("RAM: needs " + text::format_size(10 * GB) + ", 0 B free") != std::string::npos);
            break;
        }
        Ledger::Entry& e = l.open(static_cast<Ledger::Key>(i), 1000 + i, 10 * GB);
        e.loading = false;  // loaded: only RAM matters here
        ++admitted;
    }
    CHECK(admitted == 7);

    // A task ends: its reservation is free at once, before any new sample.
    l.close(3);
    CHECK(admit_load(r, sc, s, l, {}, 10 * GB).go());
}

TEST_CASE("a task that has not allocated yet still holds its estimate; measured use above it counts instead") {
    sched::Limits r = resources();
    sched::Policy sc;
    Snapshot s = machine();
    Ledger l;
    l.open(1, 101, 30 * GB).loading = false;  // just started: RSS tiny
    s.rss[101] = 100'000'000;
    s.ram_available = 90 * GB - 100'000'000;
    l.measure(s);
    CHECK(l.foreign_memory() == 10 * GB);  // the worker's RSS is not foreign
    CHECK(l.memory_charge() == 30 * GB);   // the estimate, not the 0.1 GB measured
    CHECK(memory_free(r, s, l) == static_cast<std::int64_t>(40 * GB));

    // It grows past its estimate: the measured use is charged.
    s.rss[101] = 45 * GB;
    s.ram_available = 45 * GB;
    l.measure(s);
    CHECK(l.memory_charge() == 45 * GB);
    CHECK(memory_free(r, s, l) == static_cast<std::int64_t>(25 * GB));
    CHECK_FALSE(admit_load(r, sc, s, l, {}, 30 * GB).go());
    CHECK(admit_load(r, sc, s, l, {}, 20 * GB).go());
}

TEST_CASE("memory used by other processes counts") {
    sched::Limits r = resources();
    sched::Policy sc;
    Snapshot s = machine();
    s.ram_available = 25 * GB;  // others hold 75 GB
    Ledger l;
    l.measure(s);
    Verdict v = admit_load(r, sc, s, l, {}, 10 * GB);
    CHECK(v.kind == Verdict::Kind::wait);
    CHECK(v.reason.find("other processes hold " + text::format_size(75 * GB)) != std::string::npos);
    CHECK(admit_load(r, sc, s, l, {}, 5 * GB).go());
}

TEST_CASE("an estimate larger than the capacity can never run") {
    sched::Limits r = resources();
    Snapshot s = machine();
    Ledger l;
    l.measure(s);
    Verdict v = admit_load(r, {}, s, l, {}, 81 * GB);
    CHECK(v.kind == Verdict::Kind::never);
    CHECK(v.reason.find("at most " + text::format_size(80 * GB)) != std::string::npos);
}

TEST_CASE("max-processes and max-waiting") {
    sched::Limits r = resources();
    sched::Policy sc;
    sc.max_processes = 4;
    sc.max_waiting = 2;
    Snapshot s = machine();
    Ledger l;
    l.measure(s);
    CHECK(admit_load(r, sc, s, l, {3, 1}, GB).go());
    CHECK(admit_load(r, sc, s, l, {4, 0}, GB).resource == "processes");
    CHECK(admit_load(r, sc, s, l, {3, 2}, GB).resource == "waiting");
    sc.max_processes = 0;  // no limit
    sc.max_waiting = 0;
    CHECK(admit_load(r, sc, s, l, {1000, 1000}, GB).go());
}

TEST_CASE("CPU: others' measured use, plus one CPU per running load of Fedflow's") {
    sched::Limits r = resources();
    r.cpu_utilization = 0.5;
    sched::Policy sc;
    Snapshot s = machine();
    s.cpus = 4;
    s.cpu_utilization = 0.9;
    s.own_cpu_utilization = 0.85;  // Fedflow's own processes are busy; others use 5%
    Ledger l;
    l.measure(s);
    CHECK(admit_load(r, sc, s, l, {}, GB).go());
    l.open(1, 11, GB);                            // loading
    CHECK(admit_load(r, sc, s, l, {}, GB).go());  // 5% + 25%
    l.open(2, 12, GB);
    Verdict v = admit_load(r, sc, s, l, {}, GB);  // 5% + 50% > 50%
    CHECK(v.resource == "cpu");
    CHECK(v.reason.find("2 load(s) of Fedflow's on 4 CPUs") != std::string::npos);

    s.own_cpu_utilization = 0.0;  // the same busy CPUs, but others' work
    l.close(2);
    CHECK(admit_load(r, sc, s, l, {}, GB).resource == "cpu");
    l.close(1);  // no load of Fedflow's runs: one may always start
    CHECK(admit_load(r, sc, s, l, {}, GB).go());
    l.open(1, 11, GB);
    s.cpu_utilization = -1;  // first sample: unknown, not a reason to wait
    CHECK(admit_load(r, sc, s, l, {}, GB).go());
    s.cpu_utilization = 1.0;  // cpu-utilization = 1: never a reason to wait
    r.cpu_utilization = 1.0;
    l.open(3, 13, GB);
    l.open(4, 14, GB);
    CHECK(admit_load(r, sc, s, l, {}, GB).go());
}

TEST_CASE("without GPUs tasks train on the CPU") {
    sched::Limits r = resources();
    Snapshot s = machine();
    Ledger l;
    l.measure(s);
    Verdict v = admit_train(r, {}, s, l, "", 10 * GB);
    CHECK(v.go());
    CHECK(v.device == "cpu");
    CHECK(v.gpu == -1);

    // gpus = "none" on a machine that has them: the same.
    r.use_gpus = false;
    s.gpus = {gpu(0, 80 * GB)};
    CHECK(admit_train(r, {}, s, l, "", 10 * GB).device == "cpu");
}

TEST_CASE("several tasks share a GPU as long as their memory fits") {
    sched::Limits r = resources();  // 80 GB GPU: 72 GB usable
    sched::Policy sc;
    sc.gpu_order = sched::GpuOrder::pci;
    Snapshot s = machine({gpu(0, 80 * GB)});
    Ledger l;
    l.measure(s);
    int placed = 0;
    for (Ledger::Key k = 0; k < 20; ++k) {
        Verdict v = admit_train(r, sc, s, l, "", 6 * GB);
        if (!v.go()) {
            CHECK(v.resource == "gpu-memory");
            CHECK(v.reason.find("needs " + text::format_size(6 * GB) + "; free: cuda:0 0 B") != std::string::npos);
            break;
        }
        CHECK(v.device == "cuda:0");
        l.open(k, 100 + static_cast<int>(k), GB);
        l.start_train(k, v.gpu, 6 * GB);
        ++placed;
    }
    CHECK(placed == 12);  // 72 / 6, from memory, not a slot count

    // One ends its train stage: its estimate is released, what it was
    // measured to hold stays until the process exits.
    s.gpus[0].processes[100] = 2 * GB;
    s.gpus[0].used = 2 * GB;
    l.measure(s);
    l.end_train(0);
    CHECK(l.gpu_charge(0) == 11 * 6 * GB + 2 * GB);
    CHECK_FALSE(admit_train(r, sc, s, l, "", 6 * GB).go());
    CHECK(admit_train(r, sc, s, l, "", 4 * GB).go());
    l.close(0);
    CHECK(admit_train(r, sc, s, l, "", 6 * GB).go());
}

TEST_CASE("foreign GPU use is the device's use minus Fedflow's measured processes") {
    sched::Limits r = resources();
    Snapshot s = machine({gpu(0, 80 * GB, 30 * GB, {{100, 8 * GB}, {555, 22 * GB}})});
    Ledger l;
    l.open(1, 100, GB);
    l.start_train(1, 0, 5 * GB);
    l.measure(s);
    CHECK(l.foreign_gpu(0) == 22 * GB);  // pid 555 is not Fedflow's
    CHECK(l.gpu_charge(0) == 8 * GB);    // measured 8 GB > estimate 5 GB
    CHECK(gpu_free(r, s.gpus[0], l) == static_cast<std::int64_t>(42 * GB));
}

TEST_CASE("gpu-order picks among the GPUs that fit") {
    sched::Limits r = resources();
    sched::Policy sc;
    // cuda:0 small and empty, cuda:1 large and busy, cuda:2 large and idle.
    Snapshot s = machine({gpu(0, 24 * GB), gpu(1, 80 * GB, 60 * GB), gpu(2, 80 * GB, 10 * GB)});
    Ledger l;
    l.measure(s);

    sc.gpu_order = sched::GpuOrder::pci;
    CHECK(admit_train(r, sc, s, l, "", 4 * GB).device == "cuda:0");
    CHECK(admit_train(r, sc, s, l, "", 30 * GB).device == "cuda:2");  // first in PCI order that fits
    sc.gpu_order = sched::GpuOrder::total_memory;
    CHECK(admit_train(r, sc, s, l, "", 4 * GB).device == "cuda:1");
    sc.gpu_order = sched::GpuOrder::free_memory;
    CHECK(admit_train(r, sc, s, l, "", 4 * GB).device == "cuda:2");

    // gpus = [0, 1]: cuda:2 is not Fedflow's to use.
    r.gpus = {0, 1};
    CHECK(admit_train(r, sc, s, l, "", 4 * GB).device == "cuda:0");
    Verdict v = admit_train(r, sc, s, l, "", 25 * GB);  // more than cuda:0 may hold; cuda:1 is busy
    CHECK(v.kind == Verdict::Kind::wait);
    CHECK(v.reason.find("cuda:2") == std::string::npos);
}

TEST_CASE("a pinned device is used as it is, even when another one has room") {
    sched::Limits r = resources();
    sched::Policy sc;
    Snapshot s = machine({gpu(0, 80 * GB), gpu(1, 80 * GB, 70 * GB)});
    Ledger l;
    l.measure(s);
    Verdict v = admit_train(r, sc, s, l, "cuda:1", 4 * GB);
    CHECK(v.kind == Verdict::Kind::wait);
    CHECK(v.reason.find("cuda:1") != std::string::npos);
    CHECK(admit_train(r, sc, s, l, "cuda:0", 4 * GB).device == "cuda:0");
    CHECK(admit_train(r, sc, s, l, "cpu", 400 * GB).device == "cpu");

    Verdict missing = admit_train(r, sc, s, l, "cuda:7", GB);
    CHECK(missing.kind == Verdict::Kind::never);
    CHECK(missing.reason.find("this machine has 2 GPU(s), cuda:0 to cuda:1") != std::string::npos);
    Snapshot none = machine();
    CHECK(admit_train(r, sc, none, l, "cuda:0", GB).reason.find("no GPU was found") != std::string::npos);
}

TEST_CASE("a GPU estimate larger than every usable GPU can never run") {
    sched::Limits r = resources();
    Snapshot s = machine({gpu(0, 24 * GB), gpu(1, 48 * GB)});
    Ledger l;
    l.measure(s);
    Verdict v = admit_train(r, {}, s, l, "", 50 * GB);
    CHECK(v.kind == Verdict::Kind::never);
    CHECK(v.reason.find("at most " + text::format_size(gpu_capacity(r, 48 * GB)) + " of any GPU") != std::string::npos);
    CHECK(v.reason.find("gpu-memory estimate") != std::string::npos);
}

TEST_CASE("estimates: grown, the task's, learned, the group's, the default") {
    const std::uint64_t cap = 72 * GB;
    CHECK(std::string(choose_estimate({}, {}, {}, {}, 2 * GB, cap).source) == "default");
    CHECK(choose_estimate({}, {}, {}, {}, 2 * GB, GB).bytes == GB);               // a default is cut to capacity
    CHECK(choose_estimate({}, {}, {}, 100 * GB, 2 * GB, cap).bytes == 100 * GB);  // what the plan says stays
    CHECK(std::string(choose_estimate({}, {}, 3 * GB, 5 * GB, 2 * GB, cap).source) == "learned");
    CHECK(choose_estimate({}, 7 * GB, 3 * GB, 5 * GB, 2 * GB, cap).bytes == 7 * GB);
    CHECK(choose_estimate(9 * GB, 7 * GB, 3 * GB, 5 * GB, 2 * GB, cap).bytes == 9 * GB);

    // After an out-of-memory: x1.5 of the larger of estimate and peak, capped.
    CHECK(grow_estimate(4 * GB, 2 * GB, cap) == 6 * GB);
    CHECK(grow_estimate(4 * GB, 10 * GB, cap) == 15 * GB);
    CHECK(grow_estimate(60 * GB, 0, cap) == cap);

    // auto-adjust: the tenth task is admitted on what the first nine used.
    CHECK(learned_estimate(500'000'000) == 600'000'000);
}

TEST_CASE("auto-adjust packs more tasks once peaks are known") {
    sched::Limits r = resources();
    sched::Policy sc;
    const std::uint64_t default_memory = 2 * GB;  // the plan's default-memory
    Snapshot s = machine();
    Ledger l;
    l.measure(s);
    auto count_fitting = [&](std::uint64_t estimate) {
        Ledger copy = l;
        int n = 0;
        while (admit_load(r, sc, s, copy, {}, estimate).go()) {
            copy.open(static_cast<Ledger::Key>(n), n, estimate).loading = false;
            ++n;
        }
        return n;
    };
    Estimate before = choose_estimate({}, {}, {}, 10 * GB, default_memory, memory_capacity(r, s.ram_total));
    Estimate after = choose_estimate({}, {}, learned_estimate(2 * GB), 10 * GB, default_memory,
                                     memory_capacity(r, s.ram_total));
    CHECK(count_fitting(before.bytes) == 7);
    CHECK(count_fitting(after.bytes) == 29);  // 70 GB / 2.4 GB
}

TEST_CASE("keep-loaded: kept processes keep their charges, and the least recently kept is evicted first") {
    Ledger l;
    for (Ledger::Key k = 1; k <= 3; ++k) l.open(k, 1000 + static_cast<int>(k), 10 * GB);
    Snapshot s = machine({gpu(0, 16 * GB, 7 * GB, {{1002, 4 * GB}, {1003, 3 * GB}})});
    s.rss = {{1001, 1 * GB}, {1002, 12 * GB}, {1003, 2 * GB}};
    l.measure(s);
    const std::uint64_t before = l.memory_charge();
    CHECK(before == 32 * GB);
    CHECK_FALSE(l.eviction_candidate("memory", -1));  // nothing kept

    l.keep(3);
    l.keep(1);
    l.keep(2);
    CHECK(l.kept() == 3);
    CHECK(l.memory_charge() == before);  // a kept process holds what it held
    CHECK(l.gpu_charge(0) == 7 * GB);

    SUBCASE("RAM and process slots: any kept process, least recently kept first") {
        CHECK(l.eviction_candidate("memory", -1) == Ledger::Key{3});
        CHECK(l.eviction_candidate("processes", -1) == Ledger::Key{3});
        l.unkeep(3);  // it runs its next round: no longer idle
        CHECK(l.eviction_candidate("memory", -1) == Ledger::Key{1});
    }
    SUBCASE("GPU memory: only a kept process that holds some on that GPU") {
        CHECK(l.eviction_candidate("gpu-memory", 0) == Ledger::Key{3});
        CHECK(l.eviction_candidate("gpu-memory", -1) == Ledger::Key{3});
        CHECK_FALSE(l.eviction_candidate("gpu-memory", 1));
        l.unkeep(3);
        CHECK(l.eviction_candidate("gpu-memory", 0) == Ledger::Key{2});  // 1 holds no GPU memory
        l.unkeep(2);
        CHECK_FALSE(l.eviction_candidate("gpu-memory", 0));
    }
    SUBCASE("one at a time: none while one is on its way out, the next once it is gone") {
        l.evicting(3);
        CHECK_FALSE(l.eviction_candidate("memory", -1));
        l.close(3);
        CHECK(l.eviction_candidate("memory", -1) == Ledger::Key{1});
        CHECK(l.memory_charge() == before - 10 * GB);
    }
    SUBCASE("waits for other resources evict nothing") {
        CHECK_FALSE(l.eviction_candidate("cpu", -1));
        CHECK_FALSE(l.eviction_candidate("waiting", -1));
        CHECK_FALSE(l.eviction_candidate("spawn", -1));
    }
}
