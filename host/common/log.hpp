// log.hpp: the host's log on stderr, by severity. Plugins never write here:
// their output goes to their task's stdout.log and stderr.log.
#pragma once

#include <fmt/core.h>

#include <functional>
#include <string_view>

namespace fedflow::log {

enum class Level { debug, info, warning, error };

// Parses "debug", "info", "warning", "error"; false when unknown.
bool parse_level(std::string_view text, Level& out);
void set_level(Level level);
Level level();
bool enabled(Level level);
// Writes "fedflow: [level: ]message" with the message made printable
// (text::printable_lines: control characters escaped, the lines after the
// first indented), so callers pass outside text as it is.
void write(Level level, std::string_view message);
// Where log lines go instead of stderr (the live progress view puts them
// above its frame); nullptr: stderr again.
void set_sink(std::function<void(std::string_view line)> sink);

template <class... Args>
void debug(fmt::format_string<Args...> f, Args&&... args) {
    if (enabled(Level::debug)) write(Level::debug, fmt::format(f, std::forward<Args>(args)...));
}
template <class... Args>
void info(fmt::format_string<Args...> f, Args&&... args) {
    if (enabled(Level::info)) write(Level::info, fmt::format(f, std::forward<Args>(args)...));
}
template <class... Args>
void warning(fmt::format_string<Args...> f, Args&&... args) {
    if (enabled(Level::warning)) write(Level::warning, fmt::format(f, std::forward<Args>(args)...));
}
template <class... Args>
void error(fmt::format_string<Args...> f, Args&&... args) {
    if (enabled(Level::error)) write(Level::error, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace fedflow::log
