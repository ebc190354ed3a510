// Out of memory must stay reportable when memory really is exhausted: the
// SDK's handler for std::bad_alloc may not itself allocate, or the second
// bad_alloc escapes a noexcept function and std::terminate kills the worker
// (SIGABRT instead of FEDFLOW_OUT_OF_MEMORY, so the host cannot retry).
//
// This executable replaces the global operator new so that a test can make
// every allocation fail; each scenario runs in a forked child.
#include <doctest/doctest.h>

#include <fedflow/task.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

namespace {
bool heap_exhausted = false;
}

// GCC sees free() of what operator new returned, not that this operator new
// is malloc itself.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
void* operator new(std::size_t n) {
    if (heap_exhausted) throw std::bad_alloc();
    if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace {

bool exhaust_in_load = false;

class Exhausting final : public fedflow::Task {
public:
    void load(fedflow::Context&) override {
        if (exhaust_in_load) {
            heap_exhausted = true;
            throw std::bad_alloc();
        }
    }
    fedflow::Dict train(fedflow::Context&, std::string_view) override {
        heap_exhausted = true;
        throw std::bad_alloc();
    }
};

struct Outcome {
    bool signaled;
    int signal_or_code;
};

// In a child: create, load, train with an exhausted heap. Exit 0 when the
// stage returned FEDFLOW_OUT_OF_MEMORY with a message, 1 otherwise.
Outcome run_child(bool in_load) {
    std::fflush(nullptr);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        for (int sig : {SIGABRT, SIGSEGV}) std::signal(sig, SIG_DFL);  // not doctest's handlers
        exhaust_in_load = in_load;
        static const fedflow_plugin p = fedflow::detail::make_plugin<Exhausting>("exhausting");
        fedflow_host_services services{};
        services.version = FEDFLOW_HOST_SERVICES_VERSION;
        services.size = sizeof services;
        fedflow_context ctx{};
        ctx.size = sizeof ctx;
        ctx.task_id = "0";
        ctx.group = "g";
        ctx.workdir = "/";
        ctx.plan_dir = "/";
        ctx.host = &services;
        fedflow_status st{};
        void* task = p.create(&st);
        if (task == nullptr) _exit(2);
        std::int32_t rc = p.load(task, &ctx, &st);
        if (!in_load && rc == FEDFLOW_OK) rc = p.train(task, &ctx, "cpu", &st);
        heap_exhausted = false;
        _exit(rc == FEDFLOW_OUT_OF_MEMORY && st.code == FEDFLOW_OUT_OF_MEMORY && st.message[0] != '\0' ? 0 : 1);
    }
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    if (WIFSIGNALED(status)) return {true, WTERMSIG(status)};
    return {false, WEXITSTATUS(status)};
}

}  // namespace

// detail::guarded formats into st->message without allocating.
TEST_CASE("std::bad_alloc with an exhausted heap is still FEDFLOW_OUT_OF_MEMORY") {
    for (bool in_load : {true, false}) {
        CAPTURE(in_load);
        Outcome o = run_child(in_load);
        CHECK_FALSE(o.signaled);  // SIGABRT: std::terminate from the handler
        CHECK(o.signal_or_code == 0);
    }
}

TEST_CASE("the replaced operator new works when the heap is not exhausted") {
    std::string s(1000, 'x');
    CHECK(s.size() == 1000);
}
