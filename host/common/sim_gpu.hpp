// sim_gpu.hpp: simulated GPUs (fedflow-host --simulate-gpus SPEC), so that
// GPU scheduling runs end to end on a machine without one.
//
// The host creates one shared-memory table per run: each simulated GPU's
// size and foreign use, and one slot per worker process with the bytes that
// process holds on a simulated GPU. A task on "sim:N" declares what it
// allocates (the SDK's declare_gpu_memory); its worker writes that into its
// slot, and refuses an amount the GPU cannot hold, as cudaMalloc would. The
// host's probe reads the table as it reads NVML: used memory per GPU and
// per process, so the ledger, peaks, auto-adjust and out-of-memory retries
// run their real code.
//
// Every field is read and written through std::atomic_ref: the table is
// shared by the host and all its workers, without a lock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace fedflow::simgpu {

// One simulated GPU of a SPEC.
struct Spec {
    std::uint64_t total = 0;    // bytes
    std::uint64_t foreign = 0;  // bytes used by processes that are not Fedflow's
};

// "4x80GiB", "80GiB,40GiB,24GiB", "80GiB:used=20GiB", "2x40GB:used=1GB,24GiB":
// comma-separated GPUs, each [COUNTx]SIZE[:used=SIZE] (sizes as in a plan).
// At most max_gpus GPUs. Throws std::invalid_argument saying what is wrong.
inline constexpr std::size_t max_gpus = 64;
std::vector<Spec> parse(std::string_view spec);

// What the message of a declaration that does not fit starts with: the
// runner grows the task's GPU estimate when it sees it, as it does for
// "CUDA out of memory".
inline constexpr const char* oom_text = "simulated GPU out of memory";

// The environment variable by which the host tells its workers the table's
// shared-memory name.
inline constexpr const char* env_name = "FEDFLOW_SIM_GPUS";

class Table {
public:
    // The host's: a new segment `name` (shm::Segment, mode 0600) for gpus.
    static Table create(const std::string& name, const std::vector<Spec>& gpus);
    // A worker's: the host's table, mapped read-write. Throws when missing.
    static Table open(const std::string& name);
    Table(Table&&) noexcept;
    Table& operator=(Table&&) noexcept;
    ~Table();

    std::size_t count() const noexcept;
    Spec spec(std::size_t gpu) const;

    // Worker side: pid now holds bytes on gpu (and nothing on any other
    // simulated GPU). False, with nothing changed, when gpu cannot hold them:
    // its size less its foreign use and what every other process holds
    // there. free_bytes: what was free for pid on gpu at that moment.
    bool set(int pid, std::size_t gpu, std::uint64_t bytes, std::uint64_t& free_bytes);

    // Host side: what gpu holds now in all (foreign use included), and
    // what each process holds on it.
    std::uint64_t used(std::size_t gpu, std::map<int, std::uint64_t>& processes) const;
    // Host side: frees the slots of processes that have ended (their memory
    // is gone, as a GPU's is when a process exits). is_alive(pid) decides.
    template <class IsAlive>
    void release_ended(IsAlive is_alive);

private:
    struct Impl;
    explicit Table(std::unique_ptr<Impl> impl);
    std::size_t slots() const noexcept;
    int slot_pid(std::size_t slot) const noexcept;
    void release_slot(std::size_t slot) noexcept;
    std::unique_ptr<Impl> impl_;
};

template <class IsAlive>
void Table::release_ended(IsAlive is_alive) {
    for (std::size_t i = 0; i < slots(); ++i) {
        int pid = slot_pid(i);
        if (pid != 0 && !is_alive(pid)) release_slot(i);
    }
}

}  // namespace fedflow::simgpu
