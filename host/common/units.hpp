// units.hpp: the quantities a plan writes as text: sizes ("2.5GB",
// "1200MiB") and durations ("30s", "5m", "1.5h"). The number is decimal
// digits with an optional fraction and exponent ("2", "2.5", ".5", "1e3"),
// then at most one space and the unit; no sign, hex or leading space.
// Errors throw std::invalid_argument with a message that shows the
// accepted forms.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace fedflow::units {

// The largest size and the longest duration a plan may give. Beyond them
// the scheduler's sums of estimates and the run's deadlines would overflow
// (a timeout of "9999999h" once timed every task out at once), so they are
// refused where the plan is read.
inline constexpr std::uint64_t max_size = 1ull << 50;  // 1 PiB
inline constexpr std::chrono::milliseconds max_duration = std::chrono::hours(24 * 365);
// What the two messages say the range is.
inline constexpr const char* size_range = "a size is at most 1 PiB (1125899906842624 bytes)";
inline constexpr const char* duration_range = "a duration is \"0\" (none) or from 1ms to 8760h (365 days)";

// Bytes. Units B, KB, MB, GB, TB (powers of 1000) and KiB, MiB, GiB, TiB
// (powers of 1024), case-sensitive, optional space; a bare number is bytes.
// At most max_size.
std::uint64_t parse_size(std::string_view text);

// "0" (none), a number of seconds, or a number with unit ms, s, m or h.
// Anything else than 0 is from 1ms to max_duration.
std::chrono::milliseconds parse_duration(std::string_view text);

// The parts of a comma-separated list ("0,2" -> "0", "2"); empty parts kept.
std::vector<std::string_view> split_commas(std::string_view text);
// Only the digits 0-9, at least one.
bool all_digits(std::string_view text) noexcept;

// What a path is, for messages about a path of the wrong kind: "a
// directory", "a FIFO (named pipe)", "a character device", ...
const char* file_kind(std::filesystem::file_type type) noexcept;

}  // namespace fedflow::units
