#include "runner/receive_thread.hpp"

#include <cstdint>
#include <utility>

#include <unistd.h>

namespace fedflow {

ReceiveThread::ReceiveThread(ResultReceiver receiver, messages::Result announced, std::filesystem::path dir,
                             int done_fd, std::int64_t received_ns)
    : receiver_(std::move(receiver)),
      announced_(std::move(announced)),
      dir_(std::move(dir)),
      done_fd_(done_fd),
      received_ns_(received_ns),
      thread_([this] {
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
      }) {}

ReceiveThread::~ReceiveThread() {
    if (thread_.joinable()) thread_.join();
}

results::Written ReceiveThread::take() {
    if (thread_.joinable()) thread_.join();
    if (error_) std::rethrow_exception(error_);
    return std::move(written_);
}

}  // namespace fedflow
