// fork_packet.hpp: the messages between fedflow-host and a fork server
// (fedflow-worker --fork-server, host/worker/fork_server.hpp), on a
// SOCK_SEQPACKET socket: one packet is one Dict (FFV1, <fedflow/detail/wire.hpp>),
// and may carry descriptors (SCM_RIGHTS).
//
//   host -> server   {"preload": {plugin_path, plugin_name, modules, params, plan_dir}}   first, once
//                    {"fork": {workdir, nofile, contain}} + fds [channel, stdout.log, stderr.log
//                                                               [, the task cgroup's cgroup.procs]]
//   server -> host   {"ready": {}} | {"failed": message}                                    after preload
//                    {"forked": pid} | {"refused": message[, "errno": N]}                     after each fork
//                    {"exited": pid, "status": wait status}                                  any time
//                    {"stopped": pid, "signal": N}                                           any time
#pragma once

#include <fedflow/value.hpp>

#include <array>
#include <cstddef>
#include <optional>
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

// {"forked": pid}, encoded once ahead, for the server's answer right after
// fork(): the server's pages are copy-on-write from then on, and every page
// it writes before the answer is a page fault (tens of microseconds each on
// some VMs) that the host, waiting for the answer, pays too. send() writes
// nothing but a copy on its own stack.
class ForkedAnswer {
public:
    ForkedAnswer();
    // Sends {"forked": pid}. False when the peer is gone; throws
    // std::system_error on any other error.
    bool send(int fd, pid_t pid) const;

private:
    std::array<char, 64> doc_{};
    std::size_t size_ = 0;
    std::size_t pid_at_ = 0;  // where the pid's 8 bytes are in doc_
};

}  // namespace fedflow::fork_packet
