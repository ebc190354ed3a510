// Injects: the worker stops itself with SIGSTOP, as a debugging aid left in
// a plugin or a stray `kill -STOP` would; nothing in the task continues it.
//   stage = "train" (default) or "load"   where it stops
//   times = 1 (default)                   how often it stops
// Once continued as often as it stopped, it does what a spared task does
// (param sleep, then {"ok": true}).
#include "fault.hpp"

#include <csignal>
#include <cstdint>

namespace {

void stop(const fedflow::Context& ctx) {
    for (std::int64_t i = 0; i < ctx.param<std::int64_t>("times", 1); ++i) std::raise(SIGSTOP);
}

}  // namespace

class FaultStop final : public fault::InStage<stop> {};
FEDFLOW_TASK(FaultStop, "fault_stop")
