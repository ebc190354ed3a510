// nvml.hpp: the NVIDIA Management Library, loaded at run time with
// dlopen("libnvidia-ml.so.1"). It ships with the driver, so Fedflow has no
// build or run dependency on it: without it there are no GPUs to schedule.
// NVML creates no CUDA context, so the host never holds GPU memory itself.
#pragma once

#include "sched/resources.hpp"

#include <memory>
#include <string>
#include <vector>

namespace fedflow::sched {

class Nvml {
public:
    // Loads and initializes NVML; nullptr (with why in reason) when the
    // library is missing or nvmlInit fails (no driver, no device).
    static std::unique_ptr<Nvml> open(std::string& reason);
    ~Nvml();
    Nvml(const Nvml&) = delete;
    Nvml& operator=(const Nvml&) = delete;

    // Every GPU with its memory and compute processes, ordered by PCI bus
    // id and numbered 0.. in that order. A device that cannot be read is
    // left out of processes/used but keeps its place.
    std::vector<Gpu> devices();

private:
    struct Api;
    explicit Nvml(std::unique_ptr<Api> api);
    std::unique_ptr<Api> api_;
};

}  // namespace fedflow::sched
