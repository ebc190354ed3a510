#include "worker/inputs.hpp"

#include "common/inputs_manifest.hpp"
#include "common/integrity.hpp"

#include <fedflow/detail/wire.hpp>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace fedflow::worker {

namespace {

[[noreturn]] void fail(const std::string& path, const std::string& why) {
    throw std::runtime_error("input byte file " + path + ": " + why);
}

}  // namespace

Inputs::Inputs(const std::string& name, bool verify) : segment_(shm::Segment::open_read_only(name)) {
    inputs_manifest::Decoded d = inputs_manifest::decode(segment_.data(), segment_.size());
    document_ = {d.inputs, d.inputs_size};
    paths_.reserve(d.files.size());
    table_.reserve(d.files.size());
    for (const inputs_manifest::File& f : d.files) {
        paths_.push_back(f.path);
        const int fd = ::open(f.path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0) fail(f.path, std::strerror(errno));
        struct stat st {};
        if (::fstat(fd, &st) != 0) {
            const int e = errno;
            ::close(fd);
            fail(f.path, std::strerror(e));
        }
        if (!S_ISREG(st.st_mode)) {
            ::close(fd);
            fail(f.path, "not a regular file");
        }
        if (static_cast<std::uint64_t>(st.st_size) != f.size) {
            ::close(fd);
            fail(f.path, "it has " + std::to_string(st.st_size) + " bytes, its result.json says " +
                             std::to_string(f.size) +
                             (static_cast<std::uint64_t>(st.st_size) < f.size ? " (truncated)" : ""));
        }
        const std::uint8_t* data = nullptr;
        if (f.size != 0) {
            // Read-only and shared: the pages are the page cache's, so N
            // tasks that map the same model hold it once.
            void* p = ::mmap(nullptr, static_cast<std::size_t>(f.size), PROT_READ, MAP_SHARED, fd, 0);
            if (p == MAP_FAILED) {
                const int e = errno;
                ::close(fd);
                fail(f.path, std::string("cannot map it: ") + std::strerror(e));
            }
            data = static_cast<const std::uint8_t*>(p);
        }
        ::close(fd);  // the mapping keeps the file
        table_.push_back({data, f.size, nullptr});
        if (verify && f.checksum && integrity::checksum(data, static_cast<std::size_t>(f.size)) != *f.checksum)
            fail(f.path, "corrupt: its checksum does not match the one its result.json holds");
    }
    for (std::size_t i = 0; i < table_.size(); ++i) table_[i].path = paths_[i].c_str();
}

Inputs::~Inputs() {
    for (const fedflow_input_file& f : table_)
        if (f.data != nullptr) ::munmap(const_cast<std::uint8_t*>(f.data), static_cast<std::size_t>(f.size));
}

fedflow_buffer Inputs::inline_copy() {
    if (inline_.empty()) {
        auto resolve = [&](std::uint64_t id, std::uint64_t n) -> Bytes {
            if (id >= table_.size())
                throw wire::Error("reference to input byte file " + std::to_string(id) + " of " +
                                  std::to_string(table_.size()));
            if (n > table_[id].size)
                throw wire::Error("reference to " + std::to_string(n) + " bytes of " + paths_[id] + ", which has " +
                                  std::to_string(table_[id].size));
            return Bytes::view(const_cast<std::uint8_t*>(table_[id].data), static_cast<std::size_t>(n));
        };
        inline_ = wire::encode(wire::decode(document_.data, document_.size, resolve));
    }
    return {reinterpret_cast<const std::uint8_t*>(inline_.data()), inline_.size()};
}

}  // namespace fedflow::worker
