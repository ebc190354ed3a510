#include "report/run_model.hpp"

#include "common/json.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <string_view>
#include <system_error>
#include <tuple>
#include <utility>

namespace fedflow::report {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

namespace {

std::optional<double> num(const json& j, const char* key) {
    auto it = j.find(key);
    if (it == j.end() || !it->is_number()) return std::nullopt;
    return it->get<double>();
}

int integer(const json& j, const char* key) {
    auto it = j.find(key);
    if (it == j.end() || !it->is_number_integer()) return 0;
    auto v = it->get<std::int64_t>();
    return v > 0 && v < 1000000 ? static_cast<int>(v) : 0;
}

// A compact text for a value of unknown shape (a "reason" may grow structure).
std::string text_of(const json& v) {
    if (v.is_string()) return v.get<std::string>();
    return v.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::optional<json> read_json_file(const fs::path& path, std::vector<std::string>& problems, const std::string& name) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return std::nullopt;
    std::string text{std::istreambuf_iterator<char>(in), {}};
    json j = jsonio::parse(text, false);
    if (j.is_discarded() || !j.is_object()) {
        problems.push_back(fmt::format("{} is not a JSON object{}", name, text.empty() ? " (empty)" : ""));
        return std::nullopt;
    }
    return j;
}

// A relative path without "..": run.json's "report" must stay inside the workdir.
bool safe_relative(const fs::path& p) {
    if (p.empty() || p.is_absolute()) return false;
    for (const auto& part : p)
        if (part == "..") return false;
    return true;
}

int round_of_path(const fs::path& dir) {
    if (dir.empty()) return 0;
    std::string first = dir.begin()->string();
    if (first.rfind("round-", 0) != 0 || first.size() == 6) return 0;
    int r = 0;
    for (char c : first.substr(6)) {
        if (c < '0' || c > '9' || r > 100000) return 0;
        r = r * 10 + (c - '0');
    }
    return r;
}

Outcome outcome(StageKind kind, const std::string& next) {
    if (next == "EXCEPTION") return Outcome::failed;
    if (next == "INTERRUPT") return Outcome::interrupted;
    switch (kind) {
    case StageKind::load: return next == "WAITING" ? Outcome::ok : Outcome::interrupted;
    case StageKind::train: return next == "FINISHED" || next == "EXITED" ? Outcome::ok : Outcome::interrupted;
    case StageKind::wait: return Outcome::ok;
    }
    return Outcome::ok;
}

}  // namespace

RunModel::RunModel(fs::path workdir) { run_.workdir = std::move(workdir); }

RunModel RunModel::read(const fs::path& workdir) {
    RunModel m(workdir);
    m.read_files_ = true;
    if (auto j = read_json_file(workdir / "run.json", m.run_.problems, "run.json")) m.run_.info = std::move(*j);
    else if (!fs::exists(workdir / "run.json")) m.run_.problems.push_back("run.json is missing");
    if (auto g = m.run_.info.find("groups"); g != m.run_.info.end() && g->is_array()) {
        for (const auto& e : *g) {
            if (!e.is_object() || string_at(e, "group").empty()) continue;
            m.add_group(string_at(e, "group"), integer(e, "round"), integer(e, "block"), integer(e, "index"),
                        string_at(e, "report"));
        }
    }
    m.set_info(std::move(m.run_.info));
    // Each group's report.json at its group_end, as the runner gives it to
    // its model: the tasks a group tells one by one are the first to start
    // in the journal, then those that never started in report.json's order,
    // and the rounds summarized (round_group_started) are those the live
    // model summarized, on both paths.
    m.read_events();
    m.read_files_ = false;
    // Groups that never ended (a killed run), or whose end the journal lost.
    for (const auto& [gi, rel] : m.unread_reports_) m.read_report(gi, workdir / rel, rel.string());
    m.unread_reports_.clear();
    return m;
}

void RunModel::set_info(json info) {
    // run.json's list of groups (add_group's) and the plan's text grow with
    // the run or the plan, and the page shows neither.
    info.erase("groups");
    info.erase("plan_text");
    run_.info = std::move(info);
}

void RunModel::add_group(const std::string& name, int round, int block, int index, const std::string& report) {
    std::size_t gi = group(name, round, report);
    Group& g = run_.groups[gi];
    if (index) g.index = index;
    if (block) g.block = block;
    fs::path rel = report;
    if (safe_relative(rel)) g.dir = rel.parent_path();
}

std::size_t RunModel::set_report(const std::string& name, int round, const json& head) {
    std::size_t gi = group(name, round, "");
    take_head(gi, head);
    return gi;
}

void RunModel::report_task(std::size_t gi, const std::string& id, const std::string& status,
                           const std::function<json()>& entry) {
    if (task(gi, id, !run_.groups[gi].summarized || status == "EXCEPTION") == no_task) count_untold(gi, status);
    else take_entry(gi, id, entry());
}

void RunModel::report_task(const std::string& name, int round, const std::string& id, const json& entry) {
    take_entry(group(name, round, ""), id, entry);
}

std::size_t RunModel::group(const std::string& name, int round, const std::string& report) {
    std::string key = fmt::format("{}\n{}", name, round);
    if (auto it = groups_.find(key); it != groups_.end()) return it->second;
    Group g;
    g.name = name;
    g.round = round;
    fs::path rel = report;
    if (!safe_relative(rel)) {
        rel = fs::path(name) / "report.json";
        if (round > 0) rel = fs::path(fmt::format("round-{:03}", round)) / rel;
    }
    bool readable = safe_relative(rel);  // not for a hostile name
    if (readable) g.dir = rel.parent_path();
    if (g.round == 0) g.round = round_of_path(g.dir);
    std::size_t gi = run_.groups.size();
    run_.groups.push_back(std::move(g));
    groups_.emplace(key, gi);
    tasks_.emplace_back();
    if (readable && read_files_) unread_reports_.emplace(gi, rel);
    return gi;
}

void RunModel::read_report(std::size_t gi, const fs::path& path, const std::string& name) {
    if (auto j = read_json_file(path, run_.problems, name)) take_report(gi, *j);
}

void RunModel::take_report(std::size_t gi, const json& report) {
    take_head(gi, report);
    auto tasks = report.find("tasks");
    if (tasks == report.end() || !tasks->is_object()) return;
    for (const auto& [id, entry] : tasks->items()) take_entry(gi, id, entry);
}

void RunModel::take_head(std::size_t gi, const json& head) {
    Group& g = run_.groups[gi];
    g.has_report = true;
    g.untold = g.untold_finished = g.untold_failed = 0;  // its entries follow
    g.plugin = string_at(head, "plugin");
    if (int index = integer(head, "index")) g.index = index;
}

void RunModel::take_entry(std::size_t gi, const std::string& id, const json& entry) {
    if (!entry.is_object()) return;
    std::size_t ti = task(gi, id, !run_.groups[gi].summarized || string_at(entry, "status") == "EXCEPTION");
    if (ti == no_task) {
        count_untold(gi, string_at(entry, "status"));
        return;
    }
    TaskInfo& t = run_.groups[gi].tasks[ti];
    // What the page shows of a result is its scalars: the rest (lists,
    // tensors as lists, nested dicts) is not kept for the whole run.
    // (Keys are appended, not looked up: a result may have a million.)
    t.entry = json::object();
    for (const auto& [k, v] : entry.items()) {
        if (k != "result" || !v.is_object()) {
            jsonio::append(t.entry, k, v);
            continue;
        }
        json& scalars = jsonio::append(t.entry, k, json::object());
        for (const auto& [rk, rv] : v.items())
            if (rv.is_number() || rv.is_string() || rv.is_boolean()) jsonio::append(scalars, rk, rv);
    }
    t.status = string_at(entry, "status");
    t.device = string_at(entry, "device");
    t.stage = string_at(entry, "stage");
    t.message = string_at(entry, "message");
    t.load_ms = num(entry, "load_ms");
    t.train_ms = num(entry, "train_ms");
    t.peak_memory = num(entry, "peak_memory");
    t.peak_gpu_memory = num(entry, "peak_gpu_memory");
}

void RunModel::count_untold(std::size_t gi, const std::string& status) {
    Group& g = run_.groups[gi];
    ++g.untold;
    g.untold_finished += status == "FINISHED" || status == "EXITED";
    g.untold_failed += status == "EXCEPTION";
}

std::size_t RunModel::tasks_told(const DetailRound& r) const {
    std::size_t n = 0;
    for (std::size_t gi : r.groups) n += run_.groups[gi].tasks.size();
    return n;
}

void RunModel::round_group_started(std::size_t gi) {
    const Group& g = run_.groups[gi];
    if (g.summarized) return;  // a --resume goes over the rounds of the run before again
    const int block = std::max(g.block, 1), round = g.round;
    for (auto* list : {&first_rounds_, &latest_rounds_})
        for (DetailRound& r : *list)
            if (r.block == block && r.round == round) {
                if (std::find(r.groups.begin(), r.groups.end(), gi) == r.groups.end()) r.groups.push_back(gi);
                return;
            }
    std::size_t first_tasks = 0;
    for (const DetailRound& r : first_rounds_) first_tasks += tasks_told(r);
    if (first_rounds_.size() < detail_rounds && first_tasks < detail_round_tasks) {
        first_rounds_.push_back({block, round, {gi}});
        return;
    }
    latest_rounds_.push_back({block, round, {gi}});
    // The newest round has just started; of the others, the latest that
    // hold fewer than detail_round_tasks tasks stay (at least one).
    auto held = [this] {
        std::size_t n = 0;
        for (std::size_t i = 0; i + 1 < latest_rounds_.size(); ++i) n += tasks_told(latest_rounds_[i]);
        return n;
    };
    while (latest_rounds_.size() > detail_rounds || (latest_rounds_.size() > 2 && held() > detail_round_tasks)) {
        for (std::size_t old : latest_rounds_.front().groups) summarize(old);
        latest_rounds_.erase(latest_rounds_.begin());
    }
}

void RunModel::summarize(std::size_t gi) {
    Group& g = run_.groups[gi];
    if (g.summarized) return;
    g.summarized = true;
    // Its failed tasks stay (while the run keeps fewer than the limit); the
    // others are counted, by the status report.json or their last event gave.
    std::vector<std::size_t> to(g.tasks.size(), no_task);  // a task's new index
    std::vector<TaskInfo> kept;
    for (std::size_t ti = 0; ti < g.tasks.size(); ++ti) {
        TaskInfo& t = g.tasks[ti];
        if (t.status == "EXCEPTION" && kept_failures_ < summarized_failure_limit) {
            ++kept_failures_;
            to[ti] = kept.size();
            kept.push_back(std::move(t));
        } else {
            count_untold(gi, t.status);
        }
    }
    g.tasks = std::move(kept);
    auto& index = tasks_[gi];
    index.clear();
    for (std::size_t ti = 0; ti < g.tasks.size(); ++ti) index.emplace(g.tasks[ti].id, ti);

    // The stages of the tasks it no longer tells are added up and go; the
    // others move up, and every open stage's index with them.
    std::vector<Stage>& stages = run_.stages;
    std::size_t first = 0;
    while (first < stages.size() && stages[first].group != gi) ++first;
    std::vector<std::size_t> at(stages.size() - first, no_task);  // a stage's new index
    std::size_t w = first;
    for (std::size_t i = first; i < stages.size(); ++i) {
        Stage& st = stages[i];
        if (st.group == gi) {
            if (to[st.task] == no_task) {
                Group::StageTotal& total = st.kind == StageKind::load   ? g.loads
                                           : st.kind == StageKind::wait ? g.waits
                                                                        : g.trains;
                ++total.count;
                total.ms += st.end_ms - st.start_ms;
                continue;
            }
            st.task = to[st.task];
        }
        at[i - first] = w;
        if (w != i) stages[w] = std::move(st);
        ++w;
    }
    stages.erase(stages.begin() + static_cast<std::ptrdiff_t>(w), stages.end());
    std::map<std::pair<std::size_t, std::size_t>, Track> retold;
    for (auto it = track_.lower_bound({gi, 0}); it != track_.end() && it->first.first == gi; it = track_.erase(it))
        if (to[it->first.second] != no_task) retold.emplace(std::make_pair(gi, to[it->first.second]), it->second);
    track_.merge(retold);
    for (auto& [key, track] : track_)
        if (track.open && *track.open >= first) {
            std::size_t i = at[*track.open - first];
            if (i == no_task) track.open.reset();
            else track.open = i;
        }
}

std::size_t RunModel::task(std::size_t gi, const std::string& id, bool admit) {
    auto& index = tasks_[gi];
    if (auto it = index.find(id); it != index.end()) return it->second;
    Group& g = run_.groups[gi];
    if (!admit || g.tasks.size() >= task_detail_limit) return no_task;
    if (g.summarized) {
        if (kept_failures_ >= summarized_failure_limit) return no_task;
        ++kept_failures_;
    }
    g.tasks.push_back(TaskInfo{});
    g.tasks.back().id = id;
    index.emplace(id, g.tasks.size() - 1);
    track_.emplace(std::make_pair(gi, g.tasks.size() - 1), Track{});
    return g.tasks.size() - 1;
}

// The time of an event on one axis for the whole journal: elapsed_ms
// restarts at every run_start (a --resume appends a new run), so each run's
// times are offset by how much later it started (wall clock), and never
// overlap the run before.
std::optional<double> RunModel::time_of(const json& e) {
    auto elapsed = num(e, "elapsed_ms");
    auto wall = parse_utc_ms(string_at(e, "time"));
    bool start = string_at(e, "event") == "run_start";
    if (!origin_ && wall && elapsed) origin_ = *wall - *elapsed;
    if (start && seen_start_) {
        offset_ = run_.end_ms;
        if (wall && origin_) offset_ = std::max(offset_, *wall - *origin_);
    }
    seen_start_ = seen_start_ || start;
    if (elapsed) return offset_ + *elapsed;
    if (wall && origin_) return std::max(*wall - *origin_, offset_);
    return std::nullopt;
}

void RunModel::read_events() {
    std::ifstream in(run_.workdir / "events.jsonl", std::ios::binary);
    if (!in) {
        run_.problems.push_back("events.jsonl is missing: no timeline");
        return;
    }
    std::string line;
    std::size_t bad = 0, number = 0, last_bad = 0;
    while (std::getline(in, line)) {
        ++number;
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        json e = json::parse(line, nullptr, false);
        if (e.is_discarded() || !e.is_object()) {
            ++bad;
            last_bad = number;
            continue;
        }
        add_event(e);
    }
    // A run in progress (or killed) may leave half a last line: not worth a word.
    if (bad > 1 || (bad == 1 && last_bad != number))
        run_.problems.push_back(fmt::format("events.jsonl: {} line(s) are not JSON objects and were skipped", bad));
}

void RunModel::add_event(const json& e) {
    if (!e.is_object()) return;
    auto t = time_of(e);
    if (!t) return;
    double now = *t;
    run_.end_ms = std::max(run_.end_ms, now);
    std::string type = string_at(e, "event");
    std::string group_name = string_at(e, "group");
    if (type == "run_end") run_.ended = true;
    if (type == "run_start") run_.ended = false;
    if (type == "round_end" && !string_at(e, "stopped_by").empty())
        stops_.push_back({integer(e, "block"), integer(e, "round"), string_at(e, "stopped_by")});
    if (group_name.empty()) return;
    if (type == "evicted" || type == "kept_exited") {
        // Between rounds: no stage of any group instance.
        if (run_.kept_ends.size() < kept_end_limit)
            run_.kept_ends.push_back({now, type == "evicted", group_name, string_at(e, "task"), string_at(e, "how")});
        else ++run_.untold_kept_ends;
        return;
    }
    // An event without "round" (some event types carry none) belongs to
    // the latest instance of its group that has started.
    std::size_t gi;
    if (auto latest = latest_.find(group_name); !e.contains("round") && latest != latest_.end()) gi = latest->second;
    else gi = group(group_name, integer(e, "round"), "");
    latest_[group_name] = gi;
    Group& g = run_.groups[gi];
    if (type == "group_start") {
        g.start_ms = now;
        g.end_ms.reset();
        if (int index = integer(e, "index")) g.index = index;
        if (int block = integer(e, "block")) g.block = block;
        if (g.round > 0) round_group_started(gi);
        return;
    }
    if (type == "group_end") {
        g.end_ms = now;
        if (auto it = unread_reports_.find(gi); read_files_ && it != unread_reports_.end()) {
            const fs::path rel = it->second;
            unread_reports_.erase(it);
            read_report(gi, run_.workdir / rel, rel.string());
        }
        return;
    }
    std::string id = string_at(e, "task");
    if (id.empty()) return;
    // A task starts with its first status line (AVAILABLE: its worker is
    // started); other lines (a "waiting" to load) only add to a task told.
    std::size_t ti = task(gi, id, type == "status" && !g.summarized);
    if (ti == no_task) return;  // counted from report.json when the group ends
    Track& track = track_[{gi, ti}];
    if (type == "status") status(gi, ti, track, e, now);
    // A reason belongs to the state the event enters (or to the one going on).
    if (auto r = e.find("reason"); r != e.end() && !r->is_null() && track.open)
        run_.stages[*track.open].reason = text_of(*r);
}

void RunModel::status(std::size_t gi, std::size_t ti, Track& track, const json& e, double now) {
    std::string s = string_at(e, "status");
    if (s.empty()) return;
    TaskInfo& t = run_.groups[gi].tasks[ti];
    bool from_report = !t.entry.empty();
    std::string device = string_at(e, "device");
    if (!from_report) {
        t.status = s == "EXITED" ? "FINISHED" : s;
        if (!device.empty()) t.device = device;
        if (auto v = num(e, "load_ms")) t.load_ms = v;
        if (auto v = num(e, "train_ms")) t.train_ms = v;
        if (s == "EXCEPTION") {
            t.stage = string_at(e, "stage");
            t.message = string_at(e, "message");
        }
    }
    if (track.open) {
        Stage& st = run_.stages[*track.open];
        st.end_ms = now;
        st.ended_by = s;
        st.detail = string_at(e, "message");
        st.outcome = outcome(st.kind, s);
        track.open.reset();
    }
    std::optional<StageKind> kind;
    if (s == "LOADING") kind = StageKind::load;
    else if (s == "WAITING") kind = StageKind::wait;
    else if (s == "TRAINING") kind = StageKind::train;
    if (!kind) return;
    Stage st;
    st.group = gi;
    st.task = ti;
    st.kind = *kind;
    st.start_ms = now;
    st.end_ms = now;
    if (*kind == StageKind::train) {
        st.lane = !device.empty() ? device : !t.device.empty() ? t.device : "cpu";
        st.attempt = ++track.trains;
    } else {
        st.lane = "cpu";
        st.attempt = *kind == StageKind::load ? ++track.loads : ++track.waits;
    }
    track.open = run_.stages.size();
    run_.stages.push_back(std::move(st));
}

Run RunModel::run() const {
    Run run = run_;
    // Stages still open run to the latest time the journal reached.
    for (const auto& [key, track] : track_) {
        if (!track.open) continue;
        Stage& st = run.stages[*track.open];
        st.end_ms = run.end_ms;
        st.outcome = Outcome::running;
    }
    // A task that report.json does not know yet and whose last event is
    // not final is still running (or its run was killed).
    for (auto& g : run.groups) {
        for (auto& t : g.tasks)
            if (t.status.empty()) t.status = "INIT";
        // A run.json of an older host does not say; one table, then.
        if (g.round > 0 && g.block == 0) g.block = 1;
    }

    auto find = [&run](int block, int round) -> Round& {
        for (auto& r : run.rounds)
            if (r.block == block && r.round == round) return r;
        run.rounds.push_back(Round{});
        run.rounds.back().block = block;
        run.rounds.back().round = round;
        return run.rounds.back();
    };
    if (auto list = run.info.find("rounds"); list != run.info.end() && list->is_array()) {
        for (const auto& e : *list) {
            int round = e.is_object() ? integer(e, "round") : 0;
            if (round == 0) continue;
            Round& r = find(std::max(integer(e, "block"), 1), round);
            r.wall_s = num(e, "wall_s");
            if (auto v = e.find("values"); v != e.end() && v->is_object())
                for (const auto& [k, x] : v->items())
                    if (x.is_number()) r.values.emplace_back(k, x.get<double>());
        }
    }
    for (std::size_t gi = 0; gi < run.groups.size(); ++gi) {
        const Group& g = run.groups[gi];
        if (g.round == 0) continue;
        Round& r = find(g.block, g.round);
        r.groups.push_back(gi);
        if (g.start_ms) r.start_ms = std::min(r.start_ms.value_or(*g.start_ms), *g.start_ms);
        if (auto end = g.end_ms ? g.end_ms : g.start_ms ? std::optional<double>(run.end_ms) : std::nullopt)
            r.end_ms = std::max(r.end_ms.value_or(*end), *end);
    }
    std::stable_sort(run.rounds.begin(), run.rounds.end(), [](const Round& a, const Round& b) {
        return std::tie(a.block, a.round) < std::tie(b.block, b.round);
    });
    // stop-when: an older host's round_end names no table: the table whose
    // last round it is.
    for (const Stop& stop : stops_)
        for (std::size_t i = 0; i < run.rounds.size(); ++i) {
            Round& r = run.rounds[i];
            bool last_of_block = i + 1 == run.rounds.size() || run.rounds[i + 1].block != r.block;
            if (r.round == stop.round && (stop.block ? r.block == stop.block : last_of_block)) r.stopped_by = stop.by;
        }
    return run;
}

Run read_run(const fs::path& workdir) { return RunModel::read(workdir).run(); }

std::optional<std::string> tail_lines(const fs::path& file, std::size_t max_lines) {
    constexpr std::streamoff window = 64 * 1024;
    std::ifstream in(file, std::ios::binary);
    if (!in) return std::nullopt;
    in.seekg(0, std::ios::end);
    std::streamoff size = in.tellg();
    if (size < 0) return std::nullopt;
    std::streamoff from = size > window ? size - window : 0;
    in.seekg(from);
    std::string text(static_cast<std::size_t>(size - from), '\0');
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    text.resize(static_cast<std::size_t>(in.gcount()));
    if (from > 0) {
        auto nl = text.find('\n');
        text.erase(0, nl == std::string::npos ? text.size() : nl + 1);
    }
    std::vector<std::string_view> lines;
    std::string_view rest = text;
    while (!rest.empty()) {
        auto nl = rest.find('\n');
        lines.push_back(rest.substr(0, nl));
        rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
    }
    while (!lines.empty() && lines.back().find_first_not_of(" \t\r") == std::string_view::npos) lines.pop_back();
    std::size_t first = lines.size() > max_lines ? lines.size() - max_lines : 0;
    std::string out;
    for (std::size_t i = first; i < lines.size(); ++i) {
        out.append(lines[i]);
        if (i + 1 < lines.size()) out += '\n';
    }
    return out;
}

std::string string_at(const json& j, const char* key) {
    auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::optional<double> parse_utc_ms(const std::string& s) {
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0, used = 0;
    if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &used) != 6)
        return std::nullopt;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return std::nullopt;
    double frac = 0;
    std::size_t i = static_cast<std::size_t>(used);
    if (i < s.size() && s[i] == '.') {
        double scale = 100;
        for (++i; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i, scale /= 10) frac += (s[i] - '0') * scale;
    }
    if (i >= s.size() || s[i] != 'Z') return std::nullopt;
    // Days from the civil date (H. Hinnant's algorithm).
    y -= mo <= 2;
    const int era = (y >= 0 ? y : y - 399) / 400;
    const int yoe = y - era * 400;
    const int doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    const double days = static_cast<double>(era) * 146097 + doe - 719468;
    return ((days * 24 + h) * 60 + mi) * 60000.0 + sec * 1000.0 + frac;
}

}  // namespace fedflow::report
