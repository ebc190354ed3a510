#include "runner/result_receiver.hpp"

#include "common/integrity.hpp"
#include "common/shm.hpp"

#include <fedflow/detail/wire.hpp>

#include <fmt/core.h>

#include <memory>
#include <stdexcept>

namespace fedflow {

results::Written ResultReceiver::receive(const messages::Result& announced, const std::filesystem::path& dir) {
    const std::uint64_t count = announced.buffers.size();
    auto seg = std::make_shared<shm::Segment>(open(shm::result_name(prefix_)));
    const std::uint8_t* doc = integrity::check_result(seg->data(), seg->size(), announced.size);
    auto resolve = [&](std::uint64_t id, std::uint64_t n) -> Bytes {
        if (id >= count) throw wire::Error(fmt::format("reference to bytes buffer {} of {}", id, count));
        const messages::BytesBuffer& buffer = announced.buffers[id];
        if (!buffer.size) throw wire::Error(fmt::format("reference to bytes buffer {} of an earlier attempt", id));
        const std::uint64_t size = *buffer.size;
        auto b = std::make_shared<shm::Segment>(open(shm::bytes_name(prefix_, id)));
        if (b->size() < size)
            throw wire::Error(fmt::format("bytes buffer {} truncated: {} bytes of {}", id, b->size(), size));
        if (n > size) throw wire::Error(fmt::format("bytes buffer {} has {} bytes, not {}", id, size, n));
        if (integrity::checksum(b->data(), static_cast<std::size_t>(size)) != buffer.checksum)
            throw wire::Error(fmt::format(
                "bytes buffer {} corrupt: its checksum does not match (written to after train returned?)", id));
        return Bytes::view(b->data(), n, -1, b);
    };
    Value v = wire::decode(doc, static_cast<std::size_t>(announced.size), resolve, seg);
    if (!v.is<Dict>()) throw std::runtime_error("the result is not a dict");
    results::Written w = results::write_result(v.as<Dict>(), dir);
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
