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

// Names under /dev/shm that start with prefix (without the leading slash).
std::vector<std::string> list_prefix(const std::string& prefix);
// Removes every segment whose name starts with prefix; returns how many.
std::size_t remove_prefix(const std::string& prefix) noexcept;

}  // namespace fedflow::shm
