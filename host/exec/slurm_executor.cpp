#include "exec/slurm_executor.hpp"

#include "common/device.hpp"
#include "common/log.hpp"
#include "common/process.hpp"
#include "common/shm.hpp"
#include "common/text.hpp"
#include "common/units.hpp"
#include "exec/worker_process.hpp"
#include "sched/admission.hpp"

#include <fmt/core.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <random>
#include <system_error>
#include <thread>

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace fedflow::exec {

std::vector<unsigned> parse_cpus_per_node(std::string_view text, std::size_t count) {
    std::vector<unsigned> out;
    for (std::string_view item : units::split_commas(text)) {
        std::size_t paren = item.find('(');
        std::string_view n = item.substr(0, paren);
        std::size_t times = 1;
        if (paren != std::string_view::npos) {
            std::string_view rep = item.substr(paren);
            if (rep.size() < 4 || rep.substr(0, 2) != "(x" || rep.back() != ')' ||
                !units::all_digits(rep.substr(2, rep.size() - 3)))
                throw std::invalid_argument(fmt::format("SLURM_JOB_CPUS_PER_NODE={}: cannot read '{}'", text, item));
            times = std::stoul(std::string(rep.substr(2, rep.size() - 3)));
        }
        if (n.empty() || n.size() > 6 || !units::all_digits(n))
            throw std::invalid_argument(fmt::format("SLURM_JOB_CPUS_PER_NODE={}: cannot read '{}'", text, item));
        for (std::size_t i = 0; i < times && out.size() < count; ++i)
            out.push_back(static_cast<unsigned>(std::stoul(std::string(n))));
    }
    if (out.size() != count)
        throw std::invalid_argument(
            fmt::format("SLURM_JOB_CPUS_PER_NODE={} names the CPUs of {} node(s), not of {}", text, out.size(), count));
    return out;
}

namespace {

// argv (looked up in PATH) with one end of a socketpair as its stdin and
// stdout; *link is the other end, ours. Its stderr is ours; its process
// group its own (process.hpp), so that a Ctrl-C in the terminal reaches the
// host alone, which then ends the agents itself.
process::Child spawn_linked(const std::vector<std::string>& argv, int* link) {
    int sv[2] = {-1, -1};
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        throw std::system_error(errno, std::generic_category(), "socketpair");
    process::Spec spec;
    spec.argv = argv;
    spec.search_path = true;
    spec.files = {process::Spec::dup(sv[1], STDIN_FILENO), process::Spec::dup(sv[1], STDOUT_FILENO)};
    spec.close_from = 3;
    process::Child child;
    try {
        child = process::spawn(spec);
    } catch (...) {
        ::close(sv[0]);
        ::close(sv[1]);
        throw;
    }
    ::close(sv[1]);
    *link = sv[0];
    return child;
}

// What a short command prints on stdout; throws when it fails.
std::string capture(const std::vector<std::string>& argv) {
    int from = -1;
    process::Child child = spawn_linked(argv, &from);
    ::shutdown(from, SHUT_WR);
    std::string out;
    char buf[4096];
    for (;;) {
        ssize_t n = ::read(from, buf, sizeof buf);
        if (n > 0) out.append(buf, static_cast<std::size_t>(n));
        else if (n < 0 && errno == EINTR) continue;
        else break;
    }
    ::close(from);
    if (!child.wait_for(std::chrono::seconds(30))) {
        child.kill(SIGKILL);
        child.wait_for(std::chrono::seconds(5));
    }
    int status = child.wait_status().value_or(SIGKILL);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        throw std::runtime_error(fmt::format("`{}` {}", fmt::join(argv, " "), describe_wait_status(status)));
    return out;
}

std::string getenv_or(const char* name, const char* fallback = "") {
    const char* v = std::getenv(name);
    return v == nullptr ? fallback : v;
}

}  // namespace

SlurmExecutor::SlurmExecutor(Options options) : options_(std::move(options)) {
    const std::string job = getenv_or("SLURM_JOB_ID");
    const std::string nodelist = getenv_or("SLURM_JOB_NODELIST", getenv_or("SLURM_NODELIST").c_str());
    if (job.empty() || nodelist.empty())
        throw std::invalid_argument(
            "--slurm: not inside a Slurm allocation (SLURM_JOB_ID and SLURM_JOB_NODELIST are not "
            "set): run fedflow-host in `salloc` or in an sbatch script (docs/slurm.md)");
    std::vector<std::string> names;
    std::string listed = capture({"scontrol", "show", "hostnames", nodelist});
    for (std::size_t pos = 0; pos < listed.size();) {
        std::size_t end = listed.find('\n', pos);
        if (end == std::string::npos) end = listed.size();
        std::string name = listed.substr(pos, end - pos);
        if (!name.empty()) names.push_back(name);
        pos = end + 1;
    }
    if (names.empty())
        throw std::runtime_error(fmt::format("--slurm: `scontrol show hostnames {}` named no node", nodelist));
    std::vector<unsigned> cpus(names.size(), 0);
    std::string per_node = getenv_or("SLURM_JOB_CPUS_PER_NODE");
    if (!per_node.empty()) cpus = parse_cpus_per_node(per_node, names.size());
    for (std::size_t i = 0; i < names.size(); ++i) {
        Node n;
        n.name = names[i];
        n.cpus = cpus[i];
        nodes_.push_back(std::move(n));
    }
    log::info("Slurm job {}: {} node(s): {}", job, nodes_.size(), fmt::join(names, ", "));
    start_agents();
}

SlurmExecutor::~SlurmExecutor() {
    // The end of the links ends the agents (EOF on their stdin), and each
    // agent its workers; srun ends with its step.
    for (auto& n : nodes_)
        if (n.link >= 0) ::shutdown(n.link, SHUT_WR);
    auto deadline = Clock::now() + options_.hello.kill_grace + std::chrono::seconds(5);
    for (auto& n : nodes_) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        if (n.srun.pid() > 0 && !n.srun.wait_for(std::max(left, std::chrono::milliseconds(0)))) {
            n.srun.kill(SIGKILL);
            n.srun.wait_for(std::chrono::seconds(5));
        }
        if (n.link >= 0) ::close(n.link);
        n.link = -1;
    }
    std::error_code ec;
    for (const auto& [segment, file] : inputs_) fs::remove(file, ec);
}

void SlurmExecutor::start_agents() {
    agent::Hello hello = options_.hello;
    for (auto& n : nodes_) {
        std::vector<std::string> argv{"srun", "--nodes=1", "--ntasks=1", "--nodelist=" + n.name};
        if (n.cpus > 0) argv.push_back(fmt::format("--cpus-per-task={}", n.cpus));
        for (const char* a : {"--mem=0", "--overlap", "--no-kill", "--kill-on-bad-exit=0", "--unbuffered", "--quiet"})
            argv.emplace_back(a);
        argv.push_back("--job-name=fedflow-agent");
        argv.push_back(options_.host.string());
        argv.push_back("agent");
        argv.push_back("--log-level=" + options_.log_level);
        n.srun = spawn_linked(argv, &n.link);
        ::fcntl(n.link, F_SETFL, ::fcntl(n.link, F_GETFL) | O_NONBLOCK);
        hello.node = n.name;
        send(n, agent::Frame::hello, hello.encode());
    }
    // Every agent says ready, or is lost.
    auto deadline = Clock::now() + options_.start_timeout;
    for (;;) {
        std::vector<pollfd> fds;
        std::vector<Node*> waiting;
        for (auto& n : nodes_)
            if (!n.lost && n.ready.hostname.empty()) {
                fds.push_back({n.link, POLLIN, 0});
                waiting.push_back(&n);
            }
        if (waiting.empty()) break;
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        if (left <= 0) {
            for (Node* n : waiting)
                lose(*n, fmt::format("its agent was not ready within {} s", options_.start_timeout.count() / 1000));
            break;
        }
        if (::poll(fds.data(), fds.size(), static_cast<int>(left)) < 0 && errno != EINTR)
            throw std::system_error(errno, std::generic_category(), "poll");
        for (std::size_t i = 0; i < fds.size(); ++i)
            if (fds[i].revents != 0 && !read_available(*waiting[i]) && !waiting[i]->lost)
                lose(*waiting[i], "its agent ended before it was ready");
    }
    std::string lost;
    for (const auto& n : nodes_)
        if (n.lost) lost += fmt::format("{}{}: {}", lost.empty() ? "" : "; ", n.name, n.lost_why);
    if (live_nodes() == 0) throw std::runtime_error("--slurm: no node agent could be started (" + lost + ")");
    if (!lost.empty()) log::warning("--slurm: running without {}", lost);

    // The machine, as run.json and the log show it: every node's GPUs,
    // named after their node, and the sum of CPUs and RAM.
    machine_ = {};
    machine_.cpus = 0;
    for (const auto& n : nodes_) {
        if (n.lost) continue;
        const sched::Snapshot& s = n.ready.machine;
        machine_.cpus += s.cpus;
        machine_.ram_total += s.ram_total;
        machine_.ram_available += s.ram_available;
        for (auto g : s.gpus) {
            g.node = n.name;
            machine_.gpus.push_back(std::move(g));
        }
        log::info("node {} ({}): {} CPUs, {} of RAM, {} GPU(s); workers contained by {}", n.name, n.ready.hostname,
                  s.cpus, text::format_size(s.ram_total), s.gpus.size(), n.ready.containment);
    }
}

std::size_t SlurmExecutor::live_nodes() const {
    return static_cast<std::size_t>(std::count_if(nodes_.begin(), nodes_.end(), [](const Node& n) { return !n.lost; }));
}

std::vector<std::pair<std::string, bool>> SlurmExecutor::nodes() const {
    std::vector<std::pair<std::string, bool>> out;
    for (const auto& n : nodes_) out.emplace_back(n.name, !n.lost);
    return out;
}

std::string SlurmExecutor::gpu_status() const {
    for (const auto& n : nodes_)
        if (!n.lost) return n.ready.gpu_status;
    return {};
}

std::string SlurmExecutor::containment() const {
    for (const auto& n : nodes_)
        if (!n.lost) return n.ready.containment;
    return "none";
}

void SlurmExecutor::send(Node& n, agent::Frame f, const Dict& body) {
    if (n.lost) return;
    if (!agent::send(n.link, f, body)) lose(n, "its agent's link closed");
}

bool SlurmExecutor::read_available(Node& n) {
    char buf[65536];
    bool open = true;
    for (;;) {
        ssize_t r = ::read(n.link, buf, sizeof buf);
        if (r > 0) {
            n.reader.feed(buf, static_cast<std::size_t>(r));
            continue;
        }
        if (r < 0 && errno == EINTR) continue;
        if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) open = false;
        break;
    }
    try {
        while (auto m = n.reader.next()) take(n, *m, nullptr);
    } catch (const std::exception& e) {
        lose(n, fmt::format("its agent sent what is no valid frame: {}", e.what()));
        return false;
    }
    return open;
}

void SlurmExecutor::take(Node& n, const channel::Message& m, std::optional<Dict>* reply) {
    switch (static_cast<agent::Frame>(m.type)) {
    case agent::Frame::ready: n.ready = agent::Ready::decode(m.body); break;
    case agent::Frame::state: n.devices = agent::decode_devices(m.body, n.live); break;
    case agent::Frame::event: {
        Event e = agent::decode_event(m.body);
        auto w = workers_.find(e.id);
        if (w == workers_.end()) break;  // a worker this host does not know (any more)
        n.refused_at.reset();            // news: it may admit what it refused
        if (e.kind == Event::Kind::exited) workers_.erase(w);
        pending_.push_back(std::move(e));
        break;
    }
    case agent::Frame::reply:
        if (reply == nullptr || reply->has_value()) throw channel::ProtocolError("a reply to no request");
        *reply = m.body;
        break;
    default: throw channel::ProtocolError(fmt::format("unexpected frame type {}", static_cast<std::uint32_t>(m.type)));
    }
}

Dict SlurmExecutor::request(Node& n, agent::Frame f, const Dict& body) {
    send(n, f, body);
    std::optional<Dict> reply;
    auto deadline = Clock::now() + options_.reply_timeout;
    while (!n.lost) {
        try {
            // Frames after the reply (events) are taken too: once buffered
            // here, poll() would not tell of them again.
            while (auto m = n.reader.next()) take(n, *m, reply ? nullptr : &reply);
        } catch (const std::exception& e) {
            lose(n, fmt::format("its agent sent what is no valid frame: {}", e.what()));
            break;
        }
        if (reply) return std::move(*reply);
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        if (left <= 0) {
            lose(n, fmt::format("its agent did not answer '{}' within {} s", agent::frame_name(f),
                                options_.reply_timeout.count() / 1000));
            break;
        }
        pollfd p{n.link, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(left)) < 0 && errno != EINTR)
            throw std::system_error(errno, std::generic_category(), "poll");
        char buf[65536];
        ssize_t r = ::read(n.link, buf, sizeof buf);
        if (r > 0) n.reader.feed(buf, static_cast<std::size_t>(r));
        else if (r == 0 || (errno != EAGAIN && errno != EINTR && errno != EWOULDBLOCK)) lose(n, "its agent ended");
    }
    throw Lost(n.lost_why);
}

void SlurmExecutor::lose(Node& n, const std::string& why) {
    if (n.lost) return;
    n.lost = true;
    if (n.link >= 0) ::shutdown(n.link, SHUT_WR);
    // srun's status says more than the EOF: the step's end is usually
    // moments away (a killed agent, a node's failure, scancel).
    std::string status;
    if (n.srun.pid() > 0) {
        if (n.srun.wait_for(std::chrono::milliseconds(500))) {
            status = fmt::format(" (srun {})", describe_wait_status(*n.srun.wait_status()));
        } else {
            n.srun.kill(SIGKILL);
            n.srun.wait_for(std::chrono::seconds(5));
        }
    }
    if (n.link >= 0) ::close(n.link);
    n.link = -1;
    n.lost_why = why + status;
    n.devices.clear();
    std::size_t index = static_cast<std::size_t>(&n - nodes_.data());
    std::size_t count = 0;
    for (auto it = workers_.begin(); it != workers_.end();) {
        if (it->second.node != index) {
            ++it;
            continue;
        }
        Event e;
        e.kind = Event::Kind::exited;
        e.id = it->first;
        e.wait_status = SIGKILL;  // as a worker killed: it is gone with its node
        e.node_lost = true;
        e.error = fmt::format("its node {} was lost: {}", n.name, n.lost_why);
        e.peaks = it->second.peaks;
        pending_.push_back(std::move(e));
        it = workers_.erase(it);
        ++count;
    }
    log::error("node {} is lost: {}; {} task(s) ran there", n.name, n.lost_why, count);
}

void SlurmExecutor::check_shared() {
    // A file the host makes, which every agent must see: results and
    // inputs travel through the workdir.
    fs::path dir = options_.workdir / ".fedflow-slurm";
    fs::create_directories(dir);
    std::random_device rd;
    fs::path marker = dir / fmt::format("shared-{:08x}", rd());
    {
        std::FILE* f = std::fopen(marker.c_str(), "w");
        if (f == nullptr) throw std::system_error(errno, std::generic_category(), "cannot create " + marker.string());
        std::fclose(f);
    }
    std::string not_shared;
    for (auto& n : nodes_) {
        if (n.lost) continue;
        try {
            Dict reply = request(n, agent::Frame::check_shared, Dict{{"path", marker.string()}});
            const Value* error = reply.find("error");
            if (error != nullptr && error->is<std::string>() && !error->as<std::string>().empty())
                not_shared += (not_shared.empty() ? "" : "; ") + error->as<std::string>();
        } catch (const Lost&) {
        }
    }
    std::error_code ec;
    fs::remove(marker, ec);
    if (!not_shared.empty())
        throw std::runtime_error(fmt::format(
            "--slurm: the workdir {} is not shared by every node of the job ({}): results and inputs reach the host "
            "through it, so it must be on a filesystem that every node mounts at the same path (docs/slurm.md)",
            options_.workdir.string(), not_shared));
    shared_checked_ = true;
}

std::string SlurmExecutor::export_inputs(const std::string& segment) {
    if (segment.empty()) return {};
    if (auto it = inputs_.find(segment); it != inputs_.end()) return it->second;
    shm::Segment seg = shm::Segment::open_read_only(segment);
    fs::path file = options_.workdir / ".fedflow-slurm" / segment;
    std::FILE* f = std::fopen(file.c_str(), "wb");
    if (f == nullptr) throw std::system_error(errno, std::generic_category(), "cannot create " + file.string());
    bool ok = seg.size() == 0 || std::fwrite(seg.data(), 1, seg.size(), f) == seg.size();
    ok = std::fclose(f) == 0 && ok;
    if (!ok) throw std::system_error(errno, std::generic_category(), "cannot write " + file.string());
    return inputs_.emplace(segment, file.string()).first->second;
}

void SlurmExecutor::set_gpus(bool use_gpus, std::vector<int> gpus) {
    // Each node's step chooses its own GPUs (SLURM_STEP_GPUS); the host's
    // CUDA_VISIBLE_DEVICES is not theirs.
    log::info("--slurm: each node schedules the GPUs of its own step, not {}",
              use_gpus ? fmt::format("GPUs {}", fmt::join(gpus, ",")) : std::string("none"));
}

void SlurmExecutor::start_group(std::optional<std::uint64_t> memory, std::optional<std::uint64_t> gpu_memory) {
    if (!shared_checked_) check_shared();
    // The previous group's inputs are no longer read: its workers are gone.
    std::error_code ec;
    for (const auto& [segment, file] : inputs_) fs::remove(file, ec);
    inputs_.clear();
    Dict body;
    if (memory) body.insert_or_assign("memory", static_cast<std::int64_t>(*memory));
    if (gpu_memory) body.insert_or_assign("gpu_memory", static_cast<std::int64_t>(*gpu_memory));
    for (auto& n : nodes_) send(n, agent::Frame::start_group, body);
}

void SlurmExecutor::group_inputs(std::uint64_t bytes) {
    // Every node admits the group's tasks on its own ledger: each needs to know.
    for (auto& n : nodes_) send(n, agent::Frame::group_inputs, Dict{{"bytes", static_cast<std::int64_t>(bytes)}});
}

void SlurmExecutor::learn(const Peaks& peaks) {
    for (auto& n : nodes_)
        send(n, agent::Frame::learn, Dict{{"memory", peaks.memory}, {"gpu_memory", peaks.gpu_memory}});
}

std::uint64_t SlurmExecutor::grow(std::uint64_t estimate, std::int64_t peak, const std::string& device) const {
    const sched::Limits& limits = options_.hello.scheduler.limits;
    const std::string_view node = device::node(device);
    const int gpu = device::gpu_index(device);
    // A load's retry may go to any node: the smallest one's capacity.
    std::uint64_t capacity = UINT64_MAX;
    for (const auto& n : nodes_) {
        if (!node.empty() && n.name != node) continue;
        const sched::Snapshot& s = n.ready.machine;
        if (gpu >= 0) {
            for (const auto& g : s.gpus)
                if (g.index == gpu) capacity = std::min(capacity, sched::gpu_capacity(limits, g.total));
        } else {
            capacity = std::min(capacity, sched::memory_capacity(limits, s.ram_total));
        }
    }
    if (capacity == UINT64_MAX) capacity = estimate;
    return sched::grow_estimate(estimate, peak > 0 ? static_cast<std::uint64_t>(peak) : 0, capacity);
}

Admission SlurmExecutor::start_load(const LoadRequest& req) {
    Admission refused;
    refused.verdict = {sched::Verdict::Kind::wait, {}, -1, "nodes", "no node of the job is left"};
    // The node with the fewest workers per CPU first, then the most free
    // RAM; a node that refused lately is asked again only after a sample
    // period or news from it.
    const auto now = Clock::now();
    std::vector<Node*> order;
    for (auto& n : nodes_)
        if (!n.lost && (!n.refused_at || now - *n.refused_at >= options_.hello.sample_period)) order.push_back(&n);
    auto busy = [](const Node& n) { return static_cast<double>(n.live) / std::max(1u, n.ready.machine.cpus); };
    auto free_ram = [](const Node& n) -> std::int64_t {
        if (n.devices.empty()) return static_cast<std::int64_t>(n.ready.machine.ram_available);
        const DeviceUse& ram = n.devices.front();
        return static_cast<std::int64_t>(ram.total) - static_cast<std::int64_t>(ram.used + ram.reserved);
    };
    std::stable_sort(order.begin(), order.end(), [&](const Node* a, const Node* b) {
        double la = busy(*a), lb = busy(*b);
        return la != lb ? la < lb : free_ram(*a) > free_ram(*b);
    });
    if (order.empty() && live_nodes() > 0) {
        refused.verdict.resource = "memory";
        refused.verdict.reason = "every node refused it a moment ago";
    }
    std::optional<agent::Load> load;
    bool all_never = !order.empty();
    std::string nevers;
    for (Node* n : order) {
        if (!load) {
            load.emplace();
            load->id = req.id;
            load->workdir = req.workdir.string();
            load->grown_memory = req.grown_memory;
            load->memory = req.memory;
            load->preload = req.preload;
            messages::Config config = req.config();
            load->inputs_file = export_inputs(config.inputs_segment);
            load->config = config.encode();
        }
        // One node may end a kept worker for this load: the first asked,
        // which has the most room; the others would end theirs for nothing
        // when it, or another, admits it. A node that refused is asked
        // later, so the first asked changes while the load waits.
        load->may_evict = n == order.front();
        Admission a;
        // Known before the reply: the new worker's first events may come
        // in the same read.
        workers_[req.id] = Worker{static_cast<std::size_t>(n - nodes_.data()), {}};
        try {
            a = agent::decode_admission(request(*n, agent::Frame::load, load->encode()));
        } catch (const Lost&) {
            all_never = false;
            continue;
        } catch (const channel::ProtocolError& e) {
            lose(*n, e.what());
            all_never = false;
            continue;
        }
        if (a.verdict.go()) {
            n->refused_at.reset();
            return a;
        }
        workers_.erase(req.id);
        a.verdict.reason = fmt::format("{}: {}", n->name, a.verdict.reason);
        if (a.verdict.kind == sched::Verdict::Kind::never) {
            nevers += (nevers.empty() ? "" : "; ") + a.verdict.reason;
            continue;
        }
        all_never = false;
        n->refused_at = now;
        if (refused.verdict.resource == "nodes" || refused.verdict.resource == "memory") refused = a;
    }
    if (all_never) refused.verdict = {sched::Verdict::Kind::never, {}, -1, {}, nevers};
    return refused;
}

Admission SlurmExecutor::start_train(WorkerId id, const TrainRequest& train) {
    Admission a;
    auto w = workers_.find(id);
    if (w == workers_.end()) {
        // Its node was lost: the exit event is pending.
        a.verdict = {sched::Verdict::Kind::wait, {}, -1, "nodes", "its node was lost"};
        return a;
    }
    Node& n = nodes_[w->second.node];
    try {
        a = agent::decode_admission(request(n, agent::Frame::train, agent::encode(train, id)));
    } catch (const Lost&) {
        a.verdict = {sched::Verdict::Kind::wait, {}, -1, "nodes", "its node was lost"};
        return a;
    } catch (const channel::ProtocolError& e) {
        lose(n, e.what());
        a.verdict = {sched::Verdict::Kind::wait, {}, -1, "nodes", "its node was lost"};
        return a;
    }
    if (a.verdict.go()) a.verdict.device = n.name + "/" + a.verdict.device;
    else a.verdict.reason = fmt::format("{}: {}", n.name, a.verdict.reason);
    return a;
}

namespace {
std::int64_t id_value(WorkerId id) { return static_cast<std::int64_t>(id); }
}  // namespace

void SlurmExecutor::end_stage(WorkerId id) {
    if (auto w = workers_.find(id); w != workers_.end())
        send(nodes_[w->second.node], agent::Frame::end_stage, Dict{{"id", id_value(id)}});
}

void SlurmExecutor::reserve_memory(WorkerId id, std::uint64_t memory) {
    if (auto w = workers_.find(id); w != workers_.end())
        send(nodes_[w->second.node], agent::Frame::reserve,
             Dict{{"id", id_value(id)}, {"memory", static_cast<std::int64_t>(memory)}});
}

void SlurmExecutor::release(WorkerId id) {
    if (auto w = workers_.find(id); w != workers_.end())
        send(nodes_[w->second.node], agent::Frame::release, Dict{{"id", id_value(id)}});
}

void SlurmExecutor::keep(WorkerId id) {
    if (auto w = workers_.find(id); w != workers_.end())
        send(nodes_[w->second.node], agent::Frame::keep, Dict{{"id", id_value(id)}});
}

bool SlurmExecutor::next_round(WorkerId id, const messages::Config& config) {
    auto w = workers_.find(id);
    if (w == workers_.end()) return false;  // its node was lost
    agent::NextRound next;
    next.id = id;
    next.config = config.encode();
    next.inputs_file = export_inputs(config.inputs_segment);
    Node& n = nodes_[w->second.node];
    try {
        Dict reply = request(n, agent::Frame::next_round, next.encode());
        const Value* ok = reply.find("ok");
        if (ok == nullptr || !ok->is<bool>()) throw channel::ProtocolError("next_round: the reply has no bool 'ok'");
        return ok->as<bool>();
    } catch (const Lost&) {
        return false;
    } catch (const channel::ProtocolError& e) {
        lose(n, e.what());
        return false;
    }
}

void SlurmExecutor::signal(WorkerId id, int signal) {
    if (auto w = workers_.find(id); w != workers_.end())
        send(nodes_[w->second.node], agent::Frame::signal,
             Dict{{"id", id_value(id)}, {"signal", std::int64_t{signal}}});
}

void SlurmExecutor::signal_all(int signal) {
    for (auto& n : nodes_) send(n, agent::Frame::signal_all, Dict{{"signal", std::int64_t{signal}}});
}

void SlurmExecutor::terminate(WorkerId id, std::chrono::milliseconds grace) {
    if (auto w = workers_.find(id); w != workers_.end())
        send(nodes_[w->second.node], agent::Frame::terminate,
             Dict{{"id", id_value(id)}, {"grace_ms", static_cast<std::int64_t>(grace.count())}});
}

std::vector<DeviceUse> SlurmExecutor::devices() const {
    // RAM of all nodes first, then every node's GPUs by their node.
    DeviceUse ram{"RAM", 0, 0, 0, 0};
    std::vector<DeviceUse> gpus;
    for (const auto& n : nodes_) {
        if (n.lost || n.devices.empty()) continue;
        const DeviceUse& r = n.devices.front();
        ram.used += r.used;
        ram.total += r.total;
        ram.reserved += r.reserved;
        ram.tasks += r.tasks;
        for (std::size_t i = 1; i < n.devices.size(); ++i) {
            DeviceUse g = n.devices[i];
            g.name = n.name + "/" + g.name;
            gpus.push_back(std::move(g));
        }
    }
    gpus.insert(gpus.begin(), ram);
    return gpus;
}

Peaks SlurmExecutor::peaks(WorkerId id) const {
    auto w = workers_.find(id);
    return w == workers_.end() ? Peaks{} : w->second.peaks;
}

void SlurmExecutor::wait(std::optional<Clock::time_point> until, int wake_fd, std::vector<Event>& out) {
    if (!pending_.empty()) {
        for (auto& e : pending_) out.push_back(std::move(e));
        pending_.clear();
        return;
    }
    if (live_nodes() == 0) {
        std::string why;
        for (const auto& n : nodes_) why += fmt::format("{}{}: {}", why.empty() ? "" : "; ", n.name, n.lost_why);
        throw std::runtime_error(fmt::format("every node of the Slurm job is lost ({}); --resume runs what did not "
                                             "finish",
                                             why));
    }
    std::vector<pollfd> fds{{wake_fd, POLLIN, 0}};
    std::vector<Node*> polled;
    std::optional<Clock::time_point> next = until;
    auto consider = [&](Clock::time_point t) { next = next ? std::min(*next, t) : t; };
    for (auto& n : nodes_) {
        if (n.lost) continue;
        fds.push_back({n.link, POLLIN, 0});
        polled.push_back(&n);
        if (n.refused_at) consider(*n.refused_at + options_.hello.sample_period);
    }
    const auto now = Clock::now();
    int wait_ms = -1;
    if (next)
        wait_ms = static_cast<int>(
            std::clamp<std::int64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(*next - now).count() + 1, 0,
                                     INT_MAX));
    if (::poll(fds.data(), fds.size(), wait_ms) < 0 && errno != EINTR)
        throw std::system_error(errno, std::generic_category(), "poll");
    for (std::size_t i = 0; i < polled.size(); ++i) {
        if (fds[i + 1].revents == 0) continue;
        Node& n = *polled[i];
        if (!read_available(n) && !n.lost) lose(n, "its agent ended (its srun step ended, or its node failed)");
    }
    for (auto& e : pending_) {
        // Peaks travel with an exit; what was last seen is kept for peaks().
        if (auto w = workers_.find(e.id); w != workers_.end() && e.kind == Event::Kind::message)
            w->second.peaks = e.peaks;
        out.push_back(std::move(e));
    }
    pending_.clear();
}

}  // namespace fedflow::exec
