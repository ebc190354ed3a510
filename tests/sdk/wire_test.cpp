// FFV1 (fedflow/detail/wire.hpp): round trips and the byte layout that the
// host and every plugin already built rely on.
#include <doctest/doctest.h>

#include <fedflow/detail/wire.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <string>
#include <vector>

using fedflow::Bytes;
using fedflow::Dict;
using fedflow::List;
using fedflow::Value;
namespace wire = fedflow::wire;

namespace {

using Doc = std::vector<std::uint8_t>;

Doc encode(const Value& v) {
    Doc out(wire::encoded_size(v));
    std::size_t n = wire::encode(v, out.data(), out.size());
    REQUIRE(n == out.size());
    return out;
}

Value decode(const Doc& d, wire::RefResolver resolve = {}) {
    return wire::decode(d.data(), d.size(), std::move(resolve));
}

// Decoded BYTES are views into the document: keep it alive with them.
Value round_trip(const Value& v) {
    auto doc = std::make_shared<Doc>(encode(v));
    return wire::decode(doc->data(), doc->size(), {}, doc);
}

template <class T>
T read_le(const Doc& d, std::size_t at) {
    T v;
    std::memcpy(&v, d.data() + at, sizeof v);
    return v;
}

Doc bytes_of(std::initializer_list<int> list) {
    Doc d;
    for (int b : list) d.push_back(static_cast<std::uint8_t>(b));
    return d;
}

Value every_type() {
    return Dict{
        {"null", nullptr},
        {"false", false},
        {"true", true},
        {"int", std::int64_t{-123456789012345}},
        {"double", 0.1},
        {"string", "héllo"},
        {"bytes", Bytes("\x00\x01\x02\xff", 4)},
        {"list", List{1, "two", 3.0, List{}, Dict{}}},
        {"dict", Dict{{"inner", Dict{{"deep", List{Bytes(17)}}}}}},
    };
}

}  // namespace

TEST_CASE("the document header: magic FFV1, flags 0, body length") {
    Doc d = encode(Value(Dict{}));
    REQUIRE(d.size() >= wire::header_size);
    CHECK(std::memcmp(d.data(), "FFV1", 4) == 0);
    CHECK(read_le<std::uint32_t>(d, 0) == wire::magic);
    CHECK(read_le<std::uint32_t>(d, 4) == 0);
    CHECK(read_le<std::uint64_t>(d, 8) == d.size() - wire::header_size);
    CHECK(wire::header_size == 16);
    CHECK(wire::bytes_alignment == 16);
}

TEST_CASE("byte layout of a small dict is pinned") {
    // {"a": 1}
    Doc expected = bytes_of({'F', 'F', 'V', '1', 0, 0, 0, 0, 27,  0, 0, 0, 0, 0, 0, 0,  //
                             9,   1,   0,   0,   0, 0, 0, 0, 0,                         // DICT, 1 entry
                             1,   0,   0,   0,   0, 0, 0, 0, 'a',                       // key "a"
                             3,   1,   0,   0,   0, 0, 0, 0, 0});                       // INT 1
    CHECK(encode(Value(Dict{{"a", 1}})) == expected);
    CHECK(decode(expected) == Value(Dict{{"a", 1}}));
}

TEST_CASE("byte layout of every tag is pinned") {
    auto body = [](const Value& v) {
        Doc d = encode(v);
        return Doc(d.begin() + wire::header_size, d.end());
    };
    CHECK(body(Value()) == bytes_of({0}));
    CHECK(body(Value(false)) == bytes_of({1}));
    CHECK(body(Value(true)) == bytes_of({2}));
    CHECK(body(Value(-2)) == bytes_of({3, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}));
    CHECK(body(Value(1.0)) == bytes_of({4, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f}));
    CHECK(body(Value("hi")) == bytes_of({5, 2, 0, 0, 0, 0, 0, 0, 0, 'h', 'i'}));
    // BYTES: tag at 16, length at 17..24, padding 25..31, data at 32.
    CHECK(body(Value(Bytes("xy", 2))) == bytes_of({6, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 'x', 'y'}));
    std::uint8_t shm[3] = {};
    CHECK(body(Value(Bytes::view(shm, 3, 9))) == bytes_of({7, 9, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0}));
    CHECK(body(Value(List{nullptr, true})) == bytes_of({8, 2, 0, 0, 0, 0, 0, 0, 0, 0, 2}));
}

TEST_CASE("scalars round-trip") {
    for (const Value& v :
         {Value(), Value(false), Value(true), Value(0), Value(-1), Value(1),
          Value(std::numeric_limits<std::int64_t>::min()), Value(std::numeric_limits<std::int64_t>::max()), Value(0.0),
          Value(-2.5), Value(1e308), Value(std::numeric_limits<double>::denorm_min()),
          Value(std::numeric_limits<double>::infinity()), Value(-std::numeric_limits<double>::infinity())}) {
        CAPTURE(v.type_name());
        CHECK(round_trip(v) == v);
    }
    SUBCASE("the sign of zero and NaN survive") {
        double z = round_trip(Value(-0.0)).as<double>();
        CHECK(z == 0.0);
        CHECK(std::signbit(z));
        CHECK(std::isnan(round_trip(Value(std::nan(""))).as<double>()));
    }
}

TEST_CASE("strings round-trip byte for byte") {
    for (const std::string& s : {std::string(), std::string("a"), std::string("héllo wörld ✓"),
                                 std::string("nul\0inside", 10), std::string(100000, 'z')}) {
        CAPTURE(s.size());
        Value back = round_trip(Value(s));
        REQUIRE(back.is<std::string>());
        CHECK(back.as<std::string>() == s);
    }
}

TEST_CASE("bytes round-trip at every small size") {
    for (std::size_t n = 0; n <= 40; ++n) {
        Bytes b(n);
        for (std::size_t i = 0; i < n; ++i) b.data()[i] = static_cast<std::uint8_t>(i * 7 + 1);
        CAPTURE(n);
        CHECK(round_trip(Value(b)) == Value(b));
    }
    Bytes big(1 << 20);
    for (std::size_t i = 0; i < big.size(); ++i) big.data()[i] = static_cast<std::uint8_t>(i % 251);
    CHECK(round_trip(Value(big)) == Value(big));
}

TEST_CASE("BYTES data starts at a multiple of 16 from the document start") {
    // Vary what comes before the bytes so that every padding length occurs.
    std::map<std::size_t, int> paddings_seen;
    for (std::size_t prefix = 0; prefix < 32; ++prefix) {
        Dict d;
        d["p"] = std::string(prefix, 'x');
        d["b"] = Bytes("0123456789", 10);
        d["l"] = List{Bytes(1), 1, Bytes(33)};
        Doc doc = encode(Value(d));
        Value back = decode(doc);
        const Dict& bd = back.as<Dict>();
        auto offset = [&](const Bytes& b) { return static_cast<std::size_t>(b.data() - doc.data()); };
        CAPTURE(prefix);
        CHECK(offset(bd.at("b").as<Bytes>()) % 16 == 0);
        CHECK(offset(bd.at("l").as<List>()[0].as<Bytes>()) % 16 == 0);
        CHECK(offset(bd.at("l").as<List>()[2].as<Bytes>()) % 16 == 0);
        // Layout: tag, u64 length, zero padding, data.
        std::size_t data_at = offset(bd.at("b").as<Bytes>());
        const std::uint8_t tag_and_length[] = {wire::tag_bytes, 10, 0, 0, 0, 0, 0, 0, 0};
        auto it = std::search(doc.begin(), doc.end(), std::begin(tag_and_length), std::end(tag_and_length));
        REQUIRE(it != doc.end());
        std::size_t pad_at = static_cast<std::size_t>(it - doc.begin()) + sizeof tag_and_length;
        REQUIRE(pad_at <= data_at);
        CHECK(data_at - pad_at < 16);
        for (std::size_t i = pad_at; i < data_at; ++i) CHECK(doc[i] == 0);
        ++paddings_seen[data_at - pad_at];
        CHECK(bd.at("b").as<Bytes>() == Bytes("0123456789", 10));
    }
    CHECK(paddings_seen.size() == 16);  // 0..15 bytes of padding all occurred
}

TEST_CASE("decoded BYTES are views into the document, kept alive by keep_alive") {
    auto doc = std::make_shared<Doc>(encode(Value(Dict{{"w", Bytes("abcd", 4)}})));
    std::weak_ptr<Doc> weak = doc;
    Value v = wire::decode(doc->data(), doc->size(), {}, doc);
    const Bytes& w = v.as<Dict>().at("w").as<Bytes>();
    CHECK(w.data() >= doc->data());
    CHECK(w.data() < doc->data() + doc->size());
    doc.reset();
    CHECK_FALSE(weak.expired());
    CHECK(w == Bytes("abcd", 4));
}

TEST_CASE("containers round-trip, nested, in order") {
    Value v = every_type();
    Value back = round_trip(v);
    CHECK(back == v);
    std::vector<std::string> keys;
    for (const auto& [k, item] : back.as<Dict>()) keys.push_back(k);
    CHECK(keys ==
          std::vector<std::string>{"null", "false", "true", "int", "double", "string", "bytes", "list", "dict"});
    CHECK(round_trip(Value(List{})) == Value(List{}));
    CHECK(round_trip(Value(Dict{})) == Value(Dict{}));
    CHECK(round_trip(Value(Dict{{"", ""}})) == Value(Dict{{"", ""}}));
    // Every top-level type is a valid document, not only dicts.
    CHECK(round_trip(Value(List{every_type(), every_type()})) == Value(List{every_type(), every_type()}));
}

TEST_CASE("nesting up to max_depth decodes") {
    Value v = List{};
    for (int i = 0; i < wire::max_depth; ++i) v = List{v};
    CHECK(round_trip(v) == v);
    Value d = Dict{};
    for (int i = 0; i < wire::max_depth; ++i) d = Dict{{"k", d}};
    CHECK(round_trip(d) == d);
}

TEST_CASE("encoded_size agrees with encode, and the std::string overloads agree") {
    Value v = every_type();
    std::string s = wire::encode(v);
    CHECK(s.size() == wire::encoded_size(v));
    Doc d = encode(v);
    CHECK(std::memcmp(s.data(), d.data(), d.size()) == 0);
    CHECK(wire::decode(s) == v);
}

TEST_CASE("encode into a buffer that is too small throws wire::Error and writes nothing") {
    Value v = every_type();
    Doc out(wire::encoded_size(v) - 1, 0xAA);
    CHECK_THROWS_AS(wire::encode(v, out.data(), out.size()), wire::Error);
    for (std::uint8_t c : out) CHECK(c == 0xAA);
}

TEST_CASE("BYTES_REF: a Bytes with a shared-memory id is sent by reference") {
    std::vector<std::uint8_t> shm(4096, 0x5A);
    Value v = Dict{{"w", Bytes::view(shm.data(), 4000, 3)}};
    Doc doc = encode(v);
    CHECK(doc.size() < 100);  // the data itself is not in the document

    SUBCASE("without a resolver it is an error") { CHECK_THROWS_AS(decode(doc), wire::Error); }
    SUBCASE("a resolver turns (id, size) into Bytes") {
        std::uint64_t seen_id = 0, seen_size = 0;
        Value back = decode(doc, [&](std::uint64_t id, std::uint64_t size) {
            seen_id = id;
            seen_size = size;
            return Bytes::view(shm.data(), size, static_cast<std::int64_t>(id));
        });
        CHECK(seen_id == 3);
        CHECK(seen_size == 4000);
        const Bytes& w = back.as<Dict>().at("w").as<Bytes>();
        CHECK(w.data() == shm.data());
        CHECK(w.size() == 4000);
        CHECK(w.shm_id() == 3);
    }
    SUBCASE("a resolver that refuses throws wire::Error out of decode") {
        CHECK_THROWS_WITH_AS(decode(doc,
                                    [](std::uint64_t id, std::uint64_t) -> Bytes {
                                        throw wire::Error("no buffer " + std::to_string(id));
                                    }),
                             "no buffer 3", wire::Error);
    }
}

TEST_CASE("encode refuses the nesting that decode would refuse") {
    auto nested = [](int levels) {
        Value v(1);
        for (int i = 0; i < levels; ++i) v = Value(List{v});
        return v;
    };
    Value ok = nested(wire::max_depth);
    std::string doc = wire::encode(ok);
    CHECK(wire::decode(doc) == ok);
    CHECK_THROWS_WITH_AS(wire::encode(nested(wire::max_depth + 1)), doctest::Contains("nests deeper than"),
                         wire::Error);
    CHECK_THROWS_AS(wire::encoded_size(nested(wire::max_depth + 1)), wire::Error);
}
