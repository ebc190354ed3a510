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
#include <memory>
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
//  - received in Context::inputs(): a read-only view of host memory that
//    stays valid until the process exits.
class Bytes {
public:
    Bytes() = default;

    // n zero bytes, owned.
    explicit Bytes(std::size_t n)
        : owned_(std::make_shared<std::vector<std::uint8_t>>(n)),
          data_(owned_->data()), size_(n) {}

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

// A map from string to Value that keeps insertion order (results are
// written in the order a task set them). Lookups are linear: dictionaries
// here are small, and order matters more than asymptotics.
class Dict {
public:
    using value_type = std::pair<std::string, Value>;

    Dict() = default;
    Dict(std::initializer_list<value_type> items);

    // The value of key, inserted as null when missing.
    Value& operator[](std::string_view key);
    // The value of key; throws TypeError naming the key when missing.
    Value& at(std::string_view key);
    const Value& at(std::string_view key) const;
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
    std::vector<value_type> items_;
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
        static const char* const names[] = {"null", "bool", "integer", "double",
                                            "string", "bytes", "list", "dict"};
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
inline void Dict::clear() noexcept { items_.clear(); }
inline Dict::Dict(std::initializer_list<value_type> items) {
    for (const auto& [k, v] : items) insert_or_assign(k, v);
}
inline Value* Dict::find(std::string_view key) noexcept {
    for (auto& [k, v] : items_)
        if (k == key) return &v;
    return nullptr;
}
inline const Value* Dict::find(std::string_view key) const noexcept {
    for (const auto& [k, v] : items_)
        if (k == key) return &v;
    return nullptr;
}
inline Value& Dict::operator[](std::string_view key) {
    if (Value* v = find(key)) return *v;
    return items_.emplace_back(std::string(key), Value()).second;
}
inline Value& Dict::at(std::string_view key) {
    if (Value* v = find(key)) return *v;
    throw TypeError("no key '" + std::string(key) + "'");
}
inline const Value& Dict::at(std::string_view key) const {
    if (const Value* v = find(key)) return *v;
    throw TypeError("no key '" + std::string(key) + "'");
}
inline Value& Dict::insert_or_assign(std::string_view key, Value v) {
    Value& slot = (*this)[key];
    slot = std::move(v);
    return slot;
}
inline bool Dict::erase(std::string_view key) {
    for (auto it = items_.begin(); it != items_.end(); ++it) {
        if (it->first == key) {
            items_.erase(it);
            return true;
        }
    }
    return false;
}
inline bool operator==(const Dict& a, const Dict& b) { return a.items_ == b.items_; }

}  // namespace fedflow

#endif  // FEDFLOW_VALUE_HPP
