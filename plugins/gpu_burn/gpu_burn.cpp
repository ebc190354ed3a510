// gpu_burn: holds `gpu-memory` bytes of device memory and keeps the GPU
// busy for `seconds`, so that a plan of many of them shows how the
// scheduler packs tasks onto GPUs (scripts/gpu-check). On a simulated GPU
// ("sim:N", fedflow-host --simulate-gpus) it declares the memory instead
// (Context::declare_gpu_memory) and holds it for `seconds`: no CUDA is
// touched, and it is built without the CUDA Runtime too (then only "sim:N"
// works).
//
//   params = { gpu-memory = "6GB", seconds = 5 }
//
// gpu-memory: a size ("6GB", "512MiB"; units B KB MB GB TB, KiB MiB GiB TiB)
// or an integer of bytes; default "1GB". seconds: default 5.
//
// train allocates the buffer with cudaMalloc (a failure is out of memory,
// which the host retries), then sweeps it until `seconds` have passed: a
// kernel that reads and writes every word when meson could compile CUDA
// (GPU_BURN_KERNEL), else cudaMemsetAsync. Result: device, bytes, seconds
// (measured), sweeps, gbps (bytes moved per second / 1e9), free_before
// (device memory free before the allocation) and free_after (free while the
// buffer is held, at the end of the burn). On "sim:N": device, bytes,
// seconds (measured) and simulated = true.
#include <fedflow/task.hpp>

#if GPU_BURN_CUDA
#include <cuda_runtime_api.h>
#endif

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <thread>

#if GPU_BURN_KERNEL
#include "sweep.hpp"
#endif

namespace {

std::uint64_t parse_size(const std::string& text) {
    const char* s = text.c_str();
    char* end = nullptr;
    double value = std::strtod(s, &end);
    if (end == s || !std::isfinite(value) || value < 0)
        throw std::invalid_argument("gpu-memory '" + text + "' is not a size such as \"6GB\"");
    std::string unit(end);
    unit.erase(0, unit.find_first_not_of(' '));
    static const struct {
        const char* name;
        double factor;
    } units[] = {{"", 1},      {"B", 1},        {"KB", 1e3},        {"MB", 1e6},           {"GB", 1e9},
                 {"TB", 1e12}, {"KiB", 1024.0}, {"MiB", 1048576.0}, {"GiB", 1073741824.0}, {"TiB", 1099511627776.0}};
    for (const auto& u : units)
        if (unit == u.name) return static_cast<std::uint64_t>(std::llround(value * u.factor));
    throw std::invalid_argument("gpu-memory '" + text + "' has unknown unit '" + unit +
                                "' (use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)");
}

#if GPU_BURN_CUDA
void check(cudaError_t err, const std::string& what) {
    if (err != cudaSuccess)
        throw std::runtime_error(what + ": " + cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")");
}

// The buffer and stream of one burn, released however train ends.
struct DeviceBuffer {
    void* ptr = nullptr;
    cudaStream_t stream = nullptr;
    ~DeviceBuffer() {
        if (stream) cudaStreamDestroy(stream);
        if (ptr) cudaFree(ptr);
    }
};
#endif

}  // namespace

class GpuBurn final : public fedflow::Task {
public:
    void load(fedflow::Context& ctx) override {
        bytes_ = 1000000000;
        if (ctx.params().contains("gpu-memory")) {
            const fedflow::Value& v = ctx.params().at("gpu-memory");
            if (v.is<std::string>()) {
                bytes_ = parse_size(v.as<std::string>());
            } else {
                std::int64_t n = ctx.param<std::int64_t>("gpu-memory");
                if (n < 0) throw std::invalid_argument("gpu-memory must not be negative");
                bytes_ = static_cast<std::uint64_t>(n);
            }
        }
        seconds_ = ctx.param<double>("seconds", 5.0);
        if (!(seconds_ >= 0)) throw std::invalid_argument("seconds must be 0 or more");
    }

    fedflow::Dict train(fedflow::Context& ctx, std::string_view device) override {
        const std::string dev(device);
        if (dev.rfind("sim:", 0) == 0) return hold_simulated(ctx, dev);
#if GPU_BURN_CUDA
        if (dev.rfind("cuda:", 0) == 0) return burn(dev);
        throw std::runtime_error("gpu_burn needs a GPU, not '" + dev + "'");
#else
        throw std::runtime_error("gpu_burn needs a GPU, not '" + dev +
                                 "' (built without the CUDA Runtime, it runs on simulated GPUs only: "
                                 "fedflow-host --simulate-gpus)");
#endif
    }

private:
    // The buffer declared on the simulated GPU (out of memory there throws,
    // as cudaMalloc's failure does below) and held for `seconds`.
    fedflow::Dict hold_simulated(fedflow::Context& ctx, const std::string& dev) {
        if (!ctx.declare_gpu_memory(bytes_))
            throw std::runtime_error("gpu_burn on " + dev + ": this worker cannot declare simulated GPU memory");
        const auto start = std::chrono::steady_clock::now();
        std::this_thread::sleep_for(std::chrono::duration<double>(seconds_));
        const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        ctx.declare_gpu_memory(0);  // freed, as the CUDA buffer is at the end of a burn
        fedflow::Dict out;
        out["device"] = dev;
        out["bytes"] = static_cast<std::int64_t>(bytes_);
        out["seconds"] = elapsed;
        out["simulated"] = true;
        return out;
    }

#if GPU_BURN_CUDA
    fedflow::Dict burn(const std::string& dev) {
        const int index = std::atoi(dev.c_str() + 5);
        check(cudaSetDevice(index), "cudaSetDevice(" + dev + ")");

        std::size_t free_before = 0, free_after = 0, total = 0;
        check(cudaMemGetInfo(&free_before, &total), "cudaMemGetInfo");
        DeviceBuffer buf;
        cudaError_t err = cudaMalloc(&buf.ptr, bytes_);
        if (err != cudaSuccess) {
            buf.ptr = nullptr;
            cudaGetLastError();  // clear it: the host may retry train in this process
            // The SDK counts an exception naming cudaErrorMemoryAllocation as out of memory.
            check(err, "cudaMalloc(" + std::to_string(bytes_) + " bytes) on " + dev + " with " +
                           std::to_string(free_before) + " free");
        }
        check(cudaStreamCreateWithFlags(&buf.stream, cudaStreamNonBlocking), "cudaStreamCreate");
#if GPU_BURN_KERNEL
        int sms = 0;
        check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, index), "cudaDeviceGetAttribute");
        const double bytes_per_sweep = 2.0 * static_cast<double>(bytes_ / 16 * 16);  // read + write
#else
        const double bytes_per_sweep = static_cast<double>(bytes_);
#endif

        using clock = std::chrono::steady_clock;
        const auto start = clock::now();
        const auto until = start + std::chrono::duration<double>(seconds_);
        std::int64_t sweeps = 0;
        while (clock::now() < until) {
#if GPU_BURN_KERNEL
            check(gpu_burn_sweep(buf.ptr, bytes_, static_cast<unsigned long long>(sweeps), sms, buf.stream),
                  "sweep kernel");
#else
            check(cudaMemsetAsync(buf.ptr, static_cast<int>(sweeps & 0xff), bytes_, buf.stream), "cudaMemsetAsync");
#endif
            check(cudaStreamSynchronize(buf.stream), "cudaStreamSynchronize");
            ++sweeps;
        }
        const double elapsed = std::chrono::duration<double>(clock::now() - start).count();
        check(cudaMemGetInfo(&free_after, &total), "cudaMemGetInfo");

        fedflow::Dict out;
        out["device"] = dev;
        out["bytes"] = static_cast<std::int64_t>(bytes_);
        out["seconds"] = elapsed;
        out["sweeps"] = sweeps;
        out["gbps"] = elapsed > 0 ? bytes_per_sweep * static_cast<double>(sweeps) / elapsed / 1e9 : 0.0;
        out["free_before"] = static_cast<std::int64_t>(free_before);
        out["free_after"] = static_cast<std::int64_t>(free_after);
        return out;
    }
#endif

    std::uint64_t bytes_ = 0;
    double seconds_ = 5;
};
FEDFLOW_TASK(GpuBurn, "gpu_burn")
