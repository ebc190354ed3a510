// crash_report.hpp: what a worker writes into its stderr.log when it crashes.
//
// A plugin that segfaults, aborts or dies of another fatal signal would
// otherwise leave an empty stderr.log and only "killed by signal SIGSEGV"
// in its report. install() sets handlers for SIGSEGV, SIGBUS, SIGILL, SIGFPE
// and SIGABRT that write, with async-signal-safe calls only, one line naming
// the signal, the faulting address, the stage and the task, then a
// backtrace of the crashing thread (the symbol names dladdr can find, and
// for every frame its module and offset, for addr2line), and then end the
// process by the same signal, so that its wait status still says which.
// The handler runs on an alternate stack, so a stack overflow is reported too.
#pragma once

#include <string_view>

namespace fedflow::worker::crash {

// Installs the handlers on the calling (main) thread's alternate stack.
// Call once, early; a plugin that installs handlers of its own replaces them.
void install();

// Loads the unwinder backtrace() needs (libgcc_s: dlopen and malloc), once
// per address space: install() calls it, and a fork server calls it before
// it forks, so that a forked worker inherits it loaded instead of loading it
// again in every task.
void load_unwinder();

// What the crash line names: the stage ("start", "load", "train", "exit")
// and the task ("GROUP/ID"). Copied into static storage: the handler may
// not allocate.
void set_context(std::string_view stage, std::string_view task);

}  // namespace fedflow::worker::crash
