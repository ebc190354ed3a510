#include "report/tables.hpp"

#include "report/format.hpp"

#include "common/names.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <optional>

namespace fedflow::report {

namespace {

using json = nlohmann::ordered_json;

bool failed(const TaskInfo& t) { return t.status == "EXCEPTION"; }
bool finished(const TaskInfo& t) { return t.status == "FINISHED" || t.status == "EXITED"; }

// The badge of a task's status.
const char* status_class(const std::string& s) {
    if (s == "FINISHED" || s == "EXITED") return "ok";
    if (s == "EXCEPTION") return "fail";
    if (s == "INTERRUPT") return "oom";
    if (s == "INIT") return "idle";
    return "run";
}

std::string task_name(const Run& run, std::size_t g, std::size_t t) {
    return run.groups[g].name + "/" + run.groups[g].tasks[t].id;
}

// " \u00b7 10 loads, 12ms each \u00b7 10 trains, 1.20s each": the stages of
// a summarized group's tasks, no longer drawn, as counts and mean times.
std::string stage_means(const Group::StageTotal& loads, const Group::StageTotal& trains) {
    std::string s;
    for (auto [total, word] : {std::pair{&loads, "load"}, std::pair{&trains, "train"}})
        if (total->count)
            s += fmt::format(" \u00b7 {} {}{}, {} each", total->count, word, total->count == 1 ? "" : "s",
                             duration(total->ms / static_cast<double>(total->count)));
    return s;
}

// Under a group's table: the tasks it counts but does not list.
void untold_line(Html& out, const Group& g) {
    if (!g.untold) return;
    if (g.summarized)
        out.add("<p class=\"muted small\">{} more tasks ({} finished, {} failed) are summarized, not listed: the page "
                "lists the tasks of the first {} and the latest {} rounds, and failed tasks; {} has every task.</p>\n",
                g.untold, g.untold_finished, g.untold_failed, detail_rounds, detail_rounds,
                (g.dir / "report.json").string());
    else
        out.add(
            "<p class=\"muted small\">{} more tasks ({} finished, {} failed) are not listed here; {} has every task.</p>\n",
            g.untold, g.untold_finished, g.untold_failed, (g.dir / "report.json").string());
}

void measure(Html& out, const std::optional<double>& v, std::string (*format)(double)) {
    if (!v) {
        out.raw("<td class=\"n\"></td>");
        return;
    }
    out.add("<td class=\"n\" data-v=\"{}\">{}</td>", *v, format(*v));
}

void group_table(Html& out, const Run& run, const FailureIds& failures, std::size_t gi) {
    const Group& g = run.groups[gi];
    std::size_t finished_n = g.untold_finished, failed_n = g.untold_failed;
    for (const auto& t : g.tasks) {
        if (finished(t)) ++finished_n;
        if (failed(t)) ++failed_n;
    }
    const std::size_t all = g.tasks.size() + g.untold;
    out.add("<h3 id=\"group-{}\">{}</h3>\n", gi + 1, g.name);
    std::string meta;
    if (g.index) meta += fmt::format("group {}", g.index);
    if (g.round) meta += fmt::format("{}round {}", meta.empty() ? "" : " \u00b7 ", g.round);
    if (!g.plugin.empty()) meta += fmt::format("{}plugin {}", meta.empty() ? "" : " \u00b7 ", g.plugin);
    meta += fmt::format("{}{} task{} \u00b7 {} finished", meta.empty() ? "" : " \u00b7 ", all, all == 1 ? "" : "s",
                        finished_n);
    if (failed_n) meta += fmt::format(" \u00b7 {} failed", failed_n);
    if (g.start_ms && g.end_ms) meta += " \u00b7 " + duration(*g.end_ms - *g.start_ms);
    else if (g.start_ms) meta += " \u00b7 running";
    if (!g.has_report) meta += g.start_ms ? " \u00b7 report.json not written yet" : " \u00b7 not started yet";
    if (g.summarized) meta += " \u00b7 summarized" + stage_means(g.loads, g.trains);
    out.add("<div class=\"group-meta\">{}</div>\n", meta);
    if (g.tasks.empty()) {
        untold_line(out, g);
        return;
    }

    const ResultColumns cols = result_columns(g);
    out.raw(
        "<div class=\"scroll\"><table class=\"sortable\"><thead><tr>"
        "<th>Task</th><th>Status</th><th>Device</th><th class=\"n\">Load</th><th class=\"n\">Train</th><th class=\"n\">Peak RAM</th>");
    if (cols.gpu) out.raw("<th class=\"n\">Peak GPU</th>");
    if (cols.retries) out.raw("<th class=\"n\">Retries</th>");
    for (const auto& k : cols.keys)
        out.add("<th{} title=\"result[{}]\">{}</th>", Raw{cols.text.count(k) ? "" : " class=\"n\""}, k,
                truncated(k, 40));
    out.raw("</tr></thead><tbody>\n");
    for (std::size_t ti = 0; ti < g.tasks.size(); ++ti) {
        const TaskInfo& t = g.tasks[ti];
        out.add("<tr><td>{}</td>", t.id);
        std::string word = t.status == "EXITED" ? "FINISHED" : t.status;
        if (auto f = failures.find({gi, ti}); f != failures.end())
            out.add("<td data-v=\"{}\"><a href=\"#fail-{}\" title=\"{}\"><span class=\"badge fail\">{}</span></a></td>",
                    word, f->second, truncated(t.stage + ": " + t.message, 300), word);
        else
            out.add("<td data-v=\"{}\"><span class=\"badge {}\">{}</span></td>", word, Raw{status_class(t.status)},
                    word);
        out.add("<td>{}</td>", t.device);
        measure(out, t.load_ms, duration);
        measure(out, t.train_ms, duration);
        measure(out, t.peak_memory, bytes);
        if (cols.gpu) measure(out, t.peak_gpu_memory, bytes);
        if (cols.retries) {
            std::string r;
            double total = 0;
            if (auto it = t.entry.find("retries"); it != t.entry.end() && it->is_object())
                for (const auto& [k, v] : it->items())
                    if (v.is_number() && v.get<double>() != 0) {
                        total += v.get<double>();
                        r += fmt::format("{}{} {}", r.empty() ? "" : ", ", k, number(v));
                    }
            out.add("<td class=\"n\" data-v=\"{}\">{}</td>", total, r);
        }
        auto res = t.entry.find("result");
        for (const auto& k : cols.keys) {
            const json* v = nullptr;
            if (res != t.entry.end() && res->is_object())
                if (auto it = res->find(k); it != res->end()) v = &*it;
            if (!v || !(v->is_number() || v->is_string() || v->is_boolean())) {
                out.raw("<td></td>");
            } else if (v->is_number()) {
                out.add("<td class=\"n\" data-v=\"{}\" title=\"{}\">{}</td>", v->dump(), v->dump(), number(*v));
            } else if (v->is_boolean()) {
                out.add("<td>{}</td>", Raw{v->get<bool>() ? "true" : "false"});
            } else {
                const auto& s = v->get_ref<const std::string&>();
                out.add("<td class=\"s\" title=\"{}\">{}</td>", truncated(s, 1000), truncated(s, 120));
            }
        }
        out.raw("</tr>\n");
    }
    out.raw("</tbody></table></div>\n");
    if (cols.dropped)
        out.add("<p class=\"muted small\">{} more result keys are not shown as columns.</p>\n", cols.dropped);
    untold_line(out, g);
}

const Round* round_of(const Run& run, const Group& g) {
    if (g.round == 0) return nullptr;
    for (const Round& r : run.rounds)
        if (r.round == g.round && r.block == g.block) return &r;
    return nullptr;
}

void round_results(Html& out, const Run& run, const FailureIds& failures, const Curves& curves, const Round& r) {
    bool last = &r == &run.rounds.back() || (&r + 1)->block != r.block;
    std::size_t tasks = 0, finished_n = 0, failed_n = 0;
    std::string names;
    for (std::size_t gi : r.groups) {
        const Group& g = run.groups[gi];
        names += (names.empty() ? "" : ", ") + g.name;
        for (const auto& t : g.tasks) {
            ++tasks;
            if (finished(t)) ++finished_n;
            if (failed(t)) ++failed_n;
        }
        tasks += g.untold;
        finished_n += g.untold_finished;
        failed_n += g.untold_failed;
    }
    std::string meta = fmt::format("{} \u00b7 {} task{} \u00b7 {} finished", names, tasks, tasks == 1 ? "" : "s",
                                   finished_n);
    if (r.wall_s) meta += " \u00b7 " + duration(*r.wall_s * 1000);
    if (auto c = curves.find(r.block); c != curves.end())
        for (std::size_t i = 0; i < c->second.size() && i < 3; ++i)
            if (const double* v = value_of(r, c->second[i]))
                meta += fmt::format(" \u00b7 {} {}", truncated(c->second[i], 30), number(json(*v)));
    bool blocks = run.rounds.back().block > 1;
    out.add(
        "<details class=\"round\" id=\"round-{}-{}\"{}><summary><b>{}Round {}</b>{} <span class=\"muted\">{}</span></summary>\n",
        r.block, r.round, Raw{last || failed_n ? " open" : ""},
        blocks ? fmt::format("[[round]] {} \u00b7 ", r.block) : "", r.round,
        Raw{failed_n ? fmt::format(" <span class=\"badge fail\">{} failed</span>", failed_n) : ""}, meta);
    for (std::size_t gi : r.groups) group_table(out, run, failures, gi);
    out.raw("</details>\n");
}

// Rounds the page summarizes whose groups tell no task (no failure): one
// fold, with a row per round of its counts and stage times.
bool only_counted(const Run& run, const Round& r) {
    if (r.groups.empty()) return false;
    for (std::size_t gi : r.groups)
        if (!run.groups[gi].summarized || !run.groups[gi].tasks.empty()) return false;
    return true;
}

void counted_rounds(Html& out, const Run& run, const std::vector<const Round*>& list) {
    if (list.empty()) return;
    std::size_t tasks = 0, finished_n = 0;
    for (const Round* r : list)
        for (std::size_t gi : r->groups) {
            tasks += run.groups[gi].untold;
            finished_n += run.groups[gi].untold_finished;
        }
    const Round& a = *list.front();
    out.add("<details class=\"round\" id=\"rounds-{}-{}-{}\"><summary><b>{}Rounds {}\u2013{}</b> <span class=\"muted\">"
            "summarized \u00b7 {} rounds \u00b7 {} tasks \u00b7 {} finished</span></summary>\n",
            a.block, a.round, list.back()->round,
            run.rounds.back().block > 1 ? fmt::format("[[round]] {} \u00b7 ", a.block) : "", a.round,
            list.back()->round, list.size(), tasks, finished_n);
    out.add("<p class=\"muted small\">The page lists the tasks of the first {} and the latest {} rounds one by one, "
            "and failed tasks; these rounds' tasks are counted, and their stages added up. Each group's report.json "
            "has every task.</p>\n",
            detail_rounds, detail_rounds);
    out.raw(
        "<div class=\"scroll\"><table class=\"sortable\"><thead><tr><th class=\"n\">Round</th><th>Groups</th>"
        "<th class=\"n\">Tasks</th><th class=\"n\">Finished</th><th class=\"n\">Failed</th><th class=\"n\">Wall</th>"
        "<th class=\"n\">Loads</th><th class=\"n\">Load each</th><th class=\"n\">Trains</th><th class=\"n\">Train each</th>"
        "</tr></thead><tbody>\n");
    for (const Round* r : list) {
        std::string names;
        std::size_t n = 0, fin = 0, fail = 0;
        Group::StageTotal loads, trains;
        for (std::size_t gi : r->groups) {
            const Group& g = run.groups[gi];
            names += (names.empty() ? "" : ", ") + g.name;
            n += g.untold;
            fin += g.untold_finished;
            fail += g.untold_failed;
            loads.count += g.loads.count;
            loads.ms += g.loads.ms;
            trains.count += g.trains.count;
            trains.ms += g.trains.ms;
        }
        out.add("<tr><td class=\"n\" data-v=\"{}\">{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>"
                "<td class=\"n\">{}</td>",
                r->round, r->round, names, n, fin, fail);
        std::optional<double> wall;
        if (r->wall_s) wall = *r->wall_s * 1000;
        measure(out, wall, duration);
        for (const Group::StageTotal* t : {&loads, &trains}) {
            out.add("<td class=\"n\">{}</td>", t->count);
            std::optional<double> each;
            if (t->count) each = t->ms / static_cast<double>(t->count);
            measure(out, each, duration);
        }
        out.raw("</tr>\n");
    }
    out.raw("</tbody></table></div>\n</details>\n");
}

}  // namespace

std::vector<const Round*> summarized_rounds(const Run& run) {
    std::vector<const Round*> list;
    for (const Round& r : run.rounds)
        if (std::any_of(r.groups.begin(), r.groups.end(), [&](std::size_t gi) { return run.groups[gi].summarized; }))
            list.push_back(&r);
    return list;
}

std::string round_ranges(const Run& run, const std::vector<const Round*>& rounds) {
    const bool blocks = !run.rounds.empty() && run.rounds.back().block > 1;
    std::string s;
    for (std::size_t i = 0; i < rounds.size();) {
        std::size_t j = i;
        while (j + 1 < rounds.size() && rounds[j + 1]->block == rounds[i]->block &&
               rounds[j + 1]->round == rounds[j]->round + 1)
            ++j;
        bool new_block = i == 0 || rounds[i - 1]->block != rounds[i]->block;
        if (!s.empty()) s += new_block && blocks ? "; " : ", ";
        if (new_block && blocks) s += fmt::format("[[round]] {}: ", rounds[i]->block);
        s += i == j ? std::to_string(rounds[i]->round) : fmt::format("{}\u2013{}", rounds[i]->round, rounds[j]->round);
        i = j + 1;
    }
    return s;
}

FailureIds number_failures(const Run& run) {
    FailureIds ids;
    for (std::size_t g = 0; g < run.groups.size(); ++g)
        for (std::size_t t = 0; t < run.groups[g].tasks.size(); ++t)
            if (failed(run.groups[g].tasks[t])) ids[{g, t}] = ids.size() + 1;
    return ids;
}

void failures_section(Html& out, const Run& run, const FailureIds& failures) {
    std::size_t untold = 0;
    bool summarized = false;
    for (const Group& g : run.groups) {
        untold += g.untold_failed;
        summarized = summarized || (g.summarized && g.untold_failed);
    }
    out.add("<section id=\"failures\">\n<h2>Failures <span class=\"muted small\">({})</span></h2>\n",
            failures.size() + untold);
    if (untold && summarized)
        out.add(
            "<p class=\"muted small\">{} of them are not listed: the page lists at most {} failed tasks of the rounds it "
            "summarizes, and the first {} tasks of a group; their group's report.json has them.</p>\n",
            untold, summarized_failure_limit, task_detail_limit);
    else if (untold)
        out.add("<p class=\"muted small\">{} of them are in groups too large to list every task: their report.json has "
                "them.</p>\n",
                untold);
    if (failures.empty() && untold == 0) {
        out.raw("<p class=\"muted\">No task failed.</p>\n</section>\n");
        return;
    }
    // The first ones in full with their stderr; the rest in a table.
    constexpr std::size_t full = 50, open = 10;
    std::vector<std::pair<std::size_t, std::size_t>> list(failures.size());
    for (const auto& [key, id] : failures) list[id - 1] = key;
    for (std::size_t n = 0; n < list.size() && n < full; ++n) {
        auto [g, t] = list[n];
        const Group& group = run.groups[g];
        const TaskInfo& task = group.tasks[t];
        out.add(
            "<div class=\"failure\" id=\"fail-{}\">\n<div class=\"head\"><span class=\"badge fail\">{}</span><b>{}</b>",
            n + 1, task.status, task_name(run, g, t));
        if (!task.stage.empty()) out.add("<span class=\"muted\">in {}</span>", task.stage);
        if (!task.device.empty()) out.add("<span class=\"muted\">on {}</span>", task.device);
        out.raw("</div>\n");
        out.add("<div class=\"msg\">{}</div>\n", task.message.empty() ? "(no message)" : truncated(task.message, 4000));
        std::string where = (group.dir / task.id / "stderr.log").string();
        std::optional<std::string> tail;
        if (names::valid(task.id) && !group.dir.empty())
            tail = tail_lines(run.workdir / group.dir / task.id / "stderr.log", 20);
        if (!tail) {
            out.add("<p class=\"muted small\">{}: not found</p>\n", where);
        } else if (tail->empty()) {
            out.add("<p class=\"muted small\">{} is empty</p>\n", where);
        } else {
            out.add("<details{}><summary>{} \u2014 last lines</summary><pre class=\"log\">{}</pre></details>\n",
                    Raw{n < open ? " open" : ""}, where, *tail);
        }
        out.raw("</div>\n");
    }
    if (list.size() > full) {
        out.add("<p class=\"muted small\">{} more failures (their stderr.log is in each task's folder):</p>\n",
                list.size() - full);
        out.raw(
            "<div class=\"scroll\"><table class=\"sortable\"><thead><tr><th>Task</th><th>Stage</th><th>Message</th></tr></thead><tbody>\n");
        for (std::size_t n = full; n < list.size(); ++n) {
            auto [g, t] = list[n];
            const TaskInfo& task = run.groups[g].tasks[t];
            out.add("<tr id=\"fail-{}\"><td>{}</td><td>{}</td><td class=\"s\" title=\"{}\">{}</td></tr>\n", n + 1,
                    task_name(run, g, t), task.stage, truncated(task.message, 1000), truncated(task.message, 200));
        }
        out.raw("</tbody></table></div>\n");
    }
    out.raw("</section>\n");
}

void results_section(Html& out, const Run& run, const FailureIds& failures, const Curves& curves) {
    out.raw("<section id=\"results\">\n<h2>Results</h2>\n");
    if (run.groups.empty()) out.raw("<p class=\"muted\">No group has started yet.</p>\n");
    // A round's groups together, where its first group comes; folded but
    // for the last round of each [[round]] and rounds with a failure, so
    // that 20 rounds of many tasks stay a page to scroll.
    // Summarized rounds that list no task are told together, a row each.
    std::set<const Round*> shown;
    std::vector<const Round*> counted;
    for (std::size_t g = 0; g < run.groups.size(); ++g) {
        const Round* r = round_of(run, run.groups[g]);
        if (r && !shown.insert(r).second) continue;
        if (r && only_counted(run, *r) &&
            (counted.empty() || (counted.back()->block == r->block && counted.back()->round + 1 == r->round))) {
            counted.push_back(r);
            continue;
        }
        counted_rounds(out, run, counted);
        counted.clear();
        if (r && only_counted(run, *r)) counted.push_back(r);
        else if (r) round_results(out, run, failures, curves, *r);
        else group_table(out, run, failures, g);
    }
    counted_rounds(out, run, counted);
    out.raw("</section>\n");
}

void rounds_table(Html& out, const std::vector<const Round*>& list) {
    std::vector<std::string> keys;
    for (const Round* r : list)
        for (const auto& [k, v] : r->values)
            if (std::find(keys.begin(), keys.end(), k) == keys.end() && keys.size() < 40) keys.push_back(k);
    out.add("<details class=\"values\"{}><summary>values of every round</summary>\n",
            Raw{list.size() <= 12 ? " open" : ""});
    out.raw(
        "<div class=\"scroll\"><table class=\"sortable\"><thead><tr><th class=\"n\">Round</th><th class=\"n\">Wall</th>");
    for (const auto& k : keys) out.add("<th class=\"n\">{}</th>", truncated(k, 40));
    out.raw("</tr></thead><tbody>\n");
    for (const Round* r : list) {
        out.add("<tr><td class=\"n\" data-v=\"{}\">{}</td>", r->round, r->round);
        if (r->wall_s) out.add("<td class=\"n\" data-v=\"{}\">{}</td>", *r->wall_s, duration(*r->wall_s * 1000));
        else out.raw("<td class=\"n\"></td>");
        for (const auto& k : keys) {
            const double* v = value_of(*r, k);
            if (v) out.add("<td class=\"n\" data-v=\"{}\">{}</td>", *v, number(json(*v)));
            else out.raw("<td class=\"n\"></td>");
        }
        out.raw("</tr>\n");
    }
    out.raw("</tbody></table></div>\n</details>\n");
}

ResultColumns result_columns(const Group& g) {
    constexpr std::size_t max_columns = 40;
    ResultColumns c;
    std::set<std::string> seen;
    for (const auto& t : g.tasks) {
        c.gpu = c.gpu || t.peak_gpu_memory.has_value();
        if (auto r = t.entry.find("retries"); r != t.entry.end() && r->is_object())
            for (const auto& [k, v] : r->items()) c.retries = c.retries || (v.is_number() && v.get<double>() != 0);
        auto res = t.entry.find("result");
        if (res == t.entry.end() || !res->is_object()) continue;
        for (const auto& [k, v] : res->items()) {
            if (!(v.is_number() || v.is_string() || v.is_boolean())) continue;
            if (!v.is_number()) c.text.insert(k);
            if (seen.count(k)) continue;
            seen.insert(k);
            if (c.keys.size() < max_columns) c.keys.push_back(k);
            else ++c.dropped;
        }
    }
    return c;
}

}  // namespace fedflow::report
