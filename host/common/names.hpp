// names.hpp: the rule for a name that becomes a folder or a file name: a
// group's name, a task id, a plugin's name, a byte file beside a result. It
// is the SDK's own (fedflow/detail/name.hpp, which FEDFLOW_TASK checks at
// compile time), with the longest file name Linux allows.
//
// Header-only, C++17: the bundled plugins compile it in too.
#ifndef FEDFLOW_COMMON_NAMES_HPP
#define FEDFLOW_COMMON_NAMES_HPP

#include <fedflow/detail/name.hpp>

#include <cstddef>
#include <string_view>

namespace fedflow::names {

inline constexpr std::size_t max_length = 255;

// 1 to 255 characters of [A-Za-z0-9._-], not "." or "..".
constexpr bool valid(std::string_view name) { return detail::valid_name(name, max_length); }

}  // namespace fedflow::names

#endif  // FEDFLOW_COMMON_NAMES_HPP
