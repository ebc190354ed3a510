#include "common/proc_stat.hpp"

#include <cerrno>
#include <charconv>
#include <cstdio>

#include <fcntl.h>
#include <unistd.h>

namespace fedflow::proc {

namespace {

template <typename T>
bool whole_number(std::string_view s, T& value) {
    const char* end = s.data() + s.size();
    auto [p, ec] = std::from_chars(s.data(), end, value);
    return ec == std::errc() && p == end;
}

}  // namespace

int stat_fields(std::string_view text, std::string_view* out, int n) {
    std::size_t paren = text.rfind(')');
    if (paren == std::string_view::npos) return 0;
    std::string_view rest = text.substr(paren + 1);
    int count = 0;
    while (count < n) {
        std::size_t start = rest.find_first_not_of(" \t\n");
        if (start == std::string_view::npos) break;
        rest.remove_prefix(start);
        std::size_t end = rest.find_first_of(" \t\n");
        out[count++] = rest.substr(0, end);
        if (end == std::string_view::npos) break;
        rest.remove_prefix(end);
    }
    return count;
}

std::optional<Brief> parse_brief(std::string_view text) {
    std::string_view f[kFlags + 1];
    if (stat_fields(text, f, kFlags + 1) <= kFlags || f[kState].size() != 1) return std::nullopt;
    Brief b;
    b.state = f[kState][0];
    if (!whole_number(f[kPpid], b.ppid) || !whole_number(f[kFlags], b.flags)) return std::nullopt;
    return b;
}

std::optional<Brief> read_brief(pid_t pid) {
    char path[48];
    std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
    int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return std::nullopt;
    // A stat line is under 1 KiB (comm is at most 64 bytes).
    char buf[4096];
    ssize_t n;
    do n = ::read(fd, buf, sizeof buf);
    while (n < 0 && errno == EINTR);
    ::close(fd);
    if (n <= 0) return std::nullopt;
    return parse_brief(std::string_view(buf, static_cast<std::size_t>(n)));
}

}  // namespace fedflow::proc
