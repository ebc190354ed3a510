// Injects a large result: {"data": ctx.bytes(size)} filled with byte i % 251,
// and {"size": size}; param `size` (default 1 MiB).
#include <fedflow/task.hpp>

#include <cstdint>

class BigBytes final : public fedflow::Task {
public:
    void load(fedflow::Context&) override {}
    fedflow::Dict train(fedflow::Context& ctx, std::string_view) override {
        auto size = ctx.param<std::int64_t>("size", std::int64_t{1} << 20);
        fedflow::Bytes data = ctx.bytes(static_cast<std::size_t>(size));
        for (std::size_t i = 0; i < data.size(); ++i) data.data()[i] = static_cast<std::uint8_t>(i % 251);
        return fedflow::Dict{{"data", data}, {"size", size}};
    }
};
FEDFLOW_TASK(BigBytes, "big_bytes")
