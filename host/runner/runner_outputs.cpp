// runner_outputs.cpp: what the run tells the world besides results: run.json,
// report.html, notifications, and the live view's status.
#include "runner/runner.hpp"

#include "common/clock.hpp"
#include "common/log.hpp"
#include "report/report_html.hpp"
#include "runner/results.hpp"

#include <fedflow/abi.h>

#include <fmt/core.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>

#include <fcntl.h>

#include <unistd.h>

#ifndef FEDFLOW_VERSION
#define FEDFLOW_VERSION "unknown"
#endif

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

namespace fedflow {

void Runner::show_status(bool force) {
    auto now = Clock::now();
    if (!force && now - shown_at_ < std::chrono::milliseconds(200)) return;
    shown_at_ = now;
    LiveStatus st;
    for (const exec::DeviceUse& d : executor_->devices())
        st.devices.push_back({d.name, d.used, d.total, d.reserved, d.tasks});
    for (const auto& [id, l] : live_) {
        const Task& t = *l.task;
        const char* stage = t.status() == TaskStatus::TRAINING  ? "train"
                            : t.status() == TaskStatus::WAITING ? "wait"
                            : t.status() == TaskStatus::LOADING ? "load"
                                                                : nullptr;
        if (stage == nullptr) continue;
        LiveStatus::Running r;
        r.task = l.group->group_name() + "/" + t.task_id();
        r.stage = stage;
        if (t.status() == TaskStatus::TRAINING) r.device = t.device();
        r.seconds = std::chrono::duration<double>(now - t.stage_started()).count();
        st.running.push_back(std::move(r));
    }
    view_->status(st);
}

void Runner::notify_group(const TaskGroup& g) {
    if (!notifier_ || !notifier_->wants("group")) return;
    notify::Event e;
    e.kind = "group";
    e.name = g.round() != 0 ? fmt::format("{} (round {})", g.group_name(), g.round()) : g.group_name();
    std::size_t finished = g.count(TaskStatus::FINISHED) + g.count(TaskStatus::EXITED);
    e.status = !stop_reason_.empty() ? "interrupted" : g.failed_count() > 0 ? "failed" : "finished";
    e.report = g.workdir() / "report.json";
    e.summary = fmt::format("Group {}: {} of {} task(s) finished, {} failed.", e.name, finished, g.tasks().size(),
                            g.failed_count());
    std::size_t listed = 0;
    for (const auto& t : g.tasks()) {
        const TaskGroup::Failure* f = g.failure(t->task_id());
        if (f == nullptr || ++listed > 10) continue;
        e.summary += fmt::format("\n  {} failed in {}: {}", t->task_id(), f->stage, f->message);
    }
    if (listed > 10) e.summary += fmt::format("\n  ... and {} more", listed - 10);
    notifier_->send(e);
}

void Runner::notify_run(const std::string& status) {
    if (!notifier_ || !notifier_->wants("run")) return;
    notify::Event e;
    e.kind = "run";
    e.name = plan_.file.filename().string();
    e.status = status;
    e.report = workdir_ / "report.html";
    std::size_t finished = 0, failed = 0;
    for (const auto& g : groups_) {
        finished += g->count(TaskStatus::FINISHED) + g->count(TaskStatus::EXITED);
        failed += g->failed_count();
    }
    e.summary = fmt::format("Run of {} in {}: {}. {} task(s) finished, {} failed, in {} group run(s).", e.name,
                            workdir_.string(), status, finished, failed, groups_.size());
    notifier_->send(e);
}

void Runner::write_report() {
    // The page is a view of the run's files: failing to write it loses no
    // result, so it is a warning, never the end of the run.
    try {
        report::write_html(workdir_);
    } catch (const std::exception& e) {
        log::warning("cannot write {}: {}", (workdir_ / "report.html").string(), e.what());
    }
}

void Runner::write_run_json(const std::string& status, int exit_code) {
    json groups = json::array();
    for (const auto& g : groups_) {
        json entry{{"index", g->index()}, {"group", g->group_name()}};
        if (g->round() != 0) entry["round"] = g->round();
        entry["report"] = fs::relative(g->workdir() / "report.json", workdir_).string();
        groups.push_back(std::move(entry));
        json& e = groups.back();
        e.update(json{
                          {"tasks", g->tasks().size()},
                          {"finished", g->count(TaskStatus::FINISHED) + g->count(TaskStatus::EXITED)},
                          {"failed", g->failed_count()}});
    }
    json rounds = json::array();
    for (const RoundRow& row : round_rows_) {
        json r{{"round", row.round}, {"wall_s", row.wall_s}, {"values", row.values}};
        if (plan_.rounds.size() > 1) r["block"] = row.block;
        rounds.push_back(std::move(r));
    }
    json cpu;
    cpu["name"] = "cpu";
    cpu["cpus"] = ::sysconf(_SC_NPROCESSORS_ONLN);
    json run;
    run["fedflow_version"] = FEDFLOW_VERSION;
    run["plugin_abi_version"] = FEDFLOW_ABI_VERSION;
    run["plan"] = plan_.file.string();
    run["plan_digest"] = plan_.digest;
    run["plan_text"] = plan_.text;
    run["workdir"] = workdir_.string();
    run["host_pid"] = ::getpid();
    run["seed"] = options_.seed;
    run["started"] = started_;
    run["ended"] = status == "running" ? json(nullptr) : json(clock::utc_timestamp());
    run["status"] = status;
    run["exit_code"] = status == "running" ? json(nullptr) : json(exit_code);
    if (!stop_reason_.empty() && status != "running") run["reason"] = stop_reason_;
    cpu["memory"] = executor_->machine().ram_total;
    json devices = json::array({cpu});
    for (const auto& g : executor_->machine().gpus)
        devices.push_back({{"name", fmt::format("cuda:{}", g.index)},
                           {"model", g.name},
                           {"pci_bus_id", g.pci_bus_id},
                           {"uuid", g.uuid},
                           {"memory", g.total},
                           {"used", !limits_.use_gpus ? false
                                    : limits_.gpus.empty()
                                        ? true
                                        : std::find(limits_.gpus.begin(), limits_.gpus.end(), g.index) !=
                                              limits_.gpus.end()}});
    run["devices"] = std::move(devices);
    run["groups"] = std::move(groups);
    if (!plan_.rounds.empty()) run["rounds"] = std::move(rounds);
    write_own(workdir_ / "run.json", [&] { results::write_json_file(workdir_ / "run.json", run); });
}

bool Runner::write_own(const fs::path& file, const std::function<void()>& write) {
    for (int attempt = 0;; ++attempt) {
        try {
            write();
            return true;
        } catch (const std::exception& e) {
            if (!results::is_disk_full(e)) throw;
            disk_full(e.what());  // frees the reserve: one more try
            if (attempt == 1) {
                log::error("cannot write {}: the filesystem is full even after freeing the reserve ({})",
                           file.string(), e.what());
                return false;
            }
        }
    }
}

void Runner::stop(const std::string& reason) {
    if (!stop_reason_.empty()) return;
    stop_reason_ = reason;
    log::warning("{}: ending {} running task(s), starting nothing new", reason, live_.size());
    stop_all(SIGTERM);
}

void Runner::disk_full(const std::string& what) {
    release_reserve();
    if (disk_full_) return;
    disk_full_ = true;
    log::error("the workdir's filesystem is full ({})", what);
    stop("the workdir's filesystem is full");
}

void Runner::check_journal() {
    const int err = journal_.error();
    if (err == 0) return;
    const std::string what = fmt::format("write {}: {}", (workdir_ / "events.jsonl").string(), std::strerror(err));
    if (err == ENOSPC || err == EDQUOT) disk_full(what);
    else stop(fmt::format("the journal cannot be written ({})", what));
}

// A run needs a little space to end cleanly (run.json, the reports, the
// journal's last lines) also when a task has filled the disk: it holds
// that much in a file of its own and gives it back the moment the disk is
// full.
void Runner::make_reserve() {
    const fs::path file = workdir_ / reserve_file;
    int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) return;
    reserve_made_ = ::posix_fallocate(fd, 0, reserve_size) == 0;
    ::close(fd);
    if (!reserve_made_) {
        std::error_code ec;
        fs::remove(file, ec);  // a filesystem that is nearly full already: none
    }
}

void Runner::release_reserve() noexcept {
    if (!reserve_made_) return;
    std::error_code ec;
    fs::remove(workdir_ / reserve_file, ec);
    reserve_made_ = false;
}

}  // namespace fedflow
