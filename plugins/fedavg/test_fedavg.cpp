// The math of the fedavg demo, on made-up data: no digits.csv needed.
#include <doctest/doctest.h>

#include "config.hpp"
#include "digits.hpp"
#include "softmax.hpp"

#include <fedflow/value.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

using namespace fedavg;

namespace {

std::vector<int> cyclic_labels(std::size_t n, int classes) {
    std::vector<int> y(n);
    for (std::size_t i = 0; i < n; ++i) y[i] = static_cast<int>(i % static_cast<std::size_t>(classes));
    return y;
}

// Mean over clients of the share of the client's most frequent class:
// 1/classes for a perfectly even split, 1 when every client has one class.
double skew(const std::vector<std::vector<std::size_t>>& shards, const std::vector<int>& y, int classes) {
    double sum = 0.0;
    for (const auto& s : shards) {
        std::vector<std::size_t> count(static_cast<std::size_t>(classes));
        for (std::size_t i : s) ++count[static_cast<std::size_t>(y[i])];
        sum += static_cast<double>(*std::max_element(count.begin(), count.end())) / static_cast<double>(s.size());
    }
    return sum / static_cast<double>(shards.size());
}

// Two-dimensional blobs around the corners of a square, one class each.
Dataset blobs(std::size_t per_class, std::uint64_t seed) {
    const float centers[4][2] = {{-2, -2}, {2, -2}, {-2, 2}, {2, 2}};
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> noise(0.0f, 0.5f);
    Dataset d;
    d.features = 2;
    for (std::size_t i = 0; i < per_class; ++i) {
        for (int c = 0; c < 4; ++c) {
            d.x.push_back(centers[c][0] + noise(rng));
            d.x.push_back(centers[c][1] + noise(rng));
            d.y.push_back(c);
        }
    }
    return d;
}

}  // namespace

TEST_CASE("train/test split is stratified, disjoint and reproducible") {
    const auto y = cyclic_labels(1000, 10);
    const auto a = train_test_split(y, 10, 0.2, 7);
    CHECK(a.test.size() == 200);
    CHECK(a.train.size() == 800);
    std::vector<std::size_t> all = a.train;
    all.insert(all.end(), a.test.begin(), a.test.end());
    std::sort(all.begin(), all.end());
    std::vector<std::size_t> expected(1000);
    std::iota(expected.begin(), expected.end(), std::size_t{0});
    CHECK(all == expected);
    std::vector<int> per_class(10);
    for (std::size_t i : a.test) ++per_class[static_cast<std::size_t>(y[i])];
    CHECK(std::all_of(per_class.begin(), per_class.end(), [](int n) { return n == 20; }));
    CHECK(train_test_split(y, 10, 0.2, 7).test == a.test);
    CHECK(train_test_split(y, 10, 0.2, 8).test != a.test);
}

TEST_CASE("Dirichlet split") {
    const auto y = cyclic_labels(1440, 10);

    SUBCASE("assigns every sample to exactly one client") {
        for (double alpha : {0.05, 0.5, 5.0}) {
            const auto shards = dirichlet_split(y, 10, 10, alpha, 42, 1);
            REQUIRE(shards.size() == 10);
            std::vector<int> times(y.size());
            for (const auto& s : shards) {
                CHECK(!s.empty());
                CHECK(std::is_sorted(s.begin(), s.end()));
                for (std::size_t i : s) ++times.at(i);
            }
            CHECK(std::all_of(times.begin(), times.end(), [](int t) { return t == 1; }));
        }
    }

    SUBCASE("same seed, same split; another seed, another split") {
        CHECK(dirichlet_split(y, 10, 10, 0.5, 42) == dirichlet_split(y, 10, 10, 0.5, 42));
        CHECK(dirichlet_split(y, 10, 10, 0.5, 42) != dirichlet_split(y, 10, 10, 0.5, 43));
    }

    SUBCASE("smaller alpha gives more skew") {
        const double very_non_iid = skew(dirichlet_split(y, 10, 10, 0.1, 1), y, 10);
        const double non_iid = skew(dirichlet_split(y, 10, 10, 1.0, 1), y, 10);
        const double near_iid = skew(dirichlet_split(y, 10, 10, 100.0, 1), y, 10);
        CHECK(very_non_iid > non_iid);
        CHECK(non_iid > near_iid);
        CHECK(near_iid < 0.2);  // close to the even 0.1
        CHECK(very_non_iid > 0.5);
    }

    SUBCASE("every client gets min_samples, or it says why not") {
        const auto shards = dirichlet_split(y, 10, 10, 0.1, 3, 30);
        for (const auto& s : shards) CHECK(s.size() >= 30);
        CHECK_THROWS_AS(dirichlet_split(y, 10, 10, 0.5, 3, 200), std::invalid_argument);
        CHECK_THROWS_AS(dirichlet_split(y, 10, 10, 0.01, 3, 140, 5), std::runtime_error);
        CHECK_THROWS_AS(dirichlet_split(y, 10, 0, 0.5, 3), std::invalid_argument);
        CHECK_THROWS_AS(dirichlet_split(y, 10, 10, 0.0, 3), std::invalid_argument);
    }
}

TEST_CASE("weighted average of weight buffers") {
    // Hand-computed: (1*[1, 2, -4] + 3*[3, 6, 0]) / 4 = [2.5, 5, -1].
    const std::vector<float> a = {1.0f, 2.0f, -4.0f};
    const std::vector<float> b = {3.0f, 6.0f, 0.0f};
    std::vector<std::uint8_t> ba(12), bb(12);
    std::memcpy(ba.data(), a.data(), 12);
    std::memcpy(bb.data(), b.data(), 12);
    const auto avg = weighted_average({{ba.data(), 12, 1.0}, {bb.data(), 12, 3.0}});
    CHECK(avg == std::vector<float>{2.5f, 5.0f, -1.0f});

    // Sample counts as weights: (10*[0.5] + 30*[0.25] + 60*[1]) / 100 = [0.725].
    const float c[3] = {0.5f, 0.25f, 1.0f};
    std::uint8_t raw[13];  // unaligned on purpose
    std::memcpy(raw + 1, &c[0], 4);
    std::memcpy(raw + 5, &c[1], 4);
    std::memcpy(raw + 9, &c[2], 4);
    const auto one = weighted_average({{raw + 1, 4, 10.0}, {raw + 5, 4, 30.0}, {raw + 9, 4, 60.0}});
    CHECK(one == std::vector<float>{0.725f});

    CHECK(weighted_average({{ba.data(), 12, 5.0}}) == a);  // a single model is itself
    CHECK_THROWS_AS(weighted_average({}), std::invalid_argument);
    CHECK_THROWS_AS(weighted_average({{ba.data(), 12, 1.0}, {bb.data(), 8, 1.0}}), std::invalid_argument);
    CHECK_THROWS_AS(weighted_average({{ba.data(), 12, 0.0}}), std::invalid_argument);
    CHECK_THROWS_AS(weighted_average({{ba.data(), 12, -1.0}, {bb.data(), 12, 2.0}}), std::invalid_argument);
}

TEST_CASE("softmax regression learns a separable set") {
    const Dataset train = blobs(100, 1);
    const Dataset test = blobs(50, 2);
    Model m(2, 4);
    const Metrics before = evaluate(m, test);
    CHECK(before.loss == doctest::Approx(std::log(4.0)));  // zeros: uniform
    SgdOptions opt;
    opt.epochs = 20;
    opt.lr = 0.5;
    opt.batch_size = 16;
    opt.seed = 3;
    const double last = train_sgd(m, train, opt);
    const Metrics after = evaluate(m, test);
    CHECK(after.accuracy >= 0.97);
    CHECK(after.loss < 0.2);
    CHECK(last < before.loss);

    SUBCASE("deterministic for a seed") {
        Model again(2, 4);
        train_sgd(again, train, opt);
        CHECK(again.params == m.params);
    }
    SUBCASE("averaging identical models changes nothing") {
        std::vector<std::uint8_t> buf(m.byte_size());
        m.pack(buf.data(), buf.size());
        Model avg(2, 4);
        avg.params = weighted_average({{buf.data(), buf.size(), 3.0}, {buf.data(), buf.size(), 7.0}});
        CHECK(evaluate(avg, test).accuracy == after.accuracy);
    }
}

TEST_CASE("weights pack and unpack") {
    Model m(64, 10);
    REQUIRE(m.byte_size() == (64 * 10 + 10) * sizeof(float));
    std::mt19937_64 rng(5);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    for (float& p : m.params) p = u(rng);
    m.b()[9] = 123.5f;

    fedflow::Bytes bytes(m.byte_size());
    m.pack(bytes.data(), bytes.size());
    const Model back = Model::unpack(bytes.data(), bytes.size(), 64, 10);
    CHECK(back.params == m.params);
    CHECK(back.b()[9] == 123.5f);
    float first = 0.0f;
    std::memcpy(&first, bytes.data(), 4);
    CHECK(first == m.W()[0]);  // W first, row-major

    CHECK_THROWS_AS(Model::unpack(bytes.data(), bytes.size() - 4, 64, 10), std::invalid_argument);
    CHECK_THROWS_AS(m.pack(bytes.data(), bytes.size() + 4), std::invalid_argument);
}

TEST_CASE("client ids are shard numbers") {
    CHECK(shard_of("0", 10) == 0);
    CHECK(shard_of("9", 10) == 9);
    CHECK_THROWS_AS(shard_of("10", 10), std::invalid_argument);
    CHECK_THROWS_AS(shard_of("client-a", 10), std::invalid_argument);
    CHECK_THROWS_AS(shard_of("", 10), std::invalid_argument);
    CHECK_THROWS_AS(shard_of("3x", 10), std::invalid_argument);
    CHECK(mix_seed(42, 1, 0) != mix_seed(42, 2, 0));
    CHECK(mix_seed(42, 1, 0) != mix_seed(42, 1, 1));
}
