// The plugin of docs/sdk.md ("A first plugin"), exactly as written there: it is
// the reference for what the C++ layer must support.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fedflow/task.hpp>
#include <string>

class Echo final : public fedflow::Task {
public:
    void load(fedflow::Context& ctx) override {  // CPU only
        n_ = ctx.param<std::int64_t>("n", 3);    // typed param, with a default
        std::printf("loading %s in %s\n", ctx.task_id().c_str(), ctx.workdir().c_str());
    }
    fedflow::Dict train(fedflow::Context& ctx, std::string_view device) override {
        fedflow::Dict out;
        out["device"] = std::string(device);  // "cuda:N" or "cpu"
        out["n"] = n_;
        out["ok"] = true;
        out["loss"] = 0.25;
        out["history"] = fedflow::List{1.0, 0.5, 0.25};
        out["meta"] = fedflow::Dict{{"group", ctx.group()}};
        fedflow::Bytes w = ctx.bytes(4096);  // written straight into shared memory
        std::memset(w.data(), 7, w.size());
        out["weights"] = w;
        return out;
    }

private:
    std::int64_t n_ = 0;
};
FEDFLOW_TASK(Echo, "echo")
