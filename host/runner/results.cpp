#include "runner/results.hpp"

#include "common/byte_file.hpp"
#include "common/file_io.hpp"
#include "common/integrity.hpp"
#include "common/json.hpp"
#include "common/value_json.hpp"

#include <fmt/core.h>

#include <cerrno>
#include <cmath>

#include <set>
#include <stdexcept>
#include <system_error>

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

namespace fedflow::results {

namespace {

// Appends the key paths of the NaN and infinite numbers in v to out
// (key paths as the byte files' names take them: "metrics.loss", "hist.3").
void find_non_finite(const Value& v, const std::string& key_path, Written& out) {
    switch (v.type()) {
    case Value::Type::real:
        if (!std::isfinite(v.as<double>()) && out.non_finite_count++ < max_non_finite_paths)
            out.non_finite.push_back(key_path);
        return;
    case Value::Type::list: {
        std::size_t i = 0;
        for (const Value& item : v.as<List>()) {
            const std::string index = std::to_string(i++);
            find_non_finite(item, key_path.empty() ? index : key_path + "." + index, out);
        }
        return;
    }
    case Value::Type::dict:
        for (const auto& [k, item] : v.as<Dict>())
            find_non_finite(item, key_path.empty() ? k : key_path + "." + k, out);
        return;
    default: return;
    }
}

}  // namespace

Written write_result(const Dict& result, const fs::path& dir, const SegmentCopy& copy_segment) {
    Written out;
    find_non_finite(Value(result), "", out);
    // result.json is the task's own; its byte files never take that name.
    std::set<std::string> used{"result.json"};
    try {
        out.json = value_json::to_json(Value(result), [&](const Bytes& b, const std::string& key_path) {
            std::string name = value_json::file_name_for(key_path, used);
            std::uint64_t sum;
            if (b.shm_id() >= 0) {
                if (!copy_segment)
                    throw std::logic_error("write_result: a Bytes in shared memory, and no copy_segment");
                sum = copy_segment(static_cast<std::uint64_t>(b.shm_id()), b.size(), dir / name);
            } else {
                sum = byte_file::write(b.data(), b.size(), dir / name);
            }
            out.bytes += b.size();
            return json{
                {"$bytes", json{{"file", name}, {"size", b.size()}, {"checksum", integrity::checksum_text(sum)}}}};
        });
        std::string text = out.json.dump(2, ' ', false, json::error_handler_t::replace);
        text += '\n';
        file_io::write_file(dir / "result.json", text.data(), text.size());
        out.checksum = integrity::checksum(text.data(), text.size());
    } catch (...) {
        // Half a result is none, and on a full disk its files are the
        // space the run needs to end cleanly. (The name a failed write
        // was creating is in `used` too.)
        std::error_code ec;
        for (const auto& name : used) fs::remove(dir / name, ec);
        throw;
    }
    return out;
}

Dict read_result(const json& j, const fs::path& dir, bool verify) {
    Value v;
    try {
        v = value_json::from_json(j, [&](const std::string& file, std::optional<std::uint64_t> size,
                                         std::optional<std::uint64_t> checksum) {
            Bytes b = value_json::read_byte_file(dir, file, size, [](std::size_t n) { return Bytes(n); });
            if (verify && checksum && integrity::checksum(b.data(), b.size()) != *checksum)
                throw std::runtime_error("byte file " + value_json::quote_name(file) +
                                         " is corrupt: its checksum is not the one result.json holds");
            return Value(std::move(b));
        });
    } catch (const std::runtime_error& e) {
        throw std::runtime_error(fmt::format("result.json in {}: {}", dir.string(), e.what()));
    }
    if (!v.is<Dict>()) throw std::runtime_error(fmt::format("result.json in {} is not an object", dir.string()));
    return std::move(v.as<Dict>());
}

Dict reference_result(const json& j, const fs::path& dir, std::vector<inputs_manifest::File>& files) {
    const fs::path abs = fs::absolute(dir);
    Value v;
    try {
        v = value_json::from_json(j, [&](const std::string& file, std::optional<std::uint64_t> size,
                                         std::optional<std::uint64_t> checksum) {
            const fs::path path = abs / file;
            // The host writes every size; one without (a result.json from
            // elsewhere) gets the file's, and a file that is not there then
            // fails every task of the group (cannot prepare inputs).
            const std::uint64_t n = size ? *size : static_cast<std::uint64_t>(fs::file_size(path));
            files.push_back({path.string(), n, checksum});
            return Value(
                Bytes::view(nullptr, static_cast<std::size_t>(n), static_cast<std::int64_t>(files.size() - 1)));
        });
    } catch (const std::exception& e) {
        throw std::runtime_error(fmt::format("result.json in {}: {}", dir.string(), e.what()));
    }
    if (!v.is<Dict>()) throw std::runtime_error(fmt::format("result.json in {} is not an object", dir.string()));
    return std::move(v.as<Dict>());
}

void write_text_file(const fs::path& path, const std::string& text) { file_io::write_file_atomic(path, text); }

TextFile::TextFile(fs::path path) : path_(std::move(path)), tmp_(file_io::temporary_for(path_)) {
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd_ < 0) throw std::system_error(errno, std::generic_category(), "create " + tmp_.string());
}

TextFile::~TextFile() {
    if (fd_ < 0) return;
    ::close(fd_);
    ::unlink(tmp_.c_str());
}

void TextFile::drain() {
    file_io::write_all(fd_, buffer_.data(), buffer_.size(), tmp_);
    buffer_.clear();
}

void TextFile::write(std::string_view text) {
    buffer_ += text;
    if (buffer_.size() >= (std::size_t{1} << 20)) drain();
}

void TextFile::commit() {
    drain();
    int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) {
        int err = errno;
        ::unlink(tmp_.c_str());
        throw std::system_error(err, std::generic_category(), "close " + tmp_.string());
    }
    try {
        fs::rename(tmp_, path_);
    } catch (...) {
        std::error_code ec;
        fs::remove(tmp_, ec);
        throw;
    }
}

bool is_disk_full(const std::exception& e) noexcept {
    const auto* s = dynamic_cast<const std::system_error*>(&e);
    if (s == nullptr) return false;
    // Both categories carry errno values on Linux (EDQUOT has no std::errc).
    const std::error_code& c = s->code();
    if (c.category() != std::generic_category() && c.category() != std::system_category()) return false;
    return c.value() == ENOSPC || c.value() == EDQUOT;
}

std::uint64_t write_json_file(const fs::path& path, const json& j) {
    std::string text = j.dump(2, ' ', false, json::error_handler_t::replace);
    text += '\n';
    write_text_file(path, text);
    return integrity::checksum(text.data(), text.size());
}

std::optional<std::uint64_t> file_checksum(const fs::path& path) {
    try {
        const std::string data = file_io::read_file(path);
        return integrity::checksum(data.data(), data.size());
    } catch (const std::system_error&) {
        return std::nullopt;
    }
}

}  // namespace fedflow::results
