// Value, List, Dict and Bytes as docs/sdk.md ("Values: Dict, List, Value, Bytes") describes them.
#include <doctest/doctest.h>

#include <fedflow/value.hpp>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

using fedflow::Bytes;
using fedflow::Dict;
using fedflow::List;
using fedflow::TypeError;
using fedflow::Value;

namespace {

// Which of the seven is<T>() answers true, as a type name.
std::vector<std::string> holds(const Value& v) {
    std::vector<std::string> out;
    if (v.is<bool>()) out.push_back("bool");
    if (v.is<std::int64_t>()) out.push_back("integer");
    if (v.is<double>()) out.push_back("double");
    if (v.is<std::string>()) out.push_back("string");
    if (v.is<Bytes>()) out.push_back("bytes");
    if (v.is<List>()) out.push_back("list");
    if (v.is<Dict>()) out.push_back("dict");
    return out;
}

std::string what_of_as_string(const Value& v) {
    try {
        (void)v.as<std::string>();
    } catch (const TypeError& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST_CASE("a default Value is null and holds nothing else") {
    Value v;
    CHECK(v.is_null());
    CHECK(v.type() == Value::Type::null);
    CHECK(holds(v).empty());
    CHECK(std::string(v.type_name()) == "null");
    CHECK(Value(nullptr).is_null());
}

TEST_CASE("each kind of value answers is<T>() for its own type only") {
    CHECK(holds(Value(true)) == std::vector<std::string>{"bool"});
    CHECK(holds(Value(42)) == std::vector<std::string>{"integer"});
    CHECK(holds(Value(0.5)) == std::vector<std::string>{"double"});
    CHECK(holds(Value(0.5f)) == std::vector<std::string>{"double"});
    CHECK(holds(Value("text")) == std::vector<std::string>{"string"});
    CHECK(holds(Value(std::string("text"))) == std::vector<std::string>{"string"});
    CHECK(holds(Value(std::string_view("text"))) == std::vector<std::string>{"string"});
    CHECK(holds(Value(Bytes(3))) == std::vector<std::string>{"bytes"});
    CHECK(holds(Value(List{1, 2})) == std::vector<std::string>{"list"});
    CHECK(holds(Value(Dict{{"a", 1}})) == std::vector<std::string>{"dict"});
}

TEST_CASE("type names") {
    CHECK(std::string(Value(true).type_name()) == "bool");
    CHECK(std::string(Value(1).type_name()) == "integer");
    CHECK(std::string(Value(1.0).type_name()) == "double");
    CHECK(std::string(Value("s").type_name()) == "string");
    CHECK(std::string(Value(Bytes()).type_name()) == "bytes");
    CHECK(std::string(Value(List()).type_name()) == "list");
    CHECK(std::string(Value(Dict()).type_name()) == "dict");
}

TEST_CASE("integers of every width become 64-bit signed integers") {
    CHECK(Value(static_cast<signed char>(-5)).as<std::int64_t>() == -5);
    CHECK(Value(static_cast<unsigned short>(65535)).as<std::int64_t>() == 65535);
    CHECK(Value(-7).as<std::int64_t>() == -7);
    CHECK(Value(4000000000u).as<std::int64_t>() == 4000000000LL);
    CHECK(Value(std::numeric_limits<std::int64_t>::min()).as<std::int64_t>() ==
          std::numeric_limits<std::int64_t>::min());
    CHECK(Value(std::numeric_limits<std::int64_t>::max()).as<std::int64_t>() ==
          std::numeric_limits<std::int64_t>::max());
    CHECK(Value(static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())).as<std::int64_t>() ==
          std::numeric_limits<std::int64_t>::max());
}

TEST_CASE("an unsigned integer above INT64_MAX is refused, not wrapped") {
    std::uint64_t big = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) + 1;
    CHECK_THROWS_AS(Value{big}, TypeError);
    CHECK_THROWS_WITH_AS(Value{std::numeric_limits<std::uint64_t>::max()}, doctest::Contains("18446744073709551615"),
                         TypeError);
}

TEST_CASE("as<T>() returns what the value holds") {
    CHECK(Value(true).as<bool>() == true);
    CHECK(Value(false).as<bool>() == false);
    CHECK(Value(2.5).as<double>() == 2.5);
    CHECK(Value("x").as<std::string>() == "x");
    CHECK(Value(List{1, "two"}).as<List>().size() == 2);
    CHECK(Value(Dict{{"k", 1}}).as<Dict>().at("k").as<std::int64_t>() == 1);
}

TEST_CASE("as<double>() widens an integer (a TOML `lr = 1`), and nothing else widens") {
    CHECK(Value(3).as<double>() == 3.0);
    CHECK(Value(-1).as<double>() == -1.0);
    CHECK_FALSE(Value(3).is<double>());
    CHECK_THROWS_AS(Value(2.0).as<std::int64_t>(), TypeError);
    CHECK_THROWS_AS(Value(1).as<bool>(), TypeError);
    CHECK_THROWS_AS(Value(true).as<std::int64_t>(), TypeError);
    CHECK_THROWS_AS(Value(true).as<double>(), TypeError);
    CHECK_THROWS_AS(Value("1").as<std::int64_t>(), TypeError);
}

TEST_CASE("as<T>() of another type throws TypeError naming both types") {
    std::string what = what_of_as_string(Value(5));
    CHECK(what.find("integer") != std::string::npos);
    CHECK(what.find("string") != std::string::npos);
    CHECK_THROWS_WITH_AS(Value().as<Dict>(), doctest::Contains("null"), TypeError);
    CHECK_THROWS_WITH_AS(Value(List{}).as<Bytes>(), doctest::Contains("bytes"), TypeError);
    CHECK_THROWS_WITH_AS(Value(Dict{}).as<List>(), doctest::Contains("dict"), TypeError);
    // TypeError is a std::runtime_error, so a plugin that catches that sees it.
    CHECK_THROWS_AS(Value().as<bool>(), std::runtime_error);
}

TEST_CASE("as<T>() on a mutable value gives a reference into it") {
    Value v = List{1};
    v.as<List>().push_back(2);
    CHECK(v.as<List>().size() == 2);
    Value d = Dict{};
    d.as<Dict>()["added"] = true;
    CHECK(d.as<Dict>().at("added").as<bool>());
    Value s = "abc";
    s.as<std::string>() += "def";
    CHECK(s.as<std::string>() == "abcdef");
    CHECK_THROWS_AS(s.as<List>(), TypeError);
}

TEST_CASE("equality compares type and content") {
    CHECK(Value(1) == Value(1));
    CHECK(Value(1) != Value(2));
    CHECK(Value(1) != Value(1.0));  // integer and double are different values
    CHECK(Value() == Value(nullptr));
    CHECK(Value("a") == Value(std::string("a")));
    CHECK(Value(List{1, Dict{{"x", List{}}}}) == Value(List{1, Dict{{"x", List{}}}}));
    CHECK(Value(Bytes("ab", 2)) == Value(Bytes("ab", 2)));
    CHECK(Value(Bytes("ab", 2)) != Value(Bytes("ac", 2)));
}

TEST_CASE("Dict keeps insertion order") {
    Dict d;
    d["zeta"] = 1;
    d["alpha"] = 2;
    d["mid"] = 3;
    std::vector<std::string> keys;
    std::vector<std::int64_t> values;
    for (const auto& [key, value] : d) {
        keys.push_back(key);
        values.push_back(value.as<std::int64_t>());
    }
    CHECK(keys == std::vector<std::string>{"zeta", "alpha", "mid"});
    CHECK(values == std::vector<std::int64_t>{1, 2, 3});

    SUBCASE("assigning an existing key keeps its position") {
        d["zeta"] = "changed";
        d.insert_or_assign("alpha", 20);
        keys.clear();
        for (const auto& [key, value] : d) keys.push_back(key);
        CHECK(keys == std::vector<std::string>{"zeta", "alpha", "mid"});
        CHECK(d.at("zeta").as<std::string>() == "changed");
        CHECK(d.at("alpha").as<std::int64_t>() == 20);
        CHECK(d.size() == 3);
    }
    SUBCASE("erase removes one key and keeps the order of the rest") {
        CHECK(d.erase("alpha"));
        CHECK_FALSE(d.erase("alpha"));
        keys.clear();
        for (const auto& [key, value] : d) keys.push_back(key);
        CHECK(keys == std::vector<std::string>{"zeta", "mid"});
    }
    SUBCASE("an initializer list keeps its order; a repeated key keeps its first place and last value") {
        Dict e{{"b", 1}, {"a", 2}, {"b", 3}};
        CHECK(e.size() == 2);
        CHECK(e.begin()->first == "b");
        CHECK(e.at("b").as<std::int64_t>() == 3);
    }
}

TEST_CASE("Dict operator[] inserts null for a missing key") {
    Dict d;
    CHECK(d.empty());
    Value& v = d["new"];
    CHECK(v.is_null());
    CHECK(d.size() == 1);
    CHECK(d.contains("new"));
}

TEST_CASE("Dict::at throws TypeError naming the missing key") {
    Dict d{{"present", 1}};
    CHECK(d.at("present").as<std::int64_t>() == 1);
    CHECK_THROWS_WITH_AS(d.at("learning_rate"), doctest::Contains("learning_rate"), TypeError);
    const Dict& cd = d;
    CHECK_THROWS_WITH_AS(cd.at("epochs"), doctest::Contains("epochs"), TypeError);
    CHECK(d.size() == 1);  // at() never inserts
}

TEST_CASE("Dict find and contains") {
    Dict d{{"a", 1}};
    CHECK(d.find("a") != nullptr);
    CHECK(d.find("b") == nullptr);
    CHECK(d.contains("a"));
    CHECK_FALSE(d.contains("b"));
    CHECK_FALSE(d.contains(""));
    d[""] = 0;  // an empty key is a key like any other
    CHECK(d.contains(""));
    d.clear();
    CHECK(d.empty());
}

TEST_CASE("Dict: a million keys set with operator[] and looked up, in insertion order") {
    // Each operator[] scanned the whole Dict: a task that built a result of
    // 100,000 keys spent 10 s in train, and a million never finished. The
    // index makes this linear (bench/dict-keys measures it).
    constexpr std::int64_t n = 1000000;
    Dict d;
    for (std::int64_t i = 0; i < n; ++i) d["key-" + std::to_string(i)] = i;
    REQUIRE(d.size() == static_cast<std::size_t>(n));
    std::int64_t expected = 0;
    bool in_order = true;
    for (const auto& [key, value] : d) in_order = in_order && value.as<std::int64_t>() == expected++;
    CHECK(in_order);
    bool found = true;
    for (std::int64_t i = n - 1; i >= 0; i -= 7)
        found = found && d.at("key-" + std::to_string(i)).as<std::int64_t>() == i;
    CHECK(found);
    CHECK_FALSE(d.contains("key-" + std::to_string(n)));
    d["key-5"] = "again";  // assigning keeps the place and the size
    CHECK(d.size() == static_cast<std::size_t>(n));
    CHECK((d.begin() + 5)->second.as<std::string>() == "again");
}

TEST_CASE("Dict: the index answers as a scan would, across inserts, erases, copies and clears") {
    // A model: the keys in order, and their values. Small and large sizes,
    // so that the Dict crosses the size where it starts an index both ways.
    std::mt19937 rng(7);
    Dict d;
    std::vector<std::string> order;
    std::map<std::string, std::int64_t> model;
    auto same = [&](const Dict& x) {
        if (x.size() != order.size()) return false;
        std::size_t i = 0;
        for (const auto& [key, value] : x) {
            if (key != order[i++] || value.as<std::int64_t>() != model.at(key)) return false;
        }
        for (const auto& [key, value] : model)
            if (x.find(key) == nullptr || x.at(key).as<std::int64_t>() != value) return false;
        return true;
    };
    for (int step = 0; step < 20000; ++step) {
        const int span = step % 4000 < 2000 ? 12 : 400;  // few keys, then many
        std::string key = "k" + std::to_string(rng() % span);
        switch (rng() % 8) {
        case 0:
        case 1:
        case 2:
            if (!model.count(key)) order.push_back(key);
            model[key] = step;
            d[key] = step;
            break;
        case 3:
            if (!model.count(key)) order.push_back(key);
            model[key] = -step;
            d.insert_or_assign(key, -step);
            break;
        case 4: {
            bool had = model.erase(key) == 1;
            if (had) order.erase(std::find(order.begin(), order.end(), key));
            REQUIRE(d.erase(key) == had);
            break;
        }
        case 5: REQUIRE(d.contains(key) == (model.count(key) == 1)); break;
        case 6: {
            Dict copy = d;  // the copy's index is its own
            copy["only-in-copy"] = 1;
            REQUIRE_FALSE(d.contains("only-in-copy"));
            REQUIRE(copy.size() == d.size() + 1);
            break;
        }
        default:
            if (rng() % 500 == 0) {
                d.clear();
                order.clear();
                model.clear();
            }
        }
        if (step % 97 == 0) REQUIRE(same(d));
    }
    CHECK(same(d));
    Dict moved = std::move(d);
    CHECK(same(moved));
}

TEST_CASE("Dict's key hash is SipHash: the reference test vectors of SipHash-2-4") {
    // (The index uses SipHash-1-3 under a random key; checking the function
    // against the reference with its 2-4 rounds checks the code of both.)
    unsigned char message[15];
    for (int i = 0; i < 15; ++i) message[i] = static_cast<unsigned char>(i);
    const std::uint64_t k0 = 0x0706050403020100ull, k1 = 0x0f0e0d0c0b0a0908ull;
    CHECK(fedflow::detail::siphash<2, 4>(message, 0, k0, k1) == 0x726fdb47dd0e0e31ull);
    CHECK(fedflow::detail::siphash<2, 4>(message, 8, k0, k1) == 0x93f5f5799a932462ull);
    CHECK(fedflow::detail::siphash<2, 4>(message, 15, k0, k1) == 0xa129ca6149be45e5ull);
}

TEST_CASE("List behaves like a vector of values") {
    List l{1, 2.5, "three", true, nullptr};
    CHECK(l.size() == 5);
    CHECK(l[0].as<std::int64_t>() == 1);
    CHECK(l[1].as<double>() == 2.5);
    CHECK(l[2].as<std::string>() == "three");
    CHECK(l[3].as<bool>());
    CHECK(l[4].is_null());
    CHECK_THROWS_AS(l.at(5), std::out_of_range);
    l.push_back(Dict{{"k", "v"}});
    l.emplace_back(7);
    CHECK(l.size() == 7);
    CHECK(l.at(5).as<Dict>().at("k").as<std::string>() == "v");
    std::int64_t ints = 0;
    for (const Value& v : l) ints += v.is<std::int64_t>() ? 1 : 0;
    CHECK(ints == 2);
    l.clear();
    CHECK(l.empty());
}

TEST_CASE("values nest") {
    Dict out;
    out["history"] = List{1.0, 0.5, 0.25};
    out["meta"] = Dict{{"group", "clients"}, {"layers", List{Dict{{"w", Bytes(4)}}}}};
    CHECK(out.at("history").as<List>().at(2).as<double>() == 0.25);
    const Value& w = out.at("meta").as<Dict>().at("layers").as<List>().at(0).as<Dict>().at("w");
    CHECK(w.as<Bytes>().size() == 4);
}

TEST_CASE("Bytes") {
    SUBCASE("Bytes(n) is n zero bytes") {
        Bytes b(16);
        CHECK(b.size() == 16);
        CHECK_FALSE(b.empty());
        for (std::uint8_t c : b) CHECK(c == 0);
        CHECK(b.shm_id() == -1);
    }
    SUBCASE("Bytes(data, n) copies") {
        char src[] = "weights";
        Bytes b(src, 7);
        src[0] = 'X';
        CHECK(b.data()[0] == 'w');
        CHECK(b.end() - b.begin() == 7);
    }
    SUBCASE("copies are handles to the same bytes") {
        Bytes a(4);
        Bytes b = a;
        b.data()[0] = 9;
        CHECK(a.data()[0] == 9);
        CHECK(a.data() == b.data());
        Value v = a;  // so is a copy held by a Value
        CHECK(v.as<Bytes>().data() == a.data());
    }
    SUBCASE("equality is by content") {
        CHECK(Bytes("abc", 3) == Bytes("abc", 3));
        CHECK(Bytes("abc", 3) != Bytes("abd", 3));
        CHECK(Bytes("abc", 3) != Bytes("ab", 2));
        CHECK(Bytes() == Bytes(0));
    }
    SUBCASE("a default Bytes is empty") {
        Bytes b;
        CHECK(b.empty());
        CHECK(b.size() == 0);
        CHECK(b.begin() == b.end());
    }
    SUBCASE("a view keeps its shared-memory id and does not own") {
        std::uint8_t buf[8] = {1, 2, 3, 4, 5, 6, 7, 8};
        Bytes v = Bytes::view(buf, 8, 42);
        CHECK(v.shm_id() == 42);
        CHECK(v.data() == buf);
        CHECK(Bytes::view(buf, 8).shm_id() == -1);
    }
    SUBCASE("a view holds its keep-alive") {
        auto owner = std::make_shared<std::vector<std::uint8_t>>(4, std::uint8_t{5});
        Bytes v = Bytes::view(owner->data(), owner->size(), -1, owner);
        CHECK(owner.use_count() == 2);
        std::weak_ptr<std::vector<std::uint8_t>> weak = owner;
        owner.reset();
        CHECK_FALSE(weak.expired());
        CHECK(v.data()[3] == 5);
    }
}
