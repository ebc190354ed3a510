// Injects nothing: reports how its inputs' byte values reached it, so tests
// can check that they are the earlier tasks' byte files mapped read-only,
// not copies. For each Bytes in ctx.inputs() (group -> task -> key), under
// "seen" -> "<group>/<task>/<key>": its size, the sum of its bytes, its
// file() (or null), and "mapped": whether its data lies in a mapping of that
// file (/proc/self/maps) whose permissions are read-only.
// With param fail_if_exists (a path), load throws while that file exists:
// a task that fails once, for --resume to run again.
// In load, it keeps a copy of the first input's Bytes handle; train checks
// that it still reads the same bytes ("kept_valid"): they stay valid for the
// task's life.
#include <fedflow/task.hpp>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>

namespace {

// Whether [data, data + n) lies in one mapping of `path` that is not writable.
bool mapped_read_only(const std::uint8_t* data, std::size_t n, const std::string& path) {
    std::ifstream maps("/proc/self/maps");
    for (std::string line; std::getline(maps, line);) {
        std::istringstream in(line);
        std::string range, perms, offset, dev, inode, file;
        in >> range >> perms >> offset >> dev >> inode;
        std::getline(in >> std::ws, file);
        if (file != path) continue;
        unsigned long lo = 0, hi = 0;
        if (std::sscanf(range.c_str(), "%lx-%lx", &lo, &hi) != 2) continue;
        const auto p = reinterpret_cast<std::uintptr_t>(data);
        if (p >= lo && p + n <= hi && perms.size() >= 2 && perms[1] == '-') return true;
    }
    return false;
}

std::int64_t sum_of(const fedflow::Bytes& b) {
    std::int64_t s = 0;
    for (std::uint8_t c : b) s += c;
    return s;
}

}  // namespace

class InputsMapped final : public fedflow::Task {
public:
    void load(fedflow::Context& ctx) override {
        const std::string stop = ctx.param<std::string>("fail_if_exists", "");
        if (!stop.empty() && std::ifstream(stop)) throw std::runtime_error("told to fail: " + stop + " exists");
        for (const auto& [group, tasks] : ctx.inputs())
            for (const auto& [task, result] : tasks.as<fedflow::Dict>())
                for (const auto& [key, v] : result.as<fedflow::Dict>())
                    if (v.is<fedflow::Bytes>() && !kept_) {
                        kept_ = v.as<fedflow::Bytes>();
                        kept_sum_ = sum_of(*kept_);
                    }
    }
    fedflow::Dict train(fedflow::Context& ctx, std::string_view) override {
        fedflow::Dict seen;
        for (const auto& [group, tasks] : ctx.inputs())
            for (const auto& [task, result] : tasks.as<fedflow::Dict>())
                for (const auto& [key, v] : result.as<fedflow::Dict>()) {
                    if (!v.is<fedflow::Bytes>()) continue;
                    const fedflow::Bytes& b = v.as<fedflow::Bytes>();
                    fedflow::Dict d{{"size", static_cast<std::int64_t>(b.size())}, {"sum", sum_of(b)}};
                    d["file"] = b.file() ? fedflow::Value(std::string(b.file())) : fedflow::Value();
                    d["mapped"] = b.file() != nullptr && b.size() != 0 &&
                                  mapped_read_only(b.data(), b.size(), b.file());
                    seen[std::string(group) + "/" + std::string(task) + "/" + std::string(key)] = std::move(d);
                }
        fedflow::Dict out{{"seen", std::move(seen)}};
        if (kept_) out["kept_valid"] = sum_of(*kept_) == kept_sum_;
        return out;
    }

private:
    std::optional<fedflow::Bytes> kept_;
    std::int64_t kept_sum_ = 0;
};
FEDFLOW_TASK(InputsMapped, "inputs_mapped")
