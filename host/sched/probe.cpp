// probe.cpp: a Snapshot from /proc, the cgroup and NVML. Plain open/read
// into one reused buffer and hand-written parsers: a sample with 20
// workers costs tens of microseconds, so the scheduler may take one
// whenever it has a decision to make.
#include "sched/probe.hpp"

#include "common/cgroup.hpp"
#include "common/clock.hpp"
#include "common/proc_stat.hpp"
#include "common/text.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <filesystem>

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

namespace fedflow::sched {

namespace {

// Two consecutive samples closer than this (in clock ticks per CPU) report
// the utilization of the last full window instead: /proc/stat counts in
// ticks (usually 10 ms), so a shorter window is mostly rounding.
constexpr std::uint64_t kMinWindowTicksPerCpu = 2;

void skip_blanks(std::string_view& s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
}

// A decimal number at the start of s (after blanks); s moves past it.
template <typename T>
bool take_number(std::string_view& s, T& value) {
    skip_blanks(s);
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
    if (ec != std::errc() || end == s.data()) return false;
    s.remove_prefix(static_cast<std::size_t>(end - s.data()));
    return true;
}

std::string_view first_line(std::string_view text) { return text.substr(0, text.find('\n')); }

// The rest of the line that starts with key followed by sep ("MemTotal" ':'),
// or nullopt when no line does.
std::optional<std::string_view> field(std::string_view text, std::string_view key, char sep) {
    std::size_t pos = 0;
    while (pos < text.size()) {
        std::string_view line = first_line(text.substr(pos));
        if (line.size() > key.size() && line.substr(0, key.size()) == key && line[key.size()] == sep)
            return line.substr(key.size() + 1);
        pos += line.size() + 1;
    }
    return std::nullopt;
}

// "  12345 kB" -> bytes.
bool parse_kb_value(std::string_view value, std::uint64_t& bytes) {
    std::uint64_t kb = 0;
    if (!take_number(value, kb)) return false;
    skip_blanks(value);
    if (!value.empty() && value != "kB") return false;
    bytes = kb * 1024;
    return true;
}

}  // namespace

// ---- parsers ------------------------------------------------------------------

void apply_memory_limit(std::string_view limit, std::string_view usage, std::uint64_t& total,
                        std::uint64_t& available) {
    std::uint64_t max = 0, used = 0;
    limit = first_line(limit);
    if (limit == "max" || !take_number(limit, max)) return;
    // v1 writes "no limit" as the largest page-aligned int64.
    if (max >= (std::uint64_t{1} << 62)) return;
    total = std::min(total, max);
    std::string_view u = first_line(usage);
    if (take_number(u, used)) available = std::min(available, max > used ? max - used : 0);
}

bool parse_meminfo(std::string_view text, std::uint64_t& total, std::uint64_t& available) {
    auto t = field(text, "MemTotal", ':');
    auto a = field(text, "MemAvailable", ':');
    std::uint64_t tv = 0, av = 0;
    if (!t || !a || !parse_kb_value(*t, tv) || !parse_kb_value(*a, av)) return false;
    total = tv;
    available = av;
    return true;
}

bool parse_proc_stat_cpu(std::string_view text, std::uint64_t& busy, std::uint64_t& total) {
    std::string_view line = first_line(text);
    if (line.size() < 4 || line.substr(0, 4) != "cpu ") return false;
    line.remove_prefix(4);
    // user nice system idle iowait irq softirq steal [guest guest_nice]:
    // guest time is already part of user and nice, so it is not added.
    std::uint64_t f[8] = {};
    int n = 0;
    while (n < 8 && take_number(line, f[n])) ++n;
    if (n < 4) return false;
    std::uint64_t sum = 0;
    for (int i = 0; i < n; ++i) sum += f[i];
    std::uint64_t idle = f[3] + f[4];  // idle + iowait (0 when absent)
    total = sum;
    busy = sum - idle;
    return true;
}

namespace {

template <typename T>
bool whole_number(std::string_view s, T& value) {
    return take_number(s, value) && s.empty();
}

using proc::stat_fields, proc::kState, proc::kUtime, proc::kStime, proc::kCutime, proc::kCstime, proc::kVsize,
    proc::kRss;

}  // namespace

bool parse_pid_stat_ticks(std::string_view text, bool with_children, std::uint64_t& ticks) {
    std::string_view f[kCstime + 1];
    int n = stat_fields(text, f, kCstime + 1);
    std::uint64_t utime = 0, stime = 0;
    if (n <= kStime || !whole_number(f[kUtime], utime) || !whole_number(f[kStime], stime)) return false;
    std::uint64_t sum = utime + stime;
    if (with_children) {
        std::int64_t cutime = 0, cstime = 0;  // signed in the kernel's format
        if (n <= kCstime || !whole_number(f[kCutime], cutime) || !whole_number(f[kCstime], cstime)) return false;
        sum += static_cast<std::uint64_t>(std::max<std::int64_t>(cutime, 0)) +
               static_cast<std::uint64_t>(std::max<std::int64_t>(cstime, 0));
    }
    ticks = sum;
    return true;
}

bool parse_pid_stat(std::string_view text, PidStat& out) {
    std::string_view f[kRss + 1];
    if (stat_fields(text, f, kRss + 1) <= kRss || f[kState].size() != 1) return false;
    PidStat st;
    st.state = f[kState][0];
    if (!whole_number(f[kUtime], st.utime) || !whole_number(f[kStime], st.stime) ||
        !whole_number(f[kCutime], st.cutime) || !whole_number(f[kCstime], st.cstime) ||
        !whole_number(f[kVsize], st.vsize) || !whole_number(f[kRss], st.rss_pages))
        return false;
    out = st;
    return true;
}

bool parse_status_kb(std::string_view text, std::string_view key, std::uint64_t& bytes) {
    auto value = field(text, key, ':');
    return value && parse_kb_value(*value, bytes);
}

bool parse_oom_kill(std::string_view text, std::int64_t& count) {
    auto value = field(text, "oom_kill", ' ');
    std::int64_t n = 0;
    if (!value || !take_number(*value, n)) return false;
    count = n;
    return true;
}

// ---- Probe --------------------------------------------------------------------

namespace {

// At most this many workers' /proc/<pid>/stat stay open between samples;
// beyond it they are opened for each read (the host's descriptor limit
// also has to cover each worker's socket and pidfd).
constexpr std::size_t kMaxOpenWorkers = 256;
// How often the number of online CPUs is read again (CPU hotplug is rare).
constexpr std::int64_t kCpusRefreshNs = 1000000000;

void close_file(int& fd) {
    if (fd >= 0) ::close(fd);
    fd = -1;
}

}  // namespace

Probe::Probe(simgpu::Table table) : Probe(false) {
    sim_.emplace(std::move(table));
    nvml_status_ = "simulated";
    gpus_ = simulated_gpus();
}

std::vector<Gpu> Probe::simulated_gpus() {
    // A worker that has ended frees its memory, as a CUDA process's is freed
    // when it exits. kill(pid, 0) fails with ESRCH once the host has reaped it.
    sim_->release_ended([](int pid) { return ::kill(pid, 0) == 0 || errno != ESRCH; });
    std::vector<Gpu> gpus(sim_->count());
    for (std::size_t i = 0; i < gpus.size(); ++i) {
        Gpu& g = gpus[i];
        g.index = static_cast<int>(i);
        g.simulated = true;
        g.total = sim_->spec(i).total;
        g.name = "simulated GPU (" + text::format_size(g.total) + ")";
        // Bus ids in index order, as NVML's are sorted.
        char bus[32];
        std::snprintf(bus, sizeof bus, "00000000:%02zX:00.0", i + 1);
        g.pci_bus_id = bus;
        g.uuid = "SIM-GPU-" + std::to_string(i);
        g.used = sim_->used(i, g.processes);
    }
    return gpus;
}

Probe::Probe(bool use_nvml) {
    buf_.resize(16 * 1024);
    if (use_nvml) {
        nvml_ = Nvml::open(nvml_status_);
        if (nvml_) {
            gpus_ = nvml_->devices();
            nvml_status_.clear();
        }
    } else {
        nvml_status_ = "disabled";
    }
    // cgroup v2 ("0::/path"): its memory.events counts the OOM kills in
    // this cgroup and below, which is what Fedflow's processes can suffer.
    if (read_file("/proc/self/cgroup")) {
        if (auto path = field(text(), "0:", ':')) {
            std::string dir = "/sys/fs/cgroup" + std::string(*path);
            while (!dir.empty() && dir.back() == '/') dir.pop_back();
            std::string events = dir + "/memory.events";
            if (::access(events.c_str(), R_OK) == 0) memory_events_ = std::move(events);
        }
    }
    // The limits of this cgroup and its ancestors (a Slurm step's is set
    // on the step or the job, above the task's own cgroup).
    std::string why;
    std::filesystem::path dir = cgroup::own_dir(why);
    auto add_limits = [&](std::filesystem::path d, const char* max_name, const char* current_name) {
        // Up to the hierarchy's root, whose files are not there.
        for (int depth = 0; depth < 32 && d.string().rfind("/sys/fs/cgroup/", 0) == 0; ++depth, d = d.parent_path()) {
            std::string max = (d / max_name).string();
            if (read_file(max.c_str(), 64) && !text().empty() && text().substr(0, 3) != "max")
                memory_limits_.emplace_back(max, (d / current_name).string());
        }
    };
    if (!dir.empty()) add_limits(dir, "memory.max", "memory.current");
    if (read_file("/proc/self/cgroup")) {
        // v1: "N:memory:/path".
        std::string_view t = text();
        std::size_t at = t.find(":memory:/");
        if (at != std::string_view::npos) {
            std::string_view path = first_line(t.substr(at + 8));
            std::filesystem::path v1 = std::filesystem::path("/sys/fs/cgroup/memory") / std::string(path.substr(1));
            if (::access((v1 / "memory.limit_in_bytes").c_str(), R_OK) == 0)
                add_limits(v1, "memory.limit_in_bytes", "memory.usage_in_bytes");
        }
    }
}

Probe::~Probe() {
    for (OpenFile* f : {&proc_stat_, &self_stat_, &meminfo_, &oom_}) close_file(f->fd);
    for (auto& [pid, f] : worker_stat_) close_file(f.fd);
}

bool Probe::read_fd(int fd, std::size_t max) {
    buf_len_ = 0;
    while (buf_len_ < max) {
        if (buf_.size() - buf_len_ < 1024) buf_.resize(buf_.size() * 2);
        std::size_t want = std::min(buf_.size() - buf_len_, max - buf_len_);
        ssize_t n = ::pread(fd, buf_.data() + buf_len_, want, static_cast<off_t>(buf_len_));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return false;
        if (n == 0) break;
        buf_len_ += static_cast<std::size_t>(n);
    }
    return true;
}

bool Probe::read_file(const char* path, std::size_t max) {
    buf_len_ = 0;
    int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    bool ok = read_fd(fd, max);
    ::close(fd);
    return ok;
}

bool Probe::read_open(OpenFile& f, const char* path, std::size_t max) {
    buf_len_ = 0;
    if (f.fd < 0) f.fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (f.fd < 0) return false;
    if (read_fd(f.fd, max)) return true;
    close_file(f.fd);  // opened again next time
    return false;
}

std::optional<Probe::CpuTimes> Probe::read_cpu_times(const std::vector<int>& pids, Snapshot& s) {
    CpuTimes t;
    // Only the first line is needed; the rest of /proc/stat can be long.
    if (!read_open(proc_stat_, "/proc/stat", 4096) || !parse_proc_stat_cpu(text(), t.busy, t.total))
        return std::nullopt;
    std::uint64_t ticks = 0;
    if (read_open(self_stat_, "/proc/self/stat") && parse_pid_stat_ticks(text(), true, ticks)) t.own += ticks;

    // One read per worker: its CPU time and its resident set.
    static const std::uint64_t page = static_cast<std::uint64_t>(std::max(::sysconf(_SC_PAGESIZE), 1L));
    char path[48];
    for (int pid : pids) {
        std::snprintf(path, sizeof path, "/proc/%d/stat", pid);
        auto [it, added] = worker_stat_.try_emplace(pid);
        bool ok;
        if (added && worker_stat_.size() > kMaxOpenWorkers) {
            worker_stat_.erase(it);
            ok = read_file(path);
        } else {
            it->second.seen = samples_;
            ok = read_open(it->second, path);
            if (!ok) worker_stat_.erase(it);  // gone (or never there)
        }
        PidStat st;
        if (!ok || !parse_pid_stat(text(), st)) continue;
        t.own += st.utime + st.stime;
        if (st.vsize > 0) s.rss[pid] = st.rss_pages * page;  // a zombie has no memory left
    }
    // The fork servers: their CPU time and their reaped workers' are
    // Fedflow's, and their resident set is what their workers share.
    std::map<int, std::uint64_t> server_rss;
    for (int pid : servers_) {
        std::snprintf(path, sizeof path, "/proc/%d/stat", pid);
        PidStat st;
        if (!read_file(path) || !parse_pid_stat(text(), st)) continue;
        t.own += st.utime + st.stime + static_cast<std::uint64_t>(std::max<std::int64_t>(0, st.cutime + st.cstime));
        server_rss[pid] = st.rss_pages * page;
    }
    // A forked worker's RSS counts every page it shares with its fork
    // server: charged whole to each worker, a preloaded torch would count
    // once per task. It is charged what it holds beyond the server's
    // resident set. (Its PSS would also count the pages it copied on
    // write, but smaps_rollup walks every page table: tens of ms for a
    // process with torch, on every sample.)
    for (auto [pid, server] : forked_) {
        auto it = s.rss.find(pid);
        auto shared = server_rss.find(server);
        if (it == s.rss.end() || shared == server_rss.end()) continue;
        it->second = it->second > shared->second ? it->second - shared->second : 0;
    }
    for (auto it = worker_stat_.begin(); it != worker_stat_.end();) {
        if (it->second.seen == samples_) {
            ++it;
        } else {
            close_file(it->second.fd);  // no longer a live worker
            it = worker_stat_.erase(it);
        }
    }
    return t;
}

void Probe::set_forked(std::vector<std::pair<int, int>> forked, std::vector<int> servers) {
    forked_ = std::move(forked);
    servers_ = std::move(servers);
}

Snapshot Probe::sample(const std::vector<int>& pids) {
    Snapshot s;
    ++samples_;
    try {
        s.taken_ns = clock::monotonic_ns();
        if (cpus_read_ns_ == 0 || s.taken_ns - cpus_read_ns_ >= kCpusRefreshNs) {
            long online = ::sysconf(_SC_NPROCESSORS_ONLN);
            cpus_ = online > 0 ? static_cast<unsigned>(online) : 1;
            // A cpuset (a Slurm step's CPUs, taskset) allows fewer.
            cpu_set_t set;
            if (::sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
                cpus_ = std::min(cpus_, static_cast<unsigned>(CPU_COUNT(&set)));
            cpus_read_ns_ = s.taken_ns;
        }
        s.cpus = cpus_;

        if (auto now = read_cpu_times(pids, s)) {
            if (!last_cpu_ || now->total < last_cpu_->total) {
                last_cpu_ = now;  // first sample (or a counter reset): no window yet
            } else if (now->total - last_cpu_->total >= kMinWindowTicksPerCpu * s.cpus) {
                double dt = static_cast<double>(now->total - last_cpu_->total);
                double busy = now->busy > last_cpu_->busy ? static_cast<double>(now->busy - last_cpu_->busy) : 0;
                double own = now->own > last_cpu_->own ? static_cast<double>(now->own - last_cpu_->own) : 0;
                last_utilization_ = std::clamp(busy / dt, 0.0, 1.0);
                last_own_utilization_ = std::clamp(own / dt, 0.0, last_utilization_);
                last_cpu_ = now;
            }
        }
        s.cpu_utilization = last_utilization_;
        s.own_cpu_utilization = last_utilization_ < 0 ? 0 : last_own_utilization_;

        if (read_open(meminfo_, "/proc/meminfo")) parse_meminfo(text(), s.ram_total, s.ram_available);
        for (const auto& [max, current] : memory_limits_) {
            if (!read_file(max.c_str(), 64)) continue;
            std::string limit(text());
            if (read_file(current.c_str(), 64)) apply_memory_limit(limit, text(), s.ram_total, s.ram_available);
        }

        std::int64_t oom = -1;
        if (read_open(oom_, memory_events_.empty() ? "/proc/vmstat" : memory_events_.c_str()) &&
            parse_oom_kill(text(), oom)) {
            s.oom_kills = oom;
        } else if (!memory_events_.empty() && read_file("/proc/vmstat") && parse_oom_kill(text(), oom)) {
            s.oom_kills = oom;
        }

        if (nvml_) s.gpus = nvml_->devices();
        else if (sim_) s.gpus = simulated_gpus();
    } catch (...) {
        // Out of memory while filling maps: what was read so far stands.
    }
    return s;
}

}  // namespace fedflow::sched
