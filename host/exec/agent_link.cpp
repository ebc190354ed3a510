#include "exec/agent_link.hpp"

#include <fmt/core.h>

#include <cerrno>
#include <limits>
#include <system_error>

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace fedflow::exec::agent {

namespace {

// One frame's body, read field by field; a refusal names the frame and the
// field. The two ends are the same build, so a refusal means a broken
// agent (or something else on its stdout), not an old one.
class Reader {
public:
    Reader(const char* frame, const Dict& body) : frame_(frame), body_(body) {}

    [[noreturn]] void fail(std::string_view field, std::string_view what) const {
        throw channel::ProtocolError(fmt::format("node agent '{}' frame: field '{}' {}", frame_, field, what));
    }
    const Value& required(std::string_view field) const {
        const Value* v = body_.find(field);
        if (v == nullptr) fail(field, "is missing");
        return *v;
    }
    template <class T>
    Value::as_result<T> as(std::string_view field) const {
        const Value& v = required(field);
        if (!v.is<T>()) fail(field, fmt::format("is a {}, not a {}", v.type_name(), Value::type_name_of<T>()));
        return v.as<T>();
    }
    std::int64_t i64(std::string_view field) const { return as<std::int64_t>(field); }
    std::uint64_t u64(std::string_view field) const {
        std::int64_t i = i64(field);
        if (i < 0) fail(field, fmt::format("is {}, not >= 0", i));
        return static_cast<std::uint64_t>(i);
    }
    std::optional<std::uint64_t> optional_u64(std::string_view field) const {
        if (body_.find(field) == nullptr) return std::nullopt;
        return u64(field);
    }
    bool flag(std::string_view field) const { return as<bool>(field); }
    double real(std::string_view field) const { return as<double>(field); }
    const std::string& str(std::string_view field) const { return as<std::string>(field); }
    const Dict& dict(std::string_view field) const { return as<Dict>(field); }
    const List& list(std::string_view field) const { return as<List>(field); }

private:
    const char* frame_;
    const Dict& body_;
};

void put_optional(Dict& d, std::string_view key, const std::optional<std::uint64_t>& v) {
    if (v) d.insert_or_assign(key, static_cast<std::int64_t>(*v));
}

std::int64_t i64(std::uint64_t v) {
    return static_cast<std::int64_t>(std::min<std::uint64_t>(v, std::numeric_limits<std::int64_t>::max()));
}

}  // namespace

const char* frame_name(Frame f) noexcept {
    switch (f) {
    case Frame::hello: return "hello";
    case Frame::start_group: return "start_group";
    case Frame::learn: return "learn";
    case Frame::load: return "load";
    case Frame::train: return "train";
    case Frame::end_stage: return "end_stage";
    case Frame::reserve: return "reserve";
    case Frame::release: return "release";
    case Frame::signal: return "signal";
    case Frame::signal_all: return "signal_all";
    case Frame::terminate: return "terminate";
    case Frame::check_shared: return "check_shared";
    case Frame::group_inputs: return "group_inputs";
    case Frame::keep: return "keep";
    case Frame::next_round: return "next_round";
    case Frame::ready: return "ready";
    case Frame::reply: return "reply";
    case Frame::event: return "event";
    case Frame::state: return "state";
    }
    return "unknown";
}

bool send(int fd, Frame f, const Dict& body) {
    const std::string bytes = channel::frame(static_cast<channel::Type>(f), body);
    std::size_t done = 0;
    bool socket = true;
    while (done < bytes.size()) {
        // The host's end is a socket (MSG_NOSIGNAL: a dead srun is an
        // EPIPE, not a SIGPIPE); the agent's is the pipe slurmstepd gives.
        ssize_t n = socket ? ::send(fd, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL)
                           : ::write(fd, bytes.data() + done, bytes.size() - done);
        if (n < 0 && errno == ENOTSOCK && socket) {
            socket = false;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            pollfd p{fd, POLLOUT, 0};
            ::poll(&p, 1, -1);
            continue;
        }
        if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) return false;
        if (n < 0) throw std::system_error(errno, std::generic_category(), "node agent link");
        done += static_cast<std::size_t>(n);
    }
    return true;
}

Dict Hello::encode() const {
    const sched::Limits& l = scheduler.limits;
    List gpus;
    for (int g : l.gpus) gpus.emplace_back(std::int64_t{g});
    return Dict{{"cpu_utilization", l.cpu_utilization},
                {"memory_utilization", l.memory_utilization},
                {"gpu_memory_utilization", l.gpu_memory_utilization},
                {"memory_reserve", i64(l.memory_reserve)},
                {"gpu_memory_reserve", i64(l.gpu_memory_reserve)},
                {"use_gpus", l.use_gpus},
                {"gpus", std::move(gpus)},
                {"max_processes", std::int64_t{scheduler.policy.max_processes}},
                {"max_waiting", std::int64_t{scheduler.policy.max_waiting}},
                {"gpu_order", static_cast<std::int64_t>(scheduler.policy.gpu_order)},
                {"default_memory", i64(scheduler.default_memory)},
                {"default_gpu_memory", i64(scheduler.default_gpu_memory)},
                {"auto_adjust", scheduler.auto_adjust},
                {"kill_grace_ms", static_cast<std::int64_t>(kill_grace.count())},
                {"sample_ms", static_cast<std::int64_t>(sample_period.count())},
                {"simulate_gpus", simulate_gpus},
                {"node", node},
                {"fork_server", fork_server}};
}

Hello Hello::decode(const Dict& body) {
    Reader r("hello", body);
    Hello h;
    sched::Limits& l = h.scheduler.limits;
    l.cpu_utilization = r.real("cpu_utilization");
    l.memory_utilization = r.real("memory_utilization");
    l.gpu_memory_utilization = r.real("gpu_memory_utilization");
    l.memory_reserve = r.u64("memory_reserve");
    l.gpu_memory_reserve = r.u64("gpu_memory_reserve");
    l.use_gpus = r.flag("use_gpus");
    for (const Value& g : r.list("gpus")) l.gpus.push_back(static_cast<int>(g.as<std::int64_t>()));
    h.scheduler.policy.max_processes = static_cast<std::uint32_t>(r.u64("max_processes"));
    h.scheduler.policy.max_waiting = static_cast<std::uint32_t>(r.u64("max_waiting"));
    std::uint64_t order = r.u64("gpu_order");
    if (order > static_cast<std::uint64_t>(sched::GpuOrder::free_memory)) r.fail("gpu_order", "is out of range");
    h.scheduler.policy.gpu_order = static_cast<sched::GpuOrder>(order);
    h.scheduler.default_memory = r.u64("default_memory");
    h.scheduler.default_gpu_memory = r.u64("default_gpu_memory");
    h.scheduler.auto_adjust = r.flag("auto_adjust");
    h.kill_grace = std::chrono::milliseconds(r.u64("kill_grace_ms"));
    h.sample_period = std::chrono::milliseconds(r.u64("sample_ms"));
    h.simulate_gpus = r.str("simulate_gpus");
    h.node = r.str("node");
    h.fork_server = r.flag("fork_server");
    return h;
}

Dict encode(const sched::Snapshot& s) {
    List gpus;
    for (const auto& g : s.gpus)
        gpus.emplace_back(Dict{{"index", std::int64_t{g.index}},
                               {"name", g.name},
                               {"pci_bus_id", g.pci_bus_id},
                               {"uuid", g.uuid},
                               {"total", i64(g.total)},
                               {"used", i64(g.used)},
                               {"simulated", g.simulated}});
    return Dict{{"cpus", std::int64_t{s.cpus}},
                {"ram_total", i64(s.ram_total)},
                {"ram_available", i64(s.ram_available)},
                {"gpus", std::move(gpus)}};
}

sched::Snapshot decode_snapshot(const Dict& body) {
    Reader r("ready", body);
    sched::Snapshot s;
    s.cpus = static_cast<unsigned>(r.u64("cpus"));
    s.ram_total = r.u64("ram_total");
    s.ram_available = r.u64("ram_available");
    for (const Value& v : r.list("gpus")) {
        if (!v.is<Dict>()) r.fail("gpus", "holds what is not a dict");
        Reader g("ready", v.as<Dict>());
        sched::Gpu gpu;
        gpu.index = static_cast<int>(g.u64("index"));
        gpu.name = g.str("name");
        gpu.pci_bus_id = g.str("pci_bus_id");
        gpu.uuid = g.str("uuid");
        gpu.total = g.u64("total");
        gpu.used = g.u64("used");
        gpu.simulated = g.flag("simulated");
        s.gpus.push_back(std::move(gpu));
    }
    return s;
}

Dict Ready::encode() const {
    return Dict{{"hostname", hostname},
                {"containment", containment},
                {"gpu_status", gpu_status},
                {"machine", agent::encode(machine)}};
}

Ready Ready::decode(const Dict& body) {
    Reader r("ready", body);
    Ready out;
    out.hostname = r.str("hostname");
    out.containment = r.str("containment");
    out.gpu_status = r.str("gpu_status");
    out.machine = decode_snapshot(r.dict("machine"));
    return out;
}

Dict Load::encode() const {
    Dict d{{"id", i64(id)}, {"workdir", workdir}, {"config", config}, {"inputs_file", inputs_file}};
    put_optional(d, "grown_memory", grown_memory);
    put_optional(d, "memory", memory);
    if (preload) d.insert_or_assign("preload", preload->encode());
    d.insert_or_assign("may_evict", may_evict);
    return d;
}

Load Load::decode(const Dict& body) {
    Reader r("load", body);
    Load l;
    l.id = r.u64("id");
    l.workdir = r.str("workdir");
    l.config = r.dict("config");
    l.inputs_file = r.str("inputs_file");
    l.grown_memory = r.optional_u64("grown_memory");
    l.memory = r.optional_u64("memory");
    l.may_evict = r.flag("may_evict");
    if (body.find("preload") != nullptr) {
        Reader p("load", r.dict("preload"));
        PreloadSpec spec;
        spec.plugin_path = p.str("plugin_path");
        spec.plugin_name = p.str("plugin_name");
        for (const Value& m : p.list("modules")) {
            if (!m.is<std::string>()) p.fail("modules", "holds what is not a string");
            spec.modules.push_back(m.as<std::string>());
        }
        spec.params = p.dict("params");
        spec.plan_dir = p.str("plan_dir");
        l.preload = std::move(spec);
    }
    return l;
}

Dict NextRound::encode() const { return Dict{{"id", i64(id)}, {"config", config}, {"inputs_file", inputs_file}}; }

NextRound NextRound::decode(const Dict& body) {
    Reader r("next_round", body);
    NextRound n;
    n.id = r.u64("id");
    n.config = r.dict("config");
    n.inputs_file = r.str("inputs_file");
    return n;
}

Dict encode(const TrainRequest& t, WorkerId id) {
    Dict d{{"id", i64(id)}, {"pinned", t.pinned}};
    put_optional(d, "grown_gpu_memory", t.grown_gpu_memory);
    put_optional(d, "gpu_memory", t.gpu_memory);
    d["last"] = t.last;
    return d;
}

TrainRequest decode_train(const Dict& body, WorkerId& id) {
    Reader r("train", body);
    TrainRequest t;
    id = r.u64("id");
    t.pinned = r.str("pinned");
    t.grown_gpu_memory = r.optional_u64("grown_gpu_memory");
    t.gpu_memory = r.optional_u64("gpu_memory");
    t.last = r.flag("last");
    return t;
}

Dict encode(const Admission& a) {
    return Dict{{"kind", static_cast<std::int64_t>(a.verdict.kind)},
                {"device", a.verdict.device},
                {"gpu", std::int64_t{a.verdict.gpu}},
                {"resource", a.verdict.resource},
                {"reason", a.verdict.reason},
                {"estimate", i64(a.estimate.bytes)},
                {"source", std::string(a.estimate.source)},
                {"pid", std::int64_t{a.pid}}};
}

Admission decode_admission(const Dict& body) {
    Reader r("reply", body);
    Admission a;
    std::int64_t kind = r.i64("kind");
    if (kind < 0 || kind > static_cast<std::int64_t>(sched::Verdict::Kind::never)) r.fail("kind", "is out of range");
    a.verdict.kind = static_cast<sched::Verdict::Kind>(kind);
    a.verdict.device = r.str("device");
    a.verdict.gpu = static_cast<int>(r.i64("gpu"));
    a.verdict.resource = r.str("resource");
    a.verdict.reason = r.str("reason");
    a.estimate.bytes = r.u64("estimate");
    // Estimate::source points at a literal: map the name back to one.
    const std::string& source = r.str("source");
    for (const char* s : {"grown", "task", "learned", "group", "default"})
        if (source == s) a.estimate.source = s;
    a.pid = static_cast<int>(r.i64("pid"));
    return a;
}

Dict encode(const Event& e) {
    Dict d{{"kind", static_cast<std::int64_t>(e.kind)}, {"id", i64(e.id)}};
    switch (e.kind) {
    case Event::Kind::message:
        d.insert_or_assign("type", static_cast<std::int64_t>(messages::type_of(e.message)));
        d.insert_or_assign("body", messages::encode(e.message));
        if (!e.result_dir.empty()) d.insert_or_assign("result_dir", e.result_dir.string());
        break;
    case Event::Kind::broken: d.insert_or_assign("error", e.error); break;
    case Event::Kind::stopped:
        d.insert_or_assign("signal", std::int64_t{e.signal});
        d.insert_or_assign("stops", std::int64_t{e.stops});
        d.insert_or_assign("ended", e.ended);
        break;
    case Event::Kind::exited:
        d.insert_or_assign("wait_status", std::int64_t{e.wait_status});
        d.insert_or_assign("killed_for_memory", e.killed_for_memory);
        d.insert_or_assign("signalled_by_host", e.signalled_by_host);
        d.insert_or_assign("closed_channel", e.closed_channel);
        d.insert_or_assign("leftovers", i64(e.leftovers));
        d.insert_or_assign("evicted", e.evicted);
        if (e.server_lost) d.insert_or_assign("server_lost", e.error);
        break;
    }
    // With every event: what the worker was seen to hold so far.
    d.insert_or_assign("peak_memory", e.peaks.memory);
    d.insert_or_assign("peak_gpu_memory", e.peaks.gpu_memory);
    return d;
}

Event decode_event(const Dict& body) {
    Reader r("event", body);
    Event e;
    std::int64_t kind = r.i64("kind");
    if (kind < 0 || kind > static_cast<std::int64_t>(Event::Kind::exited)) r.fail("kind", "is out of range");
    e.kind = static_cast<Event::Kind>(kind);
    e.id = r.u64("id");
    switch (e.kind) {
    case Event::Kind::message: {
        channel::Message m{static_cast<channel::Type>(r.u64("type")), r.dict("body")};
        // The agent checked the worker's turn; this checks the fields again.
        e.message = messages::decode_from_worker(m);
        if (body.find("result_dir") != nullptr) e.result_dir = r.str("result_dir");
        break;
    }
    case Event::Kind::broken: e.error = r.str("error"); break;
    case Event::Kind::stopped:
        e.signal = static_cast<int>(r.i64("signal"));
        e.stops = static_cast<int>(r.i64("stops"));
        e.ended = r.flag("ended");
        break;
    case Event::Kind::exited:
        e.wait_status = static_cast<int>(r.i64("wait_status"));
        e.killed_for_memory = r.flag("killed_for_memory");
        e.signalled_by_host = r.flag("signalled_by_host");
        e.closed_channel = r.flag("closed_channel");
        e.leftovers = r.u64("leftovers");
        e.evicted = r.flag("evicted");
        if (body.find("server_lost") != nullptr) {
            e.error = r.str("server_lost");
            e.server_lost = true;
        }
        break;
    }
    e.peaks.memory = r.i64("peak_memory");
    e.peaks.gpu_memory = r.i64("peak_gpu_memory");
    return e;
}

Dict encode(const std::vector<DeviceUse>& devices, std::size_t live) {
    List list;
    for (const auto& d : devices)
        list.emplace_back(Dict{{"name", d.name},
                               {"used", i64(d.used)},
                               {"total", i64(d.total)},
                               {"reserved", i64(d.reserved)},
                               {"tasks", std::int64_t{d.tasks}}});
    return Dict{{"devices", std::move(list)}, {"live", i64(live)}};
}

std::vector<DeviceUse> decode_devices(const Dict& body, std::size_t& live) {
    Reader r("state", body);
    live = r.u64("live");
    std::vector<DeviceUse> out;
    for (const Value& v : r.list("devices")) {
        if (!v.is<Dict>()) r.fail("devices", "holds what is not a dict");
        Reader d("state", v.as<Dict>());
        out.push_back(
            {d.str("name"), d.u64("used"), d.u64("total"), d.u64("reserved"), static_cast<int>(d.i64("tasks"))});
    }
    return out;
}

}  // namespace fedflow::exec::agent
