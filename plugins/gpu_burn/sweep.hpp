// sweep.hpp: the kernel of sweep.cu, compiled by nvcc when meson can.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>

// Reads and writes every whole 16-byte word of the buffer once (2 * bytes
// of memory traffic), on stream; sms: the device's multiprocessor count.
__attribute__((visibility("hidden"))) cudaError_t gpu_burn_sweep(void* buffer, std::size_t bytes,
                                                                 unsigned long long salt, int sms, cudaStream_t stream);
