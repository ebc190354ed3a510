#include "exec/containment.hpp"

#include "common/cgroup.hpp"
#include "exec/worker_process.hpp"

#include <fmt/core.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <system_error>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace fedflow {

namespace {

int wait_for(pid_t pid) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return status;
}

// Whether the worker may create PID namespaces here; why not if it may not.
bool probe_pidns(const fs::path& worker_exe, std::string& why) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) {
        why = std::string("pipe: ") + std::strerror(errno);
        return false;
    }
    pid_t pid = -1;
    try {
        pid = spawn_helper(worker_exe, {"--probe-pidns"}, -1, p[1]);
    } catch (const std::exception& e) {
        ::close(p[0]);
        ::close(p[1]);
        why = e.what();
        return false;
    }
    ::close(p[1]);
    std::string out;
    char buf[256];
    ssize_t n;
    while ((n = ::read(p[0], buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
        if (n > 0) out.append(buf, static_cast<std::size_t>(n));
    ::close(p[0]);
    int status = wait_for(pid);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return true;
    while (!out.empty() && out.back() == '\n') out.pop_back();
    why = out.empty() ? "the probe failed" : out;
    return false;
}

Containment parse(const std::string& s) {
    if (s == "cgroup") return Containment::cgroup;
    if (s == "pidns") return Containment::pidns;
    if (s == "subreaper") return Containment::subreaper;
    throw std::invalid_argument(fmt::format("FEDFLOW_CONTAIN={}: not one of cgroup, pidns, subreaper", s));
}

}  // namespace

const char* to_string(Containment c) noexcept {
    switch (c) {
    case Containment::cgroup: return "cgroup";
    case Containment::pidns: return "pidns";
    case Containment::subreaper: return "subreaper";
    }
    return "unknown";
}

std::unique_ptr<Descendants> Descendants::open(const fs::path& worker_exe, const std::string& run_name) {
    std::optional<Containment> forced;
    if (const char* env = std::getenv("FEDFLOW_CONTAIN"); env != nullptr && *env != '\0') forced = parse(env);
    std::unique_ptr<Descendants> d(new Descendants());

    std::string no_cgroup, no_pidns;
    if (!forced || *forced == Containment::cgroup) {
        fs::path own = cgroup::own_dir(no_cgroup);
        fs::path run = own.empty() ? fs::path() : own / run_name;
        if (own.empty()) {
        } else if (::mkdir(run.c_str(), 0755) != 0) {
            no_cgroup = fmt::format("cannot create {}: {}", run.string(), std::strerror(errno));
        } else if (::access((run / "cgroup.kill").c_str(), W_OK) != 0) {
            no_cgroup = fmt::format("{} has no cgroup.kill (Linux 5.14 or later has)", run.string());
            ::rmdir(run.c_str());
        } else {
            d->run_cgroup_ = run;
            try {
                d->start_guard(worker_exe);
                // Moving a process needs write access to the cgroup.procs of
                // both cgroups' common ancestor, the host's own: try it once
                // with the guard (out and back), before a worker needs it.
                fs::path probe = run / "probe";
                if (::mkdir(probe.c_str(), 0755) != 0)
                    throw std::system_error(errno, std::generic_category(), "cannot create " + probe.string());
                try {
                    cgroup::adopt(probe, d->guard_pid_);
                    cgroup::adopt(own, d->guard_pid_);
                } catch (...) {
                    ::rmdir(probe.c_str());
                    throw;
                }
                ::rmdir(probe.c_str());
                d->kind_ = Containment::cgroup;
                d->description_ = fmt::format("a cgroup v2 per task, in {}", run.string());
                return d;
            } catch (const std::exception& e) {
                no_cgroup = e.what();
                d.reset(new Descendants());  // stops the guard, removes the cgroup
            }
        }
        if (forced) throw std::invalid_argument(fmt::format("FEDFLOW_CONTAIN=cgroup: {}", no_cgroup));
    }
    if (!forced || *forced == Containment::pidns) {
        if (probe_pidns(worker_exe, no_pidns)) {
            d->kind_ = Containment::pidns;
            d->description_ = forced ? "a PID namespace per task (FEDFLOW_CONTAIN)"
                                     : fmt::format("a PID namespace per task (no cgroup: {})", no_cgroup);
            return d;
        }
        if (forced) throw std::invalid_argument(fmt::format("FEDFLOW_CONTAIN=pidns: {}", no_pidns));
    }
    d->kind_ = Containment::subreaper;
    d->description_ = forced ? "a subreaper per task (FEDFLOW_CONTAIN)"
                             : fmt::format("a subreaper per task (no cgroup: {}; no PID namespace: {})", no_cgroup,
                                           no_pidns);
    return d;
}

void Descendants::start_guard(const fs::path& worker_exe) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) throw std::system_error(errno, std::generic_category(), "pipe");
    try {
        guard_pid_ = spawn_helper(worker_exe, {"--guard", run_cgroup_.string()}, p[0], -1);
    } catch (...) {
        ::close(p[0]);
        ::close(p[1]);
        throw;
    }
    ::close(p[0]);
    guard_pipe_ = p[1];
}

Descendants::~Descendants() {
    if (!run_cgroup_.empty()) {
        // Every worker has been reaped by now: what is left is what tasks
        // left behind, already killed, or a cgroup not yet removed.
        if (!cgroup::members(run_cgroup_).empty()) cgroup::kill(run_cgroup_);
        cgroup::wait_empty(run_cgroup_, std::chrono::seconds(2));
        cgroup::remove(run_cgroup_);
    }
    if (guard_pipe_ >= 0) ::close(guard_pipe_);
    // The guard finds the cgroup gone and ends; it is not waited for.
    if (guard_pid_ > 0) ::waitpid(guard_pid_, nullptr, WNOHANG);
}

std::vector<std::string> Descendants::worker_args() const {
    if (kind_ == Containment::cgroup) return {};
    return {"--contain", to_string(kind_)};
}

fs::path Descendants::new_task_cgroup() {
    if (kind_ != Containment::cgroup) return {};
    remove_retired();
    if (!spare_.empty()) {
        fs::path dir = std::move(spare_.back());
        spare_.pop_back();
        return dir;
    }
    fs::path dir = run_cgroup_ / fmt::format("t{}", ++task_seq_);
    if (::mkdir(dir.c_str(), 0755) != 0)
        throw std::system_error(errno, std::generic_category(), "cannot create cgroup " + dir.string());
    return dir;
}

void Descendants::retire(fs::path dir) { retired_.push_back(std::move(dir)); }

void Descendants::reuse(fs::path dir) { spare_.push_back(std::move(dir)); }

void Descendants::remove_retired() {
    std::erase_if(retired_, [](const fs::path& dir) { return cgroup::remove(dir); });
}

}  // namespace fedflow
