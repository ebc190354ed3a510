// Injects: a real SIGSEGV in train (a store to a page mapped without access).
#include "fault.hpp"

#include <csignal>

#include <sys/mman.h>

class FaultSegfault final : public fedflow::Task {
public:
    void load(fedflow::Context&) override {}
    fedflow::Dict train(fedflow::Context& ctx, std::string_view) override {
        if (fault::armed(ctx)) {
            // Not through a null pointer: that is undefined behaviour, which
            // UBSan (build-asan) reports and exits on instead of faulting.
            // The worker's crash handler (which replaces ASan's) writes the
            // backtrace into stderr.log and ends the process by SIGSEGV.
            // Param default_action: fault with SIGSEGV's default action
            // instead, for a test without the worker (under ASan, its
            // handler would turn the fault into a report and SIGABRT).
            void* page = mmap(nullptr, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (ctx.param<bool>("default_action", false)) std::signal(SIGSEGV, SIG_DFL);
            // Volatile: GCC drops a store whose value nobody reads.
            volatile int* volatile target = page != MAP_FAILED ? static_cast<int*>(page) : nullptr;
            *target = 42;
        }
        return fault::spared(ctx);
    }
};
FEDFLOW_TASK(FaultSegfault, "fault_segfault")
