// torch_cnn: the PyTorch demo's CNN (plugins/python/demo/fedavg_torch.py) as
// a C++ plugin on libtorch, for federated averaging on the handwritten
// digits (plugins/torch_cnn/demo.toml). One plugin, two roles, so that
// libtorch's heavy headers are compiled once:
//
//   role = "client"  load() keeps this client's non-IID shard (fedavg's
//                    split: config.hpp); train(device) starts from the
//                    server's last global model (none in round 1: the same
//                    seeded initial model in every client), trains `epochs`
//                    local epochs of SGD and returns its weights as
//                    tensors, with its sample count and last loss.
//   role = "server"  averages the clients' weights, weighted by their sample
//                    counts, evaluates the global model on the held-out test
//                    split, and returns it (tensors) with its accuracy; in
//                    round `rounds`, with central = true, it also trains the
//                    same model centrally on the union of the clients' data
//                    for central-epochs epochs: the yardstick.
//
// Weights travel as fedflow::Tensor (<fedflow/tensor.hpp>): float32 with
// their shape, named as torch names the parameters ("conv1.weight"), the
// same result a Python client of the PyTorch demo returns.
#include "../fedavg/config.hpp"

#include <fedflow/tensor.hpp>

#include <torch/nn/functional/loss.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/optim/sgd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

FEDFLOW_PARAMS(R"(
role = { type = "string", required = true, doc = "client or server" }
data = { type = "string", default = "data/digits.csv", doc = "digits.csv, relative to the plan's folder" }
clients = { type = "integer", default = 10 }
alpha = { type = "double", default = 0.5, doc = "Dirichlet concentration of the split" }
seed = { type = "integer", default = 42 }
test-fraction = { type = "double", default = 0.2 }
epochs = { type = "integer", default = 5, doc = "local epochs per round" }
lr = { type = "double", default = 0.05 }
batch-size = { type = "integer", default = 16 }
threads = { type = "integer", default = 1, doc = "torch threads per task" }
rounds = { type = "integer", default = 0, doc = "server: the last round, which trains the central model" }
central = { type = "bool", default = true }
central-epochs = { type = "integer", default = 0, doc = "0: epochs x rounds" }
)");

namespace {

struct CNNImpl : torch::nn::Module {
    CNNImpl()
        : conv1(register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 16, 3).padding(1)))),
          conv2(register_module("conv2", torch::nn::Conv2d(torch::nn::Conv2dOptions(16, 32, 3).padding(1)))),
          fc(register_module("fc", torch::nn::Linear(32 * 2 * 2, 10))) {}

    torch::Tensor forward(torch::Tensor x) {
        x = torch::max_pool2d(torch::relu(conv1->forward(x)), 2);  // 8x8 -> 4x4
        x = torch::max_pool2d(torch::relu(conv2->forward(x)), 2);  // 4x4 -> 2x2
        return fc->forward(x.flatten(1));
    }

    torch::nn::Conv2d conv1;
    torch::nn::Conv2d conv2;
    torch::nn::Linear fc;
};
TORCH_MODULE(CNN);

// Samples as tensors: x [n, 1, 8, 8] float32, y [n] int64.
struct Samples {
    torch::Tensor x, y;
};

Samples to_tensors(const fedavg::Dataset& d) {
    const auto n = static_cast<std::int64_t>(d.size());
    torch::Tensor x = torch::from_blob(const_cast<float*>(d.x.data()), {n, 1, 8, 8}, torch::kFloat32).clone();
    std::vector<std::int64_t> labels(d.y.begin(), d.y.end());
    torch::Tensor y = torch::from_blob(labels.data(), {n}, torch::kInt64).clone();
    return {x, y};
}

// Every client of round 1 starts from the same model.
CNN initial_model() {
    torch::manual_seed(0);
    return CNN();
}

double fit(CNN& model, const Samples& s, const torch::Device& device, int epochs, double lr, std::int64_t batch,
           std::uint64_t seed) {
    model->to(device);
    model->train();
    torch::optim::SGD opt(model->parameters(), torch::optim::SGDOptions(lr).momentum(0.9));
    torch::manual_seed(seed);
    torch::Tensor x = s.x.to(device), y = s.y.to(device);
    double loss = 0.0;
    for (int e = 0; e < epochs; ++e) {
        torch::Tensor order = torch::randperm(s.y.size(0), torch::kInt64).to(device);
        for (std::int64_t i = 0; i < order.size(0); i += batch) {
            torch::Tensor b = order.slice(0, i, std::min(i + batch, order.size(0)));
            opt.zero_grad();
            torch::Tensor l = torch::nn::functional::cross_entropy(model->forward(x.index_select(0, b)),
                                                                   y.index_select(0, b));
            l.backward();
            opt.step();
            loss = l.item<double>();
        }
    }
    return loss;
}

std::pair<double, double> evaluate(CNN& model, const Samples& s, const torch::Device& device) {
    torch::NoGradGuard no_grad;
    model->to(device);
    model->eval();
    torch::Tensor out = model->forward(s.x.to(device));
    torch::Tensor y = s.y.to(device);
    double loss = torch::nn::functional::cross_entropy(out, y).item<double>();
    double acc = out.argmax(1).eq(y).to(torch::kFloat64).mean().item<double>();
    return {acc, loss};
}

// The model's parameters as tensors in shared memory: name -> $tensor.
fedflow::Dict weights_of(fedflow::Context& ctx, CNN& model) {
    fedflow::Dict out;
    for (const auto& p : model->named_parameters()) {
        torch::Tensor t = p.value().detach().to(torch::kCPU, torch::kFloat32).contiguous();
        fedflow::Tensor w = fedflow::Tensor::zeros(ctx, fedflow::DType::float32, t.sizes().vec());
        std::memcpy(w.data_as<float>(), t.data_ptr<float>(), w.data().size());
        out[p.key()] = w.to_value();
    }
    return out;
}

// A tensor of `where` checked against the parameter it replaces, viewed
// without a copy (the inputs stay mapped while the task lives).
torch::Tensor tensor_of(const fedflow::Value& v, const std::string& where, const torch::Tensor& like) {
    const fedflow::Tensor t = fedflow::Tensor::from(v, where);
    if (t.dtype() != fedflow::DType::float32 || t.shape() != like.sizes().vec())
        throw std::runtime_error(where + " is " + fedflow::dtype_name(t.dtype()) + " of another shape than the CNN's " +
                                 "parameter (float32 " + std::to_string(like.numel()) + " elements)");
    return torch::from_blob(const_cast<float*>(t.data_as<float>()), like.sizes(), torch::kFloat32);
}

void set_weights(CNN& model, const fedflow::Dict& weights, const std::string& where) {
    torch::NoGradGuard no_grad;
    for (auto& p : model->named_parameters())
        p.value().copy_(tensor_of(weights.at(p.key()), where + "." + p.key(), p.value()));
}

}  // namespace

class TorchCNN final : public fedflow::Task {
public:
    void load(fedflow::Context& ctx) override {
        role_ = ctx.param<std::string>("role");
        if (role_ != "client" && role_ != "server")
            throw std::invalid_argument("param 'role' must be \"client\" or \"server\", not \"" + role_ + "\"");
        config_ = fedavg::Config::from(ctx);
        // Many tasks share few cores: one thread each trains faster in all.
        torch::set_num_threads(ctx.param<int>("threads"));
        fedavg::Partition part(config_);
        if (role_ == "client") {
            shard_ = fedavg::shard_of(ctx.task_id(), config_.clients);
            mine_ = to_tensors(part.all.subset(part.shards[shard_]));
        } else {
            test_ = to_tensors(part.all.subset(part.split.test));
            std::vector<std::size_t> all;
            for (const auto& s : part.shards) all.insert(all.end(), s.begin(), s.end());
            union_ = to_tensors(part.all.subset(all));
            rounds_ = ctx.param<int>("rounds");
            central_ = ctx.param<bool>("central");
            central_epochs_ = ctx.param<int>("central-epochs");
            if (central_epochs_ == 0) central_epochs_ = config_.epochs * rounds_;
        }
    }

    fedflow::Dict train(fedflow::Context& ctx, std::string_view device_name) override {
        const torch::Device device{std::string(device_name)};
        return role_ == "client" ? train_client(ctx, device) : train_server(ctx, device);
    }

private:
    fedflow::Dict train_client(fedflow::Context& ctx, const torch::Device& device) {
        CNN model = initial_model();
        const fedflow::Value* server = ctx.inputs().find("server");
        if (server != nullptr)
            set_weights(model,
                        server->as<fedflow::Dict>().at("0").as<fedflow::Dict>().at("weights").as<fedflow::Dict>(),
                        "inputs.server.0.weights");
        std::printf("client %s, round %u: %lld samples, from %s\n", ctx.task_id().c_str(), ctx.round(),
                    static_cast<long long>(mine_.y.size(0)),
                    server != nullptr ? "the server's model" : "the initial model");
        std::fflush(stdout);
        double loss = fit(model, mine_, device, config_.epochs, config_.lr,
                          static_cast<std::int64_t>(config_.batch_size),
                          fedavg::mix_seed(config_.seed, ctx.round(), shard_));
        fedflow::Dict out;
        out["weights"] = weights_of(ctx, model);
        out["samples"] = mine_.y.size(0);
        out["loss"] = loss;
        return out;
    }

    fedflow::Dict train_server(fedflow::Context& ctx, const torch::Device& device) {
        const fedflow::Dict& clients = ctx.inputs().at("clients").as<fedflow::Dict>();
        CNN model = initial_model();
        std::int64_t total = 0;
        for (const auto& [id, r] : clients) total += r.as<fedflow::Dict>().at("samples").as<std::int64_t>();
        if (total == 0) throw std::runtime_error("no client result has samples");
        {
            // The average in float64, weighted by sample count.
            torch::NoGradGuard no_grad;
            for (auto& p : model->named_parameters()) {
                torch::Tensor sum = torch::zeros(p.value().sizes(), torch::kFloat64);
                for (const auto& [id, r] : clients) {
                    const fedflow::Dict& res = r.as<fedflow::Dict>();
                    const double share = static_cast<double>(res.at("samples").as<std::int64_t>()) /
                                         static_cast<double>(total);
                    sum += tensor_of(res.at("weights").as<fedflow::Dict>().at(p.key()),
                                     "inputs.clients." + id + ".weights." + p.key(), p.value())
                               .to(torch::kFloat64) *
                           share;
                }
                p.value().copy_(sum.to(torch::kFloat32));
            }
        }
        auto [acc, loss] = evaluate(model, test_, device);
        std::printf("round %u: %zu clients, accuracy %.4f, loss %.4f\n", ctx.round(), clients.size(), acc, loss);
        fedflow::Dict out;
        out["accuracy"] = acc;
        out["loss"] = loss;
        out["clients"] = clients.size();
        out["samples"] = total;
        out["weights"] = weights_of(ctx, model);
        if (central_ && rounds_ > 0 && ctx.round() == static_cast<std::uint32_t>(rounds_)) {
            CNN c = initial_model();
            fit(c, union_, device, central_epochs_, config_.lr, static_cast<std::int64_t>(config_.batch_size),
                config_.seed);
            auto [c_acc, c_loss] = evaluate(c, test_, device);
            out["central_accuracy"] = c_acc;
            out["central_loss"] = c_loss;
            std::printf("central: accuracy %.4f (%d epochs)\n", c_acc, central_epochs_);
        }
        std::fflush(stdout);
        return out;
    }

    std::string role_;
    fedavg::Config config_;
    std::size_t shard_ = 0;
    Samples mine_, test_, union_;
    int rounds_ = 0, central_epochs_ = 0;
    bool central_ = true;
};
FEDFLOW_TASK(TorchCNN, "torch_cnn")
