// Simulated GPUs (--simulate-gpus): the SPEC parser, the shared table that
// workers declare into (never over-committed, also by processes racing for
// it), and the probe that reads it as NVML: per-process use, foreign use,
// and the memory of a process that has ended freed.
#include "common/shm.hpp"
#include "common/sim_gpu.hpp"
#include "sched/probe.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

using namespace fedflow;

namespace {

constexpr std::uint64_t GiB = 1ull << 30;

// A table name of this test process, removed again at the end of a test.
struct Name {
    std::string value = "fedflow-simgpu-test-" + std::to_string(::getpid());
    ~Name() { shm::Segment::remove(value); }
};

}  // namespace

TEST_CASE("--simulate-gpus SPEC: counts, sizes, foreign use, and what is wrong") {
    auto g = simgpu::parse("4x80GiB");
    REQUIRE(g.size() == 4);
    CHECK(g[3].total == 80 * GiB);
    CHECK(g[3].foreign == 0);
    g = simgpu::parse("80GiB,40GiB,24GiB");
    REQUIRE(g.size() == 3);
    CHECK(g[1].total == 40 * GiB);
    g = simgpu::parse("80GiB:used=20GiB,2x24GB");
    REQUIRE(g.size() == 3);
    CHECK(g[0].foreign == 20 * GiB);
    CHECK(g[2].total == 24000000000ull);
    CHECK(g[2].foreign == 0);

    CHECK_THROWS_WITH_AS(simgpu::parse(""), doctest::Contains("4x80GiB"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(simgpu::parse("80GiB,,40GiB"), doctest::Contains("empty GPU"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(simgpu::parse("80 lightyears"), doctest::Contains("'80 lightyears'"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(simgpu::parse("0x80GiB"), doctest::Contains("count before 'x'"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(simgpu::parse("80GiB:free=1GB"), doctest::Contains("used=SIZE"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(simgpu::parse("8GiB:used=9GiB"), doctest::Contains("more than the GPU's 8.00 GiB"),
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(simgpu::parse("65x1GiB"), doctest::Contains("more than 64 GPUs"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(simgpu::parse("0B"), doctest::Contains("size 0"), std::invalid_argument);
}

TEST_CASE("the table: what a process declares fits beside the others' and the foreign use, or is refused") {
    Name name;
    auto table = simgpu::Table::create(name.value, simgpu::parse("10GiB:used=2GiB,4GiB"));
    auto worker = simgpu::Table::open(name.value);  // as a worker maps it
    REQUIRE(worker.count() == 2);
    CHECK(worker.spec(0).foreign == 2 * GiB);

    std::uint64_t free = 0;
    CHECK(worker.set(100, 0, 5 * GiB, free));
    CHECK(free == 8 * GiB);
    CHECK(worker.set(200, 0, 3 * GiB, free));
    CHECK_FALSE(worker.set(300, 0, 1, free));  // 2 foreign + 5 + 3: full
    CHECK(free == 0);
    CHECK_FALSE(worker.set(200, 0, 4 * GiB, free));  // growing past the size: refused, the 3 GiB stay
    CHECK(free == 3 * GiB);

    std::map<int, std::uint64_t> processes;
    CHECK(table.used(0, processes) == 10 * GiB);
    CHECK(processes == std::map<int, std::uint64_t>{{100, 5 * GiB}, {200, 3 * GiB}});

    // A process that trains on another GPU holds nothing on the first.
    CHECK(worker.set(100, 1, 1 * GiB, free));
    processes.clear();
    CHECK(table.used(0, processes) == 5 * GiB);
    CHECK(processes == std::map<int, std::uint64_t>{{200, 3 * GiB}});
    processes.clear();
    CHECK(table.used(1, processes) == 1 * GiB);

    // Ended processes free what they held.
    table.release_ended([](int pid) { return pid != 200; });
    processes.clear();
    CHECK(table.used(0, processes) == 2 * GiB);
    CHECK(processes.empty());
    CHECK_THROWS_AS(worker.set(100, 2, 1, free), std::out_of_range);
    CHECK_THROWS_WITH(simgpu::Table::open(name.value + "-none"), doctest::Contains("-none"));
}

TEST_CASE("processes racing for a simulated GPU never over-commit it") {
    if (std::getenv("FEDFLOW_SANITIZED")) return;  // 16 forked children under ASan: slow, and nothing more to see
    Name name;
    auto table = simgpu::Table::create(name.value, simgpu::parse("10GiB"));
    std::vector<pid_t> children;
    for (int i = 0; i < 16; ++i) {
        pid_t pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            auto t = simgpu::Table::open(name.value);
            std::uint64_t free = 0;
            bool ok = t.set(::getpid(), 0, 3 * GiB, free);
            ::_exit(ok ? 0 : 1);
        }
        children.push_back(pid);
    }
    int fitted = 0;
    for (pid_t pid : children) {
        int status = 0;
        ::waitpid(pid, &status, 0);
        fitted += WIFEXITED(status) && WEXITSTATUS(status) == 0;
    }
    CHECK(fitted == 3);
    std::map<int, std::uint64_t> processes;
    CHECK(table.used(0, processes) == 9 * GiB);
}

TEST_CASE("the probe reads simulated GPUs as NVML's, and frees what an ended worker held") {
    Name name;
    sched::Probe probe(simgpu::Table::create(name.value, simgpu::parse("80GiB:used=20GiB,24GiB")));
    CHECK(probe.nvml_status() == "simulated");
    REQUIRE(probe.gpus().size() == 2);
    CHECK(probe.gpus()[1].device() == "sim:1");
    CHECK(probe.gpus()[0].total == 80 * GiB);

    // A worker that declares 6 GiB, and stays until told to go.
    int ready[2], go[2];
    REQUIRE(::pipe(ready) == 0);
    REQUIRE(::pipe(go) == 0);
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        auto t = simgpu::Table::open(name.value);
        std::uint64_t free = 0;
        bool ok = t.set(::getpid(), 0, 6 * GiB, free);
        char c;
        if (::write(ready[1], "x", 1) != 1 || ::read(go[0], &c, 1) != 1) ::_exit(2);
        ::_exit(ok ? 0 : 1);
    }
    char c;
    REQUIRE(::read(ready[0], &c, 1) == 1);
    sched::Snapshot s = probe.sample({pid});
    REQUIRE(s.gpus.size() == 2);
    CHECK(s.gpus[0].simulated);
    CHECK(s.gpus[0].used == 26 * GiB);
    CHECK(s.gpus[0].processes == std::map<int, std::uint64_t>{{pid, 6 * GiB}});
    CHECK(s.gpus[1].used == 0);

    REQUIRE(::write(go[1], "x", 1) == 1);
    int status = 0;
    ::waitpid(pid, &status, 0);
    CHECK(WEXITSTATUS(status) == 0);
    s = probe.sample({});
    CHECK(s.gpus[0].used == 20 * GiB);  // the foreign use stays
    CHECK(s.gpus[0].processes.empty());
    for (int fd : {ready[0], ready[1], go[0], go[1]}) ::close(fd);
}
