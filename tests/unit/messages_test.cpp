// The worker protocol's messages: each survives encode, a frame and decode
// unchanged; decode refuses a body that lacks a field, has one of the wrong
// type or out of range, or one it does not know, naming both; and the host's
// Conversation accepts only what answers what it asked.
#include "common/messages.hpp"

#include <fedflow/detail/wire.hpp>

#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <limits>
#include <string>

using namespace fedflow;
namespace ch = fedflow::channel;
namespace msg = fedflow::messages;

namespace {

// Through the bytes of a frame, as the other side reads them.
ch::Message over_the_wire(ch::Type type, const Dict& body) {
    std::string f = ch::frame(type, body);
    ch::FrameReader r;
    r.feed(f.data(), f.size());
    auto m = r.next();
    REQUIRE(m);
    CHECK(r.pending() == 0);
    return std::move(*m);
}

template <class M>
M round_trip(const M& m) {
    ch::Message frame = over_the_wire(M::type, m.encode());
    CHECK(frame.type == M::type);
    return M::decode(frame.body);
}

bool from_host(ch::Type t) { return static_cast<std::uint32_t>(t) < 10; }

// body without key
Dict without(Dict body, const char* key) {
    REQUIRE(body.erase(key));
    return body;
}

Dict with(Dict body, const char* key, Value v) {
    body.insert_or_assign(key, std::move(v));
    return body;
}

std::string decode_error(ch::Type type, const Dict& body) {
    try {
        if (from_host(type)) (void)msg::decode_from_host(ch::Message{type, body});
        else (void)msg::decode_from_worker(ch::Message{type, body});
    } catch (const ch::ProtocolError& e) {
        return e.what();
    }
    return "(accepted)";
}

msg::Config a_config() {
    msg::Config c;
    c.task_id = "client-3";
    c.group = "clients";
    c.round = 7;
    c.workdir = "/runs/x/clients/round-7/client-3";
    c.plan_dir = "/plans";
    c.plugin_path = "/plugins/echo.so";
    c.plugin_name = "echo";
    c.shm_prefix = "fedflow-12-abcdef01-t4";
    c.inputs_segment = "fedflow-12-abcdef01-in2";
    c.result_limit = std::uint64_t{1} << 40;
    c.params = Dict{{"lr", 0.5}, {"layers", List{1, 2}}, {"nested", Dict{{"a", "b"}}}};
    return c;
}

msg::Loaded a_loaded(std::int64_t ms, std::int64_t peak_memory) {
    msg::Loaded l;
    l.ms = ms;
    l.peak_memory = peak_memory;
    return l;
}

msg::Result a_result() {
    msg::Result r;
    r.size = 1234;
    r.buffers = {{std::uint64_t{4096}, 0xfedcba9876543210ull}, {std::nullopt, 0}, {std::uint64_t{0}, 7}};
    r.ms = 15;
    r.train_end_ns = 987654321012;
    r.peak_memory = 1 << 26;
    return r;
}

msg::Failed a_failure() {
    return msg::Failed{msg::Failed::Stage::train, msg::Failed::Kind::oom, "CUDA out of memory", 12, 1 << 20};
}

ch::Message frame_of(const msg::FromWorker& m) { return ch::Message{msg::type_of(m), msg::encode(m)}; }

}  // namespace

TEST_CASE("every message survives encoding, a frame and decoding") {
    SUBCASE("config") {
        msg::Config c = a_config();
        CHECK(round_trip(c) == c);
        c.inputs_segment.clear();  // a group without inputs
        c.round = std::numeric_limits<std::uint32_t>::max();
        c.result_limit = 0;
        c.params = Dict{};
        CHECK(round_trip(c) == c);
    }
    SUBCASE("load and exit have no body") {
        CHECK(msg::Load{}.encode().empty());
        CHECK(msg::Exit{}.encode().empty());
        CHECK(round_trip(msg::Load{}) == msg::Load{});
        CHECK(round_trip(msg::Exit{}) == msg::Exit{});
    }
    SUBCASE("train") { CHECK(round_trip(msg::Train{"cuda:1"}) == msg::Train{"cuda:1"}); }
    SUBCASE("train: exit_after is written only when set") {
        CHECK_FALSE(msg::Train{"cpu"}.encode().contains("exit_after"));
        CHECK(round_trip(msg::Train{"cpu", true}) == msg::Train{"cpu", true});
        CHECK_FALSE(msg::Train::decode(Dict{{"device", "cpu"}}).exit_after);
        CHECK_THROWS_WITH_AS(msg::Train::decode(Dict{{"device", "cpu"}, {"exit_after", 1}}),
                             "'train' message: field 'exit_after' is an integer, not a bool", ch::ProtocolError);
    }
    SUBCASE("train: ahead is written only when set") {
        msg::Train ahead{"cpu", true};
        ahead.ahead = true;
        CHECK_FALSE(msg::Train{"cpu", true}.encode().contains("ahead"));
        CHECK(round_trip(ahead) == ahead);
        CHECK_THROWS_WITH_AS(msg::Train::decode(Dict{{"device", "cpu"}, {"ahead", "yes"}}),
                             "'train' message: field 'ahead' is a string, not a bool", ch::ProtocolError);
    }
    SUBCASE("ready") { CHECK(round_trip(msg::Ready{"echo", 1}) == msg::Ready{"echo", 1}); }
    SUBCASE("ready: protocol 1 is written as before, a later one is told") {
        CHECK_FALSE(msg::Ready{"echo", 1}.encode().contains("protocol"));
        CHECK(msg::Ready::decode(Dict{{"plugin", "echo"}, {"abi_version", 1}}).protocol == 1);
        msg::Ready r{"echo", 1, msg::worker_protocol};
        CHECK(r.encode().contains("protocol"));
        CHECK(round_trip(r) == r);
        CHECK_THROWS_AS(msg::Ready::decode(Dict{{"plugin", "echo"}, {"abi_version", 1}, {"protocol", 0}}),
                        ch::ProtocolError);
    }
    SUBCASE("loaded, with and without the task's own estimates") {
        CHECK(round_trip(a_loaded(0, 123456789)) == a_loaded(0, 123456789));
        CHECK_FALSE(a_loaded(0, 1).encode().contains("memory_estimate"));
        msg::Loaded l = a_loaded(3, 4);
        l.memory_estimate = std::int64_t{1} << 33;
        CHECK(round_trip(l) == l);
        l.gpu_memory_estimate = 0;
        CHECK(round_trip(l) == l);
    }
    SUBCASE("result: a freed buffer and a checksum with the top bit set come back as they were") {
        msg::Result r = a_result();
        CHECK(round_trip(r) == r);
        Dict body = r.encode();
        CHECK(body.at("bytes").as<std::int64_t>() == 3);
        CHECK(body.at("bytes_sizes").as<List>() == List{4096, -1, 0});
        CHECK(body.at("bytes_checksums").as<List>()[0].as<std::int64_t>() < 0);
        r.buffers.clear();
        CHECK(round_trip(r) == r);
    }
    SUBCASE("failed, with and without the stage's figures") {
        msg::Failed f = a_failure();
        CHECK(round_trip(f) == f);
        msg::Failed g{msg::Failed::Stage::start, msg::Failed::Kind::bad_plugin, "", std::nullopt, std::nullopt};
        CHECK(round_trip(g) == g);
        CHECK_FALSE(g.encode().contains("ms"));
        for (auto stage : {msg::Failed::Stage::start, msg::Failed::Stage::load, msg::Failed::Stage::train})
            for (auto kind : {msg::Failed::Kind::exception, msg::Failed::Kind::oom, msg::Failed::Kind::protocol}) {
                msg::Failed h{stage, kind, "why", 1, 2};
                CHECK(round_trip(h) == h);
            }
        msg::Failed c{msg::Failed::Stage::channel, msg::Failed::Kind::protocol, "bad frame", std::nullopt,
                      std::nullopt};
        CHECK(round_trip(c) == c);
    }
    SUBCASE("the variants keep the message's type") {
        msg::FromWorker w = msg::decode_from_worker(over_the_wire(ch::Type::result, a_result().encode()));
        CHECK(std::get<msg::Result>(w) == a_result());
        CHECK(msg::type_of(w) == ch::Type::result);
        msg::FromHost h = msg::decode_from_host(over_the_wire(ch::Type::train, msg::Train{"cpu"}.encode()));
        CHECK(std::get<msg::Train>(h).device == "cpu");
        CHECK(msg::type_of(h) == ch::Type::train);
    }
}

TEST_CASE("decode names the message and the field it refuses") {
    const Dict config = a_config().encode();
    const Dict result = a_result().encode();
    const Dict failed = a_failure().encode();
    const Dict loaded = a_loaded(5, 6).encode();

    SUBCASE("a missing field") {
        CHECK(decode_error(ch::Type::failed, Dict{}) == "'failed' message: field 'stage' is missing");
        CHECK(decode_error(ch::Type::failed, without(failed, "kind")) == "'failed' message: field 'kind' is missing");
        CHECK(decode_error(ch::Type::loaded, without(loaded, "peak_memory")) ==
              "'loaded' message: field 'peak_memory' is missing");
        CHECK(decode_error(ch::Type::config, without(config, "params")) ==
              "'config' message: field 'params' is missing");
        CHECK(decode_error(ch::Type::result, without(result, "train_end_ns")) ==
              "'result' message: field 'train_end_ns' is missing");
        CHECK(decode_error(ch::Type::train, Dict{}) == "'train' message: field 'device' is missing");
        CHECK(decode_error(ch::Type::ready, Dict{{"plugin", "echo"}}) ==
              "'ready' message: field 'abi_version' is missing");
    }
    SUBCASE("a field of the wrong type") {
        CHECK(decode_error(ch::Type::loaded, with(loaded, "ms", "5")) ==
              "'loaded' message: field 'ms' is a string, not an integer");
        CHECK(decode_error(ch::Type::loaded, with(loaded, "ms", 5.0)) ==
              "'loaded' message: field 'ms' is a double, not an integer");
        CHECK(decode_error(ch::Type::failed, with(failed, "message", nullptr)) ==
              "'failed' message: field 'message' is a null, not a string");
        CHECK(decode_error(ch::Type::config, with(config, "params", List{})) ==
              "'config' message: field 'params' is a list, not a dict");
        CHECK(decode_error(ch::Type::result, with(result, "bytes_sizes", Dict{})) ==
              "'result' message: field 'bytes_sizes' is a dict, not a list");
        CHECK(decode_error(ch::Type::result, with(result, "bytes_checksums", List{1, "2", 3})) ==
              "'result' message: field 'bytes_checksums' item 1 is a string, not an integer");
    }
    SUBCASE("a value out of range") {
        CHECK(decode_error(ch::Type::loaded, with(loaded, "ms", -1)) ==
              "'loaded' message: field 'ms' is -1, not in 0..9223372036854775807");
        CHECK(decode_error(ch::Type::config, with(config, "round", std::int64_t{1} << 32)) ==
              "'config' message: field 'round' is 4294967296, not in 0..4294967295");
        CHECK(decode_error(ch::Type::config, with(config, "result_limit", -5)) ==
              "'config' message: field 'result_limit' is -5, not in 0..9223372036854775807");
        CHECK(decode_error(ch::Type::result, with(result, "size", -1)) ==
              "'result' message: field 'size' is -1, not in 0..9223372036854775807");
        CHECK(decode_error(ch::Type::result, with(result, "bytes_sizes", List{1, -2, 3})) ==
              "'result' message: field 'bytes_sizes' item 1 is -2, not in -1..9223372036854775807");
        CHECK(decode_error(ch::Type::loaded, with(loaded, "gpu_memory_estimate", -1)) ==
              "'loaded' message: field 'gpu_memory_estimate' is -1, not in 0..9223372036854775807");
        CHECK(decode_error(ch::Type::failed, with(failed, "peak_memory", -3)) ==
              "'failed' message: field 'peak_memory' is -3, not in 0..9223372036854775807");
        CHECK(decode_error(ch::Type::ready, Dict{{"plugin", "echo"}, {"abi_version", -1}}) ==
              "'ready' message: field 'abi_version' is -1, not in 0..4294967295");
    }
    SUBCASE("an empty name") {
        CHECK(decode_error(ch::Type::train, Dict{{"device", ""}}) == "'train' message: field 'device' is empty");
        CHECK(decode_error(ch::Type::config, with(config, "task_id", "")) ==
              "'config' message: field 'task_id' is empty");
        CHECK(decode_error(ch::Type::ready, Dict{{"plugin", ""}, {"abi_version", 1}}) ==
              "'ready' message: field 'plugin' is empty");
    }
    SUBCASE("a name that is not one of the stages or kinds, quoted and escaped") {
        CHECK(decode_error(ch::Type::failed, with(failed, "stage", "boot")) ==
              "'failed' message: field 'stage' is \"boot\", not one of start, load, train, channel");
        CHECK(decode_error(ch::Type::failed, with(failed, "kind", "\x1b]0;pwned\x07")) ==
              "'failed' message: field 'kind' is \"\\e]0;pwned\\x07\", not one of exception, oom, bad_plugin, "
              "protocol");
        CHECK(decode_error(ch::Type::failed, with(failed, "stage", std::string(100, 'x'))) ==
              "'failed' message: field 'stage' is \"" + std::string(64, 'x') +
                  "\"..., not one of start, load, train, channel");
    }
    SUBCASE("a kind its stage never has") {
        CHECK(decode_error(ch::Type::failed, with(failed, "kind", "bad_plugin")) ==
              "'failed' message: field 'kind' is bad_plugin in stage train (only in start)");
        CHECK(decode_error(ch::Type::failed, with(failed, "stage", "channel")) ==
              "'failed' message: field 'kind' is oom in stage channel (only protocol)");
    }
    SUBCASE("buffer lists that do not match the count") {
        CHECK(decode_error(ch::Type::result, with(result, "bytes", 4)) ==
              "'result' message: field 'bytes_sizes' has 3 items, but 'bytes' announces 4 buffers");
        CHECK(decode_error(ch::Type::result, with(result, "bytes_checksums", List{1, 2})) ==
              "'result' message: field 'bytes_checksums' has 2 items, but 'bytes' announces 3 buffers");
    }
    SUBCASE("a field it does not know") {
        CHECK(decode_error(ch::Type::loaded, with(loaded, "mss", 1)) == "'loaded' message: unknown field \"mss\"");
        CHECK(decode_error(ch::Type::load, Dict{{"now", true}}) == "'load' message: unknown field \"now\"");
        CHECK(decode_error(ch::Type::exit, Dict{{"code", 1}}) == "'exit' message: unknown field \"code\"");
    }
    SUBCASE("a type the sender does not send, or that does not exist") {
        CHECK(decode_error(ch::Type::config, Dict{}) != "(accepted)");
        CHECK_THROWS_WITH_AS((void)msg::decode_from_worker(ch::Message{ch::Type::config, config}),
                             "'config' message, which only the host sends", ch::ProtocolError);
        CHECK_THROWS_WITH_AS((void)msg::decode_from_host(ch::Message{ch::Type::loaded, loaded}),
                             "'loaded' message, which only the worker sends", ch::ProtocolError);
        CHECK_THROWS_WITH_AS((void)msg::decode_from_worker(ch::Message{static_cast<ch::Type>(99), Dict{}}),
                             "message of unknown type 99", ch::ProtocolError);
        // The shim's frames are the executor's (worker_process.cpp): past it,
        // or where there is no shim, they are out of place.
        CHECK_THROWS_WITH_AS((void)msg::decode_from_worker(ch::Message{ch::Type::leftovers, Dict{{"count", 1}}}),
                             "'leftovers' message, which only a shim sends", ch::ProtocolError);
    }
}

TEST_CASE("a shim's frames: its own decoding, and nothing else is one") {
    auto shim = [](ch::Type type, const Dict& body) { return msg::decode_from_shim(over_the_wire(type, body)); };
    CHECK(round_trip(msg::ShimWorker{4242}) == msg::ShimWorker{4242});
    CHECK(round_trip(msg::ShimLeftovers{3}) == msg::ShimLeftovers{3});
    auto w = shim(ch::Type::worker, msg::ShimWorker{77}.encode());
    REQUIRE(w);
    CHECK(std::get<msg::ShimWorker>(*w).pid == 77);
    auto l = shim(ch::Type::leftovers, msg::ShimLeftovers{2}.encode());
    REQUIRE(l);
    CHECK(std::get<msg::ShimLeftovers>(*l).count == 2);
    // The worker's frames are not the shim's: they go on to the Conversation.
    CHECK_FALSE(shim(ch::Type::loaded, a_loaded(1, 2).encode()));
    CHECK_FALSE(shim(static_cast<ch::Type>(99), Dict{}));
    // A shim's frame that a plugin forged, or a broken shim sent, is refused
    // field by field, as every message is.
    CHECK_THROWS_WITH_AS(shim(ch::Type::worker, Dict{}), "'worker' message: field 'pid' is missing", ch::ProtocolError);
    CHECK_THROWS_WITH_AS(shim(ch::Type::worker, Dict{{"pid", 0}}),
                         "'worker' message: field 'pid' is 0, not in 1..9223372036854775807", ch::ProtocolError);
    CHECK_THROWS_WITH_AS(shim(ch::Type::leftovers, Dict{{"count", "3"}}),
                         "'leftovers' message: field 'count' is a string, not an integer", ch::ProtocolError);
    CHECK_THROWS_WITH_AS(shim(ch::Type::leftovers, Dict{{"count", 1}, {"pid", 2}}),
                         "'leftovers' message: unknown field \"pid\"", ch::ProtocolError);
}

TEST_CASE("frames the channel cannot read are protocol errors that say why") {
    ch::FrameReader r;
    SUBCASE("a body that is not FFV1") {
        std::string f = ch::frame(ch::Type::loaded, Dict{});
        f[8] = 'X';  // the document's magic
        r.feed(f.data(), f.size());
        CHECK_THROWS_WITH_AS(r.next(), doctest::Contains("'loaded' frame: the body is not an FFV1 document"),
                             ch::ProtocolError);
    }
    SUBCASE("a body that is not a dict") {
        std::string doc = wire::encode(Value(List{1}));
        std::string f(8, '\0');
        std::uint32_t type = 13, n = static_cast<std::uint32_t>(doc.size());
        std::memcpy(f.data(), &type, 4);
        std::memcpy(f.data() + 4, &n, 4);
        f += doc;
        r.feed(f.data(), f.size());
        CHECK_THROWS_WITH_AS(r.next(), "'failed' frame: the body is list, not a dict", ch::ProtocolError);
    }
    SUBCASE("a frame larger than any message") {
        std::uint32_t header[2] = {77, ch::max_frame_body + 1};
        r.feed(reinterpret_cast<const char*>(header), sizeof header);
        CHECK_THROWS_WITH_AS(r.next(), "frame of unknown type 77 of 67108865 bytes refused (at most 67108864)",
                             ch::ProtocolError);
    }
}

TEST_CASE("the conversation: what a worker may say, and when") {
    msg::Conversation c;
    c.sent(a_config());
    c.sent(msg::Load{});  // config and load go together

    SUBCASE("a task's whole conversation, with a train retried after running out of memory") {
        CHECK(c.expecting() == "'ready' or 'failed' in start");
        CHECK(std::holds_alternative<msg::Ready>(c.receive(frame_of(msg::Ready{"echo", 1}))));
        CHECK(c.expecting() == "'loaded' or 'failed' in load");
        CHECK(std::holds_alternative<msg::Loaded>(c.receive(frame_of(a_loaded(1, 2)))));
        CHECK(c.expecting() == "nothing: no stage is running");
        c.sent(msg::Train{"cpu"});
        CHECK(c.expecting() == "'result' or 'failed' in train");
        CHECK(std::holds_alternative<msg::Failed>(c.receive(frame_of(a_failure()))));
        c.sent(msg::Train{"cpu"});
        CHECK(std::holds_alternative<msg::Result>(c.receive(frame_of(a_result()))));
        c.sent(msg::Exit{});
        CHECK(c.expecting() == "nothing: the worker was told to exit");
    }
    SUBCASE("a worker told to exit after its result ends with it; a failed train does not end it") {
        c.receive(frame_of(msg::Ready{"echo", 1}));
        c.receive(frame_of(a_loaded(1, 2)));
        c.sent(msg::Train{"cpu", true});
        c.receive(frame_of(a_failure()));  // out of memory: the host may train again
        CHECK_FALSE(c.exit_implied());
        c.sent(msg::Train{"cpu", true});
        CHECK(std::holds_alternative<msg::Result>(c.receive(frame_of(a_result()))));
        CHECK(c.exit_implied());
        CHECK(c.expecting() == "nothing: the worker exits after its result");
        CHECK_THROWS_AS(c.receive(frame_of(a_result())), ch::ProtocolError);
    }
    SUBCASE("a kept worker's next round: a config, then train, and no answer to the config") {
        c.receive(frame_of(msg::Ready{"echo", 1, msg::worker_protocol}));
        c.receive(frame_of(a_loaded(1, 2)));
        c.sent(msg::Train{"cpu"});
        c.receive(frame_of(a_result()));
        msg::Config next = a_config();
        next.round = 2;
        c.sent(next);
        CHECK(c.expecting() == "nothing: no stage is running");
        CHECK_THROWS_AS(c.receive(frame_of(a_loaded(1, 2))), ch::ProtocolError);
        c.sent(msg::Train{"cpu"});
        CHECK(std::holds_alternative<msg::Result>(c.receive(frame_of(a_result()))));
    }
    SUBCASE("a train sent ahead with the load: pending once the load has ended well") {
        msg::Train ahead{"cpu", true};
        ahead.ahead = true;
        c.sent(ahead);
        CHECK(c.expecting() == "'ready' or 'failed' in start");
        c.receive(frame_of(msg::Ready{"echo", 1}));
        CHECK(c.expecting() == "'loaded' or 'failed' in load");
        CHECK_THROWS_AS(c.receive(frame_of(a_result())), ch::ProtocolError);  // not before its load's end
    }
    SUBCASE("a train sent ahead runs after its load, and its result ends the worker") {
        msg::Train ahead{"cpu", true};
        ahead.ahead = true;
        c.sent(ahead);
        c.receive(frame_of(msg::Ready{"echo", 1}));
        c.receive(frame_of(a_loaded(1, 2)));
        CHECK(c.expecting() == "'result' or 'failed' in train");
        CHECK(std::holds_alternative<msg::Result>(c.receive(frame_of(a_result()))));
        CHECK(c.exit_implied());
    }
    SUBCASE("a train sent ahead of a load that failed is dropped by the worker") {
        msg::Train ahead{"cpu", true};
        ahead.ahead = true;
        c.sent(ahead);
        c.receive(frame_of(msg::Ready{"echo", 1}));
        msg::Failed load{msg::Failed::Stage::load, msg::Failed::Kind::exception, "no", 0, std::nullopt};
        c.receive(frame_of(load));
        CHECK(c.expecting() == "nothing: no stage is running");
        CHECK_THROWS_AS(c.receive(frame_of(a_result())), ch::ProtocolError);
    }
    SUBCASE("two 'loaded' for one load") {
        c.receive(frame_of(msg::Ready{"echo", 1}));
        c.receive(frame_of(a_loaded(1, 2)));
        CHECK_THROWS_WITH_AS(c.receive(frame_of(a_loaded(1, 2))),
                             "unexpected 'loaded' message (expected nothing: no stage is running)", ch::ProtocolError);
    }
    SUBCASE("'ready' twice") {
        c.receive(frame_of(msg::Ready{"echo", 1}));
        CHECK_THROWS_WITH_AS(c.receive(frame_of(msg::Ready{"echo", 1})),
                             "unexpected 'ready' message (expected 'loaded' or 'failed' in load)", ch::ProtocolError);
    }
    SUBCASE("an answer before 'ready'") {
        CHECK_THROWS_WITH_AS(c.receive(frame_of(a_loaded(1, 2))),
                             "unexpected 'loaded' message (expected 'ready' or 'failed' in start)", ch::ProtocolError);
    }
    SUBCASE("a result nobody asked for, and a failure of the other stage") {
        c.receive(frame_of(msg::Ready{"echo", 1}));
        CHECK_THROWS_WITH_AS(c.receive(frame_of(a_result())),
                             "unexpected 'result' message (expected 'loaded' or 'failed' in load)", ch::ProtocolError);
        CHECK_THROWS_WITH_AS(c.receive(frame_of(a_failure())),
                             "unexpected 'failed' message in train (expected 'loaded' or 'failed' in load)",
                             ch::ProtocolError);
        msg::Failed start{msg::Failed::Stage::start, msg::Failed::Kind::exception, "", std::nullopt, std::nullopt};
        CHECK_THROWS_WITH_AS(c.receive(frame_of(start)),
                             "unexpected 'failed' message in start (expected 'loaded' or 'failed' in load)",
                             ch::ProtocolError);
    }
    SUBCASE("a failure in start or channel ends the conversation") {
        msg::Failed start{msg::Failed::Stage::start, msg::Failed::Kind::bad_plugin, "no", std::nullopt, std::nullopt};
        c.receive(frame_of(start));
        CHECK(c.expecting() == "nothing: the worker reported that it cannot go on");
        CHECK_THROWS_AS(c.receive(frame_of(msg::Ready{"echo", 1})), ch::ProtocolError);
    }
    SUBCASE("'failed' in channel may come at any time before the end") {
        c.receive(frame_of(msg::Ready{"echo", 1}));
        msg::Failed channel{msg::Failed::Stage::channel, msg::Failed::Kind::protocol, "?", std::nullopt, std::nullopt};
        CHECK(std::holds_alternative<msg::Failed>(c.receive(frame_of(channel))));
        CHECK_THROWS_AS(c.receive(frame_of(channel)), ch::ProtocolError);
    }
    SUBCASE("anything after exit") {
        c.receive(frame_of(msg::Ready{"echo", 1}));
        c.receive(frame_of(a_loaded(1, 2)));
        c.sent(msg::Exit{});
        CHECK_THROWS_WITH_AS(c.receive(frame_of(a_loaded(1, 2))),
                             "unexpected 'loaded' message (expected nothing: the worker was told to exit)",
                             ch::ProtocolError);
    }
    SUBCASE("a malformed message is refused before its turn is checked, and changes nothing") {
        c.receive(frame_of(msg::Ready{"echo", 1}));
        CHECK_THROWS_WITH_AS(c.receive(ch::Message{ch::Type::loaded, Dict{}}),
                             "'loaded' message: field 'ms' is missing", ch::ProtocolError);
        CHECK(c.expecting() == "'loaded' or 'failed' in load");
    }
}
