// messages.hpp: every message between fedflow-host and fedflow-worker, as a
// struct with its encoding and decoding: the one definition of the worker
// protocol (docs/architecture.md, "Control channel", is written from it).
//
// A message travels as one channel frame (channel.hpp): its type, and a body
// that is a Dict with one key per field. encode() writes every field;
// decode() takes the body of a frame of that type and checks every field:
// present when required, of its type, in its range, no field it does not
// know. What it refuses throws channel::ProtocolError naming the message
// and the field ("'loaded' message: field 'ms' is missing").
//
//   host -> worker   Config, Load, Train, Exit (a second Config: the next
//                    round of a kept worker, protocol 2)
//   worker -> host   Ready, Loaded, Result, Failed
//   shim -> host     ShimWorker, ShimLeftovers (the process between the
//                    host and the worker under some containments)
//
// Conversation is the host's check of the order: a worker may only answer
// what the host asked, once.
#pragma once

#include "common/channel.hpp"

#include <fedflow/value.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace fedflow::messages {

// -- host -> worker --

// The task: sent first. To a worker whose Ready said protocol >= 2, again
// after a result: the same task's next round (keep-loaded). The worker keeps
// its plugin and what load built, and takes this round's round, workdir
// (its cwd, stdout.log, stderr.log), shm_prefix and inputs; the host sends
// Train next, without Load. A plugin or params that differ are a protocol
// error; inputs that cannot be opened fail that train.
struct Config {
    static constexpr channel::Type type = channel::Type::config;
    std::string task_id;
    std::string group;
    std::uint32_t round = 0;  // 1.. inside a [[round]], else 0
    std::string workdir;      // the task's directory (the worker's cwd)
    std::string plan_dir;
    std::string plugin_path;         // the plugin .so
    std::string plugin_name;         // which plugin of that file
    std::string shm_prefix;          // the names of the task's segments start with it
    std::string inputs_segment;      // the group's inputs, or empty
    bool verify_inputs = false;      // check each input byte file's checksum before load ([[group]] verify-inputs)
    Dict inputs_about;               // what the inputs hold (Context::inputs_about), or empty
    std::uint64_t result_limit = 0;  // max bytes of the result (0 = none); at most INT64_MAX
    Dict params;

    Dict encode() const;
    static Config decode(const Dict& body);
    friend bool operator==(const Config&, const Config&) = default;
};

// Run the plugin's load.
struct Load {
    static constexpr channel::Type type = channel::Type::load;
    Dict encode() const { return {}; }
    static Load decode(const Dict& body);
    friend bool operator==(const Load&, const Load&) = default;
};

// Run train on device ("cuda:N" or "cpu"). exit_after: the host keeps
// nothing of this worker after a result, so the worker destroys its task and
// exits as soon as it has sent one, without waiting for Exit (one round trip
// less per task); after a failure it waits for the host as before (a train
// that ran out of memory is tried again in the same process).
//
// ahead: sent right after Load, before its answer, when the host knows
// already that the train will run on "cpu" (no GPU it may use, or the task
// is pinned there): the worker goes from load to train without waiting for
// the host (one round trip less per task), and drops this Train, unanswered,
// when that load failed.
struct Train {
    static constexpr channel::Type type = channel::Type::train;
    std::string device;
    bool exit_after = false;  // absent on the wire when false
    bool ahead = false;       // absent on the wire when false

    Dict encode() const;
    static Train decode(const Dict& body);
    friend bool operator==(const Train&, const Train&) = default;
};

// Destroy the task and exit 0.
struct Exit {
    static constexpr channel::Type type = channel::Type::exit;
    Dict encode() const { return {}; }
    static Exit decode(const Dict& body);
    friend bool operator==(const Exit&, const Exit&) = default;
};

// -- worker -> host --

// The plugin is loaded and checked, and the task created.
struct Ready {
    static constexpr channel::Type type = channel::Type::ready;
    std::string plugin;
    std::uint32_t abi_version = 0;
    // The worker protocol it speaks: 1 (absent on the wire), or 2: it takes
    // a Config for the next round after a result (keep-loaded).
    std::uint32_t protocol = 1;

    Dict encode() const;
    static Ready decode(const Dict& body);
    friend bool operator==(const Ready&, const Ready&) = default;
};

// load returned.
struct Loaded {
    static constexpr channel::Type type = channel::Type::loaded;
    std::int64_t ms = 0;           // how long load ran, >= 0
    std::int64_t peak_memory = 0;  // bytes, the worker's RSS peak so far, >= 0
    // The task's own estimates (set_estimates in load), bytes >= 0; they
    // replace the plan's. Absent when the task gave none.
    std::optional<std::int64_t> memory_estimate;
    std::optional<std::int64_t> gpu_memory_estimate;

    Dict encode() const;
    static Loaded decode(const Dict& body);
    friend bool operator==(const Loaded&, const Loaded&) = default;
};

// One bytes buffer of a result (shm segment -b<id>, id = its index in
// Result::buffers).
struct BytesBuffer {
    // Its size; nullopt for a buffer of an earlier train attempt, freed
    // since (a reference to it is an invalid result). Encoded as -1.
    std::optional<std::uint64_t> size;
    std::uint64_t checksum = 0;  // integrity::checksum of its bytes (0 when freed)
    friend bool operator==(const BytesBuffer&, const BytesBuffer&) = default;
};

// train returned; the result is in the task's shared memory.
//
// On the wire the buffers are two lists of integers, `bytes_sizes` and
// `bytes_checksums` (the checksum's 64 bits as a signed integer), and
// `bytes`, their length.
struct Result {
    static constexpr channel::Type type = channel::Type::result;
    std::uint64_t size = 0;  // bytes of the encoded result in segment -r
    std::vector<BytesBuffer> buffers;
    std::int64_t ms = 0;            // how long train ran, >= 0
    std::int64_t train_end_ns = 0;  // clock::monotonic_ns() when train returned, >= 0
    std::int64_t peak_memory = 0;   // bytes, >= 0

    Dict encode() const;
    static Result decode(const Dict& body);
    friend bool operator==(const Result&, const Result&) = default;
};

// A stage failed. After stage `start` or `channel` the worker exits (code 2);
// after `load` or `train` it waits for the next message.
struct Failed {
    static constexpr channel::Type type = channel::Type::failed;
    enum class Stage { start, load, train, channel };
    // exception: the plugin's error; oom: out of memory (may be retried);
    // bad_plugin: the plugin cannot be used (start only); protocol: the
    // worker got a message it cannot follow.
    enum class Kind { exception, oom, bad_plugin, protocol };
    Stage stage = Stage::start;
    Kind kind = Kind::exception;
    std::string message;
    std::optional<std::int64_t> ms;           // how long the stage ran (load, train), >= 0
    std::optional<std::int64_t> peak_memory;  // bytes, >= 0

    Dict encode() const;
    // Also refuses a kind its stage never has: bad_plugin outside start,
    // anything but protocol in channel.
    static Failed decode(const Dict& body);
    friend bool operator==(const Failed&, const Failed&) = default;
};

// "start", "load", "train", "channel"; "exception", "oom", "bad_plugin", "protocol".
const char* to_string(Failed::Stage s) noexcept;
const char* to_string(Failed::Kind k) noexcept;

// fedflow-worker's exit code when its channel was closed, or another file
// opened on its fd, under it (by the plugin): no message can tell the host,
// so the exit code does. Other codes: 0 after `exit` or when the host is
// gone, 2 after a `failed` in start or channel.
inline constexpr int worker_exit_channel_lost = 98;

// -- shim -> host (worker/shim.hpp): the executor's business, not the task's --

// The process that runs the plugin, a child of the shim.
struct ShimWorker {
    static constexpr channel::Type type = channel::Type::worker;
    std::int64_t pid = 0;  // > 0

    Dict encode() const;
    static ShimWorker decode(const Dict& body);
    friend bool operator==(const ShimWorker&, const ShimWorker&) = default;
};

// How many processes the task left running when its worker ended; the shim
// killed them.
struct ShimLeftovers {
    static constexpr channel::Type type = channel::Type::leftovers;
    std::int64_t count = 0;  // > 0

    Dict encode() const;
    static ShimLeftovers decode(const Dict& body);
    friend bool operator==(const ShimLeftovers&, const ShimLeftovers&) = default;
};

using FromHost = std::variant<Config, Load, Train, Exit>;
using FromWorker = std::variant<Ready, Loaded, Result, Failed>;
using FromShim = std::variant<ShimWorker, ShimLeftovers>;

channel::Type type_of(const FromHost& m) noexcept;
channel::Type type_of(const FromWorker& m) noexcept;
Dict encode(const FromHost& m);
Dict encode(const FromWorker& m);

// The message a frame holds. Throws channel::ProtocolError for a type the
// other side does not send (unknown, or one that travels the other way) and
// for a body its decode() refuses.
FromHost decode_from_host(const channel::Message& m);
FromWorker decode_from_worker(const channel::Message& m);
// A shim's frame: nullopt for a frame of any other type (the worker's, for
// Conversation); throws channel::ProtocolError for a malformed body.
std::optional<FromShim> decode_from_shim(const channel::Message& m);

// The protocol this fedflow-worker speaks (Ready::protocol).
inline constexpr std::uint32_t worker_protocol = 2;

// What the host sent one worker, and so what it may answer: `ready` once,
// first (or `failed` in start); then per stage the host asked for, one
// `loaded`/`result` or `failed` of that stage; `failed` in channel at any
// time before the end; nothing once it said it cannot go on or was told to
// exit. The host sends config and load together, without waiting for
// `ready`; a later config (the next round) asks for no answer.
class Conversation {
public:
    // The host sent m.
    void sent(const FromHost& m) noexcept;
    // The worker ends by itself: its result came in answer to a Train with
    // exit_after. The host sends it no Exit.
    bool exit_implied() const noexcept { return exit_implied_; }
    // Decodes a frame from the worker and checks that it may come now;
    // throws channel::ProtocolError if not ("unexpected 'loaded' message:
    // no stage is running"). A message that is accepted moves the
    // conversation on.
    FromWorker receive(const channel::Message& m);
    // What the worker may send now, for messages: "'ready' or 'failed' in start".
    std::string expecting() const;

private:
    enum class Pending { none, load, train };
    // Throws: what (a message type) is not expected now; stage: of a `failed`, or null.
    [[noreturn]] void refuse(const char* what, const char* stage) const;

    bool ready_ = false;
    bool ended_ = false;  // failed in start or channel: the worker exits
    bool exit_sent_ = false;
    bool exit_after_train_ = false;  // the pending train said exit_after
    bool train_ahead_ = false;       // a Train sent ahead waits for the pending load's end
    bool exit_implied_ = false;
    Pending pending_ = Pending::none;
};

}  // namespace fedflow::messages
