// Injects nothing: a result of many keys. train returns a Dict of param
// `keys` (default 1000) integer entries, "k0" = 0, "k1" = 1, ...; with param
// `count` naming a group of its inputs, it returns instead, for each result
// of that group, how many keys it has and the value of its last key:
// {"counts": {task id: n}, "last": {task id: value}}. With param `seconds`,
// train sleeps that long first.
#include <fedflow/task.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <thread>

class ManyKeys final : public fedflow::Task {
public:
    void load(fedflow::Context&) override {}
    fedflow::Dict train(fedflow::Context& ctx, std::string_view) override {
        fedflow::Dict out;
        std::this_thread::sleep_for(std::chrono::duration<double>(ctx.param<double>("seconds", 0.0)));
        auto group = ctx.param<std::string>("count", "");
        if (!group.empty()) {
            fedflow::Dict counts, last;
            for (const auto& [id, result] : ctx.inputs().at(group).as<fedflow::Dict>()) {
                const auto& d = result.as<fedflow::Dict>();
                counts[id] = d.size();
                if (!d.empty()) last[id] = (d.end() - 1)->second;
            }
            out["counts"] = counts;
            out["last"] = last;
            return out;
        }
        const auto n = ctx.param<std::int64_t>("keys", 1000);
        for (std::int64_t i = 0; i < n; ++i) out["k" + std::to_string(i)] = i;
        return out;
    }
};
FEDFLOW_TASK(ManyKeys, "many_keys")
