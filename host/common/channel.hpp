// channel.hpp: the control channel between fedflow-host and one
// fedflow-worker, a stream socket (socketpair) carried as fd 3 in the worker.
//
// Every message is a frame: u32 type, u32 body length, then the body, an
// FFV1 document (see <fedflow/detail/wire.hpp>) whose value is a Dict.
// Results never travel here: they are in shared memory (shm.hpp), and the
// channel only says where. The socket is also how death is seen: when the
// worker dies its end closes and the host's poll() wakes at once, so no side
// ever waits on an interprocess lock that a dead process holds.
#pragma once

#include <fedflow/value.hpp>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace fedflow::channel {

enum class Type : std::uint32_t {
    // host -> worker
    config = 1,  // the task: plugin, ids, workdir, params, inputs segment
    load = 2,    // run the plugin's load
    train = 3,   // run train on body["device"]
    exit = 4,    // destroy the task and exit 0
    // worker -> host
    ready = 10,   // plugin loaded and checked
    loaded = 11,  // load finished
    result = 12,  // train finished; the result is in shared memory
    failed = 13,  // a stage failed: body has stage, kind, message
    // shim -> host: from the process between the host and the worker, when
    // the run's containment has one (see worker/shim.hpp)
    worker = 20,     // pid: the process that runs the plugin
    leftovers = 21,  // count: processes the task left running, which were killed
};

// "config", ..., "failed"; "unknown" for any other number.
const char* type_name(Type t) noexcept;

// What a peer should never have sent: a malformed frame, or (messages.hpp) a
// message with a missing or bad field, or one out of turn. The peer is broken
// or hostile; its what() says what it sent.
class ProtocolError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Frames larger than this are refused: control messages are small, and a
// peer that announces gigabytes is broken or hostile.
inline constexpr std::uint32_t max_frame_body = 64u << 20;

struct Message {
    Type type;
    Dict body;
};

// Serializes one frame.
std::string frame(Type type, const Dict& body);

// Sends a whole frame; returns false when the peer is gone
// (EPIPE/ECONNRESET). On a non-blocking socket it waits for room while the
// peer reads, up to send_patience_ms at a time, then throws
// std::system_error (ETIMEDOUT); other errors throw it too.
inline constexpr int send_patience_ms = 10000;
bool send(int fd, Type type, const Dict& body = {});

// Blocking receive of one frame; std::nullopt on orderly EOF before a frame
// starts. A truncated or malformed frame throws ProtocolError.
std::optional<Message> receive(int fd);

// Incremental parser for a non-blocking reader: feed bytes, take messages.
class FrameReader {
public:
    void feed(const char* data, std::size_t n) { buffer_.append(data, n); }
    // The next complete message, if any. Throws ProtocolError on a
    // malformed frame (the peer is then treated as broken).
    std::optional<Message> next();
    // Bytes of an incomplete frame still buffered.
    std::size_t pending() const noexcept { return buffer_.size() - offset_; }

private:
    std::string buffer_;
    std::size_t offset_ = 0;
};

}  // namespace fedflow::channel
