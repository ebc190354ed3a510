#include "exec/fork_server.hpp"

#include "common/fork_packet.hpp"
#include "common/signals.hpp"
#include "exec/worker_process.hpp"

#include <fmt/core.h>

#include <cerrno>
#include <csignal>
#include <system_error>

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace fedflow {

namespace {

std::string text_of(const Dict& d, const char* key) {
    const Value* v = d.find(key);
    return v != nullptr && v->is<std::string>() ? v->as<std::string>() : std::string();
}

std::int64_t integer_of(const Dict& d, const char* key, std::int64_t otherwise = -1) {
    const Value* v = d.find(key);
    return v != nullptr && v->is<std::int64_t>() ? v->as<std::int64_t>() : otherwise;
}

}  // namespace

Dict PreloadSpec::encode() const {
    Dict d;
    d["plugin_path"] = plugin_path;
    d["plugin_name"] = plugin_name;
    List m;
    for (const auto& s : modules) m.emplace_back(s);
    d["modules"] = std::move(m);
    d["params"] = params;
    d["plan_dir"] = plan_dir;
    return d;
}

std::unique_ptr<ForkServer> ForkServer::start(const std::filesystem::path& worker, char* const* envp,
                                              const PreloadSpec& spec, std::chrono::milliseconds patience,
                                              std::chrono::milliseconds answer_patience) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
        throw std::system_error(errno, std::generic_category(), "fork server: socketpair");
    std::unique_ptr<ForkServer> s(new ForkServer());
    s->sock_ = sv[0];
    // The loader binds every symbol of the server and of what it loads at
    // load time (LD_BIND_NOW), once, rather than lazily in each child: lazy
    // binding made every forked no-op worker resolve a few hundred symbols
    // and copy the pages they are written to, about a third of its CPU
    // time. The server takes the variable out of its environment before it
    // forks (--bind-now-added), so that the tasks' programs do not get it.
    std::vector<std::string> env_storage;
    bool had_bind_now = false;
    for (char* const* e = envp != nullptr ? envp : environ; e != nullptr && *e != nullptr; ++e) {
        env_storage.emplace_back(*e);
        had_bind_now = had_bind_now || env_storage.back().rfind("LD_BIND_NOW=", 0) == 0;
    }
    if (!had_bind_now) env_storage.emplace_back("LD_BIND_NOW=1");
    std::vector<char*> server_env;
    for (auto& e : env_storage) server_env.push_back(e.data());
    server_env.push_back(nullptr);
    std::vector<std::string> args = {"--fork-server", "0", "--host-pid", std::to_string(::getpid())};
    if (!had_bind_now) args.emplace_back("--bind-now-added");
    try {
        // The socket is its stdin; its stderr is the host's (what a preload
        // prints before any task runs).
        s->pid_ = spawn_helper(worker, args, sv[1], -1, server_env.data());
        s->started_pid_ = s->pid_;
    } catch (...) {
        ::close(sv[1]);
        throw;
    }
    ::close(sv[1]);
    Dict first;
    first["preload"] = spec.encode();
    if (!fork_packet::send(s->sock_, first)) throw std::runtime_error("it ended at once");
    ::fcntl(s->sock_, F_SETFL, ::fcntl(s->sock_, F_GETFL) | O_NONBLOCK);
    s->patience_ = patience;
    s->answer_patience_ = answer_patience;
    s->start_deadline_ = std::chrono::steady_clock::now() + patience;
    return s;
}

std::optional<std::chrono::steady_clock::time_point> ForkServer::deadline() const noexcept {
    if (!alive()) return std::nullopt;
    if (!ready_) return start_deadline_;
    if (spare_coming()) return spare_asked_at_ + answer_patience_;
    return std::nullopt;
}

void ForkServer::check_answers(std::chrono::steady_clock::time_point now) {
    auto due = deadline();
    if (!due || now < *due) return;
    if (ready_) return abandon("did not answer");
    start_error_ = fmt::format("it did not load the plugin within {} s", patience_.count() / 1000);
    abandon(start_error_);
}

bool ForkServer::await_ready(std::chrono::milliseconds grace) {
    const auto deadline = std::chrono::steady_clock::now() + grace;
    while (!ready_ && alive()) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) break;
        pollfd p{sock_, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(left.count())) > 0) pump();
    }
    return ready_;
}

ForkServer::~ForkServer() {
    drop_spare();
    if (sock_ >= 0) ::close(sock_);
    if (pid_ > 0) {
        ::kill(pid_, SIGKILL);
        int status = 0;
        while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
        }
    }
}

void ForkServer::abandon(const std::string& why, std::chrono::milliseconds grace) {
    if (sock_ < 0) return;  // told once
    // Gone, or given up (it sent garbage, did not answer, or stopped telling
    // of its workers' ends): killed, so that what is said of its workers
    // below is true; the destructor reaps it. One that died on its own (an
    // out-of-memory kill, a user's kill) is reaped here, to say how.
    end_ = why;
    int status = 0;
    const auto deadline = std::chrono::steady_clock::now() + grace;
    for (;;) {
        if (pid_ > 0 && ::waitpid(pid_, &status, WNOHANG) == pid_) {
            end_ = fmt::format("ended ({})", describe_wait_status(status));
            pid_ = -1;
        }
        if (pid_ <= 0 || std::chrono::steady_clock::now() >= deadline) break;
        ::usleep(1000);
    }
    // A server ended by a request to end (a scancel's SIGTERM to every
    // process of the step, a shutdown's, a Ctrl-C's SIGINT) went with
    // whatever was asked to end: its workers were not lost, and their tasks
    // are not run again. One killed (SIGKILL: the out-of-memory killer's
    // choice), crashed, or given up was lost.
    const bool asked_to_end = pid_ == -1 && WIFSIGNALED(status) &&
                              (WTERMSIG(status) == SIGTERM || WTERMSIG(status) == SIGINT ||
                               WTERMSIG(status) == SIGHUP || WTERMSIG(status) == SIGQUIT);
    const std::string lost = asked_to_end ? std::string()
                                          : fmt::format("its fork server (pid {}) {}", started_pid_, end_);
    if (pid_ > 0) ::kill(pid_, SIGKILL);
    ::close(sock_);
    sock_ = -1;
    drop_spare();
    // Its children had its death as their parent-death signal (SIGKILL).
    for (const auto& [pid, alive] : children_)
        if (alive && !exits_.count(pid)) exits_[pid] = Exit{SIGKILL, lost};
    children_.clear();
}

void ForkServer::drop_spare() {
    // Its socket's EOF ends it (and the server reaps it).
    if (spare_) ::close(spare_->fd);
    spare_.reset();
}

void ForkServer::ask_for_spare(bool contained) {
    if (spare_ || spare_asked_ || sock_ < 0) return;
    try {
        spare_asked_ = fork_packet::send_spare_request(sock_, contained);
        spare_asked_at_ = std::chrono::steady_clock::now();
    } catch (const std::system_error&) {
        // Seen as the server's end by the next read.
    }
}

bool ForkServer::await_spare(std::chrono::milliseconds grace) {
    if (!spare_coming()) return true;
    // Counted from the request: a spare that keeps the host waiting costs
    // its loop one grace in all, not one per task that asks for it.
    wait_for_spare(spare_asked_at_ + grace);
    return !spare_coming();
}

namespace {
// How long a server whose socket closed gets to be seen dead before it is
// killed: its exit is microseconds from its files' close.
constexpr std::chrono::milliseconds dying_grace{200};
}  // namespace

bool ForkServer::take_event(const Dict& m, std::vector<int>& fds) {
    if (m.contains("spare")) {
        spare_asked_ = false;
        auto pid = static_cast<pid_t>(integer_of(m, "spare"));
        // None forked (-1): the next task is forked on request, and asks again.
        if (pid > 0 && fds.size() == 1 && !spare_) {
            spare_ = Spare{pid, fds[0]};
            fds.clear();
        }
        return true;
    }
    if (m.contains("exited")) {
        auto pid = static_cast<pid_t>(integer_of(m, "exited"));
        if (children_.erase(pid) > 0) exits_[pid] = Exit{static_cast<int>(integer_of(m, "status", 0)), {}};
        return true;
    }
    if (m.contains("stopped")) {
        auto pid = static_cast<pid_t>(integer_of(m, "stopped"));
        if (children_.count(pid) > 0) stops_[pid] = static_cast<int>(integer_of(m, "signal", SIGSTOP));
        return true;
    }
    return false;
}

std::optional<Dict> ForkServer::next(bool& would_block) {
    would_block = false;
    if (sock_ < 0) return std::nullopt;
    for (;;) {
        std::vector<int> fds;
        std::optional<Dict> m;
        bool received_garbage = false;
        try {
            m = fork_packet::receive(sock_, fds, &would_block);
        } catch (const std::exception&) {
            would_block = false;  // a server that sends garbage is as good as gone
            received_garbage = true;
        }
        // Only a spare's socket comes with a packet; take_event keeps it.
        const bool event = m && take_event(*m, fds);
        for (int f : fds) ::close(f);
        if (!m && !would_block && received_garbage) abandon("sent what is no packet");
        else if (!m && !would_block) abandon("closed its socket", dying_grace);
        if (!event) return m;
    }
}

std::optional<Dict> ForkServer::answer(std::chrono::steady_clock::time_point deadline) {
    for (;;) {
        bool would_block = false;
        std::optional<Dict> m = next(would_block);
        if (m) return m;
        if (!would_block) return std::nullopt;
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) return std::nullopt;
        pollfd p{sock_, POLLIN, 0};
        ::poll(&p, 1, static_cast<int>(left.count()) + 1);
    }
}

pid_t ForkServer::fork(const std::filesystem::path& workdir, int channel, int out, int err, long nofile,
                       const std::string& contain, int cgroup_procs) {
    if (sock_ < 0) throw std::runtime_error("the fork server is gone");
    std::vector<int> fds = {channel, out, err};
    if (cgroup_procs >= 0) fds.push_back(cgroup_procs);
    // A task folder longer than PATH_MAX fails to start as an exec'd
    // worker's would (chdir: ENAMETOOLONG); the server stays for the others.
    if (workdir.string().size() > fork_packet::ForkRequest::max_workdir)
        throw std::system_error(ENAMETOOLONG, std::generic_category(), "cannot enter " + workdir.string());
    // A spare on its way comes sooner than a fork asked for behind it.
    if (spare_coming() && !wait_for_spare(spare_asked_at_ + answer_patience_)) {
        abandon("did not answer");
        throw std::runtime_error("the fork server did not answer");
    }
    if (spare_) {
        const Spare spare = *spare_;
        spare_.reset();
        bool sent = false;
        try {
            sent = fork_packet::send_fork(spare.fd, workdir.string(), nofile, contain, fds);
        } catch (const std::system_error&) {
        }
        ::close(spare.fd);
        if (sent) {
            children_[spare.pid] = true;
            ask_for_spare(cgroup_procs >= 0);
            return spare.pid;
        }
        // The spare is gone (killed by someone): forked on request instead.
    }
    if (!fork_packet::send_fork(sock_, workdir.string(), nofile, contain, fds)) {
        abandon("closed its socket", dying_grace);
        throw std::runtime_error("the fork server is gone");
    }
    // A fork of a small process takes well under a millisecond; a server
    // that does not answer in seconds is stuck, and is given up.
    std::optional<Dict> a = answer(std::chrono::steady_clock::now() + answer_patience_);
    if (!a) {
        abandon("did not answer");
        throw std::runtime_error("the fork server did not answer");
    }
    if (a->contains("forked")) {
        auto pid = static_cast<pid_t>(integer_of(*a, "forked"));
        children_[pid] = true;
        ask_for_spare(cgroup_procs >= 0);
        return pid;
    }
    if (a->contains("refused")) throw ForkRefused(text_of(*a, "refused"), static_cast<int>(integer_of(*a, "errno", 0)));
    abandon("answered what it should not");
    throw std::runtime_error("the fork server answered what it should not");
}

bool ForkServer::wait_for_spare(std::chrono::steady_clock::time_point deadline) {
    while (spare_asked_ && sock_ >= 0) {
        bool would_block = false;
        // A spare is an event, kept by next(); an answer cannot come before
        // the request it answers.
        if (next(would_block)) return false;
        if (!would_block) return false;
        if (!spare_asked_) break;
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) return false;
        pollfd p{sock_, POLLIN, 0};
        ::poll(&p, 1, static_cast<int>(left.count()) + 1);
    }
    return sock_ >= 0;
}

bool ForkServer::pump() {
    for (;;) {
        bool would_block = false;
        std::optional<Dict> m = next(would_block);
        const bool starting = !ready_ && start_error_.empty();
        if (m && starting) {
            // Its answer to the preload (its first word, before any event).
            if (m->contains("ready")) {
                ready_ = true;
                continue;
            }
            start_error_ = m->contains("failed") ? text_of(*m, "failed") : "it answered what it should not";
            abandon(start_error_);
            return false;
        }
        // Nothing else but events (which next() keeps) comes unasked: a
        // packet here is one that should not come, and says nothing.
        if (m) continue;
        if (!would_block && starting) start_error_ = "it " + end_;
        return would_block;
    }
}

std::optional<ForkServer::Exit> ForkServer::take_exit(pid_t pid) {
    auto it = exits_.find(pid);
    if (it == exits_.end()) return std::nullopt;
    Exit status = std::move(it->second);
    exits_.erase(it);
    stops_.erase(pid);
    return status;
}

int ForkServer::take_stop(pid_t pid) {
    auto it = stops_.find(pid);
    if (it == stops_.end()) return 0;
    int sig = it->second;
    stops_.erase(it);
    return sig;
}

void ForkServer::forget(pid_t pid) {
    children_.erase(pid);
    exits_.erase(pid);
    stops_.erase(pid);
}

}  // namespace fedflow
