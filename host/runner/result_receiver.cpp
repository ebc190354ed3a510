#include "runner/result_receiver.hpp"

#include "common/byte_file.hpp"
#include "common/file_io.hpp"
#include "common/integrity.hpp"
#include "common/shm.hpp"

#include <fedflow/detail/wire.hpp>

#include <fmt/core.h>

#include <memory>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace fedflow {

namespace {

// The whole of a small segment, read with pread; nullopt when it is not
// small after all (it is mapped then).
std::optional<std::vector<std::uint8_t>> read_small(int fd, const std::string& name) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) throw std::system_error(errno, std::generic_category(), "stat " + name);
    if (static_cast<std::uint64_t>(st.st_size) > integrity::result_header_size + small_result_bytes)
        return std::nullopt;
    std::vector<std::uint8_t> data(static_cast<std::size_t>(st.st_size));
    std::size_t got = 0;
    while (got < data.size()) {
        ssize_t n = ::pread(fd, data.data() + got, data.size() - got, static_cast<off_t>(got));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw std::system_error(errno, std::generic_category(), "read " + name);
        if (n == 0) break;  // shrunk since: check_result finds it short
        got += static_cast<std::size_t>(n);
    }
    data.resize(got);
    return data;
}

}  // namespace

bool is_small(const messages::Result& announced) noexcept {
    std::uint64_t total = announced.size;
    for (const auto& b : announced.buffers) {
        total += b.size.value_or(0);
        if (total > small_result_bytes) return false;
    }
    return total <= small_result_bytes;
}

results::Written ResultReceiver::receive(const messages::Result& announced, const std::filesystem::path& dir) {
    const std::uint64_t count = announced.buffers.size();
    const std::string result_name = shm::result_name(prefix_);
    // What the decoded values may view (Bytes held inline): the bytes read,
    // or the mapping.
    std::shared_ptr<const void> keep;
    const std::uint8_t* data = nullptr;
    std::size_t size = 0;
    if (is_small(announced)) {
        file_io::Fd fd(open_fd(result_name));
        if (auto small = read_small(fd.get(), result_name)) {
            auto bytes = std::make_shared<std::vector<std::uint8_t>>(std::move(*small));
            data = bytes->data();
            size = bytes->size();
            keep = std::move(bytes);
        }
    }
    if (!keep) {
        auto seg = std::make_shared<shm::Segment>(open(result_name));
        data = seg->data();
        size = seg->size();
        keep = std::move(seg);
    }
    const std::uint8_t* doc = integrity::check_result(data, size, announced.size);
    // A reference becomes a Bytes without data that names its buffer: the
    // host never maps a Bytes buffer. write_result copies it from the
    // segment's descriptor (byte_file::copy) and checks the worker's
    // checksum as it goes: a buffer written to after train returned (an
    // asynchronous copy still running, a thread of the plugin) fails its
    // task here, rather than reach a reader that does not verify.
    auto resolve = [&](std::uint64_t id, std::uint64_t n) -> Bytes {
        if (id >= count) throw wire::Error(fmt::format("reference to bytes buffer {} of {}", id, count));
        const messages::BytesBuffer& buffer = announced.buffers[id];
        if (!buffer.size) throw wire::Error(fmt::format("reference to bytes buffer {} of an earlier attempt", id));
        if (n > *buffer.size)
            throw wire::Error(fmt::format("bytes buffer {} has {} bytes, not {}", id, *buffer.size, n));
        return Bytes::view(nullptr, static_cast<std::size_t>(n), static_cast<std::int64_t>(id));
    };
    auto copy = [&](std::uint64_t id, std::uint64_t n, const std::filesystem::path& path) -> std::uint64_t {
        const messages::BytesBuffer& buffer = announced.buffers[id];
        const std::uint64_t size = *buffer.size;
        const std::string name = shm::bytes_name(prefix_, id);
        file_io::Fd fd(open_fd(name));
        struct stat st {};
        if (::fstat(fd.get(), &st) != 0) throw std::system_error(errno, std::generic_category(), "stat " + name);
        if (static_cast<std::uint64_t>(st.st_size) < size)
            throw wire::Error(fmt::format("bytes buffer {} truncated: {} bytes of {}", id, st.st_size, size));
        byte_file::Copied c = byte_file::copy(fd.get(), n, size, path, fmt::format("bytes buffer {}", id));
        if (c.source_checksum != buffer.checksum)
            throw wire::Error(
                fmt::format("bytes buffer {} corrupt: its checksum does not match (written to after train returned?)",
                            id));
        return c.file_checksum;
    };
    Value v = wire::decode(doc, static_cast<std::size_t>(announced.size), resolve, keep);
    if (!v.is<Dict>()) throw std::runtime_error("the result is not a dict");
    results::Written w = results::write_result(v.as<Dict>(), dir, copy);
    // The names are known: no need to list /dev/shm on this path.
    remove(shm::result_name(prefix_));
    for (std::uint64_t id = 0; id < count; ++id) remove(shm::bytes_name(prefix_, id));
    if (!files_.empty()) {
        std::error_code ec;
        std::filesystem::remove(files_, ec);  // empty now, unless the worker made more than it announced
    }
    removed_ = true;
    return w;
}

shm::Segment ResultReceiver::open(const std::string& name) const {
    return files_.empty() ? shm::Segment::open_read_only(name) : shm::Segment::open_file_read_only(files_ / name);
}

int ResultReceiver::open_fd(const std::string& name) const {
    if (files_.empty()) return shm::Segment::open_fd_read_only(name);
    const std::filesystem::path path = files_ / name;
    const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) throw std::system_error(errno, std::generic_category(), "open " + path.string());
    return fd;
}

void ResultReceiver::remove(const std::string& name) const noexcept {
    if (files_.empty()) {
        shm::Segment::remove(name);
        return;
    }
    std::error_code ec;
    std::filesystem::remove(files_ / name, ec);
}

void ResultReceiver::discard() noexcept {
    if (files_.empty()) {
        shm::remove_prefix(prefix_ + "-");
        return;
    }
    std::error_code ec;
    std::filesystem::remove_all(files_, ec);
}

}  // namespace fedflow
