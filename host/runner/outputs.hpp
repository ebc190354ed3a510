// outputs.hpp: what a run tells the world besides its results: run.json,
// rounds.csv, report.html and the [notify] messages.
//
// Their cost does not grow with the run: the page's model is kept in memory
// and updated from each journal line as it is written (events.jsonl is not
// read again during a run), rounds.csv gets one line appended per round, and
// run.json and report.html are rewritten at most once per period (and at
// once at the end of the run), each through a temporary file and a rename,
// so a killed run leaves a consistent run.json (its last state, "status":
// "running").
#pragma once

#include "notify/notify.hpp"
#include "plan/plan.hpp"
#include "report/run_model.hpp"
#include "runner/task_group.hpp"
#include "sched/config.hpp"
#include "sched/resources.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace fedflow {

// One round of a [[round]] table: a line of rounds.csv and an entry of
// run.json's "rounds".
struct RoundRow {
    std::size_t block = 1;  // the [[round]] table, 1-based
    std::uint32_t round = 0;
    double wall_s = 0;
    nlohmann::ordered_json values;  // the scalars the round's last group returned, averaged over its tasks
};

class Outputs {
public:
    using Clock = std::chrono::steady_clock;
    struct Options {
        // run.json and report.html are rewritten at most once per period,
        // or once per 20 times what the last rewrite took if that is longer
        // (so that rewriting costs at most 5% of a run, however large).
        std::chrono::milliseconds period{5000};
        std::function<Clock::time_point()> now = [] { return Clock::now(); };
        // Writes one of the run's own files with write; the runner's stops
        // the run on a full disk and frees its reserve for the last writes
        // (false: the file could not be written). Any other error throws.
        std::function<bool(const std::filesystem::path&, const std::function<void()>&)> write_own =
            [](const std::filesystem::path&, const std::function<void()>& write) {
                write();
                return true;
            };
    };

    // The outputs of a run of plan in workdir. resume: the workdir holds an
    // earlier run, whose files the page's model starts from.
    Outputs(const plan::Plan& plan, std::filesystem::path workdir, bool resume, Options options);

    // Writes run.json at once, "status": "running", with the run's facts: the
    // plan, this host, the seed, the start time, the machine's devices.
    void start(std::uint64_t seed, const std::string& started, const sched::Snapshot& machine,
               const sched::Limits& limits);
    // Every line of events.jsonl, as the journal writes it.
    void event(const nlohmann::ordered_json& line);
    // A group instance starts (block: its [[round]] table, 0 outside rounds).
    void group_started(const TaskGroup& group, std::size_t block);
    // It ended and wrote its report.json (TaskGroup::write_result): the page
    // takes the report task by task; notifies [notify] on = "group".
    // interrupted: the run is stopping, so run.json and the page wait for
    // finish (on a full disk the reserve is kept for that last write).
    void group_ended(const TaskGroup& group, bool interrupted);
    // A round ended: its line is appended to rounds.csv.
    void round_ended(RoundRow row);

    // When run.json and report.html are next due to be rewritten; nullopt
    // when nothing changed since they were. The runner wakes up for it.
    std::optional<Clock::time_point> next_write() const;
    // Rewrites them if they are due.
    void write_if_due();
    // The run ended (its run_end event is written): run.json and report.html
    // now, and the run's notification. status: finished, failed,
    // interrupted or error; reason: why it stopped early, or empty.
    void finish(const std::string& status, int exit_code, const std::string& reason = {});

private:
    void write(const std::string& status, std::optional<int> exit_code, const std::string& reason = {});
    void write_page();
    void rewrite_rounds_csv();
    std::string csv_line(const RoundRow& row) const;

    const plan::Plan& plan_;
    std::filesystem::path workdir_;
    Options options_;
    std::optional<notify::Notifier> notifier_;
    report::RunModel model_;
    nlohmann::ordered_json run_;                       // run.json
    std::map<const TaskGroup*, std::size_t> entries_;  // a group's index in run_["groups"]
    std::vector<RoundRow> rows_;
    std::vector<std::string> columns_;       // rounds.csv's value columns, in the order first seen
    bool csv_written_ = false;               // rounds.csv has this run's header
    std::size_t finished_ = 0, failed_ = 0;  // tasks, over every group that ended
    bool dirty_ = false;                     // something changed since run.json and report.html were written
    Clock::time_point written_at_{};
    Clock::duration write_cost_{};
};

}  // namespace fedflow
