// The tasks bench/aggregate runs (one source, two plugins: AGGREGATE_SERVER
// picks the server).
//
// bench_aggregate_client  params: size (bytes, a multiple of 4), samples
//   train returns {"weights": ctx.bytes(size) filled with float32 values,
//   "samples": samples}: a client's model.
// bench_aggregate_server  inputs: clients
//   train averages every client's weights, weighted by its samples, with
//   fedflow::fl::weighted_average(ctx, ...) straight from the mapped inputs
//   into ctx.bytes, and returns {"weights", "clients", "train_start_ns"}
//   (CLOCK_MONOTONIC when train began, comparable with the host's events).
#include <fedflow/fl.hpp>
#include <fedflow/task.hpp>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <vector>

#ifndef AGGREGATE_SERVER

class AggregateClient final : public fedflow::Task {
public:
    void load(fedflow::Context&) override {}
    fedflow::Dict train(fedflow::Context& ctx, std::string_view) override {
        const auto size = static_cast<std::size_t>(ctx.param<std::int64_t>("size", std::int64_t{8} << 20));
        fedflow::Bytes w = ctx.bytes(size);
        const float value = static_cast<float>(std::stoi(ctx.task_id()) % 10);
        for (std::size_t i = 0; i + 4 <= size; i += 4) std::memcpy(w.data() + i, &value, 4);
        return fedflow::Dict{{"weights", w}, {"samples", ctx.param<std::int64_t>("samples", 1)}};
    }
};
FEDFLOW_TASK(AggregateClient, "bench_aggregate_client")

#else

namespace {

std::int64_t steady_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

}  // namespace

class AggregateServer final : public fedflow::Task {
public:
    void load(fedflow::Context&) override {}
    fedflow::Dict train(fedflow::Context& ctx, std::string_view) override {
        const std::int64_t start = steady_ns();
        std::vector<fedflow::fl::WeightedBuffer> models;
        for (const auto& [id, r] : ctx.inputs().at("clients").as<fedflow::Dict>())
            models.emplace_back(r.as<fedflow::Dict>().at("weights").as<fedflow::Bytes>(),
                                static_cast<double>(r.as<fedflow::Dict>().at("samples").as<std::int64_t>()));
        fedflow::Bytes avg = fedflow::fl::weighted_average(ctx, models);
        return fedflow::Dict{{"weights", avg},
                             {"clients", static_cast<std::int64_t>(models.size())},
                             {"train_start_ns", start},
                             {"average_ms", static_cast<double>(steady_ns() - start) / 1e6}};
    }
};
FEDFLOW_TASK(AggregateServer, "bench_aggregate_server")

#endif
