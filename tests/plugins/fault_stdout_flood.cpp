// Injects: a flood on stdout. train prints param `megabytes` MB (default
// 100; 1 MB = 1,000,000 bytes) in lines of 100 bytes, then returns
// {"ok": true, "printed": <bytes>}.
#include "fault.hpp"

#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>

class FaultStdoutFlood final : public fedflow::Task {
public:
    void load(fedflow::Context&) override {}
    fedflow::Dict train(fedflow::Context& ctx, std::string_view) override {
        if (!fault::armed(ctx)) return fault::spared(ctx);
        auto megabytes = ctx.param<std::int64_t>("megabytes", 100);
        // One megabyte: 10,000 lines of 99 characters and a newline.
        std::string chunk;
        for (int line = 0; line < 10000; ++line) {
            std::string text = "flood line " + std::to_string(line) + " ";
            text.resize(99, '.');
            chunk += text + '\n';
        }
        std::int64_t printed = 0;
        for (std::int64_t i = 0; i < megabytes; ++i) {
            if (std::fwrite(chunk.data(), 1, chunk.size(), stdout) != chunk.size())
                throw std::runtime_error("writing to stdout failed");
            printed += static_cast<std::int64_t>(chunk.size());
        }
        std::fflush(stdout);
        return fedflow::Dict{{"ok", true}, {"printed", printed}};
    }
};
FEDFLOW_TASK(FaultStdoutFlood, "fault_stdout_flood")
