// Injects: a real SIGSEGV in train (a store to a page mapped without access).
#include "fault.hpp"

#include <sys/mman.h>

#include <csignal>

class FaultSegfault final : public fedflow::Task {
public:
    void load(fedflow::Context&) override {}
    fedflow::Dict train(fedflow::Context& ctx, std::string_view) override {
        if (fault::armed(ctx)) {
            // Not through a null pointer: that is undefined behaviour, which
            // UBSan (build-asan) reports and exits on instead of faulting.
            // And with SIGSEGV's default action, which a worker without
            // sanitizers has anyway: ASan's handler would turn the fault into
            // a report and SIGABRT.
            void* page = mmap(nullptr, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            std::signal(SIGSEGV, SIG_DFL);
            // Volatile: GCC drops a store whose value nobody reads.
            volatile int* volatile target = page != MAP_FAILED ? static_cast<int*>(page) : nullptr;
            *target = 42;
        }
        return fault::spared(ctx);
    }
};
FEDFLOW_TASK(FaultSegfault, "fault_segfault")
