// report.html from synthetic workdirs: what a run, a running run, a killed
// run or a newer host may leave. The page must always be written, and never
// carry a task's text as markup.
#include "report/html.hpp"
#include "report/report_html.hpp"
#include "report/timeline.hpp"

#include "support/files.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <unistd.h>

using namespace fedflow::report;
namespace fs = std::filesystem;
using fedflow::test::put;
using fedflow::test::slurp;
using fedflow::test::TempDir;

namespace {

std::size_t count(const std::string& hay, const std::string& needle) {
    std::size_t n = 0;
    for (auto p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + 1)) ++n;
    return n;
}

// An event line as the journal writes it, at ms after 2026-11-28T01:00:00Z;
// elapsed_ms is ms unless given (a resumed run starts again at 0).
std::string ev(int ms, const std::string& rest, int elapsed = -1) {
    char time[40];
    std::snprintf(time, sizeof time, "2026-11-28T01:%02d:%02d.%03dZ", ms / 60000, ms / 1000 % 60, ms % 1000);
    return "{\"time\":\"" + std::string(time) + "\",\"elapsed_ms\":" + std::to_string(elapsed < 0 ? ms : elapsed) +
           "," + rest + "}\n";
}

std::string status(int ms, const std::string& group, const std::string& task, const std::string& st,
                   const std::string& extra = "") {
    return ev(ms, "\"event\":\"status\",\"group\":\"" + group + "\",\"task\":\"" + task + "\",\"status\":\"" + st +
                      "\"" + extra);
}

// The y of the bar whose tooltip starts with title.
double bar_y(const std::string& html, const std::string& title) {
    auto t = html.find("<title>" + title);
    REQUIRE(t != std::string::npos);
    auto rect = html.rfind("<rect", t);
    auto y = html.find(" y=\"", rect);
    REQUIRE(y < t);
    return std::stod(html.substr(y + 4));
}

const Stage* find_stage(const Run& run, const std::string& task, StageKind kind, int attempt = 1) {
    for (const auto& s : run.stages)
        if (run.groups[s.group].tasks[s.task].id == task && s.kind == kind && s.attempt == attempt) return &s;
    return nullptr;
}

// Two tasks training on cuda:0 at once, one failing with a hostile message.
void write_run(const fs::path& wd) {
    put(wd / "run.json",
        R"({"plan":"/p/demo.toml","started":"2026-11-28T01:00:00.000Z","ended":"2026-11-28T01:00:09.000Z",
        "status":"failed","exit_code":1,"devices":[{"name":"cpu","cpus":8},{"name":"cuda:0","memory_total":85520809984},{"name":"cuda:1"}],
        "groups":[{"index":1,"group":"clients","report":"clients/report.json"}]})");
    std::string e =
        ev(0, R"("event":"run_start","plan":"/p/demo.toml")") +
        ev(0, R"("event":"group_start","group":"clients","index":1,"tasks":2)") +
        status(10, "clients", "a", "AVAILABLE", R"(,"pid":1)") + status(11, "clients", "a", "LOADING") +
        status(20, "clients", "b", "AVAILABLE", R"(,"pid":2)") + status(21, "clients", "b", "LOADING") +
        status(500, "clients", "a", "WAITING", R"(,"load_ms":489)") +
        status(510, "clients", "a", "TRAINING", R"(,"device":"cuda:0")") +
        status(600, "clients", "b", "WAITING", R"(,"load_ms":579)") +
        ev(610,
           R"("event":"waiting","group":"clients","task":"b","reason":"gpu memory: needs 6 GiB, 2 GiB free","new_key":[1,2])") +
        status(700, "clients", "b", "TRAINING", R"(,"device":"cuda:0","reason":"fits","retry":0)") +
        status(3000, "clients", "b", "EXCEPTION",
               R"(,"stage":"train","message":"<script>alert(1)</script> & \"quotes\"")") +
        status(5000, "clients", "a", "FINISHED", R"(,"train_ms":4490)") + status(5010, "clients", "a", "EXITED") +
        ev(5020, R"("event":"group_end","group":"clients","finished":1,"failed":1)") +
        ev(9000, R"("event":"run_end","status":"failed","exit_code":1)");
    put(wd / "events.jsonl", e);
    put(wd / "clients" / "report.json", R"({"group":"clients","index":1,"plugin":"demo_client","tasks":{
        "a":{"status":"FINISHED","device":"cuda:0","load_ms":489,"train_ms":4490,"peak_memory":1073741824,"peak_gpu_memory":6442450944,
             "retries":{"load":0,"train":0},"result":{"accuracy":0.875,"n":12,"ok":true,"name":"<b>bold</b>","weights":{"$bytes":{"file":"w.bin","size":4}},"hist":[1,2]}},
        "b":{"status":"EXCEPTION","device":"cuda:0","stage":"train","message":"<script>alert(1)</script> & \"quotes\"","load_ms":579}}})");
    std::string log;
    for (int i = 1; i <= 40; ++i) log += "line " + std::to_string(i) + "\n";
    log += "</pre><script>alert(2)</script>\n";
    put(wd / "clients" / "b" / "stderr.log", log);
}

}  // namespace

TEST_CASE("escape: markup, quotes, control characters and invalid UTF-8") {
    CHECK(escape("<script>alert(1)</script>") == "&lt;script&gt;alert(1)&lt;/script&gt;");
    CHECK(escape("a & \"b\" 'c'") == "a &amp; &quot;b&quot; &#39;c&#39;");
    CHECK(escape("tab\tnew\nline") == "tab\tnew\nline");
    CHECK(escape(std::string("nul\0bell\a", 9)) == "nul\xEF\xBF\xBD"
                                                   "bell\xEF\xBF\xBD");
    CHECK(escape("caf\xC3\xA9 \xE2\x86\x92 \xF0\x9F\x98\x80") == "caf\xC3\xA9 \xE2\x86\x92 \xF0\x9F\x98\x80");
    CHECK(escape("\xFF\xC3") == "\xEF\xBF\xBD\xEF\xBF\xBD");                  // stray byte, truncated sequence
    CHECK(escape("\xC0\xAF") == "\xEF\xBF\xBD\xEF\xBF\xBD");                  // overlong '/'
    CHECK(escape("\xED\xA0\x80") == "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // a surrogate
}

TEST_CASE("pack_rows: overlapping spans go to different rows, others share the lowest") {
    CHECK(pack_rows({}, 0).empty());
    // a [0,10] b [5,15] overlap; c [12,20] fits after a; d [30,40] after all.
    auto rows = pack_rows({{0, 10}, {5, 15}, {12, 20}, {30, 40}}, 0);
    CHECK(rows == std::vector<std::size_t>{0, 1, 0, 0});
    // With a gap of 3, c (starts 2 after a ends) needs another row.
    rows = pack_rows({{0, 10}, {5, 15}, {12, 20}, {30, 40}}, 3);
    CHECK(rows == std::vector<std::size_t>{0, 1, 2, 0});
    // Input order does not matter; the row count is the largest overlap.
    rows = pack_rows({{20, 30}, {0, 100}, {10, 25}, {26, 40}}, 0);
    CHECK(rows[1] == 0);
    CHECK(rows[2] == 1);
    CHECK(rows[0] == 2);
    CHECK(rows[3] == 1);
    // 1000 spans that all overlap: 1000 rows; 1000 in a chain: one row.
    std::vector<std::pair<double, double>> all, chain;
    for (int i = 0; i < 1000; ++i) {
        all.emplace_back(i, 2000);
        chain.emplace_back(i * 10, i * 10 + 9);
    }
    auto a = pack_rows(all, 0);
    CHECK(*std::max_element(a.begin(), a.end()) == 999);
    auto c = pack_rows(chain, 0);
    CHECK(*std::max_element(c.begin(), c.end()) == 0);
}

TEST_CASE("a run: stages, lanes, overlapping trains in different rows, escaping") {
    TempDir dir("fedflow-report");
    write_run(dir.path);
    Run run = read_run(dir.path);
    REQUIRE(run.groups.size() == 1);
    CHECK(run.groups[0].plugin == "demo_client");
    CHECK(run.problems.empty());
    const Stage* load_a = find_stage(run, "a", StageKind::load);
    const Stage* train_a = find_stage(run, "a", StageKind::train);
    const Stage* wait_b = find_stage(run, "b", StageKind::wait);
    const Stage* train_b = find_stage(run, "b", StageKind::train);
    REQUIRE(load_a);
    REQUIRE(train_a);
    REQUIRE(wait_b);
    REQUIRE(train_b);
    CHECK(load_a->lane == "cpu");
    CHECK(load_a->start_ms == 11);
    CHECK(load_a->end_ms == 500);
    CHECK(train_a->lane == "cuda:0");
    CHECK(train_a->outcome == Outcome::ok);
    CHECK(train_b->outcome == Outcome::failed);
    CHECK(wait_b->reason == "gpu memory: needs 6 GiB, 2 GiB free");
    CHECK(train_b->reason == "fits");

    write_html(dir.path);
    std::string html = slurp(dir.path / "report.html");
    CHECK(html.rfind("<!DOCTYPE html>", 0) == 0);
    // The hostile message and stderr appear only as text: the one <script>
    // element is the page's own table sorter.
    CHECK(count(html, "<script") == 1);
    CHECK(html.find("alert(1)</script>") == std::string::npos);
    CHECK(html.find("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quotes&quot;") != std::string::npos);
    CHECK(html.find("&lt;/pre&gt;&lt;script&gt;alert(2)&lt;/script&gt;") != std::string::npos);
    CHECK(html.find("&lt;b&gt;bold&lt;/b&gt;") != std::string::npos);
    // The tail of stderr.log: the last 20 lines only.
    CHECK(html.find("line 22\n") != std::string::npos);
    CHECK(html.find("line 21\n") == std::string::npos);
    // A lane per GPU (cuda:1 stayed idle) and one for the CPU.
    CHECK(html.find(">cuda:0</text>") != std::string::npos);
    CHECK(html.find(">cuda:1</text>") != std::string::npos);
    CHECK(html.find(">cpu</text>") != std::string::npos);
    // Both trains ran on cuda:0 at once: different rows.
    double ya = bar_y(html, "clients/a \u00b7 train on cuda:0");
    double yb = bar_y(html, "clients/b \u00b7 train on cuda:0");
    CHECK(ya != yb);
    // Scalars of results are columns; bytes and lists are not.
    CHECK(html.find(">accuracy</th>") != std::string::npos);
    CHECK(html.find(">ok</th>") != std::string::npos);
    CHECK(html.find(">weights</th>") == std::string::npos);
    CHECK(html.find(">hist</th>") == std::string::npos);
    CHECK(html.find("6.00 GiB") != std::string::npos);  // peak GPU memory
    // Nothing but report.html is left behind.
    std::size_t files = 0;
    for (const auto& e : fs::directory_iterator(dir.path)) files += e.is_regular_file();
    CHECK(files == 3);  // run.json, events.jsonl, report.html
}

TEST_CASE("a running run: truncated last line, no report.json, no run_end") {
    TempDir dir("fedflow-report");
    std::string e = ev(0, R"("event":"run_start")") +
                    ev(1, R"("event":"group_start","group":"g","index":1,"tasks":2)") +
                    status(5, "g", "t1", "LOADING") + status(300, "g", "t1", "WAITING") +
                    status(320, "g", "t1", "TRAINING", R"(,"device":"cuda:3")") + status(8, "g", "t2", "LOADING") +
                    R"({"time":"2026-11-28T01:00:00.400Z","elapsed_ms":400,"event":"sta)";
    put(dir.path / "events.jsonl", e);
    Run run = read_run(dir.path);
    CHECK_FALSE(run.ended);
    CHECK(run.end_ms == 320);
    REQUIRE(run.groups.size() == 1);
    CHECK_FALSE(run.groups[0].has_report);
    REQUIRE(run.groups[0].tasks.size() == 2);
    CHECK(run.groups[0].tasks[0].status == "TRAINING");
    const Stage* train = find_stage(run, "t1", StageKind::train);
    REQUIRE(train);
    CHECK(train->outcome == Outcome::running);
    CHECK(train->lane == "cuda:3");
    // A half-written last line is normal while the host writes; run.json's absence is noted.
    CHECK(run.problems.size() == 1);

    write_html(dir.path);
    std::string html = slurp(dir.path / "report.html");
    CHECK(html.find("running") != std::string::npos);
    CHECK(html.find("report.json not written yet") != std::string::npos);
    CHECK(html.find(">cuda:3</text>") != std::string::npos);
    CHECK(html.find("tr run") != std::string::npos);
}

TEST_CASE("out of memory: an interrupted train and its retry") {
    TempDir dir("fedflow-report");
    put(dir.path / "events.jsonl",
        ev(0, R"("event":"run_start")") + status(1, "g", "t", "LOADING") + status(100, "g", "t", "WAITING") +
            status(110, "g", "t", "TRAINING", R"(,"device":"cuda:0")") +
            status(200, "g", "t", "INTERRUPT", R"(,"stage":"train","message":"out of memory: CUDA out of memory")") +
            status(201, "g", "t", "WAITING", R"(,"retry":1)") +
            status(300, "g", "t", "TRAINING", R"(,"device":"cuda:1")") + status(400, "g", "t", "FINISHED") +
            ev(401, R"("event":"run_end")"));
    Run run = read_run(dir.path);
    const Stage* first = find_stage(run, "t", StageKind::train, 1);
    const Stage* second = find_stage(run, "t", StageKind::train, 2);
    REQUIRE(first);
    REQUIRE(second);
    CHECK(first->outcome == Outcome::interrupted);
    CHECK(first->detail == "out of memory: CUDA out of memory");
    CHECK(second->outcome == Outcome::ok);
    CHECK(second->lane == "cuda:1");
    std::string html = render_html(run);
    CHECK(html.find("tr oom") != std::string::npos);
    CHECK(html.find("(attempt 2)") != std::string::npos);
}

TEST_CASE("a resumed run: the second run's times follow the first's") {
    TempDir dir("fedflow-report");
    std::string first = ev(0, R"("event":"run_start")") + status(10, "g", "a", "LOADING") +
                        status(50, "g", "a", "WAITING") + status(60, "g", "a", "TRAINING") +
                        ev(5000, R"("event":"run_end")");
    // Resumed a minute later: elapsed_ms starts again at 0.
    std::string second = ev(60000, R"("event":"run_start")", 0) +
                         ev(60010, R"("event":"status","group":"g","task":"b","status":"LOADING")", 10);
    put(dir.path / "events.jsonl", first + second);
    Run run = read_run(dir.path);
    const Stage* b = find_stage(run, "b", StageKind::load);
    REQUIRE(b);
    CHECK(b->start_ms == doctest::Approx(60010));
    const Stage* a = find_stage(run, "a", StageKind::train);
    REQUIRE(a);
    CHECK(a->outcome == Outcome::running);  // the first run ended without an end for it
}

TEST_CASE("nothing, garbage and hostile files: a page all the same") {
    TempDir dir("fedflow-report");
    SUBCASE("an empty workdir") {
        write_html(dir.path);
        std::string html = slurp(dir.path / "report.html");
        CHECK(html.find("No task has started yet") != std::string::npos);
        CHECK(html.find("events.jsonl is missing") != std::string::npos);
    }
    SUBCASE("files that are not what they claim") {
        put(dir.path / "run.json", "[1,2");
        put(dir.path / "events.jsonl",
            "garbage\n[]\n{\"event\":17}\n{\"time\":5,\"elapsed_ms\":\"x\",\"event\":\"status\",\"group\":[],\"task\":{}}\n" +
                status(5, "g", "t", "LOADING") + status(6, "g", "t", "TRAINING", R"(,"device":42)") +
                status(7, "../..", "../etc", "EXCEPTION", R"(,"message":7)"));
        put(dir.path / "g" / "report.json", R"({"tasks":{"t":{"status":5,"result":[1,2],"peak_memory":"big"},"u":7}})");
        CHECK_NOTHROW(write_html(dir.path));
        std::string html = slurp(dir.path / "report.html");
        CHECK(html.find("run.json is not a JSON object") != std::string::npos);
        CHECK(html.find("line(s) are not JSON objects") != std::string::npos);
        CHECK(html.find("../etc") != std::string::npos);  // shown as text, never opened
    }
}

TEST_CASE("tail_lines: the last lines of a file, also of a large one") {
    TempDir dir("fedflow-report");
    CHECK_FALSE(tail_lines(dir.path / "none.log", 20).has_value());
    put(dir.path / "empty.log", "");
    CHECK(tail_lines(dir.path / "empty.log", 20) == std::string());
    put(dir.path / "short.log", "one\ntwo\n\n");
    CHECK(tail_lines(dir.path / "short.log", 20) == std::string("one\ntwo"));
    std::string big;
    for (int i = 0; i < 20000; ++i) big += "line " + std::to_string(i) + " of a long log\n";
    put(dir.path / "big.log", big);
    auto tail = tail_lines(dir.path / "big.log", 3);
    REQUIRE(tail);
    CHECK(*tail == "line 19997 of a long log\nline 19998 of a long log\nline 19999 of a long log");
}

TEST_CASE("parse_utc_ms") {
    CHECK(parse_utc_ms("1970-01-01T00:00:00.000Z") == 0.0);
    CHECK(parse_utc_ms("1970-01-02T00:00:01.5Z") == 86401500.0);
    CHECK(parse_utc_ms("2026-11-28T01:00:00Z").has_value());
    CHECK_FALSE(parse_utc_ms("2026-11-28 01:00:00").has_value());
    CHECK_FALSE(parse_utc_ms("").has_value());
}

TEST_CASE("a thousand tasks: one bar per stage, and a page of reasonable size") {
    TempDir dir("fedflow-report");
    std::string e = ev(0, R"("event":"run_start")");
    for (int i = 0; i < 1000; ++i) {
        std::string id = std::to_string(i);
        int t0 = i * 20;
        e += status(t0, "many", id, "LOADING") + status(t0 + 100, "many", id, "WAITING") +
             status(t0 + 150, "many", id, "TRAINING", ",\"device\":\"cuda:" + std::to_string(i % 4) + "\"") +
             status(t0 + 1000, "many", id, "FINISHED");
    }
    put(dir.path / "events.jsonl", e);
    write_html(dir.path);
    std::string html = slurp(dir.path / "report.html");
    CHECK(count(html, "<rect class=\"b ") == 3000);
    CHECK(html.size() < 3 * 1024 * 1024);
}

namespace {

// A model fed as the runner feeds it: each group of run.json when it
// starts, every journal line, then each group's report.json entry by entry
// (the entry built only for a task the page tells one by one; built counts
// them).
RunModel feed_live(const fs::path& wd, std::size_t& built) {
    RunModel live(wd);
    nlohmann::ordered_json info = nlohmann::ordered_json::parse(slurp(wd / "run.json"));
    for (const auto& g : info["groups"])
        live.add_group(g["group"].get<std::string>(), 0, 0, g.value("index", 0), g["report"].get<std::string>());
    std::ifstream lines(wd / "events.jsonl");
    for (std::string l; std::getline(lines, l);) live.add_event(nlohmann::ordered_json::parse(l));
    for (const auto& g : info["groups"]) {
        nlohmann::ordered_json full = nlohmann::ordered_json::parse(slurp(wd / g["report"].get<std::string>()));
        nlohmann::ordered_json head = full;
        head["tasks"] = nlohmann::ordered_json::object();
        const std::size_t handle = live.set_report(g["group"].get<std::string>(), 0, head);
        for (const auto& [id, entry] : full["tasks"].items())
            live.report_task(handle, id, entry["status"].get<std::string>(), [&, &entry = entry] {
                ++built;
                return entry;
            });
    }
    return live;
}

std::vector<std::string> ids_of(const Group& g) {
    std::vector<std::string> ids;
    for (const auto& t : g.tasks) ids.push_back(t.id);
    return ids;
}

}  // namespace

TEST_CASE("a group of 5,000 tasks: the first 2,000 told one by one, the others counted (issue 11)") {
    // 100,000 tasks made a page of hundreds of MB, built in memory: the host
    // peaked at 313 MB after a SIGTERM.
    TempDir dir;
    constexpr int n = 5000;
    put(dir.path / "run.json", R"({"plan":"/p/many.toml","status":"interrupted","exit_code":3,
        "groups":[{"index":1,"group":"many","report":"many/report.json"}]})");
    std::string e = ev(0, R"("event":"run_start")") +
                    ev(0, R"("event":"group_start","group":"many","index":1,"tasks":5000)");
    // 4000, 3000, ..., 0 ran and finished, in that order.
    for (int i = 4000; i >= 0; i -= 1000) {
        std::string id = std::to_string(i);
        int ms = (4000 - i) / 50;
        e += status(ms, "many", id, "LOADING") + status(ms + 5, "many", id, "TRAINING", R"(,"device":"cpu")") +
             status(ms + 9, "many", id, "FINISHED");
    }
    std::string report = R"({"group":"many","index":1,"plugin":"noop","tasks":{)";
    for (int i = 0; i < n; ++i) {
        std::string id = std::to_string(i);
        bool ran = i % 1000 == 0;
        report +=
            (i ? "," : "") + ("\"" + id + "\":") +
            (ran ? R"({"status":"FINISHED","retries":{"load":0,"train":0},"result":{"v":1}})"
                 : R"({"status":"EXCEPTION","stage":"start","message":"not started: the host received SIGTERM"})");
    }
    // The tasks that never started: one line for them all, as the runner writes it.
    e += ev(
        6000,
        R"("event":"not_started","group":"many","round":0,"count":4995,"stage":"start",)"
        R"("message":"not started: the host received SIGTERM","ranges":[[1,999],[1001,1999],[2001,2999],[3001,3999],[4001,4999]])");
    put(dir.path / "events.jsonl", e + ev(6100, R"("event":"group_end","group":"many","finished":5,"failed":4995)"));
    put(dir.path / "many" / "report.json", report + "}}");

    Run run = read_run(dir.path);
    REQUIRE(run.groups.size() == 1);
    const Group& g = run.groups[0];
    // The five that started, in the order they started, then those that
    // never started in report.json's order: 1 to 1996 but 1000.
    REQUIRE(g.tasks.size() == task_detail_limit);
    std::vector<std::string> told = ids_of(g);
    CHECK(std::vector<std::string>(told.begin(), told.begin() + 7) ==
          std::vector<std::string>{"4000", "3000", "2000", "1000", "0", "1", "2"});
    CHECK(told.back() == "1996");
    CHECK(g.untold == n - task_detail_limit);
    CHECK(g.untold_finished == 0);
    CHECK(g.untold_failed == n - task_detail_limit);
    CHECK(run.stages.size() == 10);  // a load and a train of each task that ran

    write_html(dir.path);
    std::string html = slurp(dir.path / "report.html");
    CHECK(html.find("5000 tasks \u00b7 5 finished \u00b7 4995 failed") != std::string::npos);
    CHECK(html.find("3000 more tasks (0 finished, 3000 failed) are not listed here; many/report.json has every task") !=
          std::string::npos);
    CHECK(html.find("Failures <span class=\"muted small\">(4995)</span>") != std::string::npos);
    CHECK(count(html, "<tr><td>") <= task_detail_limit + 100);

    // Fed as the runner feeds it, the model asks for the entries of the
    // tasks it tells one by one only, and tells and counts the same.
    std::size_t built = 0;
    const Run lr = feed_live(dir.path, built).run();
    CHECK(built == task_detail_limit);
    const Group& lg = lr.groups.at(0);
    CHECK(ids_of(lg) == told);
    CHECK(lg.untold == g.untold);
    CHECK(lg.untold_finished == g.untold_finished);
    CHECK(lg.untold_failed == g.untold_failed);
    CHECK(lr.stages.size() == run.stages.size());
}

TEST_CASE("a group over the limit whose tasks start out of plan order: the first to start are told, live and re-read") {
    // The live page told the first tasks to start and `fedflow-host report`
    // the first of report.json: two pages of one run listed other tasks.
    TempDir dir;
    const int n = static_cast<int>(task_detail_limit) + 1000;
    put(dir.path / "run.json", R"({"plan":"/p/many.toml","status":"finished","exit_code":0,
        "groups":[{"index":1,"group":"many","report":"many/report.json"}]})");
    std::string e = ev(0, R"("event":"run_start")") + ev(0, R"("event":"group_start","group":"many","index":1)") +
                    // t0 waits for memory to load and never starts: waiting is not starting.
                    ev(1, R"("event":"waiting","group":"many","round":0,"task":"t0","stage":"load","resource":"ram",)"
                          R"("reason":"needs 1 GiB")");
    // Tasks start from the last of the plan to t1, two in each millisecond
    // (a tie in time: the journal's order decides); each ends later.
    for (int i = n - 1; i >= 1; --i)
        e += status(10 + (n - 1 - i) / 2, "many", "t" + std::to_string(i), "AVAILABLE", R"(,"pid":1)");
    for (int i = n - 1; i >= 1; --i) {
        std::string id = "t" + std::to_string(i);
        e += status(3000, "many", id, "LOADING") + status(3001, "many", id, "WAITING") +
             status(3002, "many", id, "TRAINING", R"(,"device":"cpu")") + status(3003, "many", id, "FINISHED");
    }
    e +=
        ev(4000,
           R"("event":"not_started","group":"many","round":0,"count":1,"stage":"start","message":"stopped","ranges":[[0,0]])") +
        ev(4001, R"("event":"group_end","group":"many","finished":2999,"failed":1)");
    put(dir.path / "events.jsonl", e);
    std::string report =
        R"({"group":"many","index":1,"plugin":"noop","tasks":{"t0":{"status":"EXCEPTION","stage":"start","message":"stopped"})";
    for (int i = 1; i < n; ++i)
        report += ",\"t" + std::to_string(i) + R"(":{"status":"FINISHED","retries":{"load":0,"train":0}})";
    put(dir.path / "many" / "report.json", report + "}}");

    std::vector<std::string> first_to_start;
    for (int i = n - 1; first_to_start.size() < task_detail_limit; --i)
        first_to_start.push_back("t" + std::to_string(i));
    const Run run = read_run(dir.path);
    std::size_t built = 0;
    const Run live = feed_live(dir.path, built).run();
    for (const Run* r : {&run, &live}) {
        REQUIRE(r->groups.size() == 1);
        const Group& g = r->groups[0];
        CHECK(ids_of(g) == first_to_start);
        CHECK(g.untold == 1000);
        CHECK(g.untold_failed == 1);
        CHECK(g.untold_finished == 999);
        CHECK(r->stages.size() == 3 * task_detail_limit);
    }
    CHECK(built == task_detail_limit);
    // The same page, then.
    write_html(dir.path);
    CHECK(slurp(dir.path / "report.html").find("1000 more tasks (999 finished, 1 failed)") != std::string::npos);
}

namespace {

// Rounds as the runner writes them: a group before the loop, then `rounds`
// rounds of clients and a server in round-NNN/; the server returns accuracy,
// loss, the round and a stop flag. "result" events carry no round.
// two_tables: the server is in a second [[round]] table (run.json says so).
// failing_round: in that round client 1 fails in train.
void write_rounds(const fs::path& wd, int rounds, bool two_tables = false, int failing_round = 0) {
    std::string groups = R"({"index":1,"group":"setup","report":"setup/report.json"})";
    std::string list,
        e = ev(0, R"("event":"run_start")") + ev(1, R"("event":"group_start","group":"setup","round":0,"index":1)") +
            status(2, "setup", "0", "LOADING", R"(,"round":0)") + status(5, "setup", "0", "TRAINING", R"(,"round":0)") +
            status(9, "setup", "0", "FINISHED", R"(,"round":0)") +
            ev(10, R"("event":"group_end","group":"setup","round":0)");
    put(wd / "setup" / "report.json",
        R"({"group":"setup","index":1,"plugin":"echo","tasks":{"0":{"status":"FINISHED","result":{"n":3}}}})");
    for (int r = 1; r <= rounds; ++r) {
        std::string rd = "round-00" + std::to_string(r), R = std::to_string(r), t = std::to_string(r * 1000);
        double acc = 0.5 + 0.1 * r, loss = 1.0 / r;
        int ms = r * 1000;
        groups += ",{\"index\":2,\"group\":\"clients\",\"round\":" + R + ",\"report\":\"" + rd +
                  "/clients/report.json\"}";
        groups += ",{\"index\":3,\"group\":\"server\",\"round\":" + R + (two_tables ? ",\"block\":2" : "") +
                  ",\"report\":\"" + rd + "/server/report.json\"}";
        list += std::string(list.empty() ? "" : ",") + "{\"round\":" + R +
                ",\"wall_s\":0.9,\"values\":{\"accuracy\":" + std::to_string(acc) +
                ",\"loss\":" + std::to_string(loss) + ",\"round\":" + R + ".0,\"stop\":0.0,\"clients\":2.0}}";
        std::string rr = ",\"round\":" + R;
        e += ev(ms, "\"event\":\"round_start\",\"round\":" + R) +
             ev(ms + 1, "\"event\":\"group_start\",\"group\":\"clients\",\"index\":2" + rr);
        const bool fails = r == failing_round;
        for (const char* c : {"0", "1"}) {
            e += status(ms + 2, "clients", c, "LOADING", rr) + status(ms + 100, "clients", c, "TRAINING", rr);
            if (fails && c[0] == '1') {
                e += status(ms + 400, "clients", c, "EXCEPTION", rr + R"(,"stage":"train","message":"boom")");
                continue;
            }
            e += status(ms + 400, "clients", c, "FINISHED", rr) +
                 ev(ms + 401, R"("event":"result","group":"clients","task":")" + std::string(c) + "\",\"bytes\":9");
        }
        e += ev(ms + 500, "\"event\":\"group_end\",\"group\":\"clients\"" + rr) +
             ev(ms + 501, "\"event\":\"group_start\",\"group\":\"server\",\"index\":3" + rr) +
             status(ms + 502, "server", "0", "LOADING", rr) + status(ms + 600, "server", "0", "TRAINING", rr) +
             status(ms + 900, "server", "0", "FINISHED", rr) +
             ev(ms + 901, R"("event":"result","group":"server","task":"0","bytes":9)") +
             ev(ms + 902, "\"event\":\"group_end\",\"group\":\"server\"" + rr) +
             ev(ms + 903, "\"event\":\"round_end\",\"round\":" + R + ",\"stopped_by\":null");
        put(wd / rd / "clients" / "report.json",
            std::string(
                R"({"group":"clients","index":2,"plugin":"round_math","tasks":{"0":{"status":"FINISHED","result":{"value":1}},"1":)") +
                (fails ? R"({"status":"EXCEPTION","stage":"train","message":"boom"}}})"
                       : R"({"status":"FINISHED","result":{"value":2}}}})"));
        put(wd / rd / "server" / "report.json",
            R"({"group":"server","index":3,"plugin":"round_math","tasks":{"0":{"status":"FINISHED","result":{"accuracy":)" +
                std::to_string(acc) + R"(,"loss":)" + std::to_string(loss) + R"(,"round":)" + R +
                R"(,"stop":false,"clients":2}}}})");
    }
    e += ev(rounds * 1000 + 1000, R"("event":"run_end","status":"finished","exit_code":0)");
    put(wd / "run.json",
        "{\"plan\":\"/p/fl.toml\",\"status\":\"finished\",\"groups\":[" + groups + "],\"rounds\":[" + list + "]}");
    put(wd / "events.jsonl", e);
}

}  // namespace

TEST_CASE("rounds: a chart per value that changes, the results folded by round, a band per round") {
    TempDir dir("fedflow-report");
    write_rounds(dir.path, 5);
    Run run = read_run(dir.path);
    // One group per round instance; the round-less "result" events join the
    // latest instance instead of making groups of their own.
    CHECK(run.groups.size() == 11);
    REQUIRE(run.rounds.size() == 5);
    CHECK(run.rounds[2].round == 3);
    CHECK(run.rounds[2].block == 1);
    CHECK(run.rounds[2].groups.size() == 2);
    REQUIRE(run.rounds[2].start_ms);
    CHECK(*run.rounds[2].start_ms == 3001);
    CHECK(*run.rounds[2].end_ms == 3902);
    CHECK(run.rounds[4].values.front() == std::make_pair(std::string("accuracy"), 1.0));

    write_html(dir.path);
    std::string html = slurp(dir.path / "report.html");
    CHECK(html.find("<section id=\"rounds\">") != std::string::npos);
    CHECK(html.find("href=\"#rounds\">Rounds (5)</a>") != std::string::npos);
    // accuracy and loss change: charts. The round number and the stop flag
    // (a boolean in the results) are not worth one; clients never changes.
    CHECK(count(html, "<svg class=\"chart-svg\"") == 2);
    CHECK(html.find("aria-label=\"accuracy by round\"") != std::string::npos);
    CHECK(html.find("aria-label=\"loss by round\"") != std::string::npos);
    CHECK(html.find("aria-label=\"round by round\"") == std::string::npos);
    CHECK(html.find("aria-label=\"stop by round\"") == std::string::npos);
    CHECK(html.find("The same in every round:</span> <b>clients</b> 2") != std::string::npos);
    // A point per round with its value on hover; the last value labelled.
    CHECK(count(html, "<circle class=\"cp\"") == 10);
    CHECK(html.find("<title>round 3: accuracy = 0.8</title>") != std::string::npos);
    CHECK(html.find("<text class=\"clast\"") != std::string::npos);
    CHECK(html.find(">0.2</text>\n</svg>") != std::string::npos);  // loss after round 5
    // The results of each round folded, but the last.
    CHECK(count(html, "<details class=\"round\"") == 5);
    CHECK(count(html, "<details class=\"round\" id=\"round-1-5\" open>") == 1);
    CHECK(count(html, "\" open><summary><b>Round") == 1);
    CHECK(html.find("<h3 id=\"group-1\">setup</h3>") < html.find("<details class=\"round\" id=\"round-1-1\""));
    // The timeline has a band per round.
    CHECK(count(html, "<rect class=\"rb") == 5);
    CHECK(html.find("<title>round 2\n+2.001s") != std::string::npos);
}

TEST_CASE("rounds: two [[round]] tables both have a round 1; a round of one is charted") {
    TempDir dir("fedflow-report");
    // run.json's groups say which table each belongs to.
    write_rounds(dir.path, 2, true);
    Run run = read_run(dir.path);
    REQUIRE(run.rounds.size() == 4);  // table 1: rounds 1, 2 (run.json); table 2: rounds 1, 2 (its groups)
    CHECK(run.rounds[0].block == 1);
    CHECK(run.rounds[2].block == 2);
    CHECK(run.rounds[2].groups.size() == 1);
    CHECK(run.groups[run.rounds[2].groups[0]].name == "server");
    write_html(dir.path);
    std::string html = slurp(dir.path / "report.html");
    CHECK(html.find("<h3>[[round]] 2</h3>") != std::string::npos);
    CHECK(html.find("id=\"round-2-1\"") != std::string::npos);

    // A single round: one point, charted all the same.
    TempDir one;
    write_rounds(one.path, 1);
    write_html(one.path);
    html = slurp(one.path / "report.html");
    CHECK(count(html, "<circle class=\"cp\"") == 3);  // accuracy, loss, clients
}

TEST_CASE("rounds: a round still running, with no values yet") {
    TempDir dir("fedflow-report");
    write_rounds(dir.path, 2);
    // Round 3 has started: its group is in the journal, not in run.json's rounds.
    std::ofstream(dir.path / "events.jsonl", std::ios::app)
        << ev(9000, R"("event":"round_start","round":3)")
        << ev(9001, R"("event":"group_start","group":"clients","round":3,"index":2)")
        << status(9002, "clients", "0", "LOADING", R"(,"round":3)");
    Run run = read_run(dir.path);
    REQUIRE(run.rounds.size() == 3);
    CHECK(run.rounds[2].values.empty());
    write_html(dir.path);
    std::string html = slurp(dir.path / "report.html");
    CHECK(count(html, "<details class=\"round\"") == 3);
    CHECK(html.find("id=\"round-1-3\" open>") != std::string::npos);
    CHECK(count(html, "<svg class=\"chart-svg\"") == 2);
}

namespace {

// The page without its footer (it says when it was written).
std::string page_body(const Run& run) {
    std::string html = render_html(run);
    return html.substr(0, html.find("<footer>"));
}

}  // namespace

TEST_CASE("the model kept up to date line by line draws the page that reading the files draws") {
    TempDir dir;
    write_rounds(dir.path, 3, true);
    nlohmann::ordered_json info = nlohmann::ordered_json::parse(slurp(dir.path / "run.json"));
    // As the runner feeds it: a group when it starts, every journal line as
    // it is written, a group's report.json when it ends, run.json now and then.
    RunModel live(dir.path);
    for (const auto& g : info["groups"])
        live.add_group(g["group"].get<std::string>(), g.value("round", 0), g.value("block", 0), g.value("index", 0),
                       g["report"].get<std::string>());
    std::ifstream events(dir.path / "events.jsonl");
    for (std::string l; std::getline(events, l);) live.add_event(nlohmann::ordered_json::parse(l));
    for (const auto& g : info["groups"]) {
        const std::string name = g["group"].get<std::string>();
        nlohmann::ordered_json report = nlohmann::ordered_json::parse(slurp(dir.path / g["report"].get<std::string>()));
        live.set_report(name, g.value("round", 0), report);
        for (const auto& [id, entry] : report["tasks"].items()) live.report_task(name, g.value("round", 0), id, entry);
    }
    live.set_info(info);
    Run run = live.run();
    CHECK(run.rounds.size() == 6);
    CHECK(page_body(run) == page_body(read_run(dir.path)));
    // run() leaves the model as it was: a second look sees the same.
    CHECK(page_body(live.run()) == page_body(run));
}

TEST_CASE("[[round]] tables from the journal alone: group_start and round_end name theirs") {
    TempDir dir;
    put(dir.path / "events.jsonl", ev(0, R"("event":"run_start")") +
                                       ev(1, R"("event":"round_start","round":1,"block":1)") +
                                       ev(2, R"("event":"group_start","group":"a","round":1,"block":1,"index":1)") +
                                       ev(3, R"("event":"group_end","group":"a","round":1)") +
                                       ev(4, R"("event":"round_end","round":1,"block":1,"stopped_by":"a/0")") +
                                       ev(5, R"("event":"round_start","round":1,"block":2)") +
                                       ev(6, R"("event":"group_start","group":"b","round":1,"block":2,"index":2)") +
                                       ev(7, R"("event":"group_end","group":"b","round":1)") +
                                       ev(8, R"("event":"round_end","round":1,"block":2,"stopped_by":null)"));
    Run run = read_run(dir.path);
    REQUIRE(run.rounds.size() == 2);
    CHECK(run.rounds[0].block == 1);
    CHECK(run.rounds[1].block == 2);
    CHECK(run.groups[run.rounds[1].groups.at(0)].name == "b");
    // Round 1 is the last of both tables: only the one the event names stopped.
    CHECK(run.rounds[0].stopped_by == "a/0");
    CHECK(run.rounds[1].stopped_by.empty());
}

TEST_CASE("the model keeps a result's scalars only; a resumed run is running again until its own end") {
    TempDir dir;
    put(dir.path / "g" / "report.json",
        R"({"group":"g","tasks":{"0":{"status":"FINISHED","retries":{"train":1},"result":{"acc":0.5,"name":"x","w":[1,2,3],"m":{"k":1}}}}})");
    put(dir.path / "run.json", R"({"groups":[{"group":"g","report":"g/report.json"}]})");
    put(dir.path / "events.jsonl",
        ev(0, R"("event":"run_start")") + ev(5, R"("event":"run_end")") + ev(60000, R"("event":"run_start")", 0));
    Run run = read_run(dir.path);
    REQUIRE(run.groups.size() == 1);
    const auto& entry = run.groups[0].tasks.at(0).entry;
    CHECK(entry["result"] == nlohmann::ordered_json{{"acc", 0.5}, {"name", "x"}});
    CHECK(entry["retries"]["train"] == 1);
    CHECK_FALSE(run.ended);
}

TEST_CASE("keep-loaded: evictions and kept workers that exited are marked on the timeline, not made tasks") {
    TempDir dir;
    write_rounds(dir.path, 3);
    // Round 2 has started; a client kept from round 1 is evicted before its
    // round-2 task has any event, another one's kept worker was killed.
    std::ofstream(dir.path / "events.jsonl", std::ios::app)
        << ev(4100, R"("event":"evicted","group":"clients","task":"1","evictions":1)")
        << ev(4200, R"("event":"kept_exited","group":"clients","task":"0","how":"killed by <SIGKILL>")");
    Run run = read_run(dir.path);
    REQUIRE(run.kept_ends.size() == 2);
    CHECK(run.kept_ends[0].evicted);
    CHECK(run.kept_ends[0].ms == 4100);
    CHECK(run.kept_ends[0].group == "clients");
    CHECK(run.kept_ends[0].task == "1");
    CHECK_FALSE(run.kept_ends[1].evicted);
    CHECK(run.kept_ends[1].how == "killed by <SIGKILL>");
    // Neither event makes a task of a group instance.
    for (const auto& g : run.groups)
        for (const auto& t : g.tasks) CHECK(t.status != "INIT");

    write_html(dir.path);
    std::string html = slurp(dir.path / "report.html");
    CHECK(html.find(">kept ends</text>") != std::string::npos);
    CHECK(html.find("evicted to make room</span>") != std::string::npos);
    CHECK(count(html, "<rect class=\"ke\"") == 1);
    CHECK(count(html, "<rect class=\"ke x\"") == 1);
    CHECK(html.find("<title>1 evicted\n+4.100s\nclients/1 evicted</title>") != std::string::npos);
    CHECK(html.find("clients/0 exited: killed by &lt;SIGKILL&gt;</title>") != std::string::npos);

    // A run without kept clients has no strip and no legend for it.
    TempDir plain;
    write_rounds(plain.path, 3);
    write_html(plain.path);
    html = slurp(plain.path / "report.html");
    CHECK(html.find("kept ends") == std::string::npos);
    CHECK(html.find("class=\"ke") == std::string::npos);
}

TEST_CASE("keep-loaded: thousands of evictions share ticks; beyond the limit they are counted") {
    TempDir dir;
    write_rounds(dir.path, 3);
    {
        std::ofstream out(dir.path / "events.jsonl", std::ios::app);
        for (std::size_t i = 0; i < kept_end_limit + 7; ++i)
            out << ev(1000 + static_cast<int>(i % 3000),
                      R"("event":"evicted","group":"clients","task":")" + std::to_string(i % 50) + "\"");
    }
    Run run = read_run(dir.path);
    CHECK(run.kept_ends.size() == kept_end_limit);
    CHECK(run.untold_kept_ends == 7);
    write_html(dir.path);
    std::string html = slurp(dir.path / "report.html");
    // One tick per 2 px of the timeline at most, each naming six ends.
    std::size_t ticks = count(html, "<rect class=\"ke\"");
    CHECK(ticks > 10);
    CHECK(ticks <= 600);
    CHECK(html.find("\nand ") != std::string::npos);
    CHECK(html.find(">and 7 later, not drawn</text>") != std::string::npos);
}

namespace {

// A model fed as the runner feeds it: a group of run.json as it starts,
// every journal line, a group's report.json right after its group_end line
// (entry by entry, built only for a task the model tells), run.json last.
RunModel feed_like_runner(const fs::path& wd) {
    using json = nlohmann::ordered_json;
    RunModel live(wd);
    const json info = json::parse(slurp(wd / "run.json"));
    std::map<std::pair<std::string, int>, json> entries;
    for (const auto& g : info["groups"]) entries[{g["group"].get<std::string>(), g.value("round", 0)}] = g;
    std::ifstream events(wd / "events.jsonl");
    for (std::string l; std::getline(events, l);) {
        const json e = json::parse(l);
        const std::string type = e.value("event", ""), name = e.value("group", "");
        const int round = e.value("round", 0);
        auto it = entries.find({name, round});
        if (type == "group_start" && it != entries.end())
            live.add_group(name, round, it->second.value("block", 0), it->second.value("index", 0),
                           it->second["report"].get<std::string>());
        live.add_event(e);
        if (type != "group_end" || it == entries.end()) continue;
        json report = json::parse(slurp(wd / it->second["report"].get<std::string>()));
        json head = report;
        head["tasks"] = json::object();
        const std::size_t handle = live.set_report(name, round, head);
        for (const auto& [id, entry] : report["tasks"].items())
            live.report_task(handle, id, entry["status"].get<std::string>(), [&entry = entry] { return entry; });
    }
    live.set_info(info);
    return live;
}

std::size_t tasks_told(const Run& run) {
    std::size_t n = 0;
    for (const auto& g : run.groups) n += g.tasks.size();
    return n;
}

// A journal alone of `rounds` rounds of one group of `tasks` tasks, each
// training 10 ms and ending with `end` (FINISHED, or EXCEPTION in train).
void write_round_journal(const fs::path& wd, int rounds, int tasks, const std::string& end) {
    std::ofstream out(wd / "events.jsonl");
    out << ev(0, R"("event":"run_start")");
    for (int r = 1; r <= rounds; ++r) {
        const std::string rr = ",\"round\":" + std::to_string(r),
                          extra = end == "EXCEPTION" ? rr + R"(,"stage":"train","message":"boom")" : rr;
        const int ms = r * 100;
        out << ev(ms, "\"event\":\"round_start\",\"round\":" + std::to_string(r))
            << ev(ms, "\"event\":\"group_start\",\"group\":\"c\",\"index\":1" + rr);
        for (int t = 0; t < tasks; ++t)
            out << status(ms + 1, "c", std::to_string(t), "TRAINING", rr + R"(,"device":"cpu")")
                << status(ms + 11, "c", std::to_string(t), end, extra);
        out << ev(ms + 50, "\"event\":\"group_end\",\"group\":\"c\"" + rr)
            << ev(ms + 51, "\"event\":\"round_end\",\"round\":" + std::to_string(r) + ",\"stopped_by\":null");
    }
}

}  // namespace

TEST_CASE("a long run of rounds: the first and the latest rounds told in full, those between summarized") {
    // 1000 clients over 500 rounds are 500,000 task instances: each one kept
    // in the model made gigabytes of host memory, and a page to match.
    TempDir dir;
    write_rounds(dir.path, 40, false, 20);
    const Run run = read_run(dir.path);
    REQUIRE(run.groups.size() == 81);
    REQUIRE(run.rounds.size() == 40);
    for (const auto& g : run.groups) {
        INFO(g.name << " round " << g.round);
        const bool between = g.round > static_cast<int>(detail_rounds) &&
                             g.round <= 40 - static_cast<int>(detail_rounds);
        CHECK(g.summarized == between);
        if (!between) CHECK(g.untold == 0);
    }
    // A summarized round keeps its counts and its stages' times; its failed
    // task stays, with its stages.
    const Group& c12 = run.groups[run.rounds[11].groups.at(0)];
    CHECK(c12.name == "clients");
    CHECK(c12.tasks.empty());
    CHECK(c12.untold == 2);
    CHECK(c12.untold_finished == 2);
    CHECK(c12.loads.count == 2);
    CHECK(c12.loads.ms == 2 * 98);
    CHECK(c12.trains.count == 2);
    CHECK(c12.trains.ms == 2 * 300);
    const Group& c20 = run.groups[run.rounds[19].groups.at(0)];
    REQUIRE(ids_of(c20) == std::vector<std::string>{"1"});
    CHECK(c20.tasks[0].status == "EXCEPTION");
    CHECK(c20.tasks[0].message == "boom");
    CHECK(c20.untold == 1);
    CHECK(c20.untold_finished == 1);
    // setup's 2, 6 in each of the 20 rounds told, the failed task's 2.
    CHECK(run.stages.size() == 2 + 20 * 6 + 2);
    CHECK(find_stage(run, "1", StageKind::train) != nullptr);
    for (const auto& st : run.stages) CHECK(run.groups[st.group].tasks.at(st.task).id.size() == 1);

    write_html(dir.path);
    const std::string html = slurp(dir.path / "report.html");
    CHECK(html.find("<dd>121 \u00b7 120 finished \u00b7 1 failed</dd>") != std::string::npos);
    CHECK(html.find("Rounds 11\u201330 are summarized: their 118 stages are not drawn") != std::string::npos);
    CHECK(count(html, "<rect class=\"rb") == 40);
    CHECK(html.find("id=\"rounds-1-11-19\"><summary><b>Rounds 11\u201319</b> <span class=\"muted\">summarized \u00b7 "
                    "9 rounds \u00b7 27 tasks \u00b7 27 finished</span>") != std::string::npos);
    CHECK(html.find("id=\"rounds-1-21-30\"") != std::string::npos);
    CHECK(html.find("<details class=\"round\" id=\"round-1-20\" open>") != std::string::npos);
    CHECK(html.find("1 more tasks (1 finished, 0 failed) are summarized, not listed") != std::string::npos);
    CHECK(html.find("Failures <span class=\"muted small\">(1)</span>") != std::string::npos);
    CHECK(html.find("<div class=\"failure\" id=\"fail-1\">") != std::string::npos);
    // A row per summarized round, with its counts and stage times.
    CHECK(html.find("<tr><td class=\"n\" data-v=\"12\">12</td><td>clients, server</td><td class=\"n\">3</td>"
                    "<td class=\"n\">3</td><td class=\"n\">0</td><td class=\"n\" data-v=\"900\">900ms</td>"
                    "<td class=\"n\">3</td>") != std::string::npos);
    CHECK(count(html, "<details class=\"round\"") == 20 + 1 + 2);

    // The runner's model summarizes the same rounds as it goes, and draws the same page.
    const Run live = feed_like_runner(dir.path).run();
    CHECK(live.stages.size() == run.stages.size());
    CHECK(page_body(live) == page_body(run));
}

TEST_CASE("the bound holds however long the run: 200 rounds hold what 40 hold") {
    TempDir a, b;
    write_rounds(a.path, 40);
    write_rounds(b.path, 200);
    const Run ra = read_run(a.path), rb = read_run(b.path);
    CHECK(rb.stages.size() == ra.stages.size());
    CHECK(tasks_told(rb) == tasks_told(ra));
    const RunModel live = feed_like_runner(b.path);
    CHECK(tasks_told(live.run()) == tasks_told(ra));
    // The page grows by a row or two of each round (its band, its values,
    // its counts), not by its tasks.
    const std::string pa = render_html(ra), pb = render_html(rb);
    CHECK(pb.size() - pa.size() < 160 * 1500);
    CHECK(page_body(live.run()) == page_body(rb));
}

TEST_CASE("a run of 2 * detail_rounds rounds is told whole, as before the bound") {
    TempDir dir;
    write_rounds(dir.path, 2 * static_cast<int>(detail_rounds));
    const Run run = read_run(dir.path);
    for (const auto& g : run.groups) CHECK_FALSE(g.summarized);
    CHECK(tasks_told(run) == 1 + 20 * 3);
    CHECK(render_html(run).find("summarized") == std::string::npos);
}

TEST_CASE("rounds of many tasks: each end holds about detail_round_tasks tasks") {
    TempDir dir;
    write_round_journal(dir.path, 12, 600, "FINISHED");
    const Run run = read_run(dir.path);
    REQUIRE(run.rounds.size() == 12);
    // The first rounds until they hold detail_round_tasks (4 of 600); the
    // newest and the latest before it that hold at most as many (3).
    std::vector<int> summarized;
    for (const auto& g : run.groups)
        if (g.summarized) summarized.push_back(g.round);
    CHECK(summarized == std::vector<int>{5, 6, 7, 8});
    CHECK(tasks_told(run) == 8 * 600);
    CHECK(run.stages.size() == 8 * 600);
    CHECK(run.groups[4].untold == 600);
    CHECK(run.groups[4].untold_finished == 600);
    CHECK(run.groups[4].trains.count == 600);
    CHECK(run.groups[4].trains.ms == 600 * 10);
}

TEST_CASE("failed tasks of summarized rounds stay, up to summarized_failure_limit in the run") {
    TempDir dir;
    write_round_journal(dir.path, 50, 100, "EXCEPTION");
    const Run run = read_run(dir.path);
    std::size_t kept = 0, untold_failed = 0;
    for (const auto& g : run.groups) {
        if (g.summarized) kept += g.tasks.size();
        untold_failed += g.untold_failed;
    }
    // Rounds 11 to 40 are summarized: 3000 failures, the first 2000 kept.
    CHECK(kept == summarized_failure_limit);
    CHECK(untold_failed == 3000 - summarized_failure_limit);
    CHECK(run.groups[29].tasks.size() == 100);  // round 30
    CHECK(run.groups[30].tasks.empty());        // round 31
    CHECK(run.stages.size() == 20 * 100 + summarized_failure_limit);
    const std::string html = render_html(run);
    CHECK(html.find("Failures <span class=\"muted small\">(5000)</span>") != std::string::npos);
    CHECK(html.find("1000 of them are not listed: the page lists at most 2000 failed tasks of the rounds it "
                    "summarizes") != std::string::npos);
}
