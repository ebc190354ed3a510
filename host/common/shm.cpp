#include "shm.hpp"

#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/permissions.hpp>
#include <boost/interprocess/shared_memory_object.hpp>

#include <cstring>
#include <filesystem>

#include <fcntl.h>
#include <sys/mman.h>
#include <stdexcept>

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

Segment Segment::open_read_only(const std::string& name) {
    auto impl = std::make_unique<Impl>();
    impl->name = name;
    try {
        bip::shared_memory_object obj(bip::open_only, name.c_str(), bip::read_only);
        bip::offset_t n = 0;
        obj.get_size(n);
        impl->size = static_cast<std::size_t>(n);
        if (n != 0) {
            impl->region = bip::mapped_region(obj, bip::read_only);
            // Fault the pages in with one call instead of one fault per page
            // while they are read (2x faster for large results; ignored by
            // kernels older than 5.14).
            ::madvise(impl->region.get_address(), impl->region.get_size(), MADV_POPULATE_READ);
        }
    } catch (const bip::interprocess_exception& e) {
        throw std::runtime_error("shared memory '" + name + "': " + e.what());
    }
    return Segment(std::move(impl));
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
