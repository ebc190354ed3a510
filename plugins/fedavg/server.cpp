// fedavg_server: the FedAvg aggregator. train() averages the weights of the
// clients' results (inputs["clients"]: task id -> result), weighted by their
// sample counts, evaluates the average on the held-out test split, and, as
// the yardstick, trains the same model centrally on the union of those
// clients' training data.
//
// Extra params: central (bool, default true) and central-epochs (default
// epochs) for the centrally trained model.
#include "config.hpp"

#include <fedflow/task.hpp>

#include <cstdint>
#include <cstdio>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

class FedAvgServer final : public fedflow::Task {
public:
    void load(fedflow::Context& ctx) override {
        config_ = fedavg::Config::from(ctx);
        central_ = ctx.param<bool>("central", true);
        central_epochs_ = ctx.param<int>("central-epochs", config_.epochs);
        if (central_epochs_ < 0) throw std::invalid_argument("param 'central-epochs' must not be negative");
        part_.emplace(config_);
        test_ = part_->all.subset(part_->split.test);
        std::printf("server: %zu test samples, %zu clients expected\n", test_.size(), config_.clients);
        std::fflush(stdout);
    }

    fedflow::Dict train(fedflow::Context& ctx, std::string_view device) override {
        const fedflow::Value* group = ctx.inputs().find("clients");
        if (group == nullptr) {
            std::string have;
            for (const auto& [name, v] : ctx.inputs()) have += (have.empty() ? "" : ", ") + name;
            throw std::runtime_error(
                "no input group 'clients' (set inputs = [\"clients\"] on the server group; inputs: " +
                (have.empty() ? std::string("none") : have) + ")");
        }

        std::vector<fedflow::fl::WeightedBuffer> models;
        std::vector<std::size_t> union_indices;
        std::vector<bool> seen(config_.clients);
        std::int64_t samples = 0;
        for (const auto& [id, value] : group->as<fedflow::Dict>()) {
            const fedflow::Dict* result = value.is<fedflow::Dict>() ? &value.as<fedflow::Dict>() : nullptr;
            const fedflow::Value* w = result != nullptr ? result->find("weights") : nullptr;
            const fedflow::Value* n = result != nullptr ? result->find("samples") : nullptr;
            if (w == nullptr || n == nullptr || !w->is<fedflow::Bytes>() || !n->is<std::int64_t>()) {
                ctx.log("client " + id + ": no weights and samples in its result; left out",
                        fedflow::LogLevel::warning);
                continue;
            }
            const std::size_t shard = fedavg::shard_of(id, config_.clients);
            if (seen[shard]) throw std::runtime_error("two client results for shard " + std::to_string(shard));
            seen[shard] = true;
            const auto& expected = part_->shards[shard];
            if (n->as<std::int64_t>() != static_cast<std::int64_t>(expected.size())) {
                throw std::runtime_error("client " + id + " trained on " + std::to_string(n->as<std::int64_t>()) +
                                         " samples, but this server's split gives it " +
                                         std::to_string(expected.size()) +
                                         ": give both groups the same data, clients, alpha, seed and test-fraction");
            }
            const fedflow::Bytes& bytes = w->as<fedflow::Bytes>();
            models.emplace_back(bytes, static_cast<double>(n->as<std::int64_t>()));
            union_indices.insert(union_indices.end(), expected.begin(), expected.end());
            samples += n->as<std::int64_t>();
        }
        if (models.empty()) throw std::runtime_error("no client result with weights to average");

        fedavg::Model global = fedavg::digits_model();
        std::vector<float> avg = fedflow::fl::weighted_average(models);
        if (avg.size() != global.params.size()) {
            throw std::runtime_error("client weights have " + std::to_string(avg.size()) + " values, expected " +
                                     std::to_string(global.params.size()));
        }
        global.params = std::move(avg);
        const fedavg::Metrics fed = fedavg::evaluate(global, test_);

        fedflow::Dict out;
        out["accuracy"] = fed.accuracy;
        out["loss"] = fed.loss;
        if (central_) {
            fedavg::Model central = fedavg::digits_model();
            fedavg::SgdOptions opt;
            opt.epochs = central_epochs_;
            opt.lr = config_.lr;
            opt.batch_size = config_.batch_size;
            opt.seed = fedavg::mix_seed(config_.seed, 0, 0);  // the same yardstick in every round
            fedavg::train_sgd(central, part_->all.subset(union_indices), opt);
            const fedavg::Metrics c = fedavg::evaluate(central, test_);
            out["central_accuracy"] = c.accuracy;
            out["central_loss"] = c.loss;
            std::printf("server on %.*s: round %u, %zu clients, %lld samples: federated accuracy %.4f (loss %.4f), "
                        "central accuracy %.4f (loss %.4f) on %zu test samples\n",
                        static_cast<int>(device.size()), device.data(), ctx.round(), models.size(),
                        static_cast<long long>(samples), fed.accuracy, fed.loss, c.accuracy, c.loss, test_.size());
        } else {
            std::printf("server on %.*s: round %u, %zu clients, %lld samples: federated accuracy %.4f (loss %.4f) "
                        "on %zu test samples\n",
                        static_cast<int>(device.size()), device.data(), ctx.round(), models.size(),
                        static_cast<long long>(samples), fed.accuracy, fed.loss, test_.size());
        }
        std::fflush(stdout);

        fedflow::Bytes weights = ctx.bytes(global.byte_size());
        global.pack(weights.data(), weights.size());
        out["weights"] = weights;
        out["clients"] = static_cast<std::int64_t>(models.size());
        out["samples"] = samples;
        return out;
    }

private:
    fedavg::Config config_;
    bool central_ = true;
    int central_epochs_ = 0;
    std::optional<fedavg::Partition> part_;
    fedavg::Dataset test_;
};

FEDFLOW_TASK(FedAvgServer, "fedavg_server")
