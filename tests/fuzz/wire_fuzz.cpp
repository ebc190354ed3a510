// libFuzzer target: the FFV1 decoder (fedflow/detail/wire.hpp) on arbitrary
// bytes, with a resolver for BYTES_REF like the host's.
//
// decode must either return a value or throw wire::Error; any other
// exception, a crash, an out-of-bounds read, a leak or undefined behaviour
// is a bug. A value that decodes must encode again (the encoder accepts
// whatever the decoder does), and that encoding must be stable: decoding
// and encoding it once more gives the same bytes.
#include <fedflow/detail/wire.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

namespace wire = fedflow::wire;

namespace {

// Shared buffers 0..3 of 64 bytes each, like the ids the host handed out.
std::uint8_t shared[4][64];

fedflow::Bytes resolve(std::uint64_t id, std::uint64_t size) {
    if (id >= 4) throw wire::Error("reference to bytes buffer " + std::to_string(id) + " of 4");
    if (size > sizeof shared[0]) throw wire::Error("bytes buffer too small");
    return fedflow::Bytes::view(shared[id], size, static_cast<std::int64_t>(id));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fedflow::Value v;
    try {
        v = wire::decode(data, size, resolve);
    } catch (const wire::Error&) {
        return 0;  // rejected: the expected answer to most inputs
    }
    // Decoded: BYTES views point into data, which is valid for this call.
    std::string once = wire::encode(v);
    fedflow::Value again = wire::decode(reinterpret_cast<const std::uint8_t*>(once.data()), once.size(), resolve);
    if (wire::encode(again) != once) std::abort();
    return 0;
}
