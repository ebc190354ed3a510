// fedflow/detail/name.hpp: the one rule for a name that becomes a folder or
// a file name: a plugin's registered name, a group's name, a task id, the file
// of a byte value beside a result. The host checks the same rule with the same
// function; FEDFLOW_TASK checks a plugin's name with it at compile time.
#ifndef FEDFLOW_DETAIL_NAME_HPP
#define FEDFLOW_DETAIL_NAME_HPP

#include <fedflow/abi.h>

#include <cstddef>
#include <string_view>

namespace fedflow::detail {

// A character a name may hold: [A-Za-z0-9._-].
constexpr bool name_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-';
}

// 1 to max_length name characters, and not "." or "..": never a path, never
// hidden by a control character, the same on every file system.
constexpr bool valid_name(std::string_view s, std::size_t max_length) {
    if (s.empty() || s.size() > max_length || s == "." || s == "..") return false;
    for (char c : s)
        if (!name_char(c)) return false;
    return true;
}

// A plugin's registered name: at most FEDFLOW_NAME_MAX - 1 characters, so
// that it fits fedflow_plugin_info's name with its NUL.
constexpr bool valid_name(const char* s) { return valid_name(std::string_view(s), FEDFLOW_NAME_MAX - 1); }

}  // namespace fedflow::detail

#endif  // FEDFLOW_DETAIL_NAME_HPP
