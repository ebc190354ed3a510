// Injects: frames written to the worker's control channel (fd 3) behind its
// back, as a plugin with a stray write, or a hostile one, could. In the stage
// of param `stage` ("train", the default, "load", or "exit": when the task is
// destroyed, after its result was delivered and the host said exit) it
// writes what param `send` names, then returns as a spared task does, so the
// worker's own answer follows:
//   failed-empty   a `failed` frame with an empty body
//   loaded         a well-formed `loaded` (in load the worker's own makes
//                  two; in train it is out of turn)
//   ready          a second `ready`
//   result         a well-formed `result` that no train asked for (in load)
//   config         a frame only the host sends
//   unknown-type   a frame of type 99 with an empty body
//   bad-field      a `loaded` whose `ms` is a string
//   not-ffv1       a `loaded` frame whose body is not an FFV1 document
//   not-dict       a `failed` frame whose body is a list
//   garbage        64 bytes of text, read as a header that announces ~558 MB
#include "fault.hpp"

#include <fedflow/detail/wire.hpp>

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

#include <unistd.h>

namespace {

std::string frame(std::uint32_t type, const std::string& body) {
    std::string f(8, '\0');
    auto n = static_cast<std::uint32_t>(body.size());
    std::memcpy(f.data(), &type, 4);
    std::memcpy(f.data() + 4, &n, 4);
    return f + body;
}

std::string doc(const fedflow::Value& v) { return fedflow::wire::encode(v); }

void write_all(const std::string& s) {
    std::size_t done = 0;
    while (done < s.size()) {
        ssize_t n = ::write(3, s.data() + done, s.size() - done);
        if (n <= 0) throw std::runtime_error("fault_protocol: cannot write to fd 3");
        done += static_cast<std::size_t>(n);
    }
}

// The bytes that param `send` names.
std::string frame_to_send(const fedflow::Context& ctx) {
    using fedflow::Dict;
    using fedflow::List;
    const std::string what = ctx.param<std::string>("send", "failed-empty");
    const Dict loaded{{"ms", 1}, {"peak_memory", 1}};
    std::string out;
    if (what == "failed-empty") out = frame(13, doc(Dict{}));
    else if (what == "loaded") out = frame(11, doc(loaded));
    else if (what == "ready") out = frame(10, doc(Dict{{"plugin", "fault_protocol"}, {"abi_version", 1}}));
    else if (what == "result")
        out = frame(12, doc(Dict{{"size", 0},
                                 {"bytes", 0},
                                 {"bytes_sizes", List{}},
                                 {"bytes_checksums", List{}},
                                 {"ms", 1},
                                 {"train_end_ns", 1},
                                 {"peak_memory", 1}}));
    else if (what == "config") out = frame(1, doc(Dict{}));
    else if (what == "unknown-type") out = frame(99, doc(Dict{}));
    else if (what == "bad-field") out = frame(11, doc(Dict{{"ms", "one"}, {"peak_memory", 1}}));
    else if (what == "not-ffv1") out = frame(11, "this is not FFV1");
    else if (what == "not-dict") out = frame(13, doc(List{"stage", "train"}));
    else if (what == "garbage") out = std::string("GARBAGE!") + std::string(56, '?');
    else throw std::invalid_argument("fault_protocol: unknown param send = '" + what + "'");
    return out;
}

}  // namespace

class FaultProtocol final : public fedflow::Task {
public:
    void load(fedflow::Context& ctx) override {
        stage_ = fault::armed(ctx) ? ctx.param<std::string>("stage", "train") : "";
        out_ = frame_to_send(ctx);
        if (stage_ == "load") write_all(out_);
    }
    fedflow::Dict train(fedflow::Context& ctx, std::string_view) override {
        if (stage_ == "train") write_all(out_);
        return fault::spared(ctx);
    }
    ~FaultProtocol() override {
        if (stage_ != "exit") return;
        try {
            write_all(out_);
        } catch (const std::exception&) {
            // The host closed the channel already: nobody to garble.
        }
    }

private:
    std::string stage_;
    std::string out_;
};
FEDFLOW_TASK(FaultProtocol, "fault_protocol")
