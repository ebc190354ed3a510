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

// XXH64 (Yann Collet's xxHash, 64-bit), seed 0, written out rather than a
// dependency: Debian's libxxhash is not on every build machine this runs
// on, and these forty lines are the whole algorithm. Hasher computes the
// same value over data given in pieces (a byte file hashed as it is
// copied); checksum() is the one-shot form.
namespace detail {
inline constexpr std::uint64_t P1 = 0x9E3779B185EBCA87ULL, P2 = 0xC2B2AE3D27D4EB4FULL, P3 = 0x165667B19E3779F9ULL,
                               P4 = 0x85EBCA77C2B2AE63ULL, P5 = 0x27D4EB2F165667C5ULL;
inline std::uint64_t rotl(std::uint64_t x, int r) noexcept { return (x << r) | (x >> (64 - r)); }
inline std::uint64_t read64(const unsigned char* p) noexcept {
    std::uint64_t v;
    std::memcpy(&v, p, 8);
    return v;  // little-endian hosts only (x86-64, aarch64)
}
inline std::uint64_t read32(const unsigned char* p) noexcept {
    std::uint32_t v;
    std::memcpy(&v, p, 4);
    return static_cast<std::uint64_t>(v);
}
inline std::uint64_t round(std::uint64_t acc, std::uint64_t in) noexcept { return rotl(acc + in * P2, 31) * P1; }
inline std::uint64_t merge(std::uint64_t acc, std::uint64_t v) noexcept { return (acc ^ round(0, v)) * P1 + P4; }
// The last (size % 32) bytes and the avalanche.
inline std::uint64_t finish(std::uint64_t h, const unsigned char* p, const unsigned char* end) noexcept {
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
}  // namespace detail

class Hasher {
public:
    explicit Hasher(std::uint64_t seed = 0) noexcept
        : v_{seed + detail::P1 + detail::P2, seed + detail::P2, seed, seed - detail::P1}, seed_(seed) {}

    void update(const void* data, std::size_t size) noexcept {
        using namespace detail;
        const auto* p = static_cast<const unsigned char*>(data);
        const unsigned char* end = p + size;
        total_ += size;
        if (held_ + size < 32) {
            if (size != 0) std::memcpy(buf_ + held_, p, size);
            held_ += size;
            return;
        }
        if (held_ != 0) {
            const std::size_t take = 32 - held_;
            std::memcpy(buf_ + held_, p, take);
            stripe(buf_);
            p += take;
            held_ = 0;
        }
        // Four lanes in locals: the compiler keeps them in registers.
        std::uint64_t v1 = v_[0], v2 = v_[1], v3 = v_[2], v4 = v_[3];
        for (; p + 32 <= end; p += 32) {
            v1 = round(v1, read64(p));
            v2 = round(v2, read64(p + 8));
            v3 = round(v3, read64(p + 16));
            v4 = round(v4, read64(p + 24));
        }
        v_[0] = v1, v_[1] = v2, v_[2] = v3, v_[3] = v4;
        held_ = static_cast<std::size_t>(end - p);
        if (held_ != 0) std::memcpy(buf_, p, held_);
    }

    std::uint64_t digest() const noexcept {
        using namespace detail;
        std::uint64_t h;
        if (total_ >= 32) {
            h = rotl(v_[0], 1) + rotl(v_[1], 7) + rotl(v_[2], 12) + rotl(v_[3], 18);
            for (std::uint64_t v : v_) h = merge(h, v);
        } else {
            h = seed_ + P5;
        }
        h += total_;
        return finish(h, buf_, buf_ + held_);
    }

private:
    void stripe(const unsigned char* p) noexcept {
        for (int i = 0; i < 4; ++i) v_[i] = detail::round(v_[i], detail::read64(p + 8 * i));
    }
    std::uint64_t v_[4];
    std::uint64_t seed_;
    std::uint64_t total_ = 0;
    unsigned char buf_[32] = {};
    std::size_t held_ = 0;
};

inline std::uint64_t checksum(const void* data, std::size_t size, std::uint64_t seed = 0) noexcept {
    Hasher h(seed);
    h.update(data, size);
    return h.digest();
}

// A checksum as result.json writes it in a byte file's "$bytes" entry: 16
// lowercase hex digits.
inline std::string checksum_text(std::uint64_t sum) {
    static const char digits[] = "0123456789abcdef";
    std::string s(16, '0');
    for (int i = 15; i >= 0; --i, sum >>= 4) s[static_cast<std::size_t>(i)] = digits[sum & 0xf];
    return s;
}
// The inverse; false when text is not 16 hex digits.
inline bool parse_checksum(const std::string& text, std::uint64_t& sum) noexcept {
    if (text.size() != 16) return false;
    std::uint64_t v = 0;
    for (char c : text) {
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0) return false;
        v = v << 4 | static_cast<std::uint64_t>(d);
    }
    sum = v;
    return true;
}

// The first 64 bytes of a result segment (64 keeps the encoded document
// that follows as aligned as the segment itself).
struct ResultHeader {
    char magic[8];          // "FFRESULT"
    std::uint32_t version;  // 1
    std::uint32_t reserved;
    std::uint64_t length;    // bytes of the encoded document after the header
    std::uint64_t checksum;  // checksum() of those bytes
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
inline const std::uint8_t* check_result(const std::uint8_t* segment, std::size_t segment_size,
                                        std::uint64_t announced) {
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
        throw std::runtime_error("result segment truncated: " + std::to_string(segment_size - sizeof h) + " bytes of " +
                                 std::to_string(h.length));
    const std::uint8_t* doc = segment + sizeof h;
    if (checksum(doc, h.length) != h.checksum)
        throw std::runtime_error(
            "result segment corrupt: its checksum does not match (written to after train returned?)");
    return doc;
}

}  // namespace fedflow::integrity
