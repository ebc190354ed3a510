#include "exec/local_executor.hpp"

#include "common/device.hpp"
#include "common/failpoints.hpp"
#include "common/log.hpp"
#include "common/proc_stat.hpp"

#include <fedflow/detail/wire.hpp>

#include <fmt/core.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <csignal>
#include <system_error>
#include <thread>

#include <poll.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace fedflow::exec {

namespace {

// A worker stopped (SIGSTOP, SIGTSTP, ...) this many times is ended.
constexpr int max_stops = 3;

std::string signal_name(int signal) {
    const char* abbrev = sigabbrev_np(signal);
    return abbrev != nullptr ? std::string("SIG") + abbrev : std::to_string(signal);
}

}  // namespace

LocalExecutor::LocalExecutor(Options options, std::unique_ptr<sched::Probe> probe)
    : options_(std::move(options)), scheduler_(options_.scheduler, std::move(probe)) {
    if (!options_.foreground) {
        descendants_ = Descendants::open(options_.worker, options_.run_name);
        log::info("what tasks start ends with them: {}", descendants_->description());
    }
    // SIGCHLD tells of a worker that stopped (the pidfds tell of exits).
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    ::sigprocmask(SIG_BLOCK, &chld, nullptr);
    sigchld_fd_ = ::signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
    pause_after_poll_ = failpoints::armed("executor-pause-after-poll");
    if (failpoints::armed("fork-server-short-patience")) {
        options_.preload_patience = std::chrono::seconds(1);
        options_.answer_patience = std::chrono::seconds(1);
    }
}

// Workers still running are killed and reaped by ~WorkerProcess, before
// the containment that holds their cgroups goes.
LocalExecutor::~LocalExecutor() {
    workers_.clear();
    servers_.clear();
    retired_servers_.clear();
    descendants_.reset();
    if (sigchld_fd_ >= 0) ::close(sigchld_fd_);
}

std::string LocalExecutor::containment() const { return descendants_ ? to_string(descendants_->kind()) : "none"; }

void LocalExecutor::set_gpus(bool use_gpus, std::vector<int> gpus) { scheduler_.set_gpus(use_gpus, std::move(gpus)); }

void LocalExecutor::start_group(std::optional<std::uint64_t> memory, std::optional<std::uint64_t> gpu_memory) {
    scheduler_.start_group(memory, gpu_memory);
}

void LocalExecutor::group_inputs(std::uint64_t bytes) { scheduler_.set_inputs_memory(bytes); }

void LocalExecutor::learn(const Peaks& peaks) { scheduler_.learn(peaks.memory, peaks.gpu_memory); }

std::uint64_t LocalExecutor::grow(std::uint64_t estimate, std::int64_t peak, const std::string& device) const {
    return scheduler_.grow(estimate, peak, device::gpu_index(device));
}

LocalExecutor::Worker* LocalExecutor::find(WorkerId id) {
    auto it = workers_.find(id);
    return it == workers_.end() ? nullptr : &it->second;
}

const LocalExecutor::Worker* LocalExecutor::find(WorkerId id) const {
    auto it = workers_.find(id);
    return it == workers_.end() ? nullptr : &it->second;
}

std::vector<int> LocalExecutor::pids() const {
    std::vector<int> out;
    out.reserve(workers_.size());
    for (const auto& [id, w] : workers_) out.push_back(w.process->pid());
    return out;
}

void LocalExecutor::sample_if_older_than(std::chrono::milliseconds age) {
    // A shim names the worker only after the start (containment.hpp).
    for (auto& [id, w] : workers_)
        if (auto* entry = scheduler_.ledger().find(id)) entry->pid = w.process->pid();
    if (Clock::now() - scheduler_.sampled_at() < age) return;
    // Forked workers are measured beyond what they share with their
    // server, and the servers' CPU time is Fedflow's (sched/probe.hpp).
    std::vector<std::pair<int, int>> forked;
    std::vector<int> servers;
    for (auto& [id, w] : workers_)
        if (w.process->relayed()) forked.emplace_back(w.process->pid(), w.process->server_pid());
    for (auto& [key, s] : servers_)
        if (s.server) servers.push_back(s.server->pid());
    for (auto& server : retired_servers_) servers.push_back(server->pid());
    scheduler_.probe().set_forked(std::move(forked), std::move(servers));
    if (!scheduler_.sample_if_older_than(age, pids())) return;
    for (auto& [id, w] : workers_) {
        int pid = w.process->pid();
        w.peaks.memory = std::max(w.peaks.memory, scheduler_.rss_of(pid));
        w.peaks.gpu_memory = std::max(w.peaks.gpu_memory, scheduler_.gpu_memory_of(pid));
    }
}

void LocalExecutor::note_wait(const sched::Verdict& v) {
    // Limits on Fedflow's own processes change only with its own events:
    // the machine need not be sampled again for them.
    if (v.resource != "processes" && v.resource != "waiting") waiting_on_machine_ = true;
}

void LocalExecutor::evict_for(const sched::Verdict& v) {
    sched::Ledger& ledger = scheduler_.ledger();
    std::optional<sched::Ledger::Key> key = ledger.eviction_candidate(v.resource, v.gpu);
    if (!key) return;
    Worker* w = find(*key);
    if (w == nullptr || w->stage != Worker::Stage::kept) return;
    log::debug("ending kept worker {} to make room ({})", w->process->pid(), v.reason);
    ledger.evicting(*key);
    w->evicted = true;
    w->stage = Worker::Stage::released;
    if (!w->process->send(messages::Exit{})) w->process->kill(SIGKILL);
    // It destroys its task and exits; one that does not within the grace
    // period is killed, as a worker ended for any other reason.
    if (!w->kill_deadline) w->kill_deadline = Clock::now() + options_.kill_grace;
}

Admission LocalExecutor::spawn_deferred(const std::string& why) {
    auto now = Clock::now();
    if (!spawn_failing_since_) {
        spawn_failing_since_ = now;
        spawn_backoff_ = std::chrono::milliseconds(20);
    } else {
        spawn_backoff_ = std::min(2 * spawn_backoff_, std::chrono::milliseconds(1000));
    }
    spawn_retry_at_ = now + spawn_backoff_;
    spawn_why_ = why;
    // With workers running, their ends free what is missing; with none,
    // only something outside the run can, and it is given spawn_patience.
    if (workers_.empty() && now - *spawn_failing_since_ >= options_.spawn_patience) {
        spawn_retry_at_.reset();
        throw std::runtime_error(fmt::format("cannot start its worker: {}; no other task of the run was running, and "
                                             "it did not clear within {} s",
                                             why, options_.spawn_patience.count() / 1000));
    }
    Admission a;
    a.verdict = {sched::Verdict::Kind::wait, {}, -1, "spawn", why};
    return a;
}

ForkServer* LocalExecutor::fork_server(const PreloadSpec& preload) {
    std::string key = wire::encode(Value(preload.encode()));
    auto it = servers_.find(key);
    if (it != servers_.end() && it->second.server && !it->second.server->start_error().empty()) {
        // It ended before it had loaded: its preload fails, and would again.
        Server& s = it->second;
        log::warning("the fork server of plugin '{}' could not start: {}; its tasks start by exec", s.plugin,
                     s.server->start_error());
        s.server.reset();
        s.retry_at.reset();
        return nullptr;
    }
    if (it != servers_.end() && it->second.server && !it->second.server->alive()) server_ended(it->second.server.get());
    if (it != servers_.end() && (it->second.server || !it->second.retry_at || Clock::now() < *it->second.retry_at))
        return it->second.server.get();
    Server& s = servers_[key];
    s.plugin = preload.plugin_name;
    const bool again = s.retry_at.has_value();
    try {
        // Failpoint fork-server-emfile (common/failpoints.hpp), for the test
        // of a start that fails for a passing reason: the run's first start
        // fails as socketpair() does when the host has no descriptor left.
        static bool failed_once = false;
        if (!failed_once && failpoints::armed("fork-server-emfile")) {
            failed_once = true;
            throw std::system_error(EMFILE, std::generic_category(), "fork server: socketpair");
        }
        s.server = ForkServer::start(options_.worker, options_.envp, preload, options_.preload_patience,
                                     options_.answer_patience);
        s.retry_at.reset();
        // A compiled plugin loads in milliseconds: it is waited for that
        // long, and its first task does not wait for it in the journal. A
        // preload (import torch: seconds) is not: its loads wait.
        s.server->await_ready(server_grace);
        if (again)
            log::info("the fork server of plugin '{}' started again (pid {}): its tasks are forked once it has "
                      "loaded",
                      s.plugin, s.server->pid());
        else log::debug("fork server of plugin '{}' started (pid {})", s.plugin, s.server->pid());
    } catch (const std::system_error& e) {
        if (!transient_start_error(e.code().value())) {
            s.retry_at.reset();
            log::warning("the fork server of plugin '{}' could not start: {}; its tasks start by exec", s.plugin,
                         e.what());
            return nullptr;
        }
        s.backoff = s.backoff.count() == 0 ? std::chrono::milliseconds(1000)
                                           : std::min(2 * s.backoff, std::chrono::milliseconds(60000));
        s.retry_at = Clock::now() + s.backoff;
        // Told once: a start that keeps failing says so at debug level.
        log::write(
            again ? log::Level::debug : log::Level::warning,
            fmt::format("the fork server of plugin '{}' could not start: {}; its tasks start by exec until it can "
                        "(tried again in {} s)",
                        s.plugin, e.what(), s.backoff.count() / 1000));
    } catch (const std::exception& e) {
        s.retry_at.reset();
        log::warning("the fork server of plugin '{}' could not start: {}; its tasks start by exec", s.plugin, e.what());
    }
    return s.server.get();
}

void LocalExecutor::drop_fork_server(ForkServer* server, const std::string& why) {
    for (auto& [key, s] : servers_) {
        if (s.server.get() != server) continue;
        log::warning("the fork server of plugin '{}' cannot fork: {}; its tasks start by exec from now on", s.plugin,
                     why);
        // Its workers stay its children: it lives on to reap them, and
        // forks no more.
        retired_servers_.push_back(std::move(s.server));
    }
}

void LocalExecutor::server_ended(ForkServer* server) {
    for (auto& [key, s] : servers_) {
        if (s.server.get() != server) continue;
        // Its workers' WorkerProcess point to it: it is kept (it forks no more).
        retired_servers_.push_back(std::move(s.server));
        if (++s.ends > max_server_restarts) {
            s.retry_at.reset();
            log::warning("the fork server of plugin '{}' (pid {}) {}; it ended {} times in the run: its tasks start "
                         "by exec from now on",
                         s.plugin, server->pid(), server->end(), s.ends);
            return;
        }
        s.retry_at = Clock::now() + std::chrono::seconds(1);
        log::warning("the fork server of plugin '{}' (pid {}) {}; it starts again in a second (its tasks start by "
                     "exec until then)",
                     s.plugin, server->pid(), server->end());
        return;
    }
}

void LocalExecutor::abandon_fork_server(pid_t server_pid, pid_t worker_pid) {
    ForkServer* server = nullptr;
    std::string plugin;
    for (auto& [key, s] : servers_)
        if (s.server && s.server->alive() && s.server->pid() == server_pid) server = s.server.get(), plugin = s.plugin;
    for (auto& r : retired_servers_)
        if (r->alive() && r->pid() == server_pid) server = r.get();
    if (server == nullptr) return;
    server->abandon(fmt::format("did not tell of the end of worker {} within {} s of SIGKILL: it is stopped or stuck, "
                                "and is ended with its workers",
                                worker_pid, options_.kill_grace.count() / 1000));
    // One that still served its plugin says so, and starts again; a retired
    // one's tasks were started by exec already.
    if (plugin.empty()) log::warning("the fork server (pid {}) {}", server_pid, server->end());
    else server_ended(server);
    for (auto& [id, w] : workers_)
        if (w.process->relayed() && w.process->server_pid() == server_pid) w.process->try_reap();
}

std::unique_ptr<WorkerProcess> LocalExecutor::start_worker(ForkServer* server, const SpawnOptions& spawn) {
    if (server != nullptr) {
        try {
            return WorkerProcess::fork(*server, spawn);
        } catch (const ForkRefused& e) {
            drop_fork_server(server, e.what());
        } catch (const SpawnDeferred&) {
            throw;
        } catch (const std::system_error&) {
            throw;
        } catch (const std::runtime_error& e) {
            if (server->alive()) drop_fork_server(server, e.what());
            else server_ended(server);
        }
    }
    return WorkerProcess::spawn(spawn);
}

Admission LocalExecutor::start_load(const LoadRequest& request) {
    if (spawn_retry_at_ && Clock::now() < *spawn_retry_at_) {
        Admission a;
        a.verdict = {sched::Verdict::Kind::wait, {}, -1, "spawn", spawn_why_};
        return a;
    }
    sample_if_older_than(options_.sample_period);
    sched::Counts counts{workers_.size(), 0};
    for (const auto& [id, w] : workers_)
        if (w.stage == Worker::Stage::loading || w.stage == Worker::Stage::loaded) ++counts.waiting;
    Admission a;
    a.estimate = scheduler_.memory_estimate(request.grown_memory, request.memory);
    a.verdict = scheduler_.admit_load(counts, a.estimate.bytes);
    if (!a.verdict.go()) {
        note_wait(a.verdict);
        if (a.verdict.kind == sched::Verdict::Kind::wait && request.may_evict) evict_for(a.verdict);
        return a;
    }
    ForkServer* server = nullptr;
    if (request.preload && options_.fork_server && !options_.foreground) {
        server = fork_server(*request.preload);
        if (server != nullptr && !server->ready()) {
            // Loading (import torch: seconds): the host's loop goes on, and
            // its socket wakes wait() when it is ready. Started only for a
            // load that may start: it takes memory of its own.
            std::string modules;
            for (const auto& m : request.preload->modules) modules += (modules.empty() ? "" : ", ") + m;
            a.verdict = {sched::Verdict::Kind::wait,
                         {},
                         -1,
                         "fork-server",
                         fmt::format("the fork server of plugin '{}' (pid {}) is loading it{}",
                                     request.preload->plugin_name, server->pid(),
                                     modules.empty() ? std::string() : " and " + modules)};
            return a;
        }
        if (server != nullptr && !server->await_spare(server_grace)) {
            // Its spare is late (a large server's fork, a stopped server):
            // the loop goes on until it comes, or until the server is
            // given up for not answering and its tasks start by exec.
            a.verdict = {sched::Verdict::Kind::wait,
                         {},
                         -1,
                         "fork-server",
                         fmt::format("the fork server of plugin '{}' (pid {}) has not forked a process for it yet",
                                     request.preload->plugin_name, server->pid())};
            return a;
        }
    }
    fs::create_directories(request.workdir);
    Worker w;
    SpawnOptions spawn;
    spawn.worker = options_.worker;
    spawn.workdir = request.workdir;
    spawn.envp = options_.envp;
    spawn.descendants = descendants_.get();
    spawn.foreground = options_.foreground;
    spawn.wrapper = options_.wrapper;
    try {
        w.process = start_worker(server, spawn);
    } catch (const SpawnDeferred& e) {
        return spawn_deferred(e.what());
    }
    spawn_failing_since_.reset();
    spawn_retry_at_.reset();
    // A worker that dies before reading these is seen through its exit.
    w.process->send(request.config());
    w.process->send(messages::Load{});
    if (request.train_pinned) {
        // A train bound to "cpu" now is bound to it when its load ends: no
        // GPU appears, and none becomes one Fedflow may use.
        sched::Verdict v = scheduler_.admit_train(*request.train_pinned, 0);
        if (v.go() && v.gpu < 0) {
            messages::Train train{v.device, true};  // its last train: the worker exits after its result
            train.ahead = true;
            w.train_ahead = w.process->send(train);
            if (w.train_ahead) a.train_ahead = v.device;
        }
    }
    a.pid = w.process->pid();
    scheduler_.ledger().open(request.id, a.pid, a.estimate.bytes);
    workers_.emplace(request.id, std::move(w));
    return a;
}

Admission LocalExecutor::start_train(WorkerId id, const TrainRequest& request) {
    Admission a;
    Worker* w = find(id);
    if (w == nullptr) {
        a.verdict = {sched::Verdict::Kind::never, {}, -1, {}, "the worker is gone"};
        return a;
    }
    sample_if_older_than(options_.sample_period);
    a.estimate = scheduler_.gpu_memory_estimate(request.grown_gpu_memory, request.gpu_memory, request.pinned);
    // What the worker holds on GPUs now (a kept worker's tensors) is part of
    // what its train is admitted on, not more of it.
    std::map<int, std::uint64_t> held;
    sched::Ledger::Entry* entry = scheduler_.ledger().find(id);
    if (entry != nullptr) held.swap(entry->gpu_measured);
    a.verdict = scheduler_.admit_train(request.pinned, a.estimate.bytes);
    if (entry != nullptr) entry->gpu_measured.swap(held);
    if (!a.verdict.go()) {
        note_wait(a.verdict);
        if (a.verdict.kind == sched::Verdict::Kind::wait) evict_for(a.verdict);
        return a;
    }
    scheduler_.ledger().start_train(id, a.verdict.gpu, a.estimate.bytes);
    w->stage = Worker::Stage::training;
    w->gpu = a.verdict.gpu;
    auto told = options_.told_devices.find(a.verdict.gpu);
    if (w->train_ahead) w->train_ahead = false;  // sent with the load, and bound to "cpu" as this one
    else
        w->process->send(
            messages::Train{told == options_.told_devices.end() ? a.verdict.device : told->second, request.last});
    a.pid = w->process->pid();
    return a;
}

void LocalExecutor::end_stage(WorkerId id) {
    scheduler_.ledger().end_train(id);
    if (Worker* w = find(id); w != nullptr && w->stage == Worker::Stage::training) {
        w->stage = Worker::Stage::loaded;
        w->gpu = -1;
    }
}

void LocalExecutor::reserve_memory(WorkerId id, std::uint64_t memory) {
    if (auto* entry = scheduler_.ledger().find(id)) entry->memory_estimate = std::max(entry->memory_estimate, memory);
}

void LocalExecutor::release(WorkerId id) {
    Worker* w = find(id);
    if (w == nullptr || w->process->exited()) return;
    w->stage = Worker::Stage::released;
    // One that sent its result to a Train with exit_after is exiting by
    // itself; an Exit to it could find its channel closed, and kill it.
    if (w->process->conversation().exit_implied()) return;
    if (!w->process->send(messages::Exit{})) w->process->kill(SIGKILL);
}

void LocalExecutor::keep(WorkerId id) {
    Worker* w = find(id);
    if (w == nullptr || w->process->exited() || w->stage != Worker::Stage::loaded) return release(id);
    w->stage = Worker::Stage::kept;
    scheduler_.ledger().keep(id);
    // What it holds from now on is charged as measured: a sample from
    // before its train ended has not seen the tensors it keeps.
    sample_if_older_than(std::chrono::milliseconds(0));
}

bool LocalExecutor::next_round(WorkerId id, const messages::Config& config) {
    Worker* w = find(id);
    if (w == nullptr || w->stage != Worker::Stage::kept || w->process->exited()) return false;
    fs::create_directories(config.workdir);
    if (!w->process->send(config)) return false;
    w->stage = Worker::Stage::loaded;
    scheduler_.ledger().unkeep(id);
    return true;
}

void LocalExecutor::signal(WorkerId id, int signal) {
    Worker* w = find(id);
    if (w == nullptr) return;
    w->process->kill(signal);
    if (!w->kill_deadline) w->kill_deadline = Clock::now() + options_.kill_grace;
}

void LocalExecutor::signal_all(int signal) {
    for (auto& [id, w] : workers_) this->signal(id, signal);
}

void LocalExecutor::terminate(WorkerId id, std::chrono::milliseconds grace) {
    Worker* w = find(id);
    if (w == nullptr) return;
    w->process->kill(SIGTERM);
    auto deadline = Clock::now() + grace;
    if (!w->kill_deadline || deadline < *w->kill_deadline) w->kill_deadline = deadline;
}

void LocalExecutor::take_stops(std::vector<Event>& out) {
    signalfd_siginfo si;
    while (::read(sigchld_fd_, &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
    }
    for (auto& [id, w] : workers_) {
        int sig = w.process->take_stop();
        if (sig == 0) continue;
        // A stopped worker would hold its slot for ever, and the run with
        // it: it is continued, and ended once it has stopped too often to
        // be a pause someone meant.
        Event e;
        e.kind = Event::Kind::stopped;
        e.id = id;
        e.signal = sig;
        e.stops = ++w.stops;
        e.ended = w.stops >= max_stops;
        if (e.ended) {
            log::warning("worker {} was stopped by {} {} times: ending it", w.process->pid(), signal_name(sig),
                         w.stops);
            w.process->kill(SIGKILL);
        } else {
            log::debug("worker {} was stopped by {}: continuing it", w.process->pid(), signal_name(sig));
            w.process->resume();
        }
        out.push_back(std::move(e));
    }
}

std::vector<DeviceUse> LocalExecutor::devices() const {
    const sched::Snapshot& s = scheduler_.snapshot();
    const sched::Ledger& ledger = scheduler_.ledger();
    std::vector<DeviceUse> out;
    out.push_back({"RAM", s.ram_total - std::min(s.ram_total, s.ram_available), s.ram_total, ledger.memory_charge(),
                   static_cast<int>(ledger.size())});
    for (const auto& g : s.gpus) {
        int tasks = 0;
        for (const auto& [id, w] : workers_) tasks += w.stage == Worker::Stage::training && w.gpu == g.index;
        out.push_back({g.device(), g.used, g.total, ledger.gpu_charge(g.index), tasks});
    }
    return out;
}

Peaks LocalExecutor::peaks(WorkerId id) const {
    const Worker* w = find(id);
    return w == nullptr ? Peaks{} : w->peaks;
}

int LocalExecutor::pid(WorkerId id) const {
    const Worker* w = find(id);
    return w == nullptr ? -1 : w->process->pid();
}

void LocalExecutor::read(WorkerId id, Worker& w, std::vector<Event>& out) {
    auto broken = [&](const std::string& error) {
        Event e;
        e.kind = Event::Kind::broken;
        e.id = id;
        e.error = error;
        out.push_back(std::move(e));
        w.broken = true;
        w.process->kill(SIGKILL);
    };
    std::vector<channel::Message> frames;
    bool open = true;
    std::optional<std::string> bad_frame;
    try {
        open = w.process->read_available(frames);
    } catch (const channel::ProtocolError& e) {
        // What came before the bad frame stands, as it would have had it
        // come in an earlier read (a worker that exits after its result
        // sends its last words in the same breath); nothing after.
        bad_frame = e.what();
    }
    for (const auto& frame : frames) {
        messages::FromWorker m;
        try {
            m = w.process->conversation().receive(frame);
        } catch (const channel::ProtocolError& e) {
            broken(e.what());  // what it said before stands; nothing after
            return;
        }
        if (std::holds_alternative<messages::Loaded>(m) && w.stage == Worker::Stage::loading) {
            w.stage = Worker::Stage::loaded;
            if (auto* entry = scheduler_.ledger().find(id)) entry->loading = false;
        }
        Event e;
        e.kind = Event::Kind::message;
        e.id = id;
        e.message = std::move(m);
        out.push_back(std::move(e));
    }
    if (bad_frame) return broken(*bad_frame);
    if (!open && !w.closed_at) w.closed_at = Clock::now();
}

void LocalExecutor::wait(std::optional<Clock::time_point> until, int wake_fd, std::vector<Event>& out) {
    bool gpu_training = std::any_of(workers_.begin(), workers_.end(), [](const auto& kv) {
        return kv.second.stage == Worker::Stage::training && kv.second.gpu >= 0;
    });
    // Peaks of GPU memory are sampled while workers train on GPUs.
    if (gpu_training) sample_if_older_than(2 * options_.sample_period);

    fds_.clear();
    polled_.clear();
    fds_.push_back({wake_fd, POLLIN, 0});
    fds_.push_back({sigchld_fd_, POLLIN, 0});
    auto now = Clock::now();
    std::optional<Clock::time_point> next = until;
    auto consider = [&](Clock::time_point t) { next = next ? std::min(*next, t) : t; };
    // The fork servers tell of their workers' exits and stops.
    servers_polled_.clear();
    auto poll_server = [&](ForkServer* server) {
        if (server == nullptr || !server->alive()) return;
        fds_.push_back({server->fd(), POLLIN, 0});
        servers_polled_.push_back(server);
    };
    for (auto& [key, s] : servers_) {
        poll_server(s.server.get());
        if (s.server != nullptr)
            if (auto deadline = s.server->deadline()) consider(*deadline);
    }
    for (auto& server : retired_servers_) poll_server(server.get());
    const std::size_t first_worker = fds_.size();
    for (auto& [id, w] : workers_) {
        WorkerProcess& p = *w.process;
        // A broken worker is not heard any more: it is being killed.
        fds_.push_back({p.channel_open() && !w.broken ? p.channel_fd() : -1, POLLIN, 0});
        // A forked worker's exit comes from its server.
        fds_.push_back({p.relayed() ? -1 : p.pid_fd(), POLLIN, 0});
        polled_.push_back(id);
        if (w.kill_deadline) consider(*w.kill_deadline);
        if (w.closed_at) consider(*w.closed_at + options_.kill_grace);
        if (w.relay_deadline) consider(*w.relay_deadline);
        // Without a pidfd (old kernels) a worker whose channel closed is
        // looked at until it has exited.
        if (p.pid_fd() < 0 && !p.relayed() && w.closed_at) consider(now + std::chrono::milliseconds(10));
    }
    if (waiting_on_machine_ || gpu_training)
        consider(scheduler_.sampled_at() + (waiting_on_machine_ ? 1 : 2) * options_.sample_period);
    if (spawn_retry_at_) consider(*spawn_retry_at_);
    waiting_on_machine_ = false;

    int wait_ms = -1;
    // (A timeout may be a year away: more milliseconds than an int holds.)
    if (next)
        wait_ms = static_cast<int>(
            std::clamp<std::int64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(*next - now).count() + 1, 0,
                                     INT_MAX));
    if (::poll(fds_.data(), fds_.size(), wait_ms) < 0 && errno != EINTR)
        throw std::system_error(errno, std::generic_category(), "poll");
    // What arrives meanwhile (a worker's last frames, its server's word of
    // its exit) is seen only by what follows, not by poll().
    if (pause_after_poll_) std::this_thread::sleep_for(std::chrono::milliseconds(20));

    bool server_spoke = false;
    for (std::size_t i = 0; i < servers_polled_.size(); ++i)
        if (fds_[2 + i].revents & (POLLIN | POLLHUP | POLLERR)) {
            servers_polled_[i]->pump();
            server_spoke = true;
        }
    for (auto& [key, s] : servers_)
        if (s.server != nullptr) s.server->check_answers(Clock::now());
    if ((fds_[1].revents & POLLIN) || server_spoke) take_stops(out);
    for (std::size_t i = 0; i < polled_.size(); ++i) {
        Worker& w = workers_.at(polled_[i]);
        WorkerProcess& p = *w.process;
        const pollfd& sock = fds_[first_worker + 2 * i];
        if (sock.fd >= 0 && (sock.revents & (POLLIN | POLLHUP | POLLERR))) read(polled_[i], w, out);
        if (p.pid_fd() < 0 || p.relayed() || (fds_[first_worker + 1 + 2 * i].revents & POLLIN) || w.closed_at)
            p.try_reap();
        // A worker found gone may have sent its last frames after poll()
        // looked (a fork server's word of its exit is read after poll):
        // they are read before its exit is told. A worker that exits right
        // after its result (Train exit_after) does so every time.
        if (p.exited() && p.channel_open() && !w.broken) read(polled_[i], w, out);
    }

    // Deadlines: the grace period after a signal, and a worker that closed
    // its channel but lingers.
    now = Clock::now();
    for (auto& [id, w] : workers_) {
        if (w.process->exited()) continue;
        if ((w.kill_deadline && now >= *w.kill_deadline) ||
            (w.closed_at && now >= *w.closed_at + options_.kill_grace)) {
            w.process->kill(SIGKILL);
            // A forked worker's end is told by its server: a server that has
            // not told it a grace period after SIGKILL is stopped or stuck,
            // and would hold the worker's slot (and the run) forever.
            if (w.process->relayed() && !w.relay_deadline) w.relay_deadline = now + options_.kill_grace;
        }
        if (w.relay_deadline && now >= *w.relay_deadline) {
            // Only a server that fails its part: its worker has ended (a
            // zombie it does not reap, or gone) or it is stopped itself. A
            // worker still on its way out (in the kernel, a GPU driver's
            // teardown) is waited for, and its server's other workers live.
            std::optional<proc::Brief> worker = proc::read_brief(w.process->pid());
            std::optional<proc::Brief> server = proc::read_brief(w.process->server_pid());
            bool stopped = server && (server->state == 'T' || server->state == 't');
            if (!worker || worker->ended() || stopped) abandon_fork_server(w.process->server_pid(), w.process->pid());
            else w.relay_deadline = now + options_.kill_grace;
        }
    }

    bool held_gpu = false;
    for (auto it = workers_.begin(); it != workers_.end();) {
        WorkerProcess& p = *it->second.process;
        if (!p.exited()) {
            ++it;
            continue;
        }
        Event e;
        e.kind = Event::Kind::exited;
        e.id = it->first;
        e.wait_status = *p.wait_status();
        e.signalled_by_host = WIFSIGNALED(e.wait_status) && p.signal_sent() != 0;
        e.closed_channel = p.channel_closed_by_worker();
        e.peaks = it->second.peaks;
        e.leftovers = p.leftovers();
        e.killed_for_memory = scheduler_.killed_for_memory(e.wait_status, p.signal_sent() == SIGKILL);
        e.evicted = it->second.evicted;
        e.error = p.lost_with_server();
        e.server_lost = !e.error.empty();
        if (const auto* entry = scheduler_.ledger().find(it->first))
            for (const auto& [gpu, bytes] : entry->gpu_measured) held_gpu = held_gpu || bytes > 0;
        scheduler_.ledger().close(it->first);
        out.push_back(std::move(e));
        it = workers_.erase(it);
    }
    // A process that held GPU memory is gone: the next admission must see
    // that memory free on the device too (simulated GPUs free a process's
    // memory when the probe next looks), not only in the ledger.
    if (held_gpu) sample_if_older_than(std::chrono::milliseconds(0));
}

}  // namespace fedflow::exec
