// probe.hpp: reads a Snapshot of the machine: CPU utilization (/proc/stat
// and the CPU time of Fedflow's own processes), RAM (/proc/meminfo), the
// RSS of given processes (/proc/<pid>/status), the kernel's OOM-kill count,
// and the GPUs through NVML (nvml.hpp) when the driver is there.
//
// A sample costs well under a millisecond without GPUs; the scheduler takes
// one only while a stage waits for resources or a task trains on a GPU.
#pragma once

#include "nvml.hpp"
#include "resources.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

namespace fedflow::sched {

class Probe {
public:
    // use_nvml = false: never load NVML (gpus = "none" in the plan).
    explicit Probe(bool use_nvml = true);
    ~Probe();
    Probe(const Probe&) = delete;
    Probe& operator=(const Probe&) = delete;

    // A fresh snapshot. pids: Fedflow's live workers, whose RSS is read and
    // whose CPU time counts as Fedflow's own. Never throws: a source that
    // cannot be read leaves its fields at their "unknown" values.
    Snapshot sample(const std::vector<int>& pids);

    // The GPUs found at construction (empty without NVML or GPUs), and why
    // NVML is not used when it is not ("libnvidia-ml.so.1 not found").
    const std::vector<Gpu>& gpus() const noexcept { return gpus_; }
    const std::string& nvml_status() const noexcept { return nvml_status_; }

private:
    struct CpuTimes {
        std::uint64_t busy = 0, total = 0;  // clock ticks, all CPUs
        std::uint64_t own = 0;              // ticks of the host and its workers
    };
    std::optional<CpuTimes> read_cpu_times(const std::vector<int>& pids);

    std::unique_ptr<Nvml> nvml_;
    std::vector<Gpu> gpus_;
    std::string nvml_status_;
    std::optional<CpuTimes> last_cpu_;
    std::map<int, std::uint64_t> last_worker_ticks_;
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
// VmRSS (or another "Vm" key) of /proc/<pid>/status text, in bytes.
bool parse_status_kb(std::string_view text, std::string_view key, std::uint64_t& bytes);
// oom_kill of /proc/vmstat or a cgroup's memory.events text.
bool parse_oom_kill(std::string_view text, std::int64_t& count);

}  // namespace fedflow::sched
