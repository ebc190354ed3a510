// fedflow/fl.hpp: data splits across clients and weighted averaging of
// float buffers.
#include <doctest/doctest.h>

#include <fedflow/fl.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace fl = fedflow::fl;
using fedflow::Bytes;

namespace {

// Every index 0..n-1 in exactly one part, and each part in increasing order.
void check_partition(const fl::Split& s, std::size_t n, std::size_t n_clients) {
    REQUIRE(s.size() == n_clients);
    std::vector<int> seen(n, 0);
    for (const auto& part : s) {
        CHECK(std::is_sorted(part.begin(), part.end()));
        for (std::size_t i : part) {
            REQUIRE(i < n);
            ++seen[i];
        }
    }
    CHECK(std::count(seen.begin(), seen.end(), 1) == static_cast<std::ptrdiff_t>(n));
}

// n labels of `classes` classes, in a random (but fixed) order.
std::vector<int> make_labels(std::size_t n, int classes, std::uint64_t seed = 1) {
    std::vector<int> y(n);
    for (std::size_t i = 0; i < n; ++i) y[i] = static_cast<int>(i % static_cast<std::size_t>(classes));
    std::mt19937_64 rng(seed);
    fl::shuffle(y, rng);
    return y;
}

// Mean over clients (with samples) of the share of their largest class: 1 when
// each client holds one class, about 1/classes for an even spread.
double skew(const fl::Split& s, const std::vector<int>& y) {
    double sum = 0.0;
    int clients = 0;
    for (const auto& part : s) {
        if (part.empty()) continue;
        std::map<int, std::size_t> count;
        for (std::size_t i : part) ++count[y[i]];
        std::size_t top = 0;
        for (const auto& [label, c] : count) top = std::max(top, c);
        sum += static_cast<double>(top) / static_cast<double>(part.size());
        ++clients;
    }
    return sum / clients;
}

std::string what(const std::function<void()>& f) {
    try {
        f();
    } catch (const std::exception& e) {
        return e.what();
    }
    return "";
}

Bytes floats(const std::vector<float>& v) { return Bytes(v.data(), v.size() * sizeof(float)); }

}  // namespace

TEST_CASE("the generator helpers are the same everywhere") {
    // std::mt19937_64 is fixed by the standard: its 10000th output.
    std::mt19937_64 ref;
    ref.discard(9999);
    CHECK(ref() == 9981545732273789042ull);

    std::mt19937_64 rng(7);
    std::vector<std::uint64_t> below;
    for (int i = 0; i < 8; ++i) below.push_back(fl::uniform_below(rng, 10));
    CHECK(below == std::vector<std::uint64_t>{5, 0, 8, 6, 1, 8, 9, 8});

    std::vector<int> v = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    std::mt19937_64 rng2(7);
    fl::shuffle(v, rng2);
    CHECK(v == std::vector<int>{0, 7, 4, 9, 3, 1, 2, 8, 6, 5});

    std::mt19937_64 rng3(3);
    for (int i = 0; i < 1000; ++i) {
        double u = fl::uniform_open01(rng3);
        REQUIRE(u > 0.0);
        REQUIRE(u < 1.0);
    }
    CHECK_THROWS_AS(fl::uniform_below(rng3, 0), std::invalid_argument);
}

TEST_CASE("every sample is assigned exactly once") {
    for (std::size_t n : {0u, 1u, 7u, 10u, 100u, 1001u}) {
        for (std::size_t clients : {1u, 3u, 10u, 50u}) {
            CAPTURE(n);
            CAPTURE(clients);
            SUBCASE("iid") {
                const auto s = fl::split_iid(n, clients, 42);
                check_partition(s, n, clients);
                // Sizes differ by at most one.
                std::size_t lo = n, hi = 0;
                for (const auto& p : s) lo = std::min(lo, p.size()), hi = std::max(hi, p.size());
                CHECK(hi - lo <= 1);
            }
            SUBCASE("shards") {
                const auto y = make_labels(n, 10);
                for (std::size_t per : {1u, 2u, 5u}) check_partition(fl::split_shards(y, clients, per, 42), n, clients);
            }
            SUBCASE("dirichlet") {
                const auto y = make_labels(n, 10);
                for (double alpha : {0.01, 0.1, 1.0, 100.0})
                    check_partition(fl::split_dirichlet(y, clients, alpha, 42), n, clients);
            }
        }
    }
}

TEST_CASE("more clients than samples: some clients get nothing") {
    const auto iid = fl::split_iid(3, 5, 1);
    check_partition(iid, 3, 5);
    CHECK(std::count_if(iid.begin(), iid.end(), [](const auto& p) { return p.empty(); }) == 2);

    const std::vector<int> y = {0, 1, 1};
    check_partition(fl::split_shards(y, 5, 2, 1), 3, 5);
    check_partition(fl::split_dirichlet(y, 5, 0.5, 1), 3, 5);
}

TEST_CASE("labels need not be 0..classes-1") {
    const std::vector<std::int64_t> y = {-5, 100, 100, 7, -5, 7, 7, 100, -5, 42};
    check_partition(fl::split_dirichlet(y, 3, 1.0, 9), y.size(), 3);
    check_partition(fl::split_shards(y, 3, 2, 9), y.size(), 3);
    const auto tt = fl::train_test_split(y, 0.5, 9);
    CHECK(tt.train.size() + tt.test.size() == y.size());
}

TEST_CASE("the same seed gives the same split, another seed another") {
    const auto y = make_labels(500, 10);
    CHECK(fl::split_iid(500, 7, 3) == fl::split_iid(500, 7, 3));
    CHECK(fl::split_iid(500, 7, 3) != fl::split_iid(500, 7, 4));
    CHECK(fl::split_shards(y, 7, 2, 3) == fl::split_shards(y, 7, 2, 3));
    CHECK(fl::split_shards(y, 7, 2, 3) != fl::split_shards(y, 7, 2, 4));
    CHECK(fl::split_dirichlet(y, 7, 0.5, 3) == fl::split_dirichlet(y, 7, 0.5, 3));
    CHECK(fl::split_dirichlet(y, 7, 0.5, 3) != fl::split_dirichlet(y, 7, 0.5, 4));
    CHECK(fl::train_test_split(y, 0.2, 3).test == fl::train_test_split(y, 0.2, 3).test);
    CHECK(fl::train_test_split(y, 0.2, 3).test != fl::train_test_split(y, 0.2, 4).test);
}

TEST_CASE("golden splits: the same on every platform") {
    // Pinned once from this implementation; a change here changes every
    // user's split, so it needs a very good reason (and a release note).
    const std::vector<int> y = {0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2};
    CHECK(fl::split_iid(10, 3, 2024) == fl::Split{{0, 1, 3, 6}, {2, 7, 8}, {4, 5, 9}});
    CHECK(fl::split_shards(y, 3, 2, 2024) == fl::Split{{0, 6, 7, 10}, {3, 8, 9, 11}, {1, 2, 4, 5}});
    CHECK(fl::split_dirichlet(y, 3, 0.5, 2024) == fl::Split{{0, 1, 3, 4, 7, 9, 10, 11}, {}, {2, 5, 6, 8}});
    CHECK(fl::split_dirichlet(y, 3, 0.05, 2024) == fl::Split{{1, 2, 4, 5, 7, 8, 10, 11}, {}, {0, 3, 6, 9}});
    const auto tt = fl::train_test_split(y, 0.25, 2024);
    CHECK(tt.test == std::vector<std::size_t>{0, 1, 5});

    std::vector<int> y30(30);
    for (std::size_t i = 0; i < y30.size(); ++i) y30[i] = static_cast<int>(i % 3);
    CHECK(fl::split_dirichlet(y30, 4, 1.0, 7) == fl::Split{{0, 3, 5, 6, 9, 10, 11, 12, 17, 21, 23, 24, 27},
                                                           {4, 7, 13, 16, 18, 22, 25, 28},
                                                           {1, 14},
                                                           {2, 8, 15, 19, 20, 26, 29}});
    CHECK(fl::split_dirichlet(y30, 4, 100.0, 7) == fl::Split{{0, 4, 5, 10, 11, 12, 17, 21},
                                                             {9, 14, 22, 23, 25, 27, 28},
                                                             {2, 3, 6, 7, 8, 13, 16, 24},
                                                             {1, 15, 18, 19, 20, 26, 29}});
}

TEST_CASE("shards: each client sees few labels") {
    // 10 classes of 100 samples, 10 clients of 2 shards of 50: at most 2
    // labels each when the shards fall on class boundaries, as here.
    const auto y = make_labels(1000, 10);
    const auto s = fl::split_shards(y, 10, 2, 5);
    for (const auto& part : s) {
        CHECK(part.size() == 100);
        std::map<int, int> labels;
        for (std::size_t i : part) ++labels[y[i]];
        CHECK(labels.size() <= 2);
    }
}

TEST_CASE("Dirichlet: the skew grows as alpha shrinks") {
    const auto y = make_labels(2000, 10);
    auto mean_skew = [&](double alpha) {
        double sum = 0.0;
        for (std::uint64_t seed = 1; seed <= 8; ++seed) sum += skew(fl::split_dirichlet(y, 10, alpha, seed), y);
        return sum / 8;
    };
    const double near_iid = mean_skew(100.0);
    const double non_iid = mean_skew(1.0);
    const double very_non_iid = mean_skew(0.1);
    CAPTURE(near_iid);
    CAPTURE(non_iid);
    CAPTURE(very_non_iid);
    CHECK(near_iid < non_iid);
    CHECK(non_iid < very_non_iid);
    CHECK(near_iid < 0.2);      // about 1/10: every client sees every class
    CHECK(very_non_iid > 0.6);  // mostly one class per client
}

TEST_CASE("Dirichlet: min_size redraws, and says when it cannot") {
    const auto y = make_labels(1000, 10);
    const auto s = fl::split_dirichlet(y, 10, 0.1, 3, 30);
    check_partition(s, 1000, 10);
    for (const auto& part : s) CHECK(part.size() >= 30);
    CHECK(s == fl::split_dirichlet(y, 10, 0.1, 3, 30));

    CHECK(what([&] { fl::split_dirichlet(y, 10, 0.5, 3, 200); }) ==
          "fedflow::fl::split_dirichlet: 1000 samples cannot give 10 clients 200 samples each (min_size)");
    CHECK_THROWS_AS(fl::split_dirichlet(y, 10, 0.01, 3, 95, 5), std::runtime_error);
    CHECK(what([&] { fl::split_dirichlet(y, 10, 0.01, 3, 95, 5); }).find("in 5 draws") != std::string::npos);
}

TEST_CASE("split arguments are checked") {
    const auto y = make_labels(10, 2);
    CHECK(what([] { fl::split_iid(10, 0, 1); }) == "fedflow::fl::split_iid: n_clients must be at least 1");
    CHECK_THROWS_AS(fl::split_shards(y, 0, 1, 1), std::invalid_argument);
    CHECK(what([&] { fl::split_shards(y, 2, 0, 1); }) ==
          "fedflow::fl::split_shards: shards_per_client must be at least 1");
    CHECK_THROWS_AS(fl::split_dirichlet(y, 0, 1.0, 1), std::invalid_argument);
    CHECK(what([&] { fl::split_dirichlet(y, 2, 0.0, 1); }).find("alpha must be a positive number") !=
          std::string::npos);
    CHECK_THROWS_AS(fl::split_dirichlet(y, 2, -1.0, 1), std::invalid_argument);
    CHECK_THROWS_AS(fl::split_dirichlet(y, 2, std::numeric_limits<double>::infinity(), 1), std::invalid_argument);
    CHECK_THROWS_AS(fl::split_dirichlet(y, 2, 1.0, 1, 0, 0), std::invalid_argument);
    CHECK_THROWS_AS(fl::train_test_split(y, 1.5, 1), std::invalid_argument);
}

TEST_CASE("train_test_split is stratified and disjoint") {
    const auto y = make_labels(1000, 10);
    const auto tt = fl::train_test_split(y, 0.2, 7);
    CHECK(tt.test.size() == 200);
    CHECK(tt.train.size() == 800);
    std::vector<std::size_t> all = tt.train;
    all.insert(all.end(), tt.test.begin(), tt.test.end());
    std::sort(all.begin(), all.end());
    CHECK(all == fl::detail::iota(1000));
    std::map<int, int> per_class;
    for (std::size_t i : tt.test) ++per_class[y[i]];
    for (const auto& [label, n] : per_class) CHECK(n == 20);
}

TEST_CASE("weighted average of float buffers") {
    SUBCASE("exact on small inputs") {
        const Bytes a = floats({1.0f, 2.0f, -4.0f});
        const Bytes b = floats({3.0f, 6.0f, 0.0f});
        CHECK(fl::weighted_average({{a, 1.0}, {b, 3.0}}) == std::vector<float>{2.5f, 5.0f, -1.0f});
        CHECK(fl::weighted_average({{a, 2.0}}) == std::vector<float>{1.0f, 2.0f, -4.0f});
        // A weight of zero leaves its buffer out, even one holding NaN.
        const Bytes nan = floats({std::numeric_limits<float>::quiet_NaN(), 0.0f, 0.0f});
        CHECK(fl::weighted_average({{a, 1.0}, {nan, 0.0}}) == std::vector<float>{1.0f, 2.0f, -4.0f});
    }
    SUBCASE("buffers at any alignment, raw pointers too") {
        const float c[3] = {0.5f, 0.25f, 1.0f};
        unsigned char raw[13];
        std::memcpy(raw + 1, c, sizeof c);
        CHECK(fl::weighted_average({{raw + 1, 4, 10.0}, {raw + 5, 4, 30.0}, {raw + 9, 4, 60.0}}) ==
              std::vector<float>{0.725f});
    }
    SUBCASE("empty buffers average to nothing") {
        CHECK(fl::weighted_average({{Bytes(), 1.0}, {Bytes(), 1.0}}).empty());
    }
    SUBCASE("errors") {
        const Bytes a = floats({1.0f, 2.0f, 3.0f});
        const Bytes b = floats({1.0f, 2.0f});
        CHECK(what([&] {
                  fl::weighted_average({{a, 1.0}, {b, 1.0}});
              }) ==
              "fedflow::fl::weighted_average: buffer 1 has 8 bytes, buffer 0 has 12: all must have the same size");
        CHECK(what([&] {
                  fl::weighted_average({{a, 0.0}, {a, 0.0}});
              }) == "fedflow::fl::weighted_average: the weights sum to zero");
        CHECK(what([] { fl::weighted_average({}); }) == "fedflow::fl::weighted_average: no buffer to average");
        CHECK(what([&] { fl::weighted_average({{a, -1.0}}); }).find("weight 0 is -1") != std::string::npos);
        CHECK_THROWS_AS(fl::weighted_average({{a, std::numeric_limits<double>::quiet_NaN()}}), std::invalid_argument);
        const Bytes odd(6);
        CHECK(what([&] {
                  fl::weighted_average({{odd, 1.0}});
              }) == "fedflow::fl::weighted_average: buffer 0 has 6 bytes, not a whole number of float32 values");
    }
}

TEST_CASE("Bytes as floats") {
    const Bytes b = floats({1.5f, -2.0f});
    const fl::FloatView v = fl::as_floats(b);
    REQUIRE(v.size() == 2);
    CHECK(v[0] == 1.5f);
    CHECK(std::vector<float>(v.begin(), v.end()) == std::vector<float>{1.5f, -2.0f});
    CHECK(fl::to_floats(b) == std::vector<float>{1.5f, -2.0f});

    CHECK(what([] { fl::as_floats(Bytes(5)); }) ==
          "fedflow::fl::as_floats: 5 bytes are not a whole number of float32 values");
    CHECK_THROWS_AS(fl::to_floats(Bytes(7)), std::invalid_argument);
    std::vector<std::uint8_t> storage(9);
    const Bytes misaligned = Bytes::view(storage.data() + 1, 8);
    CHECK(what([&] { fl::as_floats(misaligned); }) ==
          "fedflow::fl::as_floats: the buffer is not aligned for float (use to_floats)");
    CHECK(fl::to_floats(misaligned) == std::vector<float>{0.0f, 0.0f});

    Bytes out(8);
    fl::write_floats(out, {3.0f, 4.0f});
    CHECK(fl::to_floats(out) == std::vector<float>{3.0f, 4.0f});
    CHECK(what([&] { fl::write_floats(out, {1.0f}); }) ==
          "fedflow::fl::write_floats: 1 floats need 4 bytes, the buffer has 8");
}

namespace {

// A context whose bytes_alloc hands out `segment` (resized), as the worker's
// shared memory would be.
struct FakeContext {
    std::vector<std::uint8_t> segment;
    fedflow_host_services services{};
    fedflow_context c{};
    std::optional<fedflow::Context> ctx;
    FakeContext() {
        services.version = FEDFLOW_HOST_SERVICES_VERSION;
        services.size = sizeof services;
        services.host = &segment;
        services.bytes_alloc = [](void* h, std::uint64_t size, std::uint64_t* id, fedflow_status*) -> std::uint8_t* {
            auto* seg = static_cast<std::vector<std::uint8_t>*>(h);
            seg->assign(size, 0xCD);
            *id = 0;
            return seg->data();
        };
        c.size = sizeof c;
        c.task_id = "0";
        c.group = "server";
        c.workdir = "/runs/server/0";
        c.plan_dir = "/plans";
        c.host = &services;
        ctx.emplace(&c);
    }
};

}  // namespace

TEST_CASE("weighted average into ctx.bytes, chunk by chunk") {
    FakeContext f;
    SUBCASE("the same values as the vector form, across chunk boundaries and at any alignment") {
        const std::size_t n = 3 * 8192 + 5;  // three whole chunks and a part
        std::vector<float> x(n), y(n);
        for (std::size_t i = 0; i < n; ++i) {
            x[i] = static_cast<float>(i % 97) * 0.5f;
            y[i] = -static_cast<float>(i % 13);
        }
        std::vector<unsigned char> raw(n * 4 + 1);
        std::memcpy(raw.data() + 1, y.data(), n * 4);
        const std::vector<fl::WeightedBuffer> in{{x.data(), n * 4, 1.0}, {raw.data() + 1, n * 4, 3.0}};
        const Bytes out = fl::weighted_average(*f.ctx, in);
        CHECK(out.shm_id() == 0);
        CHECK(out.data() == f.segment.data());
        CHECK(fl::to_floats(out) == fl::weighted_average(in));
        CHECK(fl::to_floats(out)[8192 * 2 + 3] == (x[8192 * 2 + 3] + 3 * y[8192 * 2 + 3]) / 4);
    }
    SUBCASE("the same errors") {
        const Bytes a = floats({1.0f, 2.0f, 3.0f});
        const Bytes b = floats({1.0f, 2.0f});
        CHECK(what([&] {
                  fl::weighted_average(*f.ctx, {{a, 1.0}, {b, 1.0}});
              }) ==
              "fedflow::fl::weighted_average: buffer 1 has 8 bytes, buffer 0 has 12: all must have the same size");
        CHECK(what([&] { fl::weighted_average(*f.ctx, {}); }) == "fedflow::fl::weighted_average: no buffer to average");
        CHECK(f.segment.empty());  // nothing allocated for a call that fails
    }
}

TEST_CASE("to_bytes puts floats into a shared-memory buffer") {
    FakeContext f;
    fedflow::Context& ctx = *f.ctx;
    std::vector<std::uint8_t>& segment = f.segment;

    const Bytes b = fl::to_bytes(ctx, {1.0f, -2.5f, 8.0f});
    CHECK(b.shm_id() == 0);
    CHECK(b.data() == segment.data());
    CHECK(fl::to_floats(b) == std::vector<float>{1.0f, -2.5f, 8.0f});
}
