// units.hpp: the quantities a plan writes as text: sizes ("2.5GB",
// "1200MiB") and durations ("30s", "5m", "1.5h"). Errors throw
// std::invalid_argument with a message that shows the accepted forms.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace fedflow::units {

// Bytes. Units B, KB, MB, GB, TB (powers of 1000) and KiB, MiB, GiB, TiB
// (powers of 1024), case-sensitive, optional space; a bare number is bytes.
std::uint64_t parse_size(std::string_view text);

// "0" (none), a number of seconds, or a number with unit ms, s, m or h.
std::chrono::milliseconds parse_duration(std::string_view text);

// "1.5 GiB", "512 B": for logs and messages.
std::string format_size(std::uint64_t bytes);

// The parts of a comma-separated list ("0,2" -> "0", "2"); empty parts kept.
std::vector<std::string_view> split_commas(std::string_view text);
// Only the digits 0-9, at least one.
bool all_digits(std::string_view text) noexcept;

// Edit distance, for "did you mean".
std::size_t edit_distance(std::string_view a, std::string_view b);

}  // namespace fedflow::units
