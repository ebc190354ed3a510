// run_model.hpp: what report.html shows, read from a run's own files
// (run.json, events.jsonl, each group's report.json) into plain structs.
//
// Reading never throws on the content: a run may still be running, have been
// killed, or come from a newer host. A missing or unreadable file, a
// truncated last line of events.jsonl, an unknown event or an extra key is
// skipped (and, where a person should know, listed in Run::problems).
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace fedflow::report {

// How a stage ended. interrupted: out of memory, and the stage was retried
// (the task went to INTERRUPT, or straight back to WAITING or AVAILABLE).
enum class Outcome { ok, failed, interrupted, running };

enum class StageKind { load, wait, train };

// One stretch of a task's life between two status events: LOADING, WAITING or
// TRAINING until the task's next status.
struct Stage {
    std::size_t group = 0;  // index into Run::groups
    std::size_t task = 0;   // index into Group::tasks
    StageKind kind = StageKind::load;
    std::string lane;     // "cpu" for loads and waits; the device for a train
    double start_ms = 0;  // since the run started (first run_start)
    double end_ms = 0;    // == Run::end_ms while open
    Outcome outcome = Outcome::running;
    std::string ended_by;  // the status that ended it; empty while open
    std::string detail;    // the ending event's message
    std::string reason;    // the last "reason" given while it ran (why a task waits)
    int attempt = 1;       // 1 + earlier stages of this kind of the task
};

struct TaskInfo {
    std::string id;
    nlohmann::ordered_json entry;  // its object in report.json (empty when absent)
    // From report.json when present, else from the last events.
    std::string status;
    std::string device;
    std::string stage;  // of a failure
    std::string message;
    std::optional<double> load_ms, train_ms;
    std::optional<double> peak_memory, peak_gpu_memory;
};

struct Group {
    std::string name;           // as in events.jsonl and run.json
    int index = 0;              // 1-based plan order; 0 when unknown
    int round = 0;              // 0 outside rounds (a "round" key on its events, or round-NNN/ in its path)
    int block = 0;              // its [[round]] table, 1-based (run.json's or group_start's "block"); 0 outside rounds
    std::filesystem::path dir;  // its folder, relative to the workdir
    std::string plugin;
    bool has_report = false;  // report.json was read
    // In the order they started (their first status line in the journal),
    // then those that never started in report.json's order.
    std::vector<TaskInfo> tasks;
    // The tasks after the first task_detail_limit of that order (a group of
    // 100,000), and those a summarized group no longer tells: counted from
    // report.json (or their last events), not kept one by one, nor drawn.
    std::size_t untold = 0, untold_finished = 0, untold_failed = 0;
    std::optional<double> start_ms, end_ms;
    // A group of a round between the first and the latest rounds the page
    // tells in full (detail_rounds): it keeps its failed tasks (up to
    // summarized_failure_limit in the run) and counts the others (untold);
    // the stages of those it no longer tells are only added up here.
    bool summarized = false;
    struct StageTotal {
        std::size_t count = 0;
        double ms = 0;
    };
    StageTotal loads, waits, trains;  // stages not kept, by kind
};

// One round of a [[round]] table: what run.json's "rounds" says of it (the
// scalars its last group returned, averaged over its tasks), and its groups.
struct Round {
    int block = 1;  // the [[round]] table, 1-based
    int round = 0;
    std::optional<double> wall_s;
    std::vector<std::pair<std::string, double>> values;  // in run.json's order; null values left out
    std::vector<std::size_t> groups;                     // indices into Run::groups, in run order
    std::optional<double> start_ms, end_ms;              // from its groups' start and end
    std::string stopped_by;  // "group/task" that ended the loop after this round (stop-when)
};

// A kept client's worker that ended between rounds (keep-loaded): ended by
// the scheduler to make room ("evicted"), or exited on its own ("kept_exited").
struct KeptEnd {
    double ms = 0;  // since the run started
    bool evicted = true;
    std::string group, task;
    std::string how;  // kept_exited: how it ended ("killed by SIGKILL")
};

struct Run {
    std::filesystem::path workdir;
    nlohmann::ordered_json info = nlohmann::ordered_json::object();  // run.json
    std::vector<Group> groups;
    std::vector<Stage> stages;  // in the order they started
    std::vector<Round> rounds;  // by block, then round
    // In journal order; the first kept_end_limit told one by one, the
    // others only counted (a long run may evict thousands of times).
    std::vector<KeptEnd> kept_ends;
    std::size_t untold_kept_ends = 0;
    double end_ms = 0;   // the latest time the journal reached
    bool ended = false;  // a run_end event was read
    std::vector<std::string> problems;
};

// How many tasks of a group the page tells one by one (a table row, a
// timeline row, their stages); the others are only counted (Group::untold).
// A page of 100,000 rows would take hundreds of MB to build, and be of no
// use in a browser; report.json keeps every task.
inline constexpr std::size_t task_detail_limit = 2000;
inline constexpr std::size_t kept_end_limit = 5000;

// What a run of many rounds holds in detail, however long it runs (a run of
// 1000 clients over 500 rounds has 500,000 task instances: kept one by one
// they made gigabytes of host memory and a page no browser opens). The first
// detail_rounds rounds of the run and the latest detail_rounds (the one
// running among them) are told in full; each end holds fewer rounds once its
// rounds but the newest hold detail_round_tasks tasks (always at least one
// round). The rounds between are summarized (Group::summarized) as each
// leaves the latest ones: their failed tasks stay, up to
// summarized_failure_limit in the run, the others are counted. A run of up
// to 2 * detail_rounds rounds of small groups is told whole.
inline constexpr std::size_t detail_rounds = 10;
inline constexpr std::size_t detail_round_tasks = 2000;  // a group's task_detail_limit
inline constexpr std::size_t summarized_failure_limit = 2000;

// A run's model, kept up to date one event at a time: the runner feeds it
// each journal line as it writes it, so the page can be drawn during a run
// without reading events.jsonl again; read() builds it from the files (a
// re-render, or --resume). Adding an event costs O(log n) of what the model
// holds, and the start of a round that summarizes an older one O(n); run()
// copies the model, O(n). n is bounded however long the run (detail_rounds).
class RunModel {
public:
    explicit RunModel(std::filesystem::path workdir);
    // Everything report.html needs from the run's files in workdir. Never
    // throws for what the files hold; only std::bad_alloc can escape.
    static RunModel read(const std::filesystem::path& workdir);

    // run.json as it is now (the header's facts, the devices, "rounds");
    // its "groups" and "plan_text" are not kept (add_group tells the groups).
    void set_info(nlohmann::ordered_json info);
    // A group instance, as in run.json's "groups": its [[round]] table
    // (block, 0 outside rounds), its plan index and where its report.json
    // is (relative to the workdir; empty: <round-NNN/>name/report.json).
    void add_group(const std::string& name, int round, int block, int index, const std::string& report);
    // One line of events.jsonl, in the journal's order.
    void add_event(const nlohmann::ordered_json& event);
    // A group's report.json as it was written: its keys but "tasks", then
    // each task's entry (report_task), so that the report of 100,000 tasks
    // is never one JSON tree.
    // set_report returns the group's handle for the second report_task.
    std::size_t set_report(const std::string& name, int round, const nlohmann::ordered_json& head);
    void report_task(const std::string& name, int round, const std::string& id, const nlohmann::ordered_json& entry);
    // The same with the entry made only for a task the page tells one by
    // one (task(): the first task_detail_limit); the others are only counted by
    // status, so their entries are never built (a group of 100,000).
    void report_task(std::size_t group, const std::string& id, const std::string& status,
                     const std::function<nlohmann::ordered_json()>& entry);

    // The run as the page draws it, now: stages still open end at the
    // latest time the journal reached, rounds get their groups and spans.
    Run run() const;

private:
    struct Track {
        std::optional<std::size_t> open;  // index into run_.stages
        int loads = 0, waits = 0, trains = 0;
    };
    struct Stop {
        int block = 0;  // 0: not said (a journal of an older host)
        int round = 0;
        std::string by;
    };
    // A round told in full: its [[round]] table and number, its groups.
    struct DetailRound {
        int block = 0, round = 0;
        std::vector<std::size_t> groups;
    };

    std::size_t group(const std::string& name, int round, const std::string& report);
    void read_report(std::size_t gi, const std::filesystem::path& path, const std::string& name);
    void take_report(std::size_t gi, const nlohmann::ordered_json& report);
    void take_head(std::size_t gi, const nlohmann::ordered_json& head);
    void take_entry(std::size_t gi, const std::string& id, const nlohmann::ordered_json& entry);
    void count_untold(std::size_t gi, const std::string& status);
    // A group instance of a round started (group_start): a round not seen
    // before joins the first rounds or the latest ones, and the oldest of the
    // latest beyond the bound is summarized.
    void round_group_started(std::size_t gi);
    std::size_t tasks_told(const DetailRound& r) const;
    void summarize(std::size_t gi);
    // The index of the group's task with that id; one it does not know yet
    // is added at the end when admit is true and the group tells fewer than
    // task_detail_limit tasks, else no_task. This is the one rule for which
    // tasks a page tells: admitted as they start (their first status line,
    // in journal order), then, with the group's report, those that never
    // started in report.json's order. The live model and read() both feed
    // the journal before the reports, so both pick the same tasks.
    static constexpr std::size_t no_task = static_cast<std::size_t>(-1);
    std::size_t task(std::size_t gi, const std::string& id, bool admit);
    std::optional<double> time_of(const nlohmann::ordered_json& e);
    void read_events();
    void status(std::size_t gi, std::size_t ti, Track& track, const nlohmann::ordered_json& e, double now);

    Run run_;
    bool read_files_ = false;  // read(): a group's report.json is read at its group_end
    // Those reports not read yet: the group -> its report.json relative to
    // the workdir. read() reads each at its group's group_end, as the runner
    // gives it to its model, and those of groups that never ended last.
    std::map<std::size_t, std::filesystem::path> unread_reports_;
    std::map<std::string, std::size_t> groups_;
    std::vector<std::map<std::string, std::size_t>> tasks_;
    std::map<std::pair<std::size_t, std::size_t>, Track> track_;
    std::vector<Stop> stops_;                    // round_end events with a stopped_by
    std::map<std::string, std::size_t> latest_;  // group name -> its instance seen last in the journal
    std::vector<DetailRound> first_rounds_;      // the first rounds of the run, told in full
    std::vector<DetailRound> latest_rounds_;     // the latest rounds, oldest first, told in full
    std::size_t kept_failures_ = 0;              // failed tasks summarized groups still tell
    std::optional<double> origin_;
    double offset_ = 0;
    bool seen_start_ = false;
};

// RunModel::read(workdir).run().
Run read_run(const std::filesystem::path& workdir);

// The last max_lines lines of a text file (at most the last 64 KiB of it);
// std::nullopt when it cannot be opened.
std::optional<std::string> tail_lines(const std::filesystem::path& file, std::size_t max_lines);

// The string at key of a JSON object; empty when there is none or it is not
// a string (the run's files are read as they are).
std::string string_at(const nlohmann::ordered_json& j, const char* key);

// Milliseconds since the epoch of an ISO 8601 UTC time as the journal writes
// it ("2026-11-28T00:29:40.514Z", fraction optional); nullopt otherwise.
std::optional<double> parse_utc_ms(const std::string& text);

}  // namespace fedflow::report
