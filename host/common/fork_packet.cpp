#include "common/fork_packet.hpp"

#include <fedflow/detail/wire.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <span>
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

bool send_bytes(int fd, const char* doc, std::size_t size, std::span<const int> fds) {
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

// One recvmsg into iov, its descriptors (close-on-exec) each passed to
// take(fd). Returns its size (0: the peer is gone), or -1 with errno EAGAIN
// when a non-blocking socket holds nothing; flags: the packet's msg_flags.
// Throws std::system_error on any other error.
template <class Take>
ssize_t receive_with_fds(int fd, iovec* iov, std::size_t iovlen, int& flags, Take take) {
    msghdr mh{};
    mh.msg_iov = iov;
    mh.msg_iovlen = iovlen;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * max_fds)];
    mh.msg_control = control;
    mh.msg_controllen = sizeof control;
    ssize_t n;
    for (;;) {
        n = ::recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
        if (n >= 0) break;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return -1;
        if (errno == ECONNRESET) return 0;
        throw std::system_error(errno, std::generic_category(), "fork server: receive");
    }
    for (cmsghdr* c = CMSG_FIRSTHDR(&mh); c != nullptr; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (std::size_t i = 0; i < count; ++i) {
            int received = -1;
            std::memcpy(&received, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            take(received);
        }
    }
    flags = mh.msg_flags;
    return n;
}
}  // namespace

bool send(int fd, const Dict& body, const std::vector<int>& fds) {
    std::string doc = wire::encode(Value(body));
    return send_bytes(fd, doc.data(), doc.size(), fds);
}

IntAnswer::IntAnswer(const char* key, const char* second_key) {
    // The values are fixed-width integers in the encoding: the bytes in which
    // two encodings differ are where each goes.
    auto encode = [&](std::int64_t a, std::int64_t b) {
        Dict d{{key, a}};
        if (second_key != nullptr) d[second_key] = b;
        return wire::encode(Value(d));
    };
    const std::string zero = encode(0, 0);
    values_ = second_key != nullptr ? 2 : 1;
    for (std::size_t i = 0; i < values_; ++i) {
        const std::string other = i == 0 ? encode(-1, 0) : encode(0, -1);
        auto first = static_cast<std::size_t>(std::mismatch(zero.begin(), zero.end(), other.begin()).first -
                                              zero.begin());
        if (zero.size() != other.size() || zero.size() > doc_.size() || first + 8 > zero.size() ||
            zero.compare(first + 8, std::string::npos, other, first + 8) != 0)
            throw std::logic_error("fork_packet::IntAnswer: a value is not 8 bytes of its packet");
        at_[i] = first;
    }
    std::memcpy(doc_.data(), zero.data(), zero.size());
    size_ = zero.size();
}

bool IntAnswer::send(int fd, std::int64_t value, std::int64_t second, int pass_fd) const {
    std::array<char, 96> doc = doc_;
    std::memcpy(doc.data() + at_[0], &value, sizeof value);
    if (values_ > 1) std::memcpy(doc.data() + at_[1], &second, sizeof second);
    return send_bytes(fd, doc.data(), size_, pass_fd >= 0 ? std::span<const int>(&pass_fd, 1) : std::span<const int>());
}

namespace {
// On the wire: magic, nofile, contain (fixed), then the workdir's bytes.
struct ForkHeader {
    std::uint32_t magic;
    std::uint32_t reserved;
    std::int64_t nofile;
    char contain[ForkRequest::max_contain + 1];
};
}  // namespace

bool send_fork(int fd, const std::string& workdir, long nofile, const std::string& contain,
               const std::vector<int>& fds) {
    if (workdir.empty() || workdir.size() > ForkRequest::max_workdir || workdir.find('\0') != std::string::npos)
        throw std::invalid_argument("fork request: the workdir is empty or longer than PATH_MAX: " + workdir);
    if (contain.size() > ForkRequest::max_contain || contain.find('\0') != std::string::npos)
        throw std::invalid_argument("fork request: --contain '" + contain + "' does not fit");
    ForkHeader h{};
    h.magic = ForkRequest::magic;
    h.nofile = nofile;
    std::memcpy(h.contain, contain.data(), contain.size());
    std::string doc(reinterpret_cast<const char*>(&h), sizeof h);
    doc += workdir;
    return send_bytes(fd, doc.data(), doc.size(), fds);
}

bool send_spare_request(int fd, bool contained) {
    ForkHeader h{};
    h.magic = spare_magic;
    h.nofile = contained ? 1 : 0;
    return send_bytes(fd, reinterpret_cast<const char*>(&h), sizeof h, {});
}

Received receive_fork(int fd, ForkRequest& into, std::array<int, 4>& fds, std::size_t& nfds) {
    nfds = 0;
    ForkHeader h{};
    // One byte more than a workdir may hold: a longer one is seen as such.
    iovec iov[2] = {{&h, sizeof h}, {into.workdir, ForkRequest::max_workdir + 1}};
    int flags = 0;
    ssize_t n = receive_with_fds(fd, iov, 2, flags, [&](int received) {
        if (nfds < fds.size()) fds[nfds++] = received;
        else ::close(received);
    });
    if (n < 0) throw std::system_error(errno, std::generic_category(), "fork server: receive");
    if (n == 0) return Received::eof;  // SOCK_SEQPACKET: EOF (no packet is empty)
    if (static_cast<std::size_t>(n) == sizeof h && h.magic == spare_magic && nfds == 0 &&
        !(flags & (MSG_TRUNC | MSG_CTRUNC))) {
        into.nofile = h.nofile != 0 ? 1 : 0;
        return Received::spare;
    }
    auto workdir_size = static_cast<std::size_t>(n) - std::min(static_cast<std::size_t>(n), sizeof h);
    if (static_cast<std::size_t>(n) <= sizeof h || h.magic != ForkRequest::magic ||
        workdir_size > ForkRequest::max_workdir || (flags & (MSG_TRUNC | MSG_CTRUNC)) ||
        std::memchr(h.contain, '\0', sizeof h.contain) == nullptr ||
        std::memchr(into.workdir, '\0', workdir_size) != nullptr) {
        for (std::size_t i = 0; i < nfds; ++i) ::close(fds[i]);
        nfds = 0;
        return Received::malformed;
    }
    into.workdir[workdir_size] = '\0';
    into.nofile = h.nofile;
    std::memcpy(into.contain, h.contain, sizeof h.contain);
    return Received::request;
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
    int flags = 0;
    ssize_t n = receive_with_fds(fd, &iov, 1, flags, [&](int received) { fds.push_back(received); });
    if (n < 0) {
        if (would_block != nullptr) *would_block = true;
        return std::nullopt;
    }
    if (n == 0) return std::nullopt;  // SOCK_SEQPACKET: EOF (no packet is empty)
    if (flags & (MSG_TRUNC | MSG_CTRUNC)) throw std::runtime_error("fork server: truncated packet");
    Value v = wire::decode(reinterpret_cast<const std::uint8_t*>(buf->data()), static_cast<std::size_t>(n), {}, buf);
    if (!v.is<Dict>()) throw std::runtime_error("fork server: a packet that is no dictionary");
    return std::move(v.as<Dict>());
}

}  // namespace fedflow::fork_packet
