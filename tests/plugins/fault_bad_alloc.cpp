// Injects: std::bad_alloc thrown from train, every time (out of memory that a
// retry does not cure).
#include "fault.hpp"

#include <new>

class FaultBadAlloc final : public fedflow::Task {
public:
    void load(fedflow::Context&) override {}
    fedflow::Dict train(fedflow::Context& ctx, std::string_view) override {
        ++attempts_;
        if (fault::armed(ctx)) throw std::bad_alloc();
        fedflow::Dict out = fault::spared(ctx);
        out["attempts"] = attempts_;
        return out;
    }

private:
    int attempts_ = 0;
};
FEDFLOW_TASK(FaultBadAlloc, "fault_bad_alloc")
