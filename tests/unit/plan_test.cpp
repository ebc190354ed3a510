// The plan parser: every key read and checked, errors with file:line:column
// and the key, unknown keys with "did you mean", later keys refused.
#include "common/device.hpp"
#include "common/names.hpp"
#include "plan/plan.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <stdlib.h>
#include <sys/stat.h>

using namespace fedflow;
using plan::PlanError;

namespace {

plan::Plan parse(const std::string& text) { return plan::parse(text, "/plans/p.toml"); }

// All messages of the PlanError that text raises, joined by newlines.
std::string errors(const std::string& text) {
    try {
        parse(text);
    } catch (const PlanError& e) {
        std::string out;
        for (const auto& m : e.messages()) out += m + "\n";
        return out;
    }
    FAIL("the plan was accepted");
    return {};
}

}  // namespace

TEST_CASE("a minimal plan: defaults") {
    auto p = parse("[[group]]\nplugin = \"echo\"\n");
    CHECK(p.file == "/plans/p.toml");
    CHECK(p.dir == "/plans");
    CHECK(p.workdir == "/plans/fedflow-runs/p");
    REQUIRE(p.groups.size() == 1);
    CHECK(p.groups[0].name == "group-1");
    CHECK(p.groups[0].index == 1);
    CHECK(p.groups[0].plugin == "echo");
    REQUIRE(p.groups[0].task_count() == 1);  // neither tasks nor [[group.task]]: one task
    CHECK(p.groups[0].task_id(0) == "0");
    CHECK(p.scheduler.max_processes >= 1);
    CHECK(p.scheduler.task_timeout.count() == 0);
    CHECK(p.digest.rfind("sha256:", 0) == 0);
    CHECK(p.digest.size() == 7 + 64);
}

TEST_CASE("a plan with the keys of docs/plan.md's [[group]] section") {
    auto p = parse(R"(
workdir = "runs/demo"
plugin-path = ["plugins", "/opt/fedflow"]
[scheduler]
max-processes = 20
task-timeout = "90s"

[[group]]
name = "clients"
plugin = "fedavg_client"
device = "cuda:0"
params = { lr = 0.1, epochs = 5, tags = ["a", "b"], opt = { momentum = 0.9 } }
tasks = 3

[[group.task]]
id = "client-a"
params = { shard = 0, lr = 0.5 }
device = "cuda:1"

[[group]]
name = "server"
plugin = "./lib/server.so"
inputs = ["clients"]
)");
    CHECK(p.workdir == "/plans/runs/demo");
    REQUIRE(p.plugin_path.size() == 2);
    CHECK(p.plugin_path[0] == "/plans/plugins");
    CHECK(p.plugin_path[1] == "/opt/fedflow");
    CHECK(p.scheduler.max_processes == 20);
    CHECK(p.scheduler.task_timeout.count() == 90000);
    REQUIRE(p.groups.size() == 2);
    const auto& c = p.groups[0];
    CHECK(c.device == "cuda:0");
    REQUIRE(c.task_count() == 4);
    CHECK(c.task_id(0) == "0");
    CHECK(c.task_id(2) == "2");
    CHECK(c.task(0).params.at("epochs").as<std::int64_t>() == 5);
    CHECK(c.task(0).params.at("tags").as<List>().size() == 2);
    CHECK(c.task(0).params.at("opt").as<Dict>().at("momentum").as<double>() == doctest::Approx(0.9));
    CHECK(c.task_id(3) == "client-a");
    const auto& a = c.task(3);
    CHECK(a.id == "client-a");
    CHECK(a.device == "cuda:1");
    CHECK(a.params.at("lr").as<double>() == doctest::Approx(0.5));  // the task's own wins
    CHECK(a.params.at("shard").as<std::int64_t>() == 0);
    CHECK(a.params.at("epochs").as<std::int64_t>() == 5);  // the group's is kept
    CHECK(p.groups[1].inputs == std::vector<std::string>{"clients"});
    CHECK(p.groups[1].plugin == "./lib/server.so");
    CHECK(p.find_group("server") == &p.groups[1]);
    CHECK(p.find_group("nope") == nullptr);
}

TEST_CASE("errors name file, line, column and key") {
    SUBCASE("unknown key, with did you mean") {
        auto e = errors("[[group]]\nplugin = \"echo\"\ntaks = 3\n");
        CHECK(e.find("/plans/p.toml:3:1:") != std::string::npos);
        CHECK(e.find("unknown key 'taks'") != std::string::npos);
        CHECK(e.find("did you mean 'tasks'?") != std::string::npos);
    }
    SUBCASE("an abbreviated key") {
        auto e = errors("[scheduler]\nmax-procs = 3\n[[group]]\nplugin = \"echo\"\n");
        CHECK(e.find("did you mean 'max-processes'?") != std::string::npos);
    }
    SUBCASE("errors come in file order") {
        auto e = errors("[[group]]\nplugin = \"echo\"\ntaks = 3\n[scheduler]\nmax-procs = 3\n");
        CHECK(e.find(":3:1:") < e.find(":5:1:"));
    }
    SUBCASE("unknown top-level key far from any: no suggestion") {
        auto e = errors("colour = 1\n[[group]]\nplugin = \"echo\"\n");
        CHECK(e.find("unknown key 'colour' in the plan") != std::string::npos);
        CHECK(e.find("did you mean") == std::string::npos);
    }
    SUBCASE("wrong type") {
        auto e = errors("[[group]]\nplugin = \"echo\"\ntasks = \"ten\"\n");
        CHECK(e.find("p.toml:3:9:") != std::string::npos);
        CHECK(e.find("key 'tasks'") != std::string::npos);
        CHECK(e.find("must be an integer, not a string") != std::string::npos);
    }
    SUBCASE("TOML syntax") {
        auto e = errors("[[group]\nplugin = \"echo\"\n");
        CHECK(e.find("/plans/p.toml:1:") != std::string::npos);
    }
    SUBCASE("every error is reported, not just the first") {
        auto e = errors("[[group]]\nplugin = 1\n[[group]]\nname = \"a b\"\nplugin = \"x\"\n");
        CHECK(e.find(":2:") != std::string::npos);
        CHECK(e.find(":4:") != std::string::npos);
    }
}

TEST_CASE("names that would overwrite the run's own files are reserved") {
    CHECK(errors("[[group]]\nname = \"run.json\"\nplugin = \"echo\"\n").find("reserved") != std::string::npos);
    CHECK(errors("[[group]]\nname = \"events.jsonl\"\nplugin = \"echo\"\n").find("reserved") != std::string::npos);
    CHECK(errors("[[group]]\nname = \".fedflow.lock\"\nplugin = \"echo\"\n").find("reserved") != std::string::npos);
    CHECK(errors("[[group]]\nname = \".fedflow.reserve\"\nplugin = \"echo\"\n").find("reserved") != std::string::npos);
    CHECK(errors("[[group]]\nplugin = \"echo\"\n[[group.task]]\nid = \"report.json\"\n").find("reserved") !=
          std::string::npos);
}

TEST_CASE("names and ids cannot escape the workdir") {
    for (const char* bad : {"../x", "..", ".", "a/b", "a b"}) {
        CAPTURE(bad);
        auto e = errors(std::string("[[group]]\nplugin = \"echo\"\n[[group.task]]\nid = \"") + bad + "\"\n");
        CHECK(e.find("may use only letters, digits") != std::string::npos);
        auto g = errors(std::string("[[group]]\nname = \"") + bad + "\"\nplugin = \"echo\"\n");
        CHECK(g.find("may use only letters, digits") != std::string::npos);
    }
    SUBCASE("an empty name or one that is too long is told so, not the characters") {
        CHECK(errors("[[group]]\nname = \"\"\nplugin = \"echo\"\n") ==
              "/plans/p.toml:2:8: name '' in [[group]] number 1 must have at least 1 character\n");
        CHECK(errors("[[group]]\nplugin = \"echo\"\n[[group.task]]\nid = \"\"\n") ==
              "/plans/p.toml:4:6: task id '' in group 'group-1' must have at least 1 character\n");
        const std::string long_name(256, 'a');
        CHECK(errors("[[group]]\nname = \"" + long_name + "\"\nplugin = \"echo\"\n")
                  .find("has 256 characters, more than the 255 a name may have") != std::string::npos);
        CHECK_NOTHROW(parse("[[group]]\nname = \"" + std::string(255, 'a') + "\"\nplugin = \"echo\"\n"));
    }
    CHECK(fedflow::names::valid("client-a_1.2"));
    CHECK_FALSE(fedflow::names::valid("client/a"));
}

TEST_CASE("tasks = N: N tasks alike, kept as one spec and a count") {
    auto p = parse("[[group]]\nplugin = \"echo\"\nparams = { lr = 0.5 }\ntasks = 100000\n"
                   "[[group.task]]\nid = \"extra\"\nparams = { lr = 0.1 }\n");
    const auto& g = p.groups[0];
    CHECK(g.count == 100000);
    REQUIRE(g.tasks.size() == 1);  // only the [[group.task]]: no spec per alike task
    REQUIRE(g.task_count() == 100001);
    CHECK(g.task_id(0) == "0");
    CHECK(g.task_id(12345) == "12345");
    CHECK(g.task_id(99999) == "99999");
    CHECK(g.task_id(100000) == "extra");  // [[group.task]]s come after the alike ones
    CHECK(&g.task(0) == &g.task(99999));
    CHECK(&g.task(0) == &g.alike);
    CHECK(g.task(7).params.at("lr").as<double>() == doctest::Approx(0.5));
    CHECK(g.task(7).where.line == 4);  // `tasks = ...`: where each alike task is written
    CHECK(g.task(100000).params.at("lr").as<double>() == doctest::Approx(0.1));
    CHECK(g.specs() == std::vector<const plan::TaskSpec*>{&g.alike, &g.tasks[0]});

    auto only = parse("[[group]]\nplugin = \"echo\"\n[[group.task]]\nid = \"a\"\n");
    CHECK(only.groups[0].count == 0);  // [[group.task]] alone: no implicit task "0"
    CHECK(only.groups[0].task_count() == 1);
    CHECK(only.groups[0].task_id(0) == "a");
    CHECK(only.groups[0].specs().size() == 1);
}

TEST_CASE("duplicates and missing pieces") {
    CHECK(errors("[[group]]\nplugin = \"echo\"\ntasks = 2\n[[group.task]]\nid = \"1\"\n")
              .find("task id '1' appears twice") != std::string::npos);
    CHECK(
        errors("[[group]]\nplugin = \"echo\"\ntasks = 2\n[[group.task]]\nid = 0\n").find("task id '0' appears twice") !=
        std::string::npos);
    CHECK(errors("[[group]]\nplugin = \"echo\"\n[[group.task]]\nid = \"a\"\n[[group.task]]\nid = \"a\"\n")
              .find("task id 'a' appears twice") != std::string::npos);
    // Not the ids of `tasks = 2` ("0", "1"): no clash.
    for (const char* id : {"2", "01", "1a", "-1", "10"})
        CHECK_NOTHROW(
            parse(std::string("[[group]]\nplugin = \"echo\"\ntasks = 2\n[[group.task]]\nid = \"") + id + "\"\n"));
    CHECK(errors("[[group]]\nname = \"a\"\nplugin = \"echo\"\n[[group]]\nname = \"a\"\nplugin = \"echo\"\n")
              .find("group name 'a' is used twice") != std::string::npos);
    // Each later use once, against the first (a third 'a' was told twice at its line).
    CHECK(errors("[[group]]\nname = \"a\"\nplugin = \"e\"\n[[group]]\nname = \"a\"\nplugin = \"e\"\n"
                 "[[group]]\nname = \"a\"\nplugin = \"e\"\n") ==
          "/plans/p.toml:4:1: group name 'a' is used twice (first at line 1)\n"
          "/plans/p.toml:7:1: group name 'a' is used twice (first at line 1)\n");
    CHECK(errors("[[group]]\nname = \"a\"\n").find("needs a plugin") != std::string::npos);
    CHECK(errors("workdir = \"x\"\n").find("no [[group]]") != std::string::npos);
    CHECK(errors("[[group]]\nplugin = \"echo\"\n[[group.task]]\nparams = {}\n").find("needs an id") !=
          std::string::npos);
    CHECK(errors("[[group]]\nplugin = \"echo\"\ntasks = 0\n").find("has no tasks") != std::string::npos);
    CHECK(errors("[[group]]\nplugin = \"echo\"\ntasks = -1\n").find("between 0 and") != std::string::npos);
}

TEST_CASE("inputs must name a group that runs before") {
    auto e = errors("[[group]]\nname = \"server\"\nplugin = \"s\"\ninputs = [\"clients\"]\n"
                    "[[group]]\nname = \"clients\"\nplugin = \"c\"\n");
    CHECK(e.find("4:11: inputs of group 'server': group 'clients' (line 5) never runs before it") != std::string::npos);
    CHECK(errors("[[group]]\nname = \"clients\"\nplugin = \"c\"\n[[group]]\nplugin = \"s\"\ninputs = [\"client\"]\n")
              .find("did you mean 'clients'?") != std::string::npos);
    CHECK(errors("[[group]]\nname = \"a\"\nplugin = \"c\"\ninputs = [\"a\"]\n").find("lists itself") !=
          std::string::npos);
    // An abbreviation, further than a few edits from the name.
    CHECK(errors("[[group]]\nname = \"aggregation-server\"\nplugin = \"s\"\n[[group]]\nname = \"clients\"\n"
                 "plugin = \"c\"\ninputs = [\"agg-server\"]\n")
              .find("there is no group 'agg-server' (did you mean 'aggregation-server'?)") != std::string::npos);
}

TEST_CASE("devices") {
    CHECK(device::valid("cpu"));
    CHECK(device::valid("cuda:0"));
    CHECK(device::valid("cuda:12"));
    CHECK_FALSE(device::valid("cuda:"));
    CHECK_FALSE(device::valid("cuda:x"));
    CHECK_FALSE(device::valid("gpu0"));
    CHECK(
        errors("[[group]]\nplugin = \"echo\"\ndevice = \"gpu0\"\n").find("must be \"cpu\", \"cuda:N\" or \"sim:N\"") !=
        std::string::npos);
}

TEST_CASE("rounds: groups in file order, round blocks, counts") {
    plan::Plan p = parse(R"(
[[group]]
name = "setup"
plugin = "echo"

[[round]]
count = 20
stop-when = "stop"
keep-rounds = 2
  [[round.group]]
  name = "clients"
  plugin = "fedavg_client"
  tasks = 10
  inputs = ["server", "setup"]
  [[round.group]]
  name = "server"
  plugin = "fedavg_server"
  inputs = ["clients", "server"]

[[group]]
name = "final"
plugin = "echo"
inputs = ["server"]
)");
    REQUIRE(p.groups.size() == 4);
    CHECK(p.groups[0].name == "setup");
    CHECK(p.groups[0].block == 0);
    CHECK(p.groups[1].name == "clients");
    CHECK(p.groups[1].block == 1);
    CHECK(p.groups[1].index == 2);
    CHECK(p.groups[1].inputs == std::vector<std::string>{"server", "setup"});    // the server of the round before
    CHECK(p.groups[2].inputs == std::vector<std::string>{"clients", "server"});  // itself: its previous round
    CHECK(p.groups[3].name == "final");
    CHECK(p.groups[3].block == 0);
    REQUIRE(p.rounds.size() == 1);
    CHECK(p.rounds[0].count == 20);
    CHECK(p.rounds[0].stop_when == "stop");
    CHECK(p.rounds[0].keep_rounds == 2);
    CHECK(p.rounds[0].first == 1);
    CHECK(p.rounds[0].last == 3);
    CHECK(plan::round_dir(7, 20) == "round-007");
    CHECK(plan::round_dir(7, 5000) == "round-0007");
}

TEST_CASE("rounds: what can never have run before is an error") {
    // A group after the round cannot feed it, nor a later round's group.
    auto e = errors(R"([[round]]
count = 2
  [[round.group]]
  name = "clients"
  plugin = "c"
  inputs = ["late"]
[[group]]
name = "late"
plugin = "x"
)");
    CHECK(e.find("6:13: inputs of group 'clients': group 'late' (line 7) never runs before it") != std::string::npos);
    CHECK(errors("[[round]]\ncount = 0\n[[round.group]]\nplugin = \"c\"\n").find("between 1 and") != std::string::npos);
    CHECK(errors("[[round]]\n[[round.group]]\nplugin = \"c\"\n").find("[[round]] number 1 needs a count") !=
          std::string::npos);
    CHECK(errors("[[round]]\ncount = 3\n").find("has no [[round.group]]") != std::string::npos);
    CHECK(errors("[[round]]\ncount = 3\nstop-when = \"\"\n[[round.group]]\nplugin = \"c\"\n").find("stop-when") !=
          std::string::npos);
    CHECK(errors("[[round]]\ncount = 3\nrepeat = 2\n[[round.group]]\nplugin = \"c\"\n")
              .find("unknown key 'repeat' in [[round]] number 1") != std::string::npos);
    CHECK(errors("[[group]]\nname = \"round-002\"\nplugin = \"c\"\n").find("reserved for the folders of rounds") !=
          std::string::npos);
    CHECK(errors("[[group]]\nname = \"a\"\nplugin = \"c\"\n[[round]]\ncount = 2\n[[round.group]]\nname = \"a\"\n"
                 "plugin = \"c\"\n")
              .find("group name 'a' is used twice") != std::string::npos);
}

TEST_CASE("resources and scheduler keys") {
    plan::Plan p = parse(R"(
[resources]
cpu-utilization = 0.5
memory-utilization = 1
gpu-memory-utilization = 0.95
memory-reserve = "4GB"
gpu-memory-reserve = 1024
gpus = [2, 0]
[scheduler]
max-processes = 20
max-waiting = 10
load-retries = 1
train-retries = 5
gpu-order = "total-memory"
default-memory = "1.5GiB"
default-gpu-memory = "300MB"
auto-adjust = false
[[group]]
plugin = "echo"
memory = "2.5GB"
gpu-memory = "1200MB"
[[group.task]]
id = "a"
memory = "1GB"
)");
    CHECK(p.resources.cpu_utilization == 0.5);
    CHECK(p.resources.memory_utilization == 1.0);
    CHECK(p.resources.gpu_memory_utilization == 0.95);
    CHECK(p.resources.memory_reserve == 4'000'000'000);
    CHECK(p.resources.gpu_memory_reserve == 1024);
    CHECK(p.resources.use_gpus);
    CHECK(p.resources.gpus == std::vector<int>{2, 0});
    CHECK(p.scheduler.max_processes == 20);
    CHECK(p.scheduler.max_waiting == 10);
    CHECK(p.scheduler.load_retries == 1);
    CHECK(p.scheduler.train_retries == 5);
    CHECK(p.scheduler.gpu_order == sched::GpuOrder::total_memory);
    CHECK(p.scheduler.default_memory == 1610612736);
    CHECK(p.scheduler.default_gpu_memory == 300'000'000);
    CHECK_FALSE(p.scheduler.auto_adjust);
    REQUIRE(p.groups.size() == 1);
    CHECK(p.groups[0].memory == 2'500'000'000);
    CHECK(p.groups[0].gpu_memory == 1'200'000'000);
    REQUIRE(p.groups[0].task_count() == 1);
    CHECK(p.groups[0].task(0).memory == 1'000'000'000);
    CHECK_FALSE(p.groups[0].task(0).gpu_memory);

    plan::Plan d = parse("[resources]\ngpus = \"none\"\n[[group]]\nplugin = \"echo\"\n");
    CHECK_FALSE(d.resources.use_gpus);
    CHECK_FALSE(d.groups[0].memory);
    CHECK(d.scheduler.auto_adjust);
    CHECK(d.scheduler.gpu_order == sched::GpuOrder::free_memory);
}

TEST_CASE("bad resources and scheduler values say where and what") {
    struct Case {
        const char* text;
        const char* message;
    };
    for (const Case& c : {
             Case{"[resources]\ncpu-utilization = 1.5\n",
                  "2:19: key 'cpu-utilization' in [resources] must be a number above 0"},
             Case{"[resources]\nmemory-utilization = 0\n", "above 0 and at most 1"},
             Case{"[resources]\nmemory-reserve = \"4 parsecs\"\n", "key 'memory-reserve' in [resources]"},
             Case{"[resources]\ngpus = \"some\"\n", "must be \"all\", \"none\" or a list"},
             Case{"[resources]\ngpus = [0, 0]\n", "GPU 0 appears twice"},
             Case{"[resources]\ngpus = []\n", "empty list"},
             Case{"[resources]\ngpus = [-1]\n", "list of GPU indices"},
             Case{"[resources]\ncpu-utilisation = 0.5\n", "did you mean 'cpu-utilization'?"},
             Case{"[scheduler]\ngpu-order = \"random\"\n", "gpu-order 'random' in [scheduler] must be"},
             Case{"[scheduler]\nauto-adjust = \"yes\"\n", "key 'auto-adjust' in [scheduler] must be a boolean"},
             Case{"[scheduler]\nload-retries = -1\n", "key 'load-retries' in [scheduler] must be between 0 and 1000"},
             Case{"[scheduler]\ndefault-memory = true\n", "must be a size such as"},
         }) {
        CAPTURE(c.text);
        CHECK(errors(std::string(c.text) + "[[group]]\nplugin = \"echo\"\n").find(c.message) != std::string::npos);
    }
    CHECK(errors("[[group]]\nplugin = \"echo\"\nmemory = \"-3GB\"\n").find("3:10: key 'memory' in group 'group-1'") !=
          std::string::npos);
    CHECK(errors("[[group]]\nplugin = \"echo\"\n[[group.task]]\nid = \"a\"\ngpu-memory = [1]\n")
              .find("key 'gpu-memory' in [[group.task]] of group 'group-1' must be a size") != std::string::npos);
}

TEST_CASE("[notify]") {
    plan::Plan p = parse(R"(
[notify]
command = ["notify-send", "fedflow"]
on = "run"
smtp = { server = "smtp.example.org", from = "lab@example.org", to = "me@example.org", user = "lab", password-env = "SMTP_PASSWORD" }
[[group]]
plugin = "echo"
)");
    REQUIRE(p.notify);
    CHECK(p.notify->command == std::vector<std::string>{"notify-send", "fedflow"});
    CHECK_FALSE(p.notify->on_group);
    CHECK(p.notify->on_run);
    REQUIRE(p.notify->smtp);
    CHECK(p.notify->smtp->server == "smtp.example.org");
    CHECK(p.notify->smtp->to == std::vector<std::string>{"me@example.org"});
    CHECK(p.notify->smtp->security == "starttls");
    CHECK(p.notify->smtp->password_env == "SMTP_PASSWORD");
    CHECK_FALSE(parse("[[group]]\nplugin = \"echo\"\n").notify);

    for (const char* bad : {"[notify]\n", "[notify]\ncommand = []\n", "[notify]\ncommand = [\"x\"]\non = \"always\"\n",
                            "[notify]\nsmtp = { from = \"a@b\", to = \"c@d\" }\n",
                            "[notify]\nsmtp = { server = \"s\", from = \"nobody\", to = \"c@d\" }\n",
                            "[notify]\nsmtp = { server = \"s\", from = \"a@b\", to = \"c@d\", security = \"tls\" }\n",
                            "[notify]\nsmtp = { server = \"s\", from = \"a@b\", to = \"c@d\", password = \"x\" }\n"}) {
        CAPTURE(bad);
        CHECK(errors(std::string(bad) + "[[group]]\nplugin = \"echo\"\n").find("notify") != std::string::npos);
    }
}

TEST_CASE("--gpus selections") {
    sched::Limits r;
    plan::parse_gpus("none", r);
    CHECK_FALSE(r.use_gpus);
    plan::parse_gpus("0,2", r);
    CHECK(r.use_gpus);
    CHECK(r.gpus == std::vector<int>{0, 2});
    plan::parse_gpus("all", r);
    CHECK(r.gpus.empty());
    CHECK_THROWS_WITH_AS(plan::parse_gpus("0,,2", r), doctest::Contains("not a GPU selection"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(plan::parse_gpus("1,1", r), doctest::Contains("appears twice"), std::invalid_argument);
    CHECK(device::gpu_index("cuda:3") == 3);
    CHECK(device::gpu_index("cpu") == -1);
}

TEST_CASE("device names: cpu, cuda:N and sim:N (a simulated GPU of --simulate-gpus)") {
    for (const char* ok : {"cpu", "cuda:0", "cuda:123", "sim:0", "sim:12"}) CHECK_MESSAGE(device::valid(ok), ok);
    for (const char* bad : {"sim:", "sim:1234", "sim:x", "cuda", "gpu0", "SIM:1", "sim:-1"})
        CHECK_MESSAGE(!device::valid(bad), bad);
    CHECK(device::gpu_index("sim:2") == 2);
    CHECK(device::gpu_index("sim:") == -1);
    CHECK(device::simulated("sim:0"));
    CHECK_FALSE(device::simulated("cuda:0"));
    CHECK_FALSE(device::simulated("sim:"));
    CHECK(device::gpu_name(3, true) == "sim:3");
    CHECK(device::gpu_name(3, false) == "cuda:3");
    CHECK(parse("[[group]]\nplugin = \"echo\"\ndevice = \"sim:1\"\n").groups[0].device == "sim:1");
}

TEST_CASE("durations in the plan") {
    CHECK(parse("[scheduler]\ntask-timeout = 5\n[[group]]\nplugin = \"e\"\n").scheduler.task_timeout.count() == 5000);
    CHECK(parse("[scheduler]\ntask-timeout = \"0\"\n[[group]]\nplugin = \"e\"\n").scheduler.task_timeout.count() == 0);
    CHECK(errors("[scheduler]\ntask-timeout = \"soon\"\n[[group]]\nplugin = \"e\"\n").find("task-timeout") !=
          std::string::npos);
}

TEST_CASE("durations and sizes out of range are refused with the range, where they are written") {
    // 9999999h (and 10000000000 s) overflowed the deadline and timed every
    // task out at once; 1e30h became a negative count, which meant none.
    struct Case {
        const char* text;
        const char* message;
    };
    const std::string duration = "out of range: a duration is \"0\" (none) or from 1ms to 8760h (365 days)";
    const std::string size = "out of range: a size is at most 1 PiB (1125899906842624 bytes)";
    for (const Case& c : {
             Case{"[scheduler]\ntask-timeout = \"9999999h\"\n",
                  "2:16: key 'task-timeout' in [scheduler]: '9999999h' is "},
             Case{"[scheduler]\ntask-timeout = 10000000000\n",
                  "2:16: key 'task-timeout' in [scheduler]: 10000000000 seconds is "},
             Case{"[scheduler]\ntask-timeout = \"1e30h\"\n", "'1e30h' is "},
             Case{"[scheduler]\ntask-timeout = \"8761h\"\n", "'8761h' is "},
             Case{"[scheduler]\ntask-timeout = \"0.1ms\"\n", "'0.1ms' is "},
         }) {
        CAPTURE(c.text);
        CHECK(errors(std::string(c.text) + "[[group]]\nplugin = \"echo\"\n").find(c.message + duration) !=
              std::string::npos);
    }
    for (const Case& c : {
             Case{"[scheduler]\ndefault-memory = \"2000TB\"\n",
                  "2:18: key 'default-memory' in [scheduler]: '2000TB' is "},
             Case{"[scheduler]\nresult-limit = 9223372036854775807\n", "9223372036854775807 bytes is "},
             Case{"[resources]\nmemory-reserve = \"1e300GB\"\n", "'1e300GB' is "},
             Case{"[[group]]\nplugin = \"echo\"\ngpu-memory = \"1025TiB\"\n",
                  "3:14: key 'gpu-memory' in group 'group-1': '1025TiB' is "},
         }) {
        CAPTURE(c.text);
        CHECK(errors(std::string(c.text) + "[[group]]\nplugin = \"echo\"\n").find(c.message + size) !=
              std::string::npos);
    }
    // The ends of the ranges are accepted.
    CHECK(parse("[scheduler]\ntask-timeout = \"8760h\"\n[[group]]\nplugin = \"e\"\n").scheduler.task_timeout ==
          std::chrono::hours(8760));
    CHECK(parse("[scheduler]\ntask-timeout = \"1ms\"\n[[group]]\nplugin = \"e\"\n").scheduler.task_timeout.count() ==
          1);
    CHECK(*parse("[[group]]\nplugin = \"e\"\nmemory = \"1024TiB\"\n").groups[0].memory == (1ull << 50));
}

TEST_CASE("result-limit: a size, none by default") {
    CHECK(parse("[[group]]\nplugin = \"e\"\n").scheduler.result_limit == 0);
    CHECK(parse("[scheduler]\nresult-limit = \"1GiB\"\n[[group]]\nplugin = \"e\"\n").scheduler.result_limit ==
          1073741824);
    CHECK(parse("[scheduler]\nresult-limit = 4096\n[[group]]\nplugin = \"e\"\n").scheduler.result_limit == 4096);
    std::string e = errors("[scheduler]\nresult-limit = \"lots\"\n[[group]]\nplugin = \"e\"\n");
    CHECK(e.find("p.toml:2:16: key 'result-limit' in [scheduler]") != std::string::npos);
}

TEST_CASE("params take TOML values, not dates") {
    CHECK(errors("[[group]]\nplugin = \"e\"\nparams = { when = 1979-05-27 }\n").find("not a date") !=
          std::string::npos);
}

TEST_CASE("a missing plan file") {
    CHECK_THROWS_WITH_AS(plan::load("/nonexistent/plan.toml"), doctest::Contains("cannot read the plan file"),
                         PlanError);
}

TEST_CASE("a plan path that is not a regular file, or too large, is refused at once") {
    char dir_template[] = "/tmp/fedflow-plan-test-XXXXXX";
    REQUIRE(::mkdtemp(dir_template) != nullptr);
    const std::filesystem::path dir = dir_template;
    SUBCASE("a directory") {
        CHECK_THROWS_WITH_AS(plan::load(dir),
                             doctest::Contains(": cannot read the plan file: it is a directory, not a regular file"),
                             PlanError);
    }
    SUBCASE("a character device, which never ends") {
        CHECK_THROWS_WITH_AS(plan::load("/dev/zero"), doctest::Contains("it is a character device"), PlanError);
    }
    SUBCASE("a FIFO, which no one writes: refused, not waited for") {
        REQUIRE(::mkfifo((dir / "fifo").c_str(), 0600) == 0);
        CHECK_THROWS_WITH_AS(plan::load(dir / "fifo"), doctest::Contains("it is a FIFO (named pipe)"), PlanError);
    }
    SUBCASE("larger than max_plan_size") {
        const std::filesystem::path big = dir / "big.toml";
        std::ofstream(big).close();
        std::filesystem::resize_file(big, plan::max_plan_size + 1);
        CHECK_THROWS_WITH_AS(plan::load(big), doctest::Contains("it is 67108865 bytes, more than the 67108864"),
                             PlanError);
        std::filesystem::resize_file(big, 0);
        std::ofstream(big) << "[[group]]\nplugin = \"e\"\n";
        CHECK(plan::load(big).groups.size() == 1);
    }
    std::filesystem::remove_all(dir);
}

TEST_CASE("the digest follows the bytes") {
    // FIPS 180-4 test vectors: one block, two blocks, empty, many blocks.
    CHECK(plan::digest("abc") == "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK(plan::digest("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
          "sha256:248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    CHECK(plan::digest("") == "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK(plan::digest(std::string(1000000, 'a')) ==
          "sha256:cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    CHECK(parse("[[group]]\nplugin = \"e\"\n").digest != parse("[[group]]\nplugin = \"f\"\n").digest);
}
