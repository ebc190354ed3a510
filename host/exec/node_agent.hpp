// node_agent.hpp: `fedflow-host agent`, the process that runs one cluster
// node's workers for a SlurmExecutor (slurm_executor.hpp), started on its
// node by srun. It is a LocalExecutor driven over its stdio (agent_link.hpp):
// the node's own probe, ledger and admission, its workers' containment,
// shared memory and NVML (or simulated GPUs), exactly as on one machine.
//
// What it adds: a result's shared-memory segments are copied into files in
// the task's folder (the workdir is shared; /dev/shm is not) before the
// result message goes on, and a group's inputs, which the host leaves as a
// file in the shared workdir, are copied into a segment of this node.
//
// It ends when its link ends (EOF on stdin: the host, or srun, is gone),
// and on SIGTERM or SIGINT (scancel), ending its workers either way.
#pragma once

#include "sched/resources.hpp"

#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace fedflow::exec {

// Runs the agent on stdin/stdout until the host goes; the exit code.
int run_node_agent(const std::filesystem::path& worker);

// GPUs of a Slurm step, mapped by UUID: Slurm names the step's GPUs by their
// index among the node's (SLURM_STEP_GPUS, SLURM_JOB_GPUS), but inside a
// step with ConstrainDevices CUDA numbers only the visible ones, from 0. So
// workers are given CUDA_VISIBLE_DEVICES as the UUIDs of the step's GPUs, and
// a task that the scheduler puts on NVML's GPU N is told "cuda:K", K being
// that GPU's place in that list.
struct GpuMapping {
    std::vector<int> selected;        // NVML indices to schedule (empty: Slurm named none of them)
    std::string cuda_visible;         // CUDA_VISIBLE_DEVICES for the workers ("" leave it)
    std::map<int, std::string> told;  // NVML index -> the device name a worker is told
};
// slurm_gpus: the value of SLURM_STEP_GPUS (or SLURM_JOB_GPUS), "" when unset.
GpuMapping map_step_gpus(const std::string& slurm_gpus, const std::vector<sched::Gpu>& gpus);

}  // namespace fedflow::exec
