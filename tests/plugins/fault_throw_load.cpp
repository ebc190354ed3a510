// Injects: std::runtime_error("injected failure in load") thrown from load.
#include "fault.hpp"

#include <stdexcept>

class FaultThrowLoad final : public fedflow::Task {
public:
    void load(fedflow::Context& ctx) override {
        if (fault::armed(ctx)) throw std::runtime_error("injected failure in load");
    }
    fedflow::Dict train(fedflow::Context& ctx, std::string_view) override { return fault::spared(ctx); }
};
FEDFLOW_TASK(FaultThrowLoad, "fault_throw_load")
