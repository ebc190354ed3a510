// inputs_manifest.hpp: what a group's inputs segment holds. The host never
// reads the bytes of an earlier task's result; it writes where they are.
//
// The segment is two FFV1 documents, one after the other:
//   1. the inputs: group -> task id -> result, as Context::inputs() shows
//      them, where every byte value is a BYTES_REF (tag 7) whose id is an
//      index into the second document;
//   2. the byte files: a list of {"path": absolute path, "size": bytes,
//      "checksum": 16 hex digits of XXH64, or null for a result written
//      before byte files had one}.
// The worker maps each file read-only, and hands the first document to the
// plugin as it is (fedflow_context.inputs, input_files): the bytes reach
// the task through the page cache, copied by nobody.
#pragma once

#include <fedflow/value.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace fedflow::inputs_manifest {

struct File {
    std::string path;
    std::uint64_t size = 0;
    std::optional<std::uint64_t> checksum;
    friend bool operator==(const File&, const File&) = default;
};

// The bytes of the segment for `inputs` (byte values as Bytes whose shm_id()
// is their index in files) and files.
std::string encode(const Value& inputs, const std::vector<File>& files);

struct Decoded {
    const std::uint8_t* inputs = nullptr;  // the first document, in the segment
    std::size_t inputs_size = 0;
    std::vector<File> files;
};
// Splits a segment that encode() wrote. Throws std::runtime_error saying
// what is malformed (the first document is checked by whoever decodes it).
Decoded decode(const std::uint8_t* data, std::size_t size);

}  // namespace fedflow::inputs_manifest
