// FFV1 decode() treats its input as hostile: a result written by a crashed or
// malicious plugin must throw wire::Error, never read out of bounds, recurse
// without limit or allocate what the document merely claims.
#include <doctest/doctest.h>

#include <fedflow/detail/wire.hpp>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <exception>
#include <random>
#include <string>
#include <typeinfo>
#include <vector>

using fedflow::Bytes;
using fedflow::Dict;
using fedflow::List;
using fedflow::Value;
namespace wire = fedflow::wire;

namespace {

using Doc = std::vector<std::uint8_t>;

std::vector<std::uint8_t> shm(64, 0x11);

// Accepts only buffer 1 of at most 64 bytes, like the host does for ids it
// handed out.
Bytes resolve(std::uint64_t id, std::uint64_t size) {
    if (id != 1 || size > shm.size()) throw wire::Error("no such shared buffer");
    return Bytes::view(shm.data(), size, 1);
}

Doc encode(const Value& v) {
    Doc out(wire::encoded_size(v));
    wire::encode(v, out.data(), out.size());
    return out;
}

Value sample() {
    return Dict{
        {"n", 3},
        {"ok", true},
        {"no", false},
        {"nothing", nullptr},
        {"loss", 0.25},
        {"history", List{1.0, 0.5, 0.25}},
        {"meta", Dict{{"group", "clients"}, {"ids", List{"a", "b", List{Dict{}}}}}},
        {"weights", Bytes("0123456789abcdefXYZ", 19)},
        {"shared", Bytes::view(shm.data(), 32, 1)},
        {"empty", Bytes()},
    };
}

// Sets the header's body length to what the document really has, so that a
// mutation reaches the value parser instead of the length check.
void fix_header(Doc& d) {
    if (d.size() < wire::header_size) return;
    std::uint64_t body = d.size() - wire::header_size;
    std::memcpy(d.data() + 8, &body, 8);
}

Doc header_then(std::initializer_list<int> body_bytes) {
    Doc d(wire::header_size, 0);
    std::uint32_t m = wire::magic;
    std::memcpy(d.data(), &m, 4);
    for (int b : body_bytes) d.push_back(static_cast<std::uint8_t>(b));
    fix_header(d);
    return d;
}

void put_u64(Doc& d, std::uint64_t v) {
    for (int i = 0; i < 8; ++i) d.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

enum class Outcome { decoded, rejected, other_exception };

Outcome try_decode(const Doc& d, std::string* what = nullptr) {
    try {
        (void)wire::decode(d.data(), d.size(), resolve);
        return Outcome::decoded;
    } catch (const wire::Error&) {
        return Outcome::rejected;
    } catch (const std::exception& e) {
        if (what) *what = std::string(typeid(e).name()) + ": " + e.what();
        return Outcome::other_exception;
    } catch (...) {
        if (what) *what = "non-std exception";
        return Outcome::other_exception;
    }
}

}  // namespace

TEST_CASE("the sample document itself decodes") {
    Doc d = encode(sample());
    CHECK(wire::decode(d.data(), d.size(), resolve) == sample());
}

TEST_CASE("a document truncated at any length is rejected") {
    Doc full = encode(sample());
    for (std::size_t n = 0; n < full.size(); ++n) {
        CAPTURE(n);
        Doc cut(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
        CHECK_THROWS_AS(wire::decode(cut.data(), cut.size(), resolve), wire::Error);
        // The same cut with a header that agrees reaches the value parser: a
        // value's encoding is prefix-free, so every cut is still an error.
        fix_header(cut);
        CHECK_THROWS_AS(wire::decode(cut.data(), cut.size(), resolve), wire::Error);
    }
    CHECK_THROWS_AS(wire::decode(nullptr, 0), wire::Error);
}

TEST_CASE("bytes after the value are rejected") {
    Doc d = encode(sample());
    d.push_back(0);
    fix_header(d);
    CHECK_THROWS_AS(wire::decode(d.data(), d.size(), resolve), wire::Error);
}

TEST_CASE("wrong magic, unknown flags and a body length that disagrees are rejected") {
    Doc good = encode(Value(Dict{{"a", 1}}));
    for (std::size_t i = 0; i < 4; ++i) {
        Doc d = good;
        d[i] ^= 0x20;
        CAPTURE(i);
        CHECK_THROWS_WITH_AS(wire::decode(d.data(), d.size()), doctest::Contains("magic"), wire::Error);
    }
    for (std::size_t i = 4; i < 8; ++i) {
        Doc d = good;
        d[i] = 1;
        CHECK_THROWS_AS(wire::decode(d.data(), d.size()), wire::Error);
    }
    for (std::uint64_t body : {std::uint64_t{0}, std::uint64_t{good.size() - 17}, std::uint64_t{good.size() - 15},
                               std::uint64_t{1} << 63, ~std::uint64_t{0}}) {
        Doc d = good;
        std::memcpy(d.data() + 8, &body, 8);
        CAPTURE(body);
        CHECK_THROWS_AS(wire::decode(d.data(), d.size()), wire::Error);
    }
}

TEST_CASE("lengths and counts larger than the document are rejected before allocating") {
    for (std::uint64_t n : {std::uint64_t{10}, std::uint64_t{1} << 32, std::uint64_t{1} << 62, ~std::uint64_t{0} - 7,
                            ~std::uint64_t{0}}) {
        CAPTURE(n);
        for (int tag : {wire::tag_string, wire::tag_bytes, wire::tag_list, wire::tag_dict}) {
            CAPTURE(tag);
            Doc d = header_then({tag});
            put_u64(d, n);
            d.push_back(0);  // a few bytes, far fewer than n
            fix_header(d);
            CHECK_THROWS_AS(wire::decode(d.data(), d.size(), resolve), wire::Error);
        }
        // A dict whose key length lies.
        Doc k = header_then({wire::tag_dict, 1, 0, 0, 0, 0, 0, 0, 0});
        put_u64(k, n);
        k.push_back('k');
        k.push_back(wire::tag_null);
        fix_header(k);
        CHECK_THROWS_AS(wire::decode(k.data(), k.size(), resolve), wire::Error);
    }
    SUBCASE("BYTES padding that runs past the end") {
        Doc d = header_then({wire::tag_bytes, 0, 0, 0, 0, 0, 0, 0, 0});  // needs 7 padding bytes
        CHECK_THROWS_AS(wire::decode(d.data(), d.size()), wire::Error);
    }
    SUBCASE("scalars cut short") {
        CHECK_THROWS_AS(wire::decode(header_then({wire::tag_int, 1, 2, 3}).data(), 20), wire::Error);
        Doc dbl = header_then({wire::tag_double, 0, 0, 0, 0, 0, 0, 0xf0});
        CHECK_THROWS_AS(wire::decode(dbl.data(), dbl.size()), wire::Error);
        Doc ref = header_then({wire::tag_bytes_ref, 1, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0});
        CHECK_THROWS_AS(wire::decode(ref.data(), ref.size(), resolve), wire::Error);
    }
}

TEST_CASE("nesting deeper than max_depth is rejected without exhausting the stack") {
    for (int tag : {wire::tag_list, wire::tag_dict}) {
        for (int levels : {wire::max_depth + 2, 1000, 200000}) {
            CAPTURE(tag);
            CAPTURE(levels);
            Doc d = header_then({});
            for (int i = 0; i < levels; ++i) {
                d.push_back(static_cast<std::uint8_t>(tag));
                put_u64(d, 1);
                if (tag == wire::tag_dict) put_u64(d, 0);  // empty key
            }
            d.push_back(static_cast<std::uint8_t>(wire::tag_list));
            put_u64(d, 0);
            fix_header(d);
            CHECK_THROWS_WITH_AS(wire::decode(d.data(), d.size()), doctest::Contains("nesting"), wire::Error);
        }
    }
}

TEST_CASE("unknown tags are rejected, at the top and inside containers") {
    for (int tag = wire::tag_dict + 1; tag <= 255; ++tag) {
        CAPTURE(tag);
        Doc top = header_then({tag});
        CHECK_THROWS_WITH_AS(wire::decode(top.data(), top.size()), doctest::Contains("tag"), wire::Error);
        Doc inner = header_then({wire::tag_list, 2, 0, 0, 0, 0, 0, 0, 0, wire::tag_true, tag});
        CHECK_THROWS_AS(wire::decode(inner.data(), inner.size()), wire::Error);
    }
}

TEST_CASE("BYTES_REF is an error where no resolver is given, and the resolver's refusal passes through") {
    Doc d = encode(Value(Dict{{"w", Bytes::view(shm.data(), 8, 1)}}));
    CHECK_THROWS_AS(wire::decode(d.data(), d.size()), wire::Error);
    CHECK_NOTHROW(wire::decode(d.data(), d.size(), resolve));
    Doc bad = encode(Value(Dict{{"w", Bytes::view(shm.data(), 8, 2)}}));
    CHECK_THROWS_AS(wire::decode(bad.data(), bad.size(), resolve), wire::Error);
}

TEST_CASE("random mutations of a valid document decode or throw wire::Error, nothing else") {
    std::mt19937_64 rng(20240601);  // fixed seed: a failure reproduces
    const Doc base = encode(sample());
    const Doc small = encode(Value(List{1, "x", Bytes("b", 1), Dict{{"k", List{}}}}));
    auto pick = [&](std::size_t n) { return static_cast<std::size_t>(rng() % (n == 0 ? 1 : n)); };

    int decoded = 0, rejected = 0, other = 0;
    std::string first_other;
    for (int iter = 0; iter < 20000; ++iter) {
        Doc d = (iter % 4 == 0) ? small : base;
        int edits = 1 + static_cast<int>(rng() % 4);
        for (int e = 0; e < edits; ++e) {
            switch (rng() % 8) {
            case 0:  // flip a bit
                if (!d.empty()) d[pick(d.size())] ^= static_cast<std::uint8_t>(1u << (rng() % 8));
                break;
            case 1:  // a random byte
                if (!d.empty()) d[pick(d.size())] = static_cast<std::uint8_t>(rng());
                break;
            case 2: {  // a plausible-looking length: small, or huge
                if (d.size() < 8) break;
                std::uint64_t v = (rng() % 2) ? rng() % 64 : rng();
                std::memcpy(d.data() + pick(d.size() - 7), &v, 8);
                break;
            }
            case 3:  // truncate
                d.resize(pick(d.size() + 1));
                break;
            case 4:  // insert a byte
                d.insert(d.begin() + static_cast<std::ptrdiff_t>(pick(d.size() + 1)), static_cast<std::uint8_t>(rng()));
                break;
            case 5:  // delete a byte
                if (!d.empty()) d.erase(d.begin() + static_cast<std::ptrdiff_t>(pick(d.size())));
                break;
            case 6: {  // duplicate a chunk
                if (d.size() < 2) break;
                std::size_t from = pick(d.size()), len = 1 + pick(std::min<std::size_t>(32, d.size() - from));
                Doc chunk(d.begin() + static_cast<std::ptrdiff_t>(from),
                          d.begin() + static_cast<std::ptrdiff_t>(from + len));
                d.insert(d.begin() + static_cast<std::ptrdiff_t>(pick(d.size() + 1)), chunk.begin(), chunk.end());
                break;
            }
            default:  // a tag byte, valid or not
                if (!d.empty()) d[pick(d.size())] = static_cast<std::uint8_t>(rng() % 12);
                break;
            }
        }
        if (rng() % 4 != 0) fix_header(d);
        std::string what;
        switch (try_decode(d, &what)) {
        case Outcome::decoded: ++decoded; break;
        case Outcome::rejected: ++rejected; break;
        case Outcome::other_exception:
            if (other++ == 0) first_other = what;
            break;
        }
    }
    INFO("first exception that is not wire::Error: " << first_other);
    CHECK(other == 0);
    CHECK(rejected > 10000);  // the mutations really are hostile
    MESSAGE("decoded " << decoded << ", rejected " << rejected);
}

TEST_CASE("random bodies behind a valid header decode or throw wire::Error") {
    std::mt19937_64 rng(7);
    int other = 0;
    std::string first_other;
    for (int iter = 0; iter < 20000; ++iter) {
        Doc d = header_then({});
        std::size_t n = 1 + rng() % 48;
        for (std::size_t i = 0; i < n; ++i) {
            // Mostly small bytes, so tags and short counts are common.
            d.push_back(static_cast<std::uint8_t>((rng() % 3) ? rng() % 12 : rng()));
        }
        fix_header(d);
        std::string what;
        if (try_decode(d, &what) == Outcome::other_exception && other++ == 0) first_other = what;
    }
    INFO("first exception that is not wire::Error: " << first_other);
    CHECK(other == 0);
}

namespace {

// A DICT body of n entries: keys "0", "1", ... (or all "k"), values null.
Doc dict_of(std::size_t n, bool same_key = false) {
    Doc d = header_then({9});
    put_u64(d, n);
    for (std::size_t i = 0; i < n; ++i) {
        std::string key = same_key ? "k" : std::to_string(i);
        put_u64(d, key.size());
        d.insert(d.end(), key.begin(), key.end());
        d.push_back(0);
    }
    fix_header(d);
    return d;
}

}  // namespace

TEST_CASE("a dict with a key twice is rejected") {
    CHECK_THROWS_WITH_AS(wire::decode(dict_of(2, true).data(), dict_of(2, true).size()),
                         doctest::Contains("key 'k' appears twice"), wire::Error);
    Value v = wire::decode(dict_of(3).data(), dict_of(3).size());
    CHECK(v == Value(Dict{{"0", nullptr}, {"1", nullptr}, {"2", nullptr}}));
}

TEST_CASE("a dict of 100,000 keys decodes in linear time, in order") {
    // Looking each key up in the Dict took minutes here: a hostile result
    // of a few MB would have stalled the host.
    Doc d = dict_of(100000);
    auto t0 = std::chrono::steady_clock::now();
    Value v = wire::decode(d.data(), d.size());
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    CHECK(s < 10.0);
    const Dict& dict = v.as<Dict>();
    REQUIRE(dict.size() == 100000);
    CHECK(dict.begin()->first == "0");
    CHECK((dict.end() - 1)->first == "99999");
}
