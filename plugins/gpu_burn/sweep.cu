// sweep.cu: one pass over a buffer in device memory that reads and writes
// every 16-byte word: the memory-bound work gpu_burn keeps a GPU busy with.
#include "sweep.hpp"

namespace {

__global__ void sweep_kernel(ulonglong2* words, std::size_t n, unsigned long long salt) {
    std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
    for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
        ulonglong2 w = words[i];
        w.x = w.x * 6364136223846793005ull + salt;
        w.y = w.y * 6364136223846793005ull + salt;
        words[i] = w;
    }
}

}  // namespace

cudaError_t gpu_burn_sweep(void* buffer, std::size_t bytes, unsigned long long salt, int sms, cudaStream_t stream) {
    std::size_t n = bytes / sizeof(ulonglong2);
    if (n == 0) return cudaSuccess;
    sweep_kernel<<<4 * (sms > 0 ? sms : 1), 256, 0, stream>>>(static_cast<ulonglong2*>(buffer), n, salt);
    return cudaGetLastError();
}
