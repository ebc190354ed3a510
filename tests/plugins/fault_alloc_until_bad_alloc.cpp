// Injects: real exhaustion of memory. The task allocates 64 MiB blocks and
// writes every byte of each, until operator new throws std::bad_alloc.
//   stage = "train" (default) or "load"   where it allocates
//   limit = 2 GiB (default)               first lowers the process's
//                                         RLIMIT_AS to this many bytes, so
//                                         that the process runs out of
//                                         address space long before the
//                                         machine runs out of RAM; 0 keeps
//                                         the limit it has
// As a safety net it stops after limit / 64 MiB + 64 blocks (1024 without a
// limit) and fails with "did not run out of memory". The blocks are freed as
// the exception leaves the stage, so a retry starts from scratch.
#include "fault.hpp"

#include <sys/resource.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

constexpr std::size_t block = std::size_t{64} << 20;

void exhaust(const fedflow::Context& ctx) {
    auto limit = ctx.param<std::int64_t>("limit", std::int64_t{2} << 30);
    if (limit > 0) {
        rlimit rl{};
        if (getrlimit(RLIMIT_AS, &rl) != 0) throw std::runtime_error("getrlimit(RLIMIT_AS) failed");
        rl.rlim_cur = static_cast<rlim_t>(limit);
        if (rl.rlim_max != RLIM_INFINITY && rl.rlim_cur > rl.rlim_max) rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_AS, &rl) != 0) throw std::runtime_error("setrlimit(RLIMIT_AS) failed");
    }
    std::size_t most = limit > 0 ? static_cast<std::size_t>(limit) / block + 64 : 1024;
    std::vector<std::unique_ptr<char[]>> held;
    held.reserve(most);
    for (std::size_t i = 0; i < most; ++i) {
        held.emplace_back(new char[block]);  // std::bad_alloc ends the loop
        std::memset(held.back().get(), 0x5a, block);
    }
    throw std::runtime_error("allocated " + std::to_string(most) + " blocks of 64 MiB and did not run out of memory");
}

}  // namespace

class FaultAllocUntilBadAlloc final : public fault::InStage<exhaust> {};
FEDFLOW_TASK(FaultAllocUntilBadAlloc, "fault_alloc_until_bad_alloc")
