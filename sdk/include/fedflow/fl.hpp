// fedflow/fl.hpp: helpers for federated-learning tasks. Header-only,
// standard C++17.
//
//   auto parts = fedflow::fl::split_dirichlet(labels, 10, 0.5, seed);   // client -> sample indices
//   std::vector<std::size_t> mine = parts.at(ctx.param<std::size_t>("client"));
//
//   std::vector<fedflow::fl::WeightedBuffer> models;                   // in the aggregator
//   for (...) models.emplace_back(result.at("weights").as<fedflow::Bytes>(), samples);
//   out["weights"] = fedflow::fl::weighted_average(ctx, models);     // into ctx.bytes, chunk by chunk
//
// Splits. Every function that draws takes a seed and gives the same result
// for the same arguments on every platform: the only generator is
// std::mt19937_64, whose output the C++ standard fixes, and the shuffles and
// draws on top of it are written here (std::shuffle and the std::*_distribution
// classes differ between standard libraries). split_iid, split_shards and
// train_test_split use integer arithmetic only. split_dirichlet also uses
// std::log, std::exp and std::sqrt on doubles; a C library whose results differ
// from glibc's in the last bit could change a split only where a draw sits
// exactly on a boundary. tests/sdk/fl_test.cpp pins the results.
//
// A split returns one vector of sample indices per client, each in
// increasing order; every index 0..n-1 is in exactly one of them. A client
// may get none when there are fewer samples (or shards) than clients.
//
// Errors are std::invalid_argument with a message that names the function
// and the argument (std::runtime_error when a Dirichlet split with a
// min_size finds no draw that satisfies it).
#ifndef FEDFLOW_FL_HPP
#define FEDFLOW_FL_HPP

#include <fedflow/task.hpp>
#include <fedflow/tensor.hpp>
#include <fedflow/value.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace fedflow::fl {

static_assert(std::numeric_limits<float>::is_iec559 && sizeof(float) == 4,
              "fedflow/fl.hpp: float must be IEEE 754 binary32");

// Indices of samples, one vector per client.
using Split = std::vector<std::vector<std::size_t>>;

// ---- portable random numbers ----------------------------------------------

// A number in [0, n), n >= 1, without bias: draws below 2^64 mod n are
// rejected, so every value is equally likely.
inline std::uint64_t uniform_below(std::mt19937_64& rng, std::uint64_t n) {
    if (n == 0) throw std::invalid_argument("fedflow::fl::uniform_below: n must be at least 1");
    const std::uint64_t threshold = (0 - n) % n;
    for (;;) {
        const std::uint64_t r = rng();
        if (r >= threshold) return r % n;
    }
}

// A double in (0, 1): 53 random bits, centred in their interval, so never
// exactly 0 or 1.
inline double uniform_open01(std::mt19937_64& rng) { return (static_cast<double>(rng() >> 11) + 0.5) * 0x1.0p-53; }

// Fisher-Yates, from the last element down: the same permutation for the
// same generator state on every platform (unlike std::shuffle).
template <class T>
void shuffle(std::vector<T>& v, std::mt19937_64& rng) {
    for (std::size_t i = v.size(); i > 1; --i) {
        const auto j = static_cast<std::size_t>(uniform_below(rng, i));
        using std::swap;
        swap(v[i - 1], v[j]);
    }
}

namespace detail {

// A standard normal draw: Marsaglia's polar method, one value per call.
inline double normal(std::mt19937_64& rng) {
    for (;;) {
        const double u = 2.0 * uniform_open01(rng) - 1.0;
        const double v = 2.0 * uniform_open01(rng) - 1.0;
        const double s = u * u + v * v;
        if (s > 0.0 && s < 1.0) return u * std::sqrt(-2.0 * std::log(s) / s);
    }
}

// The logarithm of a Gamma(alpha, 1) draw: Marsaglia and Tsang (2000), with
// Gamma(alpha) = Gamma(alpha + 1) * U^(1/alpha) for alpha < 1. In logs, so
// that a tiny alpha (whose draws underflow a double) still gives shares.
inline double log_gamma_draw(std::mt19937_64& rng, double alpha) {
    if (alpha < 1.0) return log_gamma_draw(rng, alpha + 1.0) + std::log(uniform_open01(rng)) / alpha;
    const double d = alpha - 1.0 / 3.0;
    const double c = 1.0 / std::sqrt(9.0 * d);
    for (;;) {
        const double x = normal(rng);
        double v = 1.0 + c * x;
        if (v <= 0.0) continue;
        v = v * v * v;
        const double u = uniform_open01(rng);
        const double x2 = x * x;
        if (u < 1.0 - 0.0331 * x2 * x2) return std::log(d) + std::log(v);
        if (std::log(u) < 0.5 * x2 + d * (1.0 - v + std::log(v))) return std::log(d) + std::log(v);
    }
}

// Start of part i when n items are cut into `parts` parts whose sizes
// differ by at most one (the first n % parts parts are one larger).
inline std::size_t part_start(std::size_t n, std::size_t parts, std::size_t i) {
    return i * (n / parts) + std::min(i, n % parts);
}

inline std::vector<std::size_t> iota(std::size_t n) {
    std::vector<std::size_t> v(n);
    std::iota(v.begin(), v.end(), std::size_t{0});
    return v;
}

inline void check_clients(const char* fn, std::size_t n_clients) {
    if (n_clients == 0)
        throw std::invalid_argument(std::string("fedflow::fl::") + fn + ": n_clients must be at least 1");
}

// The indices of each distinct label, labels in increasing order, indices
// in increasing order.
template <class Label>
std::vector<std::vector<std::size_t>> indices_by_label(const std::vector<Label>& labels) {
    static_assert(std::is_integral_v<Label> && !std::is_same_v<Label, bool>,
                  "fedflow::fl: labels must be integers (class numbers)");
    std::vector<Label> classes(labels);
    std::sort(classes.begin(), classes.end());
    classes.erase(std::unique(classes.begin(), classes.end()), classes.end());
    std::vector<std::vector<std::size_t>> by(classes.size());
    for (std::size_t i = 0; i < labels.size(); ++i) {
        auto it = std::lower_bound(classes.begin(), classes.end(), labels[i]);
        by[static_cast<std::size_t>(it - classes.begin())].push_back(i);
    }
    return by;
}

inline Split sorted(Split s) {
    for (auto& part : s) std::sort(part.begin(), part.end());
    return s;
}

}  // namespace detail

// ---- splits ---------------------------------------------------------------

// IID: the samples 0..n_samples-1 in random order, cut into n_clients parts
// whose sizes differ by at most one.
inline Split split_iid(std::size_t n_samples, std::size_t n_clients, std::uint64_t seed) {
    detail::check_clients("split_iid", n_clients);
    std::mt19937_64 rng(seed);
    std::vector<std::size_t> order = detail::iota(n_samples);
    shuffle(order, rng);
    Split out(n_clients);
    for (std::size_t c = 0; c < n_clients; ++c) {
        const std::size_t b = detail::part_start(n_samples, n_clients, c);
        const std::size_t e = detail::part_start(n_samples, n_clients, c + 1);
        out[c].assign(order.begin() + static_cast<std::ptrdiff_t>(b), order.begin() + static_cast<std::ptrdiff_t>(e));
    }
    return detail::sorted(std::move(out));
}

// Label shards (McMahan et al., 2017): the samples, sorted by label (in
// random order within a label), are cut into n_clients * shards_per_client
// shards of equal size (give or take one), and each client is dealt
// shards_per_client shards at random. Few shards per client: few labels
// per client.
template <class Label>
Split split_shards(const std::vector<Label>& labels, std::size_t n_clients, std::size_t shards_per_client,
                   std::uint64_t seed) {
    static_assert(std::is_integral_v<Label> && !std::is_same_v<Label, bool>,
                  "fedflow::fl: labels must be integers (class numbers)");
    detail::check_clients("split_shards", n_clients);
    if (shards_per_client == 0)
        throw std::invalid_argument("fedflow::fl::split_shards: shards_per_client must be at least 1");
    if (n_clients > std::numeric_limits<std::size_t>::max() / shards_per_client)
        throw std::invalid_argument("fedflow::fl::split_shards: n_clients * shards_per_client is too large");
    const std::size_t n = labels.size();
    const std::size_t n_shards = n_clients * shards_per_client;
    std::mt19937_64 rng(seed);
    std::vector<std::size_t> order = detail::iota(n);
    shuffle(order, rng);
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return labels[a] < labels[b]; });
    std::vector<std::size_t> deal = detail::iota(n_shards);
    shuffle(deal, rng);
    Split out(n_clients);
    for (std::size_t k = 0; k < n_shards; ++k) {
        const std::size_t shard = deal[k];
        const std::size_t b = detail::part_start(n, n_shards, shard);
        const std::size_t e = detail::part_start(n, n_shards, shard + 1);
        auto& client = out[k / shards_per_client];
        client.insert(client.end(), order.begin() + static_cast<std::ptrdiff_t>(b),
                      order.begin() + static_cast<std::ptrdiff_t>(e));
    }
    return detail::sorted(std::move(out));
}

// Dirichlet (Hsu et al., 2019): for every label, in increasing order of
// label, the client shares are drawn from Dirichlet(alpha, ..., alpha) (as
// normalized Gamma(alpha, 1) draws) and cut that label's shuffled samples:
// client j gets the samples between the rounded cumulative shares j-1 and j.
// Small alpha: each client holds few labels; large alpha: close to IID.
//
// With min_size > 0, a split that leaves some client fewer than min_size
// samples is drawn again (from the same generator, so still reproducible),
// up to max_draws times; then it throws std::runtime_error.
template <class Label>
Split split_dirichlet(const std::vector<Label>& labels, std::size_t n_clients, double alpha, std::uint64_t seed,
                      std::size_t min_size = 0, int max_draws = 1000) {
    detail::check_clients("split_dirichlet", n_clients);
    if (!(alpha > 0.0) || !std::isfinite(alpha))
        throw std::invalid_argument("fedflow::fl::split_dirichlet: alpha must be a positive number, not " +
                                    std::to_string(alpha));
    if (max_draws < 1) throw std::invalid_argument("fedflow::fl::split_dirichlet: max_draws must be at least 1");
    if (min_size > 0 && (n_clients > labels.size() / min_size))
        throw std::invalid_argument("fedflow::fl::split_dirichlet: " + std::to_string(labels.size()) +
                                    " samples cannot give " + std::to_string(n_clients) + " clients " +
                                    std::to_string(min_size) + " samples each (min_size)");
    const auto by_label = detail::indices_by_label(labels);
    std::mt19937_64 rng(seed);
    std::vector<double> log_share(n_clients);
    for (int draw = 0; draw < max_draws; ++draw) {
        Split out(n_clients);
        for (auto idx : by_label) {
            shuffle(idx, rng);
            double top = -std::numeric_limits<double>::infinity();
            for (double& s : log_share) top = std::max(top, s = detail::log_gamma_draw(rng, alpha));
            double total = 0.0;
            for (double& s : log_share) total += (s = std::exp(s - top));  // the largest share is 1
            double cumulative = 0.0;
            std::size_t b = 0;
            for (std::size_t j = 0; j < n_clients; ++j) {
                cumulative += log_share[j];
                std::size_t e = j + 1 == n_clients ? idx.size()
                                                   : static_cast<std::size_t>(std::llround(
                                                         cumulative / total * static_cast<double>(idx.size())));
                e = std::clamp(e, b, idx.size());
                out[j].insert(out[j].end(), idx.begin() + static_cast<std::ptrdiff_t>(b),
                              idx.begin() + static_cast<std::ptrdiff_t>(e));
                b = e;
            }
        }
        if (std::all_of(out.begin(), out.end(), [&](const auto& part) { return part.size() >= min_size; }))
            return detail::sorted(std::move(out));
    }
    throw std::runtime_error("fedflow::fl::split_dirichlet: no split with alpha " + std::to_string(alpha) +
                             " gives all " + std::to_string(n_clients) + " clients at least " +
                             std::to_string(min_size) + " samples in " + std::to_string(max_draws) +
                             " draws: raise alpha, or lower n_clients or min_size");
}

// A held-out set, stratified: of every label, round(test_fraction * count)
// samples, chosen at random, go to test, the rest to train. Both in
// increasing order.
struct TrainTest {
    std::vector<std::size_t> train;
    std::vector<std::size_t> test;
};

template <class Label>
TrainTest train_test_split(const std::vector<Label>& labels, double test_fraction, std::uint64_t seed) {
    if (!(test_fraction >= 0.0 && test_fraction <= 1.0))
        throw std::invalid_argument("fedflow::fl::train_test_split: test_fraction must be in [0, 1], not " +
                                    std::to_string(test_fraction));
    std::mt19937_64 rng(seed);
    TrainTest out;
    for (auto idx : detail::indices_by_label(labels)) {
        shuffle(idx, rng);
        const auto n_test = static_cast<std::size_t>(std::llround(test_fraction * static_cast<double>(idx.size())));
        out.test.insert(out.test.end(), idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(n_test));
        out.train.insert(out.train.end(), idx.begin() + static_cast<std::ptrdiff_t>(n_test), idx.end());
    }
    std::sort(out.train.begin(), out.train.end());
    std::sort(out.test.begin(), out.test.end());
    return out;
}

// ---- float buffers in Bytes -----------------------------------------------
//
// Model weights travel as Bytes holding float32 values in the machine's byte
// order (host and workers share one machine).

// A read-only view of a buffer as floats; see as_floats.
class FloatView {
public:
    FloatView(const float* data, std::size_t size) noexcept : data_(data), size_(size) {}
    const float* data() const noexcept { return data_; }
    std::size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }
    const float* begin() const noexcept { return data_; }
    const float* end() const noexcept { return data_ + size_; }
    const float& operator[](std::size_t i) const noexcept { return data_[i]; }

private:
    const float* data_;
    std::size_t size_;
};

// The floats in b, without a copy. Throws std::invalid_argument when the size
// is not a multiple of 4 or the data is not aligned for float (buffers of
// ctx.bytes and of ctx.inputs() always are; use to_floats for any buffer).
inline FloatView as_floats(const Bytes& b) {
    if (b.size() % sizeof(float) != 0)
        throw std::invalid_argument("fedflow::fl::as_floats: " + std::to_string(b.size()) +
                                    " bytes are not a whole number of float32 values");
    if (reinterpret_cast<std::uintptr_t>(b.data()) % alignof(float) != 0)
        throw std::invalid_argument("fedflow::fl::as_floats: the buffer is not aligned for float (use to_floats)");
    return FloatView(reinterpret_cast<const float*>(b.data()), b.size() / sizeof(float));
}

// A copy of the floats in b, at any alignment. Throws std::invalid_argument
// when the size is not a multiple of 4.
inline std::vector<float> to_floats(const Bytes& b) {
    if (b.size() % sizeof(float) != 0)
        throw std::invalid_argument("fedflow::fl::to_floats: " + std::to_string(b.size()) +
                                    " bytes are not a whole number of float32 values");
    std::vector<float> out(b.size() / sizeof(float));
    if (!out.empty()) std::memcpy(out.data(), b.data(), b.size());
    return out;
}

// Copies values into out, which must hold exactly values.size() floats.
inline void write_floats(Bytes& out, const std::vector<float>& values) {
    if (out.size() != values.size() * sizeof(float))
        throw std::invalid_argument("fedflow::fl::write_floats: " + std::to_string(values.size()) + " floats need " +
                                    std::to_string(values.size() * sizeof(float)) + " bytes, the buffer has " +
                                    std::to_string(out.size()));
    if (!values.empty()) std::memcpy(out.data(), values.data(), out.size());
}

// values in a new shared-memory buffer (ctx.bytes), ready to put in a result.
inline Bytes to_bytes(Context& ctx, const std::vector<float>& values) {
    Bytes out = ctx.bytes(values.size() * sizeof(float));
    write_floats(out, values);
    return out;
}

// ---- float32 tensors (fedflow/tensor.hpp) -----------------------------------
//
// Weights as tensors keep their shape: a Python server receives them as numpy
// arrays of that shape, a C++ one as Tensor.

// The floats of a float32 tensor, without a copy. Throws TypeError for
// another dtype.
inline FloatView as_floats(const Tensor& t) { return FloatView(t.data_as<float>(), t.numel()); }

// values as a float32 tensor of `shape` in shared memory (ctx.bytes), ready
// to put in a result with to_value(). Throws std::invalid_argument when the
// shape does not hold values.size() elements.
inline Tensor to_tensor(Context& ctx, const std::vector<float>& values, std::vector<std::int64_t> shape) {
    std::size_t n = 1;
    for (std::int64_t d : shape) n *= d < 0 ? 0 : static_cast<std::size_t>(d);
    if (n != values.size())
        throw std::invalid_argument("fedflow::fl::to_tensor: " + std::to_string(values.size()) +
                                    " floats do not fill a tensor of " + std::to_string(n) + " elements");
    Tensor t = Tensor::zeros(ctx, DType::float32, std::move(shape));
    write_floats(t.data(), values);
    return t;
}

// One buffer of float32 values and how much it counts in an average (for
// FedAvg, the client's number of training samples). Refers to the buffer;
// it does not copy it.
struct WeightedBuffer {
    const std::uint8_t* data = nullptr;
    std::size_t size = 0;  // in bytes
    double weight = 0.0;

    WeightedBuffer(const Bytes& b, double w) noexcept : data(b.data()), size(b.size()), weight(w) {}
    // A float32 tensor's data (throws TypeError for another dtype).
    WeightedBuffer(const Tensor& t, double w) : WeightedBuffer(t.data(), w) { (void)as_floats(t); }
    WeightedBuffer(const void* d, std::size_t bytes, double w) noexcept
        : data(static_cast<const std::uint8_t*>(d)), size(bytes), weight(w) {}
};

namespace detail {

// The sum of the weights, after checking the buffers as weighted_average
// says (fn names the caller in messages).
inline double check_weighted(const char* fn, const std::vector<WeightedBuffer>& buffers) {
    const std::string name = std::string("fedflow::fl::") + fn;
    if (buffers.empty()) throw std::invalid_argument(name + ": no buffer to average");
    const std::size_t bytes = buffers.front().size;
    if (bytes % sizeof(float) != 0)
        throw std::invalid_argument(name + ": buffer 0 has " + std::to_string(bytes) +
                                    " bytes, not a whole number of float32 values");
    double total = 0.0;
    for (std::size_t i = 0; i < buffers.size(); ++i) {
        const WeightedBuffer& b = buffers[i];
        if (b.size != bytes)
            throw std::invalid_argument(name + ": buffer " + std::to_string(i) + " has " + std::to_string(b.size) +
                                        " bytes, buffer 0 has " + std::to_string(bytes) +
                                        ": all must have the same size");
        if (!(b.weight >= 0.0) || !std::isfinite(b.weight))
            throw std::invalid_argument(name + ": weight " + std::to_string(i) + " is " + std::to_string(b.weight) +
                                        ", not a finite number >= 0");
        total += b.weight;
    }
    if (!(total > 0.0)) throw std::invalid_argument(name + ": the weights sum to zero");
    return total;
}

// Writes the average of n float32 values into out (any alignment), a chunk
// of values at a time across all buffers: the chunk's sums (8192 doubles,
// 64 KiB) stay in the cache while each buffer's next 32 KiB streams past, so
// the buffers are read once, in order, and the memory it takes is one chunk
// whatever their number or size.
inline void average_chunked(const std::vector<WeightedBuffer>& buffers, double total, std::uint8_t* out,
                            std::size_t n) {
    constexpr std::size_t chunk = 8192;
    std::vector<double> acc(n < chunk ? n : chunk);
    for (std::size_t first = 0; first < n; first += chunk) {
        const std::size_t k = n - first < chunk ? n - first : chunk;
        std::fill(acc.begin(), acc.begin() + static_cast<std::ptrdiff_t>(k), 0.0);
        for (const WeightedBuffer& b : buffers) {
            if (b.weight == 0.0) continue;
            const std::uint8_t* p = b.data + first * sizeof(float);
            for (std::size_t j = 0; j < k; ++j) {
                float x;
                std::memcpy(&x, p + j * sizeof(float), sizeof(float));
                acc[j] += b.weight * static_cast<double>(x);
            }
        }
        for (std::size_t j = 0; j < k; ++j) {
            const float y = static_cast<float>(acc[j] / total);
            std::memcpy(out + (first + j) * sizeof(float), &y, sizeof(float));
        }
    }
}

}  // namespace detail

// sum_i weight_i * buffer_i / sum_i weight_i, value by value, accumulated in
// double; the buffers may have any alignment. Throws std::invalid_argument
// when there is no buffer, the sizes differ or are not a multiple of 4, a
// weight is negative or not finite, or the weights sum to zero.
inline std::vector<float> weighted_average(const std::vector<WeightedBuffer>& buffers) {
    const double total = detail::check_weighted("weighted_average", buffers);
    std::vector<float> out(buffers.front().size / sizeof(float));
    detail::average_chunked(buffers, total, reinterpret_cast<std::uint8_t*>(out.data()), out.size());
    return out;
}

// The same average, written straight into a new shared-memory buffer
// (ctx.bytes) that is ready to put in a result: a server that averages N
// clients' models from ctx.inputs() (each a mapping of a client's byte file)
// holds one model, its output, and reads each input once, chunk by chunk.
// The same exceptions as above.
inline Bytes weighted_average(Context& ctx, const std::vector<WeightedBuffer>& buffers) {
    const double total = detail::check_weighted("weighted_average", buffers);
    Bytes out = ctx.bytes(buffers.front().size);
    detail::average_chunked(buffers, total, out.data(), out.size() / sizeof(float));
    return out;
}

}  // namespace fedflow::fl

#endif  // FEDFLOW_FL_HPP
