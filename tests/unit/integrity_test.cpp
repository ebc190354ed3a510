// Result integrity: XXH64 against its published test values, and the result
// segment header that makes the host refuse truncated or corrupt results.
#include "common/integrity.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

using namespace fedflow;

TEST_CASE("checksum is XXH64") {
    CHECK(integrity::checksum("", 0) == 0xEF46DB3751D8E999ULL);
    CHECK(integrity::checksum("a", 1) == 0xD24EC4F1A98C6E5BULL);
    CHECK(integrity::checksum("abc", 3) == 0x44BC2CF5AD770999ULL);
    // Every length path: the 32-byte stripes, 8-byte words, a 4-byte word, single bytes.
    std::string text = "Nobody inspects the spammish repetition";
    CHECK(integrity::checksum(text.data(), text.size()) == 0xFBCEA83C8A378BF1ULL);
    std::vector<unsigned char> one(100, 7);
    std::uint64_t before = integrity::checksum(one.data(), one.size());
    one[57] ^= 1;
    CHECK(integrity::checksum(one.data(), one.size()) != before);
}

TEST_CASE("Hasher: the same checksum whatever pieces the bytes come in") {
    std::vector<unsigned char> data(1000);
    for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<unsigned char>(i * 131 + 7);
    for (std::size_t size : {0, 1, 3, 4, 31, 32, 33, 63, 64, 100, 1000}) {
        const std::uint64_t whole = integrity::checksum(data.data(), size);
        for (std::size_t piece : {1, 5, 8, 31, 32, 33, 64, 999}) {
            integrity::Hasher h;
            for (std::size_t at = 0; at < size; at += piece) h.update(data.data() + at, std::min(piece, size - at));
            CAPTURE(size);
            CAPTURE(piece);
            CHECK(h.digest() == whole);
        }
    }
    integrity::Hasher h;
    h.update("Nobody inspects", 15);
    h.update(" the spammish repetition", 24);
    CHECK(h.digest() == 0xFBCEA83C8A378BF1ULL);
}

TEST_CASE("a checksum as result.json writes it: 16 hex digits, and back") {
    CHECK(integrity::checksum_text(0xFBCEA83C8A378BF1ULL) == "fbcea83c8a378bf1");
    CHECK(integrity::checksum_text(1) == "0000000000000001");
    std::uint64_t sum = 0;
    CHECK(integrity::parse_checksum("fbcea83c8a378bf1", sum));
    CHECK(sum == 0xFBCEA83C8A378BF1ULL);
    CHECK(integrity::parse_checksum("FBCEA83C8A378BF1", sum));
    CHECK(sum == 0xFBCEA83C8A378BF1ULL);
    CHECK_FALSE(integrity::parse_checksum("fbcea83c8a378bf", sum));    // 15 digits
    CHECK_FALSE(integrity::parse_checksum("fbcea83c8a378bf10", sum));  // 17
    CHECK_FALSE(integrity::parse_checksum("fbcea83c8a378bfg", sum));
    CHECK_FALSE(integrity::parse_checksum("", sum));
}

namespace {

std::vector<std::uint8_t> sealed(const std::string& doc) {
    std::vector<std::uint8_t> seg(integrity::result_header_size + doc.size());
    std::copy(doc.begin(), doc.end(), seg.begin() + integrity::result_header_size);
    integrity::write_result_header(seg.data(), doc.size());
    return seg;
}

}  // namespace

TEST_CASE("a sealed result segment is accepted as it is") {
    std::vector<std::uint8_t> seg = sealed("FFV1 document bytes");
    const std::uint8_t* doc = integrity::check_result(seg.data(), seg.size(), 19);
    CHECK(std::string(reinterpret_cast<const char*>(doc), 19) == "FFV1 document bytes");
    std::vector<std::uint8_t> empty = sealed("");
    CHECK(integrity::check_result(empty.data(), empty.size(), 0) != nullptr);
}

TEST_CASE("truncated, corrupt or mislabelled result segments are refused") {
    std::vector<std::uint8_t> seg = sealed("FFV1 document bytes");
    CHECK_THROWS_WITH(integrity::check_result(seg.data(), seg.size() - 1, 19),
                      doctest::Contains("truncated: 18 bytes of 19"));
    CHECK_THROWS_WITH(integrity::check_result(seg.data(), 10, 19), doctest::Contains("smaller than its header"));
    CHECK_THROWS_WITH(integrity::check_result(seg.data(), seg.size(), 20),
                      doctest::Contains("the worker announced 20"));

    std::vector<std::uint8_t> scribbled = seg;
    scribbled.back() ^= 0x40;
    CHECK_THROWS_WITH(integrity::check_result(scribbled.data(), scribbled.size(), 19), doctest::Contains("corrupt"));

    std::vector<std::uint8_t> unsealed(seg.size(), 0);  // the worker died before sealing it
    CHECK_THROWS_WITH(integrity::check_result(unsealed.data(), unsealed.size(), 19),
                      doctest::Contains("no valid header"));
}
