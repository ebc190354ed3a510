// The fork server's packets: a Dict and descriptors per packet, EOF, and
// what a non-blocking socket says when nothing waits.
#include "common/fork_packet.hpp"

#include <doctest/doctest.h>

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

TEST_CASE("the answer encoded ahead is {\"forked\": pid}") {
    Pair p;
    const fork_packet::ForkedAnswer answer;
    for (pid_t pid : {pid_t{1}, pid_t{4194304}, pid_t{123456}}) {
        REQUIRE(answer.send(p.fd[0], pid));
        std::vector<int> fds;
        CHECK(*fork_packet::receive(p.fd[1], fds) == Dict{{"forked", std::int64_t{pid}}});
    }
}
