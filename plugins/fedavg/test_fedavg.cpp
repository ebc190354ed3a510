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

// The splits and the weighted average are fedflow/fl.hpp's, tested in tests/sdk/fl_test.cpp.

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
        avg.params = fedflow::fl::weighted_average({{buf.data(), buf.size(), 3.0}, {buf.data(), buf.size(), 7.0}});
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
