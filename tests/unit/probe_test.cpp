// The resource probe: its parsers on literal /proc text (odd comm names,
// missing keys, garbage), a real sample of this machine, and NVML's "not
// found" path. A GPU check runs only where NVML opens.
#include "sched/nvml.hpp"
#include "sched/probe.hpp"

#include "common/clock.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <ctime>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace fedflow::sched;

namespace {

// CPU time of this process (or thread) in seconds.
double cpu_seconds(clockid_t clock = CLOCK_PROCESS_CPUTIME_ID) {
    timespec ts{};
    clock_gettime(clock, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

void burn_cpu(double seconds, clockid_t clock = CLOCK_PROCESS_CPUTIME_ID) {
    double end = cpu_seconds(clock) + seconds;
    volatile unsigned long x = 0;
    while (cpu_seconds(clock) < end)
        for (int i = 0; i < 10000; ++i) x = x + static_cast<unsigned long>(i);
}

// A child that burns burn_s of CPU, says so on a pipe, then waits to be killed.
struct Child {
    pid_t pid = -1;
    int ready_fd = -1;
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;
    explicit Child(double burn_s) {
        int fds[2];
        REQUIRE(::pipe(fds) == 0);
        pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            ::close(fds[0]);
            if (burn_s > 0) burn_cpu(burn_s);
            char c = 'r';
            if (::write(fds[1], &c, 1) != 1) ::_exit(1);
            for (;;) ::pause();
        }
        ::close(fds[1]);
        ready_fd = fds[0];
    }
    void wait_ready() {
        char c = 0;
        REQUIRE(::read(ready_fd, &c, 1) == 1);
    }
    ~Child() {
        if (pid > 0) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, nullptr, 0);
        }
        if (ready_fd >= 0) ::close(ready_fd);
    }
};

struct EnvVar {
    const char* name;
    explicit EnvVar(const char* n, const char* value) : name(n) { ::setenv(n, value, 1); }
    ~EnvVar() { ::unsetenv(name); }
};

}  // namespace

TEST_CASE("parse_meminfo") {
    const char* text = "MemTotal:       24576000 kB\n"
                       "MemFree:         1000000 kB\n"
                       "MemAvailable:   12288000 kB\n"
                       "Buffers:           10000 kB\n";
    std::uint64_t total = 0, available = 0;
    REQUIRE(parse_meminfo(text, total, available));
    CHECK(total == 24576000ull * 1024);
    CHECK(available == 12288000ull * 1024);

    SUBCASE("missing MemAvailable") {
        total = available = 7;
        CHECK_FALSE(parse_meminfo("MemTotal: 100 kB\nMemFree: 50 kB\n", total, available));
        CHECK(total == 7);  // untouched on failure
    }
    SUBCASE("a key that only starts like one") {
        CHECK_FALSE(parse_meminfo("MemTotalX: 100 kB\nMemAvailable: 50 kB\n", total, available));
    }
    SUBCASE("garbage") {
        CHECK_FALSE(parse_meminfo("", total, available));
        CHECK_FALSE(parse_meminfo("MemTotal: lots\nMemAvailable: 5 kB\n", total, available));
        CHECK_FALSE(parse_meminfo("MemTotal: 100 MB\nMemAvailable: 5 kB\n", total, available));
        CHECK_FALSE(parse_meminfo("\x01\x02\n\n:::", total, available));
    }
    SUBCASE("no trailing newline") {
        REQUIRE(parse_meminfo("MemAvailable: 5 kB\nMemTotal: 9 kB", total, available));
        CHECK(total == 9 * 1024);
        CHECK(available == 5 * 1024);
    }
}

TEST_CASE("parse_proc_stat_cpu") {
    std::uint64_t busy = 0, total = 0;
    // user nice system idle iowait irq softirq steal guest guest_nice
    REQUIRE(
        parse_proc_stat_cpu("cpu  100 5 50 800 40 3 2 0 77 11\ncpu0 1 2 3 4 5 6 7 8 9 10\nintr 1 2\n", busy, total));
    CHECK(total == 1000);       // guest and guest_nice are already in user and nice
    CHECK(busy == 1000 - 840);  // idle and iowait are not busy

    SUBCASE("an old kernel's four fields") {
        REQUIRE(parse_proc_stat_cpu("cpu 10 0 10 80\n", busy, total));
        CHECK(total == 100);
        CHECK(busy == 20);
    }
    SUBCASE("not the aggregate line") {
        CHECK_FALSE(parse_proc_stat_cpu("cpu0 1 2 3 4 5\n", busy, total));
        CHECK_FALSE(parse_proc_stat_cpu("intr 1 2 3 4\ncpu 1 2 3 4\n", busy, total));
    }
    SUBCASE("garbage") {
        CHECK_FALSE(parse_proc_stat_cpu("", busy, total));
        CHECK_FALSE(parse_proc_stat_cpu("cpu 1 2 x 4\n", busy, total));
        CHECK_FALSE(parse_proc_stat_cpu("cpu 1 2\ncpu0 3 4\n", busy, total));
    }
}

TEST_CASE("parse_pid_stat_ticks") {
    std::uint64_t ticks = 0;
    // Fields after comm: state ppid pgrp session tty_nr tpgid flags minflt
    // cminflt majflt cmajflt utime stime cutime cstime priority ...
    const char* plain = "4242 (fedflow-worker) S 1 4242 4242 0 -1 4194304 96 0 0 0 11 22 33 44 20 0 1 0 939966\n";
    REQUIRE(parse_pid_stat_ticks(plain, false, ticks));
    CHECK(ticks == 33);
    REQUIRE(parse_pid_stat_ticks(plain, true, ticks));
    CHECK(ticks == 110);

    SUBCASE("a comm with spaces and parentheses") {
        const char* odd = "77 (a) b (c)) 1 2 3) R 1 77 77 0 -1 0 0 0 0 0 5 6 7 8 20 0 1 0 1\n";
        REQUIRE(parse_pid_stat_ticks(odd, false, ticks));
        CHECK(ticks == 11);
        REQUIRE(parse_pid_stat_ticks(odd, true, ticks));
        CHECK(ticks == 26);
    }
    SUBCASE("negative child times count as none") {
        REQUIRE(parse_pid_stat_ticks("1 (x) S 0 1 1 0 -1 0 0 0 0 0 3 4 -5 -6 20\n", true, ticks));
        CHECK(ticks == 7);
    }
    SUBCASE("truncated or garbage") {
        ticks = 99;
        CHECK_FALSE(parse_pid_stat_ticks("", false, ticks));
        CHECK_FALSE(parse_pid_stat_ticks("4242 (worker S 1 2 3", false, ticks));
        CHECK_FALSE(parse_pid_stat_ticks("4242 (w) S 1 4242 4242 0 -1 4194304 96 0 0 0", false, ticks));
        CHECK_FALSE(parse_pid_stat_ticks("4242 (w) S 1 4242 4242 0 -1 4194304 96 0 0 0 11 22\n", true, ticks));
        CHECK_FALSE(parse_pid_stat_ticks("4242 (w) S 1 4242 4242 0 -1 4194304 96 0 0 0 xx 22 0 0\n", false, ticks));
        CHECK(ticks == 99);
    }
}

TEST_CASE("parse_pid_stat") {
    // ... utime stime cutime cstime priority nice num_threads itrealvalue
    // starttime vsize rss rsslim ...
    const char* text = "4242 (py (torch)) S 1 4242 4242 0 -1 4194304 96 0 0 0 11 22 33 -1 20 0 9 0 939966 3133440 378 "
                       "18446744073709551615 1 2 3\n";
    PidStat st;
    REQUIRE(parse_pid_stat(text, st));
    CHECK(st.state == 'S');
    CHECK(st.utime == 11);
    CHECK(st.stime == 22);
    CHECK(st.cutime == 33);
    CHECK(st.cstime == -1);
    CHECK(st.vsize == 3133440);
    CHECK(st.rss_pages == 378);

    SUBCASE("a zombie: no memory") {
        REQUIRE(
            parse_pid_stat("9 (w) Z 1 9 9 0 -1 4194308 0 0 0 0 3 4 0 0 20 0 1 0 5 0 0 18446744073709551615 0\n", st));
        CHECK(st.state == 'Z');
        CHECK(st.vsize == 0);
        CHECK(st.utime + st.stime == 7);
    }
    SUBCASE("cut before rss, or garbage") {
        PidStat keep;
        keep.utime = 5;
        CHECK_FALSE(parse_pid_stat("9 (w) S 1 9 9 0 -1 0 0 0 0 0 3 4 0 0 20 0 1 0 5 100\n", keep));
        CHECK_FALSE(parse_pid_stat("9 (w) S 1 9 9 0 -1 0 0 0 0 0 3 4 0 0 20 0 1 0 5 100 -7\n", keep));
        CHECK_FALSE(parse_pid_stat("9 (w) SS 1 9 9 0 -1 0 0 0 0 0 3 4 0 0 20 0 1 0 5 100 7\n", keep));
        CHECK_FALSE(parse_pid_stat("no parenthesis at all", keep));
        CHECK_FALSE(parse_pid_stat("", keep));
        CHECK(keep.utime == 5);
    }
}

TEST_CASE("parse_status_kb") {
    const char* text = "Name:\tfedflow-worker\n"
                       "VmPeak:\t  300000 kB\n"
                       "VmHWM:\t    9000 kB\n"
                       "VmRSS:\t    8000 kB\n"
                       "RssAnon:\t    5000 kB\n";
    std::uint64_t bytes = 0;
    REQUIRE(parse_status_kb(text, "VmRSS", bytes));
    CHECK(bytes == 8000ull * 1024);
    REQUIRE(parse_status_kb(text, "VmHWM", bytes));
    CHECK(bytes == 9000ull * 1024);

    bytes = 5;
    CHECK_FALSE(parse_status_kb(text, "VmSwap", bytes));  // a zombie or kernel thread has no Vm lines
    CHECK_FALSE(parse_status_kb(text, "VmR", bytes));     // a prefix of a key is not the key
    CHECK_FALSE(parse_status_kb("VmRSS:\tnone\n", "VmRSS", bytes));
    CHECK_FALSE(parse_status_kb("", "VmRSS", bytes));
    CHECK(bytes == 5);
}

TEST_CASE("parse_oom_kill") {
    std::int64_t n = -1;
    REQUIRE(parse_oom_kill("pgfault 100\noom_kill 3\nnuma_hit 1\n", n));  // /proc/vmstat
    CHECK(n == 3);
    REQUIRE(parse_oom_kill("low 0\nhigh 0\nmax 4\noom 2\noom_kill 1\noom_group_kill 0\n", n));  // memory.events
    CHECK(n == 1);

    n = -1;
    CHECK_FALSE(parse_oom_kill("oom_kill_disable 0\nunder_oom 0\n", n));  // cgroup v1 memory.oom_control
    CHECK_FALSE(parse_oom_kill("oom_group_kill 2\n", n));
    CHECK_FALSE(parse_oom_kill("oom_kill many\n", n));
    CHECK_FALSE(parse_oom_kill("", n));
    CHECK(n == -1);
}

TEST_CASE("a real sample of this machine") {
    Probe probe(false);
    CHECK(probe.nvml_status() == "disabled");
    CHECK(probe.gpus().empty());

    const int self = static_cast<int>(::getpid());
    const int nobody = INT_MAX;  // above any pid_max
    Snapshot first = probe.sample({self, nobody});
    CHECK(first.taken_ns > 0);
    CHECK(first.cpus >= 1);
    CHECK(first.cpu_utilization < 0);  // no window yet
    CHECK(first.own_cpu_utilization == 0);
    CHECK(first.ram_total > 0);
    CHECK(first.ram_available > 0);
    CHECK(first.ram_available <= first.ram_total);
    REQUIRE(first.rss.count(self) == 1);
    CHECK(first.rss.at(self) > 0);
    CHECK(first.rss.count(nobody) == 0);
    CHECK(first.oom_kills >= 0);  // /proc/vmstat has oom_kill since Linux 4.13
    CHECK(first.gpus.empty());

    burn_cpu(0.15);
    Snapshot second = probe.sample({self});
    CHECK(second.taken_ns > first.taken_ns);
    CHECK(second.cpu_utilization >= 0);
    CHECK(second.cpu_utilization <= 1);
    CHECK(second.own_cpu_utilization > 0);  // this process was busy
    CHECK(second.own_cpu_utilization <= second.cpu_utilization);
}

TEST_CASE("a worker's CPU time counts as Fedflow's own") {
    Probe probe(false);
    Child worker(0.2);
    Snapshot before = probe.sample({worker.pid});
    worker.wait_ready();
    Snapshot after = probe.sample({worker.pid});
    CHECK(after.cpu_utilization > 0);
    CHECK(after.own_cpu_utilization > 0);
    CHECK(after.own_cpu_utilization <= after.cpu_utilization);
    CHECK(after.rss.count(worker.pid) == 1);
    (void)before;
}

TEST_CASE("a worker that has exited is left out of rss, and so is a pid once reaped") {
    Probe probe(false);
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) ::_exit(0);
    REQUIRE(probe.sample({pid}).rss.count(pid) <= 1);  // alive or already a zombie
    // Wait until it is a zombie (exited, not reaped).
    siginfo_t info{};
    REQUIRE(::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT) == 0);
    CHECK(probe.sample({pid}).rss.count(pid) == 0);
    REQUIRE(::waitpid(pid, nullptr, 0) == pid);
    Snapshot after = probe.sample({pid});
    CHECK(after.rss.count(pid) == 0);
    CHECK(after.ram_total > 0);
}

TEST_CASE("two samples within a clock tick repeat the last full window") {
    Probe probe(false);
    probe.sample({});
    std::this_thread::sleep_for(std::chrono::milliseconds(60));
    Snapshot a = probe.sample({});
    Snapshot b = probe.sample({});  // microseconds later
    CHECK(a.cpu_utilization >= 0);
    CHECK(b.cpu_utilization >= 0);
    CHECK(b.cpu_utilization <= 1);
}

TEST_CASE("sample() is cheap") {
    // 20 live workers, as the scheduler would pass them; no GPUs.
    std::vector<std::unique_ptr<Child>> workers;
    std::vector<int> pids;
    for (int i = 0; i < 20; ++i) {
        workers.push_back(std::make_unique<Child>(0.0));
        pids.push_back(workers.back()->pid);
    }
    for (auto& w : workers) w->wait_ready();
    Probe probe(false);
    probe.sample(pids);
    const int n = 200;
    std::int64_t start = fedflow::clock::monotonic_ns();
    std::size_t seen = 0;
    for (int i = 0; i < n; ++i) seen += probe.sample(pids).rss.size();
    double us = static_cast<double>(fedflow::clock::monotonic_ns() - start) / n / 1000.0;
    MESSAGE("Probe::sample with 20 pids, no NVML: " << us << " us per sample");
    CHECK(seen == static_cast<std::size_t>(n) * 20);
    CHECK(us < 5000);  // generous: a loaded CI machine; the aim is well under 200 us
}

TEST_CASE("NVML that is not there: nullptr and a reason naming the file") {
    EnvVar env("FEDFLOW_NVML_LIBRARY", "/nonexistent/libnvidia-ml.so.1");
    std::string reason;
    auto nvml = Nvml::open(reason);
    CHECK(nvml == nullptr);
    CHECK(reason.find("/nonexistent/libnvidia-ml.so.1") != std::string::npos);
    CHECK(reason.find("not found") != std::string::npos);

    Probe probe(true);
    CHECK(probe.nvml_status().find("/nonexistent/libnvidia-ml.so.1") != std::string::npos);
    CHECK(probe.gpus().empty());
    CHECK(probe.sample({}).gpus.empty());
}

TEST_CASE("NVML that is a library without NVML in it") {
    // libc is there on every machine and has none of NVML's symbols.
    EnvVar env("FEDFLOW_NVML_LIBRARY", "libc.so.6");
    std::string reason;
    CHECK(Nvml::open(reason) == nullptr);
    CHECK(reason.find("libc.so.6") != std::string::npos);
    CHECK(reason.find("nvmlInit_v2") != std::string::npos);
}

TEST_CASE("the GPUs of this machine, when it has any") {
    std::string reason;
    auto nvml = Nvml::open(reason);
    if (!nvml) {
        MESSAGE("no NVML here (" << reason << "): nothing to check");
        return;
    }
    CHECK(reason.empty());
    std::vector<Gpu> gpus = nvml->devices();
    for (std::size_t i = 0; i < gpus.size(); ++i) {
        CAPTURE(gpus[i].pci_bus_id);
        CHECK(gpus[i].index == static_cast<int>(i));
        CHECK(gpus[i].total > 0);
        CHECK(gpus[i].used <= gpus[i].total);
        CHECK_FALSE(gpus[i].name.empty());
        CHECK(gpus[i].uuid.rfind("GPU-", 0) == 0);
        if (i > 0) CHECK(gpus[i - 1].pci_bus_id < gpus[i].pci_bus_id);
    }
    Probe probe(true);
    CHECK(probe.nvml_status().empty());
    CHECK(probe.gpus().size() == gpus.size());
    CHECK(probe.sample({}).gpus.size() == gpus.size());
}

TEST_CASE("apply_memory_limit: a cgroup's limit cuts RAM as /proc/meminfo tells it") {
    std::uint64_t total = 64ull << 30, available = 60ull << 30;
    SUBCASE("no limit") {
        apply_memory_limit("max\n", "123\n", total, available);
        CHECK(total == 64ull << 30);
        CHECK(available == 60ull << 30);
    }
    SUBCASE("cgroup v1's 'no limit'") {
        apply_memory_limit("9223372036854771712\n", "1\n", total, available);
        CHECK(total == 64ull << 30);
    }
    SUBCASE("a Slurm step's --mem=8G, 3 GiB of it in use") {
        apply_memory_limit("8589934592\n", "3221225472\n", total, available);
        CHECK(total == 8ull << 30);
        CHECK(available == 5ull << 30);
    }
    SUBCASE("more in use than the limit (page cache counts): none available") {
        apply_memory_limit("1024\n", "4096\n", total, available);
        CHECK(total == 1024);
        CHECK(available == 0);
    }
}
