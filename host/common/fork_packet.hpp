// fork_packet.hpp: the messages between fedflow-host and a fork server
// (fedflow-worker --fork-server, host/worker/fork_server.hpp), on a
// SOCK_SEQPACKET socket: one packet is one Dict (FFV1, <fedflow/detail/wire.hpp>),
// except a fork request (below), and may carry descriptors (SCM_RIGHTS).
//
//   host -> server   {"preload": {plugin_path, plugin_name, modules, params, plan_dir}}   first, once
//                    a fork request (ForkRequest) + fds [channel, stdout.log, stderr.log
//                                                        [, the task cgroup's cgroup.procs]]
//                    a spare request (send_spare_request)
//   server -> host   {"ready": {}} | {"failed": message}                                    after preload
//                    {"forked": pid} | {"refused": message[, "errno": N]}                     after each fork
//                    {"spare": pid} + fd [the spare's socket]                    after a spare request, if forked
//   host -> spare    a fork request, as to the server                                       once
//                    {"exited": pid, "status": wait status}                                  any time
//                    {"stopped": pid, "signal": N}                                           any time
#pragma once

#include <fedflow/value.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <sys/types.h>

namespace fedflow::fork_packet {

// Sends one packet with fds (at most 4). False when the peer is gone.
// Throws std::system_error on any other error.
bool send(int fd, const Dict& body, const std::vector<int>& fds = {});

// Receives one packet; its descriptors (close-on-exec) are appended to fds.
// nullopt when the peer is gone (EOF), or, on a non-blocking socket, when
// nothing waits (then would_block is set). Throws std::system_error, and
// std::runtime_error on a packet that is no Dict.
std::optional<Dict> receive(int fd, std::vector<int>& fds, bool* would_block = nullptr);

// The server's pages are copy-on-write while a child it forked lives, and
// every page it writes is a page fault then (tens of microseconds each on
// some VMs, and one copy of the page). So what the server reads and sends
// for each fork takes no heap: a fork request has a fixed layout, read into
// memory the children do not share, and the answers are encoded ahead.

// A fork request: "FFRK", the task's RLIMIT_NOFILE (0: keep), its
// --contain ("", "pidns", "subreaper"), and its workdir, the packet's rest.
struct ForkRequest {
    static constexpr std::uint32_t magic = 0x4b524646;  // "FFRK"
    static constexpr std::size_t max_contain = 15;
    static constexpr std::size_t max_workdir = 4095;  // PATH_MAX less its NUL
    std::int64_t nofile = 0;
    char contain[max_contain + 1] = {};  // NUL-terminated
    char workdir[max_workdir + 1] = {};  // NUL-terminated
};

// Sends a fork request with fds [channel, stdout.log, stderr.log[,
// cgroup.procs]]. False when the peer is gone; throws std::invalid_argument
// when a field does not fit (a workdir longer than PATH_MAX), and
// std::system_error on any other error.
bool send_fork(int fd, const std::string& workdir, long nofile, const std::string& contain,
               const std::vector<int>& fds);

// A spare is a child the server forks ahead, after a task's fork, so that
// the next task does not wait for one: it waits for its fork request on a
// SOCK_SEQPACKET socket of its own, whose other end the server hands the
// host with the spare's pid. The host sends the next task's fork request
// straight to the spare (its pid known already, no answer to wait for),
// then asks the server for the next spare. A spare request is a
// ForkRequest header of magic "FFSP" and no workdir; its nofile is 1 when
// the spare's task will have a cgroup of its own (as the fourth fd of a
// fork request says), else 0.
inline constexpr std::uint32_t spare_magic = 0x50534646;  // "FFSP"
// False when the peer is gone; throws std::system_error on any other error.
bool send_spare_request(int fd, bool contained);

enum class Received { request, spare, eof, malformed };
// Receives a fork request into `into` and its descriptors (close-on-exec)
// into fds, their number in nfds, or a spare request (its flag in
// into.nofile); allocates nothing. malformed: the packet is neither (its
// descriptors are closed). Throws std::system_error.
Received receive_fork(int fd, ForkRequest& into, std::array<int, 4>& fds, std::size_t& nfds);

// A Dict of one or two integers, encoded once ahead: send() patches the
// values into a copy on its stack ({"forked": pid}, {"exited": pid,
// "status": wait status}, {"stopped": pid, "signal": N}).
class IntAnswer {
public:
    explicit IntAnswer(const char* key, const char* second_key = nullptr);
    // pass_fd (>= 0) goes with it (SCM_RIGHTS). False when the peer is
    // gone; throws std::system_error on any other error.
    bool send(int fd, std::int64_t value, std::int64_t second = 0, int pass_fd = -1) const;

private:
    std::array<char, 96> doc_{};
    std::size_t size_ = 0;
    std::array<std::size_t, 2> at_{};  // where each value's 8 bytes are in doc_
    std::size_t values_ = 0;
};

}  // namespace fedflow::fork_packet
