// result_receiver.hpp: takes one task's result out of the shared memory its
// worker wrote it to, and into the task's folder (result.json and its byte
// files).
//
// Everything in the segments is the worker's making and is checked before
// any of it is believed: the result segment's header (magic, version,
// length, checksum), every Bytes buffer's size (fstat, before a byte is
// read) against what the result message announced, and the document itself
// (the FFV1 decoder refuses what is malformed). A failure of any check
// throws, and the task fails with "invalid result: ..."; nothing is written
// from a result that did not pass.
//
// A Bytes buffer is copied into its byte file through a small buffer of
// this process (byte_file::copy, never mapped) and checked against the
// checksum the worker announced as it goes: a buffer that changed after the
// worker took it (or a checksum that lies) fails the task ("corrupt"), and
// one cut short while it is copied fails it too ("truncated"), never the
// host. (Moving the bytes inside the kernel, with splice, would hide them
// from this check; docs/architecture.md says what that would save.)
#pragma once

#include "common/messages.hpp"
#include "common/shm.hpp"
#include "runner/results.hpp"

#include <filesystem>
#include <string>

namespace fedflow {

// A result whose document and Bytes buffers together hold at most this
// many bytes is small: its segment is read with pread, not mapped (a new
// mapping, its page faults and its unmapping cost more than copying a few
// pages), and it is received on the loop's thread (ReceiveThread), where it
// takes less time than starting a thread would.
inline constexpr std::uint64_t small_result_bytes = 64 * 1024;

// Whether `announced` is a small result (above).
bool is_small(const messages::Result& announced) noexcept;

class ResultReceiver {
public:
    // prefix: the task's shared-memory name prefix (shm::result_name and
    // shm::bytes_name of it name the segments).
    explicit ResultReceiver(std::string prefix) : prefix_(std::move(prefix)) {}
    // The segments are files of dir, named as the segments (a worker of
    // another node: exec::Event::result_dir), not in this machine's /dev/shm.
    void read_files_from(std::filesystem::path dir) { files_ = std::move(dir); }

    // Checks and decodes the result that `announced` (the worker's result
    // message) describes and writes it into dir; removes the segments it
    // read. Throws std::exception with what was wrong.
    results::Written receive(const messages::Result& announced, const std::filesystem::path& dir);
    // Removes whatever segments the task left (after a failure: it may have
    // made some it never announced).
    void discard() noexcept;
    // receive() removed every segment: nothing is left to look for.
    bool segments_removed() const noexcept { return removed_; }

private:
    shm::Segment open(const std::string& name) const;
    // The same segment's descriptor, read-only (the caller closes it).
    int open_fd(const std::string& name) const;
    void remove(const std::string& name) const noexcept;

    std::string prefix_;
    std::filesystem::path files_;
    bool removed_ = false;
};

}  // namespace fedflow
