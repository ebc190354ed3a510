// The server of docs/examples/fl/plan.toml: the clients' weights averaged,
// weighted by their sample counts (FedAvg's aggregation step).
#include <fedflow/fl.hpp>
#include <fedflow/task.hpp>

#include <cstdint>
#include <vector>

namespace fl = fedflow::fl;

class FlServer final : public fedflow::Task {
public:
    void load(fedflow::Context&) override {}

    fedflow::Dict train(fedflow::Context& ctx, std::string_view) override {
        std::vector<fl::WeightedBuffer> models;
        for (const auto& [id, result] : ctx.inputs().at("clients").as<fedflow::Dict>()) {
            const fedflow::Dict& r = result.as<fedflow::Dict>();
            models.emplace_back(r.at("weights").as<fedflow::Bytes>(),
                                static_cast<double>(r.at("samples").as<std::int64_t>()));
        }
        // Read from the clients' mapped byte files and written into
        // ctx.bytes, a chunk at a time: one model in memory, not N.
        const fedflow::Bytes average = fl::weighted_average(ctx, models);

        fedflow::Dict out;
        out["weights"] = average;
        fedflow::List readable;
        for (float v : fl::to_floats(average)) readable.push_back(v);
        out["average"] = readable;
        out["clients"] = static_cast<std::int64_t>(models.size());
        return out;
    }
};
FEDFLOW_TASK(FlServer, "fl_example_server")
