// results.hpp: a task's result dictionary on disk, and JSON files.
//
// result.json is the Dict that train returned, as JSON. A Bytes value is
// written to a file beside it and appears as
//   {"$bytes": {"file": "<file name>", "size": <n>, "checksum": "<16 hex>"}}
// where checksum is the XXH64 of the file's bytes (integrity::checksum),
// computed as the file is written. read_result() is the inverse.
#pragma once

#include "common/inputs_manifest.hpp"

#include <fedflow/value.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fedflow::results {

struct Written {
    nlohmann::ordered_json json;  // what result.json holds
    std::uint64_t bytes = 0;      // bytes written to byte files
    std::uint64_t checksum = 0;   // of result.json's bytes (--resume checks it)
    // The key paths of NaN and infinite values, which result.json holds as
    // null (JSON has none): the first max_non_finite_paths, and how many.
    std::vector<std::string> non_finite;
    std::size_t non_finite_count = 0;
};
inline constexpr std::size_t max_non_finite_paths = 5;

// Writes dir/result.json and one file per Bytes value into dir. Byte files
// are named after the value's key path ("weights.bin", "meta.w.bin") with
// characters outside [A-Za-z0-9._-] replaced, and never follow symlinks.
// Throws std::system_error when a file cannot be written, after removing
// what it wrote: a result is on disk whole or not at all.
//
// A Bytes value whose shm_id() is >= 0 is still in its worker's shared
// memory (ResultReceiver makes such values, without data): copy_segment(id,
// n, path) writes its first n bytes to path and returns their checksum.
using SegmentCopy = std::function<std::uint64_t(std::uint64_t id, std::uint64_t n, const std::filesystem::path& path)>;
Written write_result(const Dict& result, const std::filesystem::path& dir, const SegmentCopy& copy_segment = nullptr);

// The Dict that a result.json describes; byte files are read from dir.
// Throws std::runtime_error naming the file when a byte file is missing, of
// another size, or (with verify, where its entry has a checksum) of other
// content.
Dict read_result(const nlohmann::ordered_json& json, const std::filesystem::path& dir, bool verify = false);

// The Dict that a result.json describes without reading a byte file: each
// becomes a reference (a Bytes without data whose shm_id() is its index in
// files) and its absolute path, size and checksum are appended to files,
// for an inputs segment (inputs_manifest). Throws std::runtime_error for a
// byte file name that leaves dir.
Dict reference_result(const nlohmann::ordered_json& json, const std::filesystem::path& dir,
                      std::vector<inputs_manifest::File>& files);

// Writes path through a temporary file and rename, so that a reader (or a
// crash) never sees half a file; a write that fails removes the temporary
// file and throws std::system_error. Returns the checksum of what it wrote.
std::uint64_t write_json_file(const std::filesystem::path& path, const nlohmann::ordered_json& json);
// Writes text to path the same way (temporary file and rename).
void write_text_file(const std::filesystem::path& path, const std::string& text);
// A file written in pieces the same way: path + ".tmp" until commit()
// renames it; removed when destroyed without commit(). Throws
// std::system_error naming the file when a write fails. For files too large
// to hold as one string (report.json of 100,000 tasks).
class TextFile {
public:
    explicit TextFile(std::filesystem::path path);
    ~TextFile();
    TextFile(const TextFile&) = delete;
    TextFile& operator=(const TextFile&) = delete;
    void write(std::string_view text);
    void commit();

private:
    void drain();
    std::filesystem::path path_, tmp_;
    int fd_ = -1;
    std::string buffer_;
};
// The error is a filesystem that is full (ENOSPC) or a disk quota that is
// spent (EDQUOT): not the data's fault, and gone once there is space.
bool is_disk_full(const std::exception& e) noexcept;
// The checksum of a file's bytes (integrity::checksum); nullopt when it
// cannot be read.
std::optional<std::uint64_t> file_checksum(const std::filesystem::path& path);

}  // namespace fedflow::results
