#include "worker/crash_report.hpp"

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdint>
#include <cstring>

#include <dlfcn.h>
#include <execinfo.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

namespace fedflow::worker::crash {

namespace {

constexpr int kSignals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
constexpr int kMaxFrames = 64;
// Room for backtrace() (the unwinder) and dladdr() as well as the handler.
constexpr std::size_t kAltStackSize = 256 * 1024;

char context_stage[16] = "start";
char context_task[512] = "";
std::atomic<bool> reporting{false};

// A line assembled in a fixed buffer and written with write(2): nothing
// here allocates or takes a lock that the crashed code might hold.
class Line {
public:
    Line& str(const char* s) {
        while (s != nullptr && *s != '\0' && n_ < sizeof buf_) buf_[n_++] = *s++;
        return *this;
    }
    Line& hex(std::uintptr_t v) {
        char tmp[2 + 2 * sizeof v];
        int i = 0;
        do {
            tmp[i++] = "0123456789abcdef"[v & 0xf];
            v >>= 4;
        } while (v != 0);
        str("0x");
        while (i > 0 && n_ < sizeof buf_) buf_[n_++] = tmp[--i];
        return *this;
    }
    Line& dec(std::uint64_t v) {
        char tmp[24];
        int i = 0;
        do {
            tmp[i++] = static_cast<char>('0' + v % 10);
            v /= 10;
        } while (v != 0);
        while (i > 0 && n_ < sizeof buf_) buf_[n_++] = tmp[--i];
        return *this;
    }
    void flush(int fd) {
        if (n_ == sizeof buf_) buf_[n_ - 1] = '\n';
        std::size_t done = 0;
        while (done < n_) {
            ssize_t w = ::write(fd, buf_ + done, n_ - done);
            if (w <= 0) break;
            done += static_cast<std::size_t>(w);
        }
        n_ = 0;
    }

private:
    char buf_[1024];
    std::size_t n_ = 0;
};

std::uintptr_t faulting_pc(const void* uc) {
    if (uc == nullptr) return 0;
    const auto* u = static_cast<const ucontext_t*>(uc);
#if defined(__x86_64__)
    return static_cast<std::uintptr_t>(u->uc_mcontext.gregs[REG_RIP]);
#elif defined(__aarch64__)
    return static_cast<std::uintptr_t>(u->uc_mcontext.pc);
#else
    (void)u;
    return 0;
#endif
}

void handler(int sig, siginfo_t* info, void* uc) {
    // A second crash while reporting (in dladdr, say) ends the process at
    // once, by the signal it got.
    if (reporting.exchange(true)) {
        ::signal(sig, SIG_DFL);
        ::raise(sig);
        return;
    }
    Line line;
    const char* abbrev = sigabbrev_np(sig);
    const char* descr = sigdescr_np(sig);
    line.str("fedflow-worker: SIG").str(abbrev != nullptr ? abbrev : "?").str(" (").str(descr).str(")");
    bool fault = info != nullptr && info->si_code > 0 && sig != SIGABRT;
    if (fault) line.str(" at address ").hex(reinterpret_cast<std::uintptr_t>(info->si_addr));
    else if (info != nullptr && info->si_code <= 0)
        line.str(" sent by pid ").dec(static_cast<std::uint64_t>(info->si_pid));
    line.str(" in ").str(context_stage);
    if (context_task[0] != '\0') line.str(" of task ").str(context_task);
    line.str("\n");
    line.flush(STDERR_FILENO);

    void* frames[kMaxFrames];
    int n = ::backtrace(frames, kMaxFrames);
    // Start at the frame that was interrupted: the ones before it are this
    // handler and the kernel's signal trampoline.
    int first = 0;
    std::uintptr_t pc = faulting_pc(uc);
    for (int i = 0; i < n; ++i) {
        if (reinterpret_cast<std::uintptr_t>(frames[i]) == pc) {
            first = i;
            break;
        }
    }
    line.str("backtrace of the crashing thread, innermost frame first (a file and offset: "
             "addr2line -Cfie FILE OFFSET):\n");
    line.flush(STDERR_FILENO);
    for (int i = first; i < n; ++i) {
        auto addr = reinterpret_cast<std::uintptr_t>(frames[i]);
        line.str("  #").dec(static_cast<std::uint64_t>(i - first)).str(" ").hex(addr);
        Dl_info dl{};
        if (::dladdr(frames[i], &dl) != 0 && dl.dli_fname != nullptr) {
            line.str(" ").str(dl.dli_fname).str(" ").hex(addr - reinterpret_cast<std::uintptr_t>(dl.dli_fbase));
            if (dl.dli_sname != nullptr)
                line.str(" (")
                    .str(dl.dli_sname)
                    .str("+")
                    .hex(addr - reinterpret_cast<std::uintptr_t>(dl.dli_saddr))
                    .str(")");
        }
        line.str("\n");
        line.flush(STDERR_FILENO);
    }
    // The default action now: the wait status says which signal ended the
    // process, as it would have without this report. (A fault returned from
    // would fault again; a sent signal is pending until the return.)
    ::signal(sig, SIG_DFL);
    ::raise(sig);
}

void copy(char* dst, std::size_t size, std::string_view src) {
    std::size_t n = std::min(size - 1, src.size());
    std::memcpy(dst, src.data(), n);
    dst[n] = '\0';
}

}  // namespace

void load_unwinder() {
    // A fork inherits this flag with the loaded unwinder.
    static bool loaded = false;
    if (loaded) return;
    // backtrace() loads the unwinder (libgcc_s) on first use, with malloc
    // and dlopen: done here, not in the handler.
    void* warm[1];
    (void)::backtrace(warm, 1);
    loaded = true;
}

void install() {
    load_unwinder();

    void* stack = ::mmap(nullptr, kAltStackSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    bool alt = false;
    if (stack != MAP_FAILED) {
        stack_t ss{};
        ss.ss_sp = stack;
        ss.ss_size = kAltStackSize;
        alt = ::sigaltstack(&ss, nullptr) == 0;
    }
    struct sigaction sa {};
    sa.sa_sigaction = handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_SIGINFO | (alt ? SA_ONSTACK : 0);
    for (int sig : kSignals) ::sigaction(sig, &sa, nullptr);
}

void set_context(std::string_view stage, std::string_view task) {
    copy(context_stage, sizeof context_stage, stage);
    copy(context_task, sizeof context_task, task);
}

}  // namespace fedflow::worker::crash
