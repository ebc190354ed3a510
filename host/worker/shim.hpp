// shim.hpp: the worker's side of ending a task's descendants with it.
//
// The host picks one mechanism per run (host/exec/containment.hpp, and
// docs/architecture.md "Descendants"). Two of them need a process between
// the host and the worker, the shim: the process the host starts forks the
// worker and stays, so that what the task leaves behind can be found and
// killed however the worker ends.
//
//   pidns      the shim unshares a PID namespace and forks a small init
//              (pid 1 there) and then the worker (pid 2). When the worker
//              has ended, killing the init ends every process of the
//              namespace; the init dies with the shim, and the shim with the
//              host (parent-death signal SIGKILL), so nothing of a task
//              survives even when host and shim are killed with SIGKILL.
//   subreaper  the shim is a child subreaper: orphans of the task become its
//              children instead of init's, and it kills every descendant
//              when the worker ends, or when the host dies (its parent-death
//              signal is SIGUSR1, which it catches).
//
// The shim sends two frames on the channel itself: `worker` (the pid of the
// process that runs the plugin) at once, and `leftovers` (how many processes
// it killed) at the end, and then ends as the worker did: by the same
// signal or with the same exit code.
#pragma once

#include <string>

#include <sys/types.h>

namespace fedflow::worker::shim {

// Runs the shim of mechanism `mode` ("pidns" or "subreaper") for a host with
// pid host_pid. Returns only in the worker: the pid of its parent (the
// shim) as getppid() will say it, or 0 where getppid() cannot tell (pidns:
// the parent is outside the namespace). Ends the process (a `failed`
// message, exit code 2) when the mechanism cannot be set up.
pid_t run(const std::string& mode, int channel_fd, long host_pid);

// fedflow-worker --guard DIR: waits for EOF on stdin (the host holds the
// pipe's other end, so EOF means the host is gone, however it ended), then
// kills every process in cgroup DIR and below and removes those cgroups.
int guard(const std::string& dir);

// fedflow-worker --probe-pidns: ends the process with exit code 0 when it
// may create a PID namespace (and fork into it), 1 otherwise (the reason on
// stderr).
[[noreturn]] void probe_pidns();

}  // namespace fedflow::worker::shim
