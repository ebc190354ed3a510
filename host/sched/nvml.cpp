// nvml.cpp: NVML through dlopen, with the few declarations of nvml.h that
// Fedflow uses written out here (no NVML header is needed to build).
//
// The library name is "libnvidia-ml.so.1", the soname the driver installs.
// FEDFLOW_NVML_LIBRARY, when set, names another file (or soname) instead:
// tests point it at a file that does not exist to take the "not found"
// path on a machine that has a driver.
#include "sched/nvml.hpp"

#include <algorithm>
#include <cctype>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

#include <dlfcn.h>

namespace fedflow::sched {

namespace {

// ---- from nvml.h ------------------------------------------------------------
// Checked against nvml.h of NVML 12.2.140 (cuda-nvml-dev 12.2.140), as
// vendored by NVIDIA/go-nvml in gen/nvml/nvml.h: nvmlPciInfo_st,
// nvmlMemory_st, nvmlProcessInfo_v1_st and nvmlProcessInfo_v2_st (=
// nvmlProcessInfo_t, which _v2 and _v3 of
// nvmlDeviceGetComputeRunningProcesses fill; the unversioned symbol fills
// the v1 struct), the nvmlReturn_t values and the buffer sizes.
using nvmlReturn_t = int;                    // enum nvmlReturn_enum
using nvmlDevice_t = struct nvmlDevice_st*;  // opaque handle
constexpr nvmlReturn_t NVML_SUCCESS = 0;
constexpr nvmlReturn_t NVML_ERROR_INSUFFICIENT_SIZE = 7;
constexpr unsigned long long NVML_VALUE_NOT_AVAILABLE = ULLONG_MAX;  // (-1) in an unsigned long long
constexpr unsigned NVML_DEVICE_NAME_V2_BUFFER_SIZE = 96;
constexpr unsigned NVML_DEVICE_UUID_V2_BUFFER_SIZE = 96;

struct nvmlPciInfo_t {
    char busIdLegacy[16];  // NVML_DEVICE_PCI_BUS_ID_BUFFER_V2_SIZE
    unsigned int domain;
    unsigned int bus;
    unsigned int device;
    unsigned int pciDeviceId;
    unsigned int pciSubSystemId;
    char busId[32];  // NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE: "00000000:17:00.0"
};
struct nvmlMemory_t {
    unsigned long long total;
    unsigned long long free;
    unsigned long long used;
};
struct nvmlProcessInfo_v1_t {
    unsigned int pid;
    unsigned long long usedGpuMemory;
};
struct nvmlProcessInfo_t {  // nvmlProcessInfo_v2_st
    unsigned int pid;
    unsigned long long usedGpuMemory;  // NVML_VALUE_NOT_AVAILABLE when unknown
    unsigned int gpuInstanceId;
    unsigned int computeInstanceId;
};
static_assert(sizeof(nvmlPciInfo_t) == 68);
static_assert(sizeof(nvmlMemory_t) == 24);
static_assert(sizeof(nvmlProcessInfo_v1_t) == 16);
static_assert(sizeof(nvmlProcessInfo_t) == 24);

using InitFn = nvmlReturn_t (*)();
using CountFn = nvmlReturn_t (*)(unsigned int*);
using HandleFn = nvmlReturn_t (*)(unsigned int, nvmlDevice_t*);
using StringFn = nvmlReturn_t (*)(nvmlDevice_t, char*, unsigned int);
using PciFn = nvmlReturn_t (*)(nvmlDevice_t, nvmlPciInfo_t*);
using MemoryFn = nvmlReturn_t (*)(nvmlDevice_t, nvmlMemory_t*);
using ProcessesFn = nvmlReturn_t (*)(nvmlDevice_t, unsigned int*, nvmlProcessInfo_t*);
using ProcessesV1Fn = nvmlReturn_t (*)(nvmlDevice_t, unsigned int*, nvmlProcessInfo_v1_t*);
using ErrorStringFn = const char* (*)(nvmlReturn_t);

// "0000:17:00.0" (legacy) and "00000000:17:00.0" alike: upper case, the
// domain widened to 8 digits, so that bus ids compare as strings.
std::string normalize_bus_id(const char* raw) {
    std::string id(raw, strnlen(raw, 32));
    for (char& c : id) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    std::size_t colon = id.find(':');
    if (colon != std::string::npos && colon < 8) id.insert(0, 8 - colon, '0');
    return id;
}

// Every process in a growing buffer: NVML answers INSUFFICIENT_SIZE with
// the count it needs, which may have grown again by the next call.
template <typename Info, typename Fn>
bool running_processes(Fn fn, nvmlDevice_t dev, std::map<int, std::uint64_t>& out) {
    std::vector<Info> buf(32);
    for (int attempt = 0; attempt < 5; ++attempt) {
        auto count = static_cast<unsigned int>(buf.size());
        nvmlReturn_t rc = fn(dev, &count, buf.data());
        if (rc == NVML_ERROR_INSUFFICIENT_SIZE) {
            buf.resize(std::max<std::size_t>(count + 16, buf.size() * 2));
            continue;
        }
        if (rc != NVML_SUCCESS) return false;
        for (unsigned i = 0; i < count && i < buf.size(); ++i) {
            if (buf[i].usedGpuMemory == NVML_VALUE_NOT_AVAILABLE) continue;  // unknown: left out
            out[static_cast<int>(buf[i].pid)] += buf[i].usedGpuMemory;       // MIG: one pid, several instances
        }
        return true;
    }
    return false;
}

}  // namespace

struct Nvml::Api {
    void* lib = nullptr;
    InitFn shutdown = nullptr;
    CountFn count = nullptr;
    HandleFn handle = nullptr;
    StringFn name = nullptr;
    StringFn uuid = nullptr;
    PciFn pci = nullptr;
    MemoryFn memory = nullptr;
    ProcessesFn processes = nullptr;       // _v3, else _v2
    ProcessesV1Fn processes_v1 = nullptr;  // the unversioned one of old drivers
    ErrorStringFn error_string = nullptr;

    // The devices in PCI bus id order, with what does not change (index,
    // name, uuid, bus id), and their handles (nullptr: unreadable).
    bool enumerated = false;
    std::vector<Gpu> known;
    std::vector<nvmlDevice_t> handles;
    void enumerate();

    std::string error(nvmlReturn_t rc) const {
        const char* s = error_string ? error_string(rc) : nullptr;
        return s ? std::string(s) : "NVML error " + std::to_string(rc);
    }
};

std::unique_ptr<Nvml> Nvml::open(std::string& reason) {
    const char* env = std::getenv("FEDFLOW_NVML_LIBRARY");
    std::string file = env && *env ? env : "libnvidia-ml.so.1";
    auto api = std::make_unique<Api>();
    api->lib = ::dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!api->lib) {
        // dlerror says "<file>: cannot open shared object file: ...".
        const char* e = ::dlerror();
        std::string err = e ? e : "";
        if (err.rfind(file + ": ", 0) == 0) err.erase(0, file.size() + 2);
        reason = file + " not found" + (err.empty() ? std::string() : " (" + err + ")");
        return nullptr;
    }
    auto fail = [&](std::string why) -> std::unique_ptr<Nvml> {
        reason = file + ": " + std::move(why);
        ::dlclose(api->lib);
        return nullptr;
    };
    std::string missing;
    auto sym = [&](const char* name, bool required = true) -> void* {
        void* p = ::dlsym(api->lib, name);
        if (!p && required && missing.empty()) missing = name;
        return p;
    };
    auto init = reinterpret_cast<InitFn>(sym("nvmlInit_v2"));
    api->shutdown = reinterpret_cast<InitFn>(sym("nvmlShutdown"));
    api->count = reinterpret_cast<CountFn>(sym("nvmlDeviceGetCount_v2"));
    api->handle = reinterpret_cast<HandleFn>(sym("nvmlDeviceGetHandleByIndex_v2"));
    api->name = reinterpret_cast<StringFn>(sym("nvmlDeviceGetName"));
    api->uuid = reinterpret_cast<StringFn>(sym("nvmlDeviceGetUUID"));
    api->memory = reinterpret_cast<MemoryFn>(sym("nvmlDeviceGetMemoryInfo"));
    api->error_string = reinterpret_cast<ErrorStringFn>(sym("nvmlErrorString", false));
    api->pci = reinterpret_cast<PciFn>(sym("nvmlDeviceGetPciInfo_v3", false));
    if (!api->pci) api->pci = reinterpret_cast<PciFn>(sym("nvmlDeviceGetPciInfo_v2"));
    api->processes = reinterpret_cast<ProcessesFn>(sym("nvmlDeviceGetComputeRunningProcesses_v3", false));
    if (!api->processes)
        api->processes = reinterpret_cast<ProcessesFn>(sym("nvmlDeviceGetComputeRunningProcesses_v2", false));
    if (!api->processes)
        api->processes_v1 = reinterpret_cast<ProcessesV1Fn>(sym("nvmlDeviceGetComputeRunningProcesses", false));
    if (!missing.empty()) return fail("no symbol " + missing + " (not NVML, or a driver too old)");

    nvmlReturn_t rc = init();
    if (rc != NVML_SUCCESS) return fail("nvmlInit failed: " + api->error(rc));
    reason.clear();
    return std::unique_ptr<Nvml>(new Nvml(std::move(api)));
}

Nvml::Nvml(std::unique_ptr<Api> api) : api_(std::move(api)) {}

Nvml::~Nvml() {
    api_->shutdown();
    // The library stays loaded: unloading a driver library that has been
    // initialized once buys nothing and risks its exit-time handlers.
}

void Nvml::Api::enumerate() {
    enumerated = true;
    unsigned int n = 0;
    if (count(&n) != NVML_SUCCESS) return;
    // The NVML index breaks ties between devices whose bus id is unknown.
    struct Found {
        unsigned nvml_index;
        nvmlDevice_t handle;
        Gpu gpu;
    };
    std::vector<Found> found;
    for (unsigned i = 0; i < n; ++i) {
        Found f{i, nullptr, {}};
        Gpu& g = f.gpu;
        if (handle(i, &f.handle) != NVML_SUCCESS) {
            // Unreadable (fallen off the bus, no permission): it still
            // counts, so that the devices after it keep CUDA's numbers as
            // far as can be told; total 0 means nothing is placed there.
            f.handle = nullptr;
            found.push_back(std::move(f));
            continue;
        }
        char buf[std::max(NVML_DEVICE_NAME_V2_BUFFER_SIZE, NVML_DEVICE_UUID_V2_BUFFER_SIZE)] = {};
        if (name(f.handle, buf, sizeof buf) == NVML_SUCCESS) g.name.assign(buf, strnlen(buf, sizeof buf));
        std::memset(buf, 0, sizeof buf);
        if (uuid(f.handle, buf, sizeof buf) == NVML_SUCCESS) g.uuid.assign(buf, strnlen(buf, sizeof buf));
        nvmlPciInfo_t info{};
        if (pci(f.handle, &info) == NVML_SUCCESS)
            g.pci_bus_id = normalize_bus_id(info.busId[0] ? info.busId : info.busIdLegacy);
        found.push_back(std::move(f));
    }
    // PCI bus id order (CUDA_DEVICE_ORDER=PCI_BUS_ID); an unknown id last.
    std::sort(found.begin(), found.end(), [](const Found& a, const Found& b) {
        const std::string& x = a.gpu.pci_bus_id;
        const std::string& y = b.gpu.pci_bus_id;
        if (x.empty() != y.empty()) return y.empty();
        if (x != y) return x < y;
        return a.nvml_index < b.nvml_index;
    });
    for (auto& f : found) {
        f.gpu.index = static_cast<int>(known.size());
        handles.push_back(f.handle);
        known.push_back(std::move(f.gpu));
    }
}

std::vector<Gpu> Nvml::devices() {
    // Names, ids and order do not change while NVML is open; memory and
    // processes are read anew each time.
    if (!api_->enumerated) api_->enumerate();
    std::vector<Gpu> gpus = api_->known;
    for (std::size_t i = 0; i < gpus.size(); ++i) {
        nvmlDevice_t dev = api_->handles[i];
        if (!dev) continue;
        Gpu& g = gpus[i];
        nvmlMemory_t mem{};
        if (api_->memory(dev, &mem) == NVML_SUCCESS) {
            g.total = mem.total;
            g.used = mem.used;
        }
        if (api_->processes) running_processes<nvmlProcessInfo_t>(api_->processes, dev, g.processes);
        else if (api_->processes_v1) running_processes<nvmlProcessInfo_v1_t>(api_->processes_v1, dev, g.processes);
    }
    return gpus;
}

}  // namespace fedflow::sched
