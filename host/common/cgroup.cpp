#include "common/cgroup.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <system_error>

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace fedflow::cgroup {

namespace {

bool write_file(const fs::path& file, const std::string& text) {
    int fd = ::open(file.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return false;
    ssize_t n = ::write(fd, text.data(), text.size());
    int saved = errno;
    ::close(fd);
    errno = saved;
    return n == static_cast<ssize_t>(text.size());
}

// "populated 0|1" of a cgroup.events text.
bool populated(const std::string& events) {
    std::size_t at = events.find("populated ");
    return at != std::string::npos && events.compare(at + 10, 1, "1") == 0;
}

}  // namespace

fs::path own_dir(std::string& why) {
    std::ifstream cg("/proc/self/cgroup");
    std::string line, path;
    while (std::getline(cg, line))
        if (line.rfind("0::", 0) == 0) path = line.substr(3);
    if (path.empty()) {
        why = "this process is in no cgroup v2 hierarchy (/proc/self/cgroup has no \"0::\" line)";
        return {};
    }
    // mountinfo: ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS... - TYPE SOURCE ...
    std::ifstream mi("/proc/self/mountinfo");
    while (std::getline(mi, line)) {
        std::size_t dash = line.find(" - ");
        if (dash == std::string::npos || line.compare(dash + 3, 8, "cgroup2 ") != 0) continue;
        std::istringstream fields(line.substr(0, dash));
        std::string id, parent, dev, root, mountpoint;
        fields >> id >> parent >> dev >> root >> mountpoint;
        // A mount of a subtree (a container without a cgroup namespace)
        // shows the host's path in /proc/self/cgroup: strip the mount's root.
        std::string rel = path;
        if (root != "/") {
            if (rel.rfind(root, 0) != 0) continue;
            rel = rel.substr(root.size());
        }
        return (fs::path(mountpoint) / fs::path(rel).relative_path()).lexically_normal();
    }
    why = "no cgroup2 file system is mounted";
    return {};
}

void adopt(const fs::path& dir, pid_t pid) {
    if (!write_file(dir / "cgroup.procs", std::to_string(pid)))
        throw std::system_error(errno, std::generic_category(),
                                "cannot move process " + std::to_string(pid) + " into cgroup " + dir.string());
}

std::vector<pid_t> members(const fs::path& dir) {
    std::vector<pid_t> out;
    // A task's cgroup is usually empty when its worker has ended: one read
    // of cgroup.events ("populated 0" covers the cgroups below) saves
    // reading cgroup.procs and listing the directory for every task.
    if (int fd = ::open((dir / "cgroup.events").c_str(), O_RDONLY | O_CLOEXEC); fd >= 0) {
        char buf[256];
        ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
        ::close(fd);
        if (n > 0 && !populated(std::string(buf, static_cast<std::size_t>(n)))) return out;
    }
    std::error_code ec;
    std::ifstream in(dir / "cgroup.procs");
    pid_t pid = 0;
    while (in >> pid) out.push_back(pid);
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
        if (!entry.is_directory(ec)) continue;
        auto below = members(entry.path());
        out.insert(out.end(), below.begin(), below.end());
    }
    return out;
}

bool kill(const fs::path& dir) { return write_file(dir / "cgroup.kill", "1"); }

bool wait_empty(const fs::path& dir, std::chrono::milliseconds timeout) {
    int fd = ::open((dir / "cgroup.events").c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return true;  // the cgroup is gone
    auto deadline = std::chrono::steady_clock::now() + timeout;
    bool empty = false;
    for (;;) {
        char buf[256];
        ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
        if (n < 0 || !populated(std::string(buf, static_cast<std::size_t>(n)))) {
            empty = true;
            break;
        }
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) break;
        // cgroup.events signals a change with POLLPRI; the cap on each wait
        // only bounds the cost of a missed one.
        pollfd p{fd, POLLPRI, 0};
        ::poll(&p, 1, static_cast<int>(std::min<std::int64_t>(left.count(), 100)));
    }
    ::close(fd);
    return empty;
}

bool remove(const fs::path& dir) {
    // Most have no cgroup below them: one rmdir, without listing dir.
    if (::rmdir(dir.c_str()) == 0 || errno == ENOENT) return true;
    std::error_code ec;
    bool all = true;
    for (const auto& entry : fs::directory_iterator(dir, ec))
        if (entry.is_directory(ec)) all = cgroup::remove(entry.path()) && all;
    if (::rmdir(dir.c_str()) != 0 && errno != ENOENT) all = false;
    return all;
}

}  // namespace fedflow::cgroup
