// results_left: what a fresh run would delete of the run in its workdir, read
// from that run's journal (a FINISHED line) and run.json (when, how it ended,
// how many finished), as docs/plan.md (`workdir`) says. ResumeState: what
// --resume keeps of it; it reads the journal as the journal itself does.
#include "runner/resume.hpp"

#include "runner/journal.hpp"
#include "runner/results.hpp"
#include "support/files.hpp"

#include <doctest/doctest.h>

#include <fmt/core.h>

#include <string>

using namespace fedflow;
namespace fs = std::filesystem;
using fedflow::test::put;
using fedflow::test::TempDir;

namespace {

const std::string started = R"({"event":"run_start","plan":"p.toml"})"
                            "\n";
const std::string available = R"({"event":"status","group":"g","task":"0","status":"AVAILABLE","pid":7})"
                              "\n";
const std::string finished = R"({"event":"status","group":"g","task":"0","status":"FINISHED","train_ms":1})"
                             "\n";

}  // namespace

TEST_CASE("no journal, or one in which nothing finished, leaves nothing") {
    TempDir dir("fedflow-resume");
    CHECK_FALSE(results_left(dir.path));
    put(dir.path / "run.json", R"({"started":"2026-12-01T09:00:00.000Z","status":"failed"})");
    put(dir.path / "events.jsonl", started + available +
                                       R"({"event":"status","group":"g","task":"0","status":"EXCEPTION"})"
                                       "\n");
    CHECK_FALSE(results_left(dir.path));
    // A task id that reads as a FINISHED line is a string, its quotes escaped.
    put(dir.path / "events.jsonl",
        started + R"({"event":"status","group":"g","task":"x\"status\":\"FINISHED\"","status":"AVAILABLE"})"
                  "\n");
    CHECK_FALSE(results_left(dir.path));
}

TEST_CASE("a finished task is found, with when the run started, how it ended and the count") {
    TempDir dir("fedflow-resume");
    put(dir.path / "events.jsonl", started + available + finished + available);
    put(dir.path / "run.json", R"({"started":"2026-12-01T09:00:00.000Z","status":"finished",)"
                               R"("groups":[{"group":"g","finished":3},{"group":"h","finished":2}]})");
    CHECK(results_left(dir.path) == "started 2026-12-01T09:00:00.000Z, ended 'finished', 5 task(s) finished");

    // A killed host left "running" and counts of 0: neither is told as such.
    put(dir.path / "run.json", R"({"started":"2026-12-01T09:00:00.000Z","status":"running",)"
                               R"("groups":[{"group":"g","finished":0}]})");
    CHECK(results_left(dir.path) == "started 2026-12-01T09:00:00.000Z, whose host was killed");

    // No run.json: a fresh run removed it first, and was killed while it
    // removed the rest.
    fs::remove(dir.path / "run.json");
    CHECK_FALSE(results_left(dir.path));
    put(dir.path / "run.json", "{}");

    // A torn last line (a killed host) after a finished task.
    put(dir.path / "events.jsonl", started + finished + R"({"event":"sta)");
    CHECK(results_left(dir.path));

    // run.json unreadable or not an object: the journal alone speaks.
    put(dir.path / "run.json", "{\"started\":");
    CHECK(results_left(dir.path) == "a task finished");
    put(dir.path / "run.json", "[1, 2]");
    CHECK(results_left(dir.path) == "a task finished");
    // What would reach the terminal as control characters is escaped.
    put(dir.path / "run.json", R"({"started":"x\u001b[2J","status":"finished"})");
    CHECK(results_left(dir.path) == "started x\\e[2J, ended 'finished'");
    // Fields of the wrong kind are left out.
    put(dir.path / "run.json", R"({"started":7,"status":["x"],"groups":{"g":1}})");
    CHECK(results_left(dir.path) == "started at an unknown time");
}

namespace {

// A run of one group of one task whose result.json is as its FINISHED line
// says; the test writes its run.json and journal.
struct FinishedRun {
    TempDir dir{"fedflow-resume"};
    plan::Plan plan = plan::parse("[[group]]\nname = \"g\"\nplugin = \"echo\"\n", dir.path / "p.toml");
    fs::path events = dir.path / "events.jsonl";
    std::string line;  // its FINISHED line, without the newline
    FinishedRun() {
        put(dir.path / "g" / "0" / "result.json", R"({"x":1})");
        line = R"({"event":"status","group":"g","task":"0","status":"FINISHED","result_checksum":")" +
               fmt::format("{:016x}", *results::file_checksum(dir.path / "g" / "0" / "result.json")) + R"("})";
    }
    std::size_t resume(bool force = false) const {
        ResumeState state;
        state.load(plan, dir.path, force);
        return state.count();
    }
};

}  // namespace

TEST_CASE("a last line without its newline is torn: its task did not finish, for every reader") {
    // A host killed after it wrote a FINISHED line's last byte but its
    // newline: the journal cuts the line when it opens, so --resume (and a
    // fresh run's question) must not count it, or the task would be kept
    // by one resume and run again by the next.
    FinishedRun run;
    put(run.dir.path / "run.json", nlohmann::json{{"plan_digest", run.plan.digest}}.dump());
    put(run.events, started + run.line);
    CHECK(run.resume() == 0);
    CHECK_FALSE(results_left(run.dir.path));
    {
        Journal journal;
        CHECK(journal.open(run.events, nullptr) == run.line.size());
    }

    put(run.events, started + run.line + "\n");
    ResumeState whole;
    whole.load(run.plan, run.dir.path, false);
    CHECK(whole.count() == 1);
    REQUIRE(whole.finished(0, "g") != nullptr);
    CHECK(whole.finished(0, "g")->at("0").result == nlohmann::ordered_json{{"x", 1}});
    CHECK(results_left(run.dir.path));
}

TEST_CASE("a run.json that cannot be read: --resume goes on from the plan digest of the journal's run_start") {
    // run.json is replaced without fsync: after a power loss it may be
    // empty or cut short, while the journal, synced, is whole.
    FinishedRun run;
    const std::string start = R"({"event":"run_start","plan_digest":")" + run.plan.digest + "\"}\n";
    put(run.events, start + run.line + "\n");
    for (const char* damaged : {"", "{\"plan_digest\":\"sha", "[1]"}) {
        CAPTURE(damaged);
        put(run.dir.path / "run.json", damaged);
        CHECK(run.resume() == 1);
    }
    // The journal's plan is another: refused as a plan that changed, unless --force.
    put(run.events, R"({"event":"run_start","plan_digest":"sha256:0123"})"
                    "\n" +
                        run.line + "\n");
    CHECK_THROWS_WITH_AS(run.resume(), doctest::Contains("run.json, which holds the plan's text, cannot be read"),
                         std::invalid_argument);
    CHECK(run.resume(true) == 1);
    // No run_start at all: the digest is unknown, as a run.json without one.
    put(run.events, run.line + "\n");
    CHECK_THROWS_WITH_AS(run.resume(), doctest::Contains("plan digest unknown"), std::invalid_argument);
    CHECK(run.resume(true) == 1);
}
