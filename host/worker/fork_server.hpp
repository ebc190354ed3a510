// fork_server.hpp: fedflow-worker --fork-server, a pre-started worker that
// has loaded one plugin and forks one child per task, so that a task starts
// without exec, the dynamic loader, dlopen or (Python) the interpreter and
// its imports.
//
// The host starts it (exec/fork_server.hpp) with a SOCK_SEQPACKET socket on
// the fd given, and speaks common/fork_packet.hpp on it. The server dies
// with the host (PR_SET_PDEATHSIG), reaps its children and tells the host
// how each ended (the host cannot wait for a grandchild) and when one
// stopped. It holds no thread when it forks: it counts its threads before
// each fork and refuses (the host then execs the worker) when there is more
// than one. Preloads run with OMP_NUM_THREADS and OPENBLAS_NUM_THREADS = 1
// (a BLAS starts its threads at load otherwise); the variables are set back
// before the first fork.
//
// After a fork the host asks for a spare (common/fork_packet.hpp): a child
// forked ahead that waits for the next task's fork request on a socket of
// its own, which the server hands the host with the spare's pid; the host's
// loop then waits for no fork. It dies with the server, or ends when the
// host closes its socket unused.
//
// A child is set up as posix_spawn sets up an exec'd worker: its own process
// group, stdin /dev/null, stdout.log and stderr.log, the channel as fd 3 and
// no other descriptor, the task's cwd, an empty signal mask and default
// handlers; then `child` runs it as a worker whose parent is the server.
// With a cgroup of its own, the request carries that cgroup's cgroup.procs
// as a fourth descriptor, and the child moves itself there first: the host
// does not wait for a move (a cgroup move may wait for an RCU grace period,
// milliseconds), and the child runs nothing of the task before it.
#pragma once

#include <fedflow/value.hpp>

#include <string>

namespace fedflow::worker::fork_server {

struct Child {
    long parent_pid = 0;  // the server: the child's parent
    long nofile = 0;      // RLIMIT_NOFILE soft limit for the task (0: keep)
    std::string contain;  // the worker's --contain ("pidns", "subreaper", or empty)
    // Why it could not enter the task's cgroup; the worker then fails in
    // start and runs nothing of the task.
    std::string start_error;
};

struct Hooks {
    // Loads the plugin the preload packet names; "" or why it cannot.
    std::string (*preload)(const Dict& preload) = nullptr;
    // Around fork(): 0 before, 1 in the server after, 2 in the child.
    void (*fork)(int phase) = nullptr;
    // Runs the worker in the child; returns its exit code.
    int (*child)(const Child& child) = nullptr;
};

// Serves the host on control_fd until the host closes it. Never returns.
[[noreturn]] void run(int control_fd, long host_pid, const Hooks& hooks);

// The variables a preload runs with set to 1.
inline constexpr const char* preload_thread_variables[] = {"OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                           "MKL_NUM_THREADS"};

}  // namespace fedflow::worker::fork_server
