// bench_result_bytes: the task bench/result-size runs. train returns one
// large Bytes value made with ctx.bytes(), so what bench/result-size times
// is how long a big result takes to reach the host.
//
// params: size  bytes to return (integer, default 256 MiB)
//         fill  write every byte before returning (bool, default true): the
//               pages are then really there, as with real model weights
// result: data            the bytes (0x5a each when filled)
//         size            their number
//         fill_ms         time spent filling them, inside train
//         returned_at_ns  CLOCK_MONOTONIC when train returns (steady_clock on
//                         Linux), comparable with a script's time.monotonic_ns()
#include <fedflow/task.hpp>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace {

std::int64_t steady_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

}  // namespace

class ResultBytes final : public fedflow::Task {
public:
    void load(fedflow::Context& ctx) override {
        size_ = ctx.param<std::int64_t>("size", std::int64_t{256} << 20);
        fill_ = ctx.param<bool>("fill", true);
        if (size_ < 0) throw fedflow::TypeError("param 'size' must not be negative");
    }

    fedflow::Dict train(fedflow::Context& ctx, std::string_view) override {
        const auto n = static_cast<std::size_t>(size_);
        fedflow::Bytes data = ctx.bytes(n);
        const std::int64_t t0 = steady_ns();
        if (fill_ && n != 0) std::memset(data.data(), 0x5a, n);
        const std::int64_t t1 = steady_ns();

        fedflow::Dict out;
        out["data"] = data;
        out["size"] = size_;
        out["fill_ms"] = static_cast<double>(t1 - t0) / 1e6;
        out["returned_at_ns"] = steady_ns();
        return out;
    }

private:
    std::int64_t size_ = 0;
    bool fill_ = true;
};
FEDFLOW_TASK(ResultBytes, "bench_result_bytes")
