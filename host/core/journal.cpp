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

void Journal::open(const std::filesystem::path& path, ProgressView* view) {
    file_ = std::fopen(path.c_str(), "ae");
    if (file_ == nullptr) throw std::system_error(errno, std::generic_category(), "open " + path.string());
    view_ = view;
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
    if (view_ != nullptr) view_->event(line);
}

}  // namespace fedflow
