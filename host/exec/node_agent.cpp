#include "exec/node_agent.hpp"

#include "common/byte_file.hpp"
#include "common/file_io.hpp"
#include "common/log.hpp"
#include "common/shm.hpp"
#include "common/sim_gpu.hpp"
#include "common/units.hpp"
#include "exec/agent_link.hpp"
#include "exec/local_executor.hpp"

#include <fmt/core.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <system_error>

#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

extern char** environ;

namespace fs = std::filesystem;

namespace fedflow::exec {

GpuMapping map_step_gpus(const std::string& slurm_gpus, const std::vector<sched::Gpu>& gpus) {
    GpuMapping m;
    if (slurm_gpus.empty()) return m;
    for (std::string_view item : units::split_commas(slurm_gpus)) {
        if (item.empty() || !units::all_digits(item) || item.size() > 6) continue;
        int index = std::stoi(std::string(item));
        for (const auto& g : gpus)
            if (g.index == index && !g.simulated && !g.uuid.empty()) m.selected.push_back(index);
    }
    for (std::size_t k = 0; k < m.selected.size(); ++k) {
        for (const auto& g : gpus)
            if (g.index == m.selected[k]) m.cuda_visible += (k == 0 ? "" : ",") + g.uuid;
        m.told[m.selected[k]] = "cuda:" + std::to_string(k);
    }
    return m;
}

namespace {

// Copies a segment into a file (a result's way to the host across nodes).
void copy_segment(const std::string& name, const fs::path& file) {
    // Read through its descriptor, never mapped: the kernel moves the pages
    // (byte_file::copy_in_kernel), and a segment cut short is an error, not
    // a SIGBUS in the agent. The host checks what arrives, sizes first.
    const file_io::Fd fd(shm::Segment::open_fd_read_only(name));
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) throw std::system_error(errno, std::generic_category(), "stat " + name);
    const auto size = static_cast<std::uint64_t>(st.st_size);
    if (!byte_file::copy_in_kernel(fd.get(), size, file, name)) byte_file::copy(fd.get(), size, size, file, name);
}

class Agent {
public:
    Agent(fs::path worker, int in, int out) : worker_(std::move(worker)), in_(in), out_(out) {}

    int run() {
        std::optional<channel::Message> first = channel::receive(in_);
        if (!first) return 0;  // the host went before it said anything
        if (static_cast<agent::Frame>(first->type) != agent::Frame::hello)
            throw channel::ProtocolError("node agent: the first frame is not 'hello'");
        hello_ = agent::Hello::decode(first->body);
        node_ = hello_.node;
        log::set_sink([node = node_](std::string_view line) {
            // "fedflow: n1: ...": whose line it is, on the host's stderr.
            std::string out = line.size() > 9 && line.substr(0, 9) == "fedflow: "
                                  ? fmt::format("fedflow: {}: {}", node, line.substr(9))
                                  : std::string(line);
            std::fwrite(out.data(), 1, out.size(), stderr);
        });
        start_executor();
        ::fcntl(in_, F_SETFL, ::fcntl(in_, F_GETFL) | O_NONBLOCK);

        // One fd to wake the executor's wait: the link or a signal.
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        ::sigprocmask(SIG_BLOCK, &mask, nullptr);
        signal_fd_ = ::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
        int ep = ::epoll_create1(EPOLL_CLOEXEC);
        for (int fd : {in_, signal_fd_}) {
            epoll_event ev{};
            ev.events = EPOLLIN;
            ev.data.fd = fd;
            ::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
        }

        std::vector<Event> events;
        while (!link_closed_) {
            events.clear();
            std::optional<Clock::time_point> until;
            if (ending_) until = Clock::now() + std::chrono::milliseconds(200);
            executor_->wait(until, ep, events);
            for (auto& e : events) forward(e);
            if (!events.empty()) send_state();
            read_signals();
            read_link();
            if (ending_ && executor_->live() == 0) break;
        }
        ::close(ep);
        executor_.reset();  // ends and reaps what still runs
        shm::remove_prefix(lock_.prefix() + "-");
        return 0;
    }

private:
    void start_executor() {
        LocalExecutor::Options o;
        o.worker = worker_;
        o.scheduler = hello_.scheduler;
        o.kill_grace = hello_.kill_grace;
        o.sample_period = hello_.sample_period;
        o.run_name = lock_.prefix();
        o.fork_server = hello_.fork_server;
        std::unique_ptr<sched::Probe> probe;
        if (!hello_.simulate_gpus.empty() && hello_.scheduler.limits.use_gpus)
            probe = std::make_unique<sched::Probe>(
                simgpu::Table::create(lock_.prefix() + "-gpus", simgpu::parse(hello_.simulate_gpus)));
        else probe = std::make_unique<sched::Probe>(hello_.scheduler.limits.use_gpus);

        // The workers' environment: this step's, with CUDA numbering GPUs as
        // NVML does, and this node's simulated GPUs.
        GpuMapping gpus;
        const char* step_gpus = std::getenv("SLURM_STEP_GPUS");
        if (step_gpus == nullptr) step_gpus = std::getenv("SLURM_JOB_GPUS");
        if (step_gpus != nullptr && hello_.scheduler.limits.gpus.empty())
            gpus = map_step_gpus(step_gpus, probe->gpus());
        for (char** e = environ; *e != nullptr; ++e) {
            std::string_view v(*e);
            if (v.rfind("CUDA_DEVICE_ORDER=", 0) == 0 || v.rfind(std::string(simgpu::env_name) + "=", 0) == 0 ||
                (!gpus.cuda_visible.empty() && v.rfind("CUDA_VISIBLE_DEVICES=", 0) == 0))
                continue;
            env_.emplace_back(v);
        }
        env_.emplace_back("CUDA_DEVICE_ORDER=PCI_BUS_ID");
        if (!gpus.cuda_visible.empty()) env_.push_back("CUDA_VISIBLE_DEVICES=" + gpus.cuda_visible);
        if (!hello_.simulate_gpus.empty()) env_.push_back(fmt::format("{}={}-gpus", simgpu::env_name, lock_.prefix()));
        for (auto& s : env_) envp_.push_back(s.data());
        envp_.push_back(nullptr);
        o.envp = envp_.data();
        o.told_devices = gpus.told;
        executor_ = std::make_unique<LocalExecutor>(std::move(o), std::move(probe));
        if (!gpus.selected.empty()) executor_->set_gpus(true, gpus.selected);

        agent::Ready ready;
        char host[256] = {};
        ::gethostname(host, sizeof host - 1);
        ready.hostname = host;
        ready.containment = executor_->containment();
        ready.gpu_status = executor_->gpu_status();
        ready.machine = executor_->machine();
        if (!gpus.selected.empty()) {
            std::vector<sched::Gpu> chosen;
            for (const auto& g : ready.machine.gpus)
                if (gpus.told.count(g.index) != 0) chosen.push_back(g);
            ready.machine.gpus = std::move(chosen);
        }
        send(agent::Frame::ready, ready.encode());
    }

    void send(agent::Frame f, const Dict& body) {
        // The host gone mid-write is its link's end: seen as EOF next.
        if (!agent::send(out_, f, body)) link_closed_ = true;
    }

    void send_state() { send(agent::Frame::state, agent::encode(executor_->devices(), executor_->live())); }

    void reply(const Admission& a) {
        send(agent::Frame::reply, agent::encode(a));
        send_state();
    }

    // A result's segments become files in the task's folder, named as the
    // host names the segments, so that the host reads them as it would
    // read them from its own /dev/shm.
    void forward(Event& e) {
        if (e.kind != Event::Kind::exited) e.peaks = executor_->peaks(e.id);
        auto w = workers_.find(e.id);
        if (e.kind == Event::Kind::message && w != workers_.end()) {
            if (const auto* result = std::get_if<messages::Result>(&e.message)) {
                fs::path dir = fs::path(w->second.workdir) / ".fedflow-result";
                try {
                    fs::create_directories(dir);
                    copy_segment(shm::result_name(w->second.local_prefix),
                                 dir / shm::result_name(w->second.host_prefix));
                    for (std::size_t i = 0; i < result->buffers.size(); ++i)
                        if (result->buffers[i].size)
                            copy_segment(shm::bytes_name(w->second.local_prefix, i),
                                         dir / shm::bytes_name(w->second.host_prefix, i));
                } catch (const std::exception& x) {
                    // The host finds a file missing or short, and fails the
                    // task with what was wrong; this says why.
                    log::error("{}: cannot copy the result of worker {} into {}: {}", node_, e.id, dir.string(),
                               x.what());
                }
                shm::remove_prefix(w->second.local_prefix + "-");
                e.result_dir = dir;
            }
        }
        if (e.kind == Event::Kind::exited && w != workers_.end()) {
            shm::remove_prefix(w->second.local_prefix + "-");
            workers_.erase(w);
        }
        send(agent::Frame::event, agent::encode(e));
    }

    void read_signals() {
        signalfd_siginfo si{};
        while (::read(signal_fd_, &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
            // scancel, or srun passing on the host's Ctrl-C: the workers end
            // (SIGKILL after the grace period), then the agent.
            if (!ending_)
                log::info("{}: received {}: ending its {} worker(s)", node_, strsignal(static_cast<int>(si.ssi_signo)),
                          executor_->live());
            ending_ = true;
            executor_->signal_all(SIGTERM);
        }
    }

    void read_link() {
        char buf[65536];
        for (;;) {
            ssize_t n = ::read(in_, buf, sizeof buf);
            if (n > 0) {
                reader_.feed(buf, static_cast<std::size_t>(n));
                continue;
            }
            if (n == 0) link_closed_ = true;  // the host is gone: so are we
            else if (errno == EINTR) continue;
            else if (errno != EAGAIN && errno != EWOULDBLOCK) link_closed_ = true;
            break;
        }
        while (auto m = reader_.next()) handle(*m);
    }

    const std::string& local_inputs(const std::string& file) {
        auto it = inputs_.find(file);
        if (it != inputs_.end()) return it->second;
        std::ifstream in(file, std::ios::binary);
        if (!in)
            throw std::runtime_error(
                fmt::format("cannot read the group's inputs {} on node {} (is the workdir shared?)", file, node_));
        std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        std::string name = fmt::format("{}-in{}", lock_.prefix(), ++inputs_seq_);
        shm::Segment seg = shm::Segment::create(name, data.size());
        if (!data.empty()) std::memcpy(seg.data(), data.data(), data.size());
        return inputs_.emplace(file, name).first->second;
    }

    void handle(const channel::Message& m) {
        const Dict& b = m.body;
        auto id = [&] { return static_cast<WorkerId>(b.at("id").as<std::int64_t>()); };
        auto opt = [&](const char* k) -> std::optional<std::uint64_t> {
            const Value* v = b.find(k);
            if (v == nullptr) return std::nullopt;
            return static_cast<std::uint64_t>(v->as<std::int64_t>());
        };
        switch (static_cast<agent::Frame>(m.type)) {
        case agent::Frame::start_group:
            // The previous group's workers are gone: so may its inputs be.
            for (const auto& [file, name] : inputs_) shm::Segment::remove(name);
            inputs_.clear();
            executor_->start_group(opt("memory"), opt("gpu_memory"));
            break;
        case agent::Frame::group_inputs:
            executor_->group_inputs(static_cast<std::uint64_t>(b.at("bytes").as<std::int64_t>()));
            break;
        case agent::Frame::learn:
            executor_->learn({b.at("memory").as<std::int64_t>(), b.at("gpu_memory").as<std::int64_t>()});
            break;
        case agent::Frame::load: {
            agent::Load l = agent::Load::decode(b);
            Admission a;
            try {
                messages::Config config = messages::Config::decode(l.config);
                std::string local_prefix = fmt::format("{}-t{}", lock_.prefix(), l.id);
                Worker w{config.shm_prefix, local_prefix, l.workdir};
                config.shm_prefix = local_prefix;
                if (!l.inputs_file.empty()) config.inputs_segment = local_inputs(l.inputs_file);
                LoadRequest r;
                r.id = l.id;
                r.workdir = l.workdir;
                r.grown_memory = l.grown_memory;
                r.memory = l.memory;
                r.preload = l.preload;
                r.may_evict = l.may_evict;
                r.config = [&] { return config; };
                a = executor_->start_load(r);
                if (a.verdict.go()) workers_.emplace(l.id, std::move(w));
            } catch (const std::exception& e) {
                // The task fails (the run goes on), as a local start that throws.
                a.verdict = {
                    sched::Verdict::Kind::never, {}, -1, "start", fmt::format("on node {}: {}", node_, e.what())};
            }
            reply(a);
            break;
        }
        case agent::Frame::keep: executor_->keep(id()); break;
        case agent::Frame::next_round: {
            agent::NextRound next = agent::NextRound::decode(b);
            bool ok = false;
            auto w = workers_.find(next.id);
            try {
                messages::Config config = messages::Config::decode(next.config);
                if (w != workers_.end()) {
                    // This round's result goes to this round's folder, under
                    // this round's segment names.
                    w->second.host_prefix = config.shm_prefix;
                    w->second.local_prefix = fmt::format("{}-t{}r{}", lock_.prefix(), next.id, config.round);
                    w->second.workdir = config.workdir;
                    config.shm_prefix = w->second.local_prefix;
                    config.inputs_segment = next.inputs_file.empty() ? "" : local_inputs(next.inputs_file);
                    ok = executor_->next_round(next.id, config);
                }
            } catch (const std::exception& e) {
                // It loads anew, where the host sends it; this says why.
                log::warning("{}: cannot start the next round of kept worker {}: {}", node_, next.id, e.what());
                if (w != workers_.end()) executor_->release(next.id);
            }
            send(agent::Frame::reply, Dict{{"ok", ok}});
            send_state();
            break;
        }
        case agent::Frame::train: {
            WorkerId w = 0;
            TrainRequest t = agent::decode_train(b, w);
            reply(executor_->start_train(w, t));
            break;
        }
        case agent::Frame::end_stage: executor_->end_stage(id()); break;
        case agent::Frame::reserve: executor_->reserve_memory(id(), *opt("memory")); break;
        case agent::Frame::release: executor_->release(id()); break;
        case agent::Frame::signal: executor_->signal(id(), static_cast<int>(b.at("signal").as<std::int64_t>())); break;
        case agent::Frame::signal_all:
            executor_->signal_all(static_cast<int>(b.at("signal").as<std::int64_t>()));
            break;
        case agent::Frame::terminate:
            executor_->terminate(id(), std::chrono::milliseconds(b.at("grace_ms").as<std::int64_t>()));
            break;
        case agent::Frame::check_shared: {
            const std::string& path = b.at("path").as<std::string>();
            std::error_code ec;
            std::string error;
            if (!fs::exists(path, ec)) error = fmt::format("node {} ({}) does not see {}", node_, hostname(), path);
            send(agent::Frame::reply, Dict{{"error", error}});
            break;
        }
        default:
            throw channel::ProtocolError(
                fmt::format("node agent: unexpected frame {} from the host", static_cast<std::uint32_t>(m.type)));
        }
    }

    static std::string hostname() {
        char host[256] = {};
        ::gethostname(host, sizeof host - 1);
        return host;
    }

    struct Worker {
        std::string host_prefix;   // the segment names the host knows
        std::string local_prefix;  // those of this node's /dev/shm
        std::string workdir;
    };

    fs::path worker_;
    int in_, out_;
    agent::Hello hello_;
    std::string node_;
    shm::RunLock lock_;
    std::vector<std::string> env_;
    std::vector<char*> envp_;
    std::unique_ptr<LocalExecutor> executor_;
    std::map<WorkerId, Worker> workers_;
    std::map<std::string, std::string> inputs_;  // inputs file -> this node's segment
    std::uint64_t inputs_seq_ = 0;
    channel::FrameReader reader_;
    int signal_fd_ = -1;
    bool link_closed_ = false;
    bool ending_ = false;
};

}  // namespace

int run_node_agent(const fs::path& worker) {
    // The link is stdin and stdout: nothing else may write to stdout, so
    // the link gets a descriptor of its own and fd 1 becomes stderr.
    int out = ::fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
    int in = ::fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3);
    if (out < 0 || in < 0) {
        std::perror("fedflow-host agent: dup");
        return 3;
    }
    ::dup2(STDERR_FILENO, STDOUT_FILENO);
    int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull >= 0) {
        ::dup2(devnull, STDIN_FILENO);
        ::close(devnull);
    }
    // A host that is gone is an EOF on the link, not a SIGPIPE.
    ::signal(SIGPIPE, SIG_IGN);
    try {
        return Agent(worker, in, out).run();
    } catch (const std::exception& e) {
        log::error("node agent: {}", e.what());
        return 3;
    }
}

}  // namespace fedflow::exec
