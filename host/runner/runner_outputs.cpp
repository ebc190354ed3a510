// runner_outputs.cpp: the live view's status, and how the run stops early:
// on a signal, on a full disk (with the reserve that lets it end cleanly),
// or when its journal cannot be written. run.json, rounds.csv, report.html
// and the notifications are Outputs' (runner/outputs.hpp).
#include "runner/runner.hpp"

#include "common/log.hpp"
#include "common/text.hpp"
#include "runner/results.hpp"

#include <fmt/core.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>

#include <fcntl.h>
#include <unistd.h>

namespace fs = std::filesystem;
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

bool Runner::write_own(const fs::path& file, const std::function<void()>& write) {
    for (int attempt = 0;; ++attempt) {
        try {
            write();
            return true;
        } catch (const std::exception& e) {
            if (!results::is_disk_full(e)) throw;
            disk_full(e.what());  // frees the reserve: one more try
            if (attempt == 1) {
                log::error("cannot write {}: the filesystem is full {} ({})", file.string(),
                           reserve_held_ ? "even after freeing the reserve" : "(it had no room for a reserve)",
                           e.what());
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
    reserve_made_ = reserve_held_ = ::posix_fallocate(fd, 0, reserve_size) == 0;
    ::close(fd);
    if (!reserve_made_) {
        std::error_code ec;
        fs::remove(file, ec);  // a filesystem that is nearly full already: none
        log::warning("the workdir's filesystem has less than {} free: should a task fill it, run.json and the "
                     "reports may be left as they were (the journal keeps what finished)",
                     text::format_size(static_cast<std::uint64_t>(reserve_size)));
    }
}

void Runner::release_reserve() noexcept {
    if (!reserve_made_) return;
    std::error_code ec;
    fs::remove(workdir_ / reserve_file, ec);
    reserve_made_ = false;
}

}  // namespace fedflow
