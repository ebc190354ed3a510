// probe.hpp: reads a Snapshot of the machine: CPU utilization (/proc/stat
// and the CPU time of Fedflow's own processes), RAM (/proc/meminfo), the
// RSS of given processes (/proc/<pid>/status), the kernel's OOM-kill count,
// and the GPUs through NVML (nvml.hpp) when the driver is there, or the
// simulated GPUs of --simulate-gpus (common/sim_gpu.hpp) instead.
//
// A sample costs well under a millisecond without GPUs (one /proc read per
// worker: its CPU time and RSS both come from /proc/<pid>/stat); the
// scheduler takes one only while a stage waits for resources or a task
// trains on a GPU.
#pragma once

#include "common/sim_gpu.hpp"
#include "sched/nvml.hpp"
#include "sched/resources.hpp"

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fedflow::sched {

class Probe {
public:
    // use_nvml = false: never load NVML (gpus = "none" in the plan).
    explicit Probe(bool use_nvml = true);
    // Simulated GPUs in place of NVML's: their memory in use, in all and
    // per process, is read from table as NVML's would be, and what a
    // process that has ended held there is freed at the next sample.
    explicit Probe(simgpu::Table table);
    ~Probe();
    Probe(const Probe&) = delete;
    Probe& operator=(const Probe&) = delete;

    // A fresh snapshot. pids: Fedflow's live workers, whose RSS is read and
    // whose CPU time counts as Fedflow's own (a pid that is gone is left
    // out of rss). The CPU window runs from the sample that closed the last
    // one; a sample less than 2 clock ticks per CPU after it (20 ms at the
    // usual 100 Hz) repeats the last window's utilization rather than
    // report rounding. Never throws: a source that cannot be read
    // leaves its fields at their "unknown" values.
    Snapshot sample(const std::vector<int>& pids);
    // Workers forked by a fork server share its pages: forked lists them
    // with their server, and each is measured by its RSS beyond the
    // server's. servers: the fork servers, whose CPU time and their reaped
    // workers' count as Fedflow's own. Both hold for the next samples.
    void set_forked(std::vector<std::pair<int, int>> forked, std::vector<int> servers);

    // The GPUs found at construction (empty without NVML or GPUs), and why
    // NVML is not used when it is not ("libnvidia-ml.so.1 not found",
    // "simulated").
    const std::vector<Gpu>& gpus() const noexcept { return gpus_; }
    const std::string& nvml_status() const noexcept { return nvml_status_; }

private:
    struct CpuTimes {
        std::uint64_t busy = 0, total = 0;  // clock ticks, all CPUs
        // Ticks of the host (its own, and its reaped children's) plus those
        // of the live workers. A worker's ticks move from the second part to
        // the first when the host reaps it, so the sum only grows and its
        // delta is what Fedflow used in the window.
        std::uint64_t own = 0;
    };
    // A /proc or /sys file kept open and read again from offset 0 (the
    // kernel makes its text anew on each read from the start).
    struct OpenFile {
        int fd = -1;
        std::uint64_t seen = 0;  // the sample that last asked for it
    };
    std::optional<CpuTimes> read_cpu_times(const std::vector<int>& pids, Snapshot& s);
    // Reads the file into buf_[0, buf_len_): they report size 0, so to EOF,
    // at most max bytes. False when it cannot be opened or read.
    bool read_file(const char* path, std::size_t max = 1 << 20);
    bool read_open(OpenFile& f, const char* path, std::size_t max = 1 << 20);
    bool read_fd(int fd, std::size_t max);
    std::string_view text() const noexcept { return {buf_.data(), buf_len_}; }

    std::vector<Gpu> simulated_gpus();

    std::unique_ptr<Nvml> nvml_;
    std::optional<simgpu::Table> sim_;
    std::vector<Gpu> gpus_;
    std::string nvml_status_;
    // The start of the current window, and the utilization of the last
    // complete one (reported again while a window is too short to tell).
    std::optional<CpuTimes> last_cpu_;
    double last_utilization_ = -1;
    double last_own_utilization_ = 0;
    unsigned cpus_ = 1;
    std::int64_t cpus_read_ns_ = 0;
    // The cgroup v2 memory.events of this process, "" when there is none
    // (then /proc/vmstat counts OOM kills machine-wide).
    std::string memory_events_;
    // memory.max and memory.current (cgroup v2), or memory.limit_in_bytes
    // and memory.usage_in_bytes (v1), of this process's cgroup and each of
    // its ancestors that has a limit: a Slurm step's --mem, a container's
    // limit, which /proc/meminfo does not show. Found at construction.
    std::vector<std::pair<std::string, std::string>> memory_limits_;
    OpenFile proc_stat_, self_stat_, meminfo_, oom_;
    // /proc/<pid>/stat of each worker, open while the worker is passed to
    // sample(). Such a descriptor belongs to that process: once it has
    // ended, reads fail, so a recycled pid is never read by mistake.
    std::map<int, OpenFile> worker_stat_;
    std::vector<std::pair<int, int>> forked_;  // worker, its fork server
    std::vector<int> servers_;
    std::uint64_t samples_ = 0;
    std::string buf_;  // reused by every read: no allocation per sample
    std::size_t buf_len_ = 0;
};

// -- parsers, separate so that tests feed them text --

// MemTotal and MemAvailable of /proc/meminfo text, in bytes.
bool parse_meminfo(std::string_view text, std::uint64_t& total, std::uint64_t& available);
// The first line of /proc/stat ("cpu  user nice system idle iowait irq
// softirq steal ..."): busy and total ticks. iowait counts as idle.
bool parse_proc_stat_cpu(std::string_view text, std::uint64_t& busy, std::uint64_t& total);
// utime + stime (+ cutime + cstime when with_children) of /proc/<pid>/stat
// text, whose second field (comm) may hold spaces and parentheses.
bool parse_pid_stat_ticks(std::string_view text, bool with_children, std::uint64_t& ticks);
// The fields of /proc/<pid>/stat that the probe uses.
struct PidStat {
    char state = '?';
    std::uint64_t utime = 0, stime = 0;   // clock ticks
    std::int64_t cutime = 0, cstime = 0;  // of reaped children; clock ticks
    std::uint64_t vsize = 0;              // bytes; 0 for a zombie
    std::uint64_t rss_pages = 0;          // the resident set: VmRSS of /proc/<pid>/status, in pages
};
bool parse_pid_stat(std::string_view text, PidStat& out);
// VmRSS (or another "Vm" key) of /proc/<pid>/status text, in bytes.
bool parse_status_kb(std::string_view text, std::string_view key, std::uint64_t& bytes);
// RAM as a cgroup limit cuts it: total is at most `limit`, available at
// most limit - usage. The texts are memory.max ("max": no limit) and
// memory.current, or v1's limit_in_bytes and usage_in_bytes.
void apply_memory_limit(std::string_view limit, std::string_view usage, std::uint64_t& total, std::uint64_t& available);
// oom_kill of /proc/vmstat or a cgroup's memory.events text.
bool parse_oom_kill(std::string_view text, std::int64_t& count);

}  // namespace fedflow::sched
