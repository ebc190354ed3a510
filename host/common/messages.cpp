#include "common/messages.hpp"

#include "common/text.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <limits>

namespace fedflow::messages {

namespace {

constexpr std::int64_t int64_max = std::numeric_limits<std::int64_t>::max();

// A hostile peer's text in an error: at most 64 bytes of it, made
// printable (text.hpp), so it cannot garble a terminal or a log.
std::string quoted(std::string_view s) {
    return "\"" + text::printable(s.substr(0, 64)) + (s.size() > 64 ? "\"..." : "\"");
}

// The body of one message, read field by field; every refusal names the
// message and the field.
class Body {
public:
    // Refuses a key that is not one of fields. What is left has at most
    // fields.size() keys, so each lookup below is short whatever was sent.
    Body(channel::Type type, const Dict& body, std::initializer_list<const char*> fields)
        : name_(channel::type_name(type)), body_(body) {
        for (const auto& entry : body) {
            const std::string& key = entry.first;  // not a structured binding: clang < 16 cannot capture one
            bool known = std::any_of(fields.begin(), fields.end(), [&](const char* f) { return key == f; });
            if (!known) throw channel::ProtocolError(fmt::format("'{}' message: unknown field {}", name_, quoted(key)));
        }
    }

    [[noreturn]] void fail(const char* field, const std::string& what) const {
        throw channel::ProtocolError(fmt::format("'{}' message: field '{}' {}", name_, field, what));
    }

    const Value* optional(const char* field) const { return body_.find(field); }

    const Value& required(const char* field) const {
        const Value* v = body_.find(field);
        if (v == nullptr) fail(field, "is missing");
        return *v;
    }

    template <class T>
    Value::as_result<T> as(const char* field, const Value& v) const {
        if (!v.is<T>()) fail(field, fmt::format("is {}, not {}", a(v.type_name()), a(Value::type_name_of<T>())));
        return v.as<T>();
    }

    std::string string(const char* field, bool may_be_empty = false) const {
        std::string s = as<std::string>(field, required(field));
        if (s.empty() && !may_be_empty) fail(field, "is empty");
        return s;
    }

    std::int64_t integer(const char* field, const Value& v, std::int64_t min, std::int64_t max) const {
        std::int64_t i = as<std::int64_t>(field, v);
        if (i < min || i > max) fail(field, fmt::format("is {}, not in {}..{}", i, min, max));
        return i;
    }
    std::int64_t integer(const char* field, std::int64_t min = 0, std::int64_t max = int64_max) const {
        return integer(field, required(field), min, max);
    }
    std::optional<std::int64_t> optional_integer(const char* field, std::int64_t min = 0,
                                                 std::int64_t max = int64_max) const {
        const Value* v = optional(field);
        if (v == nullptr) return std::nullopt;
        return integer(field, *v, min, max);
    }

    const List& list(const char* field) const { return as<List>(field, required(field)); }

    // The list's items, each an integer in min..max.
    std::vector<std::int64_t> integers(const char* field, std::int64_t min, std::int64_t max) const {
        const List& l = list(field);
        std::vector<std::int64_t> out;
        out.reserve(l.size());
        for (std::size_t i = 0; i < l.size(); ++i) {
            const Value& v = l[i];
            if (!v.is<std::int64_t>()) fail(field, fmt::format("item {} is {}, not an integer", i, a(v.type_name())));
            if (v.as<std::int64_t>() < min || v.as<std::int64_t>() > max)
                fail(field, fmt::format("item {} is {}, not in {}..{}", i, v.as<std::int64_t>(), min, max));
            out.push_back(v.as<std::int64_t>());
        }
        return out;
    }

    // The one of names that the string field holds; its index.
    template <std::size_t N>
    std::size_t one_of(const char* field, const char* const (&names)[N]) const {
        std::string s = as<std::string>(field, required(field));
        for (std::size_t i = 0; i < N; ++i)
            if (s == names[i]) return i;
        std::string list;
        for (const char* n : names) list += (list.empty() ? "" : ", ") + std::string(n);
        fail(field, fmt::format("is {}, not one of {}", quoted(s), list));
    }

private:
    static std::string a(const char* type) {
        return std::string(type[0] == 'i' ? "an " : "a ") + type;  // "an integer", "a string"
    }

    const char* name_;
    const Dict& body_;
};

const char* const stage_names[] = {"start", "load", "train", "channel"};
const char* const kind_names[] = {"exception", "oom", "bad_plugin", "protocol"};

// Each message's decode() for the frame of its type; the others refused.
template <class Variant, std::size_t I = 0>
Variant decode_as(const channel::Message& m, const char* direction) {
    if constexpr (I == std::variant_size_v<Variant>) {
        const char* name = channel::type_name(m.type);
        if (std::string_view(name) == "unknown")
            throw channel::ProtocolError(fmt::format("message of unknown type {}", static_cast<std::uint32_t>(m.type)));
        if (m.type == ShimWorker::type || m.type == ShimLeftovers::type)
            throw channel::ProtocolError(fmt::format("'{}' message, which only a shim sends", name));
        throw channel::ProtocolError(fmt::format("'{}' message, which only {} sends", name, direction));
    } else {
        using M = std::variant_alternative_t<I, Variant>;
        if (m.type == M::type) return M::decode(m.body);
        return decode_as<Variant, I + 1>(m, direction);
    }
}

}  // namespace

const char* to_string(Failed::Stage s) noexcept { return stage_names[static_cast<int>(s)]; }
const char* to_string(Failed::Kind k) noexcept { return kind_names[static_cast<int>(k)]; }

Dict Config::encode() const {
    return Dict{
        {"task_id", task_id},
        {"group", group},
        {"round", std::int64_t{round}},
        {"workdir", workdir},
        {"plan_dir", plan_dir},
        {"plugin_path", plugin_path},
        {"plugin_name", plugin_name},
        {"shm_prefix", shm_prefix},
        {"inputs_segment", inputs_segment},
        {"verify_inputs", verify_inputs},
        {"inputs_about", inputs_about},
        {"result_limit", result_limit},
        {"params", params},
    };
}

Config Config::decode(const Dict& body) {
    Body b(type, body,
           {"task_id", "group", "round", "workdir", "plan_dir", "plugin_path", "plugin_name", "shm_prefix",
            "inputs_segment", "verify_inputs", "inputs_about", "result_limit", "params"});
    Config c;
    c.task_id = b.string("task_id");
    c.group = b.string("group");
    c.round = static_cast<std::uint32_t>(b.integer("round", 0, std::numeric_limits<std::uint32_t>::max()));
    c.workdir = b.string("workdir");
    c.plan_dir = b.string("plan_dir");
    c.plugin_path = b.string("plugin_path");
    c.plugin_name = b.string("plugin_name");
    c.shm_prefix = b.string("shm_prefix");
    c.inputs_segment = b.string("inputs_segment", true);
    c.verify_inputs = b.as<bool>("verify_inputs", b.required("verify_inputs"));
    c.inputs_about = b.as<Dict>("inputs_about", b.required("inputs_about"));
    c.result_limit = static_cast<std::uint64_t>(b.integer("result_limit"));
    c.params = b.as<Dict>("params", b.required("params"));
    return c;
}

Load Load::decode(const Dict& body) {
    Body b(type, body, {});
    return {};
}

Dict Train::encode() const {
    Dict d{{"device", device}};
    if (exit_after) d["exit_after"] = true;
    if (ahead) d["ahead"] = true;
    return d;
}

Train Train::decode(const Dict& body) {
    Body b(type, body, {"device", "exit_after", "ahead"});
    Train t{b.string("device")};
    if (const Value* v = b.optional("exit_after")) t.exit_after = b.as<bool>("exit_after", *v);
    if (const Value* v = b.optional("ahead")) t.ahead = b.as<bool>("ahead", *v);
    return t;
}

Exit Exit::decode(const Dict& body) {
    Body b(type, body, {});
    return {};
}

Dict Ready::encode() const {
    Dict d{{"plugin", plugin}, {"abi_version", std::int64_t{abi_version}}};
    // Absent for protocol 1, so that a host that knows only it reads this.
    if (protocol != 1) d.insert_or_assign("protocol", std::int64_t{protocol});
    return d;
}

Ready Ready::decode(const Dict& body) {
    Body b(type, body, {"plugin", "abi_version", "protocol"});
    Ready r;
    r.plugin = b.string("plugin");
    r.abi_version = static_cast<std::uint32_t>(b.integer("abi_version", 0, std::numeric_limits<std::uint32_t>::max()));
    if (auto p = b.optional_integer("protocol", 1, std::numeric_limits<std::uint32_t>::max()))
        r.protocol = static_cast<std::uint32_t>(*p);
    return r;
}

Dict Loaded::encode() const {
    Dict d{{"ms", ms}, {"peak_memory", peak_memory}};
    if (memory_estimate) d.insert_or_assign("memory_estimate", *memory_estimate);
    if (gpu_memory_estimate) d.insert_or_assign("gpu_memory_estimate", *gpu_memory_estimate);
    return d;
}

Loaded Loaded::decode(const Dict& body) {
    Body b(type, body, {"ms", "peak_memory", "memory_estimate", "gpu_memory_estimate"});
    Loaded l;
    l.ms = b.integer("ms");
    l.peak_memory = b.integer("peak_memory");
    l.memory_estimate = b.optional_integer("memory_estimate");
    l.gpu_memory_estimate = b.optional_integer("gpu_memory_estimate");
    return l;
}

Dict Result::encode() const {
    List sizes, checksums;
    sizes.reserve(buffers.size());
    checksums.reserve(buffers.size());
    for (const auto& buf : buffers) {
        sizes.emplace_back(buf.size ? static_cast<std::int64_t>(*buf.size) : std::int64_t{-1});
        checksums.emplace_back(buf.size ? static_cast<std::int64_t>(buf.checksum) : std::int64_t{-1});
    }
    return Dict{{"size", size},
                {"bytes", buffers.size()},
                {"bytes_sizes", std::move(sizes)},
                {"bytes_checksums", std::move(checksums)},
                {"ms", ms},
                {"train_end_ns", train_end_ns},
                {"peak_memory", peak_memory}};
}

Result Result::decode(const Dict& body) {
    Body b(type, body, {"size", "bytes", "bytes_sizes", "bytes_checksums", "ms", "train_end_ns", "peak_memory"});
    Result r;
    r.size = static_cast<std::uint64_t>(b.integer("size"));
    auto count = static_cast<std::uint64_t>(b.integer("bytes"));
    std::vector<std::int64_t> sizes = b.integers("bytes_sizes", -1, int64_max);
    std::vector<std::int64_t> checksums = b.integers("bytes_checksums", std::numeric_limits<std::int64_t>::min(),
                                                     int64_max);
    auto check_count = [&](const char* field, std::size_t n) {
        if (n != count) b.fail(field, fmt::format("has {} items, but 'bytes' announces {} buffers", n, count));
    };
    check_count("bytes_sizes", sizes.size());
    check_count("bytes_checksums", checksums.size());
    r.buffers.reserve(sizes.size());
    for (std::size_t i = 0; i < sizes.size(); ++i) {
        if (sizes[i] < 0) r.buffers.push_back(BytesBuffer{std::nullopt, 0});
        else r.buffers.push_back({static_cast<std::uint64_t>(sizes[i]), static_cast<std::uint64_t>(checksums[i])});
    }
    r.ms = b.integer("ms");
    r.train_end_ns = b.integer("train_end_ns");
    r.peak_memory = b.integer("peak_memory");
    return r;
}

Dict Failed::encode() const {
    Dict d{{"stage", to_string(stage)}, {"kind", to_string(kind)}, {"message", message}};
    if (ms) d.insert_or_assign("ms", *ms);
    if (peak_memory) d.insert_or_assign("peak_memory", *peak_memory);
    return d;
}

Failed Failed::decode(const Dict& body) {
    Body b(type, body, {"stage", "kind", "message", "ms", "peak_memory"});
    Failed f;
    f.stage = static_cast<Stage>(b.one_of("stage", stage_names));
    f.kind = static_cast<Kind>(b.one_of("kind", kind_names));
    f.message = b.string("message", true);
    f.ms = b.optional_integer("ms");
    f.peak_memory = b.optional_integer("peak_memory");
    if (f.kind == Kind::bad_plugin && f.stage != Stage::start)
        b.fail("kind", fmt::format("is bad_plugin in stage {} (only in start)", to_string(f.stage)));
    if (f.stage == Stage::channel && f.kind != Kind::protocol)
        b.fail("kind", fmt::format("is {} in stage channel (only protocol)", to_string(f.kind)));
    return f;
}

Dict ShimWorker::encode() const { return Dict{{"pid", pid}}; }

ShimWorker ShimWorker::decode(const Dict& body) {
    Body b(type, body, {"pid"});
    return ShimWorker{b.integer("pid", 1)};
}

Dict ShimLeftovers::encode() const { return Dict{{"count", count}}; }

ShimLeftovers ShimLeftovers::decode(const Dict& body) {
    Body b(type, body, {"count"});
    return ShimLeftovers{b.integer("count", 1)};
}

channel::Type type_of(const FromHost& m) noexcept {
    return std::visit([](const auto& v) { return std::decay_t<decltype(v)>::type; }, m);
}
channel::Type type_of(const FromWorker& m) noexcept {
    return std::visit([](const auto& v) { return std::decay_t<decltype(v)>::type; }, m);
}
Dict encode(const FromHost& m) {
    return std::visit([](const auto& v) { return v.encode(); }, m);
}
Dict encode(const FromWorker& m) {
    return std::visit([](const auto& v) { return v.encode(); }, m);
}

FromHost decode_from_host(const channel::Message& m) { return decode_as<FromHost>(m, "the worker"); }
FromWorker decode_from_worker(const channel::Message& m) { return decode_as<FromWorker>(m, "the host"); }

std::optional<FromShim> decode_from_shim(const channel::Message& m) {
    if (m.type == ShimWorker::type) return ShimWorker::decode(m.body);
    if (m.type == ShimLeftovers::type) return ShimLeftovers::decode(m.body);
    return std::nullopt;
}

void Conversation::sent(const FromHost& m) noexcept {
    if (std::holds_alternative<Load>(m)) pending_ = Pending::load;
    else if (const auto* train = std::get_if<Train>(&m)) {
        // One sent ahead is pending once its load has ended well.
        if (train->ahead && pending_ == Pending::load) train_ahead_ = true;
        else pending_ = Pending::train;
        exit_after_train_ = train->exit_after;
    } else if (std::holds_alternative<Exit>(m)) exit_sent_ = true;
    // A config asks for no answer (the first is answered by `ready`).
}

std::string Conversation::expecting() const {
    if (exit_sent_) return "nothing: the worker was told to exit";
    if (exit_implied_) return "nothing: the worker exits after its result";
    if (ended_) return "nothing: the worker reported that it cannot go on";
    if (!ready_) return "'ready' or 'failed' in start";
    switch (pending_) {
    case Pending::load: return "'loaded' or 'failed' in load";
    case Pending::train: return "'result' or 'failed' in train";
    case Pending::none: break;
    }
    return "nothing: no stage is running";
}

void Conversation::refuse(const char* what, const char* stage) const {
    throw channel::ProtocolError(fmt::format("unexpected '{}' message{}{} (expected {})", what,
                                             stage != nullptr ? " in " : "", stage != nullptr ? stage : "",
                                             expecting()));
}

FromWorker Conversation::receive(const channel::Message& m) {
    FromWorker msg = decode_from_worker(m);
    const char* name = channel::type_name(m.type);
    const Failed* failed = std::get_if<Failed>(&msg);
    const char* stage = failed != nullptr ? to_string(failed->stage) : nullptr;
    if (exit_sent_ || ended_ || exit_implied_) refuse(name, stage);
    if (std::holds_alternative<Ready>(msg)) {
        if (ready_) refuse(name, stage);
        ready_ = true;
    } else if (failed != nullptr &&
               (failed->stage == Failed::Stage::start || failed->stage == Failed::Stage::channel)) {
        if (failed->stage == Failed::Stage::start && ready_) refuse(name, stage);
        ended_ = true;
    } else {
        // loaded, result, or failed in load or train: the answer to the
        // stage the host asked for.
        bool load = std::holds_alternative<Loaded>(msg) || (failed != nullptr && failed->stage == Failed::Stage::load);
        if (!ready_ || pending_ != (load ? Pending::load : Pending::train)) refuse(name, stage);
        // A train sent ahead runs after a load that ended well; after a
        // failed one the worker drops it.
        pending_ = train_ahead_ && std::holds_alternative<Loaded>(msg) ? Pending::train : Pending::none;
        train_ahead_ = false;
        exit_implied_ = exit_after_train_ && std::holds_alternative<Result>(msg);
    }
    return msg;
}

}  // namespace fedflow::messages
