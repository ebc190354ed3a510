// The pieces report.html is drawn with, one by one: the HTML writer, the
// number and time formats, the time axis and lanes of the timeline, the
// choice of charts and of result columns, and the numbering of failures.
#include "report/charts.hpp"
#include "report/format.hpp"
#include "report/html.hpp"
#include "report/tables.hpp"
#include "report/timeline.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

using namespace fedflow::report;
using json = nlohmann::ordered_json;

namespace {

TaskInfo task(const std::string& id, const std::string& status, json result = nullptr) {
    TaskInfo t;
    t.id = id;
    t.status = status;
    if (!result.is_null()) t.entry = json{{"status", status}, {"result", std::move(result)}};
    return t;
}

Round round(int n, std::vector<std::pair<std::string, double>> values, std::vector<std::size_t> groups = {}) {
    Round r;
    r.round = n;
    r.values = std::move(values);
    r.groups = std::move(groups);
    return r;
}

std::vector<const Round*> all(const Run& run) {
    std::vector<const Round*> out;
    for (const auto& r : run.rounds) out.push_back(&r);
    return out;
}

}  // namespace

TEST_CASE("Html: markup as written, every string argument escaped") {
    Html h;
    h.add("<td class=\"{}\" data-v=\"{}\">{}</td>", "a\"b", 1.5, std::string("<b>x</b>"));
    CHECK(h.str() == "<td class=\"a&quot;b\" data-v=\"1.5\">&lt;b&gt;x&lt;/b&gt;</td>");
    h = Html();
    std::string_view view = "it's";
    const char* cstr = "&";
    h.add("{} {} {} {:.1f} {}", view, cstr, 42, 2.25, Raw{"<i>raw</i>"});
    CHECK(h.str() == "it&#39;s &amp; 42 2.2 <i>raw</i>");
    h = Html();
    h.element("li", "1 < 2").text(" & ").raw("<br>");
    CHECK(h.str() == "<li>1 &lt; 2</li> &amp; <br>");
    CHECK(h.take() == "<li>1 &lt; 2</li> &amp; <br>");
}

TEST_CASE("truncated: cut on a character boundary, with an ellipsis") {
    CHECK(truncated("short", 10) == "short");
    CHECK(truncated("abcdef", 3) == "abc\u2026");
    // "é" is two bytes: a cut inside it moves before it.
    CHECK(truncated("ab\xC3\xA9z", 3) == "ab\u2026");
}

TEST_CASE("formats: durations, sizes, numbers") {
    CHECK(duration(350) == "350ms");
    CHECK(duration(2345) == "2.35s");
    CHECK(duration(12345) == "12.3s");
    CHECK(duration(245000) == "4m05s");
    CHECK(duration(3723000) == "1h02m03s");
    CHECK(duration(-1) == "");
    CHECK(duration(std::nan("")) == "");
    CHECK(bytes(512) == "512 B");
    CHECK(bytes(1536) == "1.50 KiB");
    CHECK(bytes(1000.0 * 1024 * 1024) == "0.98 GiB");
    CHECK(bytes(6442450944.0) == "6.00 GiB");
    CHECK(at(1234) == "+1.234s");
    CHECK(at(125000) == "+2m05s");
    CHECK(number(json(7)) == "7");
    CHECK(number(json(0.875)) == "0.875");
    CHECK(number(json(1.0 / 3)) == "0.333333");
    CHECK(number(json(1764291600.5)) == "1764291600.5");  // read whole, no exponent
    CHECK(number(json(1e20)) == "1e+20");
    CHECK(number(json(std::numeric_limits<double>::infinity())) == "Infinity");
    CHECK(short_number(0.123456) == "0.1235");
    CHECK(short_number(12345) == "12345");
}

TEST_CASE("time axis: at most ten ticks, labels that fit the span") {
    CHECK(tick_step(1) == 1);
    CHECK(tick_step(900) == 100);
    CHECK(tick_step(9000) == 1000);
    CHECK(tick_step(100000) == 10000);
    CHECK(tick_step(86400000.0 * 30) == 86400000.0 * 4);  // a month: days doubled until ten fit
    for (double span : {3.0, 70.0, 950.0, 12000.0, 3.6e6, 1e8, 5e9}) CHECK(span / tick_step(span) <= 10);
    CHECK(tick_label(0, 100, 900) == "0");
    CHECK(tick_label(500, 100, 900) == "0.5s");
    CHECK(tick_label(50, 10, 90) == "0.05s");
    CHECK(tick_label(12000, 1000, 9000) == "12s");
    CHECK(tick_label(185000, 60000, 600000) == "3:05");
    CHECK(tick_label(3723000, 3600000, 8 * 3600000.0) == "1:02:03");
}

TEST_CASE("lanes: GPUs by number, other devices, then cpu; idle GPUs too") {
    Run run;
    CHECK(lane_names(run).empty());
    for (const char* lane : {"cpu", "cuda:10", "cuda:2", "tpu", "cuda:x"}) {
        Stage s;
        s.lane = lane;
        run.stages.push_back(s);
    }
    CHECK(lane_names(run) == std::vector<std::string>{"cuda:2", "cuda:10", "cuda:x", "tpu", "cpu"});
    run.info = json{
        {"devices", json::array({json{{"name", "cpu"}}, json{{"name", "cuda:0"}}, json{{"name", "cuda:2"}}})}};
    CHECK(lane_names(run) == std::vector<std::string>{"cuda:0", "cuda:2", "cuda:10", "cuda:x", "tpu", "cpu"});
}

TEST_CASE("nice_ticks: round steps that cover the range") {
    Ticks t = nice_ticks(0, 1, 4);
    CHECK(t.values == std::vector<double>{0, 0.25, 0.5, 0.75, 1});
    CHECK(t.decimals == 2);
    t = nice_ticks(0.52, 0.97, 4);
    CHECK(t.values.front() <= 0.52);
    CHECK(t.values.back() >= 0.97);
    CHECK(t.decimals == 1);
    t = nice_ticks(-3, 17, 4);
    CHECK(t.values == std::vector<double>{-5, 0, 5, 10, 15, 20});
    CHECK(t.decimals == 0);
    t = nice_ticks(1e-9, 1e9, 4);
    CHECK(t.values.size() <= 40);
}

TEST_CASE("charts: values that change are curves; the round number, flags and constants are not") {
    Run run;
    Group server;
    server.name = "server";
    server.tasks.push_back(task("0", "FINISHED", json{{"accuracy", 0.9}, {"stop", false}}));
    run.groups.push_back(server);
    for (int r = 1; r <= 3; ++r)
        run.rounds.push_back(
            round(r, {{"accuracy", 0.5 + r * 0.1}, {"round", r}, {"stop", 0}, {"clients", 10}, {"loss", 1.0 / r}},
                  {0}));
    auto rounds = all(run);
    CHECK(chart_keys(run, rounds) == std::vector<std::string>{"accuracy", "clients", "loss"});
    CHECK(curves(run, rounds) == std::vector<std::string>{"accuracy", "loss"});
    REQUIRE(round_blocks(run).size() == 1);
    CHECK(curves_by_block(run).at(1) == std::vector<std::string>{"accuracy", "loss"});
    REQUIRE(value_of(run.rounds[1], "loss"));
    CHECK(*value_of(run.rounds[1], "loss") == 0.5);
    CHECK(value_of(run.rounds[1], "none") == nullptr);

    // One round: every value is a curve of one point, but a value named
    // "round" still repeats the round number.
    Run one;
    one.rounds.push_back(round(1, {{"round", 1}, {"n", 1}}));
    CHECK(curves(one, all(one)) == std::vector<std::string>{"n"});

    // Two [[round]] tables: their rounds apart.
    Run two;
    two.rounds.push_back(round(1, {{"a", 1}}));
    two.rounds.push_back(round(2, {{"a", 2}}));
    two.rounds.push_back(round(1, {{"b", 1}}));
    two.rounds.back().block = 2;
    auto blocks = round_blocks(two);
    REQUIRE(blocks.size() == 2);
    CHECK(blocks[1].size() == 1);
    CHECK(curves_by_block(two).at(2) == std::vector<std::string>{"b"});
}

TEST_CASE("rounds_section: charts, facts that never change, the table") {
    Run run;
    for (int r = 1; r <= 14; ++r) run.rounds.push_back(round(r, {{"acc", r * 0.01}, {"k", 3}}));
    run.rounds[13].stopped_by = "server/<0>";
    Html out;
    rounds_section(out, run, curves_by_block(run));
    const std::string& html = out.str();
    CHECK(html.find("aria-label=\"acc by round\"") != std::string::npos);
    CHECK(html.find("aria-label=\"k by round\"") == std::string::npos);
    CHECK(html.find("The same in every round:</span> <b>k</b> 3") != std::string::npos);
    CHECK(html.find("Stopped after round 14: server/&lt;0&gt; asked to stop") != std::string::npos);
    CHECK(html.find("<details class=\"values\"><summary>") != std::string::npos);  // folded: more than 12 rounds
    Html none;
    rounds_section(none, Run{}, {});
    CHECK(none.str().empty());
}

TEST_CASE("result columns: scalars in order of appearance, at most 40") {
    Group g;
    g.tasks.push_back(
        task("0", "FINISHED", json{{"loss", 0.5}, {"name", "a"}, {"w", json::array({1, 2})}, {"ok", true}}));
    g.tasks.push_back(task("1", "FINISHED", json{{"extra", 1}, {"loss", "n/a"}}));
    g.tasks.push_back(task("2", "EXCEPTION"));
    ResultColumns c = result_columns(g);
    CHECK(c.keys == std::vector<std::string>{"loss", "name", "ok", "extra"});
    CHECK(c.text == std::set<std::string>{"loss", "name", "ok"});
    CHECK_FALSE(c.gpu);
    CHECK_FALSE(c.retries);
    g.tasks[2].peak_gpu_memory = 1;
    g.tasks[2].entry = json{{"retries", json{{"load", 0}, {"train", 2}}}};
    json many = json::object();
    for (int i = 0; i < 45; ++i) many["k" + std::to_string(i)] = i;
    g.tasks.push_back(task("3", "FINISHED", many));
    c = result_columns(g);
    CHECK(c.keys.size() == 40);
    CHECK(c.dropped == 9);
    CHECK(c.gpu);
    CHECK(c.retries);
}

TEST_CASE("failures: numbered in page order, linked from the results") {
    Run run;
    Group a, b;
    a.name = "a";
    a.tasks = {task("0", "FINISHED"), task("1", "EXCEPTION")};
    b.name = "b";
    b.tasks = {task("0", "EXCEPTION"), task("1", "INIT")};
    run.groups = {a, b};
    FailureIds ids = number_failures(run);
    CHECK(ids == FailureIds{{{0, 1}, 1}, {{1, 0}, 2}});
    Html out;
    results_section(out, run, ids, {});
    CHECK(out.str().find("<a href=\"#fail-2\"") != std::string::npos);
    Html f;
    failures_section(f, run, ids);
    CHECK(f.str().find("id=\"fail-1\"") < f.str().find("id=\"fail-2\""));
    CHECK(f.str().find("(no message)") != std::string::npos);
}

TEST_CASE("summarized rounds: those with a summarized group, named as ranges") {
    Run run;
    Group told, summed;
    summed.summarized = true;
    run.groups = {told, summed};
    for (int n : {10, 11, 12, 13, 15}) run.rounds.push_back(round(n, {}, {n == 10 ? 0u : 1u}));
    std::vector<const Round*> list = summarized_rounds(run);
    REQUIRE(list.size() == 4);
    CHECK(list.front()->round == 11);
    CHECK(round_ranges(run, list) == "11\u201313, 15");
    // With two [[round]] tables, each says which.
    run.rounds.push_back(round(3, {}, {1}));
    run.rounds.back().block = 2;
    run.rounds.push_back(round(4, {}, {1}));
    run.rounds.back().block = 2;
    CHECK(round_ranges(run, summarized_rounds(run)) == "[[round]] 1: 11\u201313, 15; [[round]] 2: 3\u20134");
    CHECK(round_ranges(run, {}).empty());
}
