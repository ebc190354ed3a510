#include "journal.hpp"

#include <fmt/core.h>

#include <cerrno>
#include <ctime>
#include <system_error>

namespace fedflow {

namespace {

std::string utc_now() {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    std::tm tm{};
    gmtime_r(&ts.tv_sec, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    return fmt::format("{}.{:03d}Z", buf, ts.tv_nsec / 1000000);
}

}  // namespace

Journal::~Journal() {
    if (file_ != nullptr) std::fclose(file_);
}

void Journal::open(const std::filesystem::path& path, Progress progress) {
    file_ = std::fopen(path.c_str(), "ae");
    if (file_ == nullptr) throw std::system_error(errno, std::generic_category(), "open " + path.string());
    progress_ = progress;
}

std::int64_t Journal::elapsed_ms() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start_).count();
}

void Journal::write(nlohmann::ordered_json event) {
    nlohmann::ordered_json line;
    line["time"] = utc_now();
    line["elapsed_ms"] = elapsed_ms();
    for (auto& [k, v] : event.items()) line[k] = std::move(v);
    std::string text = line.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
    text += '\n';
    if (file_ != nullptr) {
        std::fwrite(text.data(), 1, text.size(), file_);
        std::fflush(file_);
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
