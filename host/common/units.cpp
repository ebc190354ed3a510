#include "common/units.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <stdexcept>
#include <vector>

namespace fedflow::units {

namespace {

// Splits "2.5GB" into 2.5 and "GB"; throws when there is no number.
std::pair<double, std::string_view> number_and_unit(std::string_view text, const char* what) {
    std::string s(text);
    char* end = nullptr;
    double v = std::strtod(s.c_str(), &end);
    if (end == s.c_str() || !std::isfinite(v) || v < 0)
        throw std::invalid_argument(fmt::format("'{}' is not a {}", text, what));
    std::string_view unit = text.substr(static_cast<std::size_t>(end - s.c_str()));
    while (!unit.empty() && unit.front() == ' ') unit.remove_prefix(1);
    return {v, unit};
}

}  // namespace

std::uint64_t parse_size(std::string_view text) {
    static const std::pair<std::string_view, double> table[] = {
        {"", 1},      {"B", 1},        {"KB", 1e3},        {"MB", 1e6},           {"GB", 1e9},
        {"TB", 1e12}, {"KiB", 1024.0}, {"MiB", 1048576.0}, {"GiB", 1073741824.0}, {"TiB", 1099511627776.0},
    };
    auto [v, unit] = number_and_unit(text, "size (e.g. \"2GB\", \"512MiB\")");
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
    auto [v, unit] = number_and_unit(text, "duration (e.g. \"30s\", \"5m\", \"1.5h\")");
    for (const auto& [name, factor] : table) {
        if (unit != name) continue;
        // Checked as a double: "1e30h" is finite, but no integer holds it
        // (it became a negative count, which meant no timeout at all).
        double ms = std::round(v * factor);
        if (ms > static_cast<double>(max_duration.count()) || (v > 0 && ms < 1))
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
