#include "common/byte_file.hpp"

#include "common/file_io.hpp"
#include "common/integrity.hpp"

#include <algorithm>
#include <cerrno>
#include <memory>
#include <stdexcept>
#include <system_error>

#include <fcntl.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace fedflow::byte_file {

namespace {

[[noreturn]] void fail(const char* what, const fs::path& path, int err = errno) {
    throw std::system_error(err, std::generic_category(), std::string(what) + " " + path.string());
}

class Out {
public:
    explicit Out(const fs::path& path) : path_(path) {
        fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd_ < 0) fail("create", path);
    }
    ~Out() {
        if (fd_ >= 0) ::close(fd_);
    }
    Out(const Out&) = delete;
    Out& operator=(const Out&) = delete;

    int fd() const noexcept { return fd_; }
    void write(const std::uint8_t* p, std::size_t n) { file_io::write_all(fd_, p, n, path_); }
    void close() {
        const int fd = fd_;
        fd_ = -1;
        if (::close(fd) != 0) fail("close", path_);
    }

private:
    const fs::path& path_;
    int fd_ = -1;
};

// One buffer for every copy: the host copies one file at a time, and a
// buffer that stays allocated stays in the cache and in the page tables.
std::uint8_t* buffer() {
    thread_local std::unique_ptr<std::uint8_t[]> b(new std::uint8_t[chunk_size]);
    return b.get();
}

[[noreturn]] void truncated(const std::string& what, std::uint64_t done, std::uint64_t total) {
    throw std::runtime_error(what + " truncated: it ended after " + std::to_string(done) + " of " +
                             std::to_string(total) + " bytes");
}

// The errors by which a kernel says it cannot move bytes between these two
// files this way (not that a read or a write went wrong).
bool unsupported(int err) noexcept { return err == EXDEV || err == EINVAL || err == ENOSYS || err == EOPNOTSUPP; }

// A pipe, closed when it goes.
class Pipe {
public:
    Pipe() {
        if (::pipe2(fds_, O_CLOEXEC) != 0) throw std::system_error(errno, std::generic_category(), "pipe");
        // A larger pipe moves more pages per call; where the limit
        // (fs/pipe-max-size) refuses it, the default 64 KiB works too.
        const int size = ::fcntl(fds_[1], F_SETPIPE_SZ, 1 << 20);
        capacity_ = size > 0 ? static_cast<std::size_t>(size) : std::size_t{64} << 10;
    }
    ~Pipe() {
        ::close(fds_[0]);
        ::close(fds_[1]);
    }
    Pipe(const Pipe&) = delete;
    Pipe& operator=(const Pipe&) = delete;
    int in() const noexcept { return fds_[1]; }
    int out() const noexcept { return fds_[0]; }
    std::size_t capacity() const noexcept { return capacity_; }

private:
    int fds_[2] = {-1, -1};
    std::size_t capacity_ = 0;
};

// copy_file_range of n bytes; false when the kernel cannot (before any
// byte moved).
bool copy_range(int src, std::uint64_t n, Out& out, const fs::path& path, const std::string& what) {
    loff_t from = 0;
    while (static_cast<std::uint64_t>(from) < n) {
        const auto want = static_cast<std::size_t>(
            std::min<std::uint64_t>(n - static_cast<std::uint64_t>(from), std::uint64_t{1} << 30));
        const ssize_t r = ::copy_file_range(src, &from, out.fd(), nullptr, want, 0);
        if (r < 0) {
            if (errno == EINTR) continue;
            if (from == 0 && unsupported(errno)) return false;
            fail("copy into", path);
        }
        if (r == 0) truncated(what, static_cast<std::uint64_t>(from), n);
    }
    return true;
}

// splice() of n bytes through a pipe; false when the kernel cannot (before
// any byte moved).
bool splice_range(int src, std::uint64_t n, Out& out, const fs::path& path, const std::string& what) {
    Pipe pipe;
    loff_t from = 0;
    while (static_cast<std::uint64_t>(from) < n) {
        const auto want = static_cast<std::size_t>(
            std::min<std::uint64_t>(n - static_cast<std::uint64_t>(from), pipe.capacity()));
        const ssize_t in = ::splice(src, &from, pipe.in(), nullptr, want, SPLICE_F_MOVE);
        if (in < 0) {
            if (errno == EINTR) continue;
            if (from == 0 && unsupported(errno)) return false;
            throw std::system_error(errno, std::generic_category(), "read " + what);
        }
        if (in == 0) truncated(what, static_cast<std::uint64_t>(from), n);
        // Drain the pipe into the file before the next read: what is in
        // the pipe is the file's next bytes.
        for (auto left = static_cast<std::size_t>(in); left > 0;) {
            const ssize_t w = ::splice(pipe.out(), nullptr, out.fd(), nullptr, left, SPLICE_F_MOVE);
            if (w < 0) {
                if (errno == EINTR) continue;
                if (static_cast<std::uint64_t>(from) == static_cast<std::uint64_t>(in) &&
                    left == static_cast<std::size_t>(in) && unsupported(errno))
                    return false;
                fail("write", path);
            }
            if (w == 0) fail("write", path, EIO);
            left -= static_cast<std::size_t>(w);
        }
    }
    return true;
}

}  // namespace

bool copy_in_kernel(int src, std::uint64_t n, const fs::path& path, const std::string& what) {
    Out out(path);
    if (!copy_range(src, n, out, path, what) && !splice_range(src, n, out, path, what)) return false;
    out.close();
    return true;
}

Copied copy(int src, std::uint64_t n, std::uint64_t total, const fs::path& path, const std::string& what) {
    if (n > total) throw std::logic_error("byte_file::copy: n > total");
    Out out(path);
    std::uint8_t* buf = buffer();
    integrity::Hasher file, source;
    std::uint64_t done = 0;
    while (done < total) {
        const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(chunk_size, total - done));
        const ssize_t r = ::pread(src, buf, want, static_cast<off_t>(done));
        if (r < 0) {
            if (errno == EINTR) continue;
            throw std::system_error(errno, std::generic_category(), "read " + what);
        }
        if (r == 0) truncated(what, done, total);
        const auto got = static_cast<std::size_t>(r);
        source.update(buf, got);
        if (done < n) {
            const auto keep = static_cast<std::size_t>(std::min<std::uint64_t>(got, n - done));
            if (n != total) file.update(buf, keep);
            out.write(buf, keep);
        }
        done += got;
    }
    out.close();
    Copied c;
    c.source_checksum = source.digest();
    c.file_checksum = n == total ? c.source_checksum : file.digest();
    return c;
}

std::uint64_t write(const void* data, std::size_t n, const fs::path& path) {
    Out out(path);
    const auto* p = static_cast<const std::uint8_t*>(data);
    integrity::Hasher h;
    // Hashed a chunk at a time, just before write() reads the same chunk:
    // the bytes come from memory once.
    for (std::size_t done = 0; done < n;) {
        const std::size_t k = std::min(chunk_size, n - done);
        h.update(p + done, k);
        out.write(p + done, k);
        done += k;
    }
    out.close();
    return h.digest();
}

}  // namespace fedflow::byte_file
