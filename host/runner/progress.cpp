#include "runner/progress.hpp"

#include "common/log.hpp"
#include "common/text.hpp"
#include "common/units.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <utility>

#include <sys/ioctl.h>
#include <unistd.h>

namespace fedflow {

using json = nlohmann::ordered_json;

std::optional<Progress> parse_progress(std::string_view text) {
    if (text == "auto") return ::isatty(STDERR_FILENO) ? Progress::tty : Progress::plain;
    if (text == "tty") return Progress::tty;
    if (text == "plain") return Progress::plain;
    if (text == "verbose") return Progress::verbose;
    if (text == "json") return Progress::json;
    if (text == "none") return Progress::none;
    return std::nullopt;
}

std::string describe_event(const json& e) {
    const std::string kind = e.value("event", "");
    std::string where = e.value("group", "");
    if (e.value("round", 0) != 0) where = fmt::format("round {} {}", e.value("round", 0), where);
    if (kind == "status") {
        std::string what = fmt::format("{}/{} {}", where, e.value("task", ""), e.value("status", ""));
        if (e.contains("device")) what += " on " + e["device"].get<std::string>();
        if (e.contains("message")) what += ": " + e["message"].get<std::string>();
        return what;
    }
    if (kind == "group_start") {
        int n = e.value("tasks", 0);
        return fmt::format("group {} ({} task{}) started", where, n, n == 1 ? "" : "s");
    }
    if (kind == "not_started")
        return fmt::format("{}: {} task(s) {}", where, e.value("count", std::size_t{0}), e.value("message", ""));
    if (kind == "group_end")
        return fmt::format("group {} ended: {} finished, {} failed", where, e.value("finished", 0),
                           e.value("failed", 0));
    if (kind == "round_end") {
        std::string what = fmt::format("round {} ended", e.value("round", 0));
        if (e.contains("values") && e["values"].is_object())
            for (const auto& [k, v] : e["values"].items())
                if (v.is_number()) what += fmt::format(", {} {:.4g}", k, v.get<double>());
        return what;
    }
    if (kind == "run_start") return fmt::format("run started in {}", e.value("workdir", ""));
    if (kind == "run_end") return fmt::format("run ended: {}", e.value("status", ""));
    return {};
}

namespace {

// Whole seconds: the frame is redrawn ten times a second.
std::string duration(double s) { return text::format_duration(std::chrono::seconds(std::llround(std::max(0.0, s)))); }

// Columns of UTF-8 text (every code point one column: the view writes no
// wide characters).
std::size_t columns(std::string_view s) {
    return static_cast<std::size_t>(std::count_if(s.begin(), s.end(), [](char c) { return (c & 0xC0) != 0x80; }));
}

std::string clip(std::string s, int width) {
    if (width <= 0 || columns(s) <= static_cast<std::size_t>(width)) return s;
    std::size_t cols = 0, i = 0;
    for (; i < s.size(); ++i) {
        if ((s[i] & 0xC0) != 0x80) {
            if (cols == static_cast<std::size_t>(width - 1)) break;
            ++cols;
        }
    }
    s.resize(i);
    return s + "…";
}

std::string bar(std::size_t done, std::size_t failed, std::size_t total, int width) {
    if (total == 0 || width <= 0) return std::string(static_cast<std::size_t>(std::max(width, 0)), ' ');
    auto cells = [&](std::size_t n) {
        return static_cast<int>(std::floor(static_cast<double>(n) * width / static_cast<double>(total)));
    };
    int ok = cells(done), bad = std::min(width - ok, cells(failed) + (failed > 0 && cells(failed) == 0));
    std::string out;
    for (int i = 0; i < ok; ++i) out += "█";
    for (int i = 0; i < bad; ++i) out += "▒";
    for (int i = ok + bad; i < width; ++i) out += "·";
    return out;
}

// "10 finished" or "9 finished, 1 failed".
std::string counts(const json& group_end) {
    auto finished = group_end.value("finished", std::size_t{0});
    auto failed = group_end.value("failed", std::size_t{0});
    return failed == 0 ? fmt::format("{} finished", finished) : fmt::format("{} finished, {} failed", finished, failed);
}

// The failures of a group as lines to show: each in full, but after three
// with the same stage and message the rest are counted, and told in one
// line when the group ends (after a SIGTERM, 100,000 tasks fail with "not
// started: the host received SIGTERM").
class FailureLines {
public:
    // The line for a task's EXCEPTION event, or empty when it is counted.
    std::string failed(const json& e) {
        auto& n = seen_[{e.value("stage", ""), e.value("message", "")}];
        return ++n <= shown ? describe_event(e) : std::string();
    }
    // At the group's end: "... and 99,997 more failed in start: not started: ...".
    std::vector<std::string> group_ended(const json& e) {
        std::vector<std::string> out;
        std::string where = e.value("group", "");
        if (e.value("round", 0) != 0) where = fmt::format("round {} {}", e.value("round", 0), where);
        for (const auto& [what, n] : seen_)
            if (n > shown)
                out.push_back(
                    fmt::format("{}: {} more task(s) failed in {}: {}", where, n - shown, what.first, what.second));
        seen_.clear();
        return out;
    }

private:
    static constexpr std::size_t shown = 3;
    std::map<std::pair<std::string, std::string>, std::size_t> seen_;
};

// Without a terminal (a log file, CI): a line per group, or per round in
// [[round]]s, with counts, and every failure in full; verbose adds a line
// for every state of every task (6 lines a task: 550 for 90 tasks).
class PlainView final : public ProgressView {
public:
    PlainView(std::FILE* out, bool verbose) : out_(out), verbose_(verbose) {}
    bool shows_failures() const override { return true; }
    void event(const json& e) override {
        const std::string kind = e.value("event", "");
        if (verbose_) {
            print(e, describe_event(e));
        } else if (kind == "run_start") {
            print(e, describe_event(e));
        } else if (kind == "status") {
            if (e.value("status", "") == "EXCEPTION") print(e, failures_.failed(e));
        } else if (kind == "group_end") {
            for (const auto& line : failures_.group_ended(e)) print(e, line);
            if (e.value("round", 0) == 0) print(e, fmt::format("group {} ended: {}", e.value("group", ""), counts(e)));
            else round_ += fmt::format("{}{} {}", round_.empty() ? "" : ", ", e.value("group", ""), counts(e));
        } else if (kind == "round_end") {
            std::string what = describe_event(e);  // "round 3 ended, loss 0.25"
            std::string head = fmt::format("round {} ended", e.value("round", 0));
            std::string values = what.rfind(head + ", ", 0) == 0 ? "; " + what.substr(head.size() + 2) : "";
            print(e, head + (round_.empty() ? "" : ": " + round_) + values);
            round_.clear();
        } else if (kind == "run_end") {
            if (!round_.empty()) print(e, "round ended early: " + round_);
            round_.clear();
            print(e, describe_event(e));
        }
    }

private:
    void print(const json& e, const std::string& what) {
        if (what.empty()) return;
        std::string line = fmt::format("fedflow: [{:8.2f}s] {}\n",
                                       static_cast<double>(e.value("elapsed_ms", 0)) / 1000.0,
                                       text::printable_lines(what));
        std::fwrite(line.data(), 1, line.size(), out_);
    }

    std::FILE* out_;
    bool verbose_;
    FailureLines failures_;
    std::string round_;  // the groups of the round going on, with their counts
};

class JsonView final : public ProgressView {
public:
    void event(const json& e) override {
        std::string text = e.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
        std::fwrite(text.data(), 1, text.size(), stdout);
        std::fflush(stdout);
    }
};

// The live view. A frame is built whole and written with one write, each
// line cleared as it is overwritten, so nothing flickers; log lines go
// above the frame (log::set_sink), so nothing scrolls it away.
class TtyView final : public ProgressView {
public:
    explicit TtyView(std::FILE* out) : out_(out), fd_(::fileno(out)) {
        log::set_sink([this](std::string_view line) { print_above(line); });
        write_all("\x1b[?25l");  // no cursor jumping around the frame
    }
    ~TtyView() override {
        log::set_sink(nullptr);
        finish();
    }
    void event(const json& e) override {
        model_.event(e);
        // Failures and the run's end stay in the scrollback above the frame.
        const std::string status = e.value("status", "");
        const std::string kind = e.value("event", "");
        std::vector<std::string> above;
        if (status == "EXCEPTION") above.push_back(failures_.failed(e));
        else if (kind == "group_end") above = failures_.group_ended(e);
        else if (kind == "run_end" || kind == "round_end") above.push_back(describe_event(e));
        bool printed = false;
        for (const auto& line : above) {
            if (line.empty()) continue;
            print_above(fmt::format("fedflow: {}\n", text::printable_lines(line)));
            printed = true;
        }
        if (!printed) redraw(false);
    }
    void status(const LiveStatus& s) override {
        status_ = s;
        redraw(false);
    }
    bool live() const override { return true; }
    bool shows_failures() const override { return true; }
    void finish() override {
        if (finished_) return;
        finished_ = true;
        redraw(true);
        write_all("\x1b[?25h");
    }

private:
    int width() const {
        winsize ws{};
        if (::ioctl(fd_, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
        return 100;
    }
    void write_all(std::string_view s) {
        std::fwrite(s.data(), 1, s.size(), out_);
        std::fflush(out_);
    }
    // Moves to the first line of the frame on screen.
    std::string rewind() const { return lines_ > 0 ? fmt::format("\r\x1b[{}A", lines_) : std::string("\r"); }
    void print_above(std::string_view line) {
        std::string text = rewind() + "\x1b[J" + std::string(line);
        if (text.back() != '\n') text += '\n';
        lines_ = 0;
        text += frame_text();
        write_all(text);
        last_ = std::chrono::steady_clock::now();
    }
    std::string frame_text() {
        double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
        std::vector<std::string> lines = model_.frame(status_, width() - 1, elapsed);
        std::string text;
        for (const auto& l : lines) text += "\x1b[2K" + l + "\n";
        lines_ = static_cast<int>(lines.size());
        return text;
    }
    void redraw(bool force) {
        auto now = std::chrono::steady_clock::now();
        if (!force && now - last_ < std::chrono::milliseconds(100)) return;
        last_ = now;
        std::string text = rewind();
        int before = lines_;
        text += frame_text();
        if (lines_ < before) text += "\x1b[J";  // a shorter frame: clear what is left below
        write_all(text);
    }

    std::FILE* out_;
    int fd_;
    FailureLines failures_;
    detail::TtyModel model_;
    LiveStatus status_;
    int lines_ = 0;  // lines of the frame now on screen
    bool finished_ = false;
    std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
    std::chrono::steady_clock::time_point last_{};
};

}  // namespace

std::unique_ptr<ProgressView> ProgressView::make(Progress mode, std::FILE* out) {
    switch (mode) {
    case Progress::plain: return std::make_unique<PlainView>(out, false);
    case Progress::verbose: return std::make_unique<PlainView>(out, true);
    case Progress::json: return std::make_unique<JsonView>();
    case Progress::tty: return std::make_unique<TtyView>(out);
    case Progress::none: break;
    }
    return nullptr;
}

namespace detail {

TtyModel::Group* TtyModel::find(const std::string& name, std::uint32_t round) {
    for (auto it = groups_.rbegin(); it != groups_.rend(); ++it)
        if (it->name == name && it->round == round) return &*it;
    return nullptr;
}

void TtyModel::event(const json& e) {
    const std::string kind = e.value("event", "");
    const std::string group = e.value("group", "");
    const auto round = e.value("round", std::uint32_t{0});
    if (kind == "run_start") {
        plan_ = e.value("plan", "");
        planned_ = e.value("planned_tasks", e.value("tasks", std::size_t{0}));
    } else if (kind == "round_start") {
        round_ = round;
        rounds_ = e.value("of", std::uint32_t{0});
    } else if (kind == "group_start") {
        Group g;
        g.name = group;
        g.round = round;
        g.tasks = e.value("tasks", std::size_t{0});
        g.finished = e.value("finished_before", std::size_t{0});
        done_ += g.finished;
        groups_.push_back(g);
        // The frame draws the last `drawn` groups: older ones that ended are
        // no longer needed (hundreds of rounds must not grow the model).
        while (groups_.size() > drawn && groups_.front().ended) groups_.pop_front();
    } else if (kind == "group_end") {
        if (Group* g = find(group, round)) g->ended = true;
    } else if (kind == "not_started") {
        // The tasks still in INIT when the run stopped, all at once.
        if (Group* g = find(group, round)) {
            const auto n = e.value("count", std::size_t{0});
            g->failed += n;
            done_ += n;
        }
    } else if (kind == "run_end") {
        ended_ = e.value("status", "ended");
    } else if (kind == "status") {
        Group* g = find(group, round);
        if (g == nullptr) return;
        const auto key = std::make_pair(fmt::format("{}#{}", group, round), e.value("task", ""));
        std::string& last = last_[key];
        auto count = [&](const std::string& s) -> std::size_t* {
            if (s == "AVAILABLE" || s == "LOADING") return &g->loading;
            if (s == "WAITING") return &g->waiting;
            if (s == "TRAINING") return &g->training;
            if (s == "INTERRUPT") return &g->interrupted;
            return nullptr;
        };
        const std::string now = e.value("status", "");
        if (std::size_t* c = count(last); c != nullptr && *c > 0) --*c;
        if (std::size_t* c = count(now)) ++*c;
        if (now == "FINISHED") {
            ++g->finished;
            ++done_;
        } else if (now == "EXCEPTION") {
            ++g->failed;
            ++done_;
        }
        // An ended task says nothing more in this group: follow only the
        // others, so that the model holds the running tasks, not the run's.
        if (now == "FINISHED" || now == "EXCEPTION") last_.erase(key);
        else last = now;
    }
}

std::vector<std::string> TtyModel::frame(const LiveStatus& status, int width, double elapsed_s) const {
    std::vector<std::string> out;
    // Header: the plan, elapsed, rounds, and the time left at the pace so far.
    std::string head = fmt::format("fedflow  {}  {}", text::printable(plan_.substr(plan_.rfind('/') + 1)),
                                   duration(elapsed_s));
    if (rounds_ > 0) head += fmt::format("  round {}/{}", round_, rounds_);
    if (!ended_.empty()) {
        head += "  " + ended_;
    } else if (done_ > 0 && planned_ > done_) {
        head += fmt::format("  ~{} left",
                            duration(elapsed_s / static_cast<double>(done_) * static_cast<double>(planned_ - done_)));
    }
    if (planned_ > 0) head += fmt::format("  {}/{} tasks", done_, planned_);
    out.push_back(clip(head, width));

    // A line per group: the last few, the running one last.
    std::size_t first = groups_.size() > drawn ? groups_.size() - drawn : 0;
    for (std::size_t i = first; i < groups_.size(); ++i) {
        const Group& g = groups_[i];
        std::string name = g.round != 0 ? fmt::format("{} r{}", g.name, g.round) : g.name;
        std::string counts = fmt::format("{:>4}/{:<4}", g.finished + g.failed, g.tasks);
        std::string parts;
        auto add = [&](std::size_t n, const char* what) {
            if (n > 0) parts += fmt::format("{}{} {}", parts.empty() ? "" : " · ", n, what);
        };
        add(g.training, "training");
        add(g.waiting, "waiting");
        add(g.loading, "loading");
        add(g.interrupted, "out of memory");
        add(g.failed, "failed");
        if (g.ended && parts.empty()) parts = "done";
        out.push_back(clip(fmt::format("  {:<16} [{}] {}  {}", clip(name, 16), bar(g.finished, g.failed, g.tasks, 24),
                                       counts, parts),
                           width));
    }

    // A line per device: in use on the machine, and held by Fedflow's tasks.
    for (const auto& d : status.devices) {
        out.push_back(clip(fmt::format("  {:<8} {:>10} / {:<10} in use   {:>10} reserved by {} task{}", d.name,
                                       text::format_size(d.used), text::format_size(d.total),
                                       text::format_size(d.reserved), d.tasks, d.tasks == 1 ? "" : "s"),
                           width));
    }

    // The tasks running now, longest first.
    std::vector<LiveStatus::Running> running = status.running;
    std::stable_sort(running.begin(), running.end(),
                     [](const auto& a, const auto& b) { return a.seconds > b.seconds; });
    std::string line = "  running:";
    std::size_t shown = 0;
    for (const auto& r : running) {
        std::string item = fmt::format(" {} {}{} {}", r.task, r.stage, r.device.empty() ? "" : " " + r.device,
                                       duration(r.seconds));
        if (columns(line) + columns(item) + 12 > static_cast<std::size_t>(std::max(width, 40))) break;
        line += item;
        ++shown;
    }
    if (running.empty()) line += " none";
    else if (shown < running.size()) line += fmt::format(" (+{} more)", running.size() - shown);
    out.push_back(clip(line, width));
    return out;
}

}  // namespace detail
}  // namespace fedflow
