// Injects: std::exit(3) in train, a process that ends without a result.
#include "fault.hpp"

#include <cstdlib>

class FaultExit final : public fedflow::Task {
public:
    void load(fedflow::Context&) override {}
    fedflow::Dict train(fedflow::Context& ctx, std::string_view) override {
        if (fault::armed(ctx)) std::exit(3);
        return fault::spared(ctx);
    }
};
FEDFLOW_TASK(FaultExit, "fault_exit")
