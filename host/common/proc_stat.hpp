// proc_stat.hpp: reading /proc/<pid>/stat, the one parser of it (the probe's
// CPU and memory samples, a worker's parent, whether a process is exiting).
//
// The second field, comm, is the program's name in parentheses and may hold
// anything, ')' and blanks included, so the fields that follow are found
// after the last ')'.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string_view>

namespace fedflow::proc {

// The fields of a stat line from the third on (state, ppid, ...), split at
// blanks: fills up to n of them into out and returns how many there were.
int stat_fields(std::string_view text, std::string_view* out, int n);

// Indexes into stat_fields' output: proc(5)'s field N is N - 3.
inline constexpr int kState = 0, kPpid = 1, kFlags = 6, kUtime = 11, kStime = 12, kCutime = 13, kCstime = 14,
                     kVsize = 20, kRss = 21;

// What the host asks of another process's stat line.
struct Brief {
    char state = 0;  // R, S, D, Z (zombie), X (dead), ...
    pid_t ppid = -1;
    unsigned long flags = 0;  // PF_* (PF_EXITING = 0x4: it is ending)

    bool ended() const noexcept { return state == 'Z' || state == 'X' || state == 'x'; }
    // Running, and not on its way out: the kernel sets PF_EXITING before it
    // closes a dying process's files.
    bool running_not_exiting() const noexcept { return !ended() && (flags & 0x4) == 0; }
};

// Parses a stat line; nullopt when it is not one.
std::optional<Brief> parse_brief(std::string_view text);
// Reads /proc/<pid>/stat; nullopt when pid is gone (or was reaped).
std::optional<Brief> read_brief(pid_t pid);

}  // namespace fedflow::proc
