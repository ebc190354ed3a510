// value_json.hpp: a Value as JSON and back, with each byte value in a file
// beside the JSON, written as
//
//   {"$bytes": {"file": "weights.bin", "size": 4096, "checksum": "9c1a0e4f6b2d8e73"}}
//
// The one implementation of it: the host writes and reads result.json with
// it, the bundled `command` plugin reads its program's result.json and writes
// inputs.json with it, so both follow one rule:
//
//   A byte file's name is a plain name in the folder of the JSON that names
//   it: [A-Za-z0-9._-]+, not "." or "..", at most 255 characters (no '/',
//   so never a path elsewhere; names.hpp, the rule of every name). It is a
//   regular file, not a symbolic link, and a "size", when given, is its size.
//
// Header-only, C++17, the SDK and nlohmann-json: the plugin compiles it in.
#ifndef FEDFLOW_COMMON_VALUE_JSON_HPP
#define FEDFLOW_COMMON_VALUE_JSON_HPP

#include "common/file_io.hpp"
#include "common/integrity.hpp"
#include "common/json.hpp"
#include "common/names.hpp"

#include <fedflow/value.hpp>

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace fedflow::value_json {

using json = nlohmann::ordered_json;

// "" when name may be a byte file's name, else why not (for a message).
inline std::string check_file_name(std::string_view name) {
    if (names::valid(name)) return "";
    return "a byte file is a plain name in the folder of its JSON: 1 to 255 characters of [A-Za-z0-9._-], "
           "not '.' or '..' (no '/')";
}

// A byte file's name and its JSON, quoted for a message (control characters
// escaped, at most 200 bytes of it).
inline std::string quote_name(std::string_view name) {
    std::string s = json(std::string(name.substr(0, 200))).dump(-1, ' ', false, json::error_handler_t::replace);
    return name.size() > 200 ? s + "..." : s;
}

// A file name for the byte value at key_path ("weights", "meta.w",
// "layers.1", "clients.0.weights"): the path with every character outside
// [A-Za-z0-9._-] replaced by '_', a '_' before a leading '.', at most 200
// characters, then ".bin"; "-2.bin", "-3.bin", ... when `used` (the names
// already taken in the folder; the name is added) holds it. Always passes
// check_file_name.
inline std::string file_name_for(std::string_view key_path, std::set<std::string>& used) {
    std::string base;
    for (char c : key_path) base += detail::name_char(c) ? c : '_';
    if (base.empty() || base.front() == '.') base.insert(base.begin(), '_');
    if (base.size() > 200) base.resize(200);
    std::string name = base + ".bin";
    for (int i = 2; used.count(name) != 0; ++i) name = base + "-" + std::to_string(i) + ".bin";
    used.insert(name);
    return name;
}

// Writes b as dir/name (created or truncated, never through a symbolic link).
inline void write_byte_file(const std::filesystem::path& dir, const std::string& name, const Bytes& b) {
    file_io::write_file(dir / name, b.data(), b.size());
}

// Reads the byte file dir/name (checked against the rule above; of `size`
// bytes when given) into the Bytes that alloc(n) returns. Throws
// std::runtime_error "byte file \"name\": why".
inline Bytes read_byte_file(const std::filesystem::path& dir, const std::string& name,
                            std::optional<std::uint64_t> size, const std::function<Bytes(std::size_t)>& alloc) {
    const auto fail = [&](const std::string& why) {
        return std::runtime_error("byte file " + quote_name(name) + ": " + why);
    };
    if (std::string why = check_file_name(name); !why.empty()) throw fail(why);
    const std::filesystem::path path = dir / name;
    // O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused
    // below, as anything but a regular file is).
    file_io::Fd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
    if (!fd.valid()) {
        const int e = errno;
        throw fail(e == ELOOP ? std::string("is a symbolic link; a byte file must be a regular file")
                              : std::system_category().message(e) + " (in " + dir.string() + ")");
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) throw fail(std::system_category().message(errno));
    if (!S_ISREG(st.st_mode)) throw fail("not a regular file");
    const auto actual = static_cast<std::uint64_t>(st.st_size);
    if (size && *size != actual)
        throw fail("it has " + std::to_string(actual) + " bytes, not the " + std::to_string(*size) + " its JSON says");
    if (actual > std::numeric_limits<std::size_t>::max()) throw fail("too large");
    Bytes b = alloc(static_cast<std::size_t>(actual));
    std::size_t done = 0;
    while (done < b.size()) {
        const ssize_t r = ::read(fd.get(), b.data() + done, b.size() - done);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) throw fail(std::system_category().message(errno));
        if (r == 0) throw fail("it ended after " + std::to_string(done) + " of " + std::to_string(actual) + " bytes");
        done += static_cast<std::size_t>(r);
    }
    return b;
}

// The JSON of a byte value, given its bytes(b, key_path) (key_path: the keys
// and list indices that lead to it, joined by '.', without "$" keys); without
// one, {"$bytes": {"size": n}}.
using BytesToJson = std::function<json(const Bytes& b, const std::string& key_path)>;

// A Value as JSON: null, bool, integer, double (NaN and infinities become
// null, as JSON has none), string, array, object in the Dict's order.
inline json to_json(const Value& v, const BytesToJson& bytes = nullptr, const std::string& key_path = "") {
    switch (v.type()) {
    case Value::Type::null: return nullptr;
    case Value::Type::boolean: return v.as<bool>();
    case Value::Type::integer: return v.as<std::int64_t>();
    case Value::Type::real: {
        const double d = v.as<double>();
        return std::isfinite(d) ? json(d) : json(nullptr);
    }
    case Value::Type::string: return v.as<std::string>();
    case Value::Type::bytes: {
        const Bytes& b = v.as<Bytes>();
        if (bytes) return bytes(b, key_path);
        return json{{"$bytes", json{{"size", b.size()}}}};
    }
    case Value::Type::list: {
        json out = json::array();
        std::size_t i = 0;
        for (const Value& item : v.as<List>()) {
            const std::string index = std::to_string(i++);
            out.push_back(to_json(item, bytes, key_path.empty() ? index : key_path + "." + index));
        }
        return out;
    }
    case Value::Type::dict: {
        json out = json::object();
        // A "$" key is a convention's marker ($tensor), not a name: the key
        // path of weights.$tensor.data is "weights.data". A Dict's keys are
        // unique, so each is appended without a lookup (linear time).
        for (const auto& [k, item] : v.as<Dict>())
            jsonio::append(out, k,
                           to_json(item, bytes,
                                   !k.empty() && k.front() == '$' ? key_path
                                   : key_path.empty()             ? k
                                                                  : key_path + "." + k));
        return out;
    }
    }
    return nullptr;
}

// A byte value from its file name (checked), size and checksum (if its JSON
// gives them; the host writes the XXH64 of a byte file's bytes as 16 hex
// digits, integrity::checksum_text).
using JsonToBytes = std::function<Value(const std::string& file, std::optional<std::uint64_t> size,
                                        std::optional<std::uint64_t> checksum)>;

// JSON as a Value: null, bool, a number without fraction or exponent that
// fits in int64 -> integer, every other number -> double, string, array ->
// List, object -> Dict (in document order). An object of exactly the shape
// {"$bytes": {"file": F}} or {"$bytes": {"file": F, "size": N}} (F a string,
// N a non-negative integer) is a byte value: F is checked against the rule
// (std::runtime_error when it breaks it) and handed to `bytes`; without
// `bytes` it stays a Dict. Any other object is a Dict, "$bytes" key or not.
inline Value from_json(const json& j, const JsonToBytes& bytes = nullptr) {
    switch (j.type()) {
    case json::value_t::null: return Value();
    case json::value_t::boolean: return Value(j.get<bool>());
    case json::value_t::number_integer: return Value(j.get<std::int64_t>());
    case json::value_t::number_unsigned: {
        const auto u = j.get<std::uint64_t>();
        if (u <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
            return Value(static_cast<std::int64_t>(u));
        return Value(static_cast<double>(u));
    }
    case json::value_t::number_float: return Value(j.get<double>());
    case json::value_t::string: return Value(j.get<std::string>());
    case json::value_t::array: {
        List l;
        l.reserve(j.size());
        for (const auto& item : j) l.push_back(from_json(item, bytes));
        return Value(std::move(l));
    }
    case json::value_t::object: {
        if (bytes && j.size() == 1 && j.contains("$bytes")) {
            const json& b = j["$bytes"];
            const bool file_ok = b.is_object() && b.contains("file") && b["file"].is_string();
            const bool size_ok = !b.contains("size") || b["size"].is_number_unsigned() ||
                                 (b["size"].is_number_integer() && b["size"].get<std::int64_t>() >= 0);
            std::uint64_t sum = 0;
            const bool sum_ok = !b.contains("checksum") ||
                                (b["checksum"].is_string() &&
                                 integrity::parse_checksum(b["checksum"].get<std::string>(), sum));
            if (file_ok && size_ok && sum_ok &&
                b.size() == 1u + (b.contains("size") ? 1u : 0u) + (b.contains("checksum") ? 1u : 0u)) {
                const std::string file = b["file"].get<std::string>();
                if (std::string why = check_file_name(file); !why.empty())
                    throw std::runtime_error("byte file " + quote_name(file) + ": " + why);
                std::optional<std::uint64_t> size, checksum;
                if (b.contains("size")) size = b["size"].get<std::uint64_t>();
                if (b.contains("checksum")) checksum = sum;
                return bytes(file, size, checksum);
            }
        }
        Dict d;
        for (const auto& [k, item] : j.items()) d.insert_or_assign(k, from_json(item, bytes));
        return Value(std::move(d));
    }
    default: return Value();  // binary: the parser never makes it
    }
}

}  // namespace fedflow::value_json

#endif  // FEDFLOW_COMMON_VALUE_JSON_HPP
