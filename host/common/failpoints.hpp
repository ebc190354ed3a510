// failpoints.hpp: faults that tests inject into the host and the worker, and
// nothing else: a fault that cannot be provoked from outside (a host killed
// between two writes of its start, a result damaged after it was sealed, a
// start that fails for want of a descriptor) still gets a test.
//
// FEDFLOW_FAILPOINTS is a comma-separated list of points, each NAME or
// NAME@WHERE: "host-kill@journal-open", "result-corrupt@g/0,bytes-corrupt@g/0",
// "fork-server-emfile". The points and where each is read:
//   host-kill@POINT          the host raises SIGKILL at POINT of its start, or
//                            of keep-rounds' first removal (runner.hpp,
//                            Runner::failpoint)
//   result-truncate@TASK, result-corrupt@TASK, bytes-corrupt@TASK,
//   bytes-truncate@TASK      the worker of TASK ("group/id") damages its sealed
//                            result (worker/main.cpp)
//   fork-server-emfile       the run's first fork-server start fails with
//                            EMFILE (exec/local_executor.cpp)
//   fork-cgroup-enter        every forked worker fails to enter its task's
//                            cgroup, with EACCES (worker/fork_server.cpp)
//   fork-spare-none          fork servers fork no spare: every worker is
//                            forked on request (worker/fork_server.cpp)
//   fork-server-die          a fork server kills itself (SIGKILL) after its
//                            first fork, and its worker dies with it
//                            (worker/fork_server.cpp)
//   fork-server-short-patience
//                            fork servers have 1 s to load instead of 120 s,
//                            and 1 s to answer a fork or a spare request
//                            instead of 10 s
//                            (exec/local_executor.cpp)
//   executor-pause-after-poll
//                            the host sleeps 20 ms each time its poll()
//                            returns, so that workers send and exit between
//                            its poll() and its reads (exec/local_executor.cpp)
#pragma once

#include <string_view>

namespace fedflow::failpoints {

// Whether FEDFLOW_FAILPOINTS names the point `name` (with `where` empty: as
// NAME alone; else as NAME@WHERE). Reads the environment at each call: a
// test process sets it before it starts the host.
bool armed(std::string_view name, std::string_view where = {});

}  // namespace fedflow::failpoints
