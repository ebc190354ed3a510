#include "common/failpoints.hpp"

#include <cstdlib>

namespace fedflow::failpoints {

bool armed(std::string_view name, std::string_view where) {
    const char* env = std::getenv("FEDFLOW_FAILPOINTS");
    if (env == nullptr) return false;
    std::string_view list = env;
    while (!list.empty()) {
        const std::size_t comma = list.find(',');
        const std::string_view entry = list.substr(0, comma);
        list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
        if (entry.empty()) continue;  // "a,,b", a trailing comma
        const std::size_t at = entry.find('@');
        const std::string_view entry_name = entry.substr(0, at);
        const std::string_view entry_where = at == std::string_view::npos ? std::string_view() : entry.substr(at + 1);
        if (entry_name == name && entry_where == where) return true;
    }
    return false;
}

}  // namespace fedflow::failpoints
