// Injects an old plugin: its table is that of ABI 1's first SDK (56 bytes,
// no `features`), and it decodes fedflow_context.inputs as that SDK did,
// without a resolver for references. So the worker must hand it every byte
// value inline. train returns, for each Bytes of its inputs under
// "<group>/<task>/<key>", its size and the sum of its bytes.
#include <fedflow/abi.h>
#include <fedflow/detail/wire.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <string>

namespace {

void fill(fedflow_status* st, const char* m) {
    st->code = FEDFLOW_ERROR;
    std::strncpy(st->message, m, FEDFLOW_MESSAGE_MAX - 1);
}

std::int32_t train(void*, const fedflow_context* c, const char*, fedflow_status* st) {
    try {
        fedflow::Dict seen;
        if (c->inputs.size != 0) {
            fedflow::Value in = fedflow::wire::decode(c->inputs.data, c->inputs.size);  // as ABI 1's SDK: no resolver
            for (const auto& [group, tasks] : in.as<fedflow::Dict>())
                for (const auto& [task, result] : tasks.as<fedflow::Dict>())
                    for (const auto& [key, v] : result.as<fedflow::Dict>()) {
                        if (!v.is<fedflow::Bytes>()) continue;
                        std::int64_t sum = 0;
                        for (std::uint8_t b : v.as<fedflow::Bytes>()) sum += b;
                        seen[std::string(group) + "/" + std::string(task) + "/" + std::string(key)] = fedflow::Dict{
                            {"size", static_cast<std::int64_t>(v.as<fedflow::Bytes>().size())}, {"sum", sum}};
                    }
        }
        fedflow::Value result(fedflow::Dict{{"seen", std::move(seen)}});
        const std::size_t n = fedflow::wire::encoded_size(result);
        std::uint8_t* out = c->host->result_alloc(c->host->host, n, st);
        if (out == nullptr) return st->code;
        fedflow::wire::encode(result, out, n);
        return FEDFLOW_OK;
    } catch (const std::exception& e) {
        fill(st, e.what());
        return FEDFLOW_ERROR;
    }
}

int task_object;

}  // namespace

extern "C" {
FEDFLOW_PLUGIN_INFO(fedflow_plugin_info_entry, "inputs_abi1");

__attribute__((visibility("default"))) std::int32_t fedflow_plugin_enum(const fedflow_plugin** plugin,
                                                                        std::uint32_t index) {
    static const fedflow_plugin def = [] {
        fedflow_plugin p{};
        p.magic = FEDFLOW_ABI_MAGIC;
        p.abi_version = FEDFLOW_ABI_VERSION;
        p.size = offsetof(fedflow_plugin, features);  // the first SDK's sizeof(fedflow_plugin): 56
        p.name = "inputs_abi1";
        p.create = [](fedflow_status*) -> void* { return &task_object; };
        p.destroy = [](void*) {};
        p.load = [](void*, const fedflow_context*, fedflow_status*) -> std::int32_t { return FEDFLOW_OK; };
        p.train = train;
        p.features = ~std::uint64_t{0};  // past `size`: the worker must not read it
        return p;
    }();
    if (index != 0) return 0;
    *plugin = &def;
    return 1;
}
}
