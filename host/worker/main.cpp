// fedflow-worker: runs one task of one plugin, as the host tells it.
//
// Started by fedflow-host (posix_spawn, never a fork of the host) with its
// cwd set to the task's workdir, stdin from /dev/null, stdout and stderr on
// the task's stdout.log and stderr.log, and the control channel on fd 3:
//
//   fedflow-worker --channel 3 --host-pid PID
//
// It receives `config`, loads and checks the plugin, answers `ready`, then
// runs `load` and `train` when told, and exits on `exit` or when the host
// goes away. Plugin code runs only here, never in the host.
#include "common/channel.hpp"
#include "common/integrity.hpp"
#include "common/clock.hpp"
#include "common/shm.hpp"
#include "worker/crash_report.hpp"
#include "worker/services.hpp"
#include "worker/shim.hpp"

#include <fedflow/abi.h>
#include <fedflow/detail/wire.hpp>

#include <boost/dll/shared_library.hpp>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#ifdef FEDFLOW_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace ch = fedflow::channel;
using fedflow::Dict;
using fedflow::Value;

namespace {

int channel_fd = 3;

// The worker's RSS peak, or that of the largest program it ran and waited
// for (a command task's), whichever is larger.
std::int64_t peak_rss_bytes() {
    rusage self{}, children{};
    getrusage(RUSAGE_SELF, &self);
    getrusage(RUSAGE_CHILDREN, &children);
    return static_cast<std::int64_t>(std::max(self.ru_maxrss, children.ru_maxrss)) * 1024;
}

void send_or_exit(ch::Type type, const Dict& body) {
    // The host is gone: nobody is left to tell, and nothing to finish.
    if (!ch::send(channel_fd, type, body)) std::_Exit(0);
}

[[noreturn]] void fail_and_exit(const std::string& stage, const std::string& kind, const std::string& message) {
    std::fprintf(stderr, "fedflow-worker: %s: %s\n", stage.c_str(), message.c_str());
    std::fflush(stderr);
    ch::send(channel_fd, ch::Type::failed, Dict{{"stage", stage}, {"kind", kind}, {"message", message}});
    std::_Exit(2);
}

const char* kind_of(std::int32_t code) {
    return code == FEDFLOW_OUT_OF_MEMORY ? "oom" : "exception";
}

std::string message_of(const fedflow_status& st) {
    std::string m(st.message, strnlen(st.message, sizeof st.message));
    if (m.empty()) m = "failed with status " + std::to_string(st.code) + " and no message";
    return m;
}

// Loads the library and finds the plugin named `name`; every way this can
// go wrong ends the process with a `failed` message of kind bad_plugin.
const fedflow_plugin* open_plugin(boost::dll::shared_library& lib, const std::string& path, const std::string& name) {
    try {
        // Lazy binding: resolving every import of a C++ plugin up front
        // (RTLD_NOW) cost a quarter of a no-op task's CPU time. A function
        // the plugin imports but no library provides then ends the worker
        // when first called (exit code 127, the loader's message in
        // stderr.log) instead of here; plugins built with
        // -Wl,--no-undefined against the libraries they run with have none.
        lib.load(path, boost::dll::load_mode::rtld_lazy | boost::dll::load_mode::rtld_local);
    } catch (const std::exception& e) {
        fail_and_exit("start", "bad_plugin", "cannot load " + path + ": " + e.what());
    }
    if (!lib.has(FEDFLOW_PLUGIN_ENUM_SYMBOL))
        fail_and_exit("start", "bad_plugin",
                      path + " does not export " FEDFLOW_PLUGIN_ENUM_SYMBOL " (not built with FEDFLOW_TASK?)");
    auto enumerate = lib.get<std::remove_pointer_t<fedflow_plugin_enum_fn>>(FEDFLOW_PLUGIN_ENUM_SYMBOL);
    for (std::uint32_t i = 0; i < 1024; ++i) {
        const fedflow_plugin* p = nullptr;
        std::int32_t r = enumerate(&p, i);
        if (r == 0) break;
        if (r < 0 || p == nullptr)
            fail_and_exit("start", "bad_plugin", path + ": " FEDFLOW_PLUGIN_ENUM_SYMBOL " failed with " + std::to_string(r));
        if (p->magic != FEDFLOW_ABI_MAGIC)
            fail_and_exit("start", "bad_plugin", path + ": plugin " + std::to_string(i) + " has a bad magic number");
        if (p->abi_version != FEDFLOW_ABI_VERSION)
            fail_and_exit("start", "bad_plugin",
                          path + ": plugin ABI version " + std::to_string(p->abi_version) +
                              ", this worker supports version " + std::to_string(FEDFLOW_ABI_VERSION));
        if (p->size < sizeof(fedflow_plugin) || p->name == nullptr || p->create == nullptr ||
            p->destroy == nullptr || p->load == nullptr || p->train == nullptr)
            fail_and_exit("start", "bad_plugin", path + ": incomplete plugin table");
        if (name == p->name) return p;
    }
    fail_and_exit("start", "bad_plugin", path + " provides no plugin named '" + name + "'");
}

std::string str(const Dict& d, const char* key) { return d.at(key).as<std::string>(); }

}  // namespace

// Failpoints, for the tests of the host's checks (and nothing else):
// FEDFLOW_FAILPOINTS="POINT@GROUP/TASK" with POINT one of result-corrupt,
// result-truncate, bytes-corrupt damages that task's sealed result the way
// a dying or misbehaving process could, after its checksums were taken.
static void damage_result(const std::string& task, const std::string& prefix, std::uint64_t size) {
    const char* fp = std::getenv("FEDFLOW_FAILPOINTS");
    if (fp == nullptr || *fp == '\0') return;
    std::string spec = fp;
    std::size_t at = spec.find('@');
    if (at == std::string::npos || spec.substr(at + 1) != task) return;
    std::string points = spec.substr(0, at);
    auto path = [](const std::string& name) { return "/dev/shm/" + name; };
    if (points.find("result-truncate") != std::string::npos)
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
    if (points.find("result-corrupt") != std::string::npos)
        flip(fedflow::shm::result_name(prefix), static_cast<off_t>(fedflow::integrity::result_header_size + size - 1));
    if (points.find("bytes-corrupt") != std::string::npos) flip(fedflow::shm::bytes_name(prefix, 0), 0);
}

int main(int argc, char** argv) {
    long host_pid = 0;
    long nofile = 0;
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
        } else if (a == "--guard" && i + 1 < argc) {
            return fedflow::worker::shim::guard(argv[i + 1]);
        } else if (a == "--probe-pidns") {
            fedflow::worker::shim::probe_pidns();
        } else if (a == "--version") {
            std::printf("fedflow-worker (ABI %u)\n", FEDFLOW_ABI_VERSION);
            return 0;
        } else {
            std::fprintf(stderr,
                         "fedflow-worker: started by fedflow-host, not by hand "
                         "(usage: fedflow-worker --channel FD --host-pid PID [--nofile N] "
                         "[--contain pidns|subreaper])\n");
            return 2;
        }
    }
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

    std::optional<ch::Message> config;
    try {
        config = ch::receive(channel_fd);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "fedflow-worker: %s\n", e.what());
        return 2;
    }
    if (!config) return 0;
    if (config->type != ch::Type::config) fail_and_exit("start", "protocol", "first message is not config");
    const Dict& cfg = config->body;

    std::string task_id, group, workdir, plan_dir, plugin_path, plugin_name, prefix, params_doc, about_doc;
    std::uint32_t round = 0;
    std::uint64_t result_limit = 0;
    std::optional<fedflow::shm::Segment> inputs_segment;
    try {
        task_id = str(cfg, "task_id");
        group = str(cfg, "group");
        workdir = str(cfg, "workdir");
        plan_dir = str(cfg, "plan_dir");
        plugin_path = str(cfg, "plugin_path");
        plugin_name = str(cfg, "plugin_name");
        prefix = str(cfg, "shm_prefix");
        round = static_cast<std::uint32_t>(cfg.at("round").as<std::int64_t>());
        result_limit = static_cast<std::uint64_t>(cfg.at("result_limit").as<std::int64_t>());
        params_doc = fedflow::wire::encode(cfg.at("params"));
        if (const Value* about = cfg.find("inputs_about"); about != nullptr && about->is<Dict>() && !about->as<Dict>().empty())
            about_doc = fedflow::wire::encode(*about);
        if (const Value* in = cfg.find("inputs_segment"); in != nullptr && !in->as<std::string>().empty())
            inputs_segment = fedflow::shm::Segment::open_read_only(in->as<std::string>());
    } catch (const std::exception& e) {
        fail_and_exit("start", "protocol", std::string("bad config: ") + e.what());
    }

    const std::string task_name = group + "/" + task_id;
    fedflow::worker::crash::set_context("start", task_name);
    boost::dll::shared_library lib;
    const fedflow_plugin* plugin = open_plugin(lib, plugin_path, plugin_name);

    fedflow::worker::Services services(prefix, result_limit);
    fedflow_context ctx{};
    ctx.size = sizeof ctx;
    ctx.round = round;
    ctx.task_id = task_id.c_str();
    ctx.group = group.c_str();
    ctx.workdir = workdir.c_str();
    ctx.plan_dir = plan_dir.c_str();
    ctx.params = {reinterpret_cast<const std::uint8_t*>(params_doc.data()), params_doc.size()};
    if (inputs_segment) ctx.inputs = {inputs_segment->data(), inputs_segment->size()};
    if (!about_doc.empty()) ctx.inputs_about = {reinterpret_cast<const std::uint8_t*>(about_doc.data()), about_doc.size()};
    ctx.host = services.table();

    fedflow_status st{};
    void* task = plugin->create(&st);
    if (task == nullptr) fail_and_exit("start", kind_of(st.code), "creating the task: " + message_of(st));
    send_or_exit(ch::Type::ready, Dict{{"plugin", plugin->name}, {"abi_version", std::int64_t{plugin->abi_version}}});

    for (;;) {
        std::optional<ch::Message> m;
        try {
            m = ch::receive(channel_fd);
        } catch (const std::exception& e) {
            fail_and_exit("channel", "protocol", e.what());
        }
        if (!m || m->type == ch::Type::exit) break;

        if (m->type == ch::Type::load) {
            st = fedflow_status{};
            fedflow::worker::crash::set_context("load", task_name);
            std::int64_t t0 = fedflow::clock::monotonic_ns();
            std::int32_t rc = plugin->load(task, &ctx, &st);
            std::fflush(stdout);
            std::int64_t ms = (fedflow::clock::monotonic_ns() - t0) / 1000000;
            if (rc != FEDFLOW_OK) {
                send_or_exit(ch::Type::failed, Dict{{"stage", "load"}, {"kind", kind_of(rc)}, {"message", message_of(st)},
                                                    {"ms", ms}, {"peak_memory", peak_rss_bytes()}});
                continue;
            }
            Dict loaded{{"ms", ms}, {"peak_memory", peak_rss_bytes()}};
            if (services.memory_estimate() >= 0) loaded["memory_estimate"] = services.memory_estimate();
            if (services.gpu_memory_estimate() >= 0) loaded["gpu_memory_estimate"] = services.gpu_memory_estimate();
            send_or_exit(ch::Type::loaded, loaded);
        } else if (m->type == ch::Type::train) {
            std::string device;
            try {
                device = str(m->body, "device");
            } catch (const std::exception& e) {
                fail_and_exit("train", "protocol", e.what());
            }
            // A simulated GPU ("sim:N") is no CUDA device: the task declares
            // its memory there instead (Services::start_train).
            try {
                services.start_train(device);
            } catch (const std::exception& e) {
                send_or_exit(ch::Type::failed, Dict{{"stage", "train"}, {"kind", "exception"}, {"message", e.what()}});
                continue;
            }
#ifdef FEDFLOW_WITH_CUDA
            if (device.rfind("cuda:", 0) == 0) {
                cudaError_t err = cudaSetDevice(std::atoi(device.c_str() + 5));
                if (err != cudaSuccess) {
                    send_or_exit(ch::Type::failed,
                                 Dict{{"stage", "train"}, {"kind", "exception"},
                                      {"message", "cudaSetDevice(" + device + "): " + cudaGetErrorString(err)}});
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
                send_or_exit(ch::Type::failed, Dict{{"stage", "train"}, {"kind", kind_of(rc)}, {"message", message_of(st)},
                                                    {"ms", (t1 - t0) / 1000000}, {"peak_memory", peak_rss_bytes()}});
                continue;
            }
            std::uint64_t size = 0;
            try {
                size = services.finish_result();
            } catch (const std::exception& e) {
                send_or_exit(ch::Type::failed, Dict{{"stage", "train"}, {"kind", "oom"}, {"message", e.what()}});
                continue;
            }
            fedflow::List sizes = services.bytes_sizes();
            fedflow::List checksums = services.bytes_checksums();
            damage_result(task_name, prefix, size);
            send_or_exit(ch::Type::result, Dict{{"size", std::int64_t(size)},
                                                {"bytes", std::int64_t(services.bytes_count())},
                                                {"bytes_sizes", std::move(sizes)},
                                                {"bytes_checksums", std::move(checksums)},
                                                {"ms", (t1 - t0) / 1000000},
                                                {"train_end_ns", t1},
                                                {"peak_memory", peak_rss_bytes()}});
        } else {
            fail_and_exit("channel", "protocol", std::string("unexpected message ") + ch::type_name(m->type));
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
