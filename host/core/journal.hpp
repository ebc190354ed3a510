// journal.hpp: events.jsonl, the run's append-only journal (one JSON object
// per line and per state change), and the live progress lines derived from
// the same events.
#pragma once

#include "progress.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>

namespace fedflow {


class Journal {
public:
    Journal() = default;
    ~Journal();
    Journal(const Journal&) = delete;
    Journal& operator=(const Journal&) = delete;

    // Opens path for appending; every line is also shown by view (may be
    // null). Throws std::system_error.
    void open(const std::filesystem::path& path, ProgressView* view);
    // Adds "time" (UTC, ISO 8601 with ms) and "elapsed_ms", writes the line
    // and flushes it, and shows it as progress. An event that matters for
    // --resume (a task finished or failed, a group or the run ended) also
    // marks the journal for sync().
    void write(nlohmann::ordered_json event);
    // fdatasync()s the file if an event that matters was written since the
    // last sync. The runner calls it once per turn of its loop, so a burst
    // of finished tasks costs one sync, and before acting on them.
    void sync();
    std::int64_t elapsed_ms() const;

private:
    std::FILE* file_ = nullptr;
    bool unsynced_ = false;
    ProgressView* view_ = nullptr;
    std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

}  // namespace fedflow
