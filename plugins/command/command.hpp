// command.hpp: the parts of the `command` plugin that do not start
// processes, kept apart so that command_test.cpp checks them without a host:
// placeholder expansion, params as text, the bounded tails of a program's
// output, and the program's environment. JSON <-> Value, with byte files, is
// the host's own (common/value_json.hpp), so both follow one rule.
//
// C++17, the SDK and nlohmann-json (header-only) only.
#ifndef FEDFLOW_COMMAND_HPP
#define FEDFLOW_COMMAND_HPP

#include "common/value_json.hpp"

#include <fedflow/value.hpp>

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace fedflow::command {

using json = value_json::json;
using value_json::from_json;
using value_json::to_json;

// The params the plugin reads itself; they are not placeholders.
inline bool is_reserved_param(std::string_view key) {
    return key == "load" || key == "train" || key == "env" || key == "result";
}

// A param as text, the way a command line wants it: a string as it is, an
// integer in decimal, a double in the shortest form that reads back the same
// ("0.1", "1.0", "1e-05"; "nan", "inf", "-inf"), a bool as true/false, a
// list or dict as compact JSON.
inline std::string to_text(const Value& v);

// What the placeholders of one stage stand for. Names are looked up in the
// order they were added, so the built-in ones, added first, win over a param
// of the same name.
class Placeholders {
public:
    void add(std::string name, std::string value) { entries_.push_back({std::move(name), std::move(value), ""}); }
    // A name that is known but may not be used here; `why` completes the message.
    void forbid(std::string name, std::string why) { entries_.push_back({std::move(name), "", std::move(why)}); }

    // text with every {name} replaced and {{ }} turned into { }. `where` names
    // the text in messages ("train[2]", "env.DATA"). Throws
    // std::invalid_argument: an unknown name (listing the known ones), a
    // forbidden one, an unclosed '{', a lone '}'.
    std::string expand(std::string_view text, std::string_view where) const {
        std::string out;
        out.reserve(text.size());
        for (std::size_t i = 0; i < text.size(); ++i) {
            const char c = text[i];
            if (c == '}') {
                if (i + 1 < text.size() && text[i + 1] == '}') {
                    out += '}';
                    ++i;
                    continue;
                }
                throw error(where, text, "'}' without an opening '{' (write }} for a literal '}')");
            }
            if (c != '{') {
                out += c;
                continue;
            }
            if (i + 1 < text.size() && text[i + 1] == '{') {
                out += '{';
                ++i;
                continue;
            }
            const std::size_t close = text.find('}', i + 1);
            if (close == std::string_view::npos)
                throw error(where, text, "'{' without a closing '}' (write {{ for a literal '{')");
            const std::string_view name = text.substr(i + 1, close - i - 1);
            const Entry* e = find(name);
            if (e == nullptr)
                throw error(where, text, "unknown placeholder {" + std::string(name) + "}; known: " + known());
            if (!e->forbidden.empty()) throw error(where, text, "{" + std::string(name) + "} " + e->forbidden);
            out += e->value;
            i = close;
        }
        return out;
    }

    // "{task_id}, {group}, ...": the names that may be used.
    std::string known() const {
        std::string s;
        for (const Entry& e : entries_) {
            if (!e.forbidden.empty() || find(e.name) != &e) continue;
            s += (s.empty() ? "{" : ", {") + e.name + "}";
        }
        return s.empty() ? "none" : s;
    }

private:
    struct Entry {
        std::string name, value, forbidden;
    };
    const Entry* find(std::string_view name) const {
        for (const Entry& e : entries_)
            if (e.name == name) return &e;
        return nullptr;
    }
    static std::invalid_argument error(std::string_view where, std::string_view text, const std::string& what) {
        return std::invalid_argument("param " + std::string(where) + " = " + json(std::string(text)).dump() + ": " +
                                     what);
    }
    std::vector<Entry> entries_;
};

// The last `capacity` bytes of a stream, kept while all of it is copied
// elsewhere.
class Tail {
public:
    explicit Tail(std::size_t capacity) : capacity_(capacity) {}
    void append(const char* data, std::size_t n) {
        buf_.append(data, n);
        if (buf_.size() > 2 * capacity_) {
            dropped_ += buf_.size() - capacity_;
            buf_.erase(0, buf_.size() - capacity_);
        }
    }
    std::string_view text() const {
        std::string_view v(buf_);
        return v.size() > capacity_ ? v.substr(v.size() - capacity_) : v;
    }
    // Whether text() lacks the start of the stream.
    bool cut() const { return dropped_ > 0 || buf_.size() > capacity_; }

private:
    std::size_t capacity_;
    std::size_t dropped_ = 0;
    std::string buf_;
};

inline bool is_blank(std::string_view s) { return s.find_first_not_of(" \t\r\n\f\v") == std::string_view::npos; }

// The last line of text that is not blank, without its line end; nullopt
// when there is none, or when it may have been cut (it starts where a cut
// tail starts).
inline std::optional<std::string> last_line(std::string_view text, bool cut) {
    std::size_t end = text.size();
    while (end > 0) {
        std::size_t nl = text.rfind('\n', end - 1);
        std::size_t begin = nl == std::string_view::npos ? 0 : nl + 1;
        std::string_view line = text.substr(begin, end - begin);
        if (!is_blank(line)) {
            if (begin == 0 && cut) return std::nullopt;
            while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t'))
                line.remove_suffix(1);
            return std::string(line);
        }
        if (nl == std::string_view::npos) break;
        end = nl;
    }
    return std::nullopt;
}

// The end of text for a message: at most max_lines lines and max_bytes
// bytes, cut at a line start (or, for one long line, at a character start,
// after "..."), without trailing blank lines.
inline std::string excerpt(std::string_view text, std::size_t max_lines, std::size_t max_bytes) {
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) text.remove_suffix(1);
    std::size_t begin = text.size();
    std::size_t lines = 0;
    while (begin > 0 && lines < max_lines) {
        std::size_t nl = text.rfind('\n', begin - 1);
        std::size_t line_start = nl == std::string_view::npos ? 0 : nl + 1;
        if (text.size() - line_start > max_bytes) break;
        begin = nl == std::string_view::npos ? 0 : nl;  // keep the '\n' until the end
        ++lines;
        if (nl == std::string_view::npos) break;
    }
    if (lines == 0) {
        // One line longer than max_bytes: its end, at a UTF-8 character start.
        std::size_t keep = max_bytes > 3 ? max_bytes - 3 : 0;
        std::size_t start = text.size() - std::min(keep, text.size());
        while (start < text.size() && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) ++start;
        return "..." + std::string(text.substr(start));
    }
    std::string_view kept = text.substr(begin);
    if (!kept.empty() && kept.front() == '\n') kept.remove_prefix(1);
    return std::string(kept);
}

// The program's environment: `base` ("NAME=value" entries) with every name of
// `set` replaced or added and every name of `unset` removed, in base's order
// and then set's.
inline std::vector<std::string> make_environment(const std::vector<std::string>& base,
                                                 const std::vector<std::pair<std::string, std::string>>& set,
                                                 const std::vector<std::string>& unset) {
    auto name_of = [](const std::string& entry) { return std::string_view(entry).substr(0, entry.find('=')); };
    auto changed = [&](std::string_view name) {
        for (const auto& [k, v] : set)
            if (k == name) return true;
        for (const auto& k : unset)
            if (k == name) return true;
        return false;
    };
    std::vector<std::string> out;
    for (const std::string& entry : base)
        if (!changed(name_of(entry))) out.push_back(entry);
    for (std::size_t i = 0; i < set.size(); ++i) {
        bool again = false;  // the last of the same name wins
        for (std::size_t j = i + 1; j < set.size(); ++j) again = again || set[j].first == set[i].first;
        if (!again) out.push_back(set[i].first + "=" + set[i].second);
    }
    return out;
}

// ---- definitions ------------------------------------------------------------

inline std::string to_text(const Value& v) {
    switch (v.type()) {
    case Value::Type::string: return v.as<std::string>();
    case Value::Type::integer: return std::to_string(v.as<std::int64_t>());
    case Value::Type::real: {
        const double d = v.as<double>();
        if (std::isnan(d)) return "nan";
        if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
        return json(d).dump();
    }
    case Value::Type::boolean: return v.as<bool>() ? "true" : "false";
    case Value::Type::null: return "null";
    default: return to_json(v).dump();
    }
}

}  // namespace fedflow::command

#endif  // FEDFLOW_COMMAND_HPP
