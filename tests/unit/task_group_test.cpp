// TaskGroup and Task as in the original's component document: attributes,
// add/get, report_finish/report_exception, finished, retrieve_task.
#include "runner/task_group.hpp"

#include "runner/results.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include <unistd.h>

using namespace fedflow;

namespace {

TaskGroup make_group(std::size_t n, std::uint64_t seed = 1) {
    TaskGroup g(1, "clients", "", seed);
    for (std::size_t i = 0; i < n; ++i) g.add_task(Task(std::to_string(i)));
    return g;
}

// Walks a task through the stages that the runner drives with a worker.
void run_to_training(Task& t) {
    t.set_status(TaskStatus::AVAILABLE);
    t.set_status(TaskStatus::LOADING);
    t.set_status(TaskStatus::WAITING);
    t.set_status(TaskStatus::TRAINING);
}

}  // namespace

TEST_CASE("a Task starts in INIT with its id, pinned device and params") {
    Task t("client-a", "cuda:1", Dict{{"lr", 0.1}});
    CHECK(t.task_id() == "client-a");
    CHECK(t.device() == "cuda:1");
    CHECK(t.pinned());
    CHECK(t.status() == TaskStatus::INIT);
    CHECK(t.params().at("lr").as<double>() == doctest::Approx(0.1));
    CHECK(t.result().is_null());
    CHECK_FALSE(t.is_alive());
    CHECK_FALSE(Task("x").pinned());
}

TEST_CASE("TaskStatus transitions follow the original's stages") {
    Task t("0");
    run_to_training(t);
    t.set_status(TaskStatus::FINISHED);
    t.set_status(TaskStatus::EXITED);
    CHECK(std::string(to_string(t.status())) == "EXITED");

    SUBCASE("no skipping stages") {
        Task u("1");
        CHECK_THROWS_AS(u.set_status(TaskStatus::TRAINING), std::logic_error);
        CHECK_THROWS_AS(u.set_status(TaskStatus::FINISHED), std::logic_error);
    }
    SUBCASE("a finished task cannot fail afterwards") {
        CHECK_THROWS_AS(t.set_status(TaskStatus::EXCEPTION), std::logic_error);
    }
    SUBCASE("out of memory: INTERRUPT, then back to waiting") {
        Task u("2");
        run_to_training(u);
        u.set_status(TaskStatus::INTERRUPT);
        u.set_status(TaskStatus::WAITING);
        CHECK(u.status() == TaskStatus::WAITING);
    }
    CHECK(is_final(TaskStatus::FINISHED));
    CHECK(is_final(TaskStatus::EXCEPTION));
    CHECK_FALSE(is_final(TaskStatus::WAITING));
}

TEST_CASE("TaskGroup attributes") {
    TaskGroup g(3, "server", "cuda:0");
    CHECK(g.index() == 3);
    CHECK(g.group_name() == "server");
    CHECK(g.device() == "cuda:0");
    g.set_workdir("/tmp/run/server");
    CHECK(g.workdir() == "/tmp/run/server");
    Task& t = g.add_task(Task("client-7"));
    CHECK(g.task_dir(t) == "/tmp/run/server/client-7");  // a task keeps no folder of its own
}

TEST_CASE("add_task and get_task") {
    TaskGroup g = make_group(3);
    REQUIRE(g.get_task("1") != nullptr);
    CHECK(g.get_task("1")->task_id() == "1");
    CHECK(g.get_task("7") == nullptr);
    CHECK_THROWS_WITH_AS(g.add_task(Task("1")), doctest::Contains("already has a task '1'"), std::invalid_argument);
}

TEST_CASE("report_finish and report_exception make the group's result") {
    TaskGroup g = make_group(2);
    g.set_plugin("echo");
    CHECK_FALSE(g.finished());
    run_to_training(*g.get_task("0"));
    g.report_finish("0", {{"loss", 0.25}});
    CHECK(g.get_task("0")->status() == TaskStatus::FINISHED);
    CHECK(g.get_task("0")->result()["loss"] == 0.25);
    CHECK_FALSE(g.finished());

    g.get_task("1")->set_status(TaskStatus::AVAILABLE);
    g.get_task("1")->set_status(TaskStatus::LOADING);
    g.report_exception("1", "load", "injected failure");
    CHECK(g.finished());
    CHECK(g.failed_count() == 1);

    auto r = g.result();
    CHECK(r["group"] == "clients");
    CHECK(r["index"] == 1);
    CHECK(r["plugin"] == "echo");
    CHECK(r["tasks"]["0"]["status"] == "FINISHED");
    CHECK(r["tasks"]["0"]["result"]["loss"] == 0.25);
    CHECK(r["tasks"]["1"]["status"] == "EXCEPTION");
    CHECK(r["tasks"]["1"]["stage"] == "load");
    CHECK(r["tasks"]["1"]["message"] == "injected failure");
    CHECK_FALSE(r["tasks"]["1"].contains("result"));

    CHECK_THROWS_AS(g.report_finish("nope", {}), std::invalid_argument);
    CHECK_THROWS_AS(g.report_exception("nope", "train", "x"), std::invalid_argument);
}

TEST_CASE("an exited task is reported by its outcome") {
    TaskGroup g = make_group(1);
    run_to_training(*g.get_task("0"));
    g.report_finish("0", nlohmann::ordered_json::object());
    g.get_task("0")->set_status(TaskStatus::EXITED);
    CHECK(g.finished());
    CHECK(g.result()["tasks"]["0"]["status"] == "FINISHED");
}

TEST_CASE("retrieve_task picks at random among tasks of a status, reproducibly") {
    auto order = [](std::uint64_t seed) {
        TaskGroup g = make_group(20, seed);
        std::vector<std::string> picked;
        while (Task* t = g.retrieve_task(TaskStatus::INIT)) {
            picked.push_back(t->task_id());
            t->set_status(TaskStatus::AVAILABLE);
        }
        return picked;
    };
    auto a = order(42);
    CHECK(a.size() == 20);
    CHECK(std::set<std::string>(a.begin(), a.end()).size() == 20);  // each task once
    CHECK(order(42) == a);                                          // same seed, same order
    CHECK(order(43) != a);                                          // another seed, another order
    std::vector<std::string> sorted;
    for (int i = 0; i < 20; ++i) sorted.push_back(std::to_string(i));
    CHECK(a != sorted);  // random, not file order

    SUBCASE("only tasks of the asked status") {
        TaskGroup g = make_group(3);
        CHECK(g.retrieve_task(TaskStatus::WAITING) == nullptr);
        g.get_task("2")->set_status(TaskStatus::AVAILABLE);
        for (int i = 0; i < 10; ++i) CHECK(g.retrieve_task(TaskStatus::AVAILABLE)->task_id() == "2");
    }
}

TEST_CASE("100,000 tasks: added, found, failed and reported in linear time (issue 11)") {
    // add_task and report_exception looked every task up among all the
    // others: with `tasks = 100000` the first task started after 23-28 s,
    // and SIGTERM (which fails every task not started) took 80-87 s.
    constexpr std::size_t n = 100000;
    TaskGroup g = make_group(n);
    CHECK(g.get_task("99999") != nullptr);
    for (std::size_t i = 1; i < n; ++i)
        g.report_exception(std::to_string(i), "start", "not started: the host received SIGTERM");
    CHECK(g.failed_count() == n - 1);
    // One record for the 99,999 alike failures.
    CHECK(g.failure("1") == g.failure("99999"));
    CHECK(g.failure("0") == nullptr);
    // By position, as loops over every task read it.
    CHECK(g.failure_at(0) == nullptr);
    CHECK(g.failure_at(1) == g.failure("1"));
    CHECK(g.failure_at(n - 1) == g.failure("99999"));
    CHECK(g.entry(n - 1)["stage"] == "start");
    CHECK(g.entry(0).count("stage") == 0);
    CHECK(g.result()["tasks"].size() == n);
}

TEST_CASE("write_result writes what write_json_file writes of result(), task by task") {
    namespace fs = std::filesystem;
    fs::path dir = fs::temp_directory_path() / ("fedflow-task-group-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    auto slurp = [](const fs::path& p) {
        std::ifstream in(p, std::ios::binary);
        return std::string(std::istreambuf_iterator<char>(in), {});
    };
    for (std::size_t n : {0, 1, 3, 8}) {
        CAPTURE(n);
        TaskGroup g = make_group(n);
        g.set_plugin("echo");
        g.set_round(2);
        if (n >= 1) {
            run_to_training(*g.get_task("0"));
            g.report_finish("0", {{"loss", 0.25}, {"text", "a \"quoted\"\nline"}, {"nested", {{"list", {1, 2}}}}});
        }
        if (n >= 2) g.report_exception("1", "start", "not started");
        // Tasks that never ran share their entries' text: alike ones, and
        // ones that differ in their failure or their retries.
        for (std::size_t i = 2; i < n; ++i) {
            const std::string id = std::to_string(i);
            if (i == 5) g.get_task(id)->estimates().load_retries = 1;
            if (i == 6) g.get_task(id)->stats().load_ms = 3;  // it ran a while
            g.report_exception_at(i, "start", i % 3 == 0 ? "other" : "not started");
        }
        results::write_json_file(dir / "a.json", g.result());
        g.write_result(dir / "b.json");
        CHECK(slurp(dir / "b.json") == slurp(dir / "a.json"));
        CHECK_FALSE(fs::exists(dir / "b.json.tmp"));
    }
    fs::remove_all(dir);
}
