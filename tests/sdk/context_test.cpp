// The C++ task layer (fedflow/task.hpp) driven through its C plugin table,
// the way fedflow-worker drives it, but with a fake host: no process, no
// shared memory.
#include <doctest/doctest.h>

#include <fedflow/task.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

using fedflow::Bytes;
using fedflow::Context;
using fedflow::Dict;
using fedflow::List;
using fedflow::TypeError;
using fedflow::Value;
namespace wire = fedflow::wire;

namespace {

// What a test wants the task to do in load and train.
std::function<void(Context&)> on_load;
std::function<Dict(Context&, std::string_view)> on_train;

class Scripted final : public fedflow::Task {
public:
    void load(Context& ctx) override {
        if (on_load) on_load(ctx);
    }
    Dict train(Context& ctx, std::string_view device) override { return on_train ? on_train(ctx, device) : Dict{}; }
};

// A host for one task: the services of fedflow_host_services backed by
// vectors, and a fedflow_context that points into it.
struct FakeHost {
    std::vector<std::unique_ptr<std::vector<std::uint8_t>>> shared;  // bytes_alloc, id = index
    std::vector<std::uint8_t> result;
    int result_allocs = 0;
    std::vector<std::pair<std::int32_t, std::string>> logs;
    std::int32_t fail_bytes_with = FEDFLOW_OK;
    std::int32_t fail_result_with = FEDFLOW_OK;

    std::string params_doc, inputs_doc;
    fedflow_host_services services{};
    fedflow_context ctx{};

    explicit FakeHost(const Dict& params = {}, const Dict& inputs = {}) {
        services.version = FEDFLOW_HOST_SERVICES_VERSION;
        services.size = sizeof services;
        services.host = this;
        services.log = [](void* h, std::int32_t level, const char* message) {
            static_cast<FakeHost*>(h)->logs.emplace_back(level, message);
        };
        services.bytes_alloc = [](void* h, std::uint64_t size, std::uint64_t* id, fedflow_status* st) -> std::uint8_t* {
            auto* self = static_cast<FakeHost*>(h);
            if (self->fail_bytes_with != FEDFLOW_OK) {
                st->code = self->fail_bytes_with;
                std::strcpy(st->message, "no shared memory left for you");
                return nullptr;
            }
            self->shared.push_back(std::make_unique<std::vector<std::uint8_t>>(size));
            *id = self->shared.size() - 1;
            return self->shared.back()->data();
        };
        services.result_alloc = [](void* h, std::uint64_t size, fedflow_status* st) -> std::uint8_t* {
            auto* self = static_cast<FakeHost*>(h);
            ++self->result_allocs;
            if (self->fail_result_with != FEDFLOW_OK) {
                st->code = self->fail_result_with;
                std::strcpy(st->message, "result too large for the pipe");
                return nullptr;
            }
            self->result.assign(size, 0xCD);  // not zero: the SDK must write every byte
            return self->result.data();
        };

        params_doc = params.empty() ? std::string() : wire::encode(Value(params));
        inputs_doc = inputs.empty() ? std::string() : wire::encode(Value(inputs));
        ctx.size = sizeof ctx;
        ctx.round = 0;
        ctx.task_id = "task-7";
        ctx.group = "clients";
        ctx.workdir = "/runs/demo/clients/task-7";
        ctx.plan_dir = "/plans";
        ctx.params = buffer(params_doc);
        ctx.inputs = buffer(inputs_doc);
        ctx.host = &services;
    }
    FakeHost(const FakeHost&) = delete;
    FakeHost& operator=(const FakeHost&) = delete;

    static fedflow_buffer buffer(const std::string& doc) {
        fedflow_buffer b{};
        b.data = doc.empty() ? nullptr : reinterpret_cast<const std::uint8_t*>(doc.data());
        b.size = doc.size();
        return b;
    }

    // The result train wrote, with BYTES_REF resolved against shared.
    Value decoded_result() const {
        return wire::decode(result.data(), result.size(), [this](std::uint64_t id, std::uint64_t size) {
            if (id >= shared.size() || size > shared[id]->size()) throw wire::Error("bad reference");
            return Bytes::view(shared[id]->data(), size, static_cast<std::int64_t>(id));
        });
    }
};

struct StageResult {
    std::int32_t code;
    std::int32_t status_code;
    std::string message;
};

// Drives one task through the plugin table: create, load, train, destroy.
class Driver {
public:
    explicit Driver(const char* name = "scripted") : plugin_(fedflow::detail::make_plugin<Scripted>(name)) {
        fedflow_status st{};
        task_ = plugin_.create(&st);
        REQUIRE(task_ != nullptr);
    }
    ~Driver() { plugin_.destroy(task_); }
    Driver(const Driver&) = delete;
    Driver& operator=(const Driver&) = delete;

    StageResult load(const fedflow_context& c) {
        fedflow_status st{};
        std::int32_t rc = plugin_.load(task_, &c, &st);
        return {rc, st.code, st.message};
    }
    StageResult train(const fedflow_context& c, const char* device = "cpu") {
        fedflow_status st{};
        std::int32_t rc = plugin_.train(task_, &c, device, &st);
        return {rc, st.code, st.message};
    }
    const fedflow_plugin& plugin() const { return plugin_; }

private:
    fedflow_plugin plugin_;
    void* task_ = nullptr;
};

// Resets the scripted behaviour for each test case.
struct Fixture {
    Fixture() {
        on_load = nullptr;
        on_train = nullptr;
    }
    ~Fixture() {
        on_load = nullptr;
        on_train = nullptr;
    }
};

// Runs load with params and returns the stage result (and, through
// capture, whatever load stored).
StageResult load_with(const Dict& params, std::function<void(Context&)> f) {
    FakeHost host(params);
    on_load = std::move(f);
    Driver d;
    return d.load(host.ctx);
}

bool contains(const std::string& haystack, const std::string& needle) {
    return haystack.find(needle) != std::string::npos;
}

}  // namespace

TEST_CASE_FIXTURE(Fixture, "make_plugin fills the plugin table") {
    fedflow_plugin p = fedflow::detail::make_plugin<Scripted>("scripted");
    CHECK(p.magic == FEDFLOW_ABI_MAGIC);
    CHECK(p.abi_version == FEDFLOW_ABI_VERSION);
    CHECK(p.size == sizeof(fedflow_plugin));
    CHECK(p.reserved == 0);
    // This SDK resolves inputs through input_files, and reads each call's
    // context (a kept task's next round).
    CHECK(p.features == (FEDFLOW_FEATURE_INPUT_FILES | FEDFLOW_FEATURE_NEXT_ROUND));
    CHECK(std::string(p.name) == "scripted");
    CHECK((p.create != nullptr));
    CHECK((p.destroy != nullptr));
    CHECK((p.load != nullptr));
    CHECK((p.train != nullptr));
}

TEST_CASE_FIXTURE(Fixture, "the context describes the task") {
    FakeHost host(Dict{{"lr", 0.1}}, Dict{{"server", Dict{{"0", Dict{{"round", 1}}}}}});
    host.ctx.round = 4;
    std::string device_in_load = "unset";
    on_load = [&](Context& ctx) {
        CHECK(ctx.task_id() == "task-7");
        CHECK(ctx.group() == "clients");
        CHECK(ctx.round() == 4);
        CHECK(ctx.workdir() == "/runs/demo/clients/task-7");
        CHECK(ctx.plan_dir() == "/plans");
        CHECK(ctx.params() == Dict{{"lr", 0.1}});
        CHECK(ctx.inputs().at("server").as<Dict>().at("0").as<Dict>().at("round").as<std::int64_t>() == 1);
        CHECK(ctx.raw() == &host.ctx);
        device_in_load = ctx.device();
    };
    std::string device_in_train;
    on_train = [&](Context& ctx, std::string_view device) {
        device_in_train = ctx.device();
        CHECK(device == "cuda:3");
        return Dict{};
    };
    Driver d;
    CHECK(d.load(host.ctx).code == FEDFLOW_OK);
    CHECK(d.train(host.ctx, "cuda:3").code == FEDFLOW_OK);
    CHECK(device_in_load.empty());
    CHECK(device_in_train == "cuda:3");
}

TEST_CASE_FIXTURE(Fixture, "a missing input says where it was looked for and what there is") {
    FakeHost host({}, Dict{{"server", Dict{}}, {"clients", Dict{{"1", Dict{}}}}});
    host.ctx.round = 3;
    const std::string about = wire::encode(Value(Dict{
        {"server", Dict{{"tasks", 1}, {"finished", 0}, {"round", 2}}},
        {"clients", Dict{{"tasks", 2}, {"finished", 1}, {"round", 3}}},
    }));
    host.ctx.inputs_about = FakeHost::buffer(about);
    std::string missing_task, missing_client, missing_group;
    on_load = [&](Context& ctx) {
        CHECK_THROWS_WITH_AS(ctx.inputs().at("server").as<Dict>().at("0"),
                             "inputs.server has no task '0' (0 of 1 finished in round 2), round 3", TypeError);
        CHECK_THROWS_WITH_AS(ctx.inputs().at("clients").as<Dict>().at("0"),
                             "inputs.clients has no task '0' (1 of 2 finished), round 3", TypeError);
        CHECK_THROWS_WITH_AS(ctx.inputs().at("model"), "inputs has no group 'model' (it has: server, clients), round 3",
                             TypeError);
        // A copy keeps the description; a Dict of one's own has none.
        Dict copy = ctx.inputs().at("server").as<Dict>();
        CHECK_THROWS_WITH_AS(copy.at("4"), "inputs.server has no task '4' (0 of 1 finished in round 2), round 3",
                             TypeError);
        CHECK_THROWS_WITH_AS(Dict{}.at("4"), "no key '4'", TypeError);
        CHECK(ctx.inputs_about().at("clients").as<Dict>().at("tasks").as<std::int64_t>() == 2);
    };
    Driver d;
    CHECK(d.load(host.ctx).code == FEDFLOW_OK);
}

TEST_CASE_FIXTURE(Fixture, "a worker that predates inputs_about: the count of what finished, and no error") {
    FakeHost host({}, Dict{{"server", Dict{{"1", Dict{}}}}});
    host.ctx.size = offsetof(fedflow_context, inputs_about);  // the context ends before it
    static const std::string garbage = "garbage that must not be read";
    host.ctx.inputs_about = FakeHost::buffer(garbage);
    on_load = [&](Context& ctx) {
        CHECK(ctx.inputs_about().empty());
        CHECK_THROWS_WITH_AS(ctx.inputs().at("server").as<Dict>().at("0"), "inputs.server has no task '0' (1 finished)",
                             TypeError);
    };
    Driver d;
    CHECK(d.load(host.ctx).code == FEDFLOW_OK);
}

TEST_CASE_FIXTURE(Fixture, "input byte values are views of the files the worker mapped, with their paths") {
    static const std::uint8_t weights[] = {1, 2, 3, 4, 5, 6, 7, 8};
    const fedflow_input_file files[] = {{weights, 8, "/runs/clients/0/weights.bin"},
                                        {nullptr, 0, "/runs/clients/1/e.bin"}};
    Dict inputs{{"clients", Dict{{"0", Dict{{"weights", Bytes::view(nullptr, 6, 0)}, {"n", 3}}},
                                 {"1", Dict{{"e", Bytes::view(nullptr, 0, 1)}}}}}};
    FakeHost host({}, inputs);  // encoded with BYTES_REF 0 and 1, as the worker hands them on
    host.ctx.input_files = files;
    host.ctx.input_file_count = 2;
    on_load = [&](Context& ctx) {
        const Bytes& b = ctx.inputs().at("clients").as<Dict>().at("0").as<Dict>().at("weights").as<Bytes>();
        CHECK(b.data() == weights);  // the mapping itself, no copy
        CHECK(b.size() == 6);        // a reference may take the first n bytes
        CHECK(std::string(b.file()) == "/runs/clients/0/weights.bin");
        CHECK(b.shm_id() == -1);  // not a buffer of this task: a result that holds it copies it
        CHECK(ctx.inputs().at("clients").as<Dict>().at("1").as<Dict>().at("e").as<Bytes>().empty());
    };
    Driver d;
    CHECK(d.load(host.ctx).code == FEDFLOW_OK);

    SUBCASE("a reference past the table fails load, naming it") {
        FakeHost bad({}, Dict{{"clients", Dict{{"0", Dict{{"w", Bytes::view(nullptr, 1, 5)}}}}}});
        bad.ctx.input_files = files;
        bad.ctx.input_file_count = 2;
        Driver d2;
        StageResult r = d2.load(bad.ctx);
        CHECK(r.code == FEDFLOW_ERROR);
        CHECK(r.message.find("inputs refer to byte file 5 of 2") != std::string::npos);
    }
    SUBCASE("more bytes than the file has fails load") {
        FakeHost bad({}, Dict{{"clients", Dict{{"0", Dict{{"w", Bytes::view(nullptr, 9, 0)}}}}}});
        bad.ctx.input_files = files;
        bad.ctx.input_file_count = 2;
        Driver d2;
        CHECK(d2.load(bad.ctx).message.find("inputs refer to 9 bytes of /runs/clients/0/weights.bin, which has 8") !=
              std::string::npos);
    }
}

TEST_CASE_FIXTURE(Fixture, "no params and no inputs are empty dicts") {
    FakeHost host;
    REQUIRE(host.ctx.params.size == 0);
    on_load = [](Context& ctx) {
        CHECK(ctx.params().empty());
        CHECK(ctx.inputs().empty());
        CHECK(ctx.param<std::int64_t>("n", 3) == 3);
    };
    Driver d;
    CHECK(d.load(host.ctx).code == FEDFLOW_OK);
}

TEST_CASE_FIXTURE(Fixture, "param<T>(key, default) is typed") {
    Dict params{{"n", 5},
                {"lr", 0.5},
                {"whole", 2},
                {"name", "x"},
                {"on", true},
                {"layers", List{1, 2}},
                {"opt", Dict{{"m", 0.9}}},
                {"blob", Bytes("ab", 2)}};
    StageResult r = load_with(params, [](Context& ctx) {
        CHECK(ctx.param<std::int64_t>("n", 3) == 5);
        CHECK(ctx.param<std::int64_t>("absent", 3) == 3);
        CHECK(ctx.param<int>("n") == 5);
        CHECK(ctx.param<std::uint16_t>("n") == 5);
        CHECK(ctx.param<double>("lr") == 0.5);
        CHECK(ctx.param<double>("whole") == 2.0);  // TOML `x = 2` for a double param
        CHECK(ctx.param<float>("lr") == 0.5f);
        CHECK(ctx.param("absent", 0.1) == 0.1);
        CHECK(ctx.param<std::string>("name") == "x");
        CHECK(ctx.param<std::string>("absent", "dflt") == "dflt");
        CHECK(ctx.param<bool>("on"));
        CHECK(ctx.param<bool>("absent", false) == false);
        CHECK(ctx.param<List>("layers").size() == 2);
        CHECK(ctx.param<Dict>("opt").at("m").as<double>() == 0.9);
        CHECK(ctx.param<Bytes>("blob") == Bytes("ab", 2));
    });
    CHECK(r.code == FEDFLOW_OK);
    CHECK(r.message.empty());
}

TEST_CASE_FIXTURE(Fixture, "a missing param fails load with a message naming it") {
    StageResult r = load_with(Dict{{"n", 1}}, [](Context& ctx) { (void)ctx.param<double>("learning_rate"); });
    CHECK(r.code == FEDFLOW_ERROR);
    CHECK(r.status_code == FEDFLOW_ERROR);
    CHECK(contains(r.message, "learning_rate"));
    CHECK(contains(r.message, "missing"));
}

TEST_CASE_FIXTURE(Fixture, "a param of another type fails with both types named, even with a default") {
    StageResult r = load_with(Dict{{"lr", "fast"}}, [](Context& ctx) { (void)ctx.param<double>("lr", 0.1); });
    CHECK(r.code == FEDFLOW_ERROR);
    CHECK(contains(r.message, "lr"));
    CHECK(contains(r.message, "string"));
    CHECK(contains(r.message, "double"));

    r = load_with(Dict{{"epochs", 2.5}}, [](Context& ctx) { (void)ctx.param<int>("epochs"); });
    CHECK(r.code == FEDFLOW_ERROR);
    CHECK(contains(r.message, "epochs"));
    CHECK(contains(r.message, "double"));
    CHECK(contains(r.message, "integer"));

    r = load_with(Dict{{"flag", 1}}, [](Context& ctx) { (void)ctx.param<bool>("flag"); });
    CHECK(r.code == FEDFLOW_ERROR);
    CHECK(contains(r.message, "flag"));
}

TEST_CASE_FIXTURE(Fixture, "integer params are range-checked for the type asked for") {
    auto fails = [](std::int64_t value, const std::function<void(Context&)>& f) {
        StageResult r = load_with(Dict{{"k", value}}, f);
        INFO("value " << value << ": " << r.message);
        CHECK(r.code == FEDFLOW_ERROR);
        CHECK(contains(r.message, "'k'"));
        CHECK(contains(r.message, "range"));
    };
    auto ok = [](std::int64_t value, const std::function<void(Context&)>& f) {
        StageResult r = load_with(Dict{{"k", value}}, f);
        INFO("value " << value << ": " << r.message);
        CHECK(r.code == FEDFLOW_OK);
    };
    fails(3000000000LL, [](Context& c) { (void)c.param<int>("k"); });
    fails(-3000000000LL, [](Context& c) { (void)c.param<int>("k"); });
    ok(std::numeric_limits<int>::max(),
       [](Context& c) { CHECK(c.param<int>("k") == std::numeric_limits<int>::max()); });
    ok(std::numeric_limits<int>::min(),
       [](Context& c) { CHECK(c.param<int>("k") == std::numeric_limits<int>::min()); });
    fails(256, [](Context& c) { (void)c.param<std::uint8_t>("k"); });
    fails(-1, [](Context& c) { (void)c.param<std::uint8_t>("k"); });
    ok(255, [](Context& c) { CHECK(c.param<std::uint8_t>("k") == 255); });
    fails(-129, [](Context& c) { (void)c.param<std::int8_t>("k"); });
    fails(128, [](Context& c) { (void)c.param<std::int8_t>("k"); });
    fails(-1, [](Context& c) { (void)c.param<std::uint64_t>("k"); });
    fails(-1, [](Context& c) { (void)c.param<unsigned>("k", 5u); });
    ok(std::numeric_limits<std::int64_t>::max(), [](Context& c) {
        CHECK(c.param<std::uint64_t>("k") == static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()));
    });
}

TEST_CASE_FIXTURE(Fixture, "an exception in load fails load with its message") {
    StageResult r = load_with({}, [](Context&) { throw std::runtime_error("injected failure in load"); });
    CHECK(r.code == FEDFLOW_ERROR);
    CHECK(r.status_code == FEDFLOW_ERROR);
    CHECK(r.message == "injected failure in load");
}

TEST_CASE_FIXTURE(Fixture, "an exception in train fails train with its message, and no result is written") {
    FakeHost host;
    on_train = [](Context&, std::string_view) -> Dict { throw std::logic_error("injected failure in train"); };
    Driver d;
    REQUIRE(d.load(host.ctx).code == FEDFLOW_OK);
    StageResult r = d.train(host.ctx);
    CHECK(r.code == FEDFLOW_ERROR);
    CHECK(r.message == "injected failure in train");
    CHECK(host.result_allocs == 0);
}

TEST_CASE_FIXTURE(Fixture, "an exception not derived from std::exception still fails cleanly") {
    StageResult r = load_with({}, [](Context&) { throw 42; });
    CHECK(r.code == FEDFLOW_ERROR);
    CHECK_FALSE(r.message.empty());
}

TEST_CASE_FIXTURE(Fixture, "a long message is cut to FEDFLOW_MESSAGE_MAX, NUL-terminated") {
    StageResult r = load_with({}, [](Context&) { throw std::runtime_error(std::string(5000, 'm')); });
    CHECK(r.code == FEDFLOW_ERROR);
    CHECK(r.message.size() == FEDFLOW_MESSAGE_MAX - 1);
    CHECK(r.message == std::string(FEDFLOW_MESSAGE_MAX - 1, 'm'));
}

TEST_CASE_FIXTURE(Fixture, "std::bad_alloc is FEDFLOW_OUT_OF_MEMORY, in load and in train") {
    StageResult r = load_with({}, [](Context&) { throw std::bad_alloc(); });
    CHECK(r.code == FEDFLOW_OUT_OF_MEMORY);
    CHECK(r.status_code == FEDFLOW_OUT_OF_MEMORY);
    CHECK(contains(r.message, "out of memory"));

    FakeHost host;
    on_load = nullptr;
    on_train = [](Context&, std::string_view) -> Dict { throw std::bad_alloc(); };
    Driver d;
    REQUIRE(d.load(host.ctx).code == FEDFLOW_OK);
    StageResult t = d.train(host.ctx);
    CHECK(t.code == FEDFLOW_OUT_OF_MEMORY);
    SUBCASE("train may be retried in the same process") {
        on_train = [](Context&, std::string_view) { return Dict{{"second", true}}; };
        CHECK(d.train(host.ctx).code == FEDFLOW_OK);
        CHECK(host.decoded_result() == Value(Dict{{"second", true}}));
    }
}

TEST_CASE_FIXTURE(Fixture, "CUDA out-of-memory text is FEDFLOW_OUT_OF_MEMORY and keeps its message") {
    const char* texts[] = {
        "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 15.78 GiB total capacity)",
        "cudaMalloc failed: cudaErrorMemoryAllocation",
    };
    for (const char* text : texts) {
        CAPTURE(text);
        StageResult r = load_with({}, [text](Context&) { throw std::runtime_error(text); });
        CHECK(r.code == FEDFLOW_OUT_OF_MEMORY);
        CHECK(r.message == text);
    }
    StageResult other = load_with({}, [](Context&) { throw std::runtime_error("CUDA error: device-side assert"); });
    CHECK(other.code == FEDFLOW_ERROR);
}

TEST_CASE_FIXTURE(Fixture, "the encoded result decodes to what train returned") {
    FakeHost host;
    Dict returned{
        {"device", "cpu"},
        {"n", 3},
        {"ok", true},
        {"loss", 0.25},
        {"history", List{1.0, 0.5, 0.25}},
        {"meta", Dict{{"group", "clients"}}},
        {"none", nullptr},
        {"small", Bytes("\x01\x02\x03", 3)},
        {"neg", std::int64_t{-9}},
    };
    on_train = [&](Context&, std::string_view) { return returned; };
    Driver d;
    REQUIRE(d.load(host.ctx).code == FEDFLOW_OK);
    StageResult r = d.train(host.ctx);
    REQUIRE(r.code == FEDFLOW_OK);
    CHECK(r.message.empty());
    CHECK(host.result_allocs == 1);
    CHECK(host.result.size() == wire::encoded_size(Value(returned)));  // asked for exactly its size
    Value back = host.decoded_result();
    CHECK(back == Value(returned));
    std::vector<std::string> keys;
    for (const auto& [k, v] : back.as<Dict>()) keys.push_back(k);
    CHECK(keys.front() == "device");
    CHECK(keys.back() == "neg");
}

TEST_CASE_FIXTURE(Fixture, "an empty result is an empty dict") {
    FakeHost host;
    Driver d;
    REQUIRE(d.load(host.ctx).code == FEDFLOW_OK);
    REQUIRE(d.train(host.ctx).code == FEDFLOW_OK);
    CHECK(host.decoded_result() == Value(Dict{}));
}

TEST_CASE_FIXTURE(Fixture, "ctx.bytes() is shared memory, sent as BYTES_REF without a copy") {
    FakeHost host;
    on_train = [](Context& ctx, std::string_view) {
        Bytes w = ctx.bytes(4096);
        for (std::uint8_t c : w) REQUIRE(c == 0);  // zero-filled
        std::memset(w.data(), 7, w.size());
        Dict out;
        out["weights"] = w;
        out["owned"] = Bytes("x", 1);
        return out;
    };
    Driver d;
    REQUIRE(d.load(host.ctx).code == FEDFLOW_OK);
    REQUIRE(d.train(host.ctx).code == FEDFLOW_OK);
    REQUIRE(host.shared.size() == 1);
    CHECK(host.shared[0]->size() == 4096);
    CHECK(std::all_of(host.shared[0]->begin(), host.shared[0]->end(), [](std::uint8_t c) { return c == 7; }));
    CHECK(host.result.size() < 4096);  // the 4096 bytes are not in the result document

    // Without a resolver the reference is refused: it really is a BYTES_REF.
    CHECK_THROWS_AS(wire::decode(host.result.data(), host.result.size()), wire::Error);
    Value back = host.decoded_result();
    const Bytes& w = back.as<Dict>().at("weights").as<Bytes>();
    CHECK(w.shm_id() == 0);
    CHECK(w.size() == 4096);
    CHECK(w.data() == host.shared[0]->data());
    CHECK(back.as<Dict>().at("owned").as<Bytes>().shm_id() == -1);  // owned bytes are copied in
}

TEST_CASE_FIXTURE(Fixture, "a failing bytes_alloc becomes the stage's error") {
    FakeHost host;
    on_train = [](Context& ctx, std::string_view) { return Dict{{"w", ctx.bytes(64)}}; };
    Driver d;
    REQUIRE(d.load(host.ctx).code == FEDFLOW_OK);
    SUBCASE("out of shared memory is out of memory") {
        host.fail_bytes_with = FEDFLOW_OUT_OF_MEMORY;
        CHECK(d.train(host.ctx).code == FEDFLOW_OUT_OF_MEMORY);
    }
    SUBCASE("another failure keeps the host's message") {
        host.fail_bytes_with = FEDFLOW_ERROR;
        StageResult r = d.train(host.ctx);
        CHECK(r.code == FEDFLOW_ERROR);
        CHECK(contains(r.message, "no shared memory left for you"));
    }
}

TEST_CASE_FIXTURE(Fixture, "a failing result_alloc becomes the stage's error") {
    FakeHost host;
    on_train = [](Context&, std::string_view) { return Dict{{"a", 1}}; };
    Driver d;
    REQUIRE(d.load(host.ctx).code == FEDFLOW_OK);
    SUBCASE("out of memory") {
        host.fail_result_with = FEDFLOW_OUT_OF_MEMORY;
        CHECK(d.train(host.ctx).code == FEDFLOW_OUT_OF_MEMORY);
    }
    SUBCASE("another failure") {
        host.fail_result_with = FEDFLOW_INVALID;
        StageResult r = d.train(host.ctx);
        CHECK(r.code == FEDFLOW_ERROR);
        CHECK(contains(r.message, "result too large for the pipe"));
    }
}

TEST_CASE_FIXTURE(Fixture, "ctx.log reaches the host with its level") {
    FakeHost host;
    on_load = [](Context& ctx) {
        ctx.log("plain");
        ctx.log(std::string_view("warn\0ignored", 4), fedflow::LogLevel::warning);
        ctx.log("bad", fedflow::LogLevel::error);
    };
    Driver d;
    REQUIRE(d.load(host.ctx).code == FEDFLOW_OK);
    REQUIRE(host.logs.size() == 3);
    CHECK(host.logs[0] == std::make_pair(FEDFLOW_LOG_INFO, std::string("plain")));
    CHECK(host.logs[1] == std::make_pair(FEDFLOW_LOG_WARNING, std::string("warn")));
    CHECK(host.logs[2] == std::make_pair(FEDFLOW_LOG_ERROR, std::string("bad")));
}

TEST_CASE_FIXTURE(Fixture, "malformed params fail load instead of crashing") {
    FakeHost host;
    bool ran = false;
    on_load = [&](Context&) { ran = true; };
    SUBCASE("garbage") {
        static const std::uint8_t garbage[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17};
        host.ctx.params = fedflow_buffer{garbage, sizeof garbage};
    }
    SUBCASE("a list where a dict belongs") {
        host.params_doc = wire::encode(Value(List{1, 2}));
        host.ctx.params = FakeHost::buffer(host.params_doc);
    }
    SUBCASE("inputs that are not a dict") {
        host.inputs_doc = wire::encode(Value("text"));
        host.ctx.inputs = FakeHost::buffer(host.inputs_doc);
    }
    Driver d;
    StageResult r = d.load(host.ctx);
    CHECK(r.code == FEDFLOW_ERROR);
    CHECK_FALSE(r.message.empty());
    CHECK_FALSE(ran);
}

// The ABI says a fedflow_context is valid during the call that receives it
// only, so train may get another one than load did. The SDK must then use the
// one it was given, not the one it saw in load (Instance::context rebinds).
TEST_CASE_FIXTURE(Fixture, "train uses the context it is given, not the one load had") {
    FakeHost load_host;
    FakeHost train_host;
    train_host.ctx.round = 2;
    std::uint32_t round_in_train = 0;
    on_train = [&](Context& ctx, std::string_view) {
        round_in_train = ctx.round();
        ctx.log("from train");
        return Dict{{"w", ctx.bytes(16)}};
    };
    Driver d;
    REQUIRE(d.load(load_host.ctx).code == FEDFLOW_OK);
    REQUIRE(d.train(train_host.ctx).code == FEDFLOW_OK);
    CHECK(round_in_train == 2);
    CHECK(train_host.shared.size() == 1);
    CHECK(load_host.shared.empty());
    CHECK(train_host.logs.size() == 1);
    CHECK_NOTHROW(train_host.decoded_result());
}

// FEDFLOW_TASK itself, as a plugin uses it: the enumerator and the info record.
class Registered final : public fedflow::Task {
public:
    void load(Context&) override {}
    Dict train(Context&, std::string_view) override { return Dict{{"registered", true}}; }
};
FEDFLOW_TASK(Registered, "sdk_context_test")

TEST_CASE_FIXTURE(Fixture, "FEDFLOW_TASK exports one plugin through fedflow_plugin_enum") {
    const fedflow_plugin* p = nullptr;
    REQUIRE(fedflow_plugin_enum(&p, 0) == 1);
    REQUIRE(p != nullptr);
    CHECK(p->magic == FEDFLOW_ABI_MAGIC);
    CHECK(p->abi_version == FEDFLOW_ABI_VERSION);
    CHECK(p->size == sizeof(fedflow_plugin));
    CHECK(std::string(p->name) == "sdk_context_test");
    const fedflow_plugin* again = nullptr;
    CHECK(fedflow_plugin_enum(&again, 0) == 1);
    CHECK(again == p);  // one table, stable while loaded
    const fedflow_plugin* none = nullptr;
    CHECK(fedflow_plugin_enum(&none, 1) == 0);
    CHECK(none == nullptr);

    FakeHost host;
    fedflow_status st{};
    void* task = p->create(&st);
    REQUIRE(task != nullptr);
    CHECK(p->load(task, &host.ctx, &st) == FEDFLOW_OK);
    CHECK(p->train(task, &host.ctx, "cpu", &st) == FEDFLOW_OK);
    p->destroy(task);
    CHECK(host.decoded_result() == Value(Dict{{"registered", true}}));
}

TEST_CASE("FEDFLOW_TASK places the info record for the host to read") {
    CHECK(fedflow_plugin_info_entry.magic == FEDFLOW_ABI_MAGIC);
    CHECK(fedflow_plugin_info_entry.abi_version == FEDFLOW_ABI_VERSION);
    CHECK(std::string(fedflow_plugin_info_entry.name) == "sdk_context_test");
}

TEST_CASE("plugin names that may become folder names") {
    using fedflow::detail::valid_name;
    static_assert(valid_name("echo"));
    static_assert(valid_name("fedavg_client-2.0"));
    static_assert(!valid_name(""));
    static_assert(!valid_name("."));
    static_assert(!valid_name(".."));
    static_assert(valid_name("..."));
    static_assert(!valid_name("a/b"));
    static_assert(!valid_name("a b"));
    static_assert(!valid_name("ü"));
    CHECK(valid_name(std::string(FEDFLOW_NAME_MAX - 1, 'n').c_str()));
    CHECK_FALSE(valid_name(std::string(FEDFLOW_NAME_MAX, 'n').c_str()));
}

TEST_CASE("set_estimates reaches a worker that has it, and is skipped by one that predates it") {
    FakeHost host;
    static std::int64_t got[2];
    host.services.set_estimates = [](void*, std::int64_t memory, std::int64_t gpu_memory) {
        got[0] = memory;
        got[1] = gpu_memory;
    };
    Context ctx(&host.ctx);
    CHECK(ctx.set_estimates(100, -1));
    CHECK(got[0] == 100);
    CHECK(got[1] == -1);
    // A worker of services version 1: its table ends before set_estimates.
    host.services.size = offsetof(fedflow_host_services, set_estimates);
    got[0] = 0;
    CHECK_FALSE(ctx.set_estimates(5, 5));
    CHECK(got[0] == 0);
}

TEST_CASE("declare_gpu_memory: on a simulated GPU only, out of memory as a bad_alloc, skipped by an older worker") {
    FakeHost host;
    static std::uint64_t held;
    held = 0;
    host.services.declare_gpu_memory = [](void*, std::uint64_t bytes, fedflow_status* st) -> std::int32_t {
        if (bytes > 100) {
            st->code = FEDFLOW_OUT_OF_MEMORY;
            std::strcpy(st->message, "simulated GPU out of memory: sim:0 is full");
            return FEDFLOW_OUT_OF_MEMORY;
        }
        held = bytes;
        return FEDFLOW_OK;
    };
    Context ctx(&host.ctx);
    ctx.set_device("cuda:0");  // real allocations count there: nothing is declared
    CHECK_FALSE(ctx.declare_gpu_memory(50));
    CHECK(held == 0);
    ctx.set_device("sim:0");
    CHECK(ctx.declare_gpu_memory(50));
    CHECK(held == 50);
    CHECK_THROWS_WITH_AS(ctx.declare_gpu_memory(500), doctest::Contains("sim:0 is full"), std::bad_alloc);
    CHECK(held == 50);
    // A worker of services version 2: its table ends before declare_gpu_memory.
    host.services.size = offsetof(fedflow_host_services, declare_gpu_memory);
    CHECK_FALSE(ctx.declare_gpu_memory(10));
    CHECK(held == 50);
}
