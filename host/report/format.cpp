#include "report/format.hpp"

#include <fmt/format.h>

#include <cmath>
#include <cstdint>

namespace fedflow::report {

std::string duration(double ms) {
    if (!(ms >= 0)) return "";
    if (ms < 1000) return fmt::format("{:.0f} ms", ms);
    if (ms < 10000) return fmt::format("{:.2f} s", ms / 1000);
    if (ms < 60000) return fmt::format("{:.1f} s", ms / 1000);
    auto s = static_cast<std::int64_t>(ms / 1000 + 0.5);
    if (s < 3600) return fmt::format("{}m {:02}s", s / 60, s % 60);
    return fmt::format("{}h {:02}m {:02}s", s / 3600, s / 60 % 60, s % 60);
}

std::string bytes(double b) {
    static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    if (!(b >= 0)) return "";
    int u = 0;
    while (b >= 1000 && u < 5) {  // 1000, not 1024: "0.98 GiB" reads better than "1002 MiB"
        b /= 1024;
        ++u;
    }
    if (u == 0) return fmt::format("{:.0f} B", b);
    return fmt::format("{:.{}f} {}", b, b < 10 ? 2 : b < 100 ? 1 : 0, units[u]);
}

std::string at(double ms) {
    if (ms < 60000) return fmt::format("+{:.3f} s", ms / 1000);
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
