#include "runner/workdir_lock.hpp"

#include "common/clock.hpp"
#include "common/units.hpp"

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include <cerrno>
#include <climits>
#include <csignal>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <system_error>
#include <thread>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace fedflow {

namespace {

// A full disk is the machine's trouble, not bad input: it keeps its errno
// (exit 3); anything else that stops us from using the workdir is exit 2.
[[noreturn]] void refuse(int err, const std::string& what) {
    if (err == ENOSPC || err == EDQUOT) throw std::system_error(err, std::generic_category(), what);
    throw std::invalid_argument(fmt::format("{}: {}", what, std::generic_category().message(err)));
}

}  // namespace

std::string WorkdirLock::holder(const fs::path& workdir) {
    std::ifstream in(workdir / file_name);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto j = nlohmann::json::parse(text, nullptr, false);
    if (!j.is_object() || !j.contains("pid") || !j["pid"].is_number_integer()) return {};
    const long long pid = j["pid"].get<long long>();
    std::string out = fmt::format("pid {}", pid);
    if (j.contains("host") && j["host"].is_string()) {
        char here[256] = {};
        ::gethostname(here, sizeof here - 1);
        if (j["host"].get<std::string>() == here && pid > 0 && pid <= INT_MAX &&
            ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH)
            return {};
        out += " on host " + j["host"].get<std::string>();
    }
    if (j.contains("started") && j["started"].is_string()) out += ", started " + j["started"].get<std::string>();
    return out;
}

void WorkdirLock::check_path(const fs::path& workdir) {
    std::error_code ec;
    if (fs::exists(fs::symlink_status(workdir, ec)) && !fs::is_directory(workdir, ec)) {
        fs::file_type type = fs::status(workdir, ec).type();
        const char* kind = type == fs::file_type::not_found ? "a symbolic link to nothing" : units::file_kind(type);
        throw std::invalid_argument(
            fmt::format("workdir {} is {}, not a directory (choose --workdir)", workdir.string(), kind));
    }
    // A file on the way (create_directories would only say ENOTDIR): the
    // nearest ancestor that exists must be a directory.
    for (fs::path up = workdir.parent_path(); !up.empty(); up = up.parent_path()) {
        fs::file_status st = fs::status(up, ec);
        if (fs::exists(st)) {
            if (!fs::is_directory(st))
                throw std::invalid_argument(fmt::format("cannot create workdir {}: {} is {}, not a directory",
                                                        workdir.string(), up.string(), units::file_kind(st.type())));
            break;
        }
        if (up == up.parent_path()) break;
    }
}

WorkdirLock::WorkdirLock(const fs::path& workdir) : workdir_(workdir) {
    check_path(workdir);
    std::error_code ec;
    created_dir_ = !fs::exists(workdir, ec);
    fs::create_directories(workdir, ec);
    if (ec) refuse(ec.value(), fmt::format("cannot create workdir {}", workdir.string()));

    const fs::path path = workdir / file_name;
    // Creating the file changes the directory's times: put back with it.
    struct stat dir {};
    if (::stat(workdir.c_str(), &dir) == 0) {
        dir_times_[0] = dir.st_atim;
        dir_times_[1] = dir.st_mtim;
    }
    for (int attempt = 0;; ++attempt) {
        // Whether this run made the file: a refused run removes it again.
        int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
        created_file_ = fd >= 0;
        if (fd < 0 && errno == EEXIST) fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0 && errno == ENOENT && attempt < 3) continue;  // removed between the two opens
        if (fd < 0) refuse(errno, fmt::format("cannot open {}", path.string()));
        if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
            int err = errno;
            ::close(fd);
            if (err == EINTR) continue;
            if (err != EWOULDBLOCK) refuse(err, fmt::format("cannot lock {}", path.string()));
            // The holder writes who it is right after it takes the lock:
            // give it a moment to have done so.
            std::string who = holder(workdir);
            for (int i = 0; i < 20 && who.empty(); ++i) {
                std::this_thread::sleep_for(std::chrono::milliseconds(10));
                who = holder(workdir);
            }
            throw std::invalid_argument(fmt::format(
                "workdir {} is in use by another run: fedflow-host ({}) holds {}. A workdir takes one run at a "
                "time: wait for that run to end, or choose another --workdir",
                workdir.string(), who.empty() ? "it has not said which yet" : who, path.string()));
        }
        // Locked, but is it still the file at that path? No run removes
        // it, but someone may have replaced it between our open and flock,
        // and a lock on a file nobody else can open keeps nobody out.
        struct stat locked {
        }, now{};
        if (::fstat(fd, &locked) == 0 && ::stat(path.c_str(), &now) == 0 && locked.st_dev == now.st_dev &&
            locked.st_ino == now.st_ino) {
            fd_ = fd;
            break;
        }
        ::close(fd);
        if (attempt == 3)
            throw std::invalid_argument(fmt::format("{} keeps being replaced: cannot lock it", path.string()));
    }

    // What a refused run puts back: the holder it names, and its times.
    struct stat st {};
    if (::fstat(fd_, &st) == 0 && st.st_size <= 65536) {
        before_.resize(static_cast<std::size_t>(st.st_size));
        ssize_t n = ::pread(fd_, before_.data(), before_.size(), 0);
        before_.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
        times_[0] = st.st_atim;
        times_[1] = st.st_mtim;
        restorable_ = true;
    }

    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    nlohmann::json who{{"pid", ::getpid()}, {"host", host}, {"started", clock::utc_timestamp()}};
    std::string line = who.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    // Only for the message of a run that is refused: a full disk that
    // keeps us from writing it costs nothing else.
    if (::ftruncate(fd_, 0) == 0) (void)!::pwrite(fd_, line.data(), line.size(), 0);
}

WorkdirLock::~WorkdirLock() {
    if (fd_ < 0) return;
    // Put back while still holding the lock, so that no run sees the file
    // halfway.
    if (!accepted_) {
        const fs::path path = workdir_ / file_name;
        if (created_file_) {
            if (::unlink(path.c_str()) == 0) ::utimensat(AT_FDCWD, workdir_.c_str(), dir_times_, 0);
        } else if (restorable_ && ::ftruncate(fd_, 0) == 0 &&
                   ::pwrite(fd_, before_.data(), before_.size(), 0) == static_cast<ssize_t>(before_.size())) {
            ::futimens(fd_, times_);
        }
    }
    ::close(fd_);
    if (created_dir_) ::rmdir(workdir_.c_str());  // only when it is empty
}

}  // namespace fedflow
