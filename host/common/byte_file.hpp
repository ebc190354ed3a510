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
// and nowhere else.
//
// copy_in_kernel() moves bytes without this process seeing them, with
// copy_file_range (same filesystem) or splice (a /dev/shm segment: its
// pages go into a pipe by reference and are copied once, into the file's
// page cache). It checks nothing, so it is for copies that are checked
// later: a node agent's copy of a segment into the shared workdir, which
// the host reads with copy() (docs/architecture.md, "The data path").
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

// Copies the first n bytes of the open file `src` (from offset 0) into a
// new file `path`, created as copy() creates it, without reading them into
// this process: copy_file_range where the kernel can (src and path on one
// filesystem: a node agent's copy of a segment), else splice() through a
// pipe. Nothing is hashed. Returns false when the kernel cannot move these
// bytes either way (its first call fails with EXDEV, EINVAL, ENOSYS or
// EOPNOTSUPP): nothing of src is in path then, and the caller uses copy().
// Throws as copy() does: "<what> truncated: ..." when src ends before n
// (a segment cut short while it is read: an error, never a SIGBUS, since
// nothing is mapped), std::system_error naming the path when a write fails.
bool copy_in_kernel(int src, std::uint64_t n, const std::filesystem::path& path, const std::string& what);

// Writes n bytes at data into a new file `path` as copy() does; returns
// their checksum.
std::uint64_t write(const void* data, std::size_t n, const std::filesystem::path& path);

}  // namespace fedflow::byte_file
