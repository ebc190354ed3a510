#include "common/units.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <stdexcept>
#include <vector>

namespace fedflow::units {

namespace {

struct Number {
    double value;
    bool positive;  // a digit other than 0: "1e-400" is positive, though no double holds it
    std::string_view unit;
};

bool digit(char c) { return c >= '0' && c <= '9'; }

// Splits "2.5GB" into 2.5 and "GB". The number is written as docs/plan.md
// says, digits with an optional fraction and exponent ("2", "2.5", ".5",
// "1e3"), and nothing else: strtod alone also took hex ("0x1p4"), a sign
// and leading spaces. One space may come between it and the unit.
Number number_and_unit(std::string_view text, const char* what) {
    std::size_t i = 0;
    bool positive = false;
    auto digits = [&] {
        const std::size_t from = i;
        for (; i < text.size() && digit(text[i]); ++i) positive = positive || text[i] != '0';
        return i > from;
    };
    bool whole = digits();
    bool fraction = false;
    if (i < text.size() && text[i] == '.') {
        ++i;
        fraction = digits();
    }
    if (!whole && !fraction) throw std::invalid_argument(fmt::format("'{}' is not a {}", text, what));
    // An exponent only when digits follow: "1e" is 1 of the unit "e".
    if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
        std::size_t sign = i + 1 < text.size() && (text[i + 1] == '+' || text[i + 1] == '-') ? 1 : 0;
        if (i + 1 + sign < text.size() && digit(text[i + 1 + sign])) {
            i += 1 + sign;
            while (i < text.size() && digit(text[i])) ++i;
        }
    }
    // Only digits, '.', 'e', signs: strtod reads it whole, as +-HUGE_VAL when
    // it is too large (refused as out of range) and 0 when it is too small.
    const std::string number(text.substr(0, i));
    const double v = std::strtod(number.c_str(), nullptr);
    std::string_view unit = text.substr(i);
    if (!unit.empty() && unit.front() == ' ') unit.remove_prefix(1);
    // Every unit is letters: "0x10s" or "1.5.5s" is no number and unit.
    if (!std::all_of(unit.begin(), unit.end(), [](char c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; }))
        throw std::invalid_argument(fmt::format("'{}' is not a {}", text, what));
    return {v, positive, unit};
}

}  // namespace

std::uint64_t parse_size(std::string_view text) {
    static const std::pair<std::string_view, double> table[] = {
        {"", 1},      {"B", 1},        {"KB", 1e3},        {"MB", 1e6},           {"GB", 1e9},
        {"TB", 1e12}, {"KiB", 1024.0}, {"MiB", 1048576.0}, {"GiB", 1073741824.0}, {"TiB", 1099511627776.0},
    };
    auto [v, positive, unit] = number_and_unit(text, "size (e.g. \"2GB\", \"512MiB\")");
    for (const auto& [name, factor] : table) {
        if (unit == name) {
            double bytes = std::round(v * factor);
            if (bytes > static_cast<double>(max_size))
                throw std::invalid_argument(fmt::format("'{}' is out of range: {}", text, size_range));
            return static_cast<std::uint64_t>(bytes);
        }
    }
    throw std::invalid_argument(
        fmt::format("'{}' has unknown unit '{}' (use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)", text, unit));
}

std::chrono::milliseconds parse_duration(std::string_view text) {
    static const std::pair<std::string_view, double> table[] = {
        {"", 1000}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000},
    };
    auto [v, positive, unit] = number_and_unit(text, "duration (e.g. \"30s\", \"5m\", \"1.5h\")");
    for (const auto& [name, factor] : table) {
        if (unit != name) continue;
        // Checked as a double: "1e30h" is finite, but no integer holds it
        // (it became a negative count, which meant no timeout at all).
        double ms = std::round(v * factor);
        if (ms > static_cast<double>(max_duration.count()) || (positive && ms < 1))
            throw std::invalid_argument(fmt::format("'{}' is out of range: {}", text, duration_range));
        return std::chrono::milliseconds(static_cast<std::int64_t>(ms));
    }
    throw std::invalid_argument(fmt::format("'{}' has unknown unit '{}' (use ms, s, m or h)", text, unit));
}

std::vector<std::string_view> split_commas(std::string_view text) {
    std::vector<std::string_view> out;
    std::size_t pos = 0;
    for (;;) {
        std::size_t comma = text.find(',', pos);
        out.push_back(text.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos));
        if (comma == std::string_view::npos) return out;
        pos = comma + 1;
    }
}

bool all_digits(std::string_view text) noexcept {
    return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

const char* file_kind(std::filesystem::file_type type) noexcept {
    using T = std::filesystem::file_type;
    switch (type) {
    case T::regular: return "a regular file";
    case T::directory: return "a directory";
    case T::symlink: return "a symbolic link";
    case T::block: return "a block device";
    case T::character: return "a character device";
    case T::fifo: return "a FIFO (named pipe)";
    case T::socket: return "a socket";
    case T::not_found: return "missing";
    default: return "a file of an unknown kind";
    }
}

}  // namespace fedflow::units
