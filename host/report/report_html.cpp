#include "report/report_html.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <functional>
#include <map>
#include <optional>
#include <queue>
#include <set>
#include <system_error>

#include <unistd.h>

namespace fedflow::report {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

namespace detail {

std::string escape(std::string_view s) {
    static constexpr std::string_view replacement = "\xEF\xBF\xBD";
    std::string out;
    out.reserve(s.size() + s.size() / 8);
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    std::size_t n = s.size();
    for (std::size_t i = 0; i < n;) {
        unsigned char c = p[i];
        if (c < 0x80) {
            switch (c) {
            case '&': out += "&amp;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '"': out += "&quot;"; break;
            case '\'': out += "&#39;"; break;
            case '\t':
            case '\n': out += static_cast<char>(c); break;
            default:
                if (c < 0x20 || c == 0x7f) out += replacement;
                else out += static_cast<char>(c);
            }
            ++i;
            continue;
        }
        // A well-formed UTF-8 sequence (no overlong forms, no surrogates,
        // nothing above U+10FFFF) is copied; any other byte is replaced.
        std::size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
        bool ok = len > 0 && c <= 0xF4 && i + len <= n;
        for (std::size_t k = 1; ok && k < len; ++k) ok = (p[i + k] & 0xC0) == 0x80;
        if (ok && len == 3) ok = !(c == 0xE0 && p[i + 1] < 0xA0) && !(c == 0xED && p[i + 1] >= 0xA0);
        if (ok && len == 4) ok = !(c == 0xF0 && p[i + 1] < 0x90) && !(c == 0xF4 && p[i + 1] >= 0x90);
        if (ok) {
            out.append(s.substr(i, len));
            i += len;
        } else {
            out += replacement;
            ++i;
        }
    }
    return out;
}

std::vector<std::size_t> pack_rows(const std::vector<std::pair<double, double>>& spans, double gap) {
    std::vector<std::size_t> order(spans.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return spans[a].first < spans[b].first; });
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

}  // namespace detail

namespace {

using detail::escape;

// ---- formatting -------------------------------------------------------------

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

// A point on the run's time axis, for tooltips: "+1.234 s", "+2m 05s".
std::string at(double ms) {
    if (ms < 60000) return fmt::format("+{:.3f} s", ms / 1000);
    return "+" + duration(ms);
}

std::string truncated(const std::string& s, std::size_t max) {
    if (s.size() <= max) return s;
    std::size_t cut = max;
    while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;  // not inside a character
    return s.substr(0, cut) + "\u2026";
}

std::string number(const json& v) {
    if (v.is_number_integer()) return v.dump();
    double d = v.get<double>();
    if (!std::isfinite(d)) return std::isnan(d) ? "NaN" : d > 0 ? "Infinity" : "-Infinity";
    double a = std::fabs(d);
    // Six significant digits, but never an exponent for a number people
    // read whole (a time in seconds since the epoch, a sample count).
    if (a >= 1e5 && a < 1e15) {
        std::string s = fmt::format("{:.2f}", d);
        while (s.back() == '0') s.pop_back();
        if (s.back() == '.') s.pop_back();
        return s;
    }
    return fmt::format("{:.6g}", d);
}

std::string str(const json& j, const char* key) {
    auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

bool safe_name(const std::string& s) {
    if (s.empty() || s == "." || s == ".." || s.size() > 255) return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    });
}

std::string utc_now() {
    std::time_t t = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
    return buf;
}

// "2026-11-28T02:04:14.752Z" as people read it: "2026-11-28 02:04:14" (UTC).
std::string readable_time(const std::string& iso) {
    if (iso.size() >= 19 && iso[10] == 'T') return iso.substr(0, 10) + " " + iso.substr(11, 8);
    return iso;
}

// Status of a task, as a CSS class and a word for people.
const char* status_class(const std::string& s) {
    if (s == "FINISHED" || s == "EXITED") return "ok";
    if (s == "EXCEPTION") return "fail";
    if (s == "INTERRUPT") return "oom";
    if (s == "INIT") return "idle";
    return "run";
}

bool failed(const TaskInfo& t) { return t.status == "EXCEPTION"; }

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

// cuda:0, cuda:1, ..., cuda:10 in number order, then other devices by name,
// then "cpu".
bool lane_before(const std::string& a, const std::string& b) {
    auto rank = [](const std::string& s) -> std::pair<int, long> {
        if (s == "cpu") return {2, 0};
        if (s.rfind("cuda:", 0) == 0 && s.size() > 5 && s.size() < 15 &&
            s.find_first_not_of("0123456789", 5) == std::string::npos)
            return {0, std::stol(s.substr(5))};
        return {1, 0};
    };
    auto ra = rank(a), rb = rank(b);
    return ra != rb ? ra < rb : a < b;
}

// ---- the page ---------------------------------------------------------------

constexpr std::string_view css = R"(
:root{--ink:#1f2933;--muted:#616e7c;--line:#e4e7eb;--soft:#f5f7fa;--ok:#2f9e44;--fail:#e03131;--oom:#f08c00;--run:#1c7ed6;--idle:#9aa5b1}
*{box-sizing:border-box}
body{margin:0;background:#eef1f4;color:var(--ink);font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1280px;margin:0 auto;padding:20px 24px 40px}
h1{font-size:22px;margin:0;font-weight:650;letter-spacing:-.01em}
h2{font-size:16px;margin:0 0 12px;font-weight:650}
h3{font-size:15px;margin:18px 0 6px;font-weight:650}
section,header{background:#fff;border:1px solid var(--line);border-radius:8px;padding:16px 20px;margin:0 0 16px;box-shadow:0 1px 2px rgba(16,24,40,.04)}
.title{display:flex;align-items:center;gap:12px;flex-wrap:wrap}
.plan{color:var(--muted);margin:4px 0 14px;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px;word-break:break-all}
.facts{display:grid;grid-template-columns:repeat(auto-fill,minmax(200px,1fr));gap:10px 18px;margin:0}
.facts div{min-width:0}.facts dt{color:var(--muted);font-size:11.5px;text-transform:uppercase;letter-spacing:.04em}
.facts dd{margin:1px 0 0;font-weight:600;overflow-wrap:anywhere}
.chips{display:flex;flex-wrap:wrap;gap:8px;margin-top:14px}
.chip{border:1px solid var(--line);background:var(--soft);border-radius:6px;padding:4px 10px;font-size:12.5px}
.chip b{margin-right:6px}
nav{display:flex;gap:16px;margin:14px 0 0;font-size:13px}
a{color:#1864ab;text-decoration:none}a:hover{text-decoration:underline}
.badge{display:inline-block;border-radius:999px;padding:1px 9px;font-size:12px;font-weight:600;line-height:18px;white-space:nowrap;color:#fff;background:var(--idle)}
.badge.ok{background:var(--ok)}.badge.fail{background:var(--fail)}.badge.oom{background:var(--oom)}.badge.run{background:var(--run)}
.badge.big{font-size:13px;padding:2px 12px}
.muted{color:var(--muted)}.small{font-size:12.5px}h2 .small{font-weight:400;margin-left:4px}
.legend{display:flex;flex-wrap:wrap;gap:6px 18px;font-size:12.5px;color:var(--muted);margin:0 0 10px}
.legend span{display:inline-flex;align-items:center;gap:6px}.legend b{color:var(--ink);font-weight:600}.legend .gap{margin-left:14px}
.sw{display:inline-block;width:22px;height:10px;border-radius:2px}
.sw.wait{height:3px;background:#adb5bd}
svg.timeline{display:block;width:100%;height:auto;font:11px system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif}
svg .ax{fill:var(--muted)}svg .grid{stroke:#e9ecef;stroke-width:1}svg .lane{stroke:#ced4da;stroke-width:1}
svg .lname{font-weight:650;fill:var(--ink);font-size:12px}svg .lsub{fill:var(--muted);font-size:10.5px}
svg .band{fill:#f1f3f5}svg .gname{fill:#495057;font-size:10.5px;font-weight:600}svg .gstart{stroke:#adb5bd;stroke-dasharray:3 3}
svg rect.b{shape-rendering:crispEdges;stroke-width:1}
svg .tr.ok{fill:#37b24d;stroke:#2b8a3e}svg .ld.ok{fill:#b2f2bb;stroke:#40c057}
svg .tr.fail{fill:#e03131;stroke:#c92a2a}svg .ld.fail{fill:#ffc9c9;stroke:#e03131}
svg .tr.oom{fill:#f59f00;stroke:#e67700}svg .ld.oom{fill:#ffe8cc;stroke:#f08c00}
svg .tr.run{fill:#339af0;stroke:#1971c2}svg .ld.run{fill:#d0ebff;stroke:#339af0}
svg .wt{fill:#adb5bd;stroke:none}svg .wt.fail{fill:#ffa8a8}
svg rect.b:hover{stroke:#000;stroke-width:1.5}
.scroll{overflow:auto;max-height:640px;border:1px solid var(--line);border-radius:6px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{padding:5px 10px;text-align:left;border-bottom:1px solid var(--line);white-space:nowrap}
td.n{text-align:right;font-variant-numeric:tabular-nums}
th{position:sticky;top:0;background:#f8f9fa;font-weight:600;color:#343a40;cursor:pointer;user-select:none;z-index:1}
th.n{text-align:right}
th:hover{background:#eef1f4}
th[aria-sort=ascending]::after{content:" \25B2";font-size:9px}th[aria-sort=descending]::after{content:" \25BC";font-size:9px}
tbody tr:hover{background:#f8fbff}
td.s{max-width:320px;overflow:hidden;text-overflow:ellipsis}
.group-meta{color:var(--muted);font-size:12.5px;margin:0 0 8px}
.failure{border:1px solid #ffc9c9;border-left:4px solid var(--fail);border-radius:6px;padding:10px 14px;margin:0 0 12px;background:#fff}
.failure .head{display:flex;flex-wrap:wrap;align-items:center;gap:8px}
.msg{margin:8px 0 6px;padding:8px 10px;background:#fff5f5;border-radius:4px;color:#862e2e;white-space:pre-wrap;overflow-wrap:anywhere;font:12.5px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
pre.log{margin:6px 0 0;padding:8px 10px;background:#212529;color:#e9ecef;border-radius:4px;max-height:380px;overflow:auto;white-space:pre-wrap;overflow-wrap:anywhere;font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
summary{cursor:pointer;color:var(--muted);font-size:12.5px}
footer{color:var(--muted);font-size:12px;text-align:center;margin-top:8px}
.notes{margin:6px 0 0;padding-left:18px}
svg .rb{fill:#dbe4ff;stroke:#fff;stroke-width:1}svg .rb.alt{fill:#bac8ff}svg .rb:hover{fill:#91a7ff}
svg .rn{fill:#364fc7;font-size:9.5px;font-weight:600;pointer-events:none}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:12px 16px;margin:0 0 12px}
figure.chart{margin:0;border:1px solid var(--line);border-radius:6px;padding:8px 10px 2px}
figure.chart figcaption{display:flex;justify-content:space-between;align-items:baseline;gap:8px;font-size:13px}
figure.chart figcaption>span{font-variant-numeric:tabular-nums;font-weight:600}figure.chart figcaption .muted{font-weight:400;font-size:12px}
svg.chart-svg{display:block;width:100%;height:auto;font:10.5px system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif}
svg .axis{stroke:#868e96;stroke-width:1}svg .tick{stroke:#868e96}
svg .cl{fill:none;stroke:#1c7ed6;stroke-width:2;stroke-linejoin:round;stroke-linecap:round}
svg .ca{fill:#1c7ed6;fill-opacity:.08}
svg .cp{fill:#fff;stroke:#1c7ed6;stroke-width:1.5}svg .cp:hover{fill:#1c7ed6;stroke-width:3}
svg .clast{fill:#1864ab;font-weight:650;font-size:11.5px}
details.round{border:1px solid var(--line);border-radius:6px;margin:0 0 10px;padding:0 12px 4px}
details.round>summary{padding:8px 0;font-size:13.5px;color:var(--ink)}details.round>summary .muted{font-size:12.5px;margin-left:6px}
details.round h3{margin-top:10px}
details.values{margin:0 0 4px}.constant{margin:0 0 10px}details.values>summary{margin:0 0 6px}
)";

// Sorts a table by the clicked header: numbers by value (data-v holds the raw
// number where the cell shows a formatted one), text in natural order, empty
// cells last.
constexpr std::string_view script = R"(
document.querySelectorAll('table.sortable th').forEach(function(th){th.addEventListener('click',function(){
var t=th.closest('table'),b=t.tBodies[0],i=Array.prototype.indexOf.call(th.parentNode.children,th);
var asc=th.getAttribute('aria-sort')!=='ascending';
t.querySelectorAll('th').forEach(function(h){h.removeAttribute('aria-sort')});th.setAttribute('aria-sort',asc?'ascending':'descending');
function k(r){var c=r.cells[i];if(!c)return '';var v=c.getAttribute('data-v');return v===null?c.textContent.trim():v}
var rows=Array.prototype.slice.call(b.rows);rows.sort(function(r1,r2){var x=k(r1),y=k(r2);
if(x===''||y==='')return x===y?0:(x===''?1:-1);var nx=Number(x),ny=Number(y),c;
c=(!isNaN(nx)&&!isNaN(ny))?nx-ny:x.localeCompare(y,undefined,{numeric:true});return asc?c:-c});
rows.forEach(function(r){b.appendChild(r)})})});
)";

class Page {
public:
    explicit Page(const Run& run) : run_(run) {}

    std::string render() {
        index_failures();
        for (const auto& list : round_blocks()) keys_[list.front()->block] = curves(list);
        std::string plan = str(run_.info, "plan");
        std::string title = plan.empty() ? run_.workdir.filename().string() : fs::path(plan).stem().string();
        out_ += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
        out_ += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
        out_ += fmt::format("<title>Fedflow \u00b7 {} \u00b7 {}</title>\n", escape(title), escape(status()));
        out_ += "<style>";
        out_ += css;
        out_ += "</style>\n</head>\n<body>\n<main>\n";
        header(title);
        timeline();
        rounds();
        failures();
        results();
        footer();
        out_ += "</main>\n<script>";
        out_ += script;
        out_ += "</script>\n</body>\n</html>\n";
        return std::move(out_);
    }

private:
    std::string status() const {
        std::string s = str(run_.info, "status");
        if (!s.empty()) return s;
        return run_.ended ? "ended" : "running";
    }

    void index_failures() {
        for (std::size_t g = 0; g < run_.groups.size(); ++g)
            for (std::size_t t = 0; t < run_.groups[g].tasks.size(); ++t)
                if (failed(run_.groups[g].tasks[t])) failure_ids_[{g, t}] = failure_ids_.size() + 1;
    }

    std::string task_name(std::size_t g, std::size_t t) const {
        return run_.groups[g].name + "/" + run_.groups[g].tasks[t].id;
    }

    // ---- header ---------------------------------------------------------

    void header(const std::string& title) {
        std::string s = status();
        const char* cls = s == "finished" ? "ok" : s == "failed" || s == "error" ? "fail" : s == "interrupted" ? "oom" : "run";
        out_ += "<header>\n<div class=\"title\">";
        out_ += fmt::format("<h1>Fedflow run \u00b7 {}</h1><span class=\"badge big {}\">{}</span>", escape(title), cls, escape(s));
        out_ += "</div>\n";
        std::string plan = str(run_.info, "plan");
        out_ += fmt::format("<div class=\"plan\">{}</div>\n", escape(plan.empty() ? run_.workdir.string() : plan));

        std::size_t tasks = 0, finished = 0, failed_n = 0, other = 0;
        for (const auto& g : run_.groups)
            for (const auto& t : g.tasks) {
                ++tasks;
                if (t.status == "FINISHED" || t.status == "EXITED") ++finished;
                else if (failed(t)) ++failed_n;
                else ++other;
            }
        std::string started = str(run_.info, "started"), ended = str(run_.info, "ended");
        std::string wall;
        auto a = parse_utc_ms(started), b = parse_utc_ms(ended);
        if (a && b) wall = duration(*b - *a);
        else if (run_.end_ms > 0) wall = duration(run_.end_ms) + (run_.ended ? "" : " so far");
        std::string exit_code;
        if (auto it = run_.info.find("exit_code"); it != run_.info.end() && it->is_number_integer()) exit_code = it->dump();

        out_ += "<dl class=\"facts\">\n";
        fact("Started (UTC)", started.empty() ? "\u2014" : readable_time(started));
        fact("Ended (UTC)", ended.empty() ? (run_.ended ? "\u2014" : "still running") : readable_time(ended));
        fact("Wall time", wall.empty() ? "\u2014" : wall);
        fact("Exit code", exit_code.empty() ? "\u2014" : exit_code);
        std::string counts = fmt::format("{} \u00b7 {} finished", tasks, finished);
        if (failed_n) counts += fmt::format(" \u00b7 {} failed", failed_n);
        if (other) counts += fmt::format(" \u00b7 {} not done", other);
        fact("Tasks", counts);
        fact("Groups", std::to_string(run_.groups.size()));
        if (auto v = str(run_.info, "fedflow_version"); !v.empty()) fact("Fedflow", v);
        if (auto it = run_.info.find("seed"); it != run_.info.end() && it->is_number()) fact("Seed", it->dump());
        out_ += "</dl>\n";

        if (auto d = run_.info.find("devices"); d != run_.info.end() && d->is_array() && !d->empty()) {
            out_ += "<div class=\"chips\">";
            for (const auto& dev : *d) {
                if (!dev.is_object()) continue;
                out_ += fmt::format("<span class=\"chip\"><b>{}</b>", escape(str(dev, "name")));
                std::string parts;
                for (const auto& [k, v] : dev.items()) {
                    if (k == "name" || v.is_object() || v.is_array() || v.is_null()) continue;
                    std::string text = v.is_string() ? v.get<std::string>()
                                       : v.is_number() && k.find("memory") != std::string::npos ? bytes(v.get<double>())
                                       : v.is_number() ? number(v)
                                                       : v.dump();
                    if (!parts.empty()) parts += " \u00b7 ";
                    parts += k + " " + text;
                }
                out_ += escape(truncated(parts, 200)) + "</span>";
            }
            out_ += "</div>\n";
        }
        out_ += "<nav><a href=\"#timeline\">Timeline</a>";
        if (!run_.rounds.empty()) out_ += fmt::format("<a href=\"#rounds\">Rounds ({})</a>", run_.rounds.size());
        out_ += fmt::format("<a href=\"#failures\">Failures ({})</a>", failure_ids_.size());
        out_ += "<a href=\"#results\">Results</a></nav>\n";
        out_ += "</header>\n";
    }

    void fact(const std::string& name, const std::string& value) {
        out_ += fmt::format("<div><dt>{}</dt><dd>{}</dd></div>\n", escape(name), escape(value));
    }

    // ---- timeline -------------------------------------------------------

    struct Item {
        std::string lane;
        std::vector<std::size_t> stages;  // one task's consecutive stages in this lane
        double x0 = 0, x1 = 0;
    };

    static constexpr double width = 1200, label_w = 128, right_pad = 18, axis_h = 42;
    static constexpr double round_strip_h = 18;  // the band of rounds under the group names

    double x_of(double ms) const { return label_w + ms / span_ms_ * (width - label_w - right_pad); }

    void timeline() {
        out_ += "<section id=\"timeline\">\n<h2>Timeline <span class=\"muted small\">\u00b7 one lane per device; hover a bar for the task, its times and memory peaks</span></h2>\n";
        span_ms_ = std::max(run_.end_ms, 1.0);
        std::vector<std::string> lanes = lane_names();
        if (lanes.empty()) {
            out_ += "<p class=\"muted\">No task has started yet.</p>\n</section>\n";
            return;
        }
        out_ += "<div class=\"legend\"><b>Stage</b>"
                "<span><i class=\"sw\" style=\"background:#b2f2bb;border:1px solid #40c057\"></i>load</span>"
                "<span><i class=\"sw\" style=\"background:#37b24d\"></i>train</span>"
                "<span><i class=\"sw wait\"></i>loaded, waiting for a device</span>"
                "<b class=\"gap\">Outcome</b>"
                "<span><i class=\"sw\" style=\"background:#37b24d\"></i>finished</span>"
                "<span><i class=\"sw\" style=\"background:#e03131\"></i>failed</span>"
                "<span><i class=\"sw\" style=\"background:#f59f00\"></i>out of memory, retried</span>"
                "<span><i class=\"sw\" style=\"background:#339af0\"></i>running</span>"
                "</div>\n";

        // One item per run of a task's consecutive stages in one lane, so a
        // load and the wait after it share a row; items are packed into rows.
        std::map<std::pair<std::size_t, std::size_t>, std::vector<std::size_t>> by_task;
        for (std::size_t i = 0; i < run_.stages.size(); ++i) by_task[{run_.stages[i].group, run_.stages[i].task}].push_back(i);
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
            rows_of[lane] = detail::pack_rows(spans, 2.0);
            std::size_t n = 0;
            for (auto r : rows_of[lane]) n = std::max(n, r + 1);
            row_count[lane] = std::max<std::size_t>(n, 1);
            total_rows += row_count[lane];
        }
        // Rows shrink as they multiply, so a run of thousands of tasks stays a page or two.
        const double row_h = total_rows <= 40 ? 16 : total_rows <= 120 ? 10 : total_rows <= 400 ? 6 : 3;
        const double lane_pad = 8, min_lane_h = 40;
        top_h_ = axis_h + (round_strip() ? round_strip_h : 0);
        double height = top_h_;
        for (const auto& lane : lanes) height += std::max(min_lane_h, row_count[lane] * row_h + 2 * lane_pad);
        height += 26;  // the bottom axis

        out_ += fmt::format("<svg class=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {} {:.0f}\" "
                            "width=\"{}\" height=\"{:.0f}\" role=\"img\" aria-label=\"timeline per device\">\n",
                            width, height, width, height);
        const double plot_top = top_h_, plot_bottom = height - 26;
        groups_bands(plot_top, plot_bottom);
        axis(plot_top, plot_bottom, height);
        rounds_strip();

        double y = plot_top;
        for (std::size_t li = 0; li < lanes.size(); ++li) {
            const std::string& lane = lanes[li];
            double lane_h = std::max(min_lane_h, row_count[lane] * row_h + 2 * lane_pad);
            std::size_t loads = 0, trains = 0, waits = 0;
            for (const auto& it : items[lane])
                for (std::size_t i : it.stages) {
                    auto k = run_.stages[i].kind;
                    (k == StageKind::load ? loads : k == StageKind::train ? trains : waits)++;
                }
            out_ += fmt::format("<text class=\"lname\" x=\"10\" y=\"{:.1f}\">{}</text>", y + 17, escape(truncated(lane, 18)));
            std::string sub;
            if (trains) sub += fmt::format("{} train{}", trains, trains == 1 ? "" : "s");
            if (loads) sub += fmt::format("{}{} load{}", sub.empty() ? "" : " \u00b7 ", loads, loads == 1 ? "" : "s");
            if (sub.empty()) sub = waits ? "waits only" : "idle";
            out_ += fmt::format("<text class=\"lsub\" x=\"10\" y=\"{:.1f}\">{}</text>\n", y + 31, escape(sub));
            const auto& rows = rows_of[lane];
            const auto& list = items[lane];
            for (std::size_t k = 0; k < list.size(); ++k) {
                double top = y + lane_pad + rows[k] * row_h;
                for (std::size_t i : list[k].stages) bar(run_.stages[i], top, row_h);
            }
            y += lane_h;
            out_ += fmt::format("<line class=\"lane\" x1=\"0\" x2=\"{}\" y1=\"{:.1f}\" y2=\"{:.1f}\"/>\n", width, y, y);
        }
        out_ += "</svg>\n</section>\n";
    }

    std::vector<std::string> lane_names() const {
        std::set<std::string> names;
        for (const auto& st : run_.stages) names.insert(st.lane);
        // Every GPU of the run gets a lane, also one that stayed idle.
        if (auto d = run_.info.find("devices"); !names.empty() && d != run_.info.end() && d->is_array())
            for (const auto& dev : *d)
                if (dev.is_object() && str(dev, "name").rfind("cuda:", 0) == 0) names.insert(str(dev, "name"));
        std::vector<std::string> v(names.begin(), names.end());
        std::sort(v.begin(), v.end(), lane_before);
        return v;
    }

    void groups_bands(double top, double bottom) {
        std::size_t n = 0;
        for (const auto& g : run_.groups) {
            if (!g.start_ms) continue;
            double x0 = x_of(*g.start_ms), x1 = x_of(g.end_ms.value_or(run_.end_ms));
            if (n++ % 2 == 1)
                out_ += fmt::format("<rect class=\"band\" x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\"/>",
                                    x0, top, std::max(x1 - x0, 0.5), bottom - top);
            out_ += fmt::format("<line class=\"gstart\" x1=\"{:.1f}\" x2=\"{:.1f}\" y1=\"14\" y2=\"{:.1f}\"/>", x0, x0, bottom);
            std::string label = g.name;
            double room = x1 - x0 - 8;
            // A round's groups repeat every round: named only where the whole name fits.
            if (g.round > 0 && room < 6.5 * static_cast<double>(label.size())) room = 0;
            if (room > 6.5 * 3) {
                auto fits = static_cast<std::size_t>(room / 6.5);
                if (label.size() > fits) label = truncated(label, fits > 1 ? fits - 1 : 1);
                out_ += fmt::format("<text class=\"gname\" x=\"{:.1f}\" y=\"12\"><title>{}</title>{}</text>", x0 + 4,
                                    escape(group_title(g)), escape(label));
            }
            out_ += "\n";
        }
    }

    std::string group_title(const Group& g) const {
        std::string t = "group " + g.name;
        if (g.start_ms) t += fmt::format("\n{} \u2192 {}", at(*g.start_ms), g.end_ms ? at(*g.end_ms) : std::string("running"));
        if (g.start_ms && g.end_ms) t += fmt::format(" ({})", duration(*g.end_ms - *g.start_ms));
        return t;
    }

    void axis(double top, double bottom, double height) {
        static const double steps[] = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 15000, 30000,
                                       60000, 120000, 300000, 600000, 900000, 1800000, 3600000, 7200000, 10800000,
                                       21600000, 43200000, 86400000};
        double step = steps[std::size(steps) - 1];
        for (double s : steps)
            if (span_ms_ / s <= 10) {
                step = s;
                break;
            }
        while (span_ms_ / step > 10) step *= 2;
        for (double t = 0; t <= span_ms_ + step * 1e-9; t += step) {
            double x = x_of(t);
            std::string label = tick_label(t, step);
            out_ += fmt::format("<line class=\"grid\" x1=\"{:.1f}\" x2=\"{:.1f}\" y1=\"{:.1f}\" y2=\"{:.1f}\"/>", x, x, top - 6, bottom);
            const char* anchor = t == 0 ? "start" : x > width - right_pad - 20 ? "end" : "middle";
            out_ += fmt::format("<text class=\"ax\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"{}\">{}</text>", x, top - 10, anchor, label);
            out_ += fmt::format("<text class=\"ax\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"{}\">{}</text>\n", x, height - 8, anchor, label);
        }
        out_ += fmt::format("<line class=\"lane\" x1=\"0\" x2=\"{}\" y1=\"{:.1f}\" y2=\"{:.1f}\"/>\n", width, top, top);
    }

    std::string tick_label(double t, double step) const {
        if (t == 0) return "0";
        if (step < 1000) {
            int decimals = step >= 100 ? 1 : step >= 10 ? 2 : 3;
            return fmt::format("{:.{}f}s", t / 1000, decimals);
        }
        auto s = static_cast<std::int64_t>(t / 1000 + 0.5);
        if (span_ms_ < 120000) return fmt::format("{}s", s);
        if (span_ms_ < 2 * 3600000.0) return fmt::format("{}:{:02}", s / 60, s % 60);
        return fmt::format("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60);
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
        out_ += fmt::format("<rect class=\"b {}\" x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\"><title>{}</title></rect>\n",
                            cls, x0, y, w, h, escape(stage_title(st)));
    }

    std::string stage_title(const Stage& st) const {
        const Group& g = run_.groups[st.group];
        const TaskInfo& t = g.tasks[st.task];
        std::string s = fmt::format("{}/{} \u00b7 ", g.name, t.id);
        if (st.kind == StageKind::wait) s += "waiting for a device";
        else s += fmt::format("{} on {}", kind_name(st.kind), st.lane);
        if (st.attempt > 1) s += fmt::format(" (attempt {})", st.attempt);
        s += fmt::format("\n{} \u2192 {}  ({})", at(st.start_ms), st.outcome == Outcome::running ? std::string("now") : at(st.end_ms),
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
        if (t.peak_gpu_memory) peaks += (peaks.empty() ? "" : " \u00b7 ") + std::string("peak GPU ") + bytes(*t.peak_gpu_memory);
        if (!peaks.empty()) s += "\n" + peaks + " (task)";
        return s;
    }

    bool round_strip() const {
        return std::any_of(run_.rounds.begin(), run_.rounds.end(), [](const Round& r) { return r.start_ms.has_value(); });
    }

    // A thin band per round under the group names, alternating in shade, with
    // the round's number where it fits and its times and values on hover.
    void rounds_strip() {
        if (!round_strip()) return;
        const double y = axis_h - 22, h = 13;
        out_ += fmt::format("<text class=\"lsub\" x=\"10\" y=\"{:.1f}\">rounds</text>\n", y + 10);
        bool blocks = run_.rounds.back().block > 1;
        std::size_t n = 0;
        for (const Round& r : run_.rounds) {
            if (!r.start_ms) continue;
            double x0 = x_of(*r.start_ms), x1 = x_of(r.end_ms.value_or(run_.end_ms));
            double w = std::max(x1 - x0, 1.0);
            out_ += fmt::format("<rect class=\"rb{}\" x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{}\"><title>{}</title></rect>",
                                n++ % 2 ? " alt" : "", x0, y, w, h, escape(round_title(r, blocks)));
            std::string label = std::to_string(r.round);
            if (w > 6.0 * static_cast<double>(label.size()) + 4)
                out_ += fmt::format("<text class=\"rn\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>", x0 + w / 2, y + 10,
                                    escape(label));
            out_ += "\n";
        }
    }

    std::string round_title(const Round& r, bool blocks) const {
        std::string t = blocks ? fmt::format("[[round]] {}, round {}", r.block, r.round) : fmt::format("round {}", r.round);
        if (r.start_ms) t += fmt::format("\n{} \u2192 {}", at(*r.start_ms), r.end_ms ? at(*r.end_ms) : std::string("running"));
        if (r.wall_s) t += fmt::format(" ({})", duration(*r.wall_s * 1000));
        for (std::size_t i = 0; i < r.values.size() && i < 8; ++i)
            t += fmt::format("\n{} = {}", truncated(r.values[i].first, 40), number(json(r.values[i].second)));
        if (!r.stopped_by.empty()) t += "\nstopped here: " + r.stopped_by;
        return t;
    }

    // ---- rounds -----------------------------------------------------------

    // The series worth a chart: every scalar of run.json's rounds but those
    // that only repeat the round number or were booleans in the results
    // (a stop flag), in the order they first appear.
    std::vector<std::string> chart_keys(const std::vector<const Round*>& rounds) const {
        std::vector<std::string> keys;
        std::set<std::string> flags;
        for (const Round* r : rounds) {
            for (std::size_t gi : r->groups)
                for (const auto& t : run_.groups[gi].tasks)
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

    // Of those, the ones that change from round to round (all of them when
    // there is one round).
    std::vector<std::string> curves(const std::vector<const Round*>& rounds) const {
        std::vector<std::string> out;
        for (const auto& k : chart_keys(rounds)) {
            std::set<double> seen;
            for (const Round* r : rounds)
                if (const double* v = value_of(*r, k)) seen.insert(*v);
            if (seen.size() != 1 || rounds.size() == 1) out.push_back(k);
        }
        return out;
    }

    static const double* value_of(const Round& r, const std::string& key) {
        for (const auto& [k, v] : r.values)
            if (k == key) return &v;
        return nullptr;
    }

    // The rounds of each [[round]] table, in order.
    std::vector<std::vector<const Round*>> round_blocks() const {
        std::vector<std::vector<const Round*>> blocks;
        for (const Round& r : run_.rounds) {
            if (blocks.empty() || blocks.back().back()->block != r.block) blocks.emplace_back();
            blocks.back().push_back(&r);
        }
        return blocks;
    }

    void rounds() {
        if (run_.rounds.empty()) return;
        out_ += fmt::format("<section id=\"rounds\">\n<h2>Rounds <span class=\"muted small\">({}) \u00b7 what the last group of each round "
                            "returned (averaged over its tasks); hover a point for its value</span></h2>\n",
                            run_.rounds.size());
        auto blocks = round_blocks();
        for (const auto& list : blocks) {
            if (blocks.size() > 1) out_ += fmt::format("<h3>[[round]] {}</h3>\n", list.front()->block);
            for (const Round* r : list)
                if (!r->stopped_by.empty())
                    out_ += fmt::format("<p class=\"muted small\">Stopped after round {}: {} asked to stop (stop-when).</p>\n", r->round,
                                        escape(r->stopped_by));
            const std::vector<std::string>& curves = keys_[list.front()->block];
            constexpr std::size_t max_charts = 12;
            // A value that never changed is a fact, not a curve.
            std::string constant;
            for (const auto& k : chart_keys(list)) {
                if (std::find(curves.begin(), curves.end(), k) != curves.end()) continue;
                const double* v = nullptr;
                for (const Round* r : list) v = v ? v : value_of(*r, k);
                if (v) constant += fmt::format("{}<b>{}</b> {}", constant.empty() ? "" : " \u00b7 ", escape(truncated(k, 40)), escape(number(json(*v))));
            }
            if (curves.empty() && constant.empty()) out_ += "<p class=\"muted\">No round has returned a number yet.</p>\n";
            if (!curves.empty()) {
                out_ += "<div class=\"charts\">\n";
                for (std::size_t i = 0; i < curves.size() && i < max_charts; ++i) chart(list, curves[i]);
                out_ += "</div>\n";
                if (curves.size() > max_charts)
                    out_ += fmt::format("<p class=\"muted small\">{} more values are in the table below.</p>\n", curves.size() - max_charts);
            }
            if (!constant.empty()) out_ += "<p class=\"small constant\"><span class=\"muted\">The same in every round:</span> " + constant + "</p>\n";
            rounds_table(list);
        }
        out_ += "</section>\n";
    }

    // Round by round: wall time and every value, sortable.
    void rounds_table(const std::vector<const Round*>& list) {
        std::vector<std::string> keys;
        for (const Round* r : list)
            for (const auto& [k, v] : r->values)
                if (std::find(keys.begin(), keys.end(), k) == keys.end() && keys.size() < 40) keys.push_back(k);
        out_ += fmt::format("<details class=\"values\"{}><summary>values of every round</summary>\n", list.size() <= 12 ? " open" : "");
        out_ += "<div class=\"scroll\"><table class=\"sortable\"><thead><tr><th class=\"n\">Round</th><th class=\"n\">Wall</th>";
        for (const auto& k : keys) out_ += fmt::format("<th class=\"n\">{}</th>", escape(truncated(k, 40)));
        out_ += "</tr></thead><tbody>\n";
        for (const Round* r : list) {
            out_ += fmt::format("<tr><td class=\"n\" data-v=\"{}\">{}</td>", r->round, r->round);
            if (r->wall_s) out_ += fmt::format("<td class=\"n\" data-v=\"{}\">{}</td>", *r->wall_s, escape(duration(*r->wall_s * 1000)));
            else out_ += "<td class=\"n\"></td>";
            for (const auto& k : keys) {
                const double* v = value_of(*r, k);
                if (v) out_ += fmt::format("<td class=\"n\" data-v=\"{}\">{}</td>", *v, escape(number(json(*v))));
                else out_ += "<td class=\"n\"></td>";
            }
            out_ += "</tr>\n";
        }
        out_ += "</tbody></table></div>\n</details>\n";
    }

    // Ticks at 1, 2 or 5 times a power of ten that cover [lo, hi] in about
    // `want` steps; the decimals that show them.
    static std::pair<std::vector<double>, int> nice_ticks(double lo, double hi, int want) {
        double span = hi - lo;
        double raw = span / want;
        double mag = std::pow(10.0, std::floor(std::log10(raw)));
        double step = mag;
        for (double m : {1.0, 2.0, 2.5, 5.0, 10.0})
            if (m * mag >= raw) {
                step = m * mag;
                break;
            }
        std::vector<double> ticks;
        for (double t = std::floor(lo / step) * step; ticks.size() < 40; t += step) {
            ticks.push_back(std::fabs(t) < step * 1e-9 ? 0.0 : t);
            if (t >= hi - step * 1e-9) break;
        }
        int decimals = std::clamp(static_cast<int>(-std::floor(std::log10(step) + 1e-9)), 0, 8);
        if (step * std::pow(10.0, decimals) != std::round(step * std::pow(10.0, decimals))) ++decimals;  // 2.5, 0.25
        return {ticks, decimals};
    }

    // Four significant digits: what fits beside a point.
    static std::string short_number(double v) {
        if (std::fabs(v) >= 1e4 && std::fabs(v) < 1e9 && v == std::round(v)) return fmt::format("{:.0f}", v);
        return fmt::format("{:.4g}", v);
    }

    static std::string tick_text(double v, int decimals) {
        if (std::fabs(v) >= 1e6) return fmt::format("{:.3g}", v);
        std::string s = fmt::format("{:.{}f}", v, decimals);
        return s == "-0" ? "0" : s;
    }

    // One small line chart of a value over the rounds: axes with ticks, a
    // point per round with its value on hover, the last value labelled.
    void chart(const std::vector<const Round*>& list, const std::string& key) {
        std::vector<std::pair<int, double>> pts;
        for (const Round* r : list)
            if (const double* v = value_of(*r, key); v && std::isfinite(*v)) pts.emplace_back(r->round, *v);
        const std::string name = truncated(key, 40);
        out_ += "<figure class=\"chart\">";
        if (pts.empty()) {
            out_ += fmt::format("<figcaption><b>{}</b></figcaption><p class=\"muted small\">no value yet</p></figure>\n", escape(name));
            return;
        }
        auto [mn, mx] = std::minmax_element(pts.begin(), pts.end(), [](auto& a, auto& b) { return a.second < b.second; });
        double lo = mn->second, hi = mx->second;
        out_ += fmt::format("<figcaption><b>{}</b><span><span class=\"muted\">min {} \u00b7 max {} \u00b7 round {}:</span> {}</span></figcaption>\n",
                            escape(name), escape(short_number(lo)), escape(short_number(hi)), pts.back().first,
                            escape(number(json(pts.back().second))));
        if (lo == hi) {
            double pad = lo == 0 ? 1 : std::fabs(lo) * 0.1;
            lo -= pad;
            hi += pad;
        }
        auto [yticks, decimals] = nice_ticks(lo, hi, 4);
        double ylo = std::min(lo, yticks.front()), yhi = std::max(hi, yticks.back());
        int r0 = list.front()->round, r1 = list.back()->round;
        constexpr double W = 380, H = 200, left = 50, right = 64, top = 12, bottom = 30;
        const double pw = W - left - right, ph = H - top - bottom;
        auto X = [&](double r) { return r1 == r0 ? left + pw / 2 : left + (r - r0) / (r1 - r0) * pw; };
        auto Y = [&](double v) { return top + (yhi - v) / (yhi - ylo) * ph; };

        out_ += fmt::format("<svg class=\"chart-svg\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {} {}\" role=\"img\" "
                            "aria-label=\"{} by round\">\n", W, H, escape(name));
        for (double t : yticks) {
            double y = Y(t);
            out_ += fmt::format("<line class=\"grid\" x1=\"{}\" x2=\"{}\" y1=\"{:.1f}\" y2=\"{:.1f}\"/>"
                                "<text class=\"ax\" x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">{}</text>\n",
                                left, W - right, y, y, left - 6, y + 3.5, tick_text(t, decimals));
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
            out_ += fmt::format("<line class=\"tick\" x1=\"{:.1f}\" x2=\"{:.1f}\" y1=\"{}\" y2=\"{}\"/>"
                                "<text class=\"ax\" x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                                x, x, H - bottom, H - bottom + 4, x, H - bottom + 15, r);
        }
        out_ += fmt::format("\n<line class=\"axis\" x1=\"{}\" x2=\"{}\" y1=\"{}\" y2=\"{}\"/><line class=\"axis\" x1=\"{}\" x2=\"{}\" y1=\"{}\" y2=\"{}\"/>",
                            left, W - right, H - bottom, H - bottom, left, left, top, H - bottom);
        out_ += fmt::format("<text class=\"ax\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">round</text>\n", left + pw / 2, H - 2);

        std::string line, area = fmt::format("{:.1f},{:.1f}", X(pts.front().first), H - bottom);
        for (const auto& [r, v] : pts) {
            line += fmt::format("{}{:.1f},{:.1f}", line.empty() ? "" : " ", X(r), Y(v));
            area += fmt::format(" {:.1f},{:.1f}", X(r), Y(v));
        }
        area += fmt::format(" {:.1f},{:.1f}", X(pts.back().first), H - bottom);
        if (pts.size() > 1) out_ += fmt::format("<polygon class=\"ca\" points=\"{}\"/><polyline class=\"cl\" points=\"{}\"/>\n", area, line);
        const double radius = pts.size() <= 40 ? 3 : pts.size() <= 150 ? 2 : 1.2;
        for (const auto& [r, v] : pts)
            out_ += fmt::format("<circle class=\"cp\" cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"{}\"><title>round {}: {} = {}</title></circle>", X(r), Y(v),
                                radius, r, escape(name), escape(number(json(v))));
        const auto& [lr, lv] = pts.back();
        out_ += fmt::format("\n<text class=\"clast\" x=\"{:.1f}\" y=\"{:.1f}\">{}</text>\n</svg></figure>\n", X(lr) + 7, Y(lv) + 4,
                            escape(short_number(lv)));
    }

    // ---- failures -------------------------------------------------------

    void failures() {
        out_ += fmt::format("<section id=\"failures\">\n<h2>Failures <span class=\"muted small\">({})</span></h2>\n", failure_ids_.size());
        if (failure_ids_.empty()) {
            out_ += "<p class=\"muted\">No task failed.</p>\n</section>\n";
            return;
        }
        // The first ones in full with their stderr; the rest in a table.
        constexpr std::size_t full = 50, open = 10;
        std::vector<std::pair<std::size_t, std::size_t>> list(failure_ids_.size());
        for (const auto& [key, id] : failure_ids_) list[id - 1] = key;
        for (std::size_t n = 0; n < list.size() && n < full; ++n) {
            auto [g, t] = list[n];
            const Group& group = run_.groups[g];
            const TaskInfo& task = group.tasks[t];
            out_ += fmt::format("<div class=\"failure\" id=\"fail-{}\">\n<div class=\"head\"><span class=\"badge fail\">{}</span><b>{}</b>",
                                n + 1, escape(task.status), escape(task_name(g, t)));
            if (!task.stage.empty()) out_ += fmt::format("<span class=\"muted\">in {}</span>", escape(task.stage));
            if (!task.device.empty()) out_ += fmt::format("<span class=\"muted\">on {}</span>", escape(task.device));
            out_ += "</div>\n";
            out_ += fmt::format("<div class=\"msg\">{}</div>\n", escape(task.message.empty() ? "(no message)" : truncated(task.message, 4000)));
            std::string where = (group.dir / task.id / "stderr.log").string();
            std::optional<std::string> tail;
            if (safe_name(task.id) && !group.dir.empty()) tail = tail_lines(run_.workdir / group.dir / task.id / "stderr.log", 20);
            if (!tail) {
                out_ += fmt::format("<p class=\"muted small\">{}: not found</p>\n", escape(where));
            } else if (tail->empty()) {
                out_ += fmt::format("<p class=\"muted small\">{} is empty</p>\n", escape(where));
            } else {
                out_ += fmt::format("<details{}><summary>{} \u2014 last lines</summary><pre class=\"log\">{}</pre></details>\n",
                                    n < open ? " open" : "", escape(where), escape(*tail));
            }
            out_ += "</div>\n";
        }
        if (list.size() > full) {
            out_ += fmt::format("<p class=\"muted small\">{} more failures (their stderr.log is in each task's folder):</p>\n", list.size() - full);
            out_ += "<div class=\"scroll\"><table class=\"sortable\"><thead><tr><th>Task</th><th>Stage</th><th>Message</th></tr></thead><tbody>\n";
            for (std::size_t n = full; n < list.size(); ++n) {
                auto [g, t] = list[n];
                const TaskInfo& task = run_.groups[g].tasks[t];
                out_ += fmt::format("<tr id=\"fail-{}\"><td>{}</td><td>{}</td><td class=\"s\" title=\"{}\">{}</td></tr>\n", n + 1,
                                    escape(task_name(g, t)), escape(task.stage), escape(truncated(task.message, 1000)),
                                    escape(truncated(task.message, 200)));
            }
            out_ += "</tbody></table></div>\n";
        }
        out_ += "</section>\n";
    }

    // ---- results --------------------------------------------------------

    void results() {
        out_ += "<section id=\"results\">\n<h2>Results</h2>\n";
        if (run_.groups.empty()) out_ += "<p class=\"muted\">No group has started yet.</p>\n";
        // A round's groups together, where its first group comes; folded but
        // for the last round of each [[round]] and rounds with a failure, so
        // that 20 rounds of many tasks stay a page to scroll.
        std::set<const Round*> shown;
        for (std::size_t g = 0; g < run_.groups.size(); ++g) {
            const Round* r = round_of(run_.groups[g]);
            if (!r) {
                group_table(g);
            } else if (shown.insert(r).second) {
                round_results(*r);
            }
        }
        out_ += "</section>\n";
    }

    const Round* round_of(const Group& g) const {
        if (g.round == 0) return nullptr;
        for (const Round& r : run_.rounds)
            if (r.round == g.round && r.block == g.block) return &r;
        return nullptr;
    }

    void round_results(const Round& r) {
        bool last = &r == &run_.rounds.back() || (&r + 1)->block != r.block;
        std::size_t tasks = 0, finished = 0, failed_n = 0;
        std::string names;
        for (std::size_t gi : r.groups) {
            const Group& g = run_.groups[gi];
            names += (names.empty() ? "" : ", ") + g.name;
            for (const auto& t : g.tasks) {
                ++tasks;
                if (t.status == "FINISHED" || t.status == "EXITED") ++finished;
                if (failed(t)) ++failed_n;
            }
        }
        std::string meta = fmt::format("{} \u00b7 {} task{} \u00b7 {} finished", names, tasks, tasks == 1 ? "" : "s", finished);
        if (r.wall_s) meta += " \u00b7 " + duration(*r.wall_s * 1000);
        const auto& keys = keys_[r.block];
        for (std::size_t i = 0; i < keys.size() && i < 3; ++i)
            if (const double* v = value_of(r, keys[i])) meta += fmt::format(" \u00b7 {} {}", truncated(keys[i], 30), number(json(*v)));
        bool blocks = run_.rounds.back().block > 1;
        out_ += fmt::format("<details class=\"round\" id=\"round-{}-{}\"{}><summary><b>{}Round {}</b>{} <span class=\"muted\">{}</span></summary>\n",
                            r.block, r.round, last || failed_n ? " open" : "", blocks ? fmt::format("[[round]] {} \u00b7 ", r.block) : "",
                            r.round, failed_n ? fmt::format(" <span class=\"badge fail\">{} failed</span>", failed_n) : "", escape(meta));
        for (std::size_t gi : r.groups) group_table(gi);
        out_ += "</details>\n";
    }

    void group_table(std::size_t gi) {
        const Group& g = run_.groups[gi];
        std::size_t finished = 0, failed_n = 0;
        for (const auto& t : g.tasks) {
            if (t.status == "FINISHED" || t.status == "EXITED") ++finished;
            if (failed(t)) ++failed_n;
        }
        out_ += fmt::format("<h3 id=\"group-{}\">{}</h3>\n<div class=\"group-meta\">", gi + 1, escape(g.name));
        std::string meta;
        if (g.index) meta += fmt::format("group {}", g.index);
        if (g.round) meta += fmt::format("{}round {}", meta.empty() ? "" : " \u00b7 ", g.round);
        if (!g.plugin.empty()) meta += fmt::format("{}plugin {}", meta.empty() ? "" : " \u00b7 ", g.plugin);
        meta += fmt::format("{}{} task{} \u00b7 {} finished", meta.empty() ? "" : " \u00b7 ", g.tasks.size(), g.tasks.size() == 1 ? "" : "s", finished);
        if (failed_n) meta += fmt::format(" \u00b7 {} failed", failed_n);
        if (g.start_ms && g.end_ms) meta += " \u00b7 " + duration(*g.end_ms - *g.start_ms);
        else if (g.start_ms) meta += " \u00b7 running";
        if (!g.has_report) meta += g.start_ms ? " \u00b7 report.json not written yet" : " \u00b7 not started yet";
        out_ += escape(meta) + "</div>\n";
        if (g.tasks.empty()) return;

        // Scalar values of the results become columns, in the order they first appear.
        constexpr std::size_t max_columns = 40;
        std::vector<std::string> keys;
        std::set<std::string> seen, text;
        std::size_t dropped = 0;
        bool gpu = false, retries = false;
        for (const auto& t : g.tasks) {
            gpu = gpu || t.peak_gpu_memory.has_value();
            if (auto r = t.entry.find("retries"); r != t.entry.end() && r->is_object())
                for (const auto& [k, v] : r->items()) retries = retries || (v.is_number() && v.get<double>() != 0);
            auto res = t.entry.find("result");
            if (res == t.entry.end() || !res->is_object()) continue;
            for (const auto& [k, v] : res->items()) {
                if (!(v.is_number() || v.is_string() || v.is_boolean())) continue;
                if (!v.is_number()) text.insert(k);
                if (seen.count(k)) continue;
                seen.insert(k);
                if (keys.size() < max_columns) keys.push_back(k);
                else ++dropped;
            }
        }
        out_ += "<div class=\"scroll\"><table class=\"sortable\"><thead><tr>"
                "<th>Task</th><th>Status</th><th>Device</th><th class=\"n\">Load</th><th class=\"n\">Train</th><th class=\"n\">Peak RAM</th>";
        if (gpu) out_ += "<th class=\"n\">Peak GPU</th>";
        if (retries) out_ += "<th class=\"n\">Retries</th>";
        for (const auto& k : keys)
            out_ += fmt::format("<th{} title=\"result[{}]\">{}</th>", text.count(k) ? "" : " class=\"n\"", escape(k),
                                escape(truncated(k, 40)));
        out_ += "</tr></thead><tbody>\n";
        for (std::size_t ti = 0; ti < g.tasks.size(); ++ti) {
            const TaskInfo& t = g.tasks[ti];
            out_ += fmt::format("<tr><td>{}</td>", escape(t.id));
            std::string word = t.status == "EXITED" ? "FINISHED" : t.status;
            if (auto f = failure_ids_.find({gi, ti}); f != failure_ids_.end())
                out_ += fmt::format("<td data-v=\"{}\"><a href=\"#fail-{}\" title=\"{}\"><span class=\"badge fail\">{}</span></a></td>", escape(word),
                                    f->second, escape(truncated(t.stage + ": " + t.message, 300)), escape(word));
            else
                out_ += fmt::format("<td data-v=\"{}\"><span class=\"badge {}\">{}</span></td>", escape(word), status_class(t.status), escape(word));
            out_ += fmt::format("<td>{}</td>", escape(t.device));
            measure(t.load_ms, duration);
            measure(t.train_ms, duration);
            measure(t.peak_memory, bytes);
            if (gpu) measure(t.peak_gpu_memory, bytes);
            if (retries) {
                std::string r;
                double total = 0;
                if (auto it = t.entry.find("retries"); it != t.entry.end() && it->is_object())
                    for (const auto& [k, v] : it->items())
                        if (v.is_number() && v.get<double>() != 0) {
                            total += v.get<double>();
                            r += fmt::format("{}{} {}", r.empty() ? "" : ", ", k, number(v));
                        }
                out_ += fmt::format("<td class=\"n\" data-v=\"{}\">{}</td>", total, escape(r));
            }
            auto res = t.entry.find("result");
            for (const auto& k : keys) {
                const json* v = nullptr;
                if (res != t.entry.end() && res->is_object())
                    if (auto it = res->find(k); it != res->end()) v = &*it;
                if (!v || !(v->is_number() || v->is_string() || v->is_boolean())) {
                    out_ += "<td></td>";
                } else if (v->is_number()) {
                    out_ += fmt::format("<td class=\"n\" data-v=\"{}\" title=\"{}\">{}</td>", escape(v->dump()), escape(v->dump()), escape(number(*v)));
                } else if (v->is_boolean()) {
                    out_ += fmt::format("<td>{}</td>", v->get<bool>() ? "true" : "false");
                } else {
                    const auto& s = v->get_ref<const std::string&>();
                    out_ += fmt::format("<td class=\"s\" title=\"{}\">{}</td>", escape(truncated(s, 1000)), escape(truncated(s, 120)));
                }
            }
            out_ += "</tr>\n";
        }
        out_ += "</tbody></table></div>\n";
        if (dropped) out_ += fmt::format("<p class=\"muted small\">{} more result keys are not shown as columns.</p>\n", dropped);
    }

    void measure(const std::optional<double>& v, std::string (*format)(double)) {
        if (!v) {
            out_ += "<td class=\"n\"></td>";
            return;
        }
        out_ += fmt::format("<td class=\"n\" data-v=\"{}\">{}</td>", *v, escape(format(*v)));
    }

    // ---- footer ---------------------------------------------------------

    void footer() {
        if (!run_.problems.empty()) {
            out_ += "<section><h2>Notes</h2><ul class=\"notes small\">";
            for (const auto& p : run_.problems) out_ += "<li>" + escape(p) + "</li>";
            out_ += "</ul></section>\n";
        }
        std::string version = str(run_.info, "fedflow_version");
        out_ += fmt::format("<footer>Written {} by Fedflow{} from run.json, events.jsonl and each group's report.json "
                            "in {}. This page is self-contained.</footer>\n",
                            utc_now(), version.empty() ? "" : " " + escape(version), escape(run_.workdir.string()));
    }

    const Run& run_;
    std::string out_;
    double span_ms_ = 1;
    double top_h_ = axis_h;
    std::map<int, std::vector<std::string>> keys_;  // [[round]] table -> the values charted (those that change)
    std::map<std::pair<std::size_t, std::size_t>, std::size_t> failure_ids_;  // (group, task) -> 1-based
};

}  // namespace

std::string render_html(const Run& run) { return Page(run).render(); }

void write_html(const fs::path& workdir) {
    std::string page = render_html(read_run(workdir));
    fs::path target = workdir / "report.html";
    fs::path temp = workdir / fmt::format(".report.html.{}.tmp", ::getpid());
    std::FILE* f = std::fopen(temp.c_str(), "wbx");
    if (!f && errno == EEXIST) {  // left by a killed host with our pid
        std::error_code ec;
        fs::remove(temp, ec);
        f = std::fopen(temp.c_str(), "wbx");
    }
    if (!f) throw std::system_error(errno, std::generic_category(), "cannot create " + temp.string());
    bool ok = std::fwrite(page.data(), 1, page.size(), f) == page.size();
    ok = std::fflush(f) == 0 && ok;
    int err = errno;
    ok = std::fclose(f) == 0 && ok;
    if (!ok) {
        std::error_code ec;
        fs::remove(temp, ec);
        throw std::system_error(err ? err : EIO, std::generic_category(), "cannot write " + temp.string());
    }
    std::error_code ec;
    fs::rename(temp, target, ec);
    if (ec) {
        fs::remove(temp, ec);
        throw std::system_error(ec, "cannot rename " + temp.string() + " to " + target.string());
    }
}

}  // namespace fedflow::report
