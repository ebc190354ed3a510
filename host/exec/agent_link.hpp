// agent_link.hpp: the messages between fedflow-host and a node agent
// (`fedflow-host agent`, node_agent.hpp), which runs one node's workers
// for a SlurmExecutor (slurm_executor.hpp). They travel over the agent's
// srun stdio (the host writes to its stdin, reads its stdout) as channel
// frames (channel.hpp: u32 type, u32 length, an FFV1 Dict), with types of
// their own, from 100 up, so that a worker message is never taken for one.
//
// The link carries only control: results stay in files in the shared
// workdir (the agent copies a worker's shared-memory segments there), and a
// group's inputs reach the agent the same way.
//
//   host -> agent: hello (once, first), then requests; load, train,
//                  next_round and check_shared are answered by one `reply`
//                  each, in order
//   agent -> host: ready (once, after hello), reply, event, state
//
// Decoding throws channel::ProtocolError naming the frame and the field.
#pragma once

#include "common/channel.hpp"
#include "exec/executor.hpp"
#include "exec/fork_server.hpp"
#include "sched/stage_scheduler.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace fedflow::exec::agent {

enum class Frame : std::uint32_t {
    // host -> agent
    hello = 100,         // Hello
    start_group = 101,   // memory, gpu_memory (optional)
    learn = 102,         // memory, gpu_memory (peaks, -1 unknown)
    load = 103,          // Load -> reply (Admission)
    train = 104,         // id, pinned, grown_gpu_memory, gpu_memory -> reply (Admission)
    end_stage = 105,     // id
    reserve = 106,       // id, memory
    release = 107,       // id
    signal = 108,        // id, signal
    signal_all = 109,    // signal
    terminate = 110,     // id, grace_ms
    check_shared = 111,  // path -> reply: error ("" when the agent sees the file)
    group_inputs = 112,  // bytes: what each task of the group maps from its inputs
    keep = 113,          // id: keep-loaded, its train ended and it idles for its next round
    next_round = 114,    // NextRound -> reply: ok (false: gone, load it anew)
    // agent -> host
    ready = 150,  // Ready
    reply = 151,  // the answer to the oldest unanswered request
    event = 152,  // an executor Event of one of its workers
    state = 153,  // devices: what the node holds now (after events, and with each reply)
};

const char* frame_name(Frame f) noexcept;

// What the host tells an agent once: how to run its node's workers.
struct Hello {
    sched::StageScheduler::Config scheduler;
    std::chrono::milliseconds kill_grace{5000};
    std::chrono::milliseconds sample_period{250};
    std::string simulate_gpus;  // --simulate-gpus as given ("" none): each node gets its own
    std::string node;           // the node's name in the allocation, for its log and errors
    bool fork_server = true;    // [scheduler] worker-start: fork servers where a load has a preload

    Dict encode() const;
    static Hello decode(const Dict& body);
};

// What an agent's node has, once it runs.
struct Ready {
    std::string hostname;
    std::string containment;  // exec::Executor::containment() of the node
    std::string gpu_status;
    sched::Snapshot machine;  // cpus, RAM (within its step's cgroup limits) and GPUs

    Dict encode() const;
    static Ready decode(const Dict& body);
};

// A load request: the executor's LoadRequest with the config made.
struct Load {
    WorkerId id = 0;
    std::string workdir;
    std::optional<std::uint64_t> grown_memory, memory;
    Dict config;                         // messages::Config, encoded
    std::string inputs_file;             // the group's inputs, as a file in the shared workdir ("" none)
    std::optional<PreloadSpec> preload;  // LoadRequest::preload
    bool may_evict = true;               // LoadRequest::may_evict

    Dict encode() const;
    static Load decode(const Dict& body);
};

// A kept worker's next round (Executor::next_round) with its config made.
struct NextRound {
    WorkerId id = 0;
    Dict config;              // messages::Config, encoded
    std::string inputs_file;  // the round's inputs, as a file in the shared workdir ("" none)

    Dict encode() const;
    static NextRound decode(const Dict& body);
};

Dict encode(const TrainRequest& r, WorkerId id);
TrainRequest decode_train(const Dict& body, WorkerId& id);

Dict encode(const Admission& a);
Admission decode_admission(const Dict& body);

// A worker message travels as its type and body; `result_dir` (a result's
// segments, copied) is the folder that holds them as files.
Dict encode(const Event& e);
Event decode_event(const Dict& body);

Dict encode(const std::vector<DeviceUse>& devices, std::size_t live);
std::vector<DeviceUse> decode_devices(const Dict& body, std::size_t& live);

Dict encode(const sched::Snapshot& s);
sched::Snapshot decode_snapshot(const Dict& body);

// One frame to fd, whole (blocking); false when the peer is gone.
bool send(int fd, Frame f, const Dict& body = {});

}  // namespace fedflow::exec::agent
