// Injects: a slow train that sleeps param `seconds` (default 1). Returns
// {"slept": s, "start": t0, "end": t1} with wall-clock times in seconds since
// the epoch, so a test can see which trains overlapped.
#include <fedflow/task.hpp>

#include <chrono>
#include <thread>

namespace {
double now() { return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count(); }
}  // namespace

class FaultSleep final : public fedflow::Task {
public:
    void load(fedflow::Context&) override {}
    fedflow::Dict train(fedflow::Context& ctx, std::string_view) override {
        double s = ctx.param<double>("seconds", 1.0);
        double start = now();
        std::this_thread::sleep_for(std::chrono::duration<double>(s));
        return fedflow::Dict{{"slept", s}, {"start", start}, {"end", now()}};
    }
};
FEDFLOW_TASK(FaultSleep, "fault_sleep")
