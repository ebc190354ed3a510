// Injects: a huge result, {"data": <Bytes of param `size` bytes>, "size":
// size}, size 2 GiB by default.
//   inline = false (default)  the Bytes come from ctx.bytes(): shared memory
//                             that the host maps
//           true              ordinary memory (Bytes(n)): the encoded result
//                             itself is that large
// Byte i holds i % 251 at every MiB (i = 0, 1 MiB, 2 MiB, ...) and at the
// last byte; the rest stays zero (filling 2 GiB would cost more than the
// test needs).
#include "fault.hpp"

#include <cstdint>

class FaultHugeResult final : public fedflow::Task {
public:
    void load(fedflow::Context&) override {}
    fedflow::Dict train(fedflow::Context& ctx, std::string_view) override {
        if (!fault::armed(ctx)) return fault::spared(ctx);
        auto size = static_cast<std::size_t>(ctx.param<std::int64_t>("size", std::int64_t{2} << 30));
        fedflow::Bytes data = ctx.param<bool>("inline", false) ? fedflow::Bytes(size) : ctx.bytes(size);
        for (std::size_t i = 0; i < size; i += std::size_t{1} << 20)
            data.data()[i] = static_cast<std::uint8_t>(i % 251);
        if (size > 0) data.data()[size - 1] = static_cast<std::uint8_t>((size - 1) % 251);
        return fedflow::Dict{{"data", data}, {"size", static_cast<std::int64_t>(size)}};
    }
};
FEDFLOW_TASK(FaultHugeResult, "fault_huge_result")
