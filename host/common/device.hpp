// device.hpp: the names of the devices a stage runs on, as the plan, the
// scheduler, the worker and the SDK spell them: "cpu", "cuda:N" (GPU N, in
// PCI bus id order) and "sim:N" (simulated GPU N of --simulate-gpus, on
// which a task must not touch CUDA; see sim_gpu.hpp).
#pragma once

#include <string>
#include <string_view>

namespace fedflow::device {

// On a cluster (fedflow-host --slurm) a GPU's name is that of its node,
// a slash, then the node's own name for it: "n1/cuda:0". A task is told the
// node's own name; gpu_index() and simulated() read either form.

// The device's name on its node: what follows the last '/'.
std::string_view local(std::string_view device);
// The node of "n1/cuda:0"; "" for a device of this machine.
std::string_view node(std::string_view device);

// "cpu", "cuda:N" or "sim:N" (N of at most three digits).
bool valid(std::string_view device);
// The N of "cuda:N" or "sim:N"; -1 for "cpu" or anything else. A pin of
// either form names GPU N of those the scheduler sees.
int gpu_index(std::string_view device);
// True for "sim:N".
bool simulated(std::string_view device);
// "cuda:N", or "sim:N" for a simulated GPU.
std::string gpu_name(int index, bool simulated);

}  // namespace fedflow::device
