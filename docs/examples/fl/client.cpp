// A client of docs/examples/fl/plan.toml: takes its part of a labelled data
// set, split across the clients by fedflow::fl::split_dirichlet, and returns
// the share of each label among its samples as float32 "weights", with its
// sample count to weight them by.
#include <fedflow/fl.hpp>
#include <fedflow/task.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace fl = fedflow::fl;

class FlClient final : public fedflow::Task {
public:
    void load(fedflow::Context& ctx) override {
        const auto samples = ctx.param<std::size_t>("samples", 600);
        classes_ = ctx.param<int>("classes", 3);
        // The same labels in every task (here made up; a real client reads
        // them), so every task computes the same split and keeps its part.
        std::vector<int> labels(samples);
        for (std::size_t i = 0; i < samples; ++i) labels[i] = static_cast<int>(i % static_cast<std::size_t>(classes_));
        const fl::Split parts = fl::split_dirichlet(labels, ctx.param<std::size_t>("clients"),
                                                    ctx.param<double>("alpha"), ctx.param<std::uint64_t>("seed"),
                                                    /*min_size=*/1);
        for (std::size_t i : parts.at(std::stoul(ctx.task_id()))) mine_.push_back({i, labels[i]});
    }

    fedflow::Dict train(fedflow::Context& ctx, std::string_view) override {
        std::vector<float> share(static_cast<std::size_t>(classes_), 0.0f);
        fedflow::List indices;
        for (const auto& [i, label] : mine_) {
            share[static_cast<std::size_t>(label)] += 1.0f / static_cast<float>(mine_.size());
            indices.push_back(i);
        }
        fedflow::Dict out;
        out["weights"] = fl::to_bytes(ctx, share);  // float32 in shared memory
        out["samples"] = static_cast<std::int64_t>(mine_.size());
        out["indices"] = indices;
        return out;
    }

private:
    struct Sample {
        std::size_t index;
        int label;
    };
    int classes_ = 0;
    std::vector<Sample> mine_;
};
FEDFLOW_TASK(FlClient, "fl_example_client")
