#include "runner/runner.hpp"

#include "common/clock.hpp"
#include "common/device.hpp"
#include "common/failpoints.hpp"
#include "common/inputs_manifest.hpp"
#include "common/log.hpp"
#include "common/proc_stat.hpp"
#include "common/shm.hpp"
#include "common/signals.hpp"
#include "common/text.hpp"
#include "exec/local_executor.hpp"
#include "exec/slurm_executor.hpp"
#include "exec/worker_process.hpp"
#include "runner/results.hpp"

#include <fedflow/detail/wire.hpp>

#include <fmt/core.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <set>
#include <system_error>

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef FEDFLOW_WORKER_FROM_BINDIR
#define FEDFLOW_WORKER_FROM_BINDIR "../libexec/fedflow/fedflow-worker"
#endif

extern char** environ;

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

namespace fedflow {

namespace {

std::string stage_of(TaskStatus s) {
    switch (s) {
    case TaskStatus::LOADING: return "load";
    case TaskStatus::WAITING:
    case TaskStatus::TRAINING: return "train";
    default: return "start";
    }
}

// How long a worker past its task-timeout has between SIGTERM and SIGKILL:
// short, so that the timeout holds to within a second; the long grace is
// for an interrupted run, whose tasks may have work to save.
constexpr std::chrono::milliseconds timeout_grace{500};

}  // namespace

fs::path find_worker() {
    if (const char* env = std::getenv("FEDFLOW_WORKER"); env != nullptr && *env != '\0') return fs::absolute(env);
    std::error_code ec;
    fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    if (ec) throw std::runtime_error("cannot find the running executable (/proc/self/exe)");
    for (const fs::path& candidate : {exe.parent_path() / "fedflow-worker",
                                      exe.parent_path() / "worker" / "fedflow-worker",  // the build tree
                                      (exe.parent_path() / FEDFLOW_WORKER_FROM_BINDIR).lexically_normal()}) {
        if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    }
    throw std::runtime_error(fmt::format("fedflow-worker not found next to {} nor in {} (set FEDFLOW_WORKER)",
                                         exe.string(), FEDFLOW_WORKER_FROM_BINDIR));
}

void Runner::failpoint(const char* point) {
    if (failpoints::armed("host-kill", point)) ::raise(SIGKILL);
}

Runner::Runner(const plan::Plan& plan, std::vector<PluginFile> plugins, RunOptions options)
    : plan_(plan), plugins_(std::move(plugins)), options_(std::move(options)) {
    workdir_ = options_.workdir.empty() ? plan_.workdir : fs::absolute(options_.workdir).lexically_normal();
    shm_prefix_ = shm_lock_.prefix();
    limits_ = plan_.resources;
    if (!options_.gpus.empty()) plan::parse_gpus(options_.gpus, limits_);
    if (options_.result_limit == 0) options_.result_limit = plan_.scheduler.result_limit;

    // The workers' environment: the host's, plus what makes CUDA number
    // devices the way NVML (and so the scheduler) does.
    // CUDA_VISIBLE_DEVICES would renumber the GPUs inside the workers; it
    // becomes the GPU selection instead (see run()), and workers see all.
    for (char** e = environ; *e != nullptr; ++e) {
        if (std::strncmp(*e, "CUDA_VISIBLE_DEVICES=", 21) == 0) cuda_visible_ = std::string(*e + 21);
        else if (std::strncmp(*e, "CUDA_DEVICE_ORDER=", 18) != 0 &&
                 std::string_view(*e).rfind(std::string(simgpu::env_name) + "=", 0) != 0)
            env_storage_.emplace_back(*e);
    }
    env_storage_.emplace_back("CUDA_DEVICE_ORDER=PCI_BUS_ID");
    // Simulated GPUs: the workers find their table through the environment
    // (a host run by a task does not pass its own host's on).
    if (!options_.simulate_gpus.empty() && !options_.slurm)
        env_storage_.push_back(fmt::format("{}={}-gpus", simgpu::env_name, shm_prefix_));
    for (auto& s : env_storage_) envp_.push_back(s.data());
    envp_.push_back(nullptr);
}

Runner::~Runner() {
    live_.clear();
    executor_.reset();  // ends and reaps the workers still running
    shm::remove_prefix(shm_prefix_ + "-");
    if (signal_fd_ >= 0) ::close(signal_fd_);
    if (results_fd_ >= 0) ::close(results_fd_);
    if (wake_fd_ >= 0) ::close(wake_fd_);
    release_reserve();
}

int Runner::run() {
    // What the machine has, before anything is written: a plan that names
    // GPUs this machine lacks is bad input (exit 2).
    sched::StageScheduler::Config scheduler;
    scheduler.limits = limits_;
    scheduler.policy = {plan_.scheduler.max_processes, plan_.scheduler.max_waiting, plan_.scheduler.gpu_order};
    scheduler.default_memory = plan_.scheduler.default_memory;
    scheduler.default_gpu_memory = plan_.scheduler.default_gpu_memory;
    scheduler.auto_adjust = plan_.scheduler.auto_adjust;
    if (options_.slurm) {
        exec::SlurmExecutor::Options so;
        std::error_code ec;
        so.host = fs::read_symlink("/proc/self/exe", ec);
        so.workdir = workdir_;
        so.hello.scheduler = scheduler;
        so.hello.kill_grace = options_.kill_grace;
        so.hello.sample_period = options_.sample_period;
        so.hello.simulate_gpus = options_.simulate_gpus_text;
        so.hello.fork_server = plan_.scheduler.worker_start == plan::WorkerStart::fork_server;
        static const char* const levels[] = {"debug", "info", "warning", "error"};
        so.log_level = levels[static_cast<int>(log::level())];
        executor_ = std::make_unique<exec::SlurmExecutor>(std::move(so));
    } else {
        exec::LocalExecutor::Options eo;
        eo.worker = options_.worker;
        eo.envp = envp_.data();
        eo.scheduler = scheduler;
        eo.kill_grace = options_.kill_grace;
        eo.sample_period = options_.sample_period;
        eo.foreground = options_.foreground;
        eo.wrapper = options_.wrapper;
        eo.run_name = shm_prefix_;
        eo.fork_server = plan_.scheduler.worker_start == plan::WorkerStart::fork_server;
        std::unique_ptr<sched::Probe> probe;
        if (!options_.simulate_gpus.empty() && limits_.use_gpus)
            probe = std::make_unique<sched::Probe>(
                simgpu::Table::create(shm_prefix_ + "-gpus", options_.simulate_gpus));
        else probe = std::make_unique<sched::Probe>(limits_.use_gpus);
        executor_ = std::make_unique<exec::LocalExecutor>(std::move(eo), std::move(probe));
    }
    const sched::Snapshot& machine = executor_->machine();
    // On a cluster each node's step says which GPUs are its own.
    if (cuda_visible_ && !options_.slurm) select_visible_gpus(*cuda_visible_);
    for (int index : limits_.gpus) {
        bool found = std::any_of(machine.gpus.begin(), machine.gpus.end(),
                                 [&](const sched::Gpu& g) { return g.index == index; });
        if (!found)
            throw std::invalid_argument(
                machine.gpus.empty()
                    ? fmt::format("gpus lists GPU {}, but no GPU was found ({})", index,
                                  executor_->gpu_status().empty() ? "NVML sees none" : executor_->gpu_status())
                    : fmt::format("gpus lists GPU {}, but this machine has {} GPU(s), 0 to {}", index,
                                  machine.gpus.size(), machine.gpus.size() - 1));
    }
    if (limits_.use_gpus && machine.gpus.empty())
        log::info("no GPU to schedule ({}): tasks train on \"cpu\"",
                  executor_->gpu_status().empty() ? "NVML sees none" : executor_->gpu_status());
    for (const auto& g : machine.gpus)
        log::info("{}: {} ({}), {} in all, {} in use", g.device(), g.name, g.pci_bus_id, text::format_size(g.total),
                  text::format_size(g.used));

    remove_stale_segments();
    if (plan_.notify && plan_.notify->smtp && !notify::have_smtp())
        throw std::invalid_argument(
            "[notify] smtp: this fedflow-host was built without libcurl, so it cannot send mail");
    // The start sequence is ordered so that a host killed at any point of
    // it leaves a workdir that a fresh run and --resume both accept: the
    // lock file first (it marks the directory as Fedflow's), then run.json,
    // then the journal. The failpoints are where tests kill it.
    claim_workdir();
    failpoint("workdir-locked");
    std::error_code ec;
    if (options_.resume && !fs::exists(workdir_ / "run.json", ec)) {
        // claim_workdir found our lock file: a host was killed before it
        // wrote run.json, so nothing of its run can have finished.
        log::warning("--resume: the run in {} was killed before it started (it has no run.json): starting it afresh",
                     workdir_.string());
        prepare_workdir();
    } else if (options_.resume) {
        previous_.load(plan_, workdir_, options_.force);
    } else {
        prepare_workdir();
    }
    workdir_lock_->accept();
    failpoint("workdir-ready");
    started_ = clock::utc_timestamp();
    view_ = ProgressView::make(options_.progress);
    make_reserve();
    Outputs::Options outputs;
    outputs.write_own = [this](const fs::path& file, const std::function<void()>& write) {
        return write_own(file, write);
    };
    outputs_.emplace(plan_, workdir_, options_.resume, std::move(outputs));
    outputs_->start(options_.seed, started_, executor_->machine(), limits_);
    failpoint("run-json-written");
    std::size_t cut = 0;
    if (!write_own(workdir_ / "events.jsonl", [&] { cut = journal_.open(workdir_ / "events.jsonl", view_.get()); }))
        throw std::runtime_error(fmt::format("cannot start: the filesystem of {} is full", workdir_.string()));
    if (cut != 0)
        log::warning("events.jsonl ended in {} byte(s) of a line that was never finished (its host was killed, or the "
                     "disk was full): cut off",
                     cut);
    journal_.set_listener([this](const json& line) { outputs_->event(line); });
    failpoint("journal-open");

    // SIGINT/SIGTERM arrive through a signalfd in the poll loop, so that
    // stopping is an ordinary event: start nothing new, end the workers,
    // write the reports.
    sigset_t mask;
    sigemptyset(&mask);
    // Under a debugger, Ctrl-C is the debugger's: the host ignores it.
    if (options_.wrapper.empty()) sigaddset(&mask, SIGINT);
    else ::signal(SIGINT, SIG_IGN);
    sigaddset(&mask, SIGTERM);
    sigprocmask(SIG_BLOCK, &mask, nullptr);
    signal_fd_ = ::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    results_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    wake_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (signal_fd_ < 0 || results_fd_ < 0 || wake_fd_ < 0)
        throw std::system_error(errno, std::generic_category(), "signalfd, eventfd or epoll_create1");
    for (int fd : {signal_fd_, results_fd_}) {
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.fd = fd;
        if (::epoll_ctl(wake_fd_, EPOLL_CTL_ADD, fd, &ev) != 0)
            throw std::system_error(errno, std::generic_category(), "epoll_ctl");
    }

    std::size_t total = 0, planned = 0;
    for (const auto& g : plan_.groups) {
        total += g.task_count();
        planned += g.task_count() * (g.block == 0 ? 1 : plan_.rounds[g.block - 1].count);
    }
    const std::size_t restored = previous_.count();
    journal_.write({{"event", "run_start"},
                    {"plan", plan_.file.string()},
                    {"plan_digest", plan_.digest},
                    {"workdir", workdir_.string()},
                    {"groups", plan_.groups.size()},
                    {"tasks", total},
                    {"planned_tasks", planned},
                    {"seed", options_.seed},
                    {"containment", executor_->containment()},
                    {"resume", options_.resume},
                    {"finished_before", restored}});
    if (options_.resume)
        log::info("resuming the run in {}: {} of {} task(s) finished before", workdir_.string(), restored, planned);

    try {
        for (std::size_t i = 0; i < plan_.groups.size() && stop_reason_.empty() && failed_stop_.empty();) {
            const plan::GroupSpec& g = plan_.groups[i];
            if (g.block == 0) {
                run_group(i);
                ++i;
            } else {
                const plan::RoundSpec& rounds = plan_.rounds[g.block - 1];
                run_rounds(rounds);
                i = rounds.last;
            }
        }
    } catch (const std::exception& e) {
        // The host itself failed: say so in the run's files before the
        // caller reports it (the destructor ends the workers).
        try {
            journal_.write(
                {{"event", "run_end"}, {"status", "error"}, {"exit_code", exit_host_failed}, {"message", e.what()}});
            if (outputs_) outputs_->finish("error", exit_host_failed);
        } catch (...) {
        }
        throw;
    }

    check_journal();
    bool failed = superseded_failed_;
    for (const auto& [name, i] : latest_) failed = failed || groups_[i]->failed_count() > 0;
    int code = !stop_reason_.empty() ? exit_host_failed : failed ? exit_task_failed : exit_ok;
    std::string status = !stop_reason_.empty() ? "interrupted" : failed ? "failed" : "finished";
    const std::string& reason = !stop_reason_.empty() ? stop_reason_ : failed_stop_;
    json end{{"event", "run_end"}, {"status", status}, {"exit_code", code}};
    if (!reason.empty()) end["reason"] = reason;
    end["loop_max_ms"] = std::chrono::duration<double, std::milli>(loop_max_).count();
    journal_.write(std::move(end));
    outputs_->finish(status, code, reason);
    if (disk_full_)
        log::error("the run was stopped because the workdir's filesystem is full: what finished is kept; free some "
                   "space, then `--resume` runs the rest");
    release_reserve();
    if (view_) {
        if (view_->live()) show_status(true);  // nothing runs any more
        view_->finish();
    }
    if (!failed_stop_.empty()) log::error("{}", failed_stop_);  // last, below the progress frame
    return code;
}

void Runner::remove_stale_segments() {
    shm::Sweep s = shm::remove_abandoned(shm_prefix_);
    if (s.removed != 0)
        log::info("removed {} shared-memory segment(s) left in /dev/shm by a fedflow-host that is gone", s.removed);
    if (s.unproven != 0)
        log::info("left {} shared-memory segment(s) in /dev/shm alone: their run has no lock file that we may open, so "
                  "it cannot be proven gone (remove /dev/shm/fedflow-<pid>-<hex>-* by hand when no fedflow-host "
                  "uses them)",
                  s.unproven);
}

void check_workdir(const fs::path& workdir, bool resume) {
    WorkdirLock::check_path(workdir);
    std::error_code ec;
    const bool exists = fs::exists(workdir, ec);
    const bool ours = exists &&
                      (fs::exists(workdir / "run.json", ec) || fs::exists(workdir / WorkdirLock::file_name, ec));
    if (resume && !ours)
        throw std::invalid_argument(
            fmt::format("--resume: {} holds no Fedflow run (no run.json): nothing to resume", workdir.string()));
    if (exists && !ours && fs::is_directory(workdir, ec) && !fs::is_empty(workdir, ec))
        throw std::invalid_argument(fmt::format(
            "workdir {} is not empty and holds no Fedflow run: refusing to write into it (choose --workdir)",
            workdir.string()));
}

void Runner::claim_workdir() {
    // Checked before the lock, whose file would otherwise be the first
    // thing we write into a directory that is not ours.
    check_workdir(workdir_, options_.resume);
    workdir_lock_.emplace(workdir_);
    // Held: the run in it is not going on. A fresh run would delete what it
    // finished, which a mistyped command must not do.
    if (!options_.resume && !options_.overwrite) {
        if (std::optional<std::string> left = results_left(workdir_)) {
            workdir_lock_.reset();
            // run-task (foreground) has --dir and no --resume.
            throw std::invalid_argument(
                fmt::format("workdir {} holds the results of a run ({}): running {} there again would delete them. {}",
                            workdir_.string(), *left, options_.foreground ? "the task" : "the plan",
                            options_.foreground
                                ? "--overwrite replaces the run, --dir DIR runs the task elsewhere"
                                : "--resume runs what did not finish, --overwrite replaces the run, --workdir "
                                  "DIR starts this one elsewhere"));
        }
    }
}

void Runner::prepare_workdir() {
    // A previous run of Fedflow (claim_workdir let nothing else through):
    // its outputs are replaced, never mixed with this run's. The lock file
    // stays: it is ours now.
    std::error_code ec;
    if (fs::exists(workdir_ / "run.json", ec))
        log::warning("replacing the previous run in {}{}", workdir_.string(),
                     options_.overwrite ? " (--overwrite)" : ": none of its tasks finished");
    // run.json first: what a host killed halfway through leaves is then no
    // run for --resume to take up, but a start to begin again.
    fs::remove(workdir_ / "run.json");
    failpoint("workdir-cleaning");
    for (const auto& e : fs::directory_iterator(workdir_))
        if (e.path().filename() != WorkdirLock::file_name) fs::remove_all(e.path());
}

void Runner::status_event(const TaskGroup& group, const Task& task, json extra) {
    json e{{"event", "status"}, {"group", group.group_name()}};
    if (group.round() != 0) e["round"] = group.round();
    e["task"] = task.task_id();
    e["status"] = to_string(task.status());
    for (auto& [k, v] : extra.items()) e[k] = std::move(v);
    journal_.write(std::move(e));
}

std::string Runner::make_inputs_segment(const TaskGroup& group, const plan::GroupSpec& spec) {
    inputs_about_.clear();
    if (spec.inputs.empty()) return {};
    Dict inputs;
    // Where each byte file is, never its bytes: workers map the files
    // (inputs_manifest.hpp), so the host's memory does not grow with the
    // size or the number of the models it hands on.
    std::vector<inputs_manifest::File> files;
    for (const auto& name : spec.inputs) {
        // The most recent instance of that group that ran before this one
        // (this round's, else an earlier round's); none yet: no key.
        auto found = latest_.find(name);
        const TaskGroup* latest = found != latest_.end() ? groups_[found->second].get() : nullptr;
        if (latest == nullptr || latest == &group) continue;
        Dict results;
        for (const auto& t : latest->tasks())
            if ((t->status() == TaskStatus::FINISHED || t->status() == TaskStatus::EXITED) && !t->result().is_null())
                results.insert_or_assign(t->task_id(),
                                         results::reference_result(t->result(), latest->task_dir(*t), files));
        // So that a task can say why a result it looks for is missing.
        inputs_about_.insert_or_assign(name, Dict{{"tasks", latest->tasks().size()},
                                                  {"finished", results.size()},
                                                  {"round", std::int64_t{latest->round()}}});
        inputs.insert_or_assign(name, std::move(results));
    }
    if (inputs.size() == 0) return {};
    std::uint64_t mapped = 0;
    for (const auto& f : files) mapped += f.size;
    executor_->group_inputs(mapped);
    const std::string doc = inputs_manifest::encode(Value(std::move(inputs)), files);
    std::string name = fmt::format("{}-in{}", shm_prefix_, ++inputs_seq_);
    shm::Segment seg = shm::Segment::create(name, doc.size());
    std::memcpy(seg.data(), doc.data(), doc.size());
    return name;  // the mapping goes; the segment stays until the group ends
}

void Runner::fail(TaskGroup& group, Task& task, const std::string& stage, const std::string& message, bool log) {
    group.report_exception(task.task_id(), stage, message);
    status_event(group, task, {{"stage", stage}, {"message", message}});
    // Where the progress view shows failures, the log says them only at debug level.
    if (log)
        log::write(view_ && view_->shows_failures() ? log::Level::debug : log::Level::error,
                   fmt::format("{}/{} failed in {}: {}", group.group_name(), task.task_id(), stage, message));
}

void Runner::merge_peaks(Task& task, const exec::Peaks& peaks) {
    task.stats().peak_memory = std::max(task.stats().peak_memory, peaks.memory);
    task.stats().peak_gpu_memory = std::max(task.stats().peak_gpu_memory, peaks.gpu_memory);
}

void Runner::receive_result(Live& live, const messages::Result& announced) {
    log::debug("{}/{}: its result ({} bytes) is received off the loop", live.group->group_name(), live.task->task_id(),
               announced.size);
    live.receiving = std::make_unique<ReceiveThread>(live.receiver, announced, live.group->task_dir(*live.task),
                                                     results_fd_, clock::monotonic_ns());
}

void Runner::collect_results() {
    std::uint64_t n = 0;
    while (::read(results_fd_, &n, sizeof n) == static_cast<ssize_t>(sizeof n)) {
    }
    for (auto it = live_.begin(); it != live_.end();) {
        auto next = std::next(it);
        Live& l = it->second;
        if (l.receiving && l.receiving->done()) {
            std::unique_ptr<ReceiveThread> received = std::move(l.receiving);
            finish_result(l, it->first, *received);
            if (l.deferred_broken) worker_broken(l, *l.deferred_broken);
            l.deferred_broken.reset();
            std::optional<exec::Event> exit = std::move(l.deferred_exit);
            l.deferred_exit.reset();
            if (l.kept) {  // kept for its next round (finish_worker): no longer live
                live_.erase(it);
                if (exit) kept_exited(*exit);
            } else if (exit) {
                worker_ended(it, *exit);
            }
        }
        it = next;
    }
}

void Runner::finish_result(Live& live, exec::WorkerId id, ReceiveThread& received) {
    TaskGroup& group = *live.group;
    Task& task = *live.task;
    live.receiver = received.receiver();  // which segments the thread removed
    const messages::Result& announced = received.announced();
    if (is_final(task.status())) {
        // The task failed while its result was written (its worker broke
        // the protocol): the result does not count.
        try {
            received.take();
        } catch (const std::exception&) {
        }
        return;
    }
    try {
        results::Written w = received.take();
        task.stats().train_ms = announced.ms;
        task.stats().peak_memory = std::max(task.stats().peak_memory, announced.peak_memory);
        merge_peaks(task, executor_->peaks(id));
        group.report_finish(task.task_id(), std::move(w.json));
        executor_->end_stage(id);
        // auto-adjust: the next tasks of the group are admitted on what
        // this one was measured to use.
        executor_->learn({task.stats().peak_memory, task.stats().peak_gpu_memory});
        std::int64_t done_ns = clock::monotonic_ns();
        journal_.write({{"event", "result"},
                        {"group", group.group_name()},
                        {"round", group.round()},
                        {"task", task.task_id()},
                        {"bytes", w.bytes + announced.size},
                        {"transfer_ms", static_cast<double>(done_ns - announced.train_end_ns) / 1e6},
                        {"host_ms", static_cast<double>(done_ns - received.received_ns()) / 1e6}});
        json finished{{"train_ms", task.stats().train_ms}, {"result_checksum", fmt::format("{:016x}", w.checksum)}};
        if (w.non_finite_count > 0) {
            finished["non_finite"] = w.non_finite;
            warn_non_finite(group, task, w);
        }
        status_event(group, task, std::move(finished));
    } catch (const std::exception& e) {
        live.receiver.discard();
        if (results::is_disk_full(e)) {
            disk_full(e.what());
            fail(group, task, "train", fmt::format("not saved: the workdir's filesystem is full ({})", e.what()));
        } else {
            fail(group, task, "train", fmt::format("invalid result: {}", e.what()));
        }
    }
    finish_worker(live, id);
}

void Runner::warn_non_finite(const TaskGroup& group, const Task& task, const results::Written& w) {
    // A diverged model (a NaN loss) must not pass for a missing value. A
    // run where every client diverges says so for the first few tasks, and
    // then once that the rest go to the debug level.
    constexpr std::size_t warned_tasks = 10;
    std::string where;
    for (const auto& path : w.non_finite) where += (where.empty() ? "" : ", ") + path;
    if (w.non_finite_count > w.non_finite.size())
        where += fmt::format(" and {} more", w.non_finite_count - w.non_finite.size());
    const std::size_t n = ++non_finite_results_;
    log::write(n <= warned_tasks ? log::Level::warning : log::Level::debug,
               fmt::format("{}/{}{}: its result holds NaN or infinity at {}: result.json has null there (JSON has "
                           "no NaN){}",
                           group.group_name(), task.task_id(),
                           group.round() != 0 ? fmt::format(" (round {})", group.round()) : std::string(), where,
                           n == warned_tasks ? "; further results like it are logged at debug level" : ""));
}

bool Runner::may_keep(const Live& live) const {
    // Kept for the next round of its [[round]], if there is one: a worker
    // too old to take a next round's config (protocol 1) is not.
    const TaskGroup& group = *live.group;
    const plan::GroupSpec& spec = plan_.groups[group.index() - 1];
    const bool next_round = spec.block != 0 && group.round() < plan_.rounds[spec.block - 1].count;
    return spec.keep_loaded && next_round && live.protocol >= 2;
}

void Runner::finish_worker(Live& live, exec::WorkerId id) {
    TaskGroup& group = *live.group;
    Task& task = *live.task;
    if (!may_keep(live) || task.status() != TaskStatus::FINISHED || !stop_reason_.empty()) {
        task.exit();
        return;
    }
    executor_->keep(id);
    Client& client = clients_[{group.index() - 1, task.task_id()}];
    client.kept = id;
    kept_[id] = {group.index() - 1, task.task_id()};
    live.kept = true;  // dispatch() lets go of it: the task is done, the process idles
    task.worker_exited();
}

void Runner::kept_exited(const exec::Event& e) {
    auto it = kept_.find(e.id);
    if (it == kept_.end()) return;
    const auto [index, task_id] = it->second;
    kept_.erase(it);
    Client& client = clients_[{index, task_id}];
    if (client.kept == e.id) client.kept = 0;
    if (releasing_kept_ || !stop_reason_.empty()) return;
    const std::string& group = plan_.groups[index].name;
    if (e.evicted) {
        ++client.evictions;
        ++evictions_;
        log::info("{}/{}: its kept worker was ended to make room; it loads again in its next round", group, task_id);
        journal_.write({{"event", "evicted"}, {"group", group}, {"task", task_id}, {"evictions", client.evictions}});
    } else {
        // Crashed, or killed (with its fork server, too), while idle: the
        // next round loads it anew.
        std::string how = e.server_lost ? e.error + ", and the worker with it" : describe_wait_status(e.wait_status);
        log::warning("{}/{}: its kept worker exited between rounds ({}); it loads again in its next round", group,
                     task_id, how);
        journal_.write({{"event", "kept_exited"}, {"group", group}, {"task", task_id}, {"how", how}});
    }
}

void Runner::release_kept() {
    if (kept_.empty()) return;
    releasing_kept_ = true;
    for (const auto& [id, key] : kept_) executor_->release(id);
    std::vector<exec::Event> events;
    // Each destroys its task and exits; one that does not is killed.
    const auto deadline = Clock::now() + options_.kill_grace;
    bool killed = false;
    while (!kept_.empty()) {
        if (!killed && Clock::now() >= deadline) {
            for (const auto& [id, key] : kept_) executor_->signal(id, SIGKILL);
            killed = true;
        }
        events.clear();
        executor_->wait(killed ? std::nullopt : std::optional(deadline), signal_fd_, events);
        read_signals();
        for (auto& e : events) dispatch(e);
    }
    releasing_kept_ = false;
}

void Runner::handle_message(Live& live, exec::WorkerId id, const messages::FromWorker& message) {
    TaskGroup& group = *live.group;
    Task& task = *live.task;
    if (is_final(task.status())) return;  // late words of a task already judged
    if (const auto* ready = std::get_if<messages::Ready>(&message)) {
        live.protocol = ready->protocol;
        log::debug("{}/{}: worker {} ready", group.group_name(), task.task_id(), executor_->pid(id));
    } else if (const auto* loaded = std::get_if<messages::Loaded>(&message)) {
        task.stats().load_ms = loaded->ms;
        task.stats().peak_memory = loaded->peak_memory;
        task.set_status(TaskStatus::WAITING);
        json extra{{"load_ms", task.stats().load_ms}, {"peak_memory", task.stats().peak_memory}};
        // The task's own estimates (set_estimates in load) replace the plan's
        // for train, its retries and a reload.
        if (loaded->memory_estimate) {
            task.estimates().memory = static_cast<std::uint64_t>(*loaded->memory_estimate);
            extra["memory_estimate"] = *loaded->memory_estimate;
        }
        if (loaded->gpu_memory_estimate) {
            task.estimates().gpu_memory = static_cast<std::uint64_t>(*loaded->gpu_memory_estimate);
            extra["gpu_memory_estimate"] = *loaded->gpu_memory_estimate;
        }
        status_event(group, task, std::move(extra));
        // schedule() gives it a device; one whose train went with its load
        // is training already, and its result may be next.
        if (!live.train_ahead.empty()) start_train(group, id, live);
    } else if (const auto* result = std::get_if<messages::Result>(&message)) {
        receive_result(live, *result);
    } else {
        const auto& failed = std::get<messages::Failed>(message);
        const std::string stage = messages::to_string(failed.stage);
        if (failed.ms && failed.stage == messages::Failed::Stage::load) task.stats().load_ms = *failed.ms;
        if (failed.ms && failed.stage == messages::Failed::Stage::train) task.stats().train_ms = *failed.ms;
        if (failed.peak_memory) task.stats().peak_memory = std::max(task.stats().peak_memory, *failed.peak_memory);
        if (failed.kind == messages::Failed::Kind::oom) {
            out_of_memory(live, id, stage, failed.message, true);
        } else {
            fail(group, task, stage, failed.message);
            task.exit();
        }
    }
}

void Runner::handle_exit(Live& live, const exec::Event& e) {
    TaskGroup& group = *live.group;
    Task& task = *live.task;
    const int status = e.wait_status;
    merge_peaks(task, e.peaks);
    if (task.status() == TaskStatus::FINISHED) {
        task.set_status(TaskStatus::EXITED);
        status_event(group, task);
    } else if (task.status() == TaskStatus::INTERRUPT && stop_reason_.empty()) {
        // (Also when its node or its fork server was lost after that: it
        // starts again in a new process all the same.)
        ++restarts_pending_;  // out of memory in load: starts again in a new process
    } else if (e.node_lost && !is_final(task.status()) && stop_reason_.empty()) {
        requeue(live, e);
    } else if (e.server_lost && !is_final(task.status()) && stop_reason_.empty()) {
        rerun_without_server(live, e);
    } else if (!is_final(task.status())) {
        std::string stage = stage_of(task.status());
        std::string message;
        if (!live.ended_why.empty()) {
            message = live.ended_why;
        } else if (!live.timed_out_stage.empty()) {
            stage = live.timed_out_stage;
            message = fmt::format("timed out after {} in {}", text::format_duration(plan_.scheduler.task_timeout),
                                  stage);
        } else if (!stop_reason_.empty()) {
            message = "interrupted: " + stop_reason_;
        } else if (e.closed_channel ||
                   (WIFEXITED(status) && WEXITSTATUS(status) == messages::worker_exit_channel_lost)) {
            message = "the task closed its control channel (fd 3), so it could not report: a plugin must leave fd 3 "
                      "open";
        } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
            message = "the worker exited without a result";
        } else if (e.killed_for_memory) {
            live.receiver.discard();
            out_of_memory(live, e.id, stage, "killed by the kernel's out-of-memory killer (SIGKILL)", false);
            if (task.status() == TaskStatus::INTERRUPT) ++restarts_pending_;
        } else {
            message = describe_wait_status(status);
        }
        if (!message.empty()) fail(group, task, stage, message);
    }
    // A worker that failed may have made segments it never announced.
    if (!live.receiver.segments_removed()) live.receiver.discard();
    task.worker_exited();
}

void Runner::requeue(Live& live, const exec::Event& e) {
    TaskGroup& group = *live.group;
    Task& task = *live.task;
    const std::string stage = stage_of(task.status());
    std::uint32_t& used = task.estimates().requeues;
    const std::uint32_t limit = plan_.slurm.requeue;
    if (used >= limit) {
        fail(group, task, stage,
             limit == 0 ? fmt::format("{} ([slurm] requeue = 0)", e.error)
                        : fmt::format("{} (it ran {} time{} before on nodes that were lost: [slurm] requeue = {})",
                                      e.error, used + 1, used == 0 ? "" : "s", limit));
        return;
    }
    ++used;
    // Nothing of it is kept: it starts again, load first, on another node.
    log::warning("{}/{}: {}; it runs again (re-queue {} of {})", group.group_name(), task.task_id(), e.error, used,
                 limit);
    task.set_status(TaskStatus::INTERRUPT);
    status_event(group, task, {{"stage", stage}, {"message", e.error}, {"requeue", used}, {"requeues", limit}});
    ++restarts_pending_;
}

void Runner::rerun_without_server(Live& live, const exec::Event& e) {
    TaskGroup& group = *live.group;
    Task& task = *live.task;
    const std::string stage = stage_of(task.status());
    // Nothing the task did (though what it held may have brought the
    // out-of-memory killer to its server): the workers a fork server took
    // with it run again. The executor starts a server again only so often
    // (LocalExecutor::max_server_restarts), so this ends.
    const std::string message = e.error + ", and its worker with it";
    log::warning("{}/{}: {} in {}; it runs again, from its load", group.group_name(), task.task_id(), message, stage);
    task.set_status(TaskStatus::INTERRUPT);
    status_event(group, task, {{"stage", stage}, {"message", message}});
    ++restarts_pending_;
}

void Runner::handle_stop(Live& live, const exec::Event& e) {
    const TaskGroup& group = *live.group;
    const Task& task = *live.task;
    const std::string name = signal_name(e.signal);
    json event{{"event", "stopped"}, {"group", group.group_name()}};
    if (group.round() != 0) event["round"] = group.round();
    event["task"] = task.task_id();
    event["signal"] = name;
    event["count"] = e.stops;
    journal_.write(std::move(event));
    if (e.ended) {
        log::warning("{}/{}: its worker was stopped by {} {} times: ending it", group.group_name(), task.task_id(),
                     name, e.stops);
        if (!is_final(task.status())) live.ended_why = fmt::format("stopped by {} {} times; ended", name, e.stops);
    } else {
        log::warning("{}/{}: its worker was stopped by {}: continuing it", group.group_name(), task.task_id(), name);
    }
}

void Runner::report_leftovers(const Live& live, std::size_t count) {
    json event{{"event", "leftovers"}, {"group", live.group->group_name()}};
    if (live.group->round() != 0) event["round"] = live.group->round();
    event["task"] = live.task->task_id();
    event["count"] = count;
    journal_.write(std::move(event));
    log::warning("{}/{}: left {} process{} running; {} killed", live.group->group_name(), live.task->task_id(), count,
                 count == 1 ? "" : "es", count == 1 ? "it was" : "they were");
}

std::pair<exec::WorkerId, Runner::Live*> Runner::signalled_by_task(const signalfd_siginfo& si) {
    // A positive code is the kernel's (a terminal's Ctrl-C), not a process's.
    if (si.ssi_code > 0 || si.ssi_pid == 0) return {0, nullptr};
    auto worker = [&](pid_t pid) -> std::pair<exec::WorkerId, Live*> {
        for (auto& [id, l] : live_)
            if (executor_->pid(id) == pid) return {id, &l};
        return {0, nullptr};
    };
    auto parent = [](pid_t pid) -> pid_t {
        auto stat = proc::read_brief(pid);
        return stat ? stat->ppid : 0;
    };
    // The sender, or the process group or parent it belongs to, up to a
    // worker (which leads its own group); a descendant that left the group
    // (setsid) is found through its parents.
    auto pid = static_cast<pid_t>(si.ssi_pid);
    for (int depth = 0; pid > 1 && pid != ::getpid() && depth < 64; ++depth) {
        if (auto w = worker(pid); w.second != nullptr) return w;
        if (auto w = worker(::getpgid(pid)); w.second != nullptr) return w;
        pid = parent(pid);
    }
    return {0, nullptr};
}

void Runner::stop_all(int signal) {
    for (auto& [id, l] : live_) l.ending = true;
    executor_->signal_all(signal);
}

void Runner::read_signals() {
    signalfd_siginfo si{};
    while (::read(signal_fd_, &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
        if (auto [id, from] = signalled_by_task(si); from != nullptr) {
            // A task's own doing (a script's pkill, a kill of the wrong
            // pid): that task fails, the run goes on.
            Task& t = *from->task;
            std::string what = fmt::format("sent {} to fedflow-host (pid {}, a process of this task)",
                                           signal_name(static_cast<int>(si.ssi_signo)), si.ssi_pid);
            if (!is_final(t.status())) {
                fail(*from->group, t, stage_of(t.status()), what);
                executor_->signal(id, SIGKILL);
            } else {
                log::warning("{}/{} {} after it ended: ignored", from->group->group_name(), t.task_id(), what);
            }
            continue;
        }
        if (!signalled_) {
            signalled_ = true;
            stop("the host received " + signal_name(static_cast<int>(si.ssi_signo)));
        } else {
            stop_all(SIGKILL);  // asked twice: do not wait for the grace period
        }
    }
}

std::optional<Clock::time_point> Runner::next_deadline() {
    std::optional<Clock::time_point> next;
    auto consider = [&](Clock::time_point t) { next = next ? std::min(*next, t) : t; };
    const auto timeout = plan_.scheduler.task_timeout;
    if (timeout.count() > 0)
        for (const auto& [id, l] : live_)
            if (!l.ending && (l.task->status() == TaskStatus::LOADING || l.task->status() == TaskStatus::TRAINING))
                consider(l.task->stage_started() + timeout);
    if (view_ && view_->live()) {
        show_status();
        consider(shown_at_ + std::chrono::milliseconds(250));  // the clock on the screen moves on
    }
    if (auto due = outputs_->next_write()) consider(*due);
    return next;
}

void Runner::dispatch(exec::Event& event) {
    auto it = live_.find(event.id);
    if (it == live_.end()) {
        if (event.kind == exec::Event::Kind::exited) kept_exited(event);
        return;
    }
    Live& l = it->second;
    switch (event.kind) {
    case exec::Event::Kind::message:
        if (l.receiving) {
            // After its result, a worker has nothing more to say.
            log::debug("{}/{}: a message while its result is written: ignored", l.group->group_name(),
                       l.task->task_id());
            break;
        }
        if (!event.result_dir.empty()) l.receiver.read_files_from(event.result_dir);
        handle_message(l, event.id, event.message);
        if (l.kept) live_.erase(it);
        break;
    case exec::Event::Kind::broken:
        // What came after its result (a worker that exits after its result
        // sends it in the same breath, its destructor's last words) is
        // judged once that result is: it does not undo a finished task.
        if (l.receiving) {
            if (!l.deferred_broken) l.deferred_broken = event;
        } else {
            worker_broken(l, event);
        }
        break;
    case exec::Event::Kind::stopped: handle_stop(l, event); break;
    case exec::Event::Kind::exited:
        // Its result's segments are still being read: the exit is
        // settled after (collect_results).
        if (l.receiving) l.deferred_exit = event;
        else worker_ended(it, event);
        break;
    }
}

void Runner::worker_broken(Live& l, const exec::Event& event) {
    // Whatever a worker sends, only its own task fails (the executor ends
    // its worker: what else it says cannot be trusted).
    if (!is_final(l.task->status()))
        fail(*l.group, *l.task, stage_of(l.task->status()), fmt::format("protocol error: {}", event.error));
    else
        log::warning("{}/{}: protocol error after the task ended ({}): {}; its worker is ended", l.group->group_name(),
                     l.task->task_id(), to_string(l.task->status()), event.error);
}

void Runner::worker_ended(std::map<exec::WorkerId, Live>::iterator it, const exec::Event& event) {
    Live& l = it->second;
    if (event.leftovers > 0) report_leftovers(l, event.leftovers);
    handle_exit(l, event);
    live_.erase(it);
}

void Runner::enforce_timeouts() {
    const auto timeout = plan_.scheduler.task_timeout;
    if (timeout.count() == 0) return;
    const auto now = Clock::now();
    for (auto& [id, l] : live_) {
        Task& t = *l.task;
        // A task whose result is being written has finished its train.
        if (l.ending || l.receiving || (t.status() != TaskStatus::LOADING && t.status() != TaskStatus::TRAINING))
            continue;
        if (now < t.stage_started() + timeout) continue;
        l.timed_out_stage = stage_of(t.status());
        l.ending = true;
        executor_->terminate(id, std::min(options_.kill_grace, timeout_grace));
    }
}

void Runner::run_group(std::size_t index, std::uint32_t round) {
    const plan::GroupSpec& spec = plan_.groups[index];
    auto group = std::make_unique<TaskGroup>(spec.index, spec.name, spec.device, options_.seed + round);
    group->set_plugin(plugins_[index].name);
    group->set_round(round);
    group->set_workdir(group_dir(spec, round));
    const bool have_dir = write_own(group->workdir(), [&] { fs::create_directories(group->workdir()); });
    ResumeState::Tasks* previous = options_.resume ? previous_.finished(round, spec.name) : nullptr;
    std::shared_ptr<const Dict> params;  // shared by the tasks whose params are alike (`tasks = N`)
    group->reserve(spec.task_count());
    for (std::size_t i = 0; i < spec.task_count(); ++i) {
        const plan::TaskSpec& t = spec.task(i);
        if (params == nullptr || !(*params == t.params)) params = std::make_shared<const Dict>(t.params);
        Task& task = group->add_task(Task(spec.task_id(i), t.device, params));
        task.estimates().memory = t.memory;
        task.estimates().gpu_memory = t.gpu_memory;
        if (!options_.resume) continue;
        if (previous != nullptr) {
            if (auto p = previous->find(task.task_id()); p != previous->end()) {
                task.restore(std::move(p->second.result), std::move(p->second.report));
                continue;
            }
        }
        fs::remove_all(group->task_dir(task));  // what did not finish starts afresh
    }
    TaskGroup& g = *group;
    // The instance this one supersedes is no input of anything from now on
    // (inputs take the latest, make_inputs_segment): its results are on
    // disk and in the outputs, and its memory (its tasks and their results)
    // goes, so that the host's does not grow with the rounds.
    if (auto it = latest_.find(spec.name); it != latest_.end()) {
        superseded_failed_ = superseded_failed_ || groups_[it->second]->failed_count() > 0;
        groups_[it->second].reset();
    }
    latest_[spec.name] = groups_.size();
    groups_.push_back(std::move(group));
    spec_ = &spec;
    executor_->start_group(spec.memory, spec.gpu_memory);
    restarts_pending_ = 0;
    waiting_for_.clear();

    outputs_->group_started(g, spec.block);
    journal_.write({{"event", "group_start"},
                    {"group", g.group_name()},
                    {"round", round},
                    {"block", spec.block},
                    {"index", g.index()},
                    {"tasks", g.tasks().size()},
                    {"finished_before", g.count(TaskStatus::FINISHED)}});
    inputs_segment_.clear();
    try {
        inputs_segment_ = make_inputs_segment(g, spec);
    } catch (const std::exception& e) {
        for (const auto& t : g.tasks()) fail(g, *t, "start", fmt::format("cannot prepare inputs: {}", e.what()));
    }

    std::vector<exec::Event> events;
    auto busy_from = Clock::now();
    for (;;) {
        journal_.sync();  // what just finished is on disk before anything new starts
        check_journal();
        outputs_->write_if_due();
        schedule(g);
        if (live_.empty() && !waiting_on_machine_) break;
        events.clear();
        loop_max_ = std::max(loop_max_, Clock::now() - busy_from);
        executor_->wait(next_deadline(), wake_fd_, events);
        busy_from = Clock::now();
        read_signals();
        for (auto& e : events) dispatch(e);
        collect_results();
        enforce_timeouts();
    }

    // Tasks never started because the host was asked to stop: each in
    // report.json, but one journal line for them all (a `not_started` event
    // with their positions as ranges) and one line in the log, not 100,000:
    // a line each made the host take seconds to honour a SIGTERM.
    const std::string not_started = "not started: " + stop_reason_;
    std::size_t not_started_count = 0;
    json ranges = json::array();  // [first, last] positions in tasks(), both included
    for (std::size_t i = 0; i < g.tasks().size(); ++i) {
        Task& t = *g.tasks()[i];
        if (t.status() == TaskStatus::INIT) {
            g.report_exception_at(i, "start", not_started);
            ++not_started_count;
            if (!ranges.empty() && ranges.back()[1].get<std::size_t>() + 1 == i) ranges.back()[1] = i;
            else ranges.push_back({i, i});
        } else if (t.status() == TaskStatus::INTERRUPT) {
            fail(g, t, "load", "not restarted after running out of memory: " + stop_reason_);
        }
    }
    if (not_started_count > 0)
        journal_.write({{"event", "not_started"},
                        {"group", g.group_name()},
                        {"round", round},
                        {"count", not_started_count},
                        {"stage", "start"},
                        {"message", not_started},
                        {"ranges", std::move(ranges)}});
    if (not_started_count > 0)
        log::error("{}: {} task(s) {}",
                   g.round() == 0 ? g.group_name() : fmt::format("round {} {}", g.round(), g.group_name()),
                   not_started_count, not_started);
    if (!inputs_segment_.empty()) shm::Segment::remove(inputs_segment_);

    // Task by task: the report of 100,000 tasks is never one JSON tree.
    if (have_dir) write_own(g.workdir() / "report.json", [&] { g.write_result(g.workdir() / "report.json"); });
    journal_.write({{"event", "group_end"},
                    {"group", g.group_name()},
                    {"round", round},
                    {"finished", g.count(TaskStatus::FINISHED) + g.count(TaskStatus::EXITED)},
                    {"failed", g.failed_count()}});
    // Once stopped, run.json and the page wait for the end of the run: on a
    // full disk the reserve is for them.
    outputs_->group_ended(g, !stop_reason_.empty());
}

}  // namespace fedflow
