// Injects: close(3), the worker's control channel, in the stage of param
// `stage` ("train", the default, or "load"), then sleeps param `linger`
// seconds (default 0; negative: until killed) before it returns as a spared
// task does.
#include "fault.hpp"

#include <chrono>
#include <thread>

#include <unistd.h>

namespace {

void close_channel(const fedflow::Context& ctx) {
    ::close(3);
    double linger = ctx.param<double>("linger", 0.0);
    if (linger < 0) {
        for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(linger));
}

}  // namespace

class FaultCloseChannel final : public fault::InStage<close_channel> {};
FEDFLOW_TASK(FaultCloseChannel, "fault_close_channel")
