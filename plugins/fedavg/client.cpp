// fedavg_client: one federated-learning client. load() reads the digits
// data and keeps this task's Dirichlet shard; train() runs local SGD on it,
// starting from the server's weights when the plan hands them over
// (inputs = ["server"] in rounds 2..), else from zeros, and returns the new
// weights with the sample count that weights them in the average.
#include "config.hpp"

#include <fedflow/task.hpp>

#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace {

// inputs["server"] is group -> task id -> result; a bare result is accepted
// too. Nothing (round 1, or no server group in the plan) means zeros.
const fedflow::Bytes* server_weights(const fedflow::Dict& inputs) {
    const fedflow::Value* server = inputs.find("server");
    if (server == nullptr || !server->is<fedflow::Dict>()) return nullptr;
    const auto& tasks = server->as<fedflow::Dict>();
    if (const fedflow::Value* w = tasks.find("weights"); w != nullptr && w->is<fedflow::Bytes>()) {
        return &w->as<fedflow::Bytes>();
    }
    for (const auto& [id, result] : tasks) {
        if (!result.is<fedflow::Dict>()) continue;
        const fedflow::Value* w = result.as<fedflow::Dict>().find("weights");
        if (w != nullptr && w->is<fedflow::Bytes>()) return &w->as<fedflow::Bytes>();
    }
    return nullptr;
}

std::size_t class_count(const fedavg::Dataset& d) {
    std::vector<bool> seen(static_cast<std::size_t>(fedavg::kDigitsClasses));
    for (int y : d.y) seen[static_cast<std::size_t>(y)] = true;
    std::size_t n = 0;
    for (bool s : seen) n += s ? 1 : 0;
    return n;
}

}  // namespace

class FedAvgClient final : public fedflow::Task {
public:
    void load(fedflow::Context& ctx) override {
        config_ = fedavg::Config::from(ctx);
        shard_ = ctx.params().contains("shard") ? ctx.param<std::size_t>("shard")
                                                : fedavg::shard_of(ctx.task_id(), config_.clients);
        if (shard_ >= config_.clients) {
            throw std::invalid_argument("param 'shard' must be below clients (" + std::to_string(config_.clients) +
                                        ")");
        }
        fedavg::Partition part(config_);
        data_ = part.all.subset(part.shards[shard_]);
        std::printf("client %zu: %zu training samples of %zu classes (alpha %g, seed %llu)\n", shard_, data_.size(),
                    class_count(data_), config_.alpha, static_cast<unsigned long long>(config_.seed));
        std::fflush(stdout);
    }

    fedflow::Dict train(fedflow::Context& ctx, std::string_view device) override {
        fedavg::Model model = fedavg::digits_model();
        const fedflow::Bytes* start = server_weights(ctx.inputs());
        if (start != nullptr) {
            model = fedavg::Model::unpack(start->data(), start->size(), model.features, model.classes);
        }
        fedavg::SgdOptions opt;
        opt.epochs = config_.epochs;
        opt.lr = config_.lr;
        opt.batch_size = config_.batch_size;
        opt.seed = fedavg::mix_seed(config_.seed, shard_ + 1, ctx.round());
        fedavg::train_sgd(model, data_, opt);
        const fedavg::Metrics m = fedavg::evaluate(model, data_);

        fedflow::Bytes weights = ctx.bytes(model.byte_size());
        model.pack(weights.data(), weights.size());
        std::printf("client %zu on %.*s: round %u from %s, %d epochs, loss %.4f, train accuracy %.4f\n", shard_,
                    static_cast<int>(device.size()), device.data(), ctx.round(),
                    start != nullptr ? "server weights" : "zeros", config_.epochs, m.loss, m.accuracy);
        std::fflush(stdout);

        fedflow::Dict out;
        out["weights"] = weights;
        out["samples"] = static_cast<std::int64_t>(data_.size());
        out["loss"] = m.loss;
        out["accuracy"] = m.accuracy;
        return out;
    }

private:
    fedavg::Config config_;
    std::size_t shard_ = 0;
    fedavg::Dataset data_;
};

FEDFLOW_TASK(FedAvgClient, "fedavg_client")
