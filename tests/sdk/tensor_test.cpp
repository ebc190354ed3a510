// fedflow/tensor.hpp: arrays with dtype and shape, as the dict
// {"$tensor": {"dtype", "shape", "data"}} that Python tasks send and receive
// (docs/python.md), and fl.hpp's float32 helpers on top.
#include <doctest/doctest.h>

#include <fedflow/detail/wire.hpp>
#include <fedflow/fl.hpp>
#include <fedflow/tensor.hpp>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

using fedflow::Bytes;
using fedflow::Dict;
using fedflow::DType;
using fedflow::List;
using fedflow::Tensor;
using fedflow::TypeError;
using fedflow::Value;

namespace {

// A context whose bytes_alloc hands out vectors: enough for Tensor::zeros.
struct FakeShm {
    std::vector<std::unique_ptr<std::vector<std::uint8_t>>> buffers;
    fedflow_host_services services{};
    fedflow_context raw{};
    std::unique_ptr<fedflow::Context> ctx;

    FakeShm() {
        services.version = FEDFLOW_HOST_SERVICES_VERSION;
        services.size = sizeof services;
        services.host = this;
        services.bytes_alloc = [](void* h, std::uint64_t size, std::uint64_t* id, fedflow_status*) -> std::uint8_t* {
            auto* self = static_cast<FakeShm*>(h);
            self->buffers.push_back(std::make_unique<std::vector<std::uint8_t>>(size));
            *id = self->buffers.size() - 1;
            return self->buffers.back()->data();
        };
        raw.size = sizeof raw;
        raw.task_id = "0";
        raw.group = "g";
        raw.workdir = "/w";
        raw.plan_dir = "/p";
        raw.host = &services;
        ctx = std::make_unique<fedflow::Context>(&raw);
    }
};

Bytes floats(std::vector<float> v) { return Bytes(v.data(), v.size() * sizeof(float)); }

}  // namespace

TEST_CASE("dtype names, sizes and C++ types") {
    CHECK(std::string(fedflow::dtype_name(DType::float32)) == "float32");
    CHECK(std::string(fedflow::dtype_name(DType::boolean)) == "bool");
    CHECK(fedflow::dtype_size(DType::bfloat16) == 2);
    CHECK(fedflow::dtype_size(DType::complex128) == 16);
    CHECK(fedflow::dtype_from_name("int64") == DType::int64);
    CHECK_THROWS_WITH_AS(fedflow::dtype_from_name("float128"),
                         doctest::Contains("dtype 'float128' is not one of bool, int8"), TypeError);
    static_assert(fedflow::dtype_of<float>() == DType::float32);
    static_assert(fedflow::dtype_of<double>() == DType::float64);
    static_assert(fedflow::dtype_of<std::int32_t>() == DType::int32);
    static_assert(fedflow::dtype_of<std::uint8_t>() == DType::uint8);
    static_assert(fedflow::dtype_of<bool>() == DType::boolean);
}

TEST_CASE("a tensor as a value: the $tensor dict, and back without a copy") {
    Tensor t(DType::float32, {2, 3}, floats({0, 1, 2, 3, 4, 5}));
    CHECK(t.numel() == 6);
    CHECK(t.ndim() == 2);
    Value v = t.to_value();
    const Dict& f = v.as<Dict>().at("$tensor").as<Dict>();
    CHECK(f.at("dtype").as<std::string>() == "float32");
    CHECK(f.at("shape") == Value(List{std::int64_t{2}, std::int64_t{3}}));
    CHECK(f.at("data").as<Bytes>().size() == 24);
    CHECK(Tensor::is(v));

    Tensor back = Tensor::from(v, "weights");
    CHECK(back.dtype() == DType::float32);
    CHECK(back.shape() == std::vector<std::int64_t>{2, 3});
    CHECK(back.data().data() == t.data().data());
    CHECK(back.data_as<float>()[4] == 4.0f);

    SUBCASE("through FFV1, as a result travels") {
        std::string doc = fedflow::wire::encode(v);
        Tensor w = Tensor::from(fedflow::wire::decode(reinterpret_cast<const std::uint8_t*>(doc.data()), doc.size()));
        CHECK(w.shape() == t.shape());
        CHECK(std::memcmp(w.data().data(), t.data().data(), 24) == 0);
    }
    SUBCASE("a 0-d tensor has one element") {
        Tensor s(DType::float64, {}, Bytes(8));
        CHECK(s.numel() == 1);
        CHECK(Tensor::from(s.to_value()).shape().empty());
    }
}

TEST_CASE("what is not a tensor, or an inconsistent one, is refused with its name") {
    CHECK_FALSE(Tensor::is(Value(Dict{{"dtype", "float32"}})));
    CHECK_FALSE(Tensor::is(Value(Bytes(4))));
    CHECK_FALSE(Tensor::is(Value(Dict{{"$tensor", Dict{{"dtype", "float32"}, {"shape", List{}}}}})));
    CHECK_THROWS_WITH_AS(Tensor::from(Value(Bytes(4)), "inputs.clients.0.weights"),
                         doctest::Contains("inputs.clients.0.weights is a bytes, not a tensor"), TypeError);
    CHECK_THROWS_WITH_AS(Tensor(DType::float32, {2, 3}, Bytes(20)),
                         "a float32 tensor of shape [2, 3] needs 24 bytes, the data has 20", TypeError);
    CHECK_THROWS_WITH_AS(Tensor(DType::int8, {-1}, Bytes(0)), doctest::Contains("negative dimension"), TypeError);
    Value bad(Dict{{"$tensor", Dict{{"dtype", "float31"}, {"shape", List{std::int64_t{1}}}, {"data", Bytes(4)}}}});
    CHECK_THROWS_WITH_AS(Tensor::from(bad, "w"), doctest::Contains("w: dtype 'float31' is not one of"), TypeError);
    Tensor t(DType::int32, {1}, Bytes(4));
    CHECK_THROWS_WITH_AS(t.data_as<float>(), "the tensor holds int32, not float32", TypeError);
}

TEST_CASE("zeros lives in shared memory; fl.hpp's float32 helpers") {
    FakeShm shm;
    Tensor z = Tensor::zeros(*shm.ctx, DType::float32, {3, 2});
    CHECK(z.data().shm_id() == 0);
    CHECK(z.data().size() == 24);

    Tensor w = fedflow::fl::to_tensor(*shm.ctx, {1, 2, 3, 4}, {2, 2});
    CHECK(w.data().shm_id() == 1);
    CHECK(fedflow::fl::as_floats(w)[3] == 4.0f);
    CHECK_THROWS_AS(fedflow::fl::to_tensor(*shm.ctx, {1, 2, 3}, {2, 2}), std::invalid_argument);

    Tensor v(DType::float32, {2, 2}, floats({3, 4, 5, 6}));
    std::vector<float> avg = fedflow::fl::weighted_average({{w, 1.0}, {v, 3.0}});
    CHECK(avg == std::vector<float>{2.5f, 3.5f, 4.5f, 5.5f});
    Tensor ints(DType::int32, {2}, Bytes(8));
    CHECK_THROWS_AS(fedflow::fl::WeightedBuffer(ints, 1.0), TypeError);
}
