#include "runner/outputs.hpp"

#include "common/clock.hpp"
#include "common/log.hpp"
#include "report/report_html.hpp"
#include "runner/results.hpp"

#include <fedflow/abi.h>

#include <fmt/core.h>

#include <algorithm>
#include <cerrno>
#include <system_error>

#include <fcntl.h>
#include <unistd.h>

#ifndef FEDFLOW_VERSION
#define FEDFLOW_VERSION "unknown"
#endif

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

namespace fedflow {

namespace {

std::string csv_quote(const std::string& s) {
    if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
    std::string out = "\"";
    for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
    return out + "\"";
}

// Appends text to path with one write(2), so a line is never half there
// after a kill (the whole file is rewritten on --resume anyway).
void append_line(const fs::path& path, const std::string& text) {
    int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0) throw std::system_error(errno, std::generic_category(), "open " + path.string());
    ssize_t n = ::write(fd, text.data(), text.size());
    int err = errno;
    ::close(fd);
    if (n != static_cast<ssize_t>(text.size()))
        throw std::system_error(n < 0 ? err : EIO, std::generic_category(), "append to " + path.string());
}

// The page's model at the start: a resumed run's starts from what the run
// before it left (a workdir whose host was killed before its journal began
// starts afresh, so there may be nothing).
report::RunModel first_model(const fs::path& workdir, bool resume) {
    std::error_code ec;
    if (resume && fs::exists(workdir / "events.jsonl", ec)) return report::RunModel::read(workdir);
    return report::RunModel(workdir);
}

}  // namespace

Outputs::Outputs(const plan::Plan& plan, fs::path workdir, bool resume, Options options)
    : plan_(plan), workdir_(std::move(workdir)), options_(std::move(options)), model_(first_model(workdir_, resume)) {
    if (plan_.notify) notifier_.emplace(*plan_.notify, workdir_);
}

void Outputs::start(std::uint64_t seed, const std::string& started, const sched::Snapshot& machine,
                    const sched::Limits& limits) {
    json cpu;
    cpu["name"] = "cpu";
    cpu["cpus"] = ::sysconf(_SC_NPROCESSORS_ONLN);
    cpu["memory"] = machine.ram_total;
    json devices = json::array({cpu});
    for (const auto& g : machine.gpus) {
        bool used = limits.use_gpus && (limits.gpus.empty() || std::find(limits.gpus.begin(), limits.gpus.end(),
                                                                         g.index) != limits.gpus.end());
        devices.push_back({{"name", g.device()},
                           {"model", g.name},
                           {"pci_bus_id", g.pci_bus_id},
                           {"uuid", g.uuid},
                           {"memory", g.total},
                           {"used", used}});
    }
    run_ = json::object();
    run_["fedflow_version"] = FEDFLOW_VERSION;
    run_["plugin_abi_version"] = FEDFLOW_ABI_VERSION;
    run_["plan"] = plan_.file.string();
    run_["plan_digest"] = plan_.digest;
    run_["plan_text"] = plan_.text;
    run_["workdir"] = workdir_.string();
    run_["host_pid"] = ::getpid();
    run_["seed"] = seed;
    run_["started"] = started;
    run_["ended"] = nullptr;
    run_["status"] = "running";
    run_["exit_code"] = nullptr;
    run_["devices"] = std::move(devices);
    run_["groups"] = json::array();
    if (!plan_.rounds.empty()) run_["rounds"] = json::array();
    write("running", std::nullopt);
}

void Outputs::event(const json& line) {
    model_.add_event(line);
    dirty_ = true;
}

void Outputs::group_started(const TaskGroup& g, std::size_t block) {
    json entry{{"index", g.index()}, {"group", g.group_name()}};
    if (g.round() != 0) entry["round"] = g.round();
    if (block != 0) entry["block"] = block;
    std::string report = fs::relative(g.workdir() / "report.json", workdir_).string();
    entry["report"] = report;
    entry["tasks"] = g.tasks().size();
    entry["finished"] = g.count(TaskStatus::FINISHED) + g.count(TaskStatus::EXITED);
    entry["failed"] = g.failed_count();
    entries_[&g] = run_["groups"].size();
    run_["groups"].push_back(std::move(entry));
    model_.add_group(g.group_name(), static_cast<int>(g.round()), static_cast<int>(block), static_cast<int>(g.index()),
                     report);
    dirty_ = true;
}

void Outputs::group_ended(const TaskGroup& g, bool interrupted) {
    const std::size_t finished = g.count(TaskStatus::FINISHED) + g.count(TaskStatus::EXITED);
    if (auto it = entries_.find(&g); it != entries_.end()) {
        json& entry = run_["groups"][it->second];
        entry["finished"] = finished;
        entry["failed"] = g.failed_count();
        entries_.erase(it);
    }
    finished_ += finished;
    failed_ += g.failed_count();
    const int round = static_cast<int>(g.round());
    const std::size_t handle = model_.set_report(g.group_name(), round, g.head());
    for (std::size_t i = 0; i < g.tasks().size(); ++i)
        model_.report_task(handle, g.tasks()[i]->task_id(), g.entry_status(i), [&] { return g.entry(i); });
    dirty_ = true;
    if (!interrupted) write_if_due();

    if (!notifier_ || !notifier_->wants("group")) return;
    notify::Event e;
    e.kind = "group";
    e.name = g.round() != 0 ? fmt::format("{} (round {})", g.group_name(), g.round()) : g.group_name();
    e.status = interrupted ? "interrupted" : g.failed_count() > 0 ? "failed" : "finished";
    e.report = g.workdir() / "report.json";
    e.summary = fmt::format("Group {}: {} of {} task(s) finished, {} failed.", e.name, finished, g.tasks().size(),
                            g.failed_count());
    std::size_t listed = 0;
    for (std::size_t i = 0; i < g.tasks().size(); ++i) {
        const TaskGroup::Failure* f = g.failure_at(i);
        if (f == nullptr || ++listed > 10) continue;
        e.summary += fmt::format("\n  {} failed in {}: {}", g.tasks()[i]->task_id(), f->stage, f->message);
    }
    if (listed > 10) e.summary += fmt::format("\n  ... and {} more", listed - 10);
    notifier_->send(e);
}

void Outputs::round_ended(RoundRow row) {
    json r{{"round", row.round}, {"wall_s", row.wall_s}, {"values", row.values}};
    if (plan_.rounds.size() > 1) r["block"] = row.block;
    run_["rounds"].push_back(std::move(r));
    dirty_ = true;

    // Columns: every scalar any round reported, in the order first seen. A
    // new one rewrites the file with the wider header (rare: a value that
    // appears in a later round); otherwise one line is appended.
    bool wider = false;
    for (const auto& [k, v] : row.values.items())
        if (std::find(columns_.begin(), columns_.end(), k) == columns_.end()) {
            columns_.push_back(k);
            wider = true;
        }
    rows_.push_back(std::move(row));
    try {
        const fs::path file = workdir_ / "rounds.csv";
        csv_written_ = options_.write_own(file, [&] {
            if (!csv_written_ || wider) rewrite_rounds_csv();
            else append_line(file, csv_line(rows_.back()));
        });
    } catch (const std::exception& e) {
        log::warning("cannot write {}: {}", (workdir_ / "rounds.csv").string(), e.what());
        csv_written_ = false;  // rewritten whole with the next round
    }
    write_if_due();
}

std::string Outputs::csv_line(const RoundRow& row) const {
    std::string line = plan_.rounds.size() > 1 ? fmt::format("{},", row.block) : std::string();
    line += std::to_string(row.round);
    for (const auto& c : columns_) {
        auto v = row.values.find(c);
        line += v != row.values.end() ? fmt::format(",{}", v->get<double>()) : std::string(",");
    }
    return line + fmt::format(",{:.3f}\n", row.wall_s);
}

void Outputs::rewrite_rounds_csv() {
    std::string text = plan_.rounds.size() > 1 ? "block,round" : "round";
    for (const auto& c : columns_) text += "," + csv_quote(c);
    text += ",wall_s\n";
    for (const RoundRow& row : rows_) text += csv_line(row);
    results::write_text_file(workdir_ / "rounds.csv", text);
}

std::optional<Outputs::Clock::time_point> Outputs::next_write() const {
    if (!dirty_) return std::nullopt;
    return written_at_ + std::max<Clock::duration>(options_.period, 20 * write_cost_);
}

void Outputs::write_if_due() {
    auto due = next_write();
    if (due && options_.now() >= *due) write("running", std::nullopt);
}

void Outputs::finish(const std::string& status, int exit_code, const std::string& reason) {
    write(status, exit_code, reason);
    if (!notifier_ || !notifier_->wants("run")) return;
    notify::Event e;
    e.kind = "run";
    e.name = plan_.file.filename().string();
    e.status = status;
    e.report = workdir_ / "report.html";
    e.summary = fmt::format("Run of {} in {}: {}. {} task(s) finished, {} failed, in {} group run(s).", e.name,
                            workdir_.string(), status, finished_, failed_, run_["groups"].size());
    notifier_->send(e);
}

void Outputs::write(const std::string& status, std::optional<int> exit_code, const std::string& reason) {
    auto t0 = options_.now();
    if (status != "running") {
        run_["ended"] = clock::utc_timestamp();
        run_["status"] = status;
        run_["exit_code"] = exit_code.value_or(0);
        if (!reason.empty()) run_["reason"] = reason;
    }
    // run.json is what --resume reads: a failure to write it (other than a
    // full disk, which stops the run) ends the run.
    const fs::path file = workdir_ / "run.json";
    options_.write_own(file, [&] { results::write_json_file(file, run_); });
    // The page's model takes run.json but its groups (it has them from
    // group_started) and the plan's text: copying them would double them.
    json info = json::object();
    for (const auto& [k, v] : run_.items())
        if (k != "groups" && k != "plan_text") info[k] = v;
    model_.set_info(std::move(info));
    write_page();
    dirty_ = false;
    written_at_ = options_.now();
    write_cost_ = written_at_ - t0;
}

void Outputs::write_page() {
    // The page is a view of the run's files: failing to write it loses no
    // result, so it is a warning, never the end of the run.
    try {
        report::write_html(model_.run());
    } catch (const std::exception& e) {
        log::warning("cannot write {}: {}", (workdir_ / "report.html").string(), e.what());
    }
}

}  // namespace fedflow
