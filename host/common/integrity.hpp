// integrity.hpp: what makes a result that reaches the host trustworthy: a
// 64-bit checksum (XXH64, about 10 GB/s) and the header at the start of a
// result segment. The worker writes the header after train returns; the
// host accepts the segment only when magic, version, length and checksum
// all agree, so a truncated or scribbled-on result is never written out.
// Bytes buffers are checked the same way, against the sizes and checksums
// that travel with the result message.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

namespace fedflow::integrity {

// XXH64 (Yann Collet's xxHash, 64-bit), seed 0.
inline std::uint64_t checksum(const void* data, std::size_t size, std::uint64_t seed = 0) noexcept {
    constexpr std::uint64_t P1 = 0x9E3779B185EBCA87ULL, P2 = 0xC2B2AE3D27D4EB4FULL, P3 = 0x165667B19E3779F9ULL,
                            P4 = 0x85EBCA77C2B2AE63ULL, P5 = 0x27D4EB2F165667C5ULL;
    auto rotl = [](std::uint64_t x, int r) { return (x << r) | (x >> (64 - r)); };
    auto read64 = [](const unsigned char* p) {
        std::uint64_t v;
        std::memcpy(&v, p, 8);
        return v;  // little-endian hosts only (x86-64, aarch64)
    };
    auto read32 = [](const unsigned char* p) {
        std::uint32_t v;
        std::memcpy(&v, p, 4);
        return static_cast<std::uint64_t>(v);
    };
    auto round = [&](std::uint64_t acc, std::uint64_t in) { return rotl(acc + in * P2, 31) * P1; };
    auto merge = [&](std::uint64_t acc, std::uint64_t v) { return (acc ^ round(0, v)) * P1 + P4; };

    const auto* p = static_cast<const unsigned char*>(data);
    const unsigned char* end = p + size;
    std::uint64_t h;
    if (size >= 32) {
        std::uint64_t v1 = seed + P1 + P2, v2 = seed + P2, v3 = seed, v4 = seed - P1;
        const unsigned char* limit = end - 32;
        do {
            v1 = round(v1, read64(p));
            v2 = round(v2, read64(p + 8));
            v3 = round(v3, read64(p + 16));
            v4 = round(v4, read64(p + 24));
            p += 32;
        } while (p <= limit);
        h = rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18);
        h = merge(h, v1);
        h = merge(h, v2);
        h = merge(h, v3);
        h = merge(h, v4);
    } else {
        h = seed + P5;
    }
    h += static_cast<std::uint64_t>(size);
    for (; p + 8 <= end; p += 8) h = rotl(h ^ round(0, read64(p)), 27) * P1 + P4;
    if (p + 4 <= end) {
        h = rotl(h ^ (read32(p) * P1), 23) * P2 + P3;
        p += 4;
    }
    for (; p < end; ++p) h = rotl(h ^ (*p * P5), 11) * P1;
    h ^= h >> 33;
    h *= P2;
    h ^= h >> 29;
    h *= P3;
    h ^= h >> 32;
    return h;
}

// The first 64 bytes of a result segment (64 keeps the encoded document
// that follows as aligned as the segment itself).
struct ResultHeader {
    char magic[8];            // "FFRESULT"
    std::uint32_t version;    // 1
    std::uint32_t reserved;
    std::uint64_t length;     // bytes of the encoded document after the header
    std::uint64_t checksum;   // checksum() of those bytes
    std::uint8_t padding[32];
};
static_assert(sizeof(ResultHeader) == 64);

inline constexpr std::size_t result_header_size = sizeof(ResultHeader);

inline void write_result_header(void* segment, std::uint64_t length) noexcept {
    ResultHeader h{};
    std::memcpy(h.magic, "FFRESULT", 8);
    h.version = 1;
    h.length = length;
    h.checksum = checksum(static_cast<const unsigned char*>(segment) + sizeof h, length);
    std::memcpy(segment, &h, sizeof h);
}

// The encoded document of a result segment of segment_size bytes, after
// checking it against its header and the length the worker announced.
// Throws std::runtime_error saying what is wrong.
inline const std::uint8_t* check_result(const std::uint8_t* segment, std::size_t segment_size, std::uint64_t announced) {
    if (segment_size < sizeof(ResultHeader))
        throw std::runtime_error("result segment truncated: " + std::to_string(segment_size) +
                                 " bytes, smaller than its header");
    ResultHeader h;
    std::memcpy(&h, segment, sizeof h);
    if (std::memcmp(h.magic, "FFRESULT", 8) != 0 || h.version != 1)
        throw std::runtime_error("result segment has no valid header");
    if (h.length != announced)
        throw std::runtime_error("result segment says " + std::to_string(h.length) + " bytes, the worker announced " +
                                 std::to_string(announced));
    if (h.length > segment_size - sizeof h)
        throw std::runtime_error("result segment truncated: " + std::to_string(segment_size - sizeof h) +
                                 " bytes of " + std::to_string(h.length));
    const std::uint8_t* doc = segment + sizeof h;
    if (checksum(doc, h.length) != h.checksum)
        throw std::runtime_error("result segment corrupt: its checksum does not match (written to after train returned?)");
    return doc;
}

}  // namespace fedflow::integrity
