#include "report/charts.hpp"

#include "report/format.hpp"
#include "report/tables.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <set>

namespace fedflow::report {

namespace {

using json = nlohmann::ordered_json;

std::string tick_text(double v, int decimals) {
    if (std::fabs(v) >= 1e6) return fmt::format("{:.3g}", v);
    std::string s = fmt::format("{:.{}f}", v, decimals);
    return s == "-0" ? "0" : s;
}

// One small line chart of a value over the rounds: axes with ticks, a point
// per round with its value on hover, the last value labelled.
void line_chart(Html& out, const std::vector<const Round*>& list, const std::string& key) {
    std::vector<std::pair<int, double>> pts;
    for (const Round* r : list)
        if (const double* v = value_of(*r, key); v && std::isfinite(*v)) pts.emplace_back(r->round, *v);
    const std::string name = truncated(key, 40);
    out.raw("<figure class=\"chart\">");
    if (pts.empty()) {
        out.add("<figcaption><b>{}</b></figcaption><p class=\"muted small\">no value yet</p></figure>\n", name);
        return;
    }
    auto [mn, mx] = std::minmax_element(pts.begin(), pts.end(), [](auto& a, auto& b) { return a.second < b.second; });
    double lo = mn->second, hi = mx->second;
    out.add(
        "<figcaption><b>{}</b><span><span class=\"muted\">min {} \u00b7 max {} \u00b7 round {}:</span> {}</span></figcaption>\n",
        name, short_number(lo), short_number(hi), pts.back().first, number(json(pts.back().second)));
    if (lo == hi) {
        double pad = lo == 0 ? 1 : std::fabs(lo) * 0.1;
        lo -= pad;
        hi += pad;
    }
    Ticks yticks = nice_ticks(lo, hi, 4);
    double ylo = std::min(lo, yticks.values.front()), yhi = std::max(hi, yticks.values.back());
    int r0 = list.front()->round, r1 = list.back()->round;
    constexpr double W = 380, H = 200, left = 50, right = 64, top = 12, bottom = 30;
    const double pw = W - left - right, ph = H - top - bottom;
    auto X = [&](double r) { return r1 == r0 ? left + pw / 2 : left + (r - r0) / (r1 - r0) * pw; };
    auto Y = [&](double v) { return top + (yhi - v) / (yhi - ylo) * ph; };

    out.add("<svg class=\"chart-svg\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {} {}\" role=\"img\" "
            "aria-label=\"{} by round\">\n",
            W, H, name);
    for (double t : yticks.values) {
        double y = Y(t);
        out.add("<line class=\"grid\" x1=\"{}\" x2=\"{}\" y1=\"{:.1f}\" y2=\"{:.1f}\"/>"
                "<text class=\"ax\" x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">{}</text>\n",
                left, W - right, y, y, left - 6, y + 3.5, tick_text(t, yticks.decimals));
    }
    // Rounds on x: whole numbers, at most about ten labels.
    int span = std::max(r1 - r0, 1), step = 1;
    for (int s : {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 100000, 1000000})
        if (span / s <= 10) {
            step = s;
            break;
        }
    for (int r = (r0 + step - 1) / step * step; r <= r1; r += step) {
        if (r < r0) continue;
        double x = X(r);
        out.add("<line class=\"tick\" x1=\"{:.1f}\" x2=\"{:.1f}\" y1=\"{}\" y2=\"{}\"/>"
                "<text class=\"ax\" x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                x, x, H - bottom, H - bottom + 4, x, H - bottom + 15, r);
    }
    out.add(
        "\n<line class=\"axis\" x1=\"{}\" x2=\"{}\" y1=\"{}\" y2=\"{}\"/><line class=\"axis\" x1=\"{}\" x2=\"{}\" y1=\"{}\" y2=\"{}\"/>",
        left, W - right, H - bottom, H - bottom, left, left, top, H - bottom);
    out.add("<text class=\"ax\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">round</text>\n", left + pw / 2, H - 2);

    std::string line, area = fmt::format("{:.1f},{:.1f}", X(pts.front().first), H - bottom);
    for (const auto& [r, v] : pts) {
        line += fmt::format("{}{:.1f},{:.1f}", line.empty() ? "" : " ", X(r), Y(v));
        area += fmt::format(" {:.1f},{:.1f}", X(r), Y(v));
    }
    area += fmt::format(" {:.1f},{:.1f}", X(pts.back().first), H - bottom);
    if (pts.size() > 1)
        out.add("<polygon class=\"ca\" points=\"{}\"/><polyline class=\"cl\" points=\"{}\"/>\n", area, line);
    const double radius = pts.size() <= 40 ? 3 : pts.size() <= 150 ? 2 : 1.2;
    for (const auto& [r, v] : pts)
        out.add("<circle class=\"cp\" cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"{}\"><title>round {}: {} = {}</title></circle>",
                X(r), Y(v), radius, r, name, number(json(v)));
    const auto& [lr, lv] = pts.back();
    out.add("\n<text class=\"clast\" x=\"{:.1f}\" y=\"{:.1f}\">{}</text>\n</svg></figure>\n", X(lr) + 7, Y(lv) + 4,
            short_number(lv));
}

}  // namespace

std::vector<std::vector<const Round*>> round_blocks(const Run& run) {
    std::vector<std::vector<const Round*>> blocks;
    for (const Round& r : run.rounds) {
        if (blocks.empty() || blocks.back().back()->block != r.block) blocks.emplace_back();
        blocks.back().push_back(&r);
    }
    return blocks;
}

const double* value_of(const Round& r, const std::string& key) {
    for (const auto& [k, v] : r.values)
        if (k == key) return &v;
    return nullptr;
}

std::vector<std::string> chart_keys(const Run& run, const std::vector<const Round*>& rounds) {
    std::vector<std::string> keys;
    std::set<std::string> flags;
    for (const Round* r : rounds) {
        for (std::size_t gi : r->groups)
            for (const auto& t : run.groups[gi].tasks)
                if (auto res = t.entry.find("result"); res != t.entry.end() && res->is_object())
                    for (const auto& [k, v] : res->items())
                        if (v.is_boolean()) flags.insert(k);
        for (const auto& [k, v] : r->values)
            if (std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
    }
    std::vector<std::string> out;
    for (const auto& k : keys) {
        if (flags.count(k)) continue;
        // One round proves nothing: a value 1 in round 1 may be anything.
        bool is_round = rounds.size() > 1 || k == "round";
        for (const Round* r : rounds)
            for (const auto& [rk, v] : r->values)
                if (rk == k && v != r->round) is_round = false;
        if (!is_round) out.push_back(k);
    }
    return out;
}

std::vector<std::string> curves(const Run& run, const std::vector<const Round*>& rounds) {
    std::vector<std::string> out;
    for (const auto& k : chart_keys(run, rounds)) {
        std::set<double> seen;
        for (const Round* r : rounds)
            if (const double* v = value_of(*r, k)) seen.insert(*v);
        if (seen.size() != 1 || rounds.size() == 1) out.push_back(k);
    }
    return out;
}

Curves curves_by_block(const Run& run) {
    Curves out;
    for (const auto& list : round_blocks(run)) out[list.front()->block] = curves(run, list);
    return out;
}

Ticks nice_ticks(double lo, double hi, int want) {
    double span = hi - lo;
    double raw = span / want;
    double mag = std::pow(10.0, std::floor(std::log10(raw)));
    double step = mag;
    for (double m : {1.0, 2.0, 2.5, 5.0, 10.0})
        if (m * mag >= raw) {
            step = m * mag;
            break;
        }
    Ticks out;
    for (double t = std::floor(lo / step) * step; out.values.size() < 40; t += step) {
        out.values.push_back(std::fabs(t) < step * 1e-9 ? 0.0 : t);
        if (t >= hi - step * 1e-9) break;
    }
    out.decimals = std::clamp(static_cast<int>(-std::floor(std::log10(step) + 1e-9)), 0, 8);
    if (step * std::pow(10.0, out.decimals) != std::round(step * std::pow(10.0, out.decimals)))
        ++out.decimals;  // 2.5, 0.25
    return out;
}

void rounds_section(Html& out, const Run& run, const Curves& all_curves) {
    if (run.rounds.empty()) return;
    out.add(
        "<section id=\"rounds\">\n<h2>Rounds <span class=\"muted small\">({}) \u00b7 what the last group of each round "
        "returned (averaged over its tasks); hover a point for its value</span></h2>\n",
        run.rounds.size());
    auto blocks = round_blocks(run);
    for (const auto& list : blocks) {
        if (blocks.size() > 1) out.add("<h3>[[round]] {}</h3>\n", list.front()->block);
        for (const Round* r : list)
            if (!r->stopped_by.empty())
                out.add("<p class=\"muted small\">Stopped after round {}: {} asked to stop (stop-when).</p>\n",
                        r->round, r->stopped_by);
        static const std::vector<std::string> none;
        auto found = all_curves.find(list.front()->block);
        const std::vector<std::string>& charted = found != all_curves.end() ? found->second : none;
        constexpr std::size_t max_charts = 12;
        // A value that never changed is a fact, not a curve.
        Html constant;
        for (const auto& k : chart_keys(run, list)) {
            if (std::find(charted.begin(), charted.end(), k) != charted.end()) continue;
            const double* v = nullptr;
            for (const Round* r : list) v = v ? v : value_of(*r, k);
            if (v)
                constant.add("{}<b>{}</b> {}", Raw{constant.str().empty() ? "" : " \u00b7 "}, truncated(k, 40),
                             number(json(*v)));
        }
        if (charted.empty() && constant.str().empty())
            out.raw("<p class=\"muted\">No round has returned a number yet.</p>\n");
        if (!charted.empty()) {
            out.raw("<div class=\"charts\">\n");
            for (std::size_t i = 0; i < charted.size() && i < max_charts; ++i) line_chart(out, list, charted[i]);
            out.raw("</div>\n");
            if (charted.size() > max_charts)
                out.add("<p class=\"muted small\">{} more values are in the table below.</p>\n",
                        charted.size() - max_charts);
        }
        if (!constant.str().empty())
            out.add("<p class=\"small constant\"><span class=\"muted\">The same in every round:</span> {}</p>\n",
                    Raw{constant.str()});
        rounds_table(out, list);
    }
    out.raw("</section>\n");
}

}  // namespace fedflow::report
