// journal.hpp: events.jsonl, the run's append-only journal (one JSON object
// per line and per state change), and the live progress lines derived from
// the same events.
#pragma once

#include "runner/progress.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>

#include <sys/types.h>

namespace fedflow {

class Journal {
public:
    Journal() = default;
    ~Journal();
    Journal(const Journal&) = delete;
    Journal& operator=(const Journal&) = delete;

    // Opens path for appending (creating it); every line is also shown by
    // view (may be null). A last line without its newline, left by a host
    // that died or ran out of disk in the middle of it, is cut off first, so
    // that this run's lines start on lines of their own; returns how many
    // bytes were cut. Throws std::system_error.
    std::size_t open(const std::filesystem::path& path, ProgressView* view);
    // Every line written from now on is also given to listener, as written
    // (with its time): the run's outputs keep their model with it.
    void set_listener(std::function<void(const nlohmann::ordered_json&)> listener) { listener_ = std::move(listener); }
    // Adds "time" (UTC, ISO 8601 with ms) and "elapsed_ms", writes the line
    // and shows it as progress. An event that matters for --resume (a task
    // finished or failed, a group or the run ended, keep-rounds removes a
    // round) also marks the journal for sync(). Never throws for the file: a
    // line that cannot be written (the disk is full) leaves no part of itself
    // in the file, is kept, and goes in before the next line that can be
    // written; error() says why.
    void write(nlohmann::ordered_json event);
    // fdatasync()s the file if an event that matters was written since the
    // last sync. The runner calls it once per turn of its loop, so a burst
    // of finished tasks costs one sync, and before acting on them; and
    // keep-rounds before it removes a round's folder, so that the
    // round_removed line is on disk first. False while a line waits for
    // space, or when the sync failed: what matters may not be on disk.
    bool sync();
    // The errno of the first write or sync that failed (ENOSPC: the
    // filesystem is full), or 0.
    int error() const noexcept { return error_; }
    // Every line written so far is in the file (none waits for space).
    bool complete() const noexcept { return pending_.empty(); }
    std::int64_t elapsed_ms() const;

private:
    void flush_pending();

    int fd_ = -1;
    std::string pending_;  // lines not in the file yet
    off_t size_ = 0;       // the file's length: whole lines only
    int error_ = 0;
    bool unsynced_ = false;
    ProgressView* view_ = nullptr;
    std::function<void(const nlohmann::ordered_json&)> listener_;
    std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

// Gives each whole line of the journal at path to line, in order, until line
// returns false (no file: no line). A last line without its newline is torn
// (its host was killed while it wrote it): Journal::open cuts it off, so no
// reader takes it either, even when it reads as whole JSON.
void read_journal(const std::filesystem::path& path, const std::function<bool(const std::string&)>& line);

}  // namespace fedflow
