// receive_thread.hpp: one task's result received off the host's event loop.
//
// Checking, decoding and writing a result (ResultReceiver::receive) costs
// time in proportion to the result: a million keys take seconds. On the
// loop's thread that long, no timeout, signal or other task's message would
// be served. A ReceiveThread does it on a thread of its own and tells the
// loop when it is done.
//
// Threading: the thread touches only what the ReceiveThread holds (its own
// copy of the task's ResultReceiver, the announced message, the task's
// folder) and the files it writes there; the loop's thread touches none of
// these until done() is true (an acquire load that pairs with the thread's
// release store after its last write), and the Task, the journal and the
// rest of the runner are never seen by the thread. Completion is also told
// by writing 1 to the eventfd done_fd (the loop polls it next to the
// signalfd), so the loop wakes without polling. The signals the host reads
// through its signalfd are blocked before any ReceiveThread starts, and a
// thread inherits that mask, so no signal is delivered to it. Workers are
// started with posix_spawn, which is safe while this thread runs.
// A small result (result_receiver.hpp: is_small), and any result where no
// thread can be started (a thread counts against ulimit -u, which a run may
// have reached), is received by the constructor on the caller's thread
// instead, and done() is true when it returns.
// The destructor joins: a ReceiveThread outliving its run waits for its
// write to end rather than leave a thread behind.
#pragma once

#include "common/messages.hpp"
#include "runner/result_receiver.hpp"
#include "runner/results.hpp"

#include <atomic>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <thread>

namespace fedflow {

class ReceiveThread {
public:
    // Starts receiver.receive(announced, dir) on a thread; received_ns: when
    // the loop got the result message (for the journal's host_ms).
    ReceiveThread(ResultReceiver receiver, messages::Result announced, std::filesystem::path dir, int done_fd,
                  std::int64_t received_ns);
    ~ReceiveThread();
    ReceiveThread(const ReceiveThread&) = delete;
    ReceiveThread& operator=(const ReceiveThread&) = delete;

    // The thread has ended (what it wrote is complete).
    bool done() const noexcept { return done_.load(std::memory_order_acquire); }
    // The result is received on a thread of its own (not by the constructor).
    bool threaded() const noexcept { return threaded_; }
    // Once done(): what receive() returned; rethrows what it threw.
    results::Written take();
    // Once done(): the receiver as the thread left it (segments_removed(),
    // discard()).
    ResultReceiver& receiver() noexcept { return receiver_; }
    const messages::Result& announced() const noexcept { return announced_; }
    std::int64_t received_ns() const noexcept { return received_ns_; }

private:
    void run() noexcept;  // receive, then tell done_ and done_fd_

    ResultReceiver receiver_;
    messages::Result announced_;
    std::filesystem::path dir_;
    int done_fd_;
    std::int64_t received_ns_;
    results::Written written_;
    std::exception_ptr error_;
    std::atomic<bool> done_{false};
    bool threaded_ = false;
    std::thread thread_;  // started in the constructor's body, once everything above is set
};

}  // namespace fedflow
