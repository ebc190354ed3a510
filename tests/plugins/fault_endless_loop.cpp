// Injects: an endless busy loop, for [scheduler] task-timeout to end.
//   stage = "train" (default) or "load"   where it spins
//   ignore_sigterm = false (default)      true: SIGTERM is ignored first, so
//                                         only the SIGKILL after the grace
//                                         period can end the process
#include "fault.hpp"

#include <csignal>
#include <cstdint>

namespace {

[[noreturn]] void spin(const fedflow::Context& ctx) {
    if (ctx.param<bool>("ignore_sigterm", false)) std::signal(SIGTERM, SIG_IGN);
    // A volatile access is a side effect: the loop is not undefined
    // behaviour, and the compiler keeps it.
    volatile std::uint64_t turns = 0;
    for (;;) turns = turns + 1;
}

}  // namespace

class FaultEndlessLoop final : public fault::InStage<spin> {};
FEDFLOW_TASK(FaultEndlessLoop, "fault_endless_loop")
