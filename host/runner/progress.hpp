// progress.hpp: what a person sees while a run goes (--progress):
//   plain  on stderr, a line per group (per round in [[round]]s) with its
//          counts, and every failure in full (the default without a terminal)
//   verbose  plain, and a line for every state change of every task (also
//          what plain shows with --log-level debug)
//   json   every journal line on stdout (the same as events.jsonl)
//   tty    a live view on the terminal, redrawn in place: a line per group
//          with a bar and counts by status, a line per device with memory
//          in use and reserved, the tasks running now, elapsed time and an
//          estimate of the time left. The host's log lines are printed
//          above it, so the log never scrolls away.
//   none   nothing
// `auto` is tty when stderr is a terminal, else plain.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fedflow {

enum class Progress { none, plain, verbose, json, tty };

// "auto", "tty", "plain", "verbose", "json", "none"; nullopt when unknown. `auto`
// looks at whether stderr is a terminal.
std::optional<Progress> parse_progress(std::string_view text);

// What the runner knows that the journal's events do not say.
struct LiveStatus {
    struct Device {
        std::string name;        // "RAM", "cuda:0"
        std::uint64_t used = 0;  // in use on the machine, by anyone
        std::uint64_t total = 0;
        std::uint64_t reserved = 0;  // held by Fedflow's tasks (the scheduler's ledger)
        int tasks = 0;               // Fedflow's tasks on it now
    };
    struct Running {
        std::string task;   // "clients/3"
        std::string stage;  // load, wait, train
        std::string device;
        double seconds = 0;  // in this stage so far
    };
    std::vector<Device> devices;
    std::vector<Running> running;
};

class ProgressView {
public:
    // stdout for json; out (stderr) for the others. nullptr for none.
    static std::unique_ptr<ProgressView> make(Progress mode, std::FILE* out = stderr);
    virtual ~ProgressView() = default;

    // Every journal line, as written to events.jsonl.
    virtual void event(const nlohmann::ordered_json& e) = 0;
    // The runner's view of the machine; only the tty view uses it.
    virtual void status(const LiveStatus&) {}
    // True when the view wants status() a few times a second.
    virtual bool live() const { return false; }
    // True when the view shows every failure itself (plain, verbose, tty):
    // the log then need not say it again.
    virtual bool shows_failures() const { return false; }
    // The run is over: leave the last frame on the screen.
    virtual void finish() {}
};

// One line of the plain view for a journal event; empty for events it does
// not show. (Shared by plain and by the tty view's log of failures.)
std::string describe_event(const nlohmann::ordered_json& e);

namespace detail {

// The tty view's model: counts per group from the events, and the frame
// drawn from them (separate from the terminal, for tests).
class TtyModel {
public:
    void event(const nlohmann::ordered_json& e);
    // The lines of the frame, each at most width columns, `elapsed_s`
    // seconds into the run.
    std::vector<std::string> frame(const LiveStatus& status, int width, double elapsed_s) const;
    // What the model holds: the groups it may draw, and the tasks whose
    // last status it follows. Both stay bounded however long the run (the
    // last few groups; the tasks that have not ended).
    std::size_t groups_held() const noexcept { return groups_.size(); }
    std::size_t tasks_followed() const noexcept { return last_.size(); }

private:
    struct Group {
        std::string name;
        std::uint32_t round = 0;
        std::size_t tasks = 0;
        std::size_t finished = 0, failed = 0, loading = 0, waiting = 0, training = 0, interrupted = 0;
        bool ended = false;
    };
    static constexpr std::size_t drawn = 4;  // groups in a frame: the last few
    Group* find(const std::string& name, std::uint32_t round);
    std::string plan_;
    std::deque<Group> groups_;  // in the order they started; ended ones beyond the last few are dropped
    std::size_t planned_ = 0;   // task runs the plan asks for (rounds counted)
    std::size_t done_ = 0;      // ended, finished or failed
    std::uint32_t round_ = 0, rounds_ = 0;
    std::string ended_;  // the run's status once it ended
    // (group/round, task) -> status, of the tasks that have not ended
    std::map<std::pair<std::string, std::string>, std::string> last_;
};

}  // namespace detail

}  // namespace fedflow
