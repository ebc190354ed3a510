// fedflow/value.hpp: the values a task receives (params, inputs) and returns
// (its result): Value, List, Dict and Bytes. Header-only, standard C++17.
//
//   fedflow::Dict out;
//   out["loss"] = 0.25;                          // double
//   out["history"] = fedflow::List{1.0, 0.5};    // list of values
//   out["meta"] = fedflow::Dict{{"k", "v"}};     // nested dict
//   double loss = out.at("loss").as<double>();
#ifndef FEDFLOW_VALUE_HPP
#define FEDFLOW_VALUE_HPP

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace fedflow {

namespace wire {
class Reader;  // fedflow/detail/wire.hpp: decodes a Dict without a lookup per key
}

class Value;

// Thrown by Value::as, Dict::at and Context::param when a value is missing or
// holds another type than the one asked for. what() names both.
class TypeError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// A byte buffer: model weights, a tensor, a file's content.
//
// Bytes is a handle: copying a Bytes copies the handle, and both refer to the
// same bytes. Three kinds exist:
//  - made by Context::bytes(n): the buffer lives in shared memory, so a
//    result that holds it reaches the host without a copy (shm_id() >= 0);
//  - made by Bytes(n) or Bytes(data, n): owned by the handle, copied into
//    the result once when train returns;
//  - received in Context::inputs(): a read-only view that stays valid until
//    a kept worker's next round begins (keep-loaded), else until
//    the process exits; a byte value of an earlier task's result is that
//    task's byte file, mapped read-only (file() names it), not a copy.
class Bytes {
public:
    Bytes() = default;

    // n zero bytes, owned.
    explicit Bytes(std::size_t n)
        : owned_(std::make_shared<std::vector<std::uint8_t>>(n)), data_(owned_->data()), size_(n) {}

    // A copy of n bytes at data, owned.
    Bytes(const void* data, std::size_t n) : Bytes(n) {
        if (n != 0) std::memcpy(data_, data, n);
    }

    // Not owned: data must outlive every copy of the handle. shm_id >= 0
    // marks a buffer made by the host's bytes_alloc. Used by the SDK itself.
    static Bytes view(std::uint8_t* data, std::size_t n, std::int64_t shm_id = -1,
                      std::shared_ptr<const void> keep_alive = nullptr) {
        Bytes b;
        b.keep_ = std::move(keep_alive);
        b.data_ = data;
        b.size_ = n;
        b.shm_id_ = shm_id;
        return b;
    }

    std::uint8_t* data() noexcept { return data_; }
    const std::uint8_t* data() const noexcept { return data_; }
    std::size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }
    std::uint8_t* begin() noexcept { return data_; }
    std::uint8_t* end() noexcept { return data_ + size_; }
    const std::uint8_t* begin() const noexcept { return data_; }
    const std::uint8_t* end() const noexcept { return data_ + size_; }

    // The id of the shared-memory buffer made by Context::bytes, else -1.
    std::int64_t shm_id() const noexcept { return shm_id_; }
    // The absolute path of the byte file this input maps (Context::inputs),
    // else nullptr. Its bytes are read-only: writing to them crashes.
    const char* file() const noexcept { return file_; }
    // A view of a mapped input file. Used by the SDK itself.
    static Bytes mapped_file(const std::uint8_t* data, std::size_t n, const char* path) {
        Bytes b = view(const_cast<std::uint8_t*>(data), n);
        b.file_ = path;
        return b;
    }

    // Equal content (not identity).
    friend bool operator==(const Bytes& a, const Bytes& b) noexcept {
        return a.size_ == b.size_ && (a.size_ == 0 || std::memcmp(a.data_, b.data_, a.size_) == 0);
    }
    friend bool operator!=(const Bytes& a, const Bytes& b) noexcept { return !(a == b); }

private:
    std::shared_ptr<std::vector<std::uint8_t>> owned_;
    std::shared_ptr<const void> keep_;
    std::uint8_t* data_ = nullptr;
    std::size_t size_ = 0;
    std::int64_t shm_id_ = -1;
    const char* file_ = nullptr;  // the worker's, valid as long as data_
};

// A sequence of values; behaves like std::vector<Value>.
class List {
public:
    List() = default;
    List(std::initializer_list<Value> items);

    // Defined after Value: clang (C++20, libstdc++) instantiates these
    // members of std::vector<Value> where they are defined, and Value must
    // be complete by then.
    std::size_t size() const noexcept;
    bool empty() const noexcept;
    Value& operator[](std::size_t i);
    const Value& operator[](std::size_t i) const;
    Value& at(std::size_t i);
    const Value& at(std::size_t i) const;
    void push_back(Value v);
    template <class... Args>
    Value& emplace_back(Args&&... args);
    void reserve(std::size_t n);
    void clear() noexcept;

    auto begin() noexcept { return items_.begin(); }
    auto end() noexcept { return items_.end(); }
    auto begin() const noexcept { return items_.begin(); }
    auto end() const noexcept { return items_.end(); }

    friend bool operator==(const List& a, const List& b);
    friend bool operator!=(const List& a, const List& b) { return !(a == b); }

private:
    std::vector<Value> items_;
};

namespace detail {

// SipHash (Aumasson and Bernstein) with C compression and D finalization
// rounds, of n bytes at data under the 128-bit key (k0, k1).
template <int C, int D>
std::uint64_t siphash(const void* data, std::size_t n, std::uint64_t k0, std::uint64_t k1) noexcept {
    auto rotl = [](std::uint64_t x, int b) { return (x << b) | (x >> (64 - b)); };
    std::uint64_t v0 = 0x736f6d6570736575ull ^ k0, v1 = 0x646f72616e646f6dull ^ k1;
    std::uint64_t v2 = 0x6c7967656e657261ull ^ k0, v3 = 0x7465646279746573ull ^ k1;
    auto round = [&] {
        v0 += v1;
        v1 = rotl(v1, 13);
        v1 ^= v0;
        v0 = rotl(v0, 32);
        v2 += v3;
        v3 = rotl(v3, 16);
        v3 ^= v2;
        v0 += v3;
        v3 = rotl(v3, 21);
        v3 ^= v0;
        v2 += v1;
        v1 = rotl(v1, 17);
        v1 ^= v2;
        v2 = rotl(v2, 32);
    };
    auto word = [&](std::uint64_t m) {
        v3 ^= m;
        for (int i = 0; i < C; ++i) round();
        v0 ^= m;
    };
    const auto* p = static_cast<const unsigned char*>(data);
    const std::size_t whole = n - n % 8;
    for (std::size_t i = 0; i < whole; i += 8) {
        std::uint64_t m = 0;
        for (int b = 0; b < 8; ++b)
            m |= static_cast<std::uint64_t>(p[i + b]) << (8 * b);  // little-endian, as specified
        word(m);
    }
    std::uint64_t last = static_cast<std::uint64_t>(n) << 56;
    for (std::size_t i = 0; i < n % 8; ++i) last |= static_cast<std::uint64_t>(p[whole + i]) << (8 * i);
    word(last);
    v2 ^= 0xff;
    for (int i = 0; i < D; ++i) round();
    return v0 ^ v1 ^ v2 ^ v3;
}

// The hash of a Dict key: SipHash-1-3 (as Rust's HashMap) under a key drawn
// once per process, so that nobody who sends a Dict (a hostile result, the
// inputs a task receives) can choose keys that collide and make its index
// linear again.
inline std::uint64_t key_hash(std::string_view key) noexcept {
    struct Secret {
        std::uint64_t k0 = 0, k1 = 0;
        Secret() noexcept {
            try {
                std::random_device rd;
                k0 = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
                k1 = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
            } catch (...) {
                // No entropy source: the address of this object (ASLR) is
                // still unknown to whoever sends the keys.
                k0 = reinterpret_cast<std::uintptr_t>(this) * 0x9e3779b97f4a7c15ull;
                k1 = ~k0;
            }
        }
    };
    static const Secret secret;
    return siphash<1, 3>(key.data(), key.size(), secret.k0, secret.k1);
}

// An index of the positions 0..n-1 of a sequence whose elements have
// distinct string keys (a Dict's entries; the host's tasks of a group): a
// hash table beside the sequence, which stays in its own order. The
// sequence itself is not kept here: each call gets n and key_at(i), the key
// at position i. Up to `small` elements there is no table and a lookup
// scans, which is as fast and costs no memory.
class KeyIndex {
public:
    static constexpr std::size_t small = 8;
    static constexpr std::size_t none = static_cast<std::size_t>(-1);

    // The position of key, or none.
    template <class KeyAt>
    std::size_t find(std::string_view key, std::size_t n, KeyAt key_at) const noexcept {
        if (slots_.empty()) {
            for (std::size_t i = 0; i < n; ++i)
                if (key_at(i) == key) return i;
            return none;
        }
        const std::size_t mask = slots_.size() - 1;
        for (std::size_t s = key_hash(key) & mask;; s = (s + 1) & mask) {
            if (slots_[s] == free_slot) return none;
            if (key_at(slots_[s] - 1) == key) return slots_[s] - 1;
        }
    }
    // Position n-1 was just appended (with a key not in the index yet).
    template <class KeyAt>
    void added(std::size_t n, KeyAt key_at) {
        if (n <= small) return;
        if (2 * n > slots_.size()) {
            rebuild(n, key_at);
            return;
        }
        slots_[free_slot_for(key_at(n - 1))] = static_cast<std::uint32_t>(n);
    }
    // Indexes positions 0..n-1 afresh (after an erase, or a sequence filled
    // without the index); returns the first position whose key an earlier
    // one has, or none. Throws std::bad_alloc, std::length_error.
    template <class KeyAt>
    std::size_t rebuild(std::size_t n, KeyAt key_at) {
        if (n > std::numeric_limits<std::uint32_t>::max() / 4)
            throw std::length_error("fedflow: too many keys to index");
        if (n <= small) {
            slots_ = {};
            for (std::size_t i = 1; i < n; ++i)
                for (std::size_t j = 0; j < i; ++j)
                    if (key_at(i) == key_at(j)) return i;
            return none;
        }
        std::size_t capacity = 32;
        while (capacity < 4 * n) capacity *= 2;  // a quarter full now; it grows again at half
        KeyIndex fresh;
        fresh.slots_.assign(capacity, free_slot);
        std::size_t twice = none;
        const std::size_t mask = capacity - 1;
        for (std::size_t i = 0; i < n; ++i) {
            std::size_t s = key_hash(key_at(i)) & mask;
            while (fresh.slots_[s] != free_slot && key_at(fresh.slots_[s] - 1) != key_at(i)) s = (s + 1) & mask;
            if (fresh.slots_[s] == free_slot) fresh.slots_[s] = static_cast<std::uint32_t>(i + 1);
            else if (twice == none) twice = i;
        }
        slots_ = std::move(fresh.slots_);
        return twice;
    }
    // Forgets every position: lookups scan until the next rebuild.
    void clear() noexcept { slots_ = {}; }

private:
    static constexpr std::uint32_t free_slot = 0;
    std::size_t free_slot_for(std::string_view key) const noexcept {
        const std::size_t mask = slots_.size() - 1;
        std::size_t s = key_hash(key) & mask;
        while (slots_[s] != free_slot) s = (s + 1) & mask;
        return s;
    }
    // Empty, or a power of two of slots, at most half of them used, each 1 +
    // a position or free_slot (linear probing).
    std::vector<std::uint32_t> slots_;
};

}  // namespace detail

// A map from string to Value that keeps insertion order (results are
// written in the order a task set them). Entries are kept in order in a
// vector; beside it, once there are more than a few, an index (a hash table
// of positions) makes a lookup or an insert O(1) on average, so a result of
// a million keys is built in linear time. Keys must not be changed through
// the iterators (as std::map's, they are a Dict's identity).
class Dict {
public:
    using value_type = std::pair<std::string, Value>;

    Dict() = default;
    Dict(std::initializer_list<value_type> items);

    // The value of key, inserted as null when missing.
    Value& operator[](std::string_view key);
    // The value of key; throws TypeError naming the key when missing (and,
    // for a Dict given a description, where it was looked for).
    Value& at(std::string_view key);
    const Value& at(std::string_view key) const;
    // How at() reports a missing key: "<path> has no <noun> '<key>'<detail>",
    // e.g. "inputs.server has no task '0' (0 of 1 finished), round 3". The
    // SDK describes the inputs it hands a task; copies of the Dict keep the
    // description, comparisons ignore it.
    void describe_missing(std::string path, std::string noun, std::string detail = {});
    // The value of key, or nullptr.
    Value* find(std::string_view key) noexcept;
    const Value* find(std::string_view key) const noexcept;
    bool contains(std::string_view key) const noexcept { return find(key) != nullptr; }
    // Sets key (replacing its value, keeping its position).
    Value& insert_or_assign(std::string_view key, Value v);
    bool erase(std::string_view key);

    // Defined after Value, as List's are.
    std::size_t size() const noexcept;
    bool empty() const noexcept;
    void clear() noexcept;

    auto begin() noexcept { return items_.begin(); }
    auto end() noexcept { return items_.end(); }
    auto begin() const noexcept { return items_.begin(); }
    auto end() const noexcept { return items_.end(); }

    friend bool operator==(const Dict& a, const Dict& b);
    friend bool operator!=(const Dict& a, const Dict& b) { return !(a == b); }

private:
    friend class wire::Reader;
    // (Defined after Value, as the public members are.)
    std::string_view key_at(std::size_t i) const noexcept;
    // The position of key in items_, or KeyIndex::none.
    std::size_t position(std::string_view key) const noexcept;
    // Rebuilds the index from items_; returns a key that appears twice
    // (wire::Reader refuses such a document), or nullptr.
    const std::string* reindex();
    std::string missing(std::string_view key) const;

    struct Missing {
        std::string path, noun, detail;
    };
    std::vector<value_type> items_;
    detail::KeyIndex index_;
    std::shared_ptr<const Missing> missing_;  // set by describe_missing
};

// One of: null, bool, 64-bit integer, double, string, Bytes, List, Dict.
//
// is<T>() and as<T>() take T in bool, std::int64_t, double, std::string,
// Bytes, List, Dict. as<double>() also reads an integer (params written as
// `lr = 1` in TOML are integers); every other mismatch throws TypeError.
class Value {
public:
    enum class Type { null, boolean, integer, real, string, bytes, list, dict };

    Value() noexcept = default;
    Value(std::nullptr_t) noexcept {}
    Value(bool b) noexcept : v_(b) {}
    template <class I, std::enable_if_t<std::is_integral_v<I> && !std::is_same_v<I, bool>, int> = 0>
    Value(I i) : v_(checked_int(i)) {}
    Value(double d) noexcept : v_(d) {}
    Value(float f) noexcept : v_(static_cast<double>(f)) {}
    Value(const char* s) : v_(std::string(s)) {}
    Value(std::string s) noexcept : v_(std::move(s)) {}
    Value(std::string_view s) : v_(std::string(s)) {}
    Value(Bytes b) noexcept : v_(std::move(b)) {}
    Value(List l) noexcept : v_(std::move(l)) {}
    Value(Dict d) noexcept : v_(std::move(d)) {}

    Type type() const noexcept { return static_cast<Type>(v_.index()); }
    bool is_null() const noexcept { return type() == Type::null; }

    template <class T>
    bool is() const noexcept {
        return std::holds_alternative<T>(v_);
    }

    // Scalars (bool, std::int64_t, double) are returned by value; string,
    // Bytes, List and Dict by reference into the Value.
    template <class T>
    using as_result = std::conditional_t<std::is_arithmetic_v<T>, T, const T&>;

    template <class T>
    as_result<T> as() const {
        if constexpr (std::is_same_v<T, double>) {
            if (auto* i = std::get_if<std::int64_t>(&v_)) return static_cast<double>(*i);
        }
        if (auto* p = std::get_if<T>(&v_)) return *p;
        throw TypeError(mismatch(type_name_of<T>()));
    }

    template <class T, std::enable_if_t<!std::is_arithmetic_v<T>, int> = 0>
    T& as() {
        if (auto* p = std::get_if<T>(&v_)) return *p;
        throw TypeError(mismatch(type_name_of<T>()));
    }

    // "null", "bool", "integer", "double", "string", "bytes", "list", "dict".
    static const char* type_name(Type t) noexcept {
        static const char* const names[] = {"null", "bool", "integer", "double", "string", "bytes", "list", "dict"};
        return names[static_cast<int>(t)];
    }
    const char* type_name() const noexcept { return type_name(type()); }

    template <class T>
    static const char* type_name_of() noexcept {
        if constexpr (std::is_same_v<T, bool>) return "bool";
        else if constexpr (std::is_same_v<T, std::int64_t>) return "integer";
        else if constexpr (std::is_same_v<T, double>) return "double";
        else if constexpr (std::is_same_v<T, std::string>) return "string";
        else if constexpr (std::is_same_v<T, Bytes>) return "bytes";
        else if constexpr (std::is_same_v<T, List>) return "list";
        else if constexpr (std::is_same_v<T, Dict>) return "dict";
        else static_assert(sizeof(T) == 0, "Value holds bool, std::int64_t, double, std::string, Bytes, List or Dict");
    }

    friend bool operator==(const Value& a, const Value& b) { return a.v_ == b.v_; }
    friend bool operator!=(const Value& a, const Value& b) { return !(a == b); }

private:
    template <class I>
    static std::int64_t checked_int(I i) {
        if constexpr (std::is_unsigned_v<I> && sizeof(I) >= sizeof(std::int64_t)) {
            if (i > static_cast<std::uint64_t>(INT64_MAX))
                throw TypeError("integer " + std::to_string(i) + " does not fit in a 64-bit signed integer");
        }
        return static_cast<std::int64_t>(i);
    }

    std::string mismatch(const char* wanted) const {
        return std::string("value is ") + type_name() + ", not " + wanted;
    }

    std::variant<std::monostate, bool, std::int64_t, double, std::string, Bytes, List, Dict> v_;
};

inline List::List(std::initializer_list<Value> items) : items_(items) {}
inline std::size_t List::size() const noexcept { return items_.size(); }
inline bool List::empty() const noexcept { return items_.empty(); }
inline Value& List::operator[](std::size_t i) { return items_[i]; }
inline const Value& List::operator[](std::size_t i) const { return items_[i]; }
inline Value& List::at(std::size_t i) { return items_.at(i); }
inline const Value& List::at(std::size_t i) const { return items_.at(i); }
inline void List::reserve(std::size_t n) { items_.reserve(n); }
inline void List::clear() noexcept { items_.clear(); }
inline void List::push_back(Value v) { items_.push_back(std::move(v)); }
template <class... Args>
Value& List::emplace_back(Args&&... args) {
    return items_.emplace_back(std::forward<Args>(args)...);
}
inline bool operator==(const List& a, const List& b) { return a.items_ == b.items_; }

inline std::size_t Dict::size() const noexcept { return items_.size(); }
inline bool Dict::empty() const noexcept { return items_.empty(); }
inline std::string_view Dict::key_at(std::size_t i) const noexcept { return items_[i].first; }
inline std::size_t Dict::position(std::string_view key) const noexcept {
    return index_.find(key, items_.size(), [this](std::size_t i) { return key_at(i); });
}
inline const std::string* Dict::reindex() {
    std::size_t twice = index_.rebuild(items_.size(), [this](std::size_t i) { return key_at(i); });
    return twice == detail::KeyIndex::none ? nullptr : &items_[twice].first;
}
inline void Dict::clear() noexcept {
    items_.clear();
    index_.clear();
}
inline Dict::Dict(std::initializer_list<value_type> items) {
    for (const auto& [k, v] : items) insert_or_assign(k, v);
}
inline Value* Dict::find(std::string_view key) noexcept {
    std::size_t i = position(key);
    return i == detail::KeyIndex::none ? nullptr : &items_[i].second;
}
inline const Value* Dict::find(std::string_view key) const noexcept {
    std::size_t i = position(key);
    return i == detail::KeyIndex::none ? nullptr : &items_[i].second;
}
inline Value& Dict::operator[](std::string_view key) {
    if (Value* v = find(key)) return *v;
    items_.emplace_back(std::string(key), Value());
    try {
        index_.added(items_.size(), [this](std::size_t i) { return key_at(i); });
    } catch (...) {
        items_.pop_back();  // no memory for a larger index: as if never inserted
        throw;
    }
    return items_.back().second;
}
inline std::string Dict::missing(std::string_view key) const {
    if (!missing_) return "no key '" + std::string(key) + "'";
    return missing_->path + " has no " + missing_->noun + " '" + std::string(key) + "'" + missing_->detail;
}
inline void Dict::describe_missing(std::string path, std::string noun, std::string detail) {
    missing_ = std::make_shared<const Missing>(Missing{std::move(path), std::move(noun), std::move(detail)});
}
inline Value& Dict::at(std::string_view key) {
    if (Value* v = find(key)) return *v;
    throw TypeError(missing(key));
}
inline const Value& Dict::at(std::string_view key) const {
    if (const Value* v = find(key)) return *v;
    throw TypeError(missing(key));
}
inline Value& Dict::insert_or_assign(std::string_view key, Value v) {
    Value& slot = (*this)[key];
    slot = std::move(v);
    return slot;
}
inline bool Dict::erase(std::string_view key) {
    std::size_t i = position(key);
    if (i == detail::KeyIndex::none) return false;
    items_.erase(items_.begin() + static_cast<std::ptrdiff_t>(i));
    // The positions after i moved (erase is linear in any case). Without
    // memory for a new index the Dict scans, which is slow but right.
    try {
        reindex();
    } catch (const std::exception&) {
        index_.clear();
    }
    return true;
}
inline bool operator==(const Dict& a, const Dict& b) { return a.items_ == b.items_; }

}  // namespace fedflow

#endif  // FEDFLOW_VALUE_HPP
