// byte_file.hpp: writing a byte file (the file beside result.json that holds
// one Bytes value) while hashing it, so that its checksum costs no second
// pass over the bytes.
//
// A result's Bytes lie in the worker's shared-memory segments. The host does
// not map them: mapping faults every page of the segment into its own
// address space (a 256 MiB result cost 315 ms that way, one write() of the
// same bytes 42 ms). copy() reads the segment with pread() into one small
// buffer that stays in the CPU's cache, hashes it there, and writes it out:
// the bytes go from the segment's pages to the file's through that buffer
// and nowhere else. copy_file_range and sendfile are no use here: from
// /dev/shm to another filesystem the first fails (EXDEV), and both would
// hide the bytes from the checksum.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

namespace fedflow::byte_file {

// The size of the buffer copy() reads into (and write() writes from).
inline constexpr std::size_t chunk_size = std::size_t{256} << 10;

struct Copied {
    std::uint64_t file_checksum = 0;    // integrity::checksum of the n bytes written
    std::uint64_t source_checksum = 0;  // of all `total` bytes read from the source
};

// Copies the first n bytes of the open file `src` (from offset 0) into a new
// file `path` (created or truncated, mode 0644, never through a symbolic
// link), and reads on to byte `total` (>= n) to hash the whole source.
// Throws std::runtime_error "<what> truncated: it ended after X of Y bytes"
// when src is shorter than total, and std::system_error naming the path
// when a read or a write fails. The file stays on failure: the caller
// removes what it wrote.
Copied copy(int src, std::uint64_t n, std::uint64_t total, const std::filesystem::path& path, const std::string& what);

// Writes n bytes at data into a new file `path` as copy() does; returns
// their checksum.
std::uint64_t write(const void* data, std::size_t n, const std::filesystem::path& path);

}  // namespace fedflow::byte_file
