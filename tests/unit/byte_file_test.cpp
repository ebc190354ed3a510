// byte_file: a byte file written from a descriptor (a worker's segment) or
// from memory, hashed as it is written, and every way the copy can fail.
#include "common/byte_file.hpp"

#include "common/integrity.hpp"
#include "support/files.hpp"

#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

using namespace fedflow;
using fedflow::test::TempDir;
namespace fs = std::filesystem;

namespace {

std::vector<std::uint8_t> pattern(std::size_t n) {
    std::vector<std::uint8_t> v(n);
    for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::uint8_t>((i * 2654435761u) >> 13);
    return v;
}

std::vector<std::uint8_t> slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
}

// A source file holding `data`, open for reading.
struct Source {
    fs::path path;
    int fd = -1;
    Source(const fs::path& dir, const std::vector<std::uint8_t>& data) : path(dir / "source") {
        std::ofstream(path, std::ios::binary)
            .write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
        fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    }
    ~Source() { ::close(fd); }
};

// A TempDir in /dev/shm (an absolute prefix replaces the temp dir), where a
// worker's segments are: tmpfs, another filesystem than the temp dir's.
const std::string shm_prefix = "/dev/shm/fedflow-test";

}  // namespace

TEST_CASE("copy: the bytes and their checksum, across chunk boundaries") {
    TempDir dir;
    for (std::size_t n : {std::size_t{0}, std::size_t{1}, byte_file::chunk_size - 1, byte_file::chunk_size,
                          2 * byte_file::chunk_size + 17}) {
        CAPTURE(n);
        const auto data = pattern(n);
        Source src(dir.path, data);
        byte_file::Copied c = byte_file::copy(src.fd, n, n, dir.path / "out.bin", "the source");
        CHECK(slurp(dir.path / "out.bin") == data);
        CHECK(c.file_checksum == integrity::checksum(data.data(), n));
        CHECK(c.source_checksum == c.file_checksum);
    }
}

TEST_CASE("copy: the first n bytes of a longer source, and the checksum of all of it") {
    TempDir dir;
    const std::size_t total = byte_file::chunk_size + 100, n = byte_file::chunk_size + 3;
    const auto data = pattern(total);
    Source src(dir.path, data);
    byte_file::Copied c = byte_file::copy(src.fd, n, total, dir.path / "out.bin", "the source");
    CHECK(slurp(dir.path / "out.bin") == std::vector<std::uint8_t>(data.begin(), data.begin() + n));
    CHECK(c.file_checksum == integrity::checksum(data.data(), n));
    CHECK(c.source_checksum == integrity::checksum(data.data(), total));
}

TEST_CASE("copy: a source shorter than it should be is an error that says so") {
    TempDir dir;
    const auto data = pattern(1000);
    Source src(dir.path, data);
    CHECK_THROWS_WITH_AS(byte_file::copy(src.fd, 1000, 5000, dir.path / "out.bin", "bytes buffer 3"),
                         "bytes buffer 3 truncated: it ended after 1000 of 5000 bytes", std::runtime_error);
}

TEST_CASE("copy and write: a file that cannot be written names its path") {
    TempDir dir;
    const auto data = pattern(10);
    Source src(dir.path, data);
    const fs::path nowhere = dir.path / "no-such-dir" / "out.bin";
    const std::string where = nowhere.string();
    CHECK_THROWS_WITH_AS(byte_file::copy(src.fd, 10, 10, nowhere, "x"), doctest::Contains(where.c_str()),
                         std::system_error);
    CHECK_THROWS_WITH_AS(byte_file::write(data.data(), 10, nowhere), doctest::Contains(where.c_str()),
                         std::system_error);
    // Never through a symbolic link planted where the file goes.
    fs::create_symlink(dir.path / "elsewhere", dir.path / "link.bin");
    CHECK_THROWS_AS(byte_file::write(data.data(), 10, dir.path / "link.bin"), std::system_error);
    CHECK_FALSE(fs::exists(dir.path / "elsewhere"));
}

TEST_CASE("copy: a descriptor that cannot be read is an error naming the source") {
    TempDir dir;
    CHECK_THROWS_WITH_AS(byte_file::copy(-1, 10, 10, dir.path / "out.bin", "bytes buffer 0"),
                         doctest::Contains("read bytes buffer 0"), std::system_error);
}

TEST_CASE("write: the bytes and their checksum") {
    TempDir dir;
    const auto data = pattern(3 * byte_file::chunk_size + 5);
    const std::uint64_t sum = byte_file::write(data.data(), data.size(), dir.path / "w.bin");
    CHECK(slurp(dir.path / "w.bin") == data);
    CHECK(sum == integrity::checksum(data.data(), data.size()));
    CHECK(byte_file::write(nullptr, 0, dir.path / "empty.bin") == integrity::checksum("", 0));
    CHECK(fs::file_size(dir.path / "empty.bin") == 0);
}

TEST_CASE("copy_in_kernel: the bytes, from a file of the same filesystem and from /dev/shm") {
    TempDir dir;
    // 3 MiB and a bit: more than one pipeful (1 MiB) through splice.
    for (std::size_t n : {std::size_t{0}, std::size_t{1}, (std::size_t{3} << 20) + 17}) {
        CAPTURE(n);
        const auto data = pattern(n);
        SUBCASE("same filesystem (copy_file_range)") {
            Source src(dir.path, data);
            CHECK(byte_file::copy_in_kernel(src.fd, n, dir.path / "out.bin", "the source"));
            CHECK(slurp(dir.path / "out.bin") == data);
        }
        SUBCASE("a /dev/shm file into another filesystem (splice)") {
            TempDir shm(shm_prefix);
            Source src(shm.path, data);
            CHECK(byte_file::copy_in_kernel(src.fd, n, dir.path / "out.bin", "the source"));
            CHECK(slurp(dir.path / "out.bin") == data);
        }
    }
}

TEST_CASE("copy_in_kernel: a source cut short is an error that says so, and so is a file that cannot be written") {
    TempDir dir, shm(shm_prefix);
    const auto data = pattern(100000);
    for (const fs::path& where : {dir.path, shm.path}) {
        CAPTURE(where);
        Source src(where, data);
        CHECK_THROWS_WITH_AS(byte_file::copy_in_kernel(src.fd, 300000, dir.path / "out.bin", "bytes buffer 2"),
                             "bytes buffer 2 truncated: it ended after 100000 of 300000 bytes", std::runtime_error);
        const fs::path nowhere = dir.path / "no-such-dir" / "out.bin";
        CHECK_THROWS_WITH_AS(byte_file::copy_in_kernel(src.fd, 10, nowhere, "x"),
                             doctest::Contains(nowhere.string().c_str()), std::system_error);
    }
}
