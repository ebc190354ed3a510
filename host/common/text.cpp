#include "common/text.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <cmath>

namespace fedflow::text {

namespace {

// The length of the valid UTF-8 sequence at s[i], or 0 (RFC 3629: no
// overlong forms, no surrogates, nothing above U+10FFFF).
std::size_t utf8_length(std::string_view s, std::size_t i) {
    const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
    const auto cont = [&](std::size_t k) { return i + k < s.size() && (b(k) & 0xC0) == 0x80; };
    const unsigned char c = b(0);
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (!cont(1) || !cont(2)) return 0;
        if (c == 0xE0 && b(1) < 0xA0) return 0;   // overlong
        if (c == 0xED && b(1) >= 0xA0) return 0;  // surrogate
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (!cont(1) || !cont(2) || !cont(3)) return 0;
        if (c == 0xF0 && b(1) < 0x90) return 0;   // overlong
        if (c == 0xF4 && b(1) >= 0x90) return 0;  // above U+10FFFF
        return 4;
    }
    return 0;
}

void hex_byte(std::string& out, unsigned char c) {
    static const char digits[] = "0123456789abcdef";
    out += "\\x";
    out += digits[c >> 4];
    out += digits[c & 0xF];
}

std::string escape(std::string_view s, const std::string_view* indent) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size();) {
        const auto c = static_cast<unsigned char>(s[i]);
        const std::size_t n = utf8_length(s, i);
        if (n == 0) {
            hex_byte(out, c);
            ++i;
            continue;
        }
        if (n == 2 && c == 0xC2 && static_cast<unsigned char>(s[i + 1]) < 0xA0) {  // C1: U+0080..U+009F
            hex_byte(out, c);
            hex_byte(out, static_cast<unsigned char>(s[i + 1]));
            i += 2;
            continue;
        }
        if (n > 1 || (c >= 0x20 && c != 0x7F)) {
            out.append(s, i, n);
            i += n;
            continue;
        }
        ++i;
        switch (c) {
        case '\n':
            if (indent != nullptr) {
                out += '\n';
                out += *indent;
            } else {
                out += "\\n";
            }
            break;
        case '\t': out += indent != nullptr ? "\t" : "\\t"; break;
        case '\r': out += "\\r"; break;
        case '\0': out += "\\0"; break;
        case 0x1B: out += "\\e"; break;
        default: hex_byte(out, c);
        }
    }
    return out;
}

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

std::string lowered(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(), lower);
    return out;
}

bool is_subsequence(std::string_view word, std::string_view of) {
    std::size_t j = 0;
    for (char c : of)
        if (j < word.size() && word[j] == c) ++j;
    return j == word.size();
}

template <class Candidates>
std::optional<std::string> closest_in(std::string_view word, const Candidates& candidates) {
    const std::string w = lowered(word);
    // Lower is better: (tier, score, length); the first of equals wins.
    struct Rank {
        int tier;
        std::size_t score, length;
        bool operator<(const Rank& o) const {
            if (tier != o.tier) return tier < o.tier;
            if (score != o.score) return score < o.score;
            return length < o.length;
        }
    };
    std::optional<Rank> best;
    std::optional<std::string> found;
    for (const auto& candidate : candidates) {
        const std::string_view cand(candidate);
        if (cand == word || cand.empty()) continue;
        const std::string c = lowered(cand);
        std::optional<Rank> r;
        const std::size_t d = edit_distance(w, c);
        std::size_t common = 0;
        while (common < w.size() && common < c.size() && w[common] == c[common]) ++common;
        if (d <= std::max<std::size_t>(2, w.size() / 3)) r = Rank{0, d, c.size()};
        else if (common >= 3 && common * 2 > w.size()) r = Rank{1, c.size() - common, c.size()};
        else if (w.size() >= 4 && w.size() * 2 >= c.size() && is_subsequence(w, c))
            r = Rank{2, c.size() - w.size(), c.size()};
        if (r && (!best || *r < *best)) {
            best = r;
            found = std::string(cand);
        }
    }
    return found;
}

// "5m", "1h02m03s", "1h30m": whole seconds.
std::string clock_time(std::int64_t s) {
    const std::int64_t h = s / 3600, m = s / 60 % 60, sec = s % 60;
    std::string out = h > 0 ? fmt::format("{}h", h) : std::string();
    if (m > 0 || (h > 0 && sec > 0)) out += h > 0 ? fmt::format("{:02}m", m) : fmt::format("{}m", m);
    if (sec > 0) out += fmt::format("{:02}s", sec);
    return out;
}

// "1.50" -> "1.5", "2.00" -> "2".
std::string trimmed(std::string s) {
    if (s.find('.') == std::string::npos) return s;
    while (s.back() == '0') s.pop_back();
    if (s.back() == '.') s.pop_back();
    return s;
}

}  // namespace

std::string printable(std::string_view s) { return escape(s, nullptr); }

std::string printable_lines(std::string_view s, std::string_view indent) { return escape(s, &indent); }

std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diag = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            std::size_t up = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
            diag = up;
        }
    }
    return row[b.size()];
}

std::optional<std::string> closest(std::string_view word, const std::vector<std::string_view>& candidates) {
    return closest_in(word, candidates);
}

std::optional<std::string> closest(std::string_view word, const std::vector<std::string>& candidates) {
    return closest_in(word, candidates);
}

std::optional<std::string> closest(std::string_view word, std::initializer_list<std::string_view> candidates) {
    return closest_in(word, candidates);
}

namespace {
std::string phrase(const std::optional<std::string>& c) {
    return c ? fmt::format(" (did you mean '{}'?)", printable(*c)) : std::string();
}
}  // namespace

std::string did_you_mean(std::string_view word, const std::vector<std::string_view>& candidates) {
    return phrase(closest(word, candidates));
}

std::string did_you_mean(std::string_view word, const std::vector<std::string>& candidates) {
    return phrase(closest(word, candidates));
}

std::string did_you_mean(std::string_view word, std::initializer_list<std::string_view> candidates) {
    return phrase(closest(word, candidates));
}

std::string format_size(std::uint64_t bytes) {
    static const char* const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    if (bytes < 1000) return fmt::format("{} B", bytes);
    double v = static_cast<double>(bytes);
    int u = 0;
    // 1000, not 1024: "0.98 GiB" reads better than "1002 MiB".
    while (v >= 999.5 && u < 6) {
        v /= 1024;
        ++u;
    }
    // The precision is chosen after rounding, so 9.999 KiB is "10.0 KiB".
    const int decimals = v < 9.995 ? 2 : v < 99.95 ? 1 : 0;
    return fmt::format("{:.{}f} {}", v, decimals, units[u]);
}

std::string format_duration(std::chrono::milliseconds d) {
    std::int64_t ms = d.count();
    if (ms < 0) return "-" + format_duration(std::chrono::milliseconds(-ms));
    if (ms < 1000) return fmt::format("{}ms", ms);
    const std::int64_t centi = (ms + 5) / 10;
    if (centi < 1000) return trimmed(fmt::format("{}.{:02}", centi / 100, centi % 100)) + "s";
    const std::int64_t deci = (ms + 50) / 100;
    if (deci < 600) return trimmed(fmt::format("{}.{}", deci / 10, deci % 10)) + "s";
    return clock_time((ms + 500) / 1000);
}

}  // namespace fedflow::text
