#include "runner/results.hpp"

#include "common/integrity.hpp"
#include "common/json.hpp"

#include <fmt/core.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <set>
#include <stdexcept>
#include <system_error>

#include <fcntl.h>
#include <unistd.h>

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

namespace fedflow::results {

namespace {

void write_all(int fd, const void* data, std::size_t n, const fs::path& path) {
    const auto* p = static_cast<const char*>(data);
    while (n > 0) {
        ssize_t w = ::write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            throw std::system_error(errno, std::generic_category(), "write " + path.string());
        }
        p += w;
        n -= static_cast<std::size_t>(w);
    }
}

void write_file(const fs::path& path, const void* data, std::size_t n) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) throw std::system_error(errno, std::generic_category(), "create " + path.string());
    try {
        write_all(fd, data, n, path);
    } catch (...) {
        ::close(fd);
        throw;
    }
    if (::close(fd) != 0) throw std::system_error(errno, std::generic_category(), "close " + path.string());
}

std::string file_name_for(const std::string& key_path, std::set<std::string>& used) {
    std::string base;
    for (char c : key_path) {
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
                  c == '-';
        base += ok ? c : '_';
    }
    if (base.empty() || base.front() == '.') base = "_" + base;
    if (base.size() > 200) base.resize(200);
    std::string name = base + ".bin";
    for (int i = 2; used.count(name) != 0 || name == "result.json" || name == "stdout.log" || name == "stderr.log"; ++i)
        name = fmt::format("{}-{}.bin", base, i);
    used.insert(name);
    return name;
}

class Writer {
public:
    explicit Writer(const fs::path& dir) : dir_(dir) {}
    // Removes the byte files written so far (the result did not make it).
    void remove_written() const noexcept {
        std::error_code ec;
        for (const auto& name : used_) fs::remove(dir_ / name, ec);
    }

    json value(const Value& v, const std::string& path) {
        switch (v.type()) {
        case Value::Type::null: return nullptr;
        case Value::Type::boolean: return v.as<bool>();
        case Value::Type::integer: return v.as<std::int64_t>();
        case Value::Type::real: return v.as<double>();
        case Value::Type::string: return v.as<std::string>();
        case Value::Type::bytes: {
            const Bytes& b = v.as<Bytes>();
            std::string name = file_name_for(path, used_);
            write_file(dir_ / name, b.data(), b.size());
            bytes_ += b.size();
            return json{{"$bytes", json{{"file", name}, {"size", b.size()}}}};
        }
        case Value::Type::list: {
            json out = json::array();
            std::size_t i = 0;
            for (const Value& item : v.as<List>()) out.push_back(value(item, fmt::format("{}.{}", path, i++)));
            return out;
        }
        case Value::Type::dict: {
            json out = json::object();
            // A "$" key is a convention's marker ($tensor), not a name:
            // weights.$tensor.data is written as weights.data.bin.
            for (const auto& [k, item] : v.as<Dict>())
                jsonio::append(out, k, value(item, !k.empty() && k.front() == '$' ? path : path.empty() ? k : path + "." + k));
            return out;
        }
        }
        return nullptr;
    }
    std::uint64_t bytes() const { return bytes_; }

private:
    fs::path dir_;
    std::set<std::string> used_;
    std::uint64_t bytes_ = 0;
};

Value from_json(const json& j, const fs::path& dir) {
    switch (j.type()) {
    case json::value_t::null: return Value();
    case json::value_t::boolean: return Value(j.get<bool>());
    case json::value_t::number_integer: return Value(j.get<std::int64_t>());
    case json::value_t::number_unsigned: return Value(j.get<std::uint64_t>());
    case json::value_t::number_float: return Value(j.get<double>());
    case json::value_t::string: return Value(j.get<std::string>());
    case json::value_t::array: {
        List l;
        for (const auto& item : j) l.push_back(from_json(item, dir));
        return Value(std::move(l));
    }
    case json::value_t::object: {
        // Only the exact shape write_result makes is a byte file; any other
        // object, even one with a "$bytes" key, is a dict.
        if (j.size() == 1 && j.contains("$bytes") && j["$bytes"].is_object() && j["$bytes"].size() == 2 &&
            j["$bytes"].contains("file") && j["$bytes"]["file"].is_string() && j["$bytes"].contains("size") &&
            j["$bytes"]["size"].is_number_integer() && j["$bytes"]["size"] >= 0) {
            const json& b = j["$bytes"];
            std::string name = b.at("file").get<std::string>();
            auto size = b.at("size").get<std::uint64_t>();
            if (name.find('/') != std::string::npos || name == "." || name == "..")
                throw std::runtime_error(fmt::format("byte file name '{}' leaves {}", name, dir.string()));
            fs::path file = dir / name;
            std::error_code ec;
            auto actual = fs::file_size(file, ec);
            if (ec) throw std::runtime_error(fmt::format("byte file {}: {}", file.string(), ec.message()));
            if (actual != size)
                throw std::runtime_error(fmt::format("byte file {} has {} bytes, result.json says {}", file.string(), actual, size));
            Bytes data(size);
            int fd = ::open(file.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
            if (fd < 0) throw std::system_error(errno, std::generic_category(), "open " + file.string());
            std::size_t done = 0;
            while (done < size) {
                ssize_t r = ::read(fd, data.data() + done, size - done);
                if (r < 0 && errno == EINTR) continue;
                if (r <= 0) break;
                done += static_cast<std::size_t>(r);
            }
            ::close(fd);
            if (done != size) throw std::runtime_error(fmt::format("byte file {}: short read", file.string()));
            return Value(std::move(data));
        }
        Dict d;
        for (const auto& [k, item] : j.items()) d.insert_or_assign(k, from_json(item, dir));
        return Value(std::move(d));
    }
    default: return Value();
    }
}

}  // namespace

Written write_result(const Dict& result, const fs::path& dir) {
    Writer w(dir);
    Written out;
    try {
        out.json = w.value(Value(result), "");
        out.bytes = w.bytes();
        std::string text = out.json.dump(2, ' ', false, json::error_handler_t::replace);
        text += '\n';
        write_file(dir / "result.json", text.data(), text.size());
        out.checksum = integrity::checksum(text.data(), text.size());
    } catch (...) {
        // Half a result is none, and on a full disk its files are the
        // space the run needs to end cleanly.
        w.remove_written();
        std::error_code ec;
        fs::remove(dir / "result.json", ec);
        throw;
    }
    return out;
}

Dict read_result(const json& j, const fs::path& dir) {
    Value v = from_json(j, dir);
    if (!v.is<Dict>()) throw std::runtime_error(fmt::format("result in {} is not an object", dir.string()));
    return std::move(v.as<Dict>());
}

void write_text_file(const fs::path& path, const std::string& text) {
    fs::path tmp = path;
    tmp += ".tmp";
    try {
        write_file(tmp, text.data(), text.size());
        fs::rename(tmp, path);
    } catch (...) {
        std::error_code ec;
        fs::remove(tmp, ec);
        throw;
    }
}

TextFile::TextFile(fs::path path) : path_(std::move(path)), tmp_(path_) {
    tmp_ += ".tmp";
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd_ < 0) throw std::system_error(errno, std::generic_category(), "create " + tmp_.string());
}

TextFile::~TextFile() {
    if (fd_ < 0) return;
    ::close(fd_);
    ::unlink(tmp_.c_str());
}

void TextFile::drain() {
    write_all(fd_, buffer_.data(), buffer_.size(), tmp_);
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
    std::ifstream in(path, std::ios::binary);
    if (!in) return std::nullopt;
    std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (in.bad()) return std::nullopt;
    return integrity::checksum(data.data(), data.size());
}

}  // namespace fedflow::results
