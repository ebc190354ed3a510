// fedflow-worker: runs one task of one plugin, as the host tells it.
//
// Started by fedflow-host (posix_spawn, never a fork of the host) with its
// cwd set to the task's workdir, stdin from /dev/null, stdout and stderr on
// the task's stdout.log and stderr.log, and the control channel on fd 3:
//
//   fedflow-worker --channel 3 --host-pid PID
//
// or forked, set up the same way, by a fork server that has loaded the
// plugin already (fedflow-worker --fork-server FD, fork_server.hpp).
//
// It receives `config`, loads and checks the plugin, answers `ready`, then
// runs `load` and `train` when told, and exits on `exit` or when the host
// goes away. Plugin code runs only here, never in the host.
#include "common/channel.hpp"
#include "common/clock.hpp"
#include "common/failpoints.hpp"
#include "common/integrity.hpp"
#include "common/messages.hpp"
#include "common/shm.hpp"
#include "worker/crash_report.hpp"
#include "worker/fork_server.hpp"
#include "worker/inputs.hpp"
#include "worker/services.hpp"
#include "worker/shim.hpp"

#include <fedflow/abi.h>
#include <fedflow/detail/wire.hpp>

#include <boost/dll/shared_library.hpp>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <system_error>

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef FEDFLOW_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace ch = fedflow::channel;
namespace msg = fedflow::messages;

namespace {

int channel_fd = 3;
struct stat channel_stat {};  // what fd 3 was at start: a plugin may close it, or open something else on it

// The plugin closed the channel, or replaced it: there is nobody to tell
// but stderr.log, and the exit code (fedflow-host reports it).
[[noreturn]] void channel_lost(const std::string& why) {
    std::fprintf(stderr, "fedflow-worker: the control channel (fd %d) %s: did the plugin close it?\n", channel_fd,
                 why.c_str());
    std::fflush(stderr);
    std::_Exit(msg::worker_exit_channel_lost);
}

void check_channel() {
    struct stat st {};
    if (::fstat(channel_fd, &st) != 0) channel_lost("is closed");
    if (st.st_dev != channel_stat.st_dev || st.st_ino != channel_stat.st_ino) channel_lost("is another file now");
}

// With a fork server: the resident set the child started with, all of it
// shared with the server (its peaks are counted above it).
std::int64_t rss_at_fork = -1;

// The resident set now, in bytes (0 when it cannot tell).
std::int64_t resident_bytes() {
    // read(), not stdio: every forked worker calls this first, and fopen
    // allocates and links its FILE into stdio's list, pages it would copy.
    int fd = ::open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char buf[128];
    ssize_t n = ::read(fd, buf, sizeof buf - 1);
    ::close(fd);
    if (n <= 0) return 0;
    buf[n] = '\0';
    char* end = nullptr;
    std::strtol(buf, &end, 10);  // the size; the resident set follows
    const char* second = end;
    long resident = std::strtol(second, &end, 10);
    return end != second ? static_cast<std::int64_t>(resident) * ::sysconf(_SC_PAGESIZE) : 0;
}

// The worker's RSS peak, or that of the largest program it ran and waited
// for (a command task's), whichever is larger; in a forked worker, what
// its resident set grew by since the fork (what it shares with the fork
// server is not its own).
std::int64_t peak_rss_bytes() {
    rusage self{}, children{};
    getrusage(RUSAGE_SELF, &self);
    getrusage(RUSAGE_CHILDREN, &children);
    std::int64_t own = static_cast<std::int64_t>(self.ru_maxrss) * 1024;
    std::int64_t programs = static_cast<std::int64_t>(children.ru_maxrss) * 1024;
    if (rss_at_fork >= 0) own -= rss_at_fork;
    return std::max<std::int64_t>({own, programs, 0});
}

// Sends m; false when the host is gone.
bool send(const msg::FromWorker& m) {
    check_channel();
    try {
        return ch::send(channel_fd, msg::type_of(m), msg::encode(m));
    } catch (const std::system_error& e) {
        channel_lost(std::string("cannot be written to: ") + e.what());
    }
}

void send_or_exit(const msg::FromWorker& m) {
    // The host is gone: nobody is left to tell, and nothing to finish.
    if (!send(m)) std::_Exit(0);
}

[[noreturn]] void fail_and_exit(msg::Failed::Stage stage, msg::Failed::Kind kind, const std::string& message) {
    std::fprintf(stderr, "fedflow-worker: %s: %s\n", msg::to_string(stage), message.c_str());
    std::fflush(stderr);
    send(msg::Failed{stage, kind, message, std::nullopt, std::nullopt});
    std::_Exit(2);
}

// The plugin cannot be used: every way open_plugin can fail.
[[noreturn]] void bad_plugin(const std::string& message) {
    fail_and_exit(msg::Failed::Stage::start, msg::Failed::Kind::bad_plugin, message);
}

msg::Failed::Kind kind_of(std::int32_t code) {
    return code == FEDFLOW_OUT_OF_MEMORY ? msg::Failed::Kind::oom : msg::Failed::Kind::exception;
}

// A stage's failure, with how long it ran and the memory peak.
msg::Failed stage_failed(msg::Failed::Stage stage, std::int32_t code, std::string message, std::int64_t ms) {
    return msg::Failed{stage, kind_of(code), std::move(message), ms, peak_rss_bytes()};
}

std::string message_of(const fedflow_status& st) {
    std::string m(st.message, strnlen(st.message, sizeof st.message));
    if (m.empty()) m = "failed with status " + std::to_string(st.code) + " and no message";
    return m;
}

struct BadPlugin : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Loads the library and finds the plugin named `name`; throws BadPlugin
// for every way this can go wrong.
const fedflow_plugin* find_plugin(boost::dll::shared_library& lib, const std::string& path, const std::string& name) {
    try {
        // Lazy binding: resolving every import of a C++ plugin up front
        // (RTLD_NOW) cost a quarter of a no-op task's CPU time. A function
        // the plugin imports but no library provides then ends the worker
        // when first called (exit code 127, the loader's message in
        // stderr.log) instead of here; plugins built with
        // -Wl,--no-undefined against the libraries they run with have none.
        lib.load(path, boost::dll::load_mode::rtld_lazy | boost::dll::load_mode::rtld_local);
    } catch (const std::exception& e) {
        throw BadPlugin("cannot load " + path + ": " + e.what());
    }
    if (!lib.has(FEDFLOW_PLUGIN_ENUM_SYMBOL))
        throw BadPlugin(path + " does not export " FEDFLOW_PLUGIN_ENUM_SYMBOL " (not built with FEDFLOW_TASK?)");
    auto enumerate = lib.get<std::remove_pointer_t<fedflow_plugin_enum_fn>>(FEDFLOW_PLUGIN_ENUM_SYMBOL);
    for (std::uint32_t i = 0; i < 1024; ++i) {
        const fedflow_plugin* p = nullptr;
        std::int32_t r = enumerate(&p, i);
        if (r == 0) break;
        if (r < 0 || p == nullptr)
            throw BadPlugin(path + ": " FEDFLOW_PLUGIN_ENUM_SYMBOL " failed with " + std::to_string(r));
        if (p->magic != FEDFLOW_ABI_MAGIC)
            throw BadPlugin(path + ": plugin " + std::to_string(i) + " has a bad magic number");
        if (p->abi_version != FEDFLOW_ABI_VERSION)
            throw BadPlugin(path + ": plugin ABI version " + std::to_string(p->abi_version) +
                            ", this worker supports version " + std::to_string(FEDFLOW_ABI_VERSION));
        // ABI 1's first tables end before `features`.
        if (p->size < offsetof(fedflow_plugin, features) || p->name == nullptr || p->create == nullptr ||
            p->destroy == nullptr || p->load == nullptr || p->train == nullptr)
            throw BadPlugin(path + ": incomplete plugin table");
        if (name == p->name) return p;
    }
    throw BadPlugin(path + " provides no plugin named '" + name + "'");
}

// The plugin a fork server loaded before it forked this process (and its
// hooks), or none in a worker that was exec'd.
boost::dll::shared_library preloaded_lib;
const fedflow_plugin* preloaded = nullptr;
std::string preloaded_path, preloaded_name;
using ForkHook = void (*)(int);
ForkHook plugin_fork_hook = nullptr;

// Every way open_plugin can fail ends the process with a `failed` message
// of kind bad_plugin.
const fedflow_plugin* open_plugin(boost::dll::shared_library& lib, const std::string& path, const std::string& name) {
    if (preloaded != nullptr) {
        if (path == preloaded_path && name == preloaded_name) return preloaded;
        bad_plugin("the fork server holds plugin '" + preloaded_name + "' of " + preloaded_path + ", not '" + name +
                   "' of " + path);
    }
    try {
        return find_plugin(lib, path, name);
    } catch (const BadPlugin& e) {
        bad_plugin(e.what());
    }
}

}  // namespace

// Failpoints result-truncate, result-corrupt, bytes-corrupt and
// bytes-truncate @GROUP/TASK (common/failpoints.hpp), for the tests of the
// host's checks and of the readers': damage that task's sealed result the
// way a dying or misbehaving process could, after its checksums were taken.
static void damage_result(const std::string& task, const std::string& prefix, std::uint64_t size) {
    auto path = [](const std::string& name) { return "/dev/shm/" + name; };
    if (fedflow::failpoints::armed("result-truncate", task))
        (void)::truncate(path(fedflow::shm::result_name(prefix)).c_str(),
                         static_cast<off_t>(fedflow::integrity::result_header_size + size / 2));
    auto flip = [&](const std::string& name, off_t at) {
        int fd = ::open(path(name).c_str(), O_RDWR | O_CLOEXEC);
        if (fd < 0) return;
        unsigned char c = 0;
        if (::pread(fd, &c, 1, at) == 1) {
            c ^= 0x5a;
            (void)::pwrite(fd, &c, 1, at);
        }
        ::close(fd);
    };
    if (fedflow::failpoints::armed("result-corrupt", task))
        flip(fedflow::shm::result_name(prefix), static_cast<off_t>(fedflow::integrity::result_header_size + size - 1));
    if (fedflow::failpoints::armed("bytes-corrupt", task)) flip(fedflow::shm::bytes_name(prefix, 0), 0);
    if (fedflow::failpoints::armed("bytes-truncate", task))
        (void)::truncate(path(fedflow::shm::bytes_name(prefix, 0)).c_str(), 1000);
}

namespace {

// start_error: why the task cannot start (a forked worker that could not
// enter its cgroup), told in answer to the config; "" to run it.
int run_worker(long host_pid, long nofile, const std::string& contain, const std::string& start_error = {});

// The fork server's side of the plugin (fork_server.hpp): load it once, and
// let it prepare for each fork (an embedded interpreter must).
std::string preload_plugin(const fedflow::Dict& preload) {
    auto text = [&](const char* key) {
        const fedflow::Value* v = preload.find(key);
        return v != nullptr && v->is<std::string>() ? v->as<std::string>() : std::string();
    };
    preloaded_path = text("plugin_path");
    preloaded_name = text("plugin_name");
    try {
        preloaded = find_plugin(preloaded_lib, preloaded_path, preloaded_name);
    } catch (const BadPlugin& e) {
        return e.what();
    }
    // A plugin may prepare more than its library (the python plugin starts
    // its interpreter and imports the plan's `preload` modules).
    using PreloadFn = int (*)(const std::uint8_t*, std::size_t, char*, std::size_t);
    if (preloaded_lib.has("fedflow_fork_server_preload")) {
        auto fn = preloaded_lib.get<std::remove_pointer_t<PreloadFn>>("fedflow_fork_server_preload");
        std::string doc = fedflow::wire::encode(fedflow::Value(preload));
        char error[1024] = {};
        if (fn(reinterpret_cast<const std::uint8_t*>(doc.data()), doc.size(), error, sizeof error) != 0)
            return error[0] != '\0' ? std::string(error, strnlen(error, sizeof error)) : "the plugin's preload failed";
    }
    if (preloaded_lib.has("fedflow_fork_server_fork"))
        plugin_fork_hook = preloaded_lib.get<std::remove_pointer_t<ForkHook>>("fedflow_fork_server_fork");
    // Each worker's crash::install would load it otherwise.
    fedflow::worker::crash::load_unwinder();
    return {};
}

void fork_hook(int phase) {
    if (plugin_fork_hook != nullptr) plugin_fork_hook(phase);
}

// A kept worker's next round: its cwd and its stdout.log and stderr.log
// are the new task folder's (made by the host), as an exec'd worker's are.
void start_round_files(const std::string& workdir) {
    if (::chdir(workdir.c_str()) != 0) {
        std::fprintf(stderr, "fedflow-worker: cannot enter %s: %s\n", workdir.c_str(), std::strerror(errno));
        return;
    }
    for (auto [fd, name] : {std::pair{1, "stdout.log"}, std::pair{2, "stderr.log"}}) {
        int f = ::open(name, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (f < 0) continue;
        ::dup2(f, fd);
        ::close(f);
    }
}

int forked_worker(const fedflow::worker::fork_server::Child& child) {
    rss_at_fork = resident_bytes();
    return run_worker(child.parent_pid, child.nofile, child.contain, child.start_error);
}

}  // namespace

int main(int argc, char** argv) {
    long host_pid = 0;
    long nofile = 0;
    int fork_server_fd = -1;
    std::string contain;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--channel" && i + 1 < argc) {
            channel_fd = std::atoi(argv[++i]);
        } else if (a == "--host-pid" && i + 1 < argc) {
            host_pid = std::atol(argv[++i]);
        } else if (a == "--nofile" && i + 1 < argc) {
            nofile = std::atol(argv[++i]);
        } else if (a == "--contain" && i + 1 < argc) {
            contain = argv[++i];
        } else if (a == "--fork-server" && i + 1 < argc) {
            fork_server_fd = std::atoi(argv[++i]);
        } else if (a == "--bind-now-added") {
            // The host set LD_BIND_NOW for the fork server alone
            // (exec/fork_server.cpp); the loader has read it.
            ::unsetenv("LD_BIND_NOW");
        } else if (a == "--guard" && i + 1 < argc) {
            return fedflow::worker::shim::guard(argv[i + 1]);
        } else if (a == "--probe-pidns") {
            fedflow::worker::shim::probe_pidns();
        } else if (a == "--version") {
            std::printf("fedflow-worker (ABI %u)\n", FEDFLOW_ABI_VERSION);
            return 0;
        } else {
            std::fprintf(stderr, "fedflow-worker: started by fedflow-host, not by hand "
                                 "(usage: fedflow-worker --channel FD --host-pid PID [--nofile N] "
                                 "[--contain pidns|subreaper])\n");
            return 2;
        }
    }
    if (fork_server_fd >= 0)
        fedflow::worker::fork_server::run(fork_server_fd, host_pid, {&preload_plugin, &fork_hook, &forked_worker});
    return run_worker(host_pid, nofile, contain);
}

namespace {

int run_worker(long host_pid, long nofile, const std::string& contain, const std::string& start_error) {
    // The host raised its own limit on open files; the task gets the one
    // the host was started with.
    if (nofile > 0) {
        rlimit rl{};
        getrlimit(RLIMIT_NOFILE, &rl);
        rl.rlim_cur = std::min<rlim_t>(static_cast<rlim_t>(nofile), rl.rlim_max);
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    // With a shim, this process becomes it, and the worker goes on in a child.
    if (!contain.empty()) host_pid = fedflow::worker::shim::run(contain, channel_fd, host_pid);

    // A crash leaves the signal, the stage and a backtrace in stderr.log.
    fedflow::worker::crash::install();

    // Die with the host (or the shim), and catch one that died before we
    // armed this.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (host_pid != 0 && getppid() != host_pid) return 0;

    // Programs the plugin starts must not inherit the channel: the host
    // would not see this process's end while they hold it open.
    fcntl(channel_fd, F_SETFD, FD_CLOEXEC);

    // Line-buffered: what a task printed before it crashed is in its log.
    std::setvbuf(stdout, nullptr, _IOLBF, 0);

    if (::fstat(channel_fd, &channel_stat) != 0) {
        std::fprintf(stderr, "fedflow-worker: no control channel on fd %d\n", channel_fd);
        return 2;
    }

    // The next message from the host; nullopt when the host closed the
    // channel. A message the worker cannot follow ends it.
    auto receive = []() -> std::optional<msg::FromHost> {
        std::optional<ch::Message> m;
        try {
            m = ch::receive(channel_fd);
            if (!m) return std::nullopt;
            return msg::decode_from_host(*m);
        } catch (const ch::ProtocolError& e) {
            fail_and_exit(msg::Failed::Stage::channel, msg::Failed::Kind::protocol, e.what());
        } catch (const std::system_error& e) {
            channel_lost(std::string("cannot be read: ") + e.what());
        }
    };

    std::optional<msg::FromHost> first = receive();
    if (!first) return 0;
    const auto* cfg = std::get_if<msg::Config>(&*first);
    if (cfg == nullptr)
        fail_and_exit(msg::Failed::Stage::start, msg::Failed::Kind::protocol,
                      std::string("the first message is '") + ch::type_name(msg::type_of(*first)) + "', not 'config'");

    if (!start_error.empty()) fail_and_exit(msg::Failed::Stage::start, msg::Failed::Kind::exception, start_error);
    const std::string task_name = cfg->group + "/" + cfg->task_id;
    fedflow::worker::crash::set_context("start", task_name);
    boost::dll::shared_library lib;
    const fedflow_plugin* plugin = open_plugin(lib, cfg->plugin_path, cfg->plugin_name);
    const bool input_files = plugin->size >= offsetof(fedflow_plugin, features) + sizeof plugin->features &&
                             (plugin->features & FEDFLOW_FEATURE_INPUT_FILES) != 0;

    // What the context points at, for the current round: a kept worker
    // (keep-loaded) takes a new one with each round's config.
    msg::Config current = *cfg;
    std::string params_doc, about_doc;
    std::optional<fedflow::worker::Inputs> inputs;
    fedflow::worker::Services services(current.shm_prefix, current.result_limit);
    fedflow_context ctx{};
    // Fills ctx from `current`; throws when the inputs cannot be opened.
    auto set_round = [&] {
        params_doc = fedflow::wire::encode(fedflow::Value(current.params));
        about_doc.clear();
        if (!current.inputs_about.empty()) about_doc = fedflow::wire::encode(fedflow::Value(current.inputs_about));
        // The last round's inputs are unmapped: what a kept task took from
        // them and keeps must be a copy (docs/scheduling.md, "Kept clients").
        inputs.reset();
        ctx = fedflow_context{};
        ctx.size = sizeof ctx;
        ctx.round = current.round;
        ctx.task_id = current.task_id.c_str();
        ctx.group = current.group.c_str();
        ctx.workdir = current.workdir.c_str();
        ctx.plan_dir = current.plan_dir.c_str();
        ctx.params = {reinterpret_cast<const std::uint8_t*>(params_doc.data()), params_doc.size()};
        if (!about_doc.empty())
            ctx.inputs_about = {reinterpret_cast<const std::uint8_t*>(about_doc.data()), about_doc.size()};
        ctx.host = services.table();
        if (current.inputs_segment.empty()) return;
        try {
            inputs.emplace(current.inputs_segment, current.verify_inputs);
            ctx.inputs = input_files ? inputs->by_reference() : inputs->inline_copy();
        } catch (const std::exception& e) {
            throw std::runtime_error(std::string("cannot open the inputs: ") + e.what());
        }
        if (input_files) {
            ctx.input_files = inputs->files();
            ctx.input_file_count = inputs->file_count();
        }
    };
    try {
        set_round();
    } catch (const std::exception& e) {
        fail_and_exit(msg::Failed::Stage::start, msg::Failed::Kind::exception, e.what());
    }
    // Why the next round of a kept worker cannot train, told in answer to
    // its train (a config has no answer of its own).
    std::string round_error;
    // Whether the last load ended well: a Train sent ahead of its answer
    // (messages.hpp) runs only then.
    bool loaded_well = false;

    fedflow_status st{};
    void* task = plugin->create(&st);
    if (task == nullptr)
        fail_and_exit(msg::Failed::Stage::start, kind_of(st.code), "creating the task: " + message_of(st));
    // Kept across rounds only when the plugin reads each call's context
    // afresh (FEDFLOW_FEATURE_NEXT_ROUND); protocol 1 tells the host not to.
    const bool next_round = plugin->size >= offsetof(fedflow_plugin, features) + sizeof plugin->features &&
                            (plugin->features & FEDFLOW_FEATURE_NEXT_ROUND) != 0;
    send_or_exit(msg::Ready{plugin->name, plugin->abi_version, next_round ? msg::worker_protocol : 1u});

    for (;;) {
        std::optional<msg::FromHost> m = receive();
        if (!m || std::holds_alternative<msg::Exit>(*m)) break;

        if (const auto* next = std::get_if<msg::Config>(&*m)) {
            // keep-loaded: the same task's next round, in this process.
            if (next->plugin_path != current.plugin_path || next->plugin_name != current.plugin_name ||
                next->task_id != current.task_id || next->group != current.group)
                fail_and_exit(msg::Failed::Stage::channel, msg::Failed::Kind::protocol,
                              "a next round's config names another task or plugin (" + next->group + "/" +
                                  next->task_id + " of " + next->plugin_name + ")");
            current = *next;
            round_error.clear();
            std::fflush(stdout);
            std::fflush(stderr);
            start_round_files(current.workdir);
            services.next_round(current.shm_prefix);
            try {
                set_round();
            } catch (const std::exception& e) {
                round_error = e.what();
            }
        } else if (std::holds_alternative<msg::Load>(*m)) {
            st = fedflow_status{};
            fedflow::worker::crash::set_context("load", task_name);
            std::int64_t t0 = fedflow::clock::monotonic_ns();
            std::int32_t rc = plugin->load(task, &ctx, &st);
            std::fflush(stdout);
            std::int64_t ms = (fedflow::clock::monotonic_ns() - t0) / 1000000;
            loaded_well = rc == FEDFLOW_OK;
            if (rc != FEDFLOW_OK) {
                send_or_exit(stage_failed(msg::Failed::Stage::load, rc, message_of(st), ms));
                continue;
            }
            msg::Loaded loaded;
            loaded.ms = ms;
            loaded.peak_memory = peak_rss_bytes();
            if (services.memory_estimate() >= 0) loaded.memory_estimate = services.memory_estimate();
            if (services.gpu_memory_estimate() >= 0) loaded.gpu_memory_estimate = services.gpu_memory_estimate();
            send_or_exit(loaded);
        } else if (const auto* train = std::get_if<msg::Train>(&*m)) {
            if (train->ahead && !loaded_well) continue;  // the host expects no answer
            const std::string& device = train->device;
            if (!round_error.empty()) {
                send_or_exit(msg::Failed{msg::Failed::Stage::train, msg::Failed::Kind::exception, round_error,
                                         std::nullopt, std::nullopt});
                continue;
            }
            // A simulated GPU ("sim:N") is no CUDA device: the task declares
            // its memory there instead (Services::start_train).
            try {
                services.start_train(device);
            } catch (const std::exception& e) {
                send_or_exit(msg::Failed{msg::Failed::Stage::train, msg::Failed::Kind::exception, e.what(),
                                         std::nullopt, std::nullopt});
                continue;
            }
#ifdef FEDFLOW_WITH_CUDA
            if (device.rfind("cuda:", 0) == 0) {
                cudaError_t err = cudaSetDevice(std::atoi(device.c_str() + 5));
                if (err != cudaSuccess) {
                    send_or_exit(msg::Failed{msg::Failed::Stage::train, msg::Failed::Kind::exception,
                                             "cudaSetDevice(" + device + "): " + cudaGetErrorString(err), std::nullopt,
                                             std::nullopt});
                    continue;
                }
            }
#endif
            services.reset_result();
            st = fedflow_status{};
            fedflow::worker::crash::set_context("train", task_name);
            std::int64_t t0 = fedflow::clock::monotonic_ns();
            std::int32_t rc = plugin->train(task, &ctx, device.c_str(), &st);
            std::int64_t t1 = fedflow::clock::monotonic_ns();
            std::fflush(stdout);
            if (rc != FEDFLOW_OK) {
                services.train_failed();
                send_or_exit(stage_failed(msg::Failed::Stage::train, rc, message_of(st), (t1 - t0) / 1000000));
                continue;
            }
            msg::Result result;
            try {
                result.size = services.finish_result();
            } catch (const std::exception& e) {
                send_or_exit(msg::Failed{msg::Failed::Stage::train, msg::Failed::Kind::oom, e.what(), std::nullopt,
                                         std::nullopt});
                continue;
            }
            result.buffers = services.buffers();
            result.ms = (t1 - t0) / 1000000;
            result.train_end_ns = t1;
            result.peak_memory = peak_rss_bytes();
            damage_result(task_name, current.shm_prefix, result.size);
            send_or_exit(result);
            if (train->exit_after) break;  // the host sends no Exit
        } else {
            fail_and_exit(msg::Failed::Stage::channel, msg::Failed::Kind::protocol,
                          std::string("unexpected '") + ch::type_name(msg::type_of(*m)) + "' message");
        }
    }
    fedflow::worker::crash::set_context("exit", task_name);
    plugin->destroy(task);
    std::fflush(stdout);
    std::fflush(stderr);
    // _exit, not exit: the plugin's static destructors (libtorch, CUDA) are
    // known to crash at teardown, and the task's work is already delivered.
    std::_Exit(0);
}

}  // namespace
