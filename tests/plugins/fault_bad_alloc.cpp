// Injects: std::bad_alloc, which the host treats as out of memory and retries.
//   fail = true (default)   train throws every time: a retry does not cure it
//   train_ooms = N          train throws the first N times in its process
//   load_ooms = N           load throws the first N times for the task; the
//                           count survives the restarts (file load-attempts
//                           in the task's workdir)
//   linger = S              its process takes S seconds to end (in destroy),
//                           e.g. after its load ran out of memory
// A train that succeeds returns how often load and train ran in its process.
#include "fault.hpp"

#include <chrono>
#include <cstdint>
#include <fstream>
#include <new>
#include <thread>

class FaultBadAlloc final : public fedflow::Task {
public:
    ~FaultBadAlloc() override { std::this_thread::sleep_for(std::chrono::duration<double>(linger_)); }
    void load(fedflow::Context& ctx) override {
        linger_ = ctx.param<double>("linger", 0.0);
        ++loads_;
        std::int64_t before = 0;
        {
            std::ifstream in("load-attempts");
            in >> before;
        }
        std::ofstream("load-attempts", std::ios::trunc) << before + 1 << '\n';
        load_attempts_ = before + 1;
        if (before < ctx.param<std::int64_t>("load_ooms", 0)) throw std::bad_alloc();
    }
    fedflow::Dict train(fedflow::Context& ctx, std::string_view) override {
        ++attempts_;
        std::int64_t ooms = ctx.param<std::int64_t>("train_ooms", -1);
        if (ooms >= 0 ? attempts_ <= ooms : fault::armed(ctx)) throw std::bad_alloc();
        fedflow::Dict out = fault::spared(ctx);
        out["attempts"] = attempts_;
        out["loads_in_process"] = loads_;
        out["load_attempts"] = load_attempts_;
        return out;
    }

private:
    std::int64_t attempts_ = 0;
    std::int64_t loads_ = 0;
    std::int64_t load_attempts_ = 0;
    double linger_ = 0;
};
FEDFLOW_TASK(FaultBadAlloc, "fault_bad_alloc")
