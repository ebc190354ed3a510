// Shared by the fault-injection plugins: each injects its fault only when the
// task's param `fail` is true (the default), so that a test can put tasks that
// fail and tasks that finish into one group. A spared task sleeps `sleep`
// seconds (default 0) in train and returns {"ok": true}.
#ifndef FEDFLOW_TESTS_FAULT_HPP
#define FEDFLOW_TESTS_FAULT_HPP

#include <fedflow/task.hpp>

#include <chrono>
#include <string>
#include <string_view>
#include <thread>

namespace fault {

inline bool armed(const fedflow::Context& ctx) { return ctx.param<bool>("fail", true); }

inline fedflow::Dict spared(const fedflow::Context& ctx) {
    double s = ctx.param<double>("sleep", 0.0);
    if (s > 0) std::this_thread::sleep_for(std::chrono::duration<double>(s));
    return fedflow::Dict{{"ok", true}};
}

// A task that injects Fault(ctx) in the stage named by its param `stage`:
// "train" (the default) or "load". A spared task, or the other stage, does
// what spared() does.
template <void (*Fault)(const fedflow::Context&)>
class InStage : public fedflow::Task {
public:
    void load(fedflow::Context& ctx) override {
        if (armed_in(ctx, "load")) Fault(ctx);
    }
    fedflow::Dict train(fedflow::Context& ctx, std::string_view) override {
        if (armed_in(ctx, "train")) Fault(ctx);
        return spared(ctx);
    }

private:
    static bool armed_in(const fedflow::Context& ctx, const char* stage) {
        return armed(ctx) && ctx.param<std::string>("stage", "train") == stage;
    }
};

}  // namespace fault

#endif
