// config.hpp: the params that fedavg_client and fedavg_server share, and
// the data both compute from them. The two groups of a plan must give the
// same data, clients, alpha, seed and test-fraction, or the server's test
// set would overlap a client's shard; the server checks the sample counts.
//
//   data           path of digits.csv; relative to the plan file's folder
//   clients        number of shards (client task ids "0".."clients-1")
//   alpha          Dirichlet concentration: small = very non-IID
//   seed           of every split and of the SGD sample order
//   test-fraction  share of every class held out for the server's test
//   epochs, lr, batch-size   local SGD (the server's central model too)
#ifndef FEDAVG_CONFIG_HPP
#define FEDAVG_CONFIG_HPP

#include "digits.hpp"
#include "softmax.hpp"

#include <fedflow/fl.hpp>
#include <fedflow/task.hpp>

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

namespace fedavg {

// Fewer samples than this on a client make a Dirichlet draw be redrawn.
inline constexpr std::size_t kMinShard = 10;

struct Config {
    std::string data;  // absolute
    std::size_t clients = 10;
    double alpha = 0.5;
    std::uint64_t seed = 42;
    double test_fraction = 0.2;
    int epochs = 20;
    double lr = 0.5;
    std::size_t batch_size = 16;

    static Config from(const fedflow::Context& ctx) {
        Config c;
        std::filesystem::path data = ctx.param<std::string>("data", "data/digits.csv");
        if (data.is_relative()) data = std::filesystem::path(ctx.plan_dir()) / data;
        c.data = data.lexically_normal().string();
        c.clients = ctx.param<std::size_t>("clients", c.clients);
        c.alpha = ctx.param<double>("alpha", c.alpha);
        c.seed = ctx.param<std::uint64_t>("seed", c.seed);
        c.test_fraction = ctx.param<double>("test-fraction", c.test_fraction);
        c.epochs = ctx.param<int>("epochs", c.epochs);
        c.lr = ctx.param<double>("lr", c.lr);
        c.batch_size = ctx.param<std::size_t>("batch-size", c.batch_size);
        if (c.clients == 0) throw std::invalid_argument("param 'clients' must be at least 1");
        if (!(c.alpha > 0.0)) throw std::invalid_argument("param 'alpha' must be positive");
        if (!(c.test_fraction > 0.0 && c.test_fraction < 1.0)) {
            throw std::invalid_argument("param 'test-fraction' must be between 0 and 1");
        }
        if (c.epochs < 0) throw std::invalid_argument("param 'epochs' must not be negative");
        if (!(c.lr > 0.0)) throw std::invalid_argument("param 'lr' must be positive");
        if (c.batch_size == 0) throw std::invalid_argument("param 'batch-size' must be at least 1");
        return c;
    }
};

// The data set split as every task of the plan sees it.
struct Partition {
    Dataset all;
    fedflow::fl::TrainTest split;                  // indices into all
    std::vector<std::vector<std::size_t>> shards;  // indices into all, one per client

    explicit Partition(const Config& c) : all(load_digits_csv(c.data)) {
        split = fedflow::fl::train_test_split(all.y, c.test_fraction, c.seed);
        std::vector<int> train_labels;
        train_labels.reserve(split.train.size());
        for (std::size_t i : split.train) train_labels.push_back(all.y[i]);
        shards = fedflow::fl::split_dirichlet(train_labels, c.clients, c.alpha, c.seed, kMinShard);
        for (auto& shard : shards) {
            for (std::size_t& i : shard) i = split.train[i];
        }
    }
};

inline Model digits_model() { return Model(kDigitsFeatures, static_cast<std::size_t>(kDigitsClasses)); }

// Client ids are shard numbers: "0".."clients-1".
inline std::size_t shard_of(const std::string& task_id, std::size_t clients) {
    std::size_t shard = 0;
    auto [end, ec] = std::from_chars(task_id.data(), task_id.data() + task_id.size(), shard);
    if (ec != std::errc() || end != task_id.data() + task_id.size() || shard >= clients) {
        throw std::invalid_argument("task id '" + task_id + "' is not a shard number 0.." +
                                    std::to_string(clients - 1) +
                                    " (set param 'shard' or use tasks = " + std::to_string(clients) + ")");
    }
    return shard;
}

// A different SGD order for every client and round, all from one seed.
inline std::uint64_t mix_seed(std::uint64_t seed, std::uint64_t a, std::uint64_t b) {
    std::uint64_t z = seed ^ (a * 0x9E3779B97F4A7C15ull) ^ (b * 0xC2B2AE3D27D4EB4Full);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;  // splitmix64 finalizer
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

}  // namespace fedavg

#endif  // FEDAVG_CONFIG_HPP
