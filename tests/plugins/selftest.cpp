// The fault-injection plugins do what they claim, checked without the host:
// each runs in a forked child (dlopen, create, load, train with a fake host)
// and the parent classifies how the child ended. When an integration test
// fails, this tells a host bug from a broken fault plugin.
#include <doctest/doctest.h>

#include <fedflow/abi.h>
#include <fedflow/detail/wire.hpp>

#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

using fedflow::Bytes;
using fedflow::Dict;
using fedflow::Value;
namespace wire = fedflow::wire;

namespace {

std::string plugin_path(const std::string& name) {
    const char* dir = std::getenv("FEDFLOW_TEST_PLUGIN_DIR");
    REQUIRE(dir != nullptr);
    return std::string(dir) + "/" + name + ".so";
}

// What the child reports through its pipe: "<stage> <code> <message>", or the
// encoded result after "result ".
struct Ended {
    bool signaled = false;
    int signal = 0;
    int exit_code = -1;
    std::string report;
};

struct Child {
    std::vector<std::unique_ptr<std::vector<std::uint8_t>>> shared;
    std::vector<std::uint8_t> result;
};

void say(int fd, const std::string& s) {
    std::size_t off = 0;
    while (off < s.size()) {
        ssize_t n = write(fd, s.data() + off, s.size() - off);
        if (n <= 0) _exit(100);
        off += static_cast<std::size_t>(n);
    }
}

// Runs in the child: never returns.
[[noreturn]] void run_plugin(int fd, const std::string& path, const Dict& params) {
    void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) {
        say(fd, std::string("dlopen 0 ") + dlerror());
        _exit(0);
    }
    auto fn = reinterpret_cast<fedflow_plugin_enum_fn>(dlsym(lib, FEDFLOW_PLUGIN_ENUM_SYMBOL));
    if (fn == nullptr) {
        say(fd, "dlsym 0 no entry symbol");
        _exit(0);
    }
    const fedflow_plugin* p = nullptr;
    if (fn(&p, 0) != 1 || p == nullptr) {
        say(fd, "enum 0 no plugin");
        _exit(0);
    }
    if (p->abi_version != FEDFLOW_ABI_VERSION) {
        say(fd, "abi " + std::to_string(p->abi_version) + " " + p->name);
        _exit(0);
    }

    static Child child;
    fedflow_host_services services{};
    services.version = FEDFLOW_HOST_SERVICES_VERSION;
    services.size = sizeof services;
    services.host = &child;
    services.log = [](void*, std::int32_t, const char*) {};
    services.bytes_alloc = [](void* h, std::uint64_t size, std::uint64_t* id, fedflow_status*) {
        auto* c = static_cast<Child*>(h);
        c->shared.push_back(std::make_unique<std::vector<std::uint8_t>>(size));
        *id = c->shared.size() - 1;
        return c->shared.back()->data();
    };
    services.result_alloc = [](void* h, std::uint64_t size, fedflow_status*) {
        auto* c = static_cast<Child*>(h);
        c->result.assign(size, 0);
        return c->result.data();
    };
    static std::string params_doc = wire::encode(Value(params));
    static char cwd[4096];
    if (getcwd(cwd, sizeof cwd) == nullptr) _exit(101);
    fedflow_context ctx{};
    ctx.size = sizeof ctx;
    ctx.task_id = "t0";
    ctx.group = "selftest";
    ctx.workdir = cwd;
    ctx.plan_dir = cwd;
    ctx.params = {reinterpret_cast<const std::uint8_t*>(params_doc.data()), params_doc.size()};
    ctx.host = &services;

    fedflow_status st{};
    void* task = p->create(&st);
    if (task == nullptr) {
        say(fd, "create " + std::to_string(st.code) + " " + st.message);
        _exit(0);
    }
    if (std::int32_t rc = p->load(task, &ctx, &st); rc != FEDFLOW_OK) {
        say(fd, "load " + std::to_string(rc) + " " + st.message);
        _exit(0);
    }
    if (std::int32_t rc = p->train(task, &ctx, "cpu", &st); rc != FEDFLOW_OK) {
        say(fd, "train " + std::to_string(rc) + " " + st.message);
        _exit(0);
    }
    // Resolve references here, where the shared buffers live, and send the
    // result with the bytes inline.
    Value v = wire::decode(child.result.data(), child.result.size(), [](std::uint64_t id, std::uint64_t size) {
        if (id >= child.shared.size() || size > child.shared[id]->size()) throw wire::Error("bad ref");
        return Bytes(child.shared[id]->data(), size);
    });
    say(fd, "result " + wire::encode(v));
    p->destroy(task);
    _exit(0);
}

// alarm_after > 0: the child gets SIGALRM after that many seconds (for a
// plugin that never returns). channel >= 0: it becomes the child's fd 3, as
// the control channel is a worker's.
Ended run(const std::string& name, const Dict& params = {}, unsigned alarm_after = 0, int channel = -1) {
    std::fflush(nullptr);
    int fds[2];
    REQUIRE(pipe(fds) == 0);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        // doctest's crash handlers are inherited: the child must die of the
        // signal itself, as it would under fedflow-worker.
        for (int sig : {SIGSEGV, SIGABRT, SIGBUS, SIGILL, SIGFPE, SIGTERM, SIGALRM}) std::signal(sig, SIG_DFL);
        close(fds[0]);
        if (alarm_after > 0) alarm(alarm_after);
        int report = fds[1];
        if (channel >= 0) {
            report = fcntl(fds[1], F_DUPFD, 10);  // out of fd 3's way
            if (report < 0 || dup2(channel, 3) != 3) _exit(102);
            if (channel != 3) close(channel);  // fd 3 is the only copy, as in a worker
        }
        run_plugin(report, plugin_path(name), params);
    }
    close(fds[1]);
    if (channel >= 0) close(channel);
    Ended e;
    char buf[4096];
    ssize_t n;
    while ((n = read(fds[0], buf, sizeof buf)) > 0) e.report.append(buf, static_cast<std::size_t>(n));
    close(fds[0]);
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    if (WIFSIGNALED(status)) {
        e.signaled = true;
        e.signal = WTERMSIG(status);
    } else {
        e.exit_code = WEXITSTATUS(status);
    }
    return e;
}

Dict result_of(const Ended& e) {
    REQUIRE(e.report.rfind("result ", 0) == 0);
    // Decoded bytes are views into the document: they keep it alive.
    auto doc = std::make_shared<std::string>(e.report.substr(7));
    Value v = wire::decode(reinterpret_cast<const std::uint8_t*>(doc->data()), doc->size(), {}, doc);
    REQUIRE(v.is<Dict>());
    return v.as<Dict>();
}

}  // namespace

TEST_CASE("fault_throw_load fails load with its message") {
    Ended e = run("fault_throw_load");
    CHECK(e.exit_code == 0);
    CHECK(e.report == "load 1 injected failure in load");
    CHECK(run("fault_throw_load", Dict{{"fail", false}}).report.rfind("result ", 0) == 0);
}

TEST_CASE("fault_throw_train fails train with its message") {
    Ended e = run("fault_throw_train");
    CHECK(e.report == "train 1 injected failure in train");
}

TEST_CASE("fault_segfault dies of SIGSEGV") {
    Ended e = run("fault_segfault", Dict{{"default_action", true}});
    CHECK(e.signaled);
    CHECK(e.signal == SIGSEGV);
    CHECK(e.report.empty());
    Ended spared = run("fault_segfault", Dict{{"fail", false}});
    CHECK(spared.exit_code == 0);
    CHECK(result_of(spared) == Dict{{"ok", true}});
}

TEST_CASE("fault_abort dies of SIGABRT") {
    Ended e = run("fault_abort");
    CHECK(e.signaled);
    CHECK(e.signal == SIGABRT);
}

TEST_CASE("fault_exit exits with code 3 and no report") {
    Ended e = run("fault_exit");
    CHECK_FALSE(e.signaled);
    CHECK(e.exit_code == 3);
    CHECK(e.report.empty());
}

TEST_CASE("fault_bad_alloc is out of memory") {
    Ended e = run("fault_bad_alloc");
    CHECK(e.report.rfind("train 2 ", 0) == 0);  // FEDFLOW_OUT_OF_MEMORY
}

TEST_CASE("fault_sleep sleeps for param seconds and says when") {
    auto t0 = std::chrono::steady_clock::now();
    Ended e = run("fault_sleep", Dict{{"seconds", 0.2}});
    double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    Dict r = result_of(e);
    CHECK(r.at("slept").as<double>() == 0.2);
    CHECK(r.at("end").as<double>() - r.at("start").as<double>() >= 0.2);
    CHECK(took >= 0.2);
}

TEST_CASE("inputs_probe returns what it was handed") {
    Dict r = result_of(run("inputs_probe", Dict{{"a", 1}}));
    CHECK(r.at("params") == Value(Dict{{"a", 1}}));
    CHECK(r.at("inputs") == Value(Dict{}));
    CHECK(r.at("round").as<std::int64_t>() == 0);
    CHECK(r.at("task_id").as<std::string>() == "t0");
    CHECK(r.at("group").as<std::string>() == "selftest");
    CHECK(r.at("device").as<std::string>() == "cpu");
    CHECK(r.at("cwd") == r.at("workdir"));
    CHECK(r.at("cwd_in_load") == r.at("workdir"));
}

TEST_CASE("big_bytes returns size bytes of i % 251") {
    Dict r = result_of(run("big_bytes", Dict{{"size", 1000}}));
    CHECK(r.at("size").as<std::int64_t>() == 1000);
    const Bytes& b = r.at("data").as<Bytes>();
    REQUIRE(b.size() == 1000);
    bool pattern = true;
    for (std::size_t i = 0; i < b.size(); ++i) pattern = pattern && b.data()[i] == i % 251;
    CHECK(pattern);
}

TEST_CASE("fault_wrong_abi says ABI version 99") { CHECK(run("fault_wrong_abi").report == "abi 99 fault_wrong_abi"); }

TEST_CASE("fault_no_entry has no fedflow_plugin_enum") {
    CHECK(run("fault_no_entry").report == "dlsym 0 no entry symbol");
}

TEST_CASE("fault_table_abi passes discovery but its table says ABI version 99") {
    CHECK(run("fault_table_abi").report == "abi 99 fault_table_abi");
}

TEST_CASE("fault_endless_loop never returns from train, unless spared") {
    Ended e = run("fault_endless_loop", Dict{}, 1);
    CHECK(e.signaled);
    CHECK(e.signal == SIGALRM);
    CHECK(e.report.empty());
    CHECK(result_of(run("fault_endless_loop", Dict{{"fail", false}})) == Dict{{"ok", true}});
}

TEST_CASE("fault_alloc_until_bad_alloc runs out of memory under its own RLIMIT_AS") {
    if (std::getenv("FEDFLOW_SANITIZED") != nullptr) return;  // ASan cannot run under a small RLIMIT_AS
    Ended e = run("fault_alloc_until_bad_alloc", Dict{{"limit", std::int64_t{512} << 20}});
    CHECK(e.report.rfind("train 2 ", 0) == 0);  // FEDFLOW_OUT_OF_MEMORY
    CHECK(e.report.find("bad_alloc") != std::string::npos);
    Ended in_load = run("fault_alloc_until_bad_alloc", Dict{{"limit", std::int64_t{512} << 20}, {"stage", "load"}});
    CHECK(in_load.report.rfind("load 2 ", 0) == 0);
}

TEST_CASE("fault_stdout_flood returns how much it printed") {
    Dict r = result_of(run("fault_stdout_flood", Dict{{"megabytes", 0}}));
    CHECK(r == Dict{{"ok", true}, {"printed", 0}});
}

TEST_CASE("fault_huge_result marks every MiB and the last byte") {
    const std::int64_t size = (std::int64_t{3} << 20) + 1;
    for (bool in_line : {false, true}) {
        CAPTURE(in_line);
        Dict r = result_of(run("fault_huge_result", Dict{{"size", size}, {"inline", in_line}}));
        CHECK(r.at("size").as<std::int64_t>() == size);
        const Bytes& b = r.at("data").as<Bytes>();
        REQUIRE(b.size() == static_cast<std::size_t>(size));
        for (std::size_t i : {std::size_t{0}, std::size_t{1} << 20, std::size_t{3} << 20})
            CHECK(b.data()[i] == i % 251);
        CHECK(b.data()[1] == 0);
    }
}

namespace {

// A socketpair standing for the control channel: the plugin's end becomes
// its fd 3, the host's end reads what it wrote.
struct Channel {
    int plugin = -1;
    int host = -1;
    Channel() {
        int fd[2];
        REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, fd) == 0);
        plugin = fd[0];
        host = fd[1];
    }
    ~Channel() {
        if (plugin >= 0) close(plugin);
        close(host);
    }
    // For run(), which closes it once the child has its copy.
    int give() {
        int fd = plugin;
        plugin = -1;
        return fd;
    }
    // Everything the plugin wrote, up to EOF (once the child is gone).
    std::string written() const {
        std::string out;
        char buf[4096];
        ssize_t n;
        while ((n = read(host, buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
        return out;
    }
};

std::uint32_t u32_at(const std::string& s, std::size_t at) {
    std::uint32_t v = 0;
    REQUIRE(s.size() >= at + 4);
    std::memcpy(&v, s.data() + at, 4);
    return v;
}

Value frame_body(const std::string& f) {
    REQUIRE(f.size() >= 8);
    REQUIRE(u32_at(f, 4) == f.size() - 8);
    return wire::decode(reinterpret_cast<const std::uint8_t*>(f.data()) + 8, f.size() - 8);
}

}  // namespace

TEST_CASE("fault_protocol writes the frame it names to fd 3, then finishes") {
    struct Case {
        const char* send;
        std::uint32_t type;
    };
    for (Case c : {Case{"failed-empty", 13}, Case{"loaded", 11}, Case{"unknown-type", 99}, Case{"config", 1}}) {
        CAPTURE(c.send);
        Channel ch;
        Ended e = run("fault_protocol", Dict{{"send", c.send}}, 0, ch.give());
        CHECK(result_of(e) == Dict{{"ok", true}});
        std::string f = ch.written();
        CHECK(u32_at(f, 0) == c.type);
        Value body = frame_body(f);
        if (std::string(c.send) == "loaded") CHECK(body == Value(Dict{{"ms", 1}, {"peak_memory", 1}}));
        else CHECK(body == Value(Dict{}));
    }
    Channel ch;
    CHECK(result_of(run("fault_protocol", Dict{{"send", "garbage"}, {"stage", "load"}}, 0, ch.give())) ==
          Dict{{"ok", true}});
    std::string g = ch.written();
    CHECK(g.size() == 64);
    CHECK(g.rfind("GARBAGE!", 0) == 0);
    Channel spared;
    CHECK(result_of(run("fault_protocol", Dict{{"fail", false}}, 0, spared.give())) == Dict{{"ok", true}});
    CHECK(spared.written().empty());
}

TEST_CASE("fault_close_channel closes fd 3 in train, then lingers before it returns") {
    using Clock = std::chrono::steady_clock;
    Channel ch;
    Clock::time_point eof{};
    std::thread reader([&] {
        (void)ch.written();
        eof = Clock::now();
    });
    Ended e = run("fault_close_channel", Dict{{"linger", 0.5}}, 0, ch.give());
    auto end = Clock::now();
    reader.join();
    CHECK(result_of(e) == Dict{{"ok", true}});
    // The channel closed before the child lingered half a second.
    CHECK(end - eof >= std::chrono::milliseconds(250));
}
