// signals.hpp: how a signal and a child's wait status are said in messages,
// the one way for the host, the worker and the bundled plugins.
//
// Header-only, C++17 and glibc (sigabbrev_np, strsignal): a plugin compiles
// it in.
#ifndef FEDFLOW_COMMON_SIGNALS_HPP
#define FEDFLOW_COMMON_SIGNALS_HPP

#include <string>

#include <string.h>
#include <sys/wait.h>

namespace fedflow {

// "SIGTERM"; "signal 42" for a number without a name.
inline std::string signal_name(int sig) {
    const char* abbrev = ::sigabbrev_np(sig);
    return abbrev != nullptr ? std::string("SIG") + abbrev : "signal " + std::to_string(sig);
}

// "SIGSEGV (Segmentation fault)".
inline std::string describe_signal(int sig) {
    const char* text = ::strsignal(sig);
    return signal_name(sig) + " (" + (text != nullptr ? text : "unknown") + ")";
}

// "exited with code 3", "killed by signal SIGSEGV (Segmentation fault)", or
// "ended with wait status N" for anything else.
inline std::string describe_wait_status(int status) {
    if (WIFEXITED(status)) return "exited with code " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return "killed by signal " + describe_signal(WTERMSIG(status));
    return "ended with wait status " + std::to_string(status);
}

}  // namespace fedflow

#endif  // FEDFLOW_COMMON_SIGNALS_HPP
