// digits.hpp: the handwritten digits data set (scikit-learn's digits.csv:
// 1797 rows of 64 pixel values 0..16 and a label 0..9), a deterministic
// train/test split, and the Dirichlet non-IID split over clients.
//
// Standard C++17 only. Every function that draws random numbers takes a seed
// and uses std::mt19937_64, so the same seed gives the same split in every
// process: each client task computes the whole split and keeps its shard,
// and the server computes the same split to find the test set.
#ifndef FEDAVG_DIGITS_HPP
#define FEDAVG_DIGITS_HPP

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace fedavg {

inline constexpr std::size_t kDigitsFeatures = 64;
inline constexpr int kDigitsClasses = 10;
inline constexpr std::size_t kDigitsRows = 1797;

// Samples as rows: x holds size() * features floats, y one label per row.
struct Dataset {
    std::size_t features = 0;
    std::vector<float> x;
    std::vector<int> y;

    std::size_t size() const noexcept { return y.size(); }
    const float* row(std::size_t i) const noexcept { return x.data() + i * features; }

    // The rows at indices, in that order.
    Dataset subset(const std::vector<std::size_t>& indices) const {
        Dataset out;
        out.features = features;
        out.x.reserve(indices.size() * features);
        out.y.reserve(indices.size());
        for (std::size_t i : indices) {
            if (i >= size()) throw std::out_of_range("fedavg::Dataset::subset: index out of range");
            out.x.insert(out.x.end(), row(i), row(i) + features);
            out.y.push_back(y[i]);
        }
        return out;
    }
};

// Reads digits.csv: every line 64 integers 0..16 and a label 0..9. Pixels are
// scaled to [0, 1]. Throws std::runtime_error naming the file and line.
inline Dataset load_digits_csv(const std::string& path) {
    std::ifstream in(path);
    if (!in) {
        throw std::runtime_error(path + ": cannot open the digits data (run scripts/fetch-digits)");
    }
    Dataset d;
    d.features = kDigitsFeatures;
    d.x.reserve(kDigitsRows * kDigitsFeatures);
    d.y.reserve(kDigitsRows);
    std::string line;
    std::size_t lineno = 0;
    while (std::getline(in, line)) {
        ++lineno;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.empty()) continue;
        auto fail = [&](const std::string& why) {
            return std::runtime_error(path + ":" + std::to_string(lineno) + ": " + why);
        };
        std::size_t column = 0;
        const char* p = line.data();
        const char* end = line.data() + line.size();
        while (true) {
            int v = 0;
            auto [next, ec] = std::from_chars(p, end, v);
            if (ec != std::errc() || next == p) {
                throw fail("column " + std::to_string(column + 1) + " is not an integer");
            }
            if (column < kDigitsFeatures) {
                if (v < 0 || v > 16) throw fail("pixel " + std::to_string(v) + " is outside 0..16");
                d.x.push_back(static_cast<float>(v) / 16.0f);
            } else if (column == kDigitsFeatures) {
                if (v < 0 || v >= kDigitsClasses) throw fail("label " + std::to_string(v) + " is outside 0..9");
                d.y.push_back(v);
            } else {
                throw fail("more than " + std::to_string(kDigitsFeatures + 1) + " columns");
            }
            ++column;
            p = next;
            if (p == end) break;
            if (*p != ',') throw fail("expected ',' after column " + std::to_string(column));
            ++p;
        }
        if (column != kDigitsFeatures + 1) {
            throw fail(std::to_string(column) + " columns, expected " + std::to_string(kDigitsFeatures + 1));
        }
    }
    if (in.bad()) throw std::runtime_error(path + ": read error");
    if (d.size() == 0) throw std::runtime_error(path + ": no rows");
    return d;
}

// The indices of each class, in increasing order.
inline std::vector<std::vector<std::size_t>> indices_by_class(const std::vector<int>& labels, int classes) {
    std::vector<std::vector<std::size_t>> by(static_cast<std::size_t>(classes));
    for (std::size_t i = 0; i < labels.size(); ++i) {
        if (labels[i] < 0 || labels[i] >= classes) throw std::out_of_range("fedavg: label outside 0..classes-1");
        by[static_cast<std::size_t>(labels[i])].push_back(i);
    }
    return by;
}

struct TrainTestSplit {
    std::vector<std::size_t> train;  // increasing
    std::vector<std::size_t> test;   // increasing
};

// Stratified: round(test_fraction * count) samples of every class go to the
// test set, picked by a shuffle seeded with seed.
inline TrainTestSplit train_test_split(const std::vector<int>& labels, int classes, double test_fraction,
                                       std::uint64_t seed) {
    if (!(test_fraction >= 0.0 && test_fraction < 1.0)) {
        throw std::invalid_argument("test-fraction must be in [0, 1)");
    }
    std::mt19937_64 rng(seed);
    TrainTestSplit s;
    for (auto& idx : indices_by_class(labels, classes)) {
        std::shuffle(idx.begin(), idx.end(), rng);
        auto n_test = static_cast<std::size_t>(std::llround(test_fraction * static_cast<double>(idx.size())));
        s.test.insert(s.test.end(), idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(n_test));
        s.train.insert(s.train.end(), idx.begin() + static_cast<std::ptrdiff_t>(n_test), idx.end());
    }
    std::sort(s.train.begin(), s.train.end());
    std::sort(s.test.begin(), s.test.end());
    return s;
}

// Non-IID split of the samples with these labels over `clients` shards: for
// every class, client shares drawn from Dirichlet(alpha, ..., alpha) (as
// normalized Gamma(alpha, 1) draws) cut the shuffled samples of that class.
// Small alpha: each client sees few classes; large alpha: close to IID.
//
// Every index 0..labels.size()-1 lands in exactly one shard (each shard is
// sorted). A draw that leaves a shard with fewer than min_samples samples is
// redrawn (the next draw of the same generator, so still deterministic);
// after max_draws draws it throws std::runtime_error.
inline std::vector<std::vector<std::size_t>> dirichlet_split(const std::vector<int>& labels, int classes,
                                                             std::size_t clients, double alpha,
                                                             std::uint64_t seed, std::size_t min_samples = 1,
                                                             int max_draws = 1000) {
    if (clients == 0) throw std::invalid_argument("clients must be at least 1");
    if (!(alpha > 0.0) || !std::isfinite(alpha)) throw std::invalid_argument("alpha must be a positive number");
    if (min_samples * clients > labels.size()) {
        throw std::invalid_argument(std::to_string(labels.size()) + " samples cannot give " +
                                    std::to_string(clients) + " clients " + std::to_string(min_samples) +
                                    " samples each");
    }
    const auto by_class = indices_by_class(labels, classes);
    std::mt19937_64 rng(seed);
    std::gamma_distribution<double> gamma(alpha, 1.0);
    std::vector<double> share(clients);
    for (int draw = 0; draw < max_draws; ++draw) {
        std::vector<std::vector<std::size_t>> shards(clients);
        for (auto idx : by_class) {
            std::shuffle(idx.begin(), idx.end(), rng);
            double total = 0.0;
            // Gamma draws of a tiny alpha can all underflow to 0.
            for (int tries = 0; total <= 0.0 && tries < 100; ++tries) {
                total = 0.0;
                for (double& s : share) total += (s = gamma(rng));
            }
            if (!(total > 0.0)) {
                std::fill(share.begin(), share.end(), 0.0);
                share[std::uniform_int_distribution<std::size_t>(0, clients - 1)(rng)] = total = 1.0;
            }
            // Cut points at the rounded cumulative shares: the cuts are
            // monotone and the last is exactly idx.size().
            double cumulative = 0.0;
            std::size_t begin = 0;
            for (std::size_t j = 0; j < clients; ++j) {
                cumulative += share[j];
                std::size_t end = j + 1 == clients
                                      ? idx.size()
                                      : static_cast<std::size_t>(std::llround(
                                            cumulative / total * static_cast<double>(idx.size())));
                end = std::clamp(end, begin, idx.size());
                shards[j].insert(shards[j].end(), idx.begin() + static_cast<std::ptrdiff_t>(begin),
                                 idx.begin() + static_cast<std::ptrdiff_t>(end));
                begin = end;
            }
        }
        bool ok = std::all_of(shards.begin(), shards.end(),
                              [&](const std::vector<std::size_t>& s) { return s.size() >= min_samples; });
        if (ok) {
            for (auto& s : shards) std::sort(s.begin(), s.end());
            return shards;
        }
    }
    throw std::runtime_error("no Dirichlet split with alpha " + std::to_string(alpha) + " gives all " +
                             std::to_string(clients) + " clients at least " + std::to_string(min_samples) +
                             " samples in " + std::to_string(max_draws) + " draws: raise alpha or lower clients");
}

}  // namespace fedavg

#endif  // FEDAVG_DIGITS_HPP
