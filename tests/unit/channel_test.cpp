// The control channel: frames over a socket, whole or in pieces, and
// what a broken peer looks like.
#include "common/channel.hpp"

#include <doctest/doctest.h>

#include <cstring>
#include <stdexcept>

#include <sys/socket.h>
#include <unistd.h>

using namespace fedflow;
namespace ch = fedflow::channel;

namespace {

struct Pair {
    int fd[2];
    Pair() { REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, fd) == 0); }
    ~Pair() {
        ::close(fd[0]);
        if (fd[1] >= 0) ::close(fd[1]);
    }
};

}  // namespace

TEST_CASE("send and receive") {
    Pair p;
    REQUIRE(ch::send(p.fd[0], ch::Type::train, Dict{{"device", "cuda:1"}}));
    REQUIRE(ch::send(p.fd[0], ch::Type::exit));
    auto a = ch::receive(p.fd[1]);
    REQUIRE(a);
    CHECK(a->type == ch::Type::train);
    CHECK(a->body.at("device").as<std::string>() == "cuda:1");
    auto b = ch::receive(p.fd[1]);
    REQUIRE(b);
    CHECK(b->type == ch::Type::exit);
    CHECK(b->body.empty());
    ::close(p.fd[0]);
    p.fd[0] = ::dup(p.fd[1]);  // keep the destructor simple
    ::shutdown(p.fd[1], SHUT_RDWR);
}

TEST_CASE("end of stream before a frame is not an error") {
    Pair p;
    ::close(p.fd[1]);
    p.fd[1] = -1;
    CHECK_FALSE(ch::receive(p.fd[0]));
}

TEST_CASE("a frame cut short is an error") {
    Pair p;
    std::string f = ch::frame(ch::Type::loaded, Dict{{"ms", 5}});
    REQUIRE(::write(p.fd[1], f.data(), f.size() - 3) > 0);
    ::close(p.fd[1]);
    p.fd[1] = -1;
    CHECK_THROWS_AS(ch::receive(p.fd[0]), std::runtime_error);
}

TEST_CASE("sending to a closed peer reports false, no SIGPIPE") {
    Pair p;
    ::close(p.fd[1]);
    p.fd[1] = -1;
    CHECK_FALSE(ch::send(p.fd[0], ch::Type::load));
}

TEST_CASE("FrameReader takes bytes in any pieces") {
    std::string stream = ch::frame(ch::Type::ready, Dict{{"plugin", "echo"}}) +
                         ch::frame(ch::Type::loaded, Dict{{"ms", 7}});
    ch::FrameReader r;
    std::vector<ch::Message> got;
    for (char c : stream) {
        r.feed(&c, 1);
        while (auto m = r.next()) got.push_back(std::move(*m));
    }
    REQUIRE(got.size() == 2);
    CHECK(got[0].type == ch::Type::ready);
    CHECK(got[1].body.at("ms").as<std::int64_t>() == 7);
    CHECK(r.pending() == 0);
}

TEST_CASE("FrameReader refuses oversized and malformed frames") {
    ch::FrameReader r;
    std::uint32_t header[2] = {12, ch::max_frame_body + 1};
    r.feed(reinterpret_cast<const char*>(header), sizeof header);
    CHECK_THROWS_AS(r.next(), std::runtime_error);

    ch::FrameReader garbage;
    std::uint32_t h2[2] = {12, 4};
    garbage.feed(reinterpret_cast<const char*>(h2), sizeof h2);
    garbage.feed("abcd", 4);
    CHECK_THROWS(garbage.next());
}
