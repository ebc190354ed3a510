// Injects: std::abort() in train (SIGABRT).
#include "fault.hpp"

#include <cstdlib>

class FaultAbort final : public fedflow::Task {
public:
    void load(fedflow::Context&) override {}
    fedflow::Dict train(fedflow::Context& ctx, std::string_view) override {
        if (fault::armed(ctx)) std::abort();
        return fault::spared(ctx);
    }
};
FEDFLOW_TASK(FaultAbort, "fault_abort")
