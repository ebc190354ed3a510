// The fork server's packets: a Dict and descriptors per packet, EOF, and
// what a non-blocking socket says when nothing waits.
#include "common/fork_packet.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <stdexcept>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace fedflow;

namespace {

struct Pair {
    int fd[2];
    Pair() { REQUIRE(::socketpair(AF_UNIX, SOCK_SEQPACKET, 0, fd) == 0); }
    ~Pair() {
        if (fd[0] >= 0) ::close(fd[0]);
        if (fd[1] >= 0) ::close(fd[1]);
    }
};

ino_t inode(int fd) {
    struct stat st {};
    REQUIRE(::fstat(fd, &st) == 0);
    return st.st_ino;
}

}  // namespace

TEST_CASE("a packet carries a Dict and descriptors") {
    Pair p;
    int devnull = ::open("/dev/null", O_RDONLY);
    REQUIRE(devnull >= 0);
    Dict body;
    body["fork"] = Dict{{"workdir", std::string("/tmp/x")}, {"nofile", std::int64_t{1024}}};
    REQUIRE(fork_packet::send(p.fd[0], body, {devnull, p.fd[0]}));
    std::vector<int> fds;
    auto got = fork_packet::receive(p.fd[1], fds);
    REQUIRE(got.has_value());
    CHECK(*got == body);
    REQUIRE(fds.size() == 2);
    CHECK(inode(fds[0]) == inode(devnull));
    CHECK(inode(fds[1]) == inode(p.fd[0]));
    CHECK((::fcntl(fds[0], F_GETFD) & FD_CLOEXEC) != 0);  // never leaked into a fork's exec
    for (int f : fds) ::close(f);
    ::close(devnull);
}

TEST_CASE("packets keep their boundaries, and a large one arrives whole") {
    Pair p;
    Dict small{{"exited", std::int64_t{42}}, {"status", std::int64_t{9}}};
    Dict large{{"preload", Dict{{"params", std::string(100000, 'x')}}}};
    REQUIRE(fork_packet::send(p.fd[0], small));
    REQUIRE(fork_packet::send(p.fd[0], large));
    std::vector<int> fds;
    CHECK(*fork_packet::receive(p.fd[1], fds) == small);
    CHECK(*fork_packet::receive(p.fd[1], fds) == large);
    CHECK(fds.empty());
}

TEST_CASE("nothing waiting, and the peer gone") {
    Pair p;
    ::fcntl(p.fd[1], F_SETFL, O_NONBLOCK);
    std::vector<int> fds;
    bool would_block = false;
    CHECK_FALSE(fork_packet::receive(p.fd[1], fds, &would_block).has_value());
    CHECK(would_block);
    ::close(p.fd[0]);
    p.fd[0] = -1;
    CHECK_FALSE(fork_packet::receive(p.fd[1], fds, &would_block).has_value());
    CHECK_FALSE(would_block);
    CHECK_FALSE(fork_packet::send(p.fd[1], Dict{{"fork", Dict{}}}));
}

TEST_CASE("too many descriptors are refused") {
    Pair p;
    CHECK_THROWS_AS(fork_packet::send(p.fd[0], Dict{}, {0, 0, 0, 0, 0}), std::invalid_argument);
}

TEST_CASE("answers encoded ahead are the Dicts they stand for") {
    Pair p;
    const fork_packet::IntAnswer forked("forked");
    const fork_packet::IntAnswer exited("exited", "status");
    std::vector<int> fds;
    for (pid_t pid : {pid_t{1}, pid_t{4194304}, pid_t{123456}}) {
        REQUIRE(forked.send(p.fd[0], pid));
        CHECK(*fork_packet::receive(p.fd[1], fds) == Dict{{"forked", std::int64_t{pid}}});
        REQUIRE(exited.send(p.fd[0], pid, -7));
        CHECK(*fork_packet::receive(p.fd[1], fds) == Dict{{"exited", std::int64_t{pid}}, {"status", std::int64_t{-7}}});
    }
    CHECK(fds.empty());
}

namespace {

int devnull() {
    int f = ::open("/dev/null", O_RDONLY);
    REQUIRE(f >= 0);
    return f;
}

// Sends raw bytes (what no fedflow-host sends) with fds.
void send_raw(int fd, const std::string& bytes, const std::vector<int>& fds = {}) {
    iovec iov{const_cast<char*>(bytes.data()), bytes.size()};
    msghdr mh{};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 8)] = {};
    if (!fds.empty()) {
        mh.msg_control = control;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
        cmsghdr* c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
        std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    }
    REQUIRE(::sendmsg(fd, &mh, 0) == static_cast<ssize_t>(bytes.size()));
}

}  // namespace

TEST_CASE("a fork request arrives whole, with its descriptors, without a Dict") {
    Pair p;
    int null = devnull();
    std::string workdir = "/tmp/run/group/" + std::string(200, 'w');
    REQUIRE(fork_packet::send_fork(p.fd[0], workdir, 1024, "subreaper", {null, null, null, null}));
    fork_packet::ForkRequest r;
    std::array<int, 4> fds{};
    std::size_t n = 0;
    REQUIRE(fork_packet::receive_fork(p.fd[1], r, fds, n) == fork_packet::Received::request);
    CHECK(std::string(r.workdir) == workdir);
    CHECK(r.nofile == 1024);
    CHECK(std::string(r.contain) == "subreaper");
    REQUIRE(n == 4);
    for (std::size_t i = 0; i < n; ++i) {
        CHECK(inode(fds[i]) == inode(null));
        CHECK((::fcntl(fds[i], F_GETFD) & FD_CLOEXEC) != 0);
        ::close(fds[i]);
    }
    // The longest workdir fits; a shorter one after it leaves nothing behind.
    std::string longest(fork_packet::ForkRequest::max_workdir, 'x');
    longest[0] = '/';
    REQUIRE(fork_packet::send_fork(p.fd[0], longest, 0, "", {}));
    REQUIRE(fork_packet::send_fork(p.fd[0], "/a", 0, "", {}));
    REQUIRE(fork_packet::receive_fork(p.fd[1], r, fds, n) == fork_packet::Received::request);
    CHECK(std::string(r.workdir) == longest);
    REQUIRE(fork_packet::receive_fork(p.fd[1], r, fds, n) == fork_packet::Received::request);
    CHECK(std::string(r.workdir) == "/a");
    CHECK(std::string(r.contain).empty());
    CHECK(n == 0);
    ::close(null);
}

TEST_CASE("a fork request that does not fit is not sent") {
    Pair p;
    CHECK_THROWS_AS(fork_packet::send_fork(p.fd[0], std::string(fork_packet::ForkRequest::max_workdir + 1, 'x'), 0, "",
                                           {}),
                    std::invalid_argument);
    CHECK_THROWS_AS(fork_packet::send_fork(p.fd[0], "", 0, "", {}), std::invalid_argument);
    CHECK_THROWS_AS(fork_packet::send_fork(p.fd[0], "/a", 0, std::string(16, 'c'), {}), std::invalid_argument);
    CHECK_THROWS_AS(fork_packet::send_fork(p.fd[0], std::string("/a\0b", 4), 0, "", {}), std::invalid_argument);
}

TEST_CASE("what is no fork request is malformed, and its descriptors are closed") {
    Pair p;
    fork_packet::ForkRequest r;
    std::array<int, 4> fds{};
    std::size_t n = 0;
    auto header = [](std::uint32_t magic, const std::string& contain) {
        std::string h(32, '\0');
        std::memcpy(h.data(), &magic, 4);
        std::memcpy(h.data() + 16, contain.data(), std::min<std::size_t>(contain.size(), 16));
        return h;
    };
    const std::uint32_t magic = fork_packet::ForkRequest::magic;
    const std::string cases[] = {
        "FFV1 a Dict, say",                                                               // not a fork request
        header(magic, ""),                                                                // no workdir
        header(magic ^ 1, "") + "/tmp",                                                   // another magic
        header(magic, std::string(16, 'c')) + "/tmp",                                     // contain not terminated
        header(magic, "") + std::string("/a\0b", 4),                                      // a NUL in the workdir
        header(magic, "") + std::string(fork_packet::ForkRequest::max_workdir + 1, 'x'),  // too long
        header(magic, "") + std::string(fork_packet::ForkRequest::max_workdir + 100, 'x'),
    };
    for (const std::string& bytes : cases) {
        CAPTURE(bytes.size());
        int null = devnull();
        int copy = ::dup(null);
        send_raw(p.fd[0], bytes, {null, copy});
        CHECK(fork_packet::receive_fork(p.fd[1], r, fds, n) == fork_packet::Received::malformed);
        CHECK(n == 0);
        // The two received ones were closed: the next descriptor is the lowest free again.
        int probe = devnull();
        CHECK(probe <= copy + 1);
        ::close(probe);
        ::close(null);
        ::close(copy);
    }
    // More descriptors than a request holds: malformed, and none is leaked.
    int null = devnull();
    send_raw(p.fd[0], header(magic, "") + "/tmp", {null, null, null, null, null, null});
    CHECK(fork_packet::receive_fork(p.fd[1], r, fds, n) == fork_packet::Received::malformed);
    CHECK(n == 0);
    int probe = devnull();
    CHECK(probe == null + 1);
    ::close(probe);
    ::close(null);
    ::close(p.fd[0]);
    p.fd[0] = -1;
    CHECK(fork_packet::receive_fork(p.fd[1], r, fds, n) == fork_packet::Received::eof);
}

TEST_CASE("a spare request carries its flag, and a spare's answer its socket") {
    Pair p;
    fork_packet::ForkRequest r;
    std::array<int, 4> fds{};
    std::size_t n = 0;
    for (bool contained : {true, false}) {
        REQUIRE(fork_packet::send_spare_request(p.fd[0], contained));
        REQUIRE(fork_packet::receive_fork(p.fd[1], r, fds, n) == fork_packet::Received::spare);
        CHECK(r.nofile == (contained ? 1 : 0));
        CHECK(n == 0);
    }
    // With descriptors, or with more bytes, it is no spare request.
    std::string spare(32, '\0');
    const std::uint32_t magic = fork_packet::spare_magic;
    std::memcpy(spare.data(), &magic, 4);
    for (const std::string& bytes : {spare, spare + "/tmp"}) {
        int null = devnull();
        send_raw(p.fd[0], bytes, {null});
        CHECK(fork_packet::receive_fork(p.fd[1], r, fds, n) == fork_packet::Received::malformed);
        CHECK(n == 0);
        ::close(null);
    }
    // {"spare": pid} with the spare's socket; -1 (none forked) without.
    const fork_packet::IntAnswer answer("spare");
    int null = devnull();
    REQUIRE(answer.send(p.fd[0], 4321, 0, null));
    std::vector<int> got;
    CHECK(*fork_packet::receive(p.fd[1], got) == Dict{{"spare", std::int64_t{4321}}});
    REQUIRE(got.size() == 1);
    CHECK(inode(got[0]) == inode(null));
    ::close(got[0]);
    got.clear();
    REQUIRE(answer.send(p.fd[0], -1));
    CHECK(*fork_packet::receive(p.fd[1], got) == Dict{{"spare", std::int64_t{-1}}});
    CHECK(got.empty());
    ::close(null);
}
