// softmax.hpp: multinomial logistic (softmax) regression trained with
// mini-batch SGD, its weights as one byte buffer, and the sample-weighted
// average of such buffers (FedAvg's aggregation step).
//
// Standard C++17 only.
#ifndef FEDAVG_SOFTMAX_HPP
#define FEDAVG_SOFTMAX_HPP

#include "digits.hpp"

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
#include <vector>

namespace fedavg {

static_assert(std::numeric_limits<float>::is_iec559 && sizeof(float) == 4, "weights are IEEE 754 float32");

// logits = x W + b for x of `features` values. The parameters are one float
// vector: W row-major (features x classes), then b (classes).
struct Model {
    std::size_t features = 0;
    std::size_t classes = 0;
    std::vector<float> params;

    Model() = default;
    Model(std::size_t features_, std::size_t classes_)
        : features(features_), classes(classes_), params(features_ * classes_ + classes_, 0.0f) {}

    float* W() noexcept { return params.data(); }
    const float* W() const noexcept { return params.data(); }
    float* b() noexcept { return params.data() + features * classes; }
    const float* b() const noexcept { return params.data() + features * classes; }

    // Size of the packed weights: float32 W then b, in the machine's byte
    // order (host and workers share one machine).
    std::size_t byte_size() const noexcept { return params.size() * sizeof(float); }

    void pack(std::uint8_t* out, std::size_t n) const {
        if (n != byte_size()) {
            throw std::invalid_argument("fedavg: weight buffer of " + std::to_string(n) + " bytes, expected " +
                                        std::to_string(byte_size()));
        }
        if (n != 0) std::memcpy(out, params.data(), n);
    }

    static Model unpack(const std::uint8_t* data, std::size_t n, std::size_t features, std::size_t classes) {
        Model m(features, classes);
        if (n != m.byte_size()) {
            throw std::invalid_argument("fedavg: weights of " + std::to_string(n) + " bytes, expected " +
                                        std::to_string(m.byte_size()) + " (" + std::to_string(features) + "x" +
                                        std::to_string(classes) + " float32 + " + std::to_string(classes) + " biases)");
        }
        if (n != 0) std::memcpy(m.params.data(), data, n);
        return m;
    }

    // Class probabilities of one sample into p (classes values).
    void predict(const float* x, float* p) const {
        float top = -std::numeric_limits<float>::infinity();
        for (std::size_t k = 0; k < classes; ++k) p[k] = b()[k];
        for (std::size_t i = 0; i < features; ++i) {
            const float xi = x[i];
            if (xi == 0.0f) continue;
            const float* w = W() + i * classes;
            for (std::size_t k = 0; k < classes; ++k) p[k] += xi * w[k];
        }
        for (std::size_t k = 0; k < classes; ++k) top = std::max(top, p[k]);
        float sum = 0.0f;
        for (std::size_t k = 0; k < classes; ++k) sum += (p[k] = std::exp(p[k] - top));
        for (std::size_t k = 0; k < classes; ++k) p[k] /= sum;
    }
};

struct Metrics {
    double loss = 0.0;      // mean cross-entropy
    double accuracy = 0.0;  // share of samples whose most probable class is the label
};

inline Metrics evaluate(const Model& m, const Dataset& d) {
    if (d.features != m.features) throw std::invalid_argument("fedavg: data and model differ in features");
    Metrics out;
    if (d.size() == 0) return out;
    std::vector<float> p(m.classes);
    std::size_t correct = 0;
    double loss = 0.0;
    for (std::size_t i = 0; i < d.size(); ++i) {
        m.predict(d.row(i), p.data());
        const auto label = static_cast<std::size_t>(d.y[i]);
        auto best = static_cast<std::size_t>(std::max_element(p.begin(), p.end()) - p.begin());
        if (best == label) ++correct;
        loss -= std::log(std::max(static_cast<double>(p[label]), 1e-12));
    }
    out.loss = loss / static_cast<double>(d.size());
    out.accuracy = static_cast<double>(correct) / static_cast<double>(d.size());
    return out;
}

struct SgdOptions {
    int epochs = 1;
    double lr = 0.1;
    std::size_t batch_size = 32;
    std::uint64_t seed = 0;  // order of the samples in each epoch
};

// Mini-batch SGD on the mean cross-entropy of each batch; the samples are
// reshuffled every epoch. Returns the mean training loss of the last epoch
// (0 when there were no epochs or no samples).
inline double train_sgd(Model& m, const Dataset& d, const SgdOptions& opt) {
    if (d.features != m.features) throw std::invalid_argument("fedavg: data and model differ in features");
    if (opt.batch_size == 0) throw std::invalid_argument("batch-size must be at least 1");
    for (int label : d.y) {
        if (label < 0 || static_cast<std::size_t>(label) >= m.classes) {
            throw std::invalid_argument("fedavg: label outside the model's classes");
        }
    }
    std::mt19937_64 rng(opt.seed);
    std::vector<std::size_t> order(d.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::vector<float> grad(m.params.size());
    std::vector<float> p(m.classes);
    double last_loss = 0.0;
    for (int epoch = 0; epoch < opt.epochs; ++epoch) {
        std::shuffle(order.begin(), order.end(), rng);
        double epoch_loss = 0.0;
        for (std::size_t start = 0; start < order.size(); start += opt.batch_size) {
            const std::size_t stop = std::min(order.size(), start + opt.batch_size);
            std::fill(grad.begin(), grad.end(), 0.0f);
            float* gW = grad.data();
            float* gb = grad.data() + m.features * m.classes;
            for (std::size_t s = start; s < stop; ++s) {
                const float* x = d.row(order[s]);
                const auto label = static_cast<std::size_t>(d.y[order[s]]);
                m.predict(x, p.data());
                epoch_loss -= std::log(std::max(static_cast<double>(p[label]), 1e-12));
                p[label] -= 1.0f;  // d(cross-entropy)/d(logits) = p - onehot
                for (std::size_t i = 0; i < m.features; ++i) {
                    const float xi = x[i];
                    if (xi == 0.0f) continue;
                    float* g = gW + i * m.classes;
                    for (std::size_t k = 0; k < m.classes; ++k) g[k] += xi * p[k];
                }
                for (std::size_t k = 0; k < m.classes; ++k) gb[k] += p[k];
            }
            const auto step = static_cast<float>(opt.lr / static_cast<double>(stop - start));
            for (std::size_t j = 0; j < grad.size(); ++j) m.params[j] -= step * grad[j];
        }
        last_loss = d.size() == 0 ? 0.0 : epoch_loss / static_cast<double>(d.size());
    }
    return last_loss;
}

}  // namespace fedavg

#endif  // FEDAVG_SOFTMAX_HPP
