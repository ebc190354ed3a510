// shm.hpp: POSIX shared-memory segments through Boost.Interprocess.
//
// Results travel from worker to host in segments the worker creates and the
// host maps read-only and removes; inputs travel the other way in one
// segment per group. Every segment is created exclusively (a name is never
// reused or hijacked) with mode 0600, and named after its run so that
// leftovers can be found and removed (see remove_prefix).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace fedflow::shm {

// Segment names for one task: "<prefix>-r" holds the encoded result,
// "<prefix>-b<id>" the buffer that bytes_alloc returned with that id.
std::string result_name(const std::string& prefix);
std::string bytes_name(const std::string& prefix, std::uint64_t id);

class Segment {
public:
    // A new segment of size bytes (zero-filled), mapped read-write. Throws
    // std::runtime_error naming the segment when it exists or cannot be made.
    static Segment create(const std::string& name, std::size_t size);
    // An existing segment, mapped read-only. Throws when missing.
    static Segment open_read_only(const std::string& name);
    // A file (a segment copied from another machine's /dev/shm into a
    // shared folder), mapped read-only; its name() is the path. Throws
    // when missing.
    static Segment open_file_read_only(const std::string& path);
    // An existing segment, mapped read-write (a table that the host and its
    // workers share, such as the simulated GPUs'). Throws when missing.
    static Segment open_read_write(const std::string& name);
    // An existing segment's file descriptor, read-only and not mapped (for
    // pread: the host copies a Bytes buffer without faulting it into its
    // own memory). The caller closes it. Throws std::runtime_error naming
    // the segment when it is missing.
    static int open_fd_read_only(const std::string& name);
    // Removes the name (mappings stay valid). False when it did not exist.
    static bool remove(const std::string& name) noexcept;

    Segment(Segment&&) noexcept;
    Segment& operator=(Segment&&) noexcept;
    ~Segment();

    std::uint8_t* data() const noexcept;
    std::size_t size() const noexcept;
    const std::string& name() const noexcept;

private:
    struct Impl;
    explicit Segment(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

// A run's claim on its segment names: "fedflow-<host pid>-<8 hex>" is the
// run's prefix, and "<prefix>.lock" in /dev/shm a file the run holds an
// exclusive flock(2) on for as long as it lives. The pid in a name tells
// nothing about the run: hosts in other PID namespaces (containers that
// share /dev/shm, e.g. docker --ipc=host) name theirs after pids this one
// cannot see or that belong to another process here. The lock does: it
// lives on the shared file, and the kernel drops it when its holder dies,
// SIGKILL included.
class RunLock {
public:
    // Chooses a prefix that no run uses, creates its lock file (0600) and
    // locks it. Throws std::runtime_error when /dev/shm cannot hold it.
    RunLock();
    ~RunLock();  // removes the lock file: the run's segments must be gone
    RunLock(const RunLock&) = delete;
    RunLock& operator=(const RunLock&) = delete;

    const std::string& prefix() const noexcept { return prefix_; }
    static std::string lock_name(const std::string& prefix) { return prefix + ".lock"; }

private:
    std::string prefix_;
    int fd_ = -1;
};

// What remove_abandoned found among other runs' segments.
struct Sweep {
    std::size_t removed = 0;   // segments of runs that are provably gone
    std::size_t unproven = 0;  // segments kept: their run has no lock file (or one we may not open)
};
// Removes the segments of every run but own_prefix's whose lock file exists
// and is held by nobody (its run is gone), then that lock file. A run whose
// lock is held is alive, wherever it runs; one without a lock file cannot be
// proven gone, and its segments stay.
Sweep remove_abandoned(const std::string& own_prefix);

// Names under /dev/shm that start with prefix (without the leading slash).
std::vector<std::string> list_prefix(const std::string& prefix);
// Removes every segment whose name starts with prefix; returns how many.
std::size_t remove_prefix(const std::string& prefix) noexcept;

}  // namespace fedflow::shm
