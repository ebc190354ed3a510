// Injects what the keep-loaded tests need (test_keep_loaded.py), and tells
// what its process did: each train returns {value, round, pid, loads,
// trains, loaded_round}, loads and trains counted in this process (a kept
// worker loads once and trains every round). value is round_math's client
// value: the last server's value (0 without one) + ctx.round(). params:
//   hold_mb (0):      RAM that load allocates and touches, held until exit
//   gpu_mb (0):       GPU memory declared in each train (simulated GPUs),
//                     held after it until the next train or exit
//   crash_round (0):  abort() in the train of that round ...
//   crash_task (""):  ... of this task only (empty: every task)
//   sleep_round (0):  sleep sleep_ms in the train of that round ...
//   sleep_task (""):  ... of this task only (empty: every task)
//   oom_round (0):    train runs out of memory once in that round (the
//                     retry in the same process succeeds)
#include <fedflow/task.hpp>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include <unistd.h>

namespace {
int loads = 0, trains = 0;
std::uint32_t oom_done_round = 0;
}  // namespace

class KeepProbe final : public fedflow::Task {
public:
    void load(fedflow::Context& ctx) override {
        ++loads;
        loaded_round_ = ctx.round();
        held_.assign(static_cast<std::size_t>(ctx.param<std::int64_t>("hold_mb", 0)) << 20, 1);
    }
    fedflow::Dict train(fedflow::Context& ctx, std::string_view) override {
        const std::int64_t round = ctx.round();
        if (round == ctx.param<std::int64_t>("oom_round", 0) && oom_done_round != ctx.round()) {
            oom_done_round = ctx.round();
            throw std::bad_alloc();
        }
        if (round == ctx.param<std::int64_t>("crash_round", 0)) {
            const std::string task = ctx.param<std::string>("crash_task", "");
            if (task.empty() || task == ctx.task_id()) std::abort();
        }
        const std::string sleeper = ctx.param<std::string>("sleep_task", "");
        if (round == ctx.param<std::int64_t>("sleep_round", 0) && (sleeper.empty() || sleeper == ctx.task_id()))
            std::this_thread::sleep_for(std::chrono::milliseconds(ctx.param<std::int64_t>("sleep_ms", 0)));
        if (std::int64_t gpu_mb = ctx.param<std::int64_t>("gpu_mb", 0); gpu_mb > 0)
            ctx.declare_gpu_memory(static_cast<std::uint64_t>(gpu_mb) << 20);
        ++trains;
        std::int64_t value = round;
        if (const fedflow::Value* server = ctx.inputs().find("server"))
            value += server->as<fedflow::Dict>().at("0").as<fedflow::Dict>().at("value").as<std::int64_t>();
        return {{"value", value},
                {"round", round},
                {"pid", static_cast<std::int64_t>(::getpid())},
                {"loads", loads},
                {"trains", trains},
                {"loaded_round", std::int64_t{loaded_round_}},
                {"held", static_cast<std::int64_t>(held_.size())}};
    }

private:
    std::vector<char> held_;
    std::uint32_t loaded_round_ = 0;
};
FEDFLOW_TASK(KeepProbe, "keep_probe")
