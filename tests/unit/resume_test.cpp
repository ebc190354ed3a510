// results_left: what a fresh run would delete of the run in its workdir, read
// from that run's journal (a FINISHED line) and run.json (when, how it ended,
// how many finished), as docs/plan.md (`workdir`) says.
#include "runner/resume.hpp"

#include "support/files.hpp"

#include <doctest/doctest.h>

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
