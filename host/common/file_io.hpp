// file_io.hpp: writing and reading whole files, the one way the host (and
// the bundled `command` plugin) does it: never through a symbolic link, every
// error a std::system_error that names the path, and a file that readers may
// see at any time replaced atomically.
//
// Header-only, C++17 and POSIX: a plugin compiles it in (it links nothing of
// Fedflow).
#ifndef FEDFLOW_COMMON_FILE_IO_HPP
#define FEDFLOW_COMMON_FILE_IO_HPP

#include <cerrno>
#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace fedflow::file_io {

// Owns a file descriptor.
class Fd {
public:
    Fd() = default;
    explicit Fd(int fd) noexcept : fd_(fd) {}
    Fd(Fd&& o) noexcept : fd_(o.release()) {}
    Fd& operator=(Fd&& o) noexcept {
        if (this != &o) reset(o.release());
        return *this;
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    ~Fd() { reset(); }

    int get() const noexcept { return fd_; }
    bool valid() const noexcept { return fd_ >= 0; }
    int release() noexcept {
        int fd = fd_;
        fd_ = -1;
        return fd;
    }
    void reset(int fd = -1) noexcept {
        if (fd_ >= 0) ::close(fd_);
        fd_ = fd;
    }
    // close(2)'s result, for a writer that must know its data is out.
    int close() noexcept {
        int rc = fd_ >= 0 ? ::close(fd_) : 0;
        fd_ = -1;
        return rc;
    }

private:
    int fd_ = -1;
};

[[noreturn]] inline void fail(const char* what, const std::filesystem::path& path, int err = errno) {
    throw std::system_error(err, std::generic_category(), std::string(what) + " " + path.string());
}

// Writes all n bytes (through EINTR and short writes).
inline void write_all(int fd, const void* data, std::size_t n, const std::filesystem::path& path) {
    const auto* p = static_cast<const char*>(data);
    while (n > 0) {
        const ssize_t w = ::write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            fail("write", path);
        }
        p += w;
        n -= static_cast<std::size_t>(w);
    }
}

// Creates or truncates path (mode 0644, not through a symbolic link) and
// writes data into it.
inline void write_file(const std::filesystem::path& path, const void* data, std::size_t n) {
    Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644));
    if (!fd.valid()) fail("create", path);
    write_all(fd.get(), data, n, path);
    if (fd.close() != 0) fail("close", path);
}

// The temporary file that stands for path until it is complete:
// ".<name>.<pid>.tmp" beside it, which remove_temporaries finds.
inline std::filesystem::path temporary_for(const std::filesystem::path& path) {
    return path.parent_path() / ("." + path.filename().string() + "." + std::to_string(::getpid()) + ".tmp");
}

// Replaces path with text so that a reader, or a crash, never sees half a
// file: writes temporary_for(path) (its own, made exclusively; one
// that a killed process with the same pid left is replaced), then renames
// it over path. On failure the temporary file is removed and path is as it
// was. Not fsync'ed: atomic against a crash of the host, not of the machine.
inline void write_file_atomic(const std::filesystem::path& path, std::string_view text) {
    const std::filesystem::path temp = temporary_for(path);
    const int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
    Fd fd(::open(temp.c_str(), flags, 0644));
    if (!fd.valid() && errno == EEXIST) {
        ::unlink(temp.c_str());
        fd.reset(::open(temp.c_str(), flags, 0644));
    }
    if (!fd.valid()) fail("create", temp);
    try {
        write_all(fd.get(), text.data(), text.size(), temp);
        if (fd.close() != 0) fail("close", temp);
        if (::rename(temp.c_str(), path.c_str()) != 0) fail(("rename " + temp.string() + " to").c_str(), path);
    } catch (...) {
        ::unlink(temp.c_str());
        throw;
    }
}

// Removes from dir the temporary files that write_file_atomic makes
// (".<name>.<pid>.tmp"), which a process killed while it wrote leaves
// behind. Only the folder itself; errors are ignored.
inline void remove_temporaries(const std::filesystem::path& dir) {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
        const std::string name = e.path().filename().string();
        if (name.size() > 5 && name.front() == '.' && name.compare(name.size() - 4, 4, ".tmp") == 0)
            std::filesystem::remove(e.path(), ec);
    }
}

// The whole content of a regular file (not through a symbolic link).
inline std::string read_file(const std::filesystem::path& path) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd.valid()) fail("open", path);
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) fail("stat", path);
    if (!S_ISREG(st.st_mode)) fail("read (not a regular file)", path, EINVAL);
    std::string out;
    char buf[65536];
    for (;;) {
        const ssize_t r = ::read(fd.get(), buf, sizeof buf);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) fail("read", path);
        if (r == 0) return out;
        out.append(buf, static_cast<std::size_t>(r));
    }
}

}  // namespace fedflow::file_io

#endif  // FEDFLOW_COMMON_FILE_IO_HPP
