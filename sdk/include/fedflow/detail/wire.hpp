// fedflow/detail/wire.hpp: FFV1, the binary encoding of a Value.
//
// Params, inputs and results cross the host/plugin boundary, and the
// worker's control messages cross the process boundary, in this one
// encoding. Both sides use this header, so there is one implementation.
//
// Document layout (all integers little-endian):
//   offset 0   u32  magic  0x31564646 ("FFV1")
//   offset 4   u32  flags  0
//   offset 8   u64  length of the body that follows the header
//   offset 16  body: one value
//
// A value is a one-byte tag followed by its payload:
//   0 NULL
//   1 FALSE          2 TRUE
//   3 INT            i64
//   4 DOUBLE         f64 (IEEE 754 bits)
//   5 STRING         u64 n, n bytes of UTF-8
//   6 BYTES          u64 n, zero padding up to the next multiple of 16
//                    counted from the document start, n bytes
//   7 BYTES_REF      u64 id, u64 n: the first n bytes of the shared-memory
//                    buffer that bytes_alloc returned with that id
//   8 LIST           u64 count, count values
//   9 DICT           u64 count, count times (u64 n, n bytes key, value);
//                    no key appears twice
//
// decode() treats its input as hostile: every length is checked against the
// bytes that remain, nesting is limited to max_depth, and any violation
// throws wire::Error with the offset where it happened.
#ifndef FEDFLOW_DETAIL_WIRE_HPP
#define FEDFLOW_DETAIL_WIRE_HPP

#include <fedflow/value.hpp>

#include <cstdint>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace fedflow::wire {

inline constexpr std::uint32_t magic = 0x31564646u;
inline constexpr std::size_t header_size = 16;
inline constexpr std::size_t bytes_alignment = 16;
inline constexpr int max_depth = 64;

enum Tag : std::uint8_t {
    tag_null = 0,
    tag_false = 1,
    tag_true = 2,
    tag_int = 3,
    tag_double = 4,
    tag_string = 5,
    tag_bytes = 6,
    tag_bytes_ref = 7,
    tag_list = 8,
    tag_dict = 9,
};

class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

namespace detail {

// Walks a value once; with Out == nullptr it only counts, so encoded_size()
// and encode() cannot disagree about padding.
class Writer {
public:
    explicit Writer(std::uint8_t* out) : out_(out) {}
    std::size_t position() const { return pos_; }

    void raw(const void* p, std::size_t n) {
        if (out_ != nullptr && n != 0) std::memcpy(out_ + pos_, p, n);
        pos_ += n;
    }
    void u8(std::uint8_t v) { raw(&v, 1); }
    void u32(std::uint32_t v) { raw(&v, 4); }
    void u64(std::uint64_t v) { raw(&v, 8); }
    void pad_to(std::size_t alignment) {
        std::size_t n = (alignment - pos_ % alignment) % alignment;
        if (out_ != nullptr && n != 0) std::memset(out_ + pos_, 0, n);
        pos_ += n;
    }

    // depth: as the Reader counts it, so that what encodes also decodes;
    // deeper nesting fails here, in the task, with a clear message.
    void value(const Value& v, int depth = 0) {
        if (depth > max_depth) throw Error("value nests deeper than " + std::to_string(max_depth) + " levels");
        switch (v.type()) {
        case Value::Type::null: u8(tag_null); break;
        case Value::Type::boolean: u8(v.as<bool>() ? tag_true : tag_false); break;
        case Value::Type::integer: {
            u8(tag_int);
            std::int64_t i = v.as<std::int64_t>();
            raw(&i, 8);
            break;
        }
        case Value::Type::real: {
            u8(tag_double);
            double d = v.as<double>();
            raw(&d, 8);
            break;
        }
        case Value::Type::string: {
            const std::string& s = v.as<std::string>();
            u8(tag_string);
            u64(s.size());
            raw(s.data(), s.size());
            break;
        }
        case Value::Type::bytes: {
            const Bytes& b = v.as<Bytes>();
            if (b.shm_id() >= 0) {
                u8(tag_bytes_ref);
                u64(static_cast<std::uint64_t>(b.shm_id()));
                u64(b.size());
            } else {
                u8(tag_bytes);
                u64(b.size());
                pad_to(bytes_alignment);
                raw(b.data(), b.size());
            }
            break;
        }
        case Value::Type::list: {
            const List& l = v.as<List>();
            u8(tag_list);
            u64(l.size());
            for (const Value& item : l) value(item, depth + 1);
            break;
        }
        case Value::Type::dict: {
            const Dict& d = v.as<Dict>();
            u8(tag_dict);
            u64(d.size());
            for (const auto& [key, item] : d) {
                u64(key.size());
                raw(key.data(), key.size());
                value(item, depth + 1);
            }
            break;
        }
        }
    }

private:
    std::uint8_t* out_;
    std::size_t pos_ = 0;
};

}  // namespace detail

// Size in bytes of the document that encode(v, ...) writes.
inline std::size_t encoded_size(const Value& v) {
    detail::Writer w(nullptr);
    w.u32(magic);
    w.u32(0);
    w.u64(0);
    w.value(v);
    return w.position();
}

// Writes the document for v to out, which must hold encoded_size(v) bytes.
// Returns the number of bytes written.
inline std::size_t encode(const Value& v, std::uint8_t* out, std::size_t capacity) {
    std::size_t n = encoded_size(v);
    if (capacity < n)
        throw Error("encode: buffer of " + std::to_string(capacity) + " bytes, need " + std::to_string(n));
    detail::Writer w(out);
    w.u32(magic);
    w.u32(0);
    w.u64(n - header_size);
    w.value(v);
    return w.position();
}

inline std::string encode(const Value& v) {
    std::string out(encoded_size(v), '\0');
    encode(v, reinterpret_cast<std::uint8_t*>(out.data()), out.size());
    return out;
}

// Turns a BYTES_REF (id, size) into Bytes; throws wire::Error when the
// reference is not valid. Without one, a BYTES_REF is an error.
using RefResolver = std::function<Bytes(std::uint64_t id, std::uint64_t size)>;

class Reader {
public:
    // data must stay valid as long as the decoded BYTES views are used;
    // keep_alive is stored in each of them to make that automatic.
    Reader(const std::uint8_t* data, std::size_t size, RefResolver resolve = {},
           std::shared_ptr<const void> keep_alive = nullptr)
        : data_(data), size_(size), resolve_(std::move(resolve)), keep_(std::move(keep_alive)) {}

    Value document() {
        if (size_ < header_size) fail("document of " + std::to_string(size_) + " bytes is shorter than its header");
        if (u32() != magic) fail("bad magic: not an FFV1 document");
        if (u32() != 0) fail("unknown flags");
        std::uint64_t body = u64();
        if (body != size_ - header_size)
            fail("header says " + std::to_string(body) + " body bytes, document has " +
                 std::to_string(size_ - header_size));
        Value v = value(0);
        if (pos_ != size_) fail(std::to_string(size_ - pos_) + " bytes left after the value");
        return v;
    }

private:
    [[noreturn]] void fail(const std::string& what) const {
        throw Error("malformed FFV1 at byte " + std::to_string(pos_) + ": " + what);
    }
    void need(std::uint64_t n) const {
        if (n > size_ - pos_) fail("needs " + std::to_string(n) + " bytes, " + std::to_string(size_ - pos_) + " left");
    }
    template <class T>
    T scalar() {
        need(sizeof(T));
        T v;
        std::memcpy(&v, data_ + pos_, sizeof(T));
        pos_ += sizeof(T);
        return v;
    }
    std::uint32_t u32() { return scalar<std::uint32_t>(); }
    std::uint64_t u64() { return scalar<std::uint64_t>(); }
    std::string str() {
        std::uint64_t n = u64();
        need(n);
        std::string s(reinterpret_cast<const char*>(data_ + pos_), n);
        pos_ += n;
        return s;
    }
    // Every element takes at least one byte, so a count larger than what is
    // left is a lie: refuse it before reserving memory for it.
    std::uint64_t count() {
        std::uint64_t n = u64();
        if (n > size_ - pos_) fail("count " + std::to_string(n) + " exceeds the bytes left");
        return n;
    }

    Value value(int depth) {
        if (depth > max_depth) fail("nesting deeper than " + std::to_string(max_depth));
        auto tag = scalar<std::uint8_t>();
        switch (tag) {
        case tag_null: return Value();
        case tag_false: return Value(false);
        case tag_true: return Value(true);
        case tag_int: return Value(scalar<std::int64_t>());
        case tag_double: return Value(scalar<double>());
        case tag_string: return Value(str());
        case tag_bytes: {
            std::uint64_t n = u64();
            std::size_t pad = (bytes_alignment - pos_ % bytes_alignment) % bytes_alignment;
            need(pad);
            pos_ += pad;
            need(n);
            auto* p = const_cast<std::uint8_t*>(data_ + pos_);
            pos_ += n;
            return Value(Bytes::view(p, n, -1, keep_));
        }
        case tag_bytes_ref: {
            std::uint64_t id = u64();
            std::uint64_t n = u64();
            if (!resolve_) fail("reference to shared buffer " + std::to_string(id) + " where none may occur");
            return Value(resolve_(id, n));
        }
        case tag_list: {
            std::uint64_t n = count();
            List l;
            l.reserve(n);
            for (std::uint64_t i = 0; i < n; ++i) l.push_back(value(depth + 1));
            return Value(std::move(l));
        }
        case tag_dict: {
            // Read in order, then indexed once: the index finds a repeated
            // key in linear time (a Dict::insert_or_assign per key scanned
            // the whole Dict, and 50,000 keys, a 700 KB result, took the
            // host 25 s).
            std::uint64_t n = count();
            Dict d;
            for (std::uint64_t i = 0; i < n; ++i) {
                std::string key = str();
                d.items_.emplace_back(std::move(key), value(depth + 1));
            }
            if (const std::string* twice = d.reindex()) fail("key '" + *twice + "' appears twice in a dict");
            return Value(std::move(d));
        }
        default: --pos_; fail("unknown tag " + std::to_string(tag));
        }
    }

    const std::uint8_t* data_;
    std::size_t size_;
    std::size_t pos_ = 0;
    RefResolver resolve_;
    std::shared_ptr<const void> keep_;
};

// Decodes one document. BYTES values are views into data (see Reader).
inline Value decode(const std::uint8_t* data, std::size_t size, RefResolver resolve = {},
                    std::shared_ptr<const void> keep_alive = nullptr) {
    return Reader(data, size, std::move(resolve), std::move(keep_alive)).document();
}

inline Value decode(const std::string& doc) {
    return decode(reinterpret_cast<const std::uint8_t*>(doc.data()), doc.size());
}

}  // namespace fedflow::wire

#endif  // FEDFLOW_DETAIL_WIRE_HPP
