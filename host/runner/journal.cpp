#include "runner/journal.hpp"

#include "common/clock.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <system_error>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace fedflow {

Journal::~Journal() {
    if (fd_ >= 0) {
        flush_pending();
        sync();
        ::close(fd_);
    }
}

std::size_t Journal::open(const std::filesystem::path& path, ProgressView* view) {
    fd_ = ::open(path.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) throw std::system_error(errno, std::generic_category(), "open " + path.string());
    view_ = view;
    struct stat st {};
    if (::fstat(fd_, &st) != 0) throw std::system_error(errno, std::generic_category(), "stat " + path.string());
    size_ = st.st_size;
    // Find the end of the last whole line, reading backwards.
    off_t end = size_;
    std::vector<char> buf(65536);
    while (end > 0) {
        off_t from = std::max<off_t>(0, end - static_cast<off_t>(buf.size()));
        ssize_t n = ::pread(fd_, buf.data(), static_cast<std::size_t>(end - from), from);
        if (n < 0 && errno == EINTR) continue;
        if (n != end - from)
            throw std::system_error(errno ? errno : EIO, std::generic_category(), "read " + path.string());
        auto nl = std::find(buf.rbegin() + static_cast<std::ptrdiff_t>(buf.size() - static_cast<std::size_t>(n)),
                            buf.rend(), '\n');
        if (nl != buf.rend()) {
            end = from + static_cast<off_t>(buf.rend() - nl);
            break;
        }
        end = from;
    }
    if (end == size_) return 0;
    if (::ftruncate(fd_, end) != 0)
        throw std::system_error(errno, std::generic_category(), "truncate " + path.string());
    std::size_t cut = static_cast<std::size_t>(size_ - end);
    size_ = end;
    return cut;
}

void Journal::flush_pending() {
    std::size_t done = 0;
    while (done < pending_.size()) {
        ssize_t w = ::write(fd_, pending_.data() + done, pending_.size() - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            if (error_ == 0) error_ = w < 0 ? errno : EIO;
            // Whole lines only: what got in is taken out again (which frees
            // space rather than needing it), and written again later.
            if (done > 0 && ::ftruncate(fd_, size_) != 0) {
                // Cannot happen on a local filesystem; the next open cuts it.
            }
            return;
        }
        done += static_cast<std::size_t>(w);
    }
    size_ += static_cast<off_t>(done);
    pending_.clear();
}

bool Journal::sync() {
    if (fd_ < 0) return true;
    if (!pending_.empty()) return false;
    if (!unsynced_) return true;
    const bool synced = ::fdatasync(fd_) == 0;
    if (!synced && error_ == 0) error_ = errno;
    unsynced_ = false;
    return synced;
}

void read_journal(const std::filesystem::path& path, const std::function<bool(const std::string&)>& line) {
    std::ifstream in(path, std::ios::binary);
    std::string text;
    // getline sets eof only when it ran out before a newline.
    while (std::getline(in, text) && !in.eof())
        if (!line(text)) return;
}

std::int64_t Journal::elapsed_ms() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start_).count();
}

void Journal::write(nlohmann::ordered_json event) {
    nlohmann::ordered_json line;
    line["time"] = clock::utc_timestamp();
    line["elapsed_ms"] = elapsed_ms();
    for (auto& [k, v] : event.items()) line[k] = std::move(v);
    std::string text = line.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
    text += '\n';
    if (fd_ >= 0) {
        pending_ += text;
        flush_pending();
        const std::string kind = line.value("event", "");
        const std::string status = line.value("status", "");
        if (kind == "run_start" || kind == "group_end" || kind == "run_end" || kind == "round_removed" ||
            (kind == "status" && (status == "FINISHED" || status == "EXCEPTION")))
            unsynced_ = true;
    }
    if (view_ != nullptr) view_->event(line);
    if (listener_) listener_(line);
}

}  // namespace fedflow
