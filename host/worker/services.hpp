// services.hpp: the fedflow_host_services the worker hands to a plugin:
// shared-memory buffers for Bytes and for the encoded result, logging, the
// task's estimates, and the GPU memory a task declares on a simulated GPU.
#pragma once

#include "common/integrity.hpp"
#include "common/messages.hpp"
#include "common/shm.hpp"
#include "common/sim_gpu.hpp"

#include <fedflow/value.hpp>

#include <fedflow/abi.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace fedflow::worker {

class Services {
public:
    // prefix: the segment name prefix the host chose for this task.
    // max_bytes: the most shared memory one task may ask for (0 = no limit).
    Services(std::string prefix, std::uint64_t max_bytes);
    Services(const Services&) = delete;
    Services& operator=(const Services&) = delete;

    const fedflow_host_services* table() const noexcept { return &table_; }

    // Before a train: forget the previous attempt's result segment and
    // Bytes buffers (a train retried after running out of memory).
    void reset_result();
    // The next round of a kept worker: its segments are named after prefix
    // from now on, and buffer ids start again at 0 (what the last round
    // made is forgotten, as by reset_result).
    void next_round(std::string prefix);
    // Before a train on device: on "sim:N", what the task declares goes to
    // simulated GPU N (the table that FEDFLOW_SIM_GPUS names), and what it
    // held from an earlier train is freed. Throws std::runtime_error when
    // the host made no such GPU.
    void start_train(const std::string& device);
    // After a train that failed: what the task declared on a simulated GPU
    // is freed, as the exception that ended train freed its allocations (a
    // task kept for a retry must not hold the room its retry needs).
    void train_failed();
    // After train returned OK: seals the result segment (its header, with
    // length and checksum) and returns the size of the encoded result,
    // encoding an empty dict first if the plugin never asked for a buffer.
    std::uint64_t finish_result();
    // Size and checksum of every Bytes buffer by the id bytes_alloc handed
    // out, for the result message (the host checks each); no size for a
    // buffer of an earlier attempt, which no result refers to.
    std::vector<messages::BytesBuffer> buffers() const;
    // What the task gave through set_estimates (-1: nothing).
    std::int64_t memory_estimate() const noexcept { return memory_estimate_; }
    std::int64_t gpu_memory_estimate() const noexcept { return gpu_memory_estimate_; }

private:
    static void log(void* host, std::int32_t level, const char* message);
    static std::uint8_t* bytes_alloc(void* host, std::uint64_t size, std::uint64_t* id, fedflow_status* status);
    static std::uint8_t* result_alloc(void* host, std::uint64_t size, fedflow_status* status);
    static void set_estimates(void* host, std::int64_t memory, std::int64_t gpu_memory);
    static std::int32_t declare_gpu_memory(void* host, std::uint64_t bytes, fedflow_status* status);
    bool within_limit(std::uint64_t size, fedflow_status* status);

    fedflow_host_services table_{};
    std::string prefix_;
    std::uint64_t max_bytes_;
    std::uint64_t used_bytes_ = 0;
    std::uint64_t next_id_ = 0;
    std::vector<std::optional<shm::Segment>> buffers_;  // by id; kept mapped until reset
    std::optional<shm::Segment> result_;
    std::int64_t memory_estimate_ = -1, gpu_memory_estimate_ = -1;
    std::optional<simgpu::Table> sim_gpus_;  // opened at the first train on "sim:N"
    std::string sim_device_;                 // "sim:N" during a train there, else ""
    int sim_index_ = -1;
};

}  // namespace fedflow::worker
