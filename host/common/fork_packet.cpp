#include "common/fork_packet.hpp"

#include <fedflow/detail/wire.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>

#include <sys/socket.h>
#include <unistd.h>

namespace fedflow::fork_packet {

namespace {
constexpr std::size_t max_fds = 4;
// Control messages are small; params travel in the preload packet only.
constexpr std::size_t max_packet = 1 << 20;
}  // namespace

namespace {

bool send_bytes(int fd, const char* doc, std::size_t size, const std::vector<int>& fds) {
    if (size > max_packet) throw std::runtime_error("fork server packet too large");
    if (fds.size() > max_fds) throw std::invalid_argument("fork server packet: too many descriptors");
    iovec iov{const_cast<char*>(doc), size};
    msghdr mh{};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * max_fds)];
    if (!fds.empty()) {
        std::memset(control, 0, sizeof control);
        mh.msg_control = control;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
        cmsghdr* c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
        std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    }
    for (;;) {
        if (::sendmsg(fd, &mh, MSG_NOSIGNAL) >= 0) return true;
        if (errno == EINTR) continue;
        if (errno == EPIPE || errno == ECONNRESET) return false;
        throw std::system_error(errno, std::generic_category(), "fork server: send");
    }
}

}  // namespace

bool send(int fd, const Dict& body, const std::vector<int>& fds) {
    std::string doc = wire::encode(Value(body));
    return send_bytes(fd, doc.data(), doc.size(), fds);
}

ForkedAnswer::ForkedAnswer() {
    // The pid is a fixed-width integer in the encoding: the bytes in which
    // two encodings differ are where it goes.
    std::string a = wire::encode(Value(Dict{{"forked", std::int64_t{0}}}));
    std::string b = wire::encode(Value(Dict{{"forked", std::int64_t{-1}}}));
    auto first = static_cast<std::size_t>(std::mismatch(a.begin(), a.end(), b.begin()).first - a.begin());
    if (a.size() != b.size() || a.size() > doc_.size() || first + 8 > a.size() ||
        a.compare(first + 8, std::string::npos, b, first + 8) != 0)
        throw std::logic_error("fork_packet::ForkedAnswer: the pid is not 8 bytes of its packet");
    std::memcpy(doc_.data(), a.data(), a.size());
    size_ = a.size();
    pid_at_ = first;
}

bool ForkedAnswer::send(int fd, pid_t pid) const {
    std::array<char, 64> doc = doc_;
    auto value = static_cast<std::int64_t>(pid);
    std::memcpy(doc.data() + pid_at_, &value, sizeof value);
    return send_bytes(fd, doc.data(), size_, {});
}

std::optional<Dict> receive(int fd, std::vector<int>& fds, bool* would_block) {
    if (would_block != nullptr) *would_block = false;
    // The packet's size first (SOCK_SEQPACKET: MSG_TRUNC tells the whole
    // length), so that the buffer fits it.
    ssize_t size;
    char probe = 0;
    for (;;) {
        size = ::recv(fd, &probe, 1, MSG_PEEK | MSG_TRUNC);
        if (size >= 0 || errno != EINTR) break;
    }
    if (size < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if (would_block != nullptr) *would_block = true;
        return std::nullopt;
    }
    if (size < 0 && errno != ECONNRESET)
        throw std::system_error(errno, std::generic_category(), "fork server: receive");
    // Bytes values decode as views into the buffer: it lives as long as they do.
    auto buf = std::make_shared<std::string>(static_cast<std::size_t>(std::max<ssize_t>(size, 1)), '\0');
    iovec iov{buf->data(), buf->size()};
    msghdr mh{};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * max_fds)];
    mh.msg_control = control;
    mh.msg_controllen = sizeof control;
    ssize_t n;
    for (;;) {
        n = ::recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
        if (n >= 0) break;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (would_block != nullptr) *would_block = true;
            return std::nullopt;
        }
        if (errno == ECONNRESET) return std::nullopt;
        throw std::system_error(errno, std::generic_category(), "fork server: receive");
    }
    for (cmsghdr* c = CMSG_FIRSTHDR(&mh); c != nullptr; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (std::size_t i = 0; i < count; ++i) {
            int received = -1;
            std::memcpy(&received, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            fds.push_back(received);
        }
    }
    if (n == 0) return std::nullopt;  // SOCK_SEQPACKET: EOF (no packet is empty)
    if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) throw std::runtime_error("fork server: truncated packet");
    Value v = wire::decode(reinterpret_cast<const std::uint8_t*>(buf->data()), static_cast<std::size_t>(n), {}, buf);
    if (!v.is<Dict>()) throw std::runtime_error("fork server: a packet that is no dictionary");
    return std::move(v.as<Dict>());
}

}  // namespace fedflow::fork_packet
