// clock.hpp: the two clocks of Fedflow. CLOCK_MONOTONIC is system-wide, so a
// time the worker took (train_end_ns) and one the host takes can be
// subtracted; wall-clock time is for the files people read.
#pragma once

#include <cstdint>
#include <cstdio>
#include <ctime>
#include <string>

namespace fedflow::clock {

inline std::int64_t monotonic_ns() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// UTC, ISO 8601 with milliseconds: "2026-11-28T00:29:40.514Z".
inline std::string utc_timestamp() {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    std::tm tm{};
    gmtime_r(&ts.tv_sec, &tm);
    char buf[40];
    std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    std::snprintf(buf + n, sizeof buf - n, ".%03dZ", static_cast<int>(ts.tv_nsec / 1000000));
    return buf;
}

}  // namespace fedflow::clock
