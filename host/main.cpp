// fedflow-host: the command line (docs/plan.md, "Command line" and "Exit status").
//
//   fedflow-host PLAN.toml [options]      run the plan
//   fedflow-host validate PLAN.toml       check plan and plugins; run nothing
//   fedflow-host plugins                  list the plugins found
//   fedflow-host run-task PLAN.toml GROUP/ID   run one task alone, in the foreground
//   fedflow-host report WORKDIR           write WORKDIR/report.html again from the run's files
//   fedflow-host agent                    a node agent of --slurm, started by srun (exec/node_agent.hpp)
//
// Exit status: 0 every task finished; 1 some task failed; 2 bad input,
// nothing started; 3 the host itself failed or was interrupted.
#include "common/log.hpp"
#include "common/sim_gpu.hpp"
#include "common/text.hpp"
#include "common/units.hpp"
#include "exec/node_agent.hpp"
#include "exec/worker_process.hpp"
#include "plan/plan.hpp"
#include "registry/plugin_registry.hpp"
#include "report/report_html.hpp"
#include "runner/resume.hpp"
#include "runner/run_task.hpp"
#include "runner/runner.hpp"

#include <fedflow/abi.h>

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <unistd.h>

#ifndef FEDFLOW_VERSION
#define FEDFLOW_VERSION "unknown"
#endif

namespace fs = std::filesystem;
using namespace fedflow;

namespace {

struct Options {
    std::string plan;
    RunTaskOptions task;  // run-task
    std::string workdir;
    std::vector<std::string> plugin_path;
    bool resume = false;
    bool force = false;
    bool overwrite = false;
    bool dry_run = false;
    bool slurm = false;
    std::string progress = "auto";
    std::string gpus;
    std::string simulate_gpus;
    std::string seed = "0";
    std::string log_level = "info";
};

std::vector<fs::path> paths(const std::vector<std::string>& v) { return {v.begin(), v.end()}; }

// A path as printed: a file name may hold any byte but '/' and NUL.
std::string shown(const fs::path& p) { return text::printable(p.string()); }

// Why the run could not create or write its workdir (its nearest ancestor
// that exists, when it does not exist yet), or "": what creating it and its
// lock file would then fail with (EACCES, EROFS).
std::string unwritable(const fs::path& workdir) {
    fs::path p = workdir;
    std::error_code ec;
    while (!fs::exists(p, ec) && p.has_parent_path() && p != p.parent_path()) p = p.parent_path();
    if (::access(p.c_str(), W_OK | X_OK) == 0) return {};
    return std::generic_category().message(errno);
}

void print_plan_errors(const plan::PlanError& e) {
    for (const auto& m : e.messages()) std::fprintf(stderr, "%s\n", m.c_str());
    std::fprintf(stderr, "fedflow-host: %zu error%s; nothing was started\n", e.messages().size(),
                 e.messages().size() == 1 ? "" : "s");
}

// Plan and plugins, or an exit code 2 with every problem printed.
struct Checked {
    plan::Plan plan;
    PluginRegistry registry;
    std::vector<PluginFile> plugins;
};

bool check(const Options& o, Checked& out) {
    try {
        out.plan = plan::load(o.plan);
        auto dirs = paths(o.plugin_path);
        dirs.insert(dirs.end(), out.plan.plugin_path.begin(), out.plan.plugin_path.end());
        out.registry.scan(PluginRegistry::search_path(dirs));
        out.plugins = out.registry.resolve(out.plan);
        PluginRegistry::check_params(out.plan, out.plugins);
        return true;
    } catch (const plan::PlanError& e) {
        print_plan_errors(e);
        return false;
    }
}

// Runs what starts workers: the host's limit on open files raised first; bad
// input (std::invalid_argument: FEDFLOW_CONTAIN, a run-task target) is exit
// 2, any other error exit 3.
template <class Run>
int with_workers(Run run) {
    try {
        WorkerProcess::raise_fd_limit();
        return run(find_worker());
    } catch (const std::invalid_argument& e) {
        log::error("{}", e.what());
        return exit_bad_input;
    } catch (const std::exception& e) {
        log::error("{}", e.what());
        return exit_host_failed;
    }
}

int cmd_run_task(const Options& o) {
    Checked c;
    if (!check(o, c)) return exit_bad_input;
    return with_workers([&](const fs::path& worker) { return run_task(c.plan, c.plugins, o.task, worker); });
}

int cmd_validate(const Options& o) {
    Checked c;
    if (!check(o, c)) return exit_bad_input;
    std::size_t tasks = 0;
    for (const auto& g : c.plan.groups) tasks += g.task_count();
    std::printf("%s: valid: %zu group%s, %zu task%s\n", shown(c.plan.file).c_str(), c.plan.groups.size(),
                c.plan.groups.size() == 1 ? "" : "s", tasks, tasks == 1 ? "" : "s");
    for (std::size_t i = 0; i < c.plan.groups.size(); ++i) {
        const auto& g = c.plan.groups[i];
        std::string rounds;
        if (g.block != 0) {
            std::uint32_t n = c.plan.rounds[g.block - 1].count;
            rounds = fmt::format(", in each of {} round{}", n, n == 1 ? "" : "s");
        }
        std::printf("  %zu. %s: %zu task%s of plugin %s (%s)%s\n", g.index, g.name.c_str(), g.task_count(),
                    g.task_count() == 1 ? "" : "s", c.plugins[i].name.c_str(), shown(c.plugins[i].path).c_str(),
                    rounds.c_str());
    }
    return exit_ok;
}

int cmd_plugins(const Options& o) {
    PluginRegistry registry;
    registry.scan(PluginRegistry::search_path(paths(o.plugin_path)));
    std::printf("search path:\n");
    for (const auto& d : PluginRegistry::search_path(paths(o.plugin_path)))
        std::printf("  %s%s\n", shown(d).c_str(), fs::is_directory(d) ? "" : "  (missing)");
    std::printf("plugins (%zu):\n", registry.plugins().size());
    for (const auto& p : registry.plugins())
        std::printf("  %-24s ABI %u  %s\n", p.name.c_str(), p.abi_version, shown(p.path).c_str());
    if (!registry.rejected().empty()) {
        std::printf("rejected (%zu):\n", registry.rejected().size());
        for (const auto& r : registry.rejected())
            std::printf("  %s: %s\n", shown(r.path).c_str(), text::printable(r.reason).c_str());
    }
    return exit_ok;
}

// Draws report.html from the files a run left (any run: finished, running,
// killed, resumed), as the host does during a run.
int cmd_report(const Options& o) {
    const fs::path workdir = o.workdir;
    std::error_code ec;
    if (!fs::is_directory(workdir, ec)) {
        std::fprintf(stderr, "fedflow-host report: %s is not a directory\n", workdir.c_str());
        return exit_bad_input;
    }
    if (!fs::exists(workdir / "run.json", ec) && !fs::exists(workdir / "events.jsonl", ec)) {
        std::fprintf(stderr, "fedflow-host report: %s holds no Fedflow run (no run.json, no events.jsonl)\n",
                     workdir.c_str());
        return exit_bad_input;
    }
    try {
        report::write_html(workdir);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "fedflow-host report: %s\n", e.what());
        return exit_host_failed;
    }
    std::printf("%s\n", (workdir / "report.html").c_str());
    return exit_ok;
}

// The value of --seed: only the digits 0-9, at most 2^64 - 1. CLI11's own
// conversion took "-1" and anything too large for 64 bits as 2^64 - 1.
std::optional<std::uint64_t> parse_seed(const std::string& text) {
    std::uint64_t v = 0;
    if (!units::all_digits(text)) return std::nullopt;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
    return v;
}

int cmd_run(const Options& o) {
    if (o.overwrite && o.resume) {
        std::fprintf(stderr, "fedflow-host: --overwrite replaces the run in the workdir, --resume finishes it: "
                             "give one of them\n");
        return exit_bad_input;
    }
    if (o.force && !o.resume) {
        std::fprintf(stderr, "fedflow-host: --force is for --resume: it resumes a run whose plan changed\n");
        return exit_bad_input;
    }
    std::optional<std::uint64_t> seed = parse_seed(o.seed);
    if (!seed) {
        std::fprintf(stderr, "fedflow-host: --seed must be an unsigned 64-bit integer, 0 to %llu, not '%s'\n",
                     static_cast<unsigned long long>(std::numeric_limits<std::uint64_t>::max()),
                     text::printable(o.seed).c_str());
        return exit_bad_input;
    }
    if (!o.gpus.empty()) {
        try {
            sched::Limits check_only;
            plan::parse_gpus(o.gpus, check_only);
        } catch (const std::invalid_argument& e) {
            std::fprintf(stderr, "fedflow-host: --gpus: %s\n", text::printable(e.what()).c_str());
            return exit_bad_input;
        }
    }
    std::vector<simgpu::Spec> simulated;
    if (!o.simulate_gpus.empty()) {
        try {
            simulated = simgpu::parse(o.simulate_gpus);
        } catch (const std::invalid_argument& e) {
            std::fprintf(stderr, "fedflow-host: --simulate-gpus: %s\n", e.what());
            return exit_bad_input;
        }
    }
    std::optional<Progress> progress = parse_progress(o.progress);
    if (!progress) {
        std::fprintf(stderr, "fedflow-host: --progress must be auto, tty, plain, verbose, json or none, not '%s'\n",
                     text::printable(o.progress).c_str());
        return exit_bad_input;
    }
    // Debugging a run without a terminal: every task's every state, too.
    if (*progress == Progress::plain && o.log_level == "debug") progress = Progress::verbose;

    Checked c;
    if (!check(o, c)) return exit_bad_input;

    RunOptions ro;
    ro.workdir = o.workdir;
    ro.seed = *seed;
    ro.progress = *progress;
    ro.gpus = o.gpus;
    ro.simulate_gpus = std::move(simulated);
    ro.simulate_gpus_text = o.simulate_gpus;
    ro.slurm = o.slurm || c.plan.slurm.enabled;
    ro.resume = o.resume;
    ro.force = o.force;
    ro.overwrite = o.overwrite;
    if (o.dry_run) {
        fs::path workdir = ro.workdir.empty() ? c.plan.workdir : fs::absolute(ro.workdir);
        // What the run would refuse before it starts anything: exit 2, as
        // it would (the machine's GPUs are not probed: no run starts).
        try {
            check_workdir(workdir, o.resume);
            if (std::string why = unwritable(workdir); !why.empty())
                throw std::invalid_argument(fmt::format("cannot write in workdir {}: {}", workdir.string(), why));
        } catch (const std::invalid_argument& e) {
            log::error("{}", e.what());
            return exit_bad_input;
        }
        std::printf("dry run: nothing is started\nworkdir: %s\n", shown(workdir).c_str());
        // What the run would then refuse to delete (Runner::claim_workdir).
        if (!o.resume && !o.overwrite)
            if (std::optional<std::string> left = results_left(workdir))
                std::printf("  it holds the results of a run (%s): the run exits 2 without --resume or --overwrite\n",
                            left->c_str());
        for (std::size_t i = 0; i < c.plan.groups.size(); ++i) {
            const auto& g = c.plan.groups[i];
            std::printf("group %zu %s: plugin %s (%s), max %u processes\n", g.index, g.name.c_str(),
                        c.plugins[i].name.c_str(), shown(c.plugins[i].path).c_str(), c.plan.scheduler.max_processes);
            if (g.block != 0) {
                // In rounds: the first round's folders, then the pattern.
                const plan::RoundSpec& r = c.plan.rounds[g.block - 1];
                std::printf("  in [[round]] %zu: rounds 1 to %u, in %s ... %s\n", g.block, r.count,
                            shown(workdir / plan::round_dir(1, r.count) / g.name).c_str(),
                            shown(workdir / plan::round_dir(r.count, r.count) / g.name).c_str());
            }
            fs::path dir = workdir /
                           (g.block == 0 ? fs::path()
                                         : fs::path(plan::round_dir(1, c.plan.rounds[g.block - 1].count))) /
                           g.name;
            for (std::size_t i = 0; i < g.task_count(); ++i) {
                const std::string id = g.task_id(i);
                std::printf("  task %s -> %s\n", id.c_str(), shown((dir / id).lexically_normal()).c_str());
            }
        }
        return exit_ok;
    }
    return with_workers([&](const fs::path& worker) {
        ro.worker = worker;
        Runner runner(c.plan, c.plugins, ro);
        return runner.run();
    });
}

// "--workdir was given an empty value" for the first option of the command
// line, or of the subcommand that was given, that was given "": an empty
// --workdir, --gpus or --simulate-gpus once meant the plan's own, or the
// machine's GPUs, as if the option had not been given. "" when none was.
std::string empty_value(const CLI::App& app) {
    std::vector<const CLI::App*> apps{&app};
    for (const CLI::App* sub : app.get_subcommands())
        if (sub->parsed()) apps.push_back(sub);
    for (const CLI::App* a : apps)
        for (const CLI::Option* opt : a->get_options()) {
            if (opt->get_items_expected_min() == 0) continue;  // a flag
            for (const std::string& v : opt->results())
                if (v.empty())
                    return fmt::format("{} was given an empty value", opt->get_lnames().empty()
                                                                          ? opt->get_type_name()
                                                                          : "--" + opt->get_lnames().front());
        }
    return "";
}

// "unknown option '--gpu' (did you mean '--gpus'?)" for the first argument
// CLI11 did not expect that looks like an option, among the options of the
// (sub)command it was given to; "" when there is none.
std::string unknown_option(const CLI::App& app) {
    const CLI::App* where = &app;
    for (const CLI::App* sub : app.get_subcommands())
        if (sub->parsed()) where = sub;
    for (const std::string& arg : where->remaining()) {
        if (arg.size() < 2 || arg[0] != '-') continue;
        const std::string name = arg.substr(0, arg.find('='));
        std::vector<std::string> options;
        for (const CLI::Option* opt : where->get_options()) {
            for (const std::string& l : opt->get_lnames()) options.push_back("--" + l);
            for (const std::string& s : opt->get_snames()) options.push_back("-" + s);
        }
        return fmt::format("unknown option '{}'{}", text::printable(name), text::did_you_mean(name, options));
    }
    return "";
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    CLI::App app{"Fedflow: run many machine-learning tasks side by side, each in its own process."};
    app.set_version_flag("--version",
                         fmt::format("fedflow-host {} (plugin ABI {})", FEDFLOW_VERSION, FEDFLOW_ABI_VERSION));
    app.footer(
        "Exit status: 0 every task finished; 1 some task failed; 2 bad input (nothing started);\n"
        "3 the host failed or was interrupted.\n"
        "Plugins are searched in --plugin-path, the plan's plugin-path, FEDFLOW_PLUGIN_PATH and the install dir.");

    auto add_plugin_path = [&](CLI::App* a) {
        a->add_option("--plugin-path", o.plugin_path, "Search this directory for plugins first (repeatable)")
            ->allow_extra_args(false)
            ->type_name("DIR");
    };
    auto add_log_level = [&](CLI::App* a) {
        a->add_option("--log-level", o.log_level, "debug, info, warning or error")
            ->check(CLI::IsMember({"debug", "info", "warning", "error"}));
    };

    app.add_option("plan", o.plan, "The plan file (TOML)")->type_name("PLAN.toml");
    app.add_option("--workdir", o.workdir, "Write the run here (default: the plan's workdir)")->type_name("DIR");
    add_plugin_path(&app);
    app.add_flag("--resume", o.resume, "Run only what has not finished in the workdir");
    app.add_flag("--force", o.force, "With --resume: resume even though the plan changed");
    app.add_flag("--overwrite", o.overwrite,
                 "Replace the run in the workdir, whose finished results a run refuses to delete otherwise");
    app.add_flag("--dry-run", o.dry_run, "Check everything and print what would run; start nothing");
    app.add_option("--progress", o.progress,
                   "auto (tty on a terminal, else plain), tty, plain (a line per group or round, and failures), "
                   "verbose (plain and every state change), json or none")
        ->check(CLI::IsMember({"auto", "tty", "plain", "verbose", "json", "none"}));
    app.add_option("--gpus", o.gpus, "GPUs to use: all, none, or indices such as 0,2 (replaces [resources] gpus)")
        ->type_name("LIST|none");
    app.add_option("--simulate-gpus", o.simulate_gpus,
                   "Schedule on these simulated GPUs instead of the machine's: 4x80GiB, 80GiB,40GiB, "
                   "80GiB:used=20GiB (tasks are told \"sim:N\"; see docs/scheduling.md)")
        ->type_name("SPEC");
    app.add_flag("--slurm", o.slurm,
                 "Run the tasks on the nodes of the Slurm allocation the host runs in (salloc, sbatch; "
                 "docs/slurm.md)");
    app.add_option("--seed", o.seed, "Seed for the scheduler's random choices (reproducible runs)")
        ->type_name("UINT64");
    add_log_level(&app);

    CLI::App* validate = app.add_subcommand("validate", "Check the plan and its plugins; run nothing");
    validate->add_option("plan", o.plan, "The plan file (TOML)")->required()->type_name("PLAN.toml");
    add_plugin_path(validate);
    add_log_level(validate);
    CLI::App* plugins = app.add_subcommand("plugins", "List the plugins found, with ABI version and path");
    add_plugin_path(plugins);
    CLI::App* run_task = app.add_subcommand(
        "run-task", "Run one task of the plan alone, in the foreground (load, then train), to debug it");
    run_task->add_option("plan", o.plan, "The plan file (TOML)")->required()->type_name("PLAN.toml");
    run_task->add_option("task", o.task.target, "The task: its group's name and its id")
        ->required()
        ->type_name("GROUP/ID");
    run_task->add_option("--dir", o.task.dir, "Run it here (default: a new directory in $TMPDIR)")->type_name("DIR");
    run_task->add_flag("--overwrite", o.task.overwrite, "Replace the run in --dir, whose task had finished");
    run_task->add_option("--device", o.task.device, "Train on this device (default: the task's, else cpu)")
        ->type_name("cpu|cuda:N");
    run_task->add_flag("--gdb", o.task.gdb, "Run the worker under gdb (break on the plugin's functions, run, ...)");
    run_task->add_flag("--print-command", o.task.print_command,
                       "Print the worker's command line and environment; run nothing");
    add_plugin_path(run_task);
    add_log_level(run_task);
    add_log_level(plugins);
    CLI::App* report_cmd =
        app.add_subcommand("report", "Write report.html of a run again from its files (run.json, events.jsonl, ...)");
    report_cmd->add_option("workdir", o.workdir, "The run's workdir")->required()->type_name("WORKDIR");
    add_log_level(report_cmd);
    CLI::App* agent_cmd = app.add_subcommand("agent", "A node agent of --slurm (started by the host through srun)");
    agent_cmd->group("");  // not for users: the host starts it
    add_log_level(agent_cmd);
    app.require_subcommand(0, 1);

    // CLI11 reads "--workdir=" as "--workdir" and takes the next argument
    // as its value ("--workdir= --dry-run" ran the plan in ./--dry-run).
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg == "--") break;
        if (arg.size() > 3 && arg.substr(0, 2) == "--" && arg.find('=') == arg.size() - 1) {
            std::fprintf(stderr, "fedflow-host: %s was given an empty value\nRun with --help for more information.\n",
                         text::printable(arg.substr(0, arg.size() - 1)).c_str());
            return exit_bad_input;
        }
    }
    try {
        app.parse(argc, argv);
    } catch (const CLI::ExtrasError& e) {
        if (std::string hint = unknown_option(app); !hint.empty()) {
            std::fprintf(stderr, "fedflow-host: %s\nRun with --help for more information.\n", hint.c_str());
            return exit_bad_input;
        }
        app.exit(e);
        return exit_bad_input;
    } catch (const CLI::ParseError& e) {
        int rc = app.exit(e);
        return rc == 0 ? exit_ok : exit_bad_input;
    }
    if (std::string empty = empty_value(app); !empty.empty()) {
        std::fprintf(stderr, "fedflow-host: %s\nRun with --help for more information.\n", empty.c_str());
        return exit_bad_input;
    }
    log::Level level = log::Level::info;
    log::parse_level(o.log_level, level);
    log::set_level(level);

    if (validate->parsed()) return cmd_validate(o);
    if (plugins->parsed()) return cmd_plugins(o);
    if (run_task->parsed()) return cmd_run_task(o);
    if (report_cmd->parsed()) return cmd_report(o);
    if (agent_cmd->parsed()) return with_workers([](const fs::path& worker) { return exec::run_node_agent(worker); });
    if (o.plan.empty()) {
        std::fprintf(stderr, "%s", app.help().c_str());
        std::fprintf(stderr, "fedflow-host: no plan given\n");
        return exit_bad_input;
    }
    return cmd_run(o);
}
