#include "report/format.hpp"

#include "common/text.hpp"

#include <fmt/format.h>

#include <cmath>
#include <cstdint>

namespace fedflow::report {

// The host's own formats (common/text.hpp), for the doubles of the model.
std::string duration(double ms) {
    if (!(ms >= 0)) return "";
    return text::format_duration(std::chrono::milliseconds(std::llround(ms)));
}

std::string bytes(double b) {
    if (!(b >= 0)) return "";
    return text::format_size(static_cast<std::uint64_t>(std::llround(b)));
}

std::string at(double ms) {
    if (ms < 60000) return fmt::format("+{:.3f}s", ms / 1000);
    return "+" + duration(ms);
}

std::string number(const nlohmann::ordered_json& v) {
    if (v.is_number_integer()) return v.dump();
    double d = v.get<double>();
    if (!std::isfinite(d)) return std::isnan(d) ? "NaN" : d > 0 ? "Infinity" : "-Infinity";
    double a = std::fabs(d);
    // A time in seconds since the epoch or a sample count is read whole.
    if (a >= 1e5 && a < 1e15) {
        std::string s = fmt::format("{:.2f}", d);
        while (s.back() == '0') s.pop_back();
        if (s.back() == '.') s.pop_back();
        return s;
    }
    return fmt::format("{:.6g}", d);
}

std::string short_number(double v) {
    if (std::fabs(v) >= 1e4 && std::fabs(v) < 1e9 && v == std::round(v)) return fmt::format("{:.0f}", v);
    return fmt::format("{:.4g}", v);
}

}  // namespace fedflow::report
