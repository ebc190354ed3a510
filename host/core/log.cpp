#include "log.hpp"

#include <cstdio>

namespace fedflow::log {

namespace {
Level current = Level::info;
}

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
    static const char* const prefix[] = {"debug: ", "", "warning: ", "error: "};
    std::string line = fmt::format("fedflow: {}{}\n", prefix[static_cast<int>(l)], message);
    std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace fedflow::log
