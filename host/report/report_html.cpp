#include "report/report_html.hpp"

#include "report/charts.hpp"
#include "report/format.hpp"
#include "report/html.hpp"
#include "report/report_assets.hpp"
#include "report/tables.hpp"
#include "report/timeline.hpp"

#include "common/file_io.hpp"

#include <fmt/format.h>

#include <ctime>

namespace fedflow::report {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

namespace {

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

std::string run_status(const Run& run) {
    std::string s = string_at(run.info, "status");
    if (!s.empty()) return s;
    return run.ended ? "ended" : "running";
}

void fact(Html& out, const std::string& name, const std::string& value) {
    out.add("<div><dt>{}</dt><dd>{}</dd></div>\n", name, value);
}

// The run's facts, its devices and the links to the sections.
void header(Html& out, const Run& run, const std::string& title, const FailureIds& failures) {
    std::string s = run_status(run);
    const char* cls = s == "finished"                 ? "ok"
                      : s == "failed" || s == "error" ? "fail"
                      : s == "interrupted"            ? "oom"
                                                      : "run";
    out.add(
        "<header>\n<div class=\"title\"><h1>Fedflow run \u00b7 {}</h1><span class=\"badge big {}\">{}</span></div>\n",
        title, Raw{cls}, s);
    std::string plan = string_at(run.info, "plan");
    out.add("<div class=\"plan\">{}</div>\n", plan.empty() ? run.workdir.string() : plan);

    std::size_t tasks = 0, finished = 0, failed_n = 0, other = 0;
    for (const auto& g : run.groups) {
        for (const auto& t : g.tasks) {
            ++tasks;
            if (t.status == "FINISHED" || t.status == "EXITED") ++finished;
            else if (t.status == "EXCEPTION") ++failed_n;
            else ++other;
        }
        tasks += g.untold;
        finished += g.untold_finished;
        failed_n += g.untold_failed;
        other += g.untold - g.untold_finished - g.untold_failed;
    }
    std::string started = string_at(run.info, "started"), ended = string_at(run.info, "ended");
    std::string wall;
    auto a = parse_utc_ms(started), b = parse_utc_ms(ended);
    if (a && b) wall = duration(*b - *a);
    else if (run.end_ms > 0) wall = duration(run.end_ms) + (run.ended ? "" : " so far");
    std::string exit_code;
    if (auto it = run.info.find("exit_code"); it != run.info.end() && it->is_number_integer()) exit_code = it->dump();

    out.raw("<dl class=\"facts\">\n");
    fact(out, "Started (UTC)", started.empty() ? "\u2014" : readable_time(started));
    fact(out, "Ended (UTC)", ended.empty() ? (run.ended ? "\u2014" : "still running") : readable_time(ended));
    fact(out, "Wall time", wall.empty() ? "\u2014" : wall);
    fact(out, "Exit code", exit_code.empty() ? "\u2014" : exit_code);
    std::string counts = fmt::format("{} \u00b7 {} finished", tasks, finished);
    if (failed_n) counts += fmt::format(" \u00b7 {} failed", failed_n);
    if (other) counts += fmt::format(" \u00b7 {} not done", other);
    fact(out, "Tasks", counts);
    fact(out, "Groups", std::to_string(run.groups.size()));
    if (auto v = string_at(run.info, "fedflow_version"); !v.empty()) fact(out, "Fedflow", v);
    if (auto it = run.info.find("seed"); it != run.info.end() && it->is_number()) fact(out, "Seed", it->dump());
    out.raw("</dl>\n");

    if (auto d = run.info.find("devices"); d != run.info.end() && d->is_array() && !d->empty()) {
        out.raw("<div class=\"chips\">");
        for (const auto& dev : *d) {
            if (!dev.is_object()) continue;
            std::string parts;
            for (const auto& [k, v] : dev.items()) {
                if (k == "name" || v.is_object() || v.is_array() || v.is_null()) continue;
                std::string text = v.is_string()                                            ? v.get<std::string>()
                                   : v.is_number() && k.find("memory") != std::string::npos ? bytes(v.get<double>())
                                   : v.is_number()                                          ? number(v)
                                                                                            : v.dump();
                if (!parts.empty()) parts += " \u00b7 ";
                parts += k + " " + text;
            }
            out.add("<span class=\"chip\"><b>{}</b>{}</span>", string_at(dev, "name"), truncated(parts, 200));
        }
        out.raw("</div>\n");
    }
    out.raw("<nav><a href=\"#timeline\">Timeline</a>");
    if (!run.rounds.empty()) out.add("<a href=\"#rounds\">Rounds ({})</a>", run.rounds.size());
    out.add("<a href=\"#failures\">Failures ({})</a>", failures.size());
    out.raw("<a href=\"#results\">Results</a></nav>\n</header>\n");
}

void footer(Html& out, const Run& run) {
    if (!run.problems.empty()) {
        out.raw("<section><h2>Notes</h2><ul class=\"notes small\">");
        for (const auto& p : run.problems) out.element("li", p);
        out.raw("</ul></section>\n");
    }
    std::string version = string_at(run.info, "fedflow_version");
    out.add("<footer>Written {} by Fedflow{} from run.json, events.jsonl and each group's report.json "
            "in {}. This page is self-contained.</footer>\n",
            utc_now(), version.empty() ? "" : " " + version, run.workdir.string());
}

}  // namespace

std::string render_html(const Run& run) {
    const FailureIds failures = number_failures(run);
    const Curves curves = curves_by_block(run);
    std::string plan = string_at(run.info, "plan");
    std::string title = plan.empty() ? run.workdir.filename().string() : fs::path(plan).stem().string();
    Html out;
    out.raw("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.raw("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    out.add("<title>Fedflow \u00b7 {} \u00b7 {}</title>\n", title, run_status(run));
    out.add("<style>\n{}</style>\n</head>\n<body>\n<main>\n", Raw{assets::css});
    header(out, run, title, failures);
    timeline(out, run);
    rounds_section(out, run, curves);
    failures_section(out, run, failures);
    results_section(out, run, failures, curves);
    footer(out, run);
    out.add("</main>\n<script>\n{}</script>\n</body>\n</html>\n", Raw{assets::js});
    return out.take();
}

void write_html(const fs::path& workdir) { write_html(read_run(workdir)); }

void write_html(const Run& run) { file_io::write_file_atomic(run.workdir / "report.html", render_html(run)); }

}  // namespace fedflow::report
