// Outputs: run.json, rounds.csv and report.html of a run, on a clock the test
// moves: written at once at the start and the end, at most once per period
// in between; rounds.csv appended to; the page drawn from the journal lines
// it was given, never from events.jsonl.
#include "runner/outputs.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

using namespace fedflow;
namespace fs = std::filesystem;
using json = nlohmann::ordered_json;
using namespace std::chrono_literals;

namespace {

struct TempDir {
    fs::path path;
    TempDir() {
        std::string tmpl = (fs::temp_directory_path() / "fedflow-outputs-XXXXXX").string();
        path = ::mkdtemp(tmpl.data());
    }
    ~TempDir() { fs::remove_all(path); }
};

std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
}

json read_json(const fs::path& p) { return json::parse(slurp(p)); }

std::vector<std::string> lines(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);) out.push_back(l);
    return out;
}

std::size_t commas(const std::string& s) { return static_cast<std::size_t>(std::count(s.begin(), s.end(), ',')); }

const char* plan_text = R"(
[[group]]
name = "setup"
plugin = "echo"

[[round]]
count = 3
  [[round.group]]
  name = "server"
  plugin = "echo"
)";

// A clock that moves only when the test says so.
struct FakeClock {
    Outputs::Clock::time_point now{std::chrono::hours(1)};
    Outputs::Options options(std::chrono::milliseconds period = 5000ms) {
        Outputs::Options o;
        o.period = period;
        o.now = [this] { return now; };
        return o;
    }
};

// Outputs of a run of plan_text in dir, started.
Outputs started(const plan::Plan& plan, const fs::path& dir, Outputs::Options options) {
    Outputs out(plan, dir, false, std::move(options));
    out.start(0, "2026-11-28T01:00:00.000Z", sched::Snapshot{}, sched::Limits{});
    return out;
}

// A journal line as Journal::write makes it.
json line(std::int64_t elapsed_ms, json event) {
    json l{{"time", "2026-11-28T01:00:00.000Z"}, {"elapsed_ms", elapsed_ms}};
    for (auto& [k, v] : event.items()) l[k] = v;
    return l;
}

}  // namespace

TEST_CASE("run.json at the start and the end; in between at most once per period") {
    TempDir dir;
    plan::Plan plan = plan::parse(plan_text, dir.path / "plan.toml");
    FakeClock clock;
    Outputs out(plan, dir.path, false, clock.options());
    sched::Snapshot machine;
    machine.ram_total = 1 << 30;
    out.start(7, "2026-11-28T01:00:00.000Z", machine, sched::Limits{});

    json run = read_json(dir.path / "run.json");
    CHECK(run["status"] == "running");
    CHECK(run["seed"] == 7);
    CHECK(run["host_pid"] == ::getpid());
    CHECK(run["devices"][0]["memory"] == 1 << 30);
    CHECK(run["groups"].empty());
    CHECK(run["rounds"].empty());
    CHECK(run["ended"].is_null());
    CHECK_FALSE(out.next_write().has_value());  // nothing changed since
    CHECK(fs::exists(dir.path / "report.html"));

    // A group starts and ends 1 s later: due 5 s after the last write.
    TaskGroup setup(1, "setup");
    setup.add_task(Task("0"));
    setup.set_workdir(dir.path / "setup");
    out.event(line(0, {{"event", "run_start"}}));
    out.group_started(setup, 0);
    out.event(line(1, {{"event", "group_start"}, {"group", "setup"}, {"round", 0}, {"index", 1}}));
    out.event(line(2, {{"event", "status"}, {"group", "setup"}, {"round", 0}, {"task", "0"}, {"status", "LOADING"}}));
    REQUIRE(out.next_write().has_value());
    CHECK(*out.next_write() == clock.now + 5s);
    out.event(line(3, {{"event", "status"},
                       {"group", "setup"},
                       {"round", 0},
                       {"task", "0"},
                       {"status", "EXCEPTION"},
                       {"stage", "load"},
                       {"message", "no data"}}));
    clock.now += 1s;
    setup.report_exception("0", "load", "no data");
    out.group_ended(setup, false);
    CHECK(read_json(dir.path / "run.json")["groups"].empty());  // not yet
    out.write_if_due();
    CHECK(read_json(dir.path / "run.json")["groups"].empty());
    clock.now += 4s;
    out.write_if_due();
    run = read_json(dir.path / "run.json");
    REQUIRE(run["groups"].size() == 1);
    CHECK(run["groups"][0] == json{{"index", 1},
                                   {"group", "setup"},
                                   {"report", "setup/report.json"},
                                   {"tasks", 1},
                                   {"finished", 0},
                                   {"failed", 1}});
    CHECK_FALSE(out.next_write().has_value());
    // The page was drawn from the lines given, not from events.jsonl (there is none).
    CHECK_FALSE(fs::exists(dir.path / "events.jsonl"));
    std::string page = slurp(dir.path / "report.html");
    CHECK(page.find("no data") != std::string::npos);
    CHECK(page.find("<rect class=\"b ld fail") != std::string::npos);

    // The end is written at once, however recent the last write.
    out.event(line(4, {{"event", "run_end"}, {"status", "failed"}, {"exit_code", 1}}));
    out.finish("failed", 1);
    run = read_json(dir.path / "run.json");
    CHECK(run["status"] == "failed");
    CHECK(run["exit_code"] == 1);
    CHECK(run["ended"].is_string());
    CHECK(slurp(dir.path / "report.html").find("<title>Fedflow \u00b7 plan \u00b7 failed</title>") !=
          std::string::npos);
    for (const auto& e : fs::directory_iterator(dir.path)) CHECK(e.path().extension() != ".tmp");
}

TEST_CASE("rounds.csv: a line appended per round; a new value widens the header") {
    TempDir dir;
    plan::Plan plan = plan::parse(plan_text, dir.path / "plan.toml");
    FakeClock clock;
    Outputs out = started(plan, dir.path, clock.options());

    out.round_ended(RoundRow{1, 1, 0.5, json{{"acc", 0.5}, {"loss", 2.0}}});
    CHECK(slurp(dir.path / "rounds.csv") == "round,acc,loss,wall_s\n1,0.5,2,0.500\n");
    // Appended: the file grows by exactly the new line.
    out.round_ended(RoundRow{1, 2, 0.25, json{{"loss", 1.0}, {"acc", 0.75}}});
    CHECK(slurp(dir.path / "rounds.csv") == "round,acc,loss,wall_s\n1,0.5,2,0.500\n2,0.75,1,0.250\n");
    // A value no round had: every line gets the column (empty where absent).
    out.round_ended(RoundRow{1, 3, 1.0, json{{"acc", 0.875}, {"new, \"odd\"", 1}}});
    std::string csv = slurp(dir.path / "rounds.csv");
    CHECK(csv == "round,acc,loss,\"new, \"\"odd\"\"\",wall_s\n1,0.5,2,,0.500\n2,0.75,1,,0.250\n3,0.875,,1,1.000\n");
    // run.json gets the rounds at its next write.
    clock.now += 5s;
    out.write_if_due();
    json run = read_json(dir.path / "run.json");
    REQUIRE(run["rounds"].size() == 3);
    CHECK(run["rounds"][2]["values"]["acc"] == 0.875);
    CHECK_FALSE(run["rounds"][2].contains("block"));  // one [[round]] table

    SUBCASE("two [[round]] tables: a block column") {
        plan::Plan two = plan::parse(std::string(plan_text) +
                                         "[[round]]\ncount = 1\n[[round.group]]\nname = \"b\"\nplugin = \"echo\"\n",
                                     dir.path / "plan.toml");
        TempDir other;
        Outputs o2 = started(two, other.path, clock.options());
        o2.round_ended(RoundRow{1, 1, 0.5, json{{"v", 1}}});
        o2.round_ended(RoundRow{2, 1, 0.5, json{{"v", 2}}});
        auto l = lines(slurp(other.path / "rounds.csv"));
        REQUIRE(l.size() == 3);
        CHECK(l[0] == "block,round,v,wall_s");
        CHECK(l[2] == "2,1,2,0.500");
    }
}

TEST_CASE("every rounds.csv line has as many fields as the header, whatever the rounds return") {
    TempDir dir;
    plan::Plan plan = plan::parse(plan_text, dir.path / "plan.toml");
    FakeClock clock;
    Outputs out = started(plan, dir.path, clock.options());
    for (std::uint32_t r = 1; r <= 30; ++r) {
        json values = json::object();
        for (std::uint32_t k = 0; k < r % 7; ++k) values["k" + std::to_string((r * 3 + k) % 11)] = k;
        out.round_ended(RoundRow{1, r, 0.1, values});
    }
    auto l = lines(slurp(dir.path / "rounds.csv"));
    REQUIRE(l.size() == 31);
    for (const auto& x : l) CHECK(commas(x) == commas(l[0]));
}

TEST_CASE("a slow page stretches the period: rewriting costs at most 5% of the run") {
    TempDir dir;
    plan::Plan plan = plan::parse(plan_text, dir.path / "plan.toml");
    FakeClock clock;
    Outputs::Options o = clock.options(100ms);
    int calls = 0;
    // Each look at the clock moves it 1 s on: a write "takes" 1 s.
    o.now = [&] { return clock.now + std::chrono::seconds(++calls); };
    Outputs out = started(plan, dir.path, o);
    out.event(line(0, {{"event", "run_start"}}));
    REQUIRE(out.next_write().has_value());
    // written at t+2 s after a write of 1 s: next at t+2 + 20 s, not t+2.1 s.
    CHECK(*out.next_write() == clock.now + 2s + 20s);
}

TEST_CASE("resume: the page's model starts from the earlier run's files") {
    TempDir dir;
    plan::Plan plan = plan::parse(plan_text, dir.path / "plan.toml");
    FakeClock clock;
    {
        std::ofstream(dir.path / "events.jsonl")
            << line(0, {{"event", "run_start"}}).dump() << "\n"
            << line(5,
                    {{"event", "status"}, {"group", "setup"}, {"round", 0}, {"task", "earlier"}, {"status", "LOADING"}})
                   .dump()
            << "\n"
            << line(9, {{"event", "run_end"}, {"status", "interrupted"}}).dump() << "\n";
    }
    Outputs out(plan, dir.path, true, clock.options());
    out.start(0, "2026-11-28T01:00:00.000Z", sched::Snapshot{}, sched::Limits{});
    out.event(line(0, {{"event", "run_start"}}));
    out.event(
        line(3, {{"event", "status"}, {"group", "setup"}, {"round", 0}, {"task", "later"}, {"status", "LOADING"}}));
    out.finish("finished", 0);
    std::string page = slurp(dir.path / "report.html");
    CHECK(page.find("setup/earlier") != std::string::npos);
    CHECK(page.find("setup/later") != std::string::npos);
}
