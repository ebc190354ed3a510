#include "common/log.hpp"

#include "common/text.hpp"

#include <cstdio>

namespace fedflow::log {

namespace {
Level current = Level::info;
std::function<void(std::string_view)> sink;
}  // namespace

void set_sink(std::function<void(std::string_view)> s) { sink = std::move(s); }

bool parse_level(std::string_view text, Level& out) {
    if (text == "debug") out = Level::debug;
    else if (text == "info") out = Level::info;
    else if (text == "warning" || text == "warn") out = Level::warning;
    else if (text == "error") out = Level::error;
    else return false;
    return true;
}

void set_level(Level l) { current = l; }
Level level() { return current; }
bool enabled(Level l) { return l >= current; }

void write(Level l, std::string_view message) {
    if (!enabled(l)) return;
    static const char* const prefix[] = {"debug: ", "", "warning: ", "error: "};
    // Messages carry text from plans, plugins and workers: escaped here, at
    // the one place every log line passes (text::printable_lines).
    std::string line = fmt::format("fedflow: {}{}\n", prefix[static_cast<int>(l)], text::printable_lines(message));
    if (sink) sink(line);
    else std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace fedflow::log
