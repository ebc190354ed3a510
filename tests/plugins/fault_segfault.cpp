// Injects: a real SIGSEGV in train (a store through a null pointer).
#include "fault.hpp"

class FaultSegfault final : public fedflow::Task {
public:
    void load(fedflow::Context&) override {}
    fedflow::Dict train(fedflow::Context& ctx, std::string_view) override {
        if (fault::armed(ctx)) {
            // Both the pointer and the store are volatile: GCC drops a plain
            // store whose value nobody reads, and could prove a plain null
            // pointer null and turn the store into a trap (SIGILL).
            volatile int* volatile target = nullptr;
            *target = 42;
        }
        return fault::spared(ctx);
    }
};
FEDFLOW_TASK(FaultSegfault, "fault_segfault")
