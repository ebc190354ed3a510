#include "runner/receive_thread.hpp"

#include <cstdint>
#include <system_error>
#include <utility>

#include <unistd.h>

namespace fedflow {

ReceiveThread::ReceiveThread(ResultReceiver receiver, messages::Result announced, std::filesystem::path dir,
                             int done_fd, std::int64_t received_ns)
    : receiver_(std::move(receiver)),
      announced_(std::move(announced)),
      dir_(std::move(dir)),
      done_fd_(done_fd),
      received_ns_(received_ns) {
    // A small result costs less to receive than a thread costs to start.
    if (is_small(announced_)) {
        run();
        return;
    }
    try {
        thread_ = std::thread([this] { run(); });
        threaded_ = true;
    } catch (const std::system_error&) {
        // No thread to be had (a thread counts against ulimit -u, which a
        // run may have reached): the result is received here and now, on
        // the loop, as it was before threads.
        run();
    }
}

void ReceiveThread::run() noexcept {
    try {
        written_ = receiver_.receive(announced_, dir_);
    } catch (...) {
        error_ = std::current_exception();
    }
    done_.store(true, std::memory_order_release);
    const std::uint64_t one = 1;
    // An eventfd's counter cannot overflow here; a failed write only
    // delays the loop until its next wake-up.
    [[maybe_unused]] ssize_t n = ::write(done_fd_, &one, sizeof one);
}

ReceiveThread::~ReceiveThread() {
    if (thread_.joinable()) thread_.join();
}

results::Written ReceiveThread::take() {
    if (thread_.joinable()) thread_.join();
    if (error_) std::rethrow_exception(error_);
    return std::move(written_);
}

}  // namespace fedflow
