// resources.hpp: what the scheduler knows about the machine at one moment.
//
// A Snapshot is plain data: the probe (probe.hpp) fills it from /proc and
// NVML, and tests write one by hand, so that admission (admission.hpp) is
// decided the same way on a real machine and in a unit test.
#pragma once

#include "common/device.hpp"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace fedflow::sched {

// One GPU as NVML sees it. Devices are numbered in PCI bus id order, which
// is also CUDA's numbering under CUDA_DEVICE_ORDER=PCI_BUS_ID (set for every
// worker), so index N is "cuda:N" in a plan and in a worker.
struct Gpu {
    int index = 0;
    std::string name;         // "NVIDIA H100 80GB HBM3"
    std::string pci_bus_id;   // "00000000:17:00.0"
    std::string uuid;         // "GPU-..."
    std::uint64_t total = 0;  // bytes
    std::uint64_t used = 0;   // bytes in use on the device, by anyone
    // Memory of each compute process on the device (pid -> bytes), as far
    // as NVML can tell (processes of other pid namespaces are not seen).
    std::map<int, std::uint64_t> processes;
    // A GPU of --simulate-gpus (common/sim_gpu.hpp): tasks on it are told
    // "sim:N" and never touch CUDA.
    bool simulated = false;
    // The cluster node it is on ("n1"), for a GPU of another machine
    // (fedflow-host --slurm); "" on this machine.
    std::string node;

    // "cuda:N", or "sim:N" for a simulated GPU: the device a task is told;
    // "n1/cuda:N" for a GPU of node n1.
    std::string device() const {
        return node.empty() ? device::gpu_name(index, simulated) : node + "/" + device::gpu_name(index, simulated);
    }
};

struct Snapshot {
    std::int64_t taken_ns = 0;  // monotonic clock (common/clock.hpp)

    // CPU: logical CPUs online, and their mean utilization (0..1) over the
    // window since the previous sample; negative when unknown (first sample).
    unsigned cpus = 1;
    double cpu_utilization = -1;
    // Of that utilization, the share that Fedflow's own processes (the host
    // and its workers, including reaped ones) used in the same window.
    double own_cpu_utilization = 0;

    // RAM (bytes): MemTotal and MemAvailable.
    std::uint64_t ram_total = 0;
    std::uint64_t ram_available = 0;

    // The current resident set (bytes) of each process asked about.
    std::map<int, std::uint64_t> rss;

    // The kernel's count of OOM kills so far (/proc/vmstat oom_kill, or
    // the cgroup's memory.events); negative when unknown.
    std::int64_t oom_kills = -1;

    std::vector<Gpu> gpus;  // in PCI bus id order; empty without NVML
};

}  // namespace fedflow::sched
