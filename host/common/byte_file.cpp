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

}  // namespace

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
        if (r == 0)
            throw std::runtime_error(what + " truncated: it ended after " + std::to_string(done) + " of " +
                                     std::to_string(total) + " bytes");
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
