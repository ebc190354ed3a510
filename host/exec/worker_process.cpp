#include "exec/worker_process.hpp"

#include "common/cgroup.hpp"
#include "common/file_io.hpp"
#include "common/proc_stat.hpp"
#include "exec/containment.hpp"
#include "exec/fork_server.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fstream>
#include <sstream>
#include <system_error>

#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

namespace fedflow {

namespace {

// The soft RLIMIT_NOFILE the host started with, when raise_fd_limit raised
// it (0: it did not).
rlim_t original_fd_soft = 0;
// Workers started and not yet destroyed, and the descriptors the host had
// open when it started the first: what the budget below counts on.
std::size_t live_workers = 0;
std::size_t baseline_fds = 0;
// The host's descriptors for each worker: its socket, its pidfd and the
// probe's /proc/<pid>/stat; and, while it starts, the worker's end of the
// socket.
constexpr std::size_t fds_per_worker = 3;
// Kept free for what the host opens for a moment: a result's segments and
// files, report.json, the journal.
constexpr std::size_t fd_headroom = 8;

std::size_t count_open_fds() {
    std::size_t n = 0;
    DIR* d = ::opendir("/proc/self/fd");
    if (d == nullptr) return 0;
    while (dirent* e = ::readdir(d))
        if (e->d_name[0] != '.') ++n;
    ::closedir(d);
    return n - 1;  // the directory's own descriptor
}

// A worker must not take the descriptors the host needs to receive the
// results of the others: the estimate (the host's own plus each worker's)
// is checked against the limit on every start, and counted exactly when it
// comes close.
void check_fd_budget() {
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return;
    if (baseline_fds == 0) baseline_fds = count_open_fds();
    const std::size_t need = fds_per_worker + 1 + fd_headroom;
    if (baseline_fds + live_workers * fds_per_worker + need <= rl.rlim_cur) return;
    std::size_t open = count_open_fds();
    if (open + need <= rl.rlim_cur) return;
    throw SpawnDeferred(fmt::format("the host has {} of its {} file descriptors open (ulimit -n) and needs {} more "
                                    "for another worker",
                                    open, rl.rlim_cur, need));
}

// Set once a start failed for want of a process slot: from then on, each
// start first counts the user's processes against RLIMIT_NPROC, so that a
// shim is not started without the room to fork its worker. They are also
// counted while the limit is close to what the run's own workers take.
bool process_limit_binds = false;
constexpr std::size_t process_margin = 256;

// The processes a worker takes: itself, and its shim and a namespace's init.
std::size_t processes_per_worker(const Descendants* d) {
    if (d == nullptr || d->kind() == Containment::cgroup) return 1;
    return d->kind() == Containment::pidns ? 3 : 2;
}

// Processes (threads: what RLIMIT_NPROC counts) of user uid.
std::size_t count_user_threads(uid_t uid) {
    std::size_t n = 0;
    DIR* d = ::opendir("/proc");
    if (d == nullptr) return 0;
    while (dirent* e = ::readdir(d)) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        std::ifstream in(std::string("/proc/") + e->d_name + "/status");
        std::string key;
        uid_t real = 0;
        std::size_t threads = 0;
        bool mine = false;
        while (in >> key) {
            if (key == "Uid:" && in >> real) mine = real == uid;
            else if (key == "Threads:" && in >> threads) break;
            in.ignore(1 << 20, '\n');
        }
        if (mine) n += threads;
    }
    ::closedir(d);
    return n;
}

void check_process_budget(const Descendants* descendants) {
    rlimit rl{};
    if (::getrlimit(RLIMIT_NPROC, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return;
    const std::size_t need = processes_per_worker(descendants);
    if (!process_limit_binds && (live_workers + 1) * need + process_margin < rl.rlim_cur) return;
    std::size_t used = count_user_threads(::getuid());
    if (used + need <= rl.rlim_cur) return;
    throw SpawnDeferred(fmt::format("the user runs {} of the {} processes it may (ulimit -u), and a worker needs {}",
                                    used, rl.rlim_cur, need));
}

// The limit behind err, if one: " (ulimit -n is 1024)".
std::string limit_behind(int err) {
    std::string text;
    rlimit rl{};
    if (err == EAGAIN && ::getrlimit(RLIMIT_NPROC, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        text += fmt::format(" (the user's process limit, ulimit -u, is {})", rl.rlim_cur);
    else if (err == EMFILE && ::getrlimit(RLIMIT_NOFILE, &rl) == 0)
        text += fmt::format(" (ulimit -n is {})", rl.rlim_cur);
    else if (err == ENFILE) text += " (the system's file table is full)";
    return text;
}

// A start that failed for want of something a worker's end frees is
// deferred (SpawnDeferred); any other failure is e itself.
[[noreturn]] void spawn_error(const std::system_error& e) {
    const int err = e.code().value();
    if (err == EAGAIN) process_limit_binds = true;
    if (transient_start_error(err)) throw SpawnDeferred(e.what() + limit_behind(err));
    throw e;
}

}  // namespace

bool transient_start_error(int err) noexcept {
    return err == EAGAIN || err == EMFILE || err == ENFILE || err == ENOMEM;
}

void WorkerProcess::raise_fd_limit() {
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max) return;
    rlim_t soft = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &rl) == 0) original_fd_soft = soft;
}

std::vector<std::string> WorkerProcess::command_line(const SpawnOptions& o) {
    std::vector<std::string> argv = o.wrapper;
    argv.push_back(o.worker.string());
    // Under a debugger the worker's parent is the debugger, not the host.
    std::string host_pid = o.wrapper.empty() ? std::to_string(::getpid()) : "0";
    argv.insert(argv.end(), {"--channel", "3", "--host-pid", host_pid});
    if (original_fd_soft != 0) argv.insert(argv.end(), {"--nofile", std::to_string(original_fd_soft)});
    if (o.descendants != nullptr)
        for (auto& a : o.descendants->worker_args()) argv.push_back(std::move(a));
    return argv;
}

std::unique_ptr<WorkerProcess> WorkerProcess::prepare(const SpawnOptions& o, file_io::Fd& worker_end) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        spawn_error(std::system_error(errno, std::generic_category(), "socketpair"));
    std::unique_ptr<WorkerProcess> w(new WorkerProcess());
    w->sock_ = sv[0];
    worker_end.reset(sv[1]);
    w->descendants_ = o.descendants;
    w->shim_ = o.descendants != nullptr && o.descendants->kind() != Containment::cgroup;
    if (o.descendants != nullptr) w->cgroup_ = o.descendants->new_task_cgroup();
    return w;
}

std::unique_ptr<WorkerProcess> WorkerProcess::spawn(const SpawnOptions& o) {
    check_fd_budget();
    check_process_budget(o.descendants);
    file_io::Fd worker_end;  // the child's copy is all it needs
    std::unique_ptr<WorkerProcess> w = prepare(o, worker_end);

    process::Spec spec;
    spec.argv = command_line(o);
    // A wrapper (gdb) is looked up on PATH; the worker is a path.
    spec.search_path = !o.wrapper.empty();
    spec.envp = o.envp;
    // run-task's foreground worker stays in the host's group: a debugger
    // reads the terminal, which a background process group may not.
    spec.own_group = !o.foreground;
    // The logs open relative to the workdir; fd 3 is the channel; every
    // other inherited fd is closed.
    spec.cwd = o.workdir;
    if (!o.foreground)
        spec.files = {process::Spec::open(0, "/dev/null", O_RDONLY),
                      process::Spec::open(1, "stdout.log", O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0644),
                      process::Spec::open(2, "stderr.log", O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0644)};
    spec.files.push_back(process::Spec::dup(worker_end.get(), 3));
    spec.close_from = 4;
    try {
        w->child_ = process::spawn(spec);
    } catch (const std::system_error& e) {
        if (!w->cgroup_.empty()) ::rmdir(w->cgroup_.c_str());
        w->cgroup_.clear();
        spawn_error(e);
    }
    ++live_workers;
    // The worker waits for `config` before it runs anything of the task:
    // in its cgroup before then, it cannot have started a process outside.
    if (!w->cgroup_.empty()) cgroup::adopt(w->cgroup_, w->child_.pid());  // on failure, w's destructor ends it
    ::fcntl(w->sock_, F_SETFL, ::fcntl(w->sock_, F_GETFL) | O_NONBLOCK);
    return w;
}

std::unique_ptr<WorkerProcess> WorkerProcess::fork(ForkServer& server, const SpawnOptions& o) {
    check_fd_budget();
    check_process_budget(o.descendants);
    const std::string dir = o.workdir.string();
    // The logs are opened here as spawn's file actions open them: in the
    // workdir, never through a link.
    auto open_log = [&](const char* name) {
        int fd = ::open((o.workdir / name).c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0)
            spawn_error(
                std::system_error(errno, std::generic_category(), fmt::format("cannot open {} in {}", name, dir)));
        return file_io::Fd(fd);
    };
    const file_io::Fd out = open_log("stdout.log");
    const file_io::Fd err = open_log("stderr.log");
    file_io::Fd worker_end;  // the child's copy is all it needs
    std::unique_ptr<WorkerProcess> w = prepare(o, worker_end);
    std::string contain;
    if (o.descendants != nullptr) {
        std::vector<std::string> args = o.descendants->worker_args();  // {"--contain", MODE} or none
        if (args.size() == 2) contain = args[1];
    }
    // The worker enters its cgroup itself (worker/fork_server.hpp): the
    // host does not wait for the move.
    file_io::Fd cgroup_procs;
    if (!w->cgroup_.empty()) {
        cgroup_procs.reset(::open((w->cgroup_ / "cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC));
        if (!cgroup_procs.valid()) {
            int e = errno;
            ::rmdir(w->cgroup_.c_str());
            w->cgroup_.clear();
            spawn_error(std::system_error(e, std::generic_category(), "cannot open the task's cgroup.procs"));
        }
    }
    try {
        w->forked_pid_ = server.fork(o.workdir, worker_end.get(), out.get(), err.get(),
                                     static_cast<long>(original_fd_soft), contain, cgroup_procs.get());
    } catch (const ForkRefused& e) {
        if (!w->cgroup_.empty()) ::rmdir(w->cgroup_.c_str());
        w->cgroup_.clear();
        if (e.err != 0)
            spawn_error(std::system_error(e.err, std::generic_category(), "cannot fork a worker in " + dir));
        throw;
    } catch (...) {
        if (!w->cgroup_.empty()) ::rmdir(w->cgroup_.c_str());
        w->cgroup_.clear();
        throw;
    }
    w->server_ = &server;
    ++live_workers;
    ::fcntl(w->sock_, F_SETFL, ::fcntl(w->sock_, F_GETFL) | O_NONBLOCK);
    return w;
}

void WorkerProcess::kill(int signal) noexcept {
    if (server_ == nullptr) return child_.kill(signal);
    if (forked_status_) return;
    forked_signal_sent_ = signal;
    // As process::Child::kill: its process group, and SIGCONT after.
    if (::kill(-forked_pid_, signal) != 0) ::kill(forked_pid_, signal);
    if (signal != SIGKILL && signal != SIGCONT) resume();
}

pid_t WorkerProcess::server_pid() const noexcept { return server_ != nullptr ? server_->pid() : -1; }

void WorkerProcess::resume() noexcept {
    if (server_ == nullptr) return child_.resume();
    if (forked_status_) return;
    if (::kill(-forked_pid_, SIGCONT) != 0) ::kill(forked_pid_, SIGCONT);
}

int WorkerProcess::take_stop() noexcept {
    if (server_ == nullptr) return child_.take_stop();
    return forked_status_ ? 0 : server_->take_stop(forked_pid_);
}

WorkerProcess::~WorkerProcess() {
    const bool started = started_pid() > 0;
    if (server_ != nullptr && !forked_status_) {
        // Its server reaps it.
        if (::kill(-forked_pid_, SIGKILL) != 0) ::kill(forked_pid_, SIGKILL);
        server_->forget(forked_pid_);
    }
    child_ = process::Child();  // kills (SIGKILL) and reaps a worker still running
    end_cgroup();
    if (started) --live_workers;
    close_channel();
}

void WorkerProcess::end_cgroup() noexcept {
    if (cgroup_.empty()) return;
    try {
        const std::vector<pid_t> members = cgroup::members(cgroup_);
        // A worker that went with its fork server may still be on its way
        // out (its parent-death signal): that is itself, not what its task
        // left.
        const bool server_gone = server_ != nullptr && !server_->alive();
        const auto own = !server_gone ? 0 : std::count_if(members.begin(), members.end(), [&](pid_t p) {
            return p == started_pid() || p == worker_pid_;
        });
        leftovers_ += members.size() - static_cast<std::size_t>(own);
        const std::size_t left = members.size();
        if (left == 0 && descendants_ != nullptr) {
            // Nothing can enter an empty cgroup but a process moved there.
            descendants_->reuse(std::move(cgroup_));
            cgroup_.clear();
            return;
        }
        if (left > 0) cgroup::kill(cgroup_);
        // Killed processes take a moment to go: their cgroup then later.
        if (!cgroup::remove(cgroup_) && descendants_ != nullptr) descendants_->retire(cgroup_);
    } catch (const std::exception&) {
    }
    cgroup_.clear();
}

bool WorkerProcess::take_shim_frame(const channel::Message& m) {
    if (!shim_) return false;
    std::optional<messages::FromShim> frame;
    try {
        frame = messages::decode_from_shim(m);
    } catch (const channel::ProtocolError&) {
        return true;  // a malformed frame of a shim's type says nothing
    }
    if (!frame) return false;
    if (const auto* w = std::get_if<messages::ShimWorker>(&*frame)) {
        // Believed only of a child of the shim: the plugin could send this
        // frame too.
        auto pid = static_cast<pid_t>(w->pid);
        auto stat = proc::read_brief(pid);
        if (worker_pid_ < 0 && stat && stat->ppid == started_pid()) worker_pid_ = pid;
    } else {
        leftovers_ = static_cast<std::size_t>(std::get<messages::ShimLeftovers>(*frame).count);
    }
    return true;
}

void WorkerProcess::close_channel() noexcept {
    if (sock_ >= 0) ::close(sock_);
    sock_ = -1;
}

bool WorkerProcess::send(const messages::FromHost& m) {
    conversation_.sent(m);
    if (sock_ < 0) return false;
    // The socket is non-blocking for reads; a frame larger than its buffer
    // (a config with large params) goes as the worker reads it, and one
    // that does not read for channel::send_patience_ms is treated as gone.
    try {
        return channel::send(sock_, messages::type_of(m), messages::encode(m));
    } catch (const std::system_error&) {
        // Part of a frame may be out: the worker must not wait for the
        // rest. It reads the end of the channel, fails, and its exit is seen.
        ::shutdown(sock_, SHUT_WR);
        return false;
    }
}

bool WorkerProcess::read_available(std::vector<channel::Message>& out) {
    if (sock_ < 0) return false;
    char buf[65536];
    for (;;) {
        ssize_t n = ::read(sock_, buf, sizeof buf);
        if (n > 0) {
            reader_.feed(buf, static_cast<std::size_t>(n));
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        bool eof = n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
        while (auto m = reader_.next())
            if (!take_shim_frame(*m)) out.push_back(std::move(*m));
        if (eof) {
            // Only the worker holds the other end (the worker makes it
            // close-on-exec): if it still runs, it closed the channel itself.
            if (!exited()) {
                auto stat = proc::read_brief(started_pid());
                closed_by_worker_ = stat && stat->running_not_exiting();
            }
            close_channel();
            return false;
        }
        return true;
    }
}

bool WorkerProcess::try_reap() {
    if (server_ == nullptr) return child_.try_reap([this] { end_cgroup(); });
    if (forked_status_) return true;
    // The server killed its process group before it reaped it, unless it
    // has a cgroup: then end_cgroup counts what it left, and kills it.
    std::optional<ForkServer::Exit> status = server_->take_exit(forked_pid_);
    if (!status) return false;
    lost_with_server_ = std::move(status->lost);
    end_cgroup();
    forked_status_ = status->status;
    return true;
}

pid_t spawn_helper(const std::filesystem::path& exe, const std::vector<std::string>& args, int in, int err,
                   char* const* envp) {
    process::Spec spec;
    spec.envp = envp;
    spec.argv = {exe.string()};
    spec.argv.insert(spec.argv.end(), args.begin(), args.end());
    spec.files = {in >= 0 ? process::Spec::dup(in, 0) : process::Spec::open(0, "/dev/null", O_RDONLY),
                  process::Spec::open(1, "/dev/null", O_WRONLY)};
    if (err >= 0) spec.files.push_back(process::Spec::dup(err, 2));
    spec.close_from = 3;
    return process::spawn(spec).detach();
}

}  // namespace fedflow
