#!/usr/bin/env python3
"""keep-loaded (docs/scheduling.md, "Kept clients"): task i of a [[round.group]]
with keep-loaded = true keeps its worker, and what its load built, from round to
round; each round trains it again with that round's inputs. keep_probe counts
loads and trains in its own process and returns its pid, so a test fails when
the process was not kept. Kept workers hold their RAM, GPU memory and process
slot between rounds; a stage that cannot start for want of them ends the least
recently kept one (evicted), which loads again in its next round. Crash,
timeout, out-of-memory retry, a SIGKILLed host and --resume, with both
worker-start modes."""
import os
import re
import signal
import sys
import time

import fftest
from fftest import HostTest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_fork_server  # noqa: E402  (processes_of_host, parent)
import test_python  # noqa: E402  (require_plugin)

GiB = 1 << 30


def plan_body(rounds=4, clients=3, keep=True, client_params="", client_extra="", server_extra=""):
    return """
[[round]]
count = %d
stop-on-failure = false

  [[round.group]]
  name = "clients"
  plugin = "keep_probe"
  tasks = %d
  keep-loaded = %s
  inputs = ["server"]
  params = { %s }
%s
  [[round.group]]
  name = "server"
  plugin = "round_math"
  params = { role = "server" }
  inputs = ["clients"]
%s""" % (rounds, clients, "true" if keep else "false", client_params, client_extra, server_extra)


class KeepLoaded(HostTest):
    def plan(self, body, scheduler=None, top="", name="plan.toml"):
        sched = {"max-processes": 8}
        sched.update(scheduler or {})
        return self.write_plan(body, scheduler=sched, top=top, name=name)

    def clients(self, r, rounds, clients=3):
        """{task: [(result, report entry) per round]}."""
        out = {}
        for n in range(1, rounds + 1):
            rd = "round-%03d" % n
            for t in range(clients):
                res = r.json(rd, "clients", str(t), "result.json")
                entry = r.json(rd, "clients", "report.json")["tasks"][str(t)]
                out.setdefault(str(t), []).append((res, entry))
        return out

    def wait_for_finished(self, wd, proc, round_, clients):
        """Until each of those clients has FINISHED that round."""
        for t in clients:
            self.wait_for_event(wd, lambda e: e.get("round") == round_ and e.get("group") == "clients" and
                                e.get("task") == t and e.get("status") == "FINISHED", proc)

    def evictions(self, r):
        return [e for e in r.events() if e.get("event") == "evicted"]

    def check_values(self, r, rounds, clients=3):
        # round_math's arithmetic: each round builds on the last server.
        server = 0
        for n in range(1, rounds + 1):
            rd = "round-%03d" % n
            for t in range(clients):
                self.assertEqual(r.json(rd, "clients", str(t), "result.json")["value"], server + n)
            server = r.json(rd, "server", "0", "result.json")["value"]
            self.assertEqual(server, clients * (server // clients))

    def test_kept_across_rounds_with_both_worker_starts(self):
        for start in ("fork-server", "exec"):
            with self.subTest(start=start):
                plan = self.plan(plan_body(rounds=4), scheduler={"worker-start": start}, name=start + ".toml")
                r = self.run_plan(plan, workdir="run-" + start)
                self.assertExit(r, 0)
                self.check_values(r, 4)
                for task, rounds in self.clients(r, 4).items():
                    pids = {res["pid"] for res, _ in rounds}
                    self.assertEqual(len(pids), 1, "task %s ran in one process: %s%s" % (task, pids, r.describe()))
                    for n, (res, entry) in enumerate(rounds, 1):
                        # Loaded once (in round 1), trained every round in
                        # the same process, with that round's ctx.round().
                        self.assertEqual((res["loads"], res["trains"], res["round"], res["loaded_round"]),
                                         (1, n, n, 1))
                        self.assertEqual(entry["keep_loaded"], {"kept": n > 1, "loads": 1, "evictions": 0})
                        self.assertEqual(entry["status"], "FINISHED")
                        # Each round's folder has its own logs: the worker
                        # moved into it.
                        self.assertTrue(os.path.exists(r.path("round-%03d" % n, "clients", task, "stdout.log")))
                # Every client's load ran once: 3 loads in the run.
                loading = [e for e in r.events() if e.get("status") == "LOADING" and e.get("group") == "clients"]
                self.assertEqual(len(loading), 3)
                kept = [e for e in r.events() if e.get("status") == "WAITING" and e.get("kept")]
                self.assertEqual(len(kept), 9)
                self.assertEqual(self.evictions(r), [])
                # No worker is left once the run ends.
                self.assertEqual(fftest.worker_cwds(r.workdir), [])

    def test_enough_process_slots_keep_every_client_and_say_nothing(self):
        r = self.run_plan(self.plan(plan_body(rounds=2), scheduler={"max-processes": 4}))
        self.assertExit(r, 0)
        self.assertEqual(self.evictions(r), [], r.describe())
        self.assertNotIn("cannot wait between rounds", r.stderr)

    def test_without_keep_loaded_every_round_loads(self):
        r = self.run_plan(self.plan(plan_body(rounds=3, keep=False)))
        self.assertExit(r, 0)
        for task, rounds in self.clients(r, 3).items():
            self.assertEqual(len({res["pid"] for res, _ in rounds}), 3)
            for res, entry in rounds:
                self.assertEqual((res["loads"], res["trains"]), (1, 1))
                self.assertNotIn("keep_loaded", entry)

    def test_process_slots_evict_the_least_recently_trained(self):
        # max-processes = 3: three kept clients fill every slot, so the
        # server's load ends one of them each round; it loads again next round.
        plan = self.plan(plan_body(rounds=4), scheduler={"max-processes": 3})
        r = self.run_plan(plan)
        self.assertExit(r, 0)
        self.check_values(r, 4)
        evicted = self.evictions(r)
        self.assertEqual(len(evicted), 3, r.describe())  # rounds 1-3; nothing is kept after the last
        clients = self.clients(r, 4)
        loads = sum(res["loads"] for rounds in clients.values() for res, _ in rounds if not _["keep_loaded"]["kept"])
        self.assertEqual(loads, 3 + 3)
        # The evicted one is the client that finished first in its round.
        ends = {}
        for e in r.events():
            if e.get("event") == "status" and e.get("group") == "clients" and e.get("status") == "FINISHED":
                ends.setdefault(e["round"], []).append(e["task"])
        for n, e in enumerate(evicted, 1):
            self.assertEqual(e["task"], ends[n][0], "round %d: %s" % (n, ends[n]))
        last = {t: rounds[-1][1]["keep_loaded"] for t, rounds in clients.items()}
        self.assertEqual(sum(k["evictions"] for k in last.values()), 3)
        self.assertInCI("loads again in its next round", r.stderr)
        # Said before the first round: 3 kept clients and a server need 4.
        self.assertIn("[[round]] 1: its keep-loaded groups have 3 task(s), and max-processes is 3: 1 of them cannot "
                      "wait between rounds, and are evicted and load again every round (max-processes = 4 keeps them "
                      "all, where RAM and GPU memory allow)", r.stderr)
        # The page's timeline marks each eviction (ticks on the same pixels
        # share one and say how many).
        with open(r.path("report.html"), encoding="utf-8") as f:
            page = f.read()
        ticks = re.findall(r'<rect class="ke"[^>]*><title>(\d+) evicted', page)
        self.assertEqual(sum(int(n) for n in ticks), 3)

    def test_ram_reservations_evict_kept_clients(self):
        # Each client reserves 30% of the RAM that is free now, the server
        # 50%: the server fits only once two kept clients are gone.
        with open("/proc/meminfo") as f:
            info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f}
        free = info["MemAvailable"]
        top = '[resources]\nmemory-utilization = 1.0\nmemory-reserve = "0"\ncpu-utilization = 1\n'
        plan = self.plan(plan_body(rounds=3, client_extra='  memory = "%d"\n' % (free * 3 // 10),
                                   server_extra='  memory = "%d"\n' % (free // 2)),
                         scheduler={"auto-adjust": False}, top=top)
        r = self.run_plan(plan)
        self.assertExit(r, 0)
        self.check_values(r, 3)
        evicted = len(self.evictions(r))
        # Two in each of rounds 1 and 2 as the RAM was at the start; others'
        # use of the machine moves it, so at least one each.
        self.assertGreaterEqual(evicted, 2, r.describe())
        clients = self.clients(r, 3)
        loads = sum(1 for rounds in clients.values() for _, entry in rounds if not entry["keep_loaded"]["kept"])
        self.assertEqual(loads, 3 + evicted)

    def test_gpu_memory_on_simulated_gpus_evicts_kept_clients(self):
        # Each client declares 3 GiB in train and keeps it; the 8 GiB GPU
        # holds two of them, and the server's 4 GiB only beside one.
        top = ('[resources]\ngpu-memory-utilization = 1.0\ngpu-memory-reserve = "0"\ncpu-utilization = 1\n')
        plan = self.plan(plan_body(rounds=3, client_params="gpu_mb = 3072",
                                   client_extra='  memory = "50MB"\n  gpu-memory = "3GiB"\n',
                                   server_extra='  memory = "50MB"\n  gpu-memory = "4GiB"\n'),
                         scheduler={"auto-adjust": False}, top=top)
        r = self.run_plan(plan, "--simulate-gpus", "8GiB", "--progress", "plain")
        self.assertExit(r, 0)
        self.check_values(r, 3)
        evicted = self.evictions(r)
        self.assertGreaterEqual(len(evicted), 2, r.describe())
        clients = self.clients(r, 3)
        loads = sum(1 for rounds in clients.values() for _, entry in rounds if not entry["keep_loaded"]["kept"])
        self.assertEqual(loads, 3 + len(evicted))
        # Each eviction made room for a stage that waited for GPU memory.
        waited = [e for e in r.events() if e.get("event") == "waiting" and e.get("resource") == "gpu-memory"]
        self.assertTrue(waited, r.describe())
        self.assertTrue(all(rounds[-1][0]["held"] == 0 for rounds in clients.values()))
        # The server trained on the GPU each round.
        for n in range(1, 4):
            self.assertEqual(r.json("round-%03d" % n, "server", "report.json")["tasks"]["0"]["device"], "sim:0")

    def test_crash_of_a_kept_worker_fails_that_round_and_loads_again(self):
        for start in ("fork-server", "exec"):
            with self.subTest(start=start):
                plan = self.plan(plan_body(rounds=3, client_params='crash_round = 2, crash_task = "1"'),
                                 scheduler={"worker-start": start}, name=start + ".toml")
                r = self.run_plan(plan, workdir="run-" + start)
                self.assertExit(r, 1)
                t = r.json("round-002", "clients", "report.json")["tasks"]["1"]
                self.assertEqual(t["status"], "EXCEPTION")
                self.assertEqual(t["stage"], "train")
                self.assertInCI("SIGABRT", t["message"])
                third = r.json("round-003", "clients", "1", "result.json")
                self.assertEqual((third["loads"], third["trains"], third["loaded_round"]), (1, 1, 3))
                first = r.json("round-001", "clients", "1", "result.json")
                self.assertNotEqual(first["pid"], third["pid"])
                self.assertEqual(r.json("round-003", "clients", "report.json")["tasks"]["1"]["keep_loaded"],
                                 {"kept": False, "loads": 2, "evictions": 0})
                # The others stayed in their first process.
                self.assertEqual(r.json("round-003", "clients", "0", "result.json")["loads"], 1)
                self.assertEqual(r.json("round-003", "clients", "0", "result.json")["trains"], 3)

    def test_timeout_in_a_kept_worker(self):
        plan = self.plan(plan_body(rounds=3, client_params='sleep_round = 2, sleep_task = "0", sleep_ms = 30000'),
                         scheduler={"task-timeout": "2s"})
        r = self.run_plan(plan)
        self.assertExit(r, 1)
        t = r.json("round-002", "clients", "report.json")["tasks"]["0"]
        self.assertEqual(t["status"], "EXCEPTION")
        self.assertInCI("timed out after 2", t["message"])
        third = r.json("round-003", "clients", "0", "result.json")
        self.assertEqual((third["loads"], third["loaded_round"]), (1, 3))
        self.assertEqual(r.json("round-003", "clients", "2", "result.json")["trains"], 3)

    def test_train_out_of_memory_in_a_kept_worker_keeps_its_data(self):
        plan = self.plan(plan_body(rounds=3, client_params="oom_round = 2"))
        r = self.run_plan(plan)
        self.assertExit(r, 0)
        for t in ("0", "1", "2"):
            entry = r.json("round-002", "clients", "report.json")["tasks"][t]
            self.assertEqual(entry["retries"], {"load": 0, "train": 1})
            res = r.json("round-003", "clients", t, "result.json")
            self.assertEqual((res["loads"], res["trains"], res["loaded_round"]), (1, 3, 1))

    def test_kept_workers_lost_with_their_fork_server_load_again(self):
        # Round 2: clients 0 and 1 finish and idle, kept; 2 trains. Their fork
        # server dies (SIGKILL) and takes them all with it: 2 trains again
        # (started by exec), and 0 and 1 load again in round 3.
        plan = self.plan(plan_body(rounds=3, client_params='sleep_round = 2, sleep_task = "2", sleep_ms = 3000'))
        wd = os.path.join(self.tmp, "run")
        proc = self.start_host(plan, "--workdir", wd)
        try:
            self.wait_for_finished(wd, proc, 2, ("0", "1"))
            # The clients' server (the server group's has its own): the
            # parent of the processes in the clients' folders.
            servers = sorted({test_fork_server.parent(pid) for pid, cwd in fftest.worker_cwds(wd)
                              if os.sep + "clients" + os.sep in cwd})
            self.assertEqual(len(servers), 1, "one fork server")
            self.assertIn(servers[0], test_fork_server.processes_of_host(proc.pid))
            os.kill(servers[0], signal.SIGKILL)
            r = self.finish_host(proc, wd, timeout=60)
        finally:
            fftest.kill_group(proc)
        self.assertExit(r, 0)
        self.check_values(r, 3)
        lost = "its fork server (pid %d) ended (killed by signal SIGKILL (Killed))" % servers[0]
        kept_ends = [e for e in r.events() if e.get("event") == "kept_exited"]
        self.assertEqual(sorted(e["task"] for e in kept_ends), ["0", "1"], r.describe())
        for e in kept_ends:
            self.assertEqual(e["how"], lost + ", and the worker with it")
        again = [e for e in r.events() if e.get("status") == "INTERRUPT"]
        self.assertEqual([(e["round"], e["task"], e["message"]) for e in again],
                         [(2, "2", lost + ", and its worker with it")])
        for t in ("0", "1", "2"):
            res = r.json("round-003", "clients", t, "result.json")
            self.assertEqual((res["loads"], res["loaded_round"]), (1, 2 if t == "2" else 3), t)

    def test_sigkilled_host_leaves_no_kept_worker_and_resume_loads_again(self):
        plan = self.plan(plan_body(rounds=3, client_params='sleep_round = 2, sleep_task = "2", sleep_ms = 60000'))
        wd = os.path.join(self.tmp, "run")
        proc = self.start_host(plan, "--workdir", wd)
        try:
            # Round 2: clients 0 and 1 finish and are kept; 2 sleeps.
            self.wait_for_finished(wd, proc, 2, ("0", "1"))
            os.kill(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=10)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and fftest.worker_cwds(wd):
                time.sleep(0.05)
            self.assertEqual(fftest.worker_cwds(wd), [], "workers survived the host")
        finally:
            fftest.kill_group(proc)
        # The sleeper sleeps no more on resume.
        with open(plan) as f:
            text = f.read()
        with open(plan, "w") as f:
            f.write(text.replace("sleep_round = 2", "sleep_round = 0"))
        r = self.run_plan(plan, "--resume", "--force")
        self.assertExit(r, 0)
        self.check_values(r, 3)
        # Nothing kept survives the host: every client loads again.
        for t in ("0", "1", "2"):
            res = r.json("round-003", "clients", t, "result.json")
            self.assertEqual(res["loads"], 1)
            self.assertEqual(res["loaded_round"], 2 if t == "2" else 3)

    def text(self, path):
        with open(path, encoding="utf-8") as f:
            return f.read()

    def test_plan_errors(self):
        plan = self.write_plan('[[group]]\nname = "g"\nplugin = "keep_probe"\nkeep-loaded = true\n')
        r = self.run_plan(plan)
        self.assertExit(r, 2)
        self.assertRegex(r.stderr, fftest.location_re("plan.toml", fftest.line_of(self.text(plan), "keep-loaded")))
        self.assertInCI("keep-loaded of group 'g' applies only to a group of a [[round]]", r.stderr)

        plan = self.write_plan(plan_body(rounds=2).replace("keep-loaded = true", 'keep-loaded = "yes"'),
                               name="type.toml")
        r = self.run_plan(plan)
        self.assertExit(r, 2)
        self.assertInCI("keep-loaded", r.stderr)
        self.assertRegex(r.stderr, fftest.location_re("type.toml", fftest.line_of(self.text(plan), "keep-loaded")))


PYTHON_CLIENT = r'''
import os
from fedflow import Task

LOADS = 0  # in this process


class Client(Task):
    def __init__(self, task_id):
        super().__init__(task_id)

    def load(self):
        global LOADS
        LOADS += 1
        self.loaded_round = self.round

    def train(self, device):
        server = self.inputs.get("server", {}).get("0")
        return {"value": (server["value"] if server else 0) + self.round, "round": self.round, "pid": os.getpid(),
                "loads": LOADS, "loaded_round": self.loaded_round, "cwd": os.getcwd(), "workdir": self.workdir}
'''


class PythonKeepLoaded(HostTest):
    def setUp(self):
        super().setUp()
        test_python.require_plugin(self)
        self.write("client.py", PYTHON_CLIENT)

    def test_self_round_and_self_inputs_change_in_a_kept_python_client(self):
        body = plan_body(rounds=3).replace('plugin = "keep_probe"', 'plugin = "python"').replace(
            "params = {  }", 'params = { module = "client.py", class = "Client" }')
        for start in ("fork-server", "exec"):
            with self.subTest(start=start):
                plan = self.write_plan(body, scheduler={"worker-start": start}, name=start + ".toml")
                r = self.run_plan(plan, workdir="run-" + start)
                self.assertExit(r, 0)
                server = 0
                for n in (1, 2, 3):
                    rd = "round-%03d" % n
                    pids = set()
                    for t in ("0", "1", "2"):
                        res = r.json(rd, "clients", t, "result.json")
                        self.assertEqual(res["value"], server + n)
                        self.assertEqual((res["round"], res["loads"], res["loaded_round"]), (n, 1, 1))
                        self.assertEqual(res["cwd"], r.path(rd, "clients", t))
                        self.assertEqual(res["workdir"], r.path(rd, "clients", t))
                        pids.add((t, res["pid"]))
                    server = r.json(rd, "server", "0", "result.json")["value"]
                    if n == 1:
                        first = pids
                    else:
                        self.assertEqual(pids, first, "the same processes every round")

    def test_arrays_a_kept_python_client_keeps_from_its_inputs_stay_that_rounds(self):
        # A FedProx-style client keeps the previous round's global model (a
        # view of its inputs) and reads it a round later. The worker unmaps
        # the inputs when the next round begins; the array must still hold
        # the old round's values, not the new file that the kernel may map
        # at the same address (nor crash when the new one is smaller).
        test_python.require_module(self, "numpy")
        self.write("keeper.py", KEEPER)
        plan = self.write_plan("""
[[round]]
count = 4
  [[round.group]]
  name = "clients"
  plugin = "python"
  tasks = 2
  keep-loaded = true
  inputs = ["server"]
  params = { module = "keeper.py", class = "Keeper" }
  [[round.group]]
  name = "server"
  plugin = "python"
  params = { module = "keeper.py", class = "Server" }
""", scheduler={"max-processes": 4})
        r = self.run_plan(plan)
        self.assertExit(r, 0)
        for n in (3, 4):
            for t in ("0", "1"):
                res = r.json("round-%03d" % n, "clients", t, "result.json")
                self.assertEqual(res["kept_round"], n - 2, r.describe())
                self.assertEqual(res["kept"], [n - 2] * 3, "the kept array reads another round's data" + r.describe())
                self.assertEqual(res["kept_size"], 5000 // (n - 2))


KEEPER = r'''
import numpy as np
from fedflow import Task


class Keeper(Task):
    def load(self):
        self.old = None

    def train(self, device):
        out = {"kept_round": None, "kept": None, "kept_size": None}
        if self.old is not None:
            old_round, old = self.old
            out = {"kept_round": old_round, "kept": [float(x) for x in old[:2]] + [float(old[-1])],
                   "kept_size": int(old.size)}
        server = self.inputs.get("server", {}).get("0")
        if server is not None:
            self.old = (self.round - 1, server["model"])  # the view, not a copy
        return out


class Server(Task):
    def train(self, device):
        # Smaller each round: a stale view past the new file's end faults.
        return {"model": np.full(5000 // self.round, float(self.round), np.float32)}
'''


if __name__ == "__main__":
    fftest.main()
