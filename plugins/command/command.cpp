// The bundled plugin `command`: a task whose load and train run programs.
//
//   params = { load = ["python3", "{plan_dir}/prep.py", "{task_id}"],
//              train = ["python3", "{plan_dir}/train.py", "--device", "{device}"],
//              env = { DATA = "{plan_dir}/data" }, result = "auto" }
//
// Each stage expands the placeholders of its argv, starts the program in the
// task's workdir (the worker's cwd) with FEDFLOW_* variables in its
// environment, copies its stdout and stderr into the task's logs while it
// runs, and fails when it does not exit with code 0. train's result is the
// JSON object the program wrote to result.json (renamed to
// program-result.json afterwards, since the host writes its own result.json
// there), or else the last line of its stdout. The user's guide is
// docs/command.md.
#include "command.hpp"

#include "common/signals.hpp"

#include <fedflow/task.hpp>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char** environ;

namespace fs = std::filesystem;
using fedflow::Dict;
using fedflow::List;
using fedflow::Value;
using namespace fedflow::command;
namespace file_io = fedflow::file_io;
namespace value_json = fedflow::value_json;

namespace {

constexpr std::size_t kStdoutTail = 1 << 20;  // the last line of stdout may be the result
constexpr std::size_t kStderrTail = 64 << 10;
// A stage's message travels in fedflow_status (FEDFLOW_MESSAGE_MAX bytes with
// its NUL): the head and the end of stderr must fit in it together.
constexpr std::size_t kMessageMax = FEDFLOW_MESSAGE_MAX - 1;
constexpr std::size_t kStderrLines = 20;
// After the worker got SIGTERM: how long the program may take to end before
// it gets SIGKILL. Below the host's 5 s between SIGTERM and SIGKILL.
constexpr std::chrono::milliseconds kTermGrace{3000};

enum class ResultFrom { automatic, file, standard_output };

struct Config {
    std::optional<std::vector<std::string>> load, train;
    std::vector<std::pair<std::string, std::string>> env;
    ResultFrom result = ResultFrom::automatic;
};

std::vector<std::string> argv_param(const Dict& params, const char* key) {
    const Value& v = params.at(key);
    if (!v.is<List>())
        throw std::invalid_argument(std::string("param '") + key +
                                    "' must be a list of strings (the program and its "
                                    "arguments), not " +
                                    v.type_name());
    std::vector<std::string> argv;
    for (const Value& item : v.as<List>()) {
        if (item.is<List>() || item.is<Dict>() || item.is<fedflow::Bytes>() || item.is_null())
            throw std::invalid_argument(std::string("param '") + key + "': element " + std::to_string(argv.size()) +
                                        " is a " + item.type_name() + "; every element must be a string");
        argv.push_back(to_text(item));
    }
    if (argv.empty())
        throw std::invalid_argument(std::string("param '") + key +
                                    "' is empty: give the program and its arguments, or leave the param out");
    return argv;
}

Config read_config(const Dict& params) {
    Config c;
    if (params.contains("load")) c.load = argv_param(params, "load");
    if (params.contains("train")) c.train = argv_param(params, "train");
    if (const Value* env = params.find("env")) {
        if (!env->is<Dict>())
            throw std::invalid_argument(std::string("param 'env' must be a table, not ") + env->type_name());
        for (const auto& [name, value] : env->as<Dict>()) {
            if (name.empty() || name.find('=') != std::string::npos || name.find('\0') != std::string::npos)
                throw std::invalid_argument("param 'env': '" + name + "' is not a variable name");
            if (value.is<List>() || value.is<Dict>() || value.is<fedflow::Bytes>() || value.is_null())
                throw std::invalid_argument("param 'env': " + name + " is a " + value.type_name() +
                                            "; values must be strings");
            c.env.emplace_back(name, to_text(value));
        }
    }
    if (const Value* r = params.find("result")) {
        const std::string mode = r->is<std::string>() ? r->as<std::string>() : std::string();
        if (mode == "auto") c.result = ResultFrom::automatic;
        else if (mode == "file") c.result = ResultFrom::file;
        else if (mode == "stdout") c.result = ResultFrom::standard_output;
        else
            throw std::invalid_argument("param 'result' must be \"auto\", \"file\" or \"stdout\", not " +
                                        to_json(*r).dump());
    }
    return c;
}

// device: the train device, or nullopt in load (where {device} is refused).
Placeholders placeholders(const fedflow::Context& ctx, const std::optional<std::string>& device) {
    Placeholders p;
    p.add("task_id", ctx.task_id());
    p.add("group", ctx.group());
    p.add("round", std::to_string(ctx.round()));
    if (device) p.add("device", *device);
    else p.forbid("device", "is known only in train: load runs before a device is assigned");
    p.add("workdir", ctx.workdir());
    p.add("plan_dir", ctx.plan_dir());
    for (const auto& [key, value] : ctx.params())
        if (!is_reserved_param(key)) p.add(key, to_text(value));
    return p;
}

std::vector<std::string> expand_argv(const Placeholders& p, const char* stage, const std::vector<std::string>& argv) {
    std::vector<std::string> out;
    for (std::size_t i = 0; i < argv.size(); ++i)
        out.push_back(p.expand(argv[i], std::string(stage) + "[" + std::to_string(i) + "]"));
    if (out.front().empty()) throw std::invalid_argument(std::string("param ") + stage + "[0], the program, is empty");
    return out;
}

std::string quoted(const std::vector<std::string>& argv) {
    std::string s;
    for (const std::string& a : argv) {
        bool plain = !a.empty() && a.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                                       "0123456789_-./:=,+@%") == std::string::npos;
        if (!s.empty()) s += ' ';
        if (plain) {
            s += a;
        } else {
            s += '\'';
            for (char c : a) s += c == '\'' ? std::string("'\\''") : std::string(1, c);
            s += '\'';
        }
    }
    return s;
}

// ---- running a program ------------------------------------------------------

// The file posix_spawn is to run: name itself when it holds a '/', else the
// first executable regular file name in the directories of path (the PATH
// the program gets, which the user's `env` may have changed).
std::string find_program(const std::string& name, const std::string& path) {
    if (name.find('/') != std::string::npos) return name;
    std::size_t begin = 0;
    for (;;) {
        const std::size_t end = path.find(':', begin);
        std::string dir = path.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
        if (dir.empty()) dir = ".";
        const std::string candidate = dir + "/" + name;
        struct stat st {};
        if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(candidate.c_str(), X_OK) == 0)
            return candidate;
        if (end == std::string::npos) break;
        begin = end + 1;
    }
    throw std::runtime_error("cannot run `" + name + "`: not found on PATH (" +
                             (path.size() > 400 ? path.substr(0, 400) + "..." : path) + ")");
}

bool write_all(int fd, const char* p, std::size_t n) {
    while (n > 0) {
        const ssize_t w = ::write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        p += w;
        n -= static_cast<std::size_t>(w);
    }
    return true;
}

struct Fd {
    int fd = -1;
    Fd() = default;
    explicit Fd(int f) : fd(f) {}
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    ~Fd() { reset(); }
    void reset() {
        if (fd >= 0) ::close(fd);
        fd = -1;
    }
};

// One output of the program: copied to `to` (the worker's stdout or stderr)
// as it comes, its end kept.
struct Stream {
    Fd read_end;
    int to;
    Tail tail;
    Stream(int fd, int to_fd, std::size_t keep) : read_end(fd), to(to_fd), tail(keep) {}

    // Reads what is there; false once the pipe is at its end.
    bool pump() {
        char buf[65536];
        for (;;) {
            const ssize_t n = ::read(read_end.fd, buf, sizeof buf);
            if (n > 0) {
                (void)write_all(to, buf, static_cast<std::size_t>(n));  // a full disk loses log lines, not the task
                tail.append(buf, static_cast<std::size_t>(n));
                continue;
            }
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
            read_end.reset();
            return false;
        }
    }
};

// Where a SIGTERM to the worker goes on: the worker's process group (the
// program and everything it started, and the worker itself, which ignores the
// repeat), or the program alone when the worker leads no group of its own.
volatile std::sig_atomic_t g_forward_to = 0;
volatile std::sig_atomic_t g_terminated = 0;

// The host ends a stage (task-timeout, an interrupted run) with SIGTERM to
// the worker alone: pass it on once, so that the program ends too.
extern "C" void forward_sigterm(int) {
    if (g_terminated) return;
    g_terminated = 1;
    if (g_forward_to != 0) ::kill(static_cast<pid_t>(g_forward_to), SIGTERM);
}

struct Outcome {
    int status = 0;
    Tail out{kStdoutTail};
    Tail err{kStderrTail};
};

// Runs argv with env in the current directory; returns when it has ended and
// its output is read. While it runs, SIGTERM to this process is forwarded to
// it; afterwards this process ends by that SIGTERM.
Outcome run_program(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                    const std::string& path) {
    const std::string file = find_program(argv.front(), path);

    int out_pipe[2], err_pipe[2];
    if (::pipe2(out_pipe, O_CLOEXEC) != 0) throw std::system_error(errno, std::generic_category(), "pipe");
    Stream out(out_pipe[0], STDOUT_FILENO, kStdoutTail);
    Fd out_w(out_pipe[1]);
    if (::pipe2(err_pipe, O_CLOEXEC) != 0) throw std::system_error(errno, std::generic_category(), "pipe");
    Stream err(err_pipe[0], STDERR_FILENO, kStderrTail);
    Fd err_w(err_pipe[1]);
    for (int fd : {out.read_end.fd, err.read_end.fd}) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, out_w.fd, STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&fa, err_w.fd, STDERR_FILENO);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    // Every other fd is close-on-exec already (the channel, the pipes, shared
    // memory); this also covers any a plugin library opened without it.
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
#endif
    // Default handlers and an empty mask for the program, whatever this
    // process blocks or ignores.
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t all, none;
    sigfillset(&all);
    sigemptyset(&none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);

    std::vector<char*> cargv, cenv;
    for (const std::string& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
    cargv.push_back(nullptr);
    for (const std::string& e : env) cenv.push_back(const_cast<char*>(e.c_str()));
    cenv.push_back(nullptr);

    // SIGTERM is blocked except while this process waits in ppoll, so the
    // handler runs only there, never between a check and the wait.
    sigset_t term, old_mask;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    ::sigprocmask(SIG_BLOCK, &term, &old_mask);
    struct sigaction sa {
    }, old_action{};
    sa.sa_handler = forward_sigterm;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGTERM, &sa, &old_action);
    sigset_t wait_mask = old_mask;
    sigdelset(&wait_mask, SIGTERM);

    g_terminated = 0;
    std::fflush(stdout);
    std::fflush(stderr);
    pid_t pid = -1;
    const int rc = ::posix_spawn(&pid, file.c_str(), &fa, &attr, cargv.data(), cenv.data());
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    out_w.reset();
    err_w.reset();
    // Restoring the old handler and mask lets a pending SIGTERM (our own,
    // sent to the group) end this process, as the host asked.
    auto restore = [&] {
        g_forward_to = 0;
        ::sigaction(SIGTERM, &old_action, nullptr);
        ::sigprocmask(SIG_SETMASK, &old_mask, nullptr);
    };
    if (rc != 0) {
        restore();
        std::string why = std::strerror(rc);
        if (rc == ENOEXEC) why += " (not a program: a script needs a #! line)";
        throw std::runtime_error("cannot run `" + argv.front() + "`" +
                                 (file != argv.front() ? " (" + file + ")" : std::string()) + ": " + why);
    }
    g_forward_to = ::getpgrp() == ::getpid() ? -::getpid() : pid;

    Fd pidfd;
#ifdef SYS_pidfd_open
    pidfd.fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
#endif
    Outcome result;
    using Clock = std::chrono::steady_clock;
    std::optional<Clock::time_point> kill_at;
    bool exited = false;
    while (!exited) {
        pollfd fds[3];
        nfds_t n = 0;
        if (out.read_end.fd >= 0) fds[n++] = {out.read_end.fd, POLLIN, 0};
        if (err.read_end.fd >= 0) fds[n++] = {err.read_end.fd, POLLIN, 0};
        if (pidfd.fd >= 0) fds[n++] = {pidfd.fd, POLLIN, 0};
        // Without a pidfd (kernels before 5.3), look for the end every 50 ms.
        std::optional<std::chrono::milliseconds> wait;
        if (pidfd.fd < 0) wait = std::chrono::milliseconds(50);
        if (kill_at) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*kill_at - Clock::now());
            left = std::max(left, std::chrono::milliseconds(0));
            wait = wait ? std::min(*wait, left) : left;
        }
        timespec ts{};
        if (wait) {
            ts.tv_sec = static_cast<time_t>(wait->count() / 1000);
            ts.tv_nsec = static_cast<long>(wait->count() % 1000) * 1000000L;
        }
        const int r = ::ppoll(fds, n, wait ? &ts : nullptr, &wait_mask);
        if (r < 0 && errno != EINTR) {
            const int e = errno;
            ::kill(pid, SIGKILL);
            ::waitpid(pid, nullptr, 0);
            restore();
            throw std::system_error(e, std::generic_category(), "poll");
        }
        if (out.read_end.fd >= 0) out.pump();
        if (err.read_end.fd >= 0) err.pump();
        if (g_terminated && !kill_at) kill_at = Clock::now() + kTermGrace;
        if (kill_at && Clock::now() >= *kill_at) {
            ::kill(pid, SIGKILL);  // the program only: the worker must end by SIGTERM
            kill_at = Clock::time_point::max();
        }
        int status = 0;
        pid_t w = ::waitpid(pid, &status, WNOHANG);
        if (w == pid) {
            exited = true;
            result.status = status;
        }
    }
    // What it wrote before it ended is in the pipes; a process it left
    // behind that still holds them is not waited for.
    if (out.read_end.fd >= 0) out.pump();
    if (err.read_end.fd >= 0) err.pump();
    const bool terminated = g_terminated != 0;
    restore();
    if (terminated) {
        ::raise(SIGTERM);  // the host asked this process to end
        throw std::runtime_error("terminated by SIGTERM");
    }
    result.out = std::move(out.tail);
    result.err = std::move(err.tail);
    return result;
}

// Why a finished program failed, or "" when it exited with code 0.
std::string failure(const std::string& program, const Outcome& o) {
    if (WIFEXITED(o.status) && WEXITSTATUS(o.status) == 0) return "";
    std::string head = "`" + program + "` " + (WIFSIGNALED(o.status) ? "was " : "") +
                       fedflow::describe_wait_status(o.status);
    if (is_blank(o.err.text())) return head + " (its stderr is empty)";
    head += "; the end of its stderr:\n";
    const std::size_t room = kMessageMax > head.size() + 16 ? kMessageMax - head.size() : 16;
    return head + excerpt(o.err.text(), kStderrLines, std::min<std::size_t>(room, 4096));
}

std::string read_text(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + p.string() + ": " + std::strerror(errno));
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

std::string hint_for(const std::string& text) {
    if (text.find("NaN") != std::string::npos || text.find("Infinity") != std::string::npos)
        return " (JSON has no NaN or Infinity: write null instead; Python's json.dump(..., allow_nan=False) finds them)";
    return "";
}

}  // namespace

class Command final : public fedflow::Task {
public:
    void load(fedflow::Context& ctx) override {
        config_ = read_config(ctx.params());
        // Check train's placeholders now, before load does its work for
        // nothing. The device is not known yet; any name stands in for it.
        if (config_->train) {
            const Placeholders p = placeholders(ctx, std::string("cpu"));
            expand_argv(p, "train", *config_->train);
            for (const auto& [name, value] : config_->env) p.expand(value, "env." + name);
        }
        write_inputs(ctx);
        if (config_->load) run_stage(ctx, "load", *config_->load, std::nullopt);
    }

    Dict train(fedflow::Context& ctx, std::string_view device) override {
        if (!config_) config_ = read_config(ctx.params());
        write_inputs(ctx);
        if (!config_->train) return Dict();
        std::error_code ec;
        fs::remove("result.json", ec);  // from an earlier attempt: not this run's result
        const Outcome o = run_stage(ctx, "train", *config_->train, std::string(device));
        return result(ctx, o);
    }

private:
    Outcome run_stage(fedflow::Context& ctx, const char* stage, const std::vector<std::string>& raw,
                      const std::optional<std::string>& device) {
        const Placeholders p = placeholders(ctx, device);
        const std::vector<std::string> argv = expand_argv(p, stage, raw);

        std::vector<std::pair<std::string, std::string>> set = {
            {"FEDFLOW_TASK_ID", ctx.task_id()},
            {"FEDFLOW_GROUP", ctx.group()},
            {"FEDFLOW_ROUND", std::to_string(ctx.round())},
            {"FEDFLOW_STAGE", stage},
            {"FEDFLOW_WORKDIR", ctx.workdir()},
            {"FEDFLOW_PLAN_DIR", ctx.plan_dir()},
            {"FEDFLOW_INPUTS", (fs::path(ctx.workdir()) / "inputs.json").string()},
        };
        std::vector<std::string> unset;
        if (device) set.emplace_back("FEDFLOW_DEVICE", *device);
        else unset.push_back("FEDFLOW_DEVICE");
        for (const auto& [name, value] : config_->env) set.emplace_back(name, p.expand(value, "env." + name));

        std::vector<std::string> base;
        for (char** e = environ; e != nullptr && *e != nullptr; ++e) base.emplace_back(*e);
        const std::vector<std::string> env = make_environment(base, set, unset);
        std::string path = "/usr/local/bin:/usr/bin:/bin";
        for (const std::string& e : env)
            if (e.rfind("PATH=", 0) == 0) path = e.substr(5);

        ctx.log(std::string(stage) + ": running " + quoted(argv));
        Outcome o = run_program(argv, env, path);
        const std::string why = failure(argv.front(), o);
        if (!why.empty()) throw std::runtime_error(why);
        program_ = argv.front();
        return o;
    }

    Dict result(fedflow::Context& ctx, const Outcome& o) {
        const ResultFrom from = config_->result;
        std::error_code ec;
        // The host writes the task's result.json next: the program's, used
        // or not, is kept under another name.
        const bool has_file = fs::exists("result.json", ec);
        const std::string text = has_file && from != ResultFrom::standard_output ? read_text("result.json") : "";
        if (has_file) fs::rename("result.json", "program-result.json", ec);
        if (has_file && from != ResultFrom::standard_output) {
            json j;
            try {
                j = json::parse(text);
            } catch (const json::exception& e) {
                throw std::runtime_error("`" + program_ + "` wrote a result.json that is not JSON: " + e.what() +
                                         hint_for(text));
            }
            if (!j.is_object())
                throw std::runtime_error("`" + program_ + "` wrote a result.json that holds a JSON " + j.type_name() +
                                         ", not an object");
            return to_dict(ctx, j, "result.json");
        }
        if (from == ResultFrom::file)
            throw std::runtime_error("`" + program_ + "` wrote no result.json in " + ctx.workdir() +
                                     " (param result = \"file\")");
        const std::optional<std::string> line = last_line(o.out.text(), o.out.cut());
        if (line && !line->empty() && line->front() == '{') {
            try {
                json j = json::parse(*line);
                if (j.is_object()) return to_dict(ctx, j, "the last line of stdout");
            } catch (const json::exception& e) {
                throw std::runtime_error("the last line of `" + program_ +
                                         "`'s stdout starts with '{' but is not "
                                         "JSON: " +
                                         e.what() + hint_for(*line));
            }
        }
        std::string said = !line ? std::string(o.out.cut() ? " (it is longer than 1 MiB)" : " (stdout is empty)")
                                 : " (it is " + json(line->size() > 200 ? line->substr(0, 200) + "..." : *line).dump() +
                                       ")";
        if (from == ResultFrom::standard_output)
            throw std::runtime_error("the last line of `" + program_ + "`'s stdout is not a JSON object" + said +
                                     " (param result = \"stdout\")");
        throw std::runtime_error("`" + program_ +
                                 "` wrote no result.json and its last line of stdout is not a JSON "
                                 "object" +
                                 said);
    }

    // Byte files that the program's result names become Bytes in shared
    // memory; the host then writes them next to its result.json.
    Dict to_dict(fedflow::Context& ctx, const json& j, const std::string& source) {
        auto load_bytes = [&](const std::string& file, std::optional<std::uint64_t> size,
                              std::optional<std::uint64_t>) -> Value {
            return Value(
                value_json::read_byte_file(ctx.workdir(), file, size, [&](std::size_t n) { return ctx.bytes(n); }));
        };
        try {
            Value v = from_json(j, load_bytes);
            return std::move(v.as<Dict>());
        } catch (const std::runtime_error& e) {
            throw std::runtime_error(source + ": " + e.what());
        }
    }

    // inputs.json in the workdir: ctx.inputs() as JSON, each Bytes value a
    // file beside it named after its key path ("inputs.clients.0.weights.bin").
    // An earlier task's byte file (Bytes::file) is linked there, not copied:
    // a hard link is a plain name in this folder and a regular file, as the
    // $bytes rule wants, and costs no byte. Only where the link cannot be
    // made (another filesystem) are the bytes copied.
    void write_inputs(fedflow::Context& ctx) {
        if (inputs_written_) return;
        std::set<std::string> used;
        auto write_bytes = [&](const fedflow::Bytes& b, const std::string& key_path) -> json {
            const std::string name = value_json::file_name_for("inputs." + key_path, used);
            const fs::path path = fs::path(ctx.workdir()) / name;
            // What an earlier attempt left may be a link to an earlier task's
            // file: writing through it would change that task's result.
            ::unlink(path.c_str());
            if (b.file() == nullptr || ::link(b.file(), path.c_str()) != 0)
                value_json::write_byte_file(ctx.workdir(), name, b);
            return json{{"$bytes", json{{"file", name}, {"size", b.size()}}}};
        };
        const std::string text =
            to_json(Value(ctx.inputs()), write_bytes).dump(2, ' ', false, json::error_handler_t::replace) + "\n";
        file_io::write_file(fs::path(ctx.workdir()) / "inputs.json", text.data(), text.size());
        inputs_written_ = true;
    }

    std::optional<Config> config_;
    std::string program_;
    bool inputs_written_ = false;
};

FEDFLOW_TASK(Command, "command")
