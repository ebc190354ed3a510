// Injects: std::runtime_error("injected failure in train") thrown from train.
#include "fault.hpp"

#include <stdexcept>

class FaultThrowTrain final : public fedflow::Task {
public:
    void load(fedflow::Context&) override {}
    fedflow::Dict train(fedflow::Context& ctx, std::string_view) override {
        if (fault::armed(ctx)) throw std::runtime_error("injected failure in train");
        return fault::spared(ctx);
    }
};
FEDFLOW_TASK(FaultThrowTrain, "fault_throw_train")
