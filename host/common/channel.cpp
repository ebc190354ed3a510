#include "common/channel.hpp"

#include <fedflow/detail/wire.hpp>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <system_error>

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace fedflow::channel {

const char* type_name(Type t) noexcept {
    switch (t) {
    case Type::config: return "config";
    case Type::load: return "load";
    case Type::train: return "train";
    case Type::exit: return "exit";
    case Type::ready: return "ready";
    case Type::loaded: return "loaded";
    case Type::result: return "result";
    case Type::failed: return "failed";
    case Type::worker: return "worker";
    case Type::leftovers: return "leftovers";
    }
    return "unknown";
}

namespace {

constexpr std::size_t header_size = 8;

// "'loaded' frame", "frame of unknown type 99".
std::string frame_name(std::uint32_t type) {
    const char* name = type_name(static_cast<Type>(type));
    if (std::string_view(name) == "unknown") return "frame of unknown type " + std::to_string(type);
    return std::string("'") + name + "' frame";
}

Message parse(std::uint32_t type, const char* body, std::size_t n) {
    Value v;
    try {
        v = wire::decode(reinterpret_cast<const std::uint8_t*>(body), n);
    } catch (const wire::Error& e) {
        throw ProtocolError(frame_name(type) + ": the body is not an FFV1 document: " + e.what());
    }
    if (!v.is<Dict>()) throw ProtocolError(frame_name(type) + ": the body is " + v.type_name() + ", not a dict");
    return Message{static_cast<Type>(type), std::move(v.as<Dict>())};
}

void check_length(std::uint32_t type, std::uint32_t n) {
    if (n > max_frame_body)
        throw ProtocolError(frame_name(type) + " of " + std::to_string(n) + " bytes refused (at most " +
                            std::to_string(max_frame_body) + ")");
}

}  // namespace

std::string frame(Type type, const Dict& body) {
    std::string doc = wire::encode(Value(body));
    if (doc.size() > max_frame_body)
        throw std::length_error(std::string("channel: a '") + type_name(type) + "' message of " +
                                std::to_string(doc.size()) + " bytes is larger than a frame may be");
    std::string out(header_size, '\0');
    auto t = static_cast<std::uint32_t>(type);
    auto n = static_cast<std::uint32_t>(doc.size());
    std::memcpy(out.data(), &t, 4);
    std::memcpy(out.data() + 4, &n, 4);
    out += doc;
    return out;
}

bool send(int fd, Type type, const Dict& body) {
    std::string f = frame(type, body);
    std::size_t done = 0;
    while (done < f.size()) {
        // MSG_NOSIGNAL: a dead peer is an EPIPE to report, not a SIGPIPE.
        ssize_t n = ::send(fd, f.data() + done, f.size() - done, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                // A frame larger than the socket's buffer (a config with
                // large params) on the host's non-blocking end: the rest
                // goes as the peer reads. Half a frame must not stay behind.
                pollfd p{fd, POLLOUT, 0};
                int ready = ::poll(&p, 1, send_patience_ms);
                if (ready < 0 && errno != EINTR)
                    throw std::system_error(errno, std::generic_category(), "channel send");
                if (ready == 0)
                    throw std::system_error(ETIMEDOUT, std::generic_category(),
                                            "channel send: the peer read nothing for " +
                                                std::to_string(send_patience_ms / 1000) + " s");
                continue;
            }
            if (errno == EPIPE || errno == ECONNRESET) return false;
            throw std::system_error(errno, std::generic_category(), "channel send");
        }
        done += static_cast<std::size_t>(n);
    }
    return true;
}

namespace {

// Reads exactly n bytes; returns how many were read before EOF.
std::size_t read_full(int fd, char* p, std::size_t n) {
    std::size_t done = 0;
    while (done < n) {
        ssize_t r = ::read(fd, p + done, n - done);
        if (r < 0) {
            if (errno == EINTR) continue;
            if (errno == ECONNRESET) return done;
            throw std::system_error(errno, std::generic_category(), "channel receive");
        }
        if (r == 0) return done;
        done += static_cast<std::size_t>(r);
    }
    return done;
}

}  // namespace

std::optional<Message> receive(int fd) {
    char header[header_size];
    std::size_t got = read_full(fd, header, header_size);
    if (got == 0) return std::nullopt;
    if (got < header_size) throw ProtocolError("the connection closed inside a frame header");
    std::uint32_t type = 0, n = 0;
    std::memcpy(&type, header, 4);
    std::memcpy(&n, header + 4, 4);
    check_length(type, n);
    std::string body(n, '\0');
    if (read_full(fd, body.data(), n) < n) throw ProtocolError("the connection closed inside a " + frame_name(type));
    return parse(type, body.data(), body.size());
}

std::optional<Message> FrameReader::next() {
    if (pending() < header_size) return std::nullopt;
    const char* p = buffer_.data() + offset_;
    std::uint32_t type = 0, n = 0;
    std::memcpy(&type, p, 4);
    std::memcpy(&n, p + 4, 4);
    check_length(type, n);
    if (pending() < header_size + n) return std::nullopt;
    Message m = parse(type, p + header_size, n);
    offset_ += header_size + n;
    if (offset_ == buffer_.size()) {
        buffer_.clear();
        offset_ = 0;
    }
    return m;
}

}  // namespace fedflow::channel
