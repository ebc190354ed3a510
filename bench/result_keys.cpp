// bench_result_keys: the task bench/result-keys runs. train returns a Dict
// of `keys` integer entries ("k0" = 0, "k1" = 1, ...), so that the script
// can time how long a result of many keys takes to build in the task and to
// reach the host's disk.
//
// params: keys  how many entries (integer, default 100000)
//         scan  build them the way Dict::operator[] did before it had an
//               index: a scan of every key so far for each new one (bool,
//               default false): the SDK's baseline, measured on this machine
// result: the entries, then
//         build_ms  time spent building them, inside train
#include <fedflow/task.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

class ResultKeys final : public fedflow::Task {
public:
    void load(fedflow::Context& ctx) override {
        keys_ = ctx.param<std::int64_t>("keys", 100000);
        scan_ = ctx.param<bool>("scan", false);
        if (keys_ < 0) throw fedflow::TypeError("param 'keys' must not be negative");
    }

    fedflow::Dict train(fedflow::Context&, std::string_view) override {
        const auto t0 = std::chrono::steady_clock::now();
        fedflow::Dict out;
        if (scan_) {
            // What operator[] did per key: look at every key so far.
            std::vector<std::pair<std::string, std::int64_t>> entries;
            for (std::int64_t i = 0; i < keys_; ++i) {
                std::string key = "k" + std::to_string(i);
                bool found = false;
                for (auto& e : entries)
                    if (e.first == key) found = true;
                if (!found) entries.emplace_back(std::move(key), i);
            }
            for (auto& [k, v] : entries) out[k] = v;
        } else {
            for (std::int64_t i = 0; i < keys_; ++i) out["k" + std::to_string(i)] = i;
        }
        const auto t1 = std::chrono::steady_clock::now();
        out["build_ms"] = std::chrono::duration<double, std::milli>(t1 - t0).count();
        return out;
    }

private:
    std::int64_t keys_ = 0;
    bool scan_ = false;
};
FEDFLOW_TASK(ResultKeys, "bench_result_keys")
