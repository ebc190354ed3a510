#include "report/timeline.hpp"

#include "report/format.hpp"
#include "report/tables.hpp"

#include "common/device.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <queue>
#include <set>

namespace fedflow::report {

namespace {

using json = nlohmann::ordered_json;

bool lane_before(const std::string& a, const std::string& b) {
    auto rank = [](const std::string& s) -> std::pair<int, long> {
        if (s == "cpu") return {2, 0};
        if (int gpu = device::gpu_index(s); gpu >= 0) return {0, gpu};  // "cuda:N" or "sim:N"
        return {1, 0};
    };
    auto ra = rank(a), rb = rank(b);
    return ra != rb ? ra < rb : a < b;
}

const char* outcome_class(Outcome o) {
    switch (o) {
    case Outcome::ok: return "ok";
    case Outcome::failed: return "fail";
    case Outcome::interrupted: return "oom";
    case Outcome::running: return "run";
    }
    return "run";
}

const char* kind_name(StageKind k) {
    switch (k) {
    case StageKind::load: return "load";
    case StageKind::wait: return "wait";
    case StageKind::train: return "train";
    }
    return "";
}

class Timeline {
public:
    Timeline(Html& out, const Run& run) : out_(out), run_(run) {}

    void draw() {
        out_.raw(
            "<section id=\"timeline\">\n<h2>Timeline <span class=\"muted small\">\u00b7 one lane per device; hover a bar for the "
            "task, its times and memory peaks</span></h2>\n");
        span_ms_ = std::max(run_.end_ms, 1.0);
        std::vector<std::string> lanes = lane_names(run_);
        if (lanes.empty()) {
            out_.raw("<p class=\"muted\">No task has started yet.</p>\n</section>\n");
            return;
        }
        out_.raw("<div class=\"legend\"><b>Stage</b>"
                 "<span><i class=\"sw\" style=\"background:#b2f2bb;border:1px solid #40c057\"></i>load</span>"
                 "<span><i class=\"sw\" style=\"background:#37b24d\"></i>train</span>"
                 "<span><i class=\"sw wait\"></i>loaded, waiting for a device</span>"
                 "<b class=\"gap\">Outcome</b>"
                 "<span><i class=\"sw\" style=\"background:#37b24d\"></i>finished</span>"
                 "<span><i class=\"sw\" style=\"background:#e03131\"></i>failed</span>"
                 "<span><i class=\"sw\" style=\"background:#f59f00\"></i>out of memory, retried</span>"
                 "<span><i class=\"sw\" style=\"background:#339af0\"></i>running</span>");
        if (kept_strip())
            out_.raw("<b class=\"gap\">Kept clients</b>"
                     "<span><i class=\"sw\" style=\"background:#f76707\"></i>evicted to make room</span>"
                     "<span><i class=\"sw\" style=\"background:#e03131\"></i>exited between rounds</span>");
        out_.raw("</div>\n");
        if (auto summarized = summarized_rounds(run_); !summarized.empty()) {
            std::size_t stages = 0;
            for (const Group& g : run_.groups) stages += g.loads.count + g.waits.count + g.trains.count;
            out_.add("<p class=\"muted small\">Rounds {} are summarized: their {} stages are not drawn but those of "
                     "failed tasks (the page draws every stage of the first {} and the latest {} rounds); the bands "
                     "of their groups and rounds are, and Results counts their tasks.</p>\n",
                     round_ranges(run_, summarized), stages, detail_rounds, detail_rounds);
        }

        // One item per run of a task's consecutive stages in one lane, so a
        // load and the wait after it share a row; items are packed into rows.
        std::map<std::pair<std::size_t, std::size_t>, std::vector<std::size_t>> by_task;
        for (std::size_t i = 0; i < run_.stages.size(); ++i)
            by_task[{run_.stages[i].group, run_.stages[i].task}].push_back(i);
        std::map<std::string, std::vector<Item>> items;
        constexpr double min_w = 3;  // what bar() draws at least
        for (auto& [key, list] : by_task) {
            Item* cur = nullptr;
            for (std::size_t i : list) {
                const Stage& st = run_.stages[i];
                if (!cur || cur->lane != st.lane) {
                    auto& v = items[st.lane];
                    v.push_back(Item{st.lane, {}, x_of(st.start_ms), x_of(st.start_ms)});
                    cur = &v.back();
                }
                cur->stages.push_back(i);
                cur->x1 = std::max(cur->x1, std::max(x_of(st.end_ms), x_of(st.start_ms) + min_w));
            }
        }
        std::size_t total_rows = 0;
        std::map<std::string, std::vector<std::size_t>> rows_of;
        std::map<std::string, std::size_t> row_count;
        for (const auto& lane : lanes) {
            std::vector<std::pair<double, double>> spans;
            for (const auto& it : items[lane]) spans.emplace_back(it.x0, it.x1);
            rows_of[lane] = pack_rows(spans, 2.0);
            std::size_t n = 0;
            for (auto r : rows_of[lane]) n = std::max(n, r + 1);
            row_count[lane] = std::max<std::size_t>(n, 1);
            total_rows += row_count[lane];
        }
        // Rows shrink as they multiply, so a run of thousands of tasks stays a page or two.
        const double row_h = total_rows <= 40 ? 16 : total_rows <= 120 ? 10 : total_rows <= 400 ? 6 : 3;
        const double lane_pad = 8, min_lane_h = 40;
        const double top_h = axis_h + (round_strip() ? round_strip_h : 0) + (kept_strip() ? round_strip_h : 0);
        double height = top_h;
        for (const auto& lane : lanes)
            height += std::max(min_lane_h, static_cast<double>(row_count[lane]) * row_h + 2 * lane_pad);
        height += 26;  // the bottom axis

        out_.add("<svg class=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {} {:.0f}\" "
                 "width=\"{}\" height=\"{:.0f}\" role=\"img\" aria-label=\"timeline per device\">\n",
                 width, height, width, height);
        const double plot_top = top_h, plot_bottom = height - 26;
        groups_bands(plot_top, plot_bottom);
        axis(plot_top, plot_bottom, height);
        rounds_strip();
        kept_strip(axis_h - 22 + (round_strip() ? round_strip_h : 0));

        double y = plot_top;
        for (const std::string& lane : lanes) {
            double lane_h = std::max(min_lane_h, static_cast<double>(row_count[lane]) * row_h + 2 * lane_pad);
            std::size_t loads = 0, trains = 0, waits = 0;
            for (const auto& it : items[lane])
                for (std::size_t i : it.stages) {
                    auto k = run_.stages[i].kind;
                    (k == StageKind::load ? loads : k == StageKind::train ? trains : waits)++;
                }
            out_.add("<text class=\"lname\" x=\"10\" y=\"{:.1f}\">{}</text>", y + 17, truncated(lane, 18));
            std::string sub;
            if (trains) sub += fmt::format("{} train{}", trains, trains == 1 ? "" : "s");
            if (loads) sub += fmt::format("{}{} load{}", sub.empty() ? "" : " \u00b7 ", loads, loads == 1 ? "" : "s");
            if (sub.empty()) sub = waits ? "waits only" : "idle";
            out_.add("<text class=\"lsub\" x=\"10\" y=\"{:.1f}\">{}</text>\n", y + 31, sub);
            const auto& rows = rows_of[lane];
            const auto& list = items[lane];
            for (std::size_t k = 0; k < list.size(); ++k) {
                double top = y + lane_pad + static_cast<double>(rows[k]) * row_h;
                for (std::size_t i : list[k].stages) bar(run_.stages[i], top, row_h);
            }
            y += lane_h;
            out_.add("<line class=\"lane\" x1=\"0\" x2=\"{}\" y1=\"{:.1f}\" y2=\"{:.1f}\"/>\n", width, y, y);
        }
        out_.raw("</svg>\n</section>\n");
    }

private:
    struct Item {
        std::string lane;
        std::vector<std::size_t> stages;  // one task's consecutive stages in this lane
        double x0 = 0, x1 = 0;
    };

    static constexpr double width = 1200, label_w = 128, right_pad = 18, axis_h = 42;
    static constexpr double round_strip_h = 18;  // the band of rounds under the group names

    double x_of(double ms) const { return label_w + ms / span_ms_ * (width - label_w - right_pad); }

    void groups_bands(double top, double bottom) {
        std::size_t n = 0;
        for (const auto& g : run_.groups) {
            if (!g.start_ms) continue;
            double x0 = x_of(*g.start_ms), x1 = x_of(g.end_ms.value_or(run_.end_ms));
            if (n++ % 2 == 1)
                out_.add("<rect class=\"band\" x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\"/>", x0, top,
                         std::max(x1 - x0, 0.5), bottom - top);
            out_.add("<line class=\"gstart\" x1=\"{:.1f}\" x2=\"{:.1f}\" y1=\"14\" y2=\"{:.1f}\"/>", x0, x0, bottom);
            std::string label = g.name;
            double room = x1 - x0 - 8;
            // A round's groups repeat every round: named only where the whole name fits.
            if (g.round > 0 && room < 6.5 * static_cast<double>(label.size())) room = 0;
            if (room > 6.5 * 3) {
                auto fits = static_cast<std::size_t>(room / 6.5);
                if (label.size() > fits) label = truncated(label, fits > 1 ? fits - 1 : 1);
                out_.add("<text class=\"gname\" x=\"{:.1f}\" y=\"12\"><title>{}</title>{}</text>", x0 + 4,
                         group_title(g), label);
            }
            out_.raw("\n");
        }
    }

    static std::string group_title(const Group& g) {
        std::string t = "group " + g.name;
        if (g.start_ms)
            t += fmt::format("\n{} \u2192 {}", at(*g.start_ms), g.end_ms ? at(*g.end_ms) : std::string("running"));
        if (g.start_ms && g.end_ms) t += fmt::format(" ({})", duration(*g.end_ms - *g.start_ms));
        return t;
    }

    void axis(double top, double bottom, double height) {
        double step = tick_step(span_ms_);
        for (double t = 0; t <= span_ms_ + step * 1e-9; t += step) {
            double x = x_of(t);
            std::string label = tick_label(t, step, span_ms_);
            out_.add("<line class=\"grid\" x1=\"{:.1f}\" x2=\"{:.1f}\" y1=\"{:.1f}\" y2=\"{:.1f}\"/>", x, x, top - 6,
                     bottom);
            Raw anchor{t == 0 ? "start" : x > width - right_pad - 20 ? "end" : "middle"};
            out_.add("<text class=\"ax\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"{}\">{}</text>", x, top - 10, anchor,
                     label);
            out_.add("<text class=\"ax\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"{}\">{}</text>\n", x, height - 8,
                     anchor, label);
        }
        out_.add("<line class=\"lane\" x1=\"0\" x2=\"{}\" y1=\"{:.1f}\" y2=\"{:.1f}\"/>\n", width, top, top);
    }

    void bar(const Stage& st, double top, double row_h) {
        double x0 = x_of(st.start_ms);
        // Even a stage of no time stays visible: a failure above all.
        double w = std::max(x_of(st.end_ms) - x0, st.outcome == Outcome::failed ? 3.0 : 2.0);
        double h = row_h > 4 ? row_h - 3 : row_h - 0.5;
        std::string cls;
        double y = top;
        if (st.kind == StageKind::wait) {
            double wh = std::max(2.0, std::round(h / 3));
            y = top + (h - wh) / 2;
            h = wh;
            cls = st.outcome == Outcome::failed ? "wt fail" : "wt";
        } else {
            cls = fmt::format("{} {}", st.kind == StageKind::load ? "ld" : "tr", outcome_class(st.outcome));
        }
        out_.add(
            "<rect class=\"b {}\" x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\"><title>{}</title></rect>\n",
            cls, x0, y, w, h, stage_title(st));
    }

    std::string stage_title(const Stage& st) const {
        const Group& g = run_.groups[st.group];
        const TaskInfo& t = g.tasks[st.task];
        std::string s = fmt::format("{}/{} \u00b7 ", g.name, t.id);
        if (st.kind == StageKind::wait) s += "waiting for a device";
        else s += fmt::format("{} on {}", kind_name(st.kind), st.lane);
        if (st.attempt > 1) s += fmt::format(" (attempt {})", st.attempt);
        s += fmt::format("\n{} \u2192 {}  ({})", at(st.start_ms),
                         st.outcome == Outcome::running ? std::string("now") : at(st.end_ms),
                         duration(st.end_ms - st.start_ms));
        switch (st.outcome) {
        case Outcome::ok: s += st.kind == StageKind::wait ? "" : "\nfinished"; break;
        case Outcome::failed: s += "\nfailed"; break;
        case Outcome::interrupted: s += "\nout of memory, retried"; break;
        case Outcome::running: s += run_.ended ? "\nno end recorded" : "\nrunning"; break;
        }
        if (!st.detail.empty()) s += ": " + truncated(st.detail, 300);
        if (!st.reason.empty()) s += "\nwhy: " + truncated(st.reason, 300);
        std::string peaks;
        if (t.peak_memory) peaks += "peak RAM " + bytes(*t.peak_memory);
        if (t.peak_gpu_memory)
            peaks += (peaks.empty() ? "" : " \u00b7 ") + std::string("peak GPU ") + bytes(*t.peak_gpu_memory);
        if (!peaks.empty()) s += "\n" + peaks + " (task)";
        return s;
    }

    bool round_strip() const {
        return std::any_of(run_.rounds.begin(), run_.rounds.end(),
                           [](const Round& r) { return r.start_ms.has_value(); });
    }

    // A thin band per round under the group names, alternating in shade, with
    // the round's number where it fits and its times and values on hover.
    void rounds_strip() {
        if (!round_strip()) return;
        const double y = axis_h - 22, h = 13;
        out_.add("<text class=\"lsub\" x=\"10\" y=\"{:.1f}\">rounds</text>\n", y + 10);
        bool blocks = run_.rounds.back().block > 1;
        std::size_t n = 0;
        for (const Round& r : run_.rounds) {
            if (!r.start_ms) continue;
            double x0 = x_of(*r.start_ms), x1 = x_of(r.end_ms.value_or(run_.end_ms));
            double w = std::max(x1 - x0, 1.0);
            out_.add(
                "<rect class=\"rb{}\" x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{}\"><title>{}</title></rect>",
                Raw{n++ % 2 ? " alt" : ""}, x0, y, w, h, round_title(r, blocks));
            std::string label = std::to_string(r.round);
            if (w > 6.0 * static_cast<double>(label.size()) + 4)
                out_.add("<text class=\"rn\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>", x0 + w / 2,
                         y + 10, label);
            out_.raw("\n");
        }
    }

    bool kept_strip() const { return !run_.kept_ends.empty(); }

    // keep-loaded: a tick where kept workers ended between rounds. Ends that
    // fall on the same pixels share a tick, so thousands of evictions stay
    // a strip of at most ~500 marks.
    void kept_strip(double y) {
        if (!kept_strip()) return;
        const double h = 13, px = 2;
        out_.add("<text class=\"lsub\" x=\"10\" y=\"{:.1f}\">kept ends</text>\n", y + 10);
        struct Tick {
            std::size_t evicted = 0, exited = 0;
            double first_ms = 0, last_ms = 0;
            std::vector<const KeptEnd*> shown;
        };
        std::map<long, Tick> ticks;
        constexpr std::size_t names = 6;  // told by name in a tick's title
        for (const KeptEnd& k : run_.kept_ends) {
            Tick& t = ticks[std::lround(x_of(k.ms) / px)];
            if (t.evicted + t.exited == 0) t.first_ms = k.ms;
            t.last_ms = k.ms;
            (k.evicted ? t.evicted : t.exited)++;
            if (t.shown.size() < names) t.shown.push_back(&k);
        }
        for (const auto& [slot, t] : ticks) {
            std::string title;
            if (t.evicted) title += fmt::format("{} evicted", t.evicted);
            if (t.exited) title += fmt::format("{}{} exited between rounds", title.empty() ? "" : ", ", t.exited);
            title += fmt::format("\n{}", at(t.first_ms));
            if (t.last_ms > t.first_ms) title += fmt::format(" \u2192 {}", at(t.last_ms));
            for (const KeptEnd* k : t.shown)
                title += fmt::format("\n{}/{} {}", k->group, k->task,
                                     k->evicted ? std::string("evicted") : "exited: " + truncated(k->how, 80));
            if (std::size_t more = t.evicted + t.exited - t.shown.size()) title += fmt::format("\nand {} more", more);
            out_.add(
                "<rect class=\"ke{}\" x=\"{:.1f}\" y=\"{:.1f}\" width=\"{}\" height=\"{}\"><title>{}</title></rect>\n",
                Raw{t.exited ? " x" : ""}, static_cast<double>(slot) * px - px / 2, y, px, h, title);
        }
        if (run_.untold_kept_ends)
            out_.add(
                "<text class=\"lsub\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">and {} later, not drawn</text>\n",
                width - right_pad, y + 10, run_.untold_kept_ends);
    }

    static std::string round_title(const Round& r, bool blocks) {
        std::string t = blocks ? fmt::format("[[round]] {}, round {}", r.block, r.round)
                               : fmt::format("round {}", r.round);
        if (r.start_ms)
            t += fmt::format("\n{} \u2192 {}", at(*r.start_ms), r.end_ms ? at(*r.end_ms) : std::string("running"));
        if (r.wall_s) t += fmt::format(" ({})", duration(*r.wall_s * 1000));
        for (std::size_t i = 0; i < r.values.size() && i < 8; ++i)
            t += fmt::format("\n{} = {}", truncated(r.values[i].first, 40), number(json(r.values[i].second)));
        if (!r.stopped_by.empty()) t += "\nstopped here: " + r.stopped_by;
        return t;
    }

    Html& out_;
    const Run& run_;
    double span_ms_ = 1;
};

}  // namespace

void timeline(Html& out, const Run& run) { Timeline(out, run).draw(); }

std::vector<std::size_t> pack_rows(const std::vector<std::pair<double, double>>& spans, double gap) {
    std::vector<std::size_t> order(spans.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(),
                     [&](std::size_t a, std::size_t b) { return spans[a].first < spans[b].first; });
    // Rows in use, by the time they become free; rows free now, lowest first.
    using Busy = std::pair<double, std::size_t>;
    std::priority_queue<Busy, std::vector<Busy>, std::greater<>> busy;
    std::set<std::size_t> free;
    std::size_t rows = 0;
    std::vector<std::size_t> row(spans.size(), 0);
    for (std::size_t i : order) {
        auto [start, end] = spans[i];
        while (!busy.empty() && busy.top().first + gap <= start) {
            free.insert(busy.top().second);
            busy.pop();
        }
        std::size_t r;
        if (free.empty()) {
            r = rows++;
        } else {
            r = *free.begin();
            free.erase(free.begin());
        }
        row[i] = r;
        busy.emplace(std::max(start, end), r);
    }
    return row;
}

std::vector<std::string> lane_names(const Run& run) {
    std::set<std::string> names;
    for (const auto& st : run.stages) names.insert(st.lane);
    // Every GPU of the run gets a lane, also one that stayed idle.
    if (auto d = run.info.find("devices"); !names.empty() && d != run.info.end() && d->is_array())
        for (const auto& dev : *d)
            if (dev.is_object() && device::gpu_index(string_at(dev, "name")) >= 0) names.insert(string_at(dev, "name"));
    std::vector<std::string> v(names.begin(), names.end());
    std::sort(v.begin(), v.end(), lane_before);
    return v;
}

double tick_step(double span_ms) {
    static const double steps[] = {1,      2,      5,       10,      20,      50,       100,      200,      500,
                                   1000,   2000,   5000,    10000,   15000,   30000,    60000,    120000,   300000,
                                   600000, 900000, 1800000, 3600000, 7200000, 10800000, 21600000, 43200000, 86400000};
    double step = steps[std::size(steps) - 1];
    for (double s : steps)
        if (span_ms / s <= 10) {
            step = s;
            break;
        }
    while (span_ms / step > 10) step *= 2;
    return step;
}

std::string tick_label(double t, double step, double span_ms) {
    if (t == 0) return "0";
    if (step < 1000) {
        int decimals = step >= 100 ? 1 : step >= 10 ? 2 : 3;
        return fmt::format("{:.{}f}s", t / 1000, decimals);
    }
    auto s = static_cast<std::int64_t>(t / 1000 + 0.5);
    if (span_ms < 120000) return fmt::format("{}s", s);
    if (span_ms < 2 * 3600000.0) return fmt::format("{}:{:02}", s / 60, s % 60);
    return fmt::format("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60);
}

}  // namespace fedflow::report
