// text.hpp: text for people: making outside text safe to print, "did you
// mean", and sizes and durations. One implementation of each, used by every
// part of the host (and the worker).
#pragma once

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fedflow::text {

// Text that came from outside the host (a plan, a plugin, a worker, a file
// name) made safe to print on a terminal or in one line of a log: a control
// character becomes an escape ("\n", "\t", "\r", "\0", "\e"; the other C0
// controls and DEL as "\x7f", a C1 control as its two bytes "\xc2\x9b"), and
// so does every byte that is not part of valid UTF-8 ("\xff"); anything
// else, UTF-8 included, is kept. A backslash is kept as it is, so escaping
// twice changes nothing. An ESC can no longer retitle the terminal, a NUL
// no longer cuts the message, a newline no longer forges a line.
std::string printable(std::string_view s);

// The same for text that may have several lines (a failure message with a
// program's stderr): a '\n' is kept, and `indent` is written after it, so
// that no line of it starts where a line of Fedflow's own would.
std::string printable_lines(std::string_view s, std::string_view indent = "  ");

// Levenshtein distance (insert, delete, substitute: one each).
std::size_t edit_distance(std::string_view a, std::string_view b);

// The candidate that `word` most likely misspells, or nullopt: the nearest by
// edit distance when it is at most max(2, |word| / 3) edits away; else the
// one that shares the longest prefix with it, at least 3 characters and more
// than half of word ("max-procs" -> "max-processes"); else one that holds
// word's characters in order, when word has at least 4 and they are at least
// half of the candidate ("fedavg_srv" -> "fedavg_server"). Ties go to the
// shorter candidate, then to the earlier. Case is ignored; an exact match is
// not a misspelling and never suggested.
std::optional<std::string> closest(std::string_view word, const std::vector<std::string_view>& candidates);
std::optional<std::string> closest(std::string_view word, const std::vector<std::string>& candidates);
std::optional<std::string> closest(std::string_view word, std::initializer_list<std::string_view> candidates);

// " (did you mean 'X'?)" with closest(word, candidates), or "" when none.
std::string did_you_mean(std::string_view word, const std::vector<std::string_view>& candidates);
std::string did_you_mean(std::string_view word, const std::vector<std::string>& candidates);
std::string did_you_mean(std::string_view word, std::initializer_list<std::string_view> candidates);

// "512 B", "1.50 KiB", "12.3 MiB", "0.98 GiB", "400 GiB": powers of 1024,
// three significant digits; from 1000 of a unit on, the next unit.
std::string format_size(std::uint64_t bytes);

// "0ms", "250ms", "1.5s", "12.3s", "59.9s", "2m05s", "5m", "1h02m03s",
// "1h30m", "2h": milliseconds below a second, seconds with up to two
// decimals below 10 s and one below a minute, then whole seconds as hours,
// minutes and seconds without the parts that are zero at the end. The units
// are the plan's (task-timeout = "5m" reads back as "5m").
std::string format_duration(std::chrono::milliseconds d);

}  // namespace fedflow::text
