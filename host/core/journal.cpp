#include "journal.hpp"

#include "../common/clock.hpp"

#include <fmt/core.h>

#include <cerrno>
#include <system_error>

#include <unistd.h>

namespace fedflow {

Journal::~Journal() {
    if (file_ != nullptr) {
        sync();
        std::fclose(file_);
    }
}

void Journal::open(const std::filesystem::path& path, Progress progress) {
    file_ = std::fopen(path.c_str(), "ae");
    if (file_ == nullptr) throw std::system_error(errno, std::generic_category(), "open " + path.string());
    progress_ = progress;
}

void Journal::sync() {
    if (!unsynced_ || file_ == nullptr) return;
    std::fflush(file_);
    ::fdatasync(::fileno(file_));
    unsynced_ = false;
}

std::int64_t Journal::elapsed_ms() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start_).count();
}

void Journal::write(nlohmann::ordered_json event) {
    nlohmann::ordered_json line;
    line["time"] = clock::utc_timestamp();
    line["elapsed_ms"] = elapsed_ms();
    for (auto& [k, v] : event.items()) line[k] = std::move(v);
    std::string text = line.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
    text += '\n';
    if (file_ != nullptr) {
        std::fwrite(text.data(), 1, text.size(), file_);
        std::fflush(file_);
        const std::string kind = line.value("event", "");
        const std::string status = line.value("status", "");
        if (kind == "run_start" || kind == "group_end" || kind == "run_end" ||
            (kind == "status" && (status == "FINISHED" || status == "EXCEPTION")))
            unsynced_ = true;
    }
    if (progress_ == Progress::json) {
        std::fwrite(text.data(), 1, text.size(), stdout);
        std::fflush(stdout);
    } else if (progress_ == Progress::plain) {
        show(line);
    }
}

void Journal::show(const nlohmann::ordered_json& e) const {
    const std::string kind = e.value("event", "");
    std::string what;
    if (kind == "status") {
        what = fmt::format("{}/{} {}", e.value("group", ""), e.value("task", ""), e.value("status", ""));
        if (e.contains("device")) what += " on " + e["device"].get<std::string>();
        if (e.contains("message")) what += ": " + e["message"].get<std::string>();
    } else if (kind == "group_start") {
        int n = e.value("tasks", 0);
        what = fmt::format("group {} ({} task{}) started", e.value("group", ""), n, n == 1 ? "" : "s");
    } else if (kind == "group_end") {
        what = fmt::format("group {} ended: {} finished, {} failed", e.value("group", ""), e.value("finished", 0),
                           e.value("failed", 0));
    } else if (kind == "run_start") {
        what = fmt::format("run started in {}", e.value("workdir", ""));
    } else if (kind == "run_end") {
        what = fmt::format("run ended: {}", e.value("status", ""));
    } else {
        return;
    }
    std::string text = fmt::format("fedflow: [{:8.2f}s] {}\n", static_cast<double>(e.value("elapsed_ms", 0)) / 1000.0, what);
    std::fwrite(text.data(), 1, text.size(), stderr);
}

}  // namespace fedflow
