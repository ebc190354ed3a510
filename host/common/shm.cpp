#include "common/shm.hpp"

#include <boost/interprocess/file_mapping.hpp>
#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/permissions.hpp>
#include <boost/interprocess/shared_memory_object.hpp>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <stdexcept>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace bip = boost::interprocess;

namespace fedflow::shm {

std::string result_name(const std::string& prefix) { return prefix + "-r"; }
std::string bytes_name(const std::string& prefix, std::uint64_t id) { return prefix + "-b" + std::to_string(id); }

struct Segment::Impl {
    std::string name;
    bip::mapped_region region;
    std::size_t size = 0;
};

Segment::Segment(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Segment::Segment(Segment&&) noexcept = default;
Segment& Segment::operator=(Segment&&) noexcept = default;
Segment::~Segment() = default;

std::uint8_t* Segment::data() const noexcept {
    return impl_->size == 0 ? nullptr : static_cast<std::uint8_t*>(impl_->region.get_address());
}
std::size_t Segment::size() const noexcept { return impl_->size; }
const std::string& Segment::name() const noexcept { return impl_->name; }

Segment Segment::create(const std::string& name, std::size_t size) {
    auto impl = std::make_unique<Impl>();
    impl->name = name;
    impl->size = size;
    try {
        bip::permissions owner_only(0600);
        bip::shared_memory_object obj(bip::create_only, name.c_str(), bip::read_write, owner_only);
        obj.truncate(static_cast<bip::offset_t>(size));
        if (size != 0) {
            // tmpfs accepts a truncate beyond its free space and fails later,
            // with SIGBUS on first touch: reserve the pages now, so that a
            // full /dev/shm is an error here, not a crash in the writer.
            int rc = ::posix_fallocate(obj.get_mapping_handle().handle, 0, static_cast<off_t>(size));
            if (rc != 0) {
                bip::shared_memory_object::remove(name.c_str());
                throw std::runtime_error("shared memory '" + name + "' (" + std::to_string(size) +
                                         " bytes): " + std::strerror(rc) + " (is /dev/shm full?)");
            }
            impl->region = bip::mapped_region(obj, bip::read_write);
        }
    } catch (const bip::interprocess_exception& e) {
        throw std::runtime_error("shared memory '" + name + "' (" + std::to_string(size) + " bytes): " + e.what());
    }
    return Segment(std::move(impl));
}

namespace {

// Maps the existing segment impl.name with mode (Impl deduced: it is private
// to Segment).
template <class Impl>
void map_existing(Impl& impl, bip::mode_t mode) {
    try {
        bip::shared_memory_object obj(bip::open_only, impl.name.c_str(), mode);
        bip::offset_t n = 0;
        obj.get_size(n);
        impl.size = static_cast<std::size_t>(n);
        if (n != 0) {
            impl.region = bip::mapped_region(obj, mode);
            // Fault the pages in with one call instead of one fault per page
            // while they are read (2x faster for large results; ignored by
            // kernels older than 5.14).
            if (mode == bip::read_only)
                ::madvise(impl.region.get_address(), impl.region.get_size(), MADV_POPULATE_READ);
        }
    } catch (const bip::interprocess_exception& e) {
        throw std::runtime_error("shared memory '" + impl.name + "': " + e.what());
    }
}

}  // namespace

Segment Segment::open_read_only(const std::string& name) {
    auto impl = std::make_unique<Impl>();
    impl->name = name;
    map_existing(*impl, bip::read_only);
    return Segment(std::move(impl));
}

Segment Segment::open_file_read_only(const std::string& path) {
    auto impl = std::make_unique<Impl>();
    impl->name = path;
    std::error_code ec;
    auto n = std::filesystem::file_size(path, ec);
    if (ec) throw std::runtime_error("'" + path + "': " + ec.message());
    impl->size = static_cast<std::size_t>(n);
    try {
        if (n != 0) {
            bip::file_mapping file(path.c_str(), bip::read_only);
            impl->region = bip::mapped_region(file, bip::read_only, 0, impl->size);
        }
    } catch (const bip::interprocess_exception& e) {
        throw std::runtime_error("'" + path + "': " + e.what());
    }
    return Segment(std::move(impl));
}

Segment Segment::open_read_write(const std::string& name) {
    auto impl = std::make_unique<Impl>();
    impl->name = name;
    map_existing(*impl, bip::read_write);
    return Segment(std::move(impl));
}

int Segment::open_fd_read_only(const std::string& name) {
    int fd = ::shm_open(("/" + name).c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW, 0);
    if (fd < 0) throw std::runtime_error("shared memory '" + name + "': " + std::strerror(errno));
    return fd;
}

bool Segment::remove(const std::string& name) noexcept { return bip::shared_memory_object::remove(name.c_str()); }

std::vector<std::string> list_prefix(const std::string& prefix) {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator("/dev/shm", ec)) {
        std::string n = e.path().filename().string();
        if (n.compare(0, prefix.size(), prefix) == 0) out.push_back(n);
    }
    return out;
}

namespace {

// "fedflow-<digits>-<8 hex>": the run of a segment name, or "" for a name
// that is not a run's.
std::string run_of(const std::string& name) {
    const std::string head = "fedflow-";
    if (name.compare(0, head.size(), head) != 0) return {};
    std::size_t i = head.size(), digits = 0;
    while (i < name.size() && name[i] >= '0' && name[i] <= '9') ++i, ++digits;
    if (digits == 0 || i >= name.size() || name[i] != '-') return {};
    std::size_t hex = 0;
    for (++i; i < name.size() && hex < 8 && std::isxdigit(static_cast<unsigned char>(name[i])); ++i) ++hex;
    if (hex != 8 || (i < name.size() && name[i] != '-' && name[i] != '.')) return {};
    return name.substr(0, i);
}

// The lock file we hold is the one at its name: a sweep may have removed
// the name between our create and our flock (it found the file unlocked).
bool still_named(int fd, const std::string& name) {
    struct stat held {
    }, now{};
    return ::fstat(fd, &held) == 0 && ::stat(("/dev/shm/" + name).c_str(), &now) == 0 && held.st_dev == now.st_dev &&
           held.st_ino == now.st_ino;
}

}  // namespace

RunLock::RunLock() {
    std::random_device rd;
    for (int attempt = 0; attempt < 8; ++attempt) {
        prefix_ = "fedflow-" + std::to_string(::getpid()) + "-";
        char hex[9];
        std::snprintf(hex, sizeof hex, "%08x", static_cast<unsigned>(rd()));
        prefix_ += hex;
        const std::string name = lock_name(prefix_);
        int fd = ::shm_open(("/" + name).c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0) {
            if (errno == EEXIST) continue;
            throw std::runtime_error("shared memory '" + name + "': " + std::strerror(errno));
        }
        if (::flock(fd, LOCK_EX | LOCK_NB) == 0 && still_named(fd, name)) {
            fd_ = fd;
            return;
        }
        ::close(fd);
    }
    throw std::runtime_error("cannot claim a shared-memory prefix in /dev/shm: every try was taken or removed");
}

RunLock::~RunLock() {
    ::shm_unlink(("/" + lock_name(prefix_)).c_str());
    ::close(fd_);
}

Sweep remove_abandoned(const std::string& own_prefix) {
    Sweep sweep;
    std::map<std::string, std::vector<std::string>> runs;  // run prefix -> its names
    for (const auto& name : list_prefix("fedflow-")) {
        std::string run = run_of(name);
        if (!run.empty() && run != own_prefix) runs[run].push_back(name);
    }
    for (const auto& [run, names] : runs) {
        const std::string lock = RunLock::lock_name(run);
        int fd = ::shm_open(("/" + lock).c_str(), O_RDWR | O_CLOEXEC, 0);
        if (fd < 0) {
            // No lock file (or one of another user's): nothing proves the
            // run gone. ENOENT after we listed it: another sweep removed it.
            if (errno != ENOENT || std::find(names.begin(), names.end(), lock) == names.end())
                sweep.unproven += names.size();
            continue;
        }
        if (::flock(fd, LOCK_EX | LOCK_NB) != 0 || !still_named(fd, lock)) {
            ::close(fd);  // held: the run is alive
            continue;
        }
        // Ours now, so a concurrent sweep leaves the run to us; its lock
        // goes last, so that a sweep killed halfway leaves a run that the
        // next one still recognises.
        for (const auto& name : list_prefix(run + "-"))
            if (Segment::remove(name)) ++sweep.removed;
        ::shm_unlink(("/" + lock).c_str());
        ::close(fd);
    }
    return sweep;
}

std::size_t remove_prefix(const std::string& prefix) noexcept {
    std::size_t n = 0;
    try {
        for (const auto& name : list_prefix(prefix))
            if (Segment::remove(name)) ++n;
    } catch (...) {
    }
    return n;
}

}  // namespace fedflow::shm
