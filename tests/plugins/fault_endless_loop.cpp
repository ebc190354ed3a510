// Injects: an endless busy loop, for [scheduler] task-timeout to end.
//   stage = "train" (default) or "load"   where it spins
//   ignore_sigterm = false (default)      true: SIGTERM is ignored first, so
//                                         only the SIGKILL after the grace
//                                         period can end the process
#include "fault.hpp"

#include <csignal>
#include <cstdint>
#include <string>

namespace {

[[noreturn]] void spin(const fedflow::Context& ctx) {
    if (ctx.param<bool>("ignore_sigterm", false)) std::signal(SIGTERM, SIG_IGN);
    // A volatile access is a side effect: the loop is not undefined
    // behaviour, and the compiler keeps it.
    volatile std::uint64_t turns = 0;
    for (;;) turns = turns + 1;
}

bool spins_in(const fedflow::Context& ctx, const char* stage) {
    return fault::armed(ctx) && ctx.param<std::string>("stage", "train") == stage;
}

}  // namespace

class FaultEndlessLoop final : public fedflow::Task {
public:
    void load(fedflow::Context& ctx) override {
        if (spins_in(ctx, "load")) spin(ctx);
    }
    fedflow::Dict train(fedflow::Context& ctx, std::string_view) override {
        if (spins_in(ctx, "train")) spin(ctx);
        return fault::spared(ctx);
    }
};
FEDFLOW_TASK(FaultEndlessLoop, "fault_endless_loop")
