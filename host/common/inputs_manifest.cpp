#include "common/inputs_manifest.hpp"

#include "common/integrity.hpp"

#include <fedflow/detail/wire.hpp>

#include <cstring>
#include <stdexcept>

namespace fedflow::inputs_manifest {

std::string encode(const Value& inputs, const std::vector<File>& files) {
    List table;
    table.reserve(files.size());
    for (const File& f : files)
        table.push_back(Dict{{"path", f.path},
                             {"size", static_cast<std::int64_t>(f.size)},
                             {"checksum", f.checksum ? Value(integrity::checksum_text(*f.checksum)) : Value()}});
    std::string out = wire::encode(inputs);
    out += wire::encode(Value(std::move(table)));
    return out;
}

Decoded decode(const std::uint8_t* data, std::size_t size) {
    const auto fail = [](const std::string& why) { return std::runtime_error("inputs segment: " + why); };
    if (size < wire::header_size) throw fail("shorter than a document");
    std::uint64_t body = 0;
    std::memcpy(&body, data + 8, 8);
    if (body > size - wire::header_size) throw fail("its first document is longer than the segment");
    Decoded d;
    d.inputs = data;
    d.inputs_size = static_cast<std::size_t>(wire::header_size + body);
    Value table;
    try {
        table = wire::decode(data + d.inputs_size, size - d.inputs_size);
    } catch (const wire::Error& e) {
        throw fail(std::string("its table of byte files: ") + e.what());
    }
    if (!table.is<List>()) throw fail("its table of byte files is not a list");
    for (const Value& item : table.as<List>()) {
        const Dict* e = item.is<Dict>() ? &item.as<Dict>() : nullptr;
        const Value* path = e ? e->find("path") : nullptr;
        const Value* n = e ? e->find("size") : nullptr;
        const Value* sum = e ? e->find("checksum") : nullptr;
        if (path == nullptr || !path->is<std::string>() || path->as<std::string>().empty() || n == nullptr ||
            !n->is<std::int64_t>() || n->as<std::int64_t>() < 0 || sum == nullptr ||
            !(sum->is_null() || sum->is<std::string>()) || e->size() != 3)
            throw fail("an entry of its table of byte files is not {path, size, checksum}");
        File f{path->as<std::string>(), static_cast<std::uint64_t>(n->as<std::int64_t>()), std::nullopt};
        if (sum->is<std::string>()) {
            std::uint64_t v = 0;
            if (!integrity::parse_checksum(sum->as<std::string>(), v)) throw fail("a checksum is not 16 hex digits");
            f.checksum = v;
        }
        d.files.push_back(std::move(f));
    }
    return d;
}

}  // namespace fedflow::inputs_manifest
