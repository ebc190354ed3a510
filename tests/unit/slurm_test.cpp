// The pieces of --slurm that need no cluster: the link between the host and
// a node agent (every frame's round trip, and a broken one refused), the
// CPUs of SLURM_JOB_CPUS_PER_NODE, a step's GPUs mapped by UUID, and the
// names of a node's devices. The rest runs against a real Slurm cluster in
// tests/integration/test_slurm.py.
#include "common/device.hpp"
#include "exec/agent_link.hpp"
#include "exec/node_agent.hpp"
#include "exec/slurm_executor.hpp"

#include <doctest/doctest.h>

#include <csignal>

#include <sys/socket.h>
#include <unistd.h>

using namespace fedflow;
using namespace fedflow::exec;

TEST_CASE("SLURM_JOB_CPUS_PER_NODE: repeats and lists") {
    CHECK(parse_cpus_per_node("4(x2)", 2) == std::vector<unsigned>{4, 4});
    CHECK(parse_cpus_per_node("8,4(x2),2", 4) == std::vector<unsigned>{8, 4, 4, 2});
    CHECK(parse_cpus_per_node("16", 1) == std::vector<unsigned>{16});
    CHECK_THROWS_WITH(parse_cpus_per_node("4(x2)", 3), doctest::Contains("names the CPUs of 2 node(s), not of 3"));
    CHECK_THROWS_WITH(parse_cpus_per_node("4(2)", 2), doctest::Contains("cannot read '4(2)'"));
    CHECK_THROWS_WITH(parse_cpus_per_node("x", 1), doctest::Contains("cannot read 'x'"));
}

TEST_CASE("a step's GPUs are mapped by UUID, as CUDA renumbers them inside the step") {
    std::vector<sched::Gpu> gpus(4);
    for (int i = 0; i < 4; ++i) {
        gpus[static_cast<std::size_t>(i)].index = i;
        gpus[static_cast<std::size_t>(i)].uuid = "GPU-" + std::to_string(i);
    }
    GpuMapping m = map_step_gpus("1,3", gpus);
    CHECK(m.selected == std::vector<int>{1, 3});
    CHECK(m.cuda_visible == "GPU-1,GPU-3");
    CHECK(m.told.at(1) == "cuda:0");
    CHECK(m.told.at(3) == "cuda:1");
    SUBCASE("no Slurm GPUs, or simulated ones: nothing is mapped") {
        CHECK(map_step_gpus("", gpus).selected.empty());
        for (auto& g : gpus) g.simulated = true;
        CHECK(map_step_gpus("0,1", gpus).cuda_visible.empty());
    }
    SUBCASE("an index NVML does not have is left out") {
        CHECK(map_step_gpus("2,7", gpus).selected == std::vector<int>{2});
    }
}

TEST_CASE("a device of a node is named after it, and read as the node's own") {
    CHECK(device::local("n1/cuda:2") == "cuda:2");
    CHECK(device::node("n1/cuda:2") == "n1");
    CHECK(device::node("cuda:2").empty());
    CHECK(device::gpu_index("n12/sim:3") == 3);
    CHECK(device::simulated("n1/sim:0"));
    CHECK(device::gpu_index("n1/cpu") == -1);
    CHECK_FALSE(device::valid("n1/cuda:0"));  // a plan pins a GPU of whatever node runs the task
    sched::Gpu g;
    g.index = 1;
    g.node = "n2";
    CHECK(g.device() == "n2/cuda:1");
}

namespace {

// One frame through a socketpair, as the link carries it.
channel::Message through(agent::Frame f, const Dict& body) {
    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    REQUIRE(agent::send(sv[0], f, body));
    auto m = channel::receive(sv[1]);
    ::close(sv[0]);
    ::close(sv[1]);
    REQUIRE(m);
    CHECK(m->type == static_cast<channel::Type>(f));
    return *m;
}

}  // namespace

TEST_CASE("the link's frames make the round trip") {
    SUBCASE("hello") {
        agent::Hello h;
        h.scheduler.limits.gpus = {0, 2};
        h.scheduler.limits.memory_reserve = 123;
        h.scheduler.policy.max_processes = 7;
        h.scheduler.policy.gpu_order = sched::GpuOrder::pci;
        h.kill_grace = std::chrono::milliseconds(1500);
        h.simulate_gpus = "2x8GiB";
        h.node = "n3";
        agent::Hello back = agent::Hello::decode(through(agent::Frame::hello, h.encode()).body);
        CHECK(back.scheduler.limits.gpus == std::vector<int>{0, 2});
        CHECK(back.scheduler.limits.memory_reserve == 123);
        CHECK(back.scheduler.policy.max_processes == 7);
        CHECK(back.scheduler.policy.gpu_order == sched::GpuOrder::pci);
        CHECK(back.kill_grace.count() == 1500);
        CHECK(back.simulate_gpus == "2x8GiB");
        CHECK(back.node == "n3");
    }
    SUBCASE("ready") {
        agent::Ready r;
        r.hostname = "gpu17";
        r.containment = "cgroup";
        r.machine.cpus = 64;
        r.machine.ram_total = 1ull << 40;
        sched::Gpu g;
        g.index = 1;
        g.uuid = "GPU-x";
        g.total = 80ull << 30;
        r.machine.gpus.push_back(g);
        agent::Ready back = agent::Ready::decode(through(agent::Frame::ready, r.encode()).body);
        CHECK(back.hostname == "gpu17");
        CHECK(back.machine.cpus == 64);
        CHECK(back.machine.ram_total == 1ull << 40);
        REQUIRE(back.machine.gpus.size() == 1);
        CHECK(back.machine.gpus[0].uuid == "GPU-x");
        CHECK(back.machine.gpus[0].total == 80ull << 30);
    }
    SUBCASE("load and train") {
        agent::Load l;
        l.id = 42;
        l.workdir = "/w/g/0";
        l.memory = 5;
        l.config = messages::Config{}.encode();
        l.inputs_file = "/w/.fedflow-slurm/in1";
        l.preload = PreloadSpec{"/p/python.so", "python", {"torch", "numpy"}, Dict{{"python", "t.py"}}, "/plans"};
        agent::Load back = agent::Load::decode(through(agent::Frame::load, l.encode()).body);
        CHECK(back.id == 42);
        CHECK(back.memory == 5u);
        CHECK_FALSE(back.grown_memory);
        CHECK(back.inputs_file == l.inputs_file);
        REQUIRE(back.preload);
        CHECK(back.preload->modules == std::vector<std::string>{"torch", "numpy"});
        CHECK(back.preload->params == l.preload->params);
        CHECK(back.preload->plan_dir == "/plans");
        CHECK(back.may_evict);
        l.may_evict = false;
        CHECK_FALSE(agent::Load::decode(through(agent::Frame::load, l.encode()).body).may_evict);
        agent::NextRound next;
        next.id = 43;
        messages::Config c;
        c.round = 3;
        c.workdir = "/w/round-003/g/0";
        c.task_id = "0";
        c.group = "g";
        c.plan_dir = "/plans";
        c.plugin_path = "/p/g.so";
        c.plugin_name = "g";
        c.shm_prefix = "/fedflow-x-t43r3";
        next.config = c.encode();
        next.inputs_file = "/w/.fedflow-slurm/in2";
        agent::NextRound nb = agent::NextRound::decode(through(agent::Frame::next_round, next.encode()).body);
        CHECK(nb.id == 43);
        CHECK(messages::Config::decode(nb.config).round == 3);
        CHECK(messages::Config::decode(nb.config).workdir == c.workdir);
        CHECK(nb.inputs_file == next.inputs_file);
        TrainRequest t;
        t.pinned = "cuda:1";
        t.grown_gpu_memory = 9;
        WorkerId id = 0;
        TrainRequest tb = agent::decode_train(through(agent::Frame::train, agent::encode(t, 7)).body, id);
        CHECK(id == 7);
        CHECK(tb.pinned == "cuda:1");
        CHECK(tb.grown_gpu_memory == 9u);
    }
    SUBCASE("an admission") {
        Admission a;
        a.verdict = {sched::Verdict::Kind::wait, "", -1, "memory", "needs 2 GB, 1 GB free"};
        a.estimate = {77, "learned"};
        Admission back = agent::decode_admission(through(agent::Frame::reply, agent::encode(a)).body);
        CHECK(back.verdict.kind == sched::Verdict::Kind::wait);
        CHECK(back.verdict.reason == a.verdict.reason);
        CHECK(back.estimate.bytes == 77);
        CHECK(std::string(back.estimate.source) == "learned");
    }
    SUBCASE("events: a result message with its folder, and an exit") {
        Event e;
        e.id = 3;
        messages::Result r;
        r.size = 10;
        r.buffers = {{std::uint64_t{4}, 99}};
        e.message = r;
        e.result_dir = "/w/g/0/.fedflow-result";
        e.peaks = {100, 200};
        Event back = agent::decode_event(through(agent::Frame::event, agent::encode(e)).body);
        CHECK(back.kind == Event::Kind::message);
        CHECK(std::get<messages::Result>(back.message) == r);
        CHECK(back.result_dir == e.result_dir);
        CHECK(back.peaks.gpu_memory == 200);
        Event x;
        x.kind = Event::Kind::exited;
        x.id = 4;
        x.wait_status = SIGKILL;
        x.killed_for_memory = true;
        x.leftovers = 2;
        x.evicted = true;
        Event xb = agent::decode_event(through(agent::Frame::event, agent::encode(x)).body);
        CHECK(xb.kind == Event::Kind::exited);
        CHECK(xb.wait_status == SIGKILL);
        CHECK(xb.killed_for_memory);
        CHECK(xb.leftovers == 2);
        CHECK(xb.evicted);
        CHECK_FALSE(xb.server_lost);
        CHECK(xb.error.empty());
        // Killed with its fork server on the node: the host runs it again.
        x.server_lost = true;
        x.error = "its fork server (pid 7) ended (killed by signal SIGKILL (Killed))";
        Event lost = agent::decode_event(through(agent::Frame::event, agent::encode(x)).body);
        CHECK(lost.server_lost);
        CHECK(lost.error == x.error);
    }
    SUBCASE("devices") {
        std::size_t live = 0;
        auto back = agent::decode_devices(
            through(agent::Frame::state, agent::encode({{"RAM", 1, 2, 3, 4}, {"cuda:0", 5, 6, 7, 1}}, 9)).body, live);
        CHECK(live == 9);
        REQUIRE(back.size() == 2);
        CHECK(back[1].name == "cuda:0");
        CHECK(back[1].reserved == 7);
    }
}

TEST_CASE("a broken frame names the frame and the field") {
    Event e;
    Dict body = agent::encode(e);
    body.erase("id");
    CHECK_THROWS_WITH(agent::decode_event(body), doctest::Contains("'event' frame: field 'id' is missing"));
    Dict a = agent::encode(Admission{});
    a.insert_or_assign("kind", std::int64_t{9});
    CHECK_THROWS_WITH(agent::decode_admission(a), doctest::Contains("field 'kind' is out of range"));
    Dict h = agent::Hello{}.encode();
    h.insert_or_assign("gpus", "all");
    CHECK_THROWS_WITH(agent::Hello::decode(h), doctest::Contains("field 'gpus' is a string, not a list"));
}

TEST_CASE("not inside an allocation: bad input that says what to do") {
    ::unsetenv("SLURM_JOB_ID");
    ::unsetenv("SLURM_JOB_NODELIST");
    ::unsetenv("SLURM_NODELIST");
    CHECK_THROWS_AS(SlurmExecutor(SlurmExecutor::Options{}), std::invalid_argument);
    CHECK_THROWS_WITH(SlurmExecutor(SlurmExecutor::Options{}), doctest::Contains("run fedflow-host in `salloc`"));
}
