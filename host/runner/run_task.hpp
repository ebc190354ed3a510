// run_task.hpp: fedflow-host run-task PLAN GROUP/ID, one task of a plan
// alone and in the foreground, to debug it.
//
// The task runs as in a run (the same worker, load then train, its result
// written and printed) but by itself, in a directory of its own, with its
// worker's stdin, stdout and stderr on the terminal; under gdb with --gdb.
// It gets no inputs (no earlier group ran), its round is 0, and nothing
// ends it but itself: no task-timeout, no containment of what it starts.
#pragma once

#include "plan/plan.hpp"
#include "registry/plugin_registry.hpp"

#include <filesystem>
#include <string>
#include <vector>

namespace fedflow {

struct RunTaskOptions {
    std::string target;          // "GROUP/ID"
    std::filesystem::path dir;   // where the run goes; empty: a new directory in $TMPDIR
    bool overwrite = false;      // replace a run in dir whose task finished (RunOptions::overwrite)
    std::string device;          // where train runs; empty: the task's pinned device, else "cpu"
    bool gdb = false;            // run the worker under gdb
    bool print_command = false;  // print the worker's command line and environment; run nothing
};

// Runs the task; returns the exit code (0 finished, 1 failed). Throws
// std::invalid_argument for a target the plan does not have (exit 2).
int run_task(const plan::Plan& plan, const std::vector<PluginFile>& plugins, const RunTaskOptions& options,
             const std::filesystem::path& worker);

}  // namespace fedflow
