// device.hpp: the names of the devices a stage runs on, as the plan, the
// scheduler, the worker and the SDK spell them: "cpu", "cuda:N" (GPU N, in
// PCI bus id order) and "sim:N" (simulated GPU N of --simulate-gpus, on
// which a task must not touch CUDA; see sim_gpu.hpp).
#pragma once

#include <string>
#include <string_view>

namespace fedflow::device {

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
