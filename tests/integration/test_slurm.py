#!/usr/bin/env python3
"""fedflow-host --slurm against a real Slurm cluster on this machine
(slurmcluster.py: munge, slurmctld, two slurmd n1 and n2 with fake GPUs),
set up once for this file and torn down at its end. Every run is inside its
own `salloc -N2`: tasks go to both nodes' agents, with simulated GPUs named
after their node; rounds pass their inputs across nodes; an agent killed
mid-run has its running tasks run again on the other node (or fail with
[slurm] requeue = 0, and --resume runs them); scancel of the job ends every
worker and --resume finishes the run; a workdir one node does not see is
refused with why. Skipped (77) without root or Slurm's packages."""
import json
import os
import signal
import subprocess
import sys
import time
import unittest

import fftest
import slurmcluster
from fftest import HostTest

SANITIZED = bool(os.environ.get("FEDFLOW_SANITIZED"))
TIMEOUT = 120 if SANITIZED else 60
CLUSTER = None
SKIP_WHY = "fedflow-host is not built"


def setUpModule():
    global CLUSTER, SKIP_WHY
    if not fftest.have_host():
        return
    SKIP_WHY = slurmcluster.unavailable()
    if SKIP_WHY:
        return
    import tempfile
    root = tempfile.mkdtemp(prefix="fedflow-slurm-")
    CLUSTER = slurmcluster.Cluster(root)
    try:
        CLUSTER.start()
    except Exception:
        CLUSTER.stop()
        raise


def tearDownModule():
    if CLUSTER is not None:
        CLUSTER.stop()
        if not os.environ.get("FEDFLOW_KEEP_TMP"):
            import shutil
            shutil.rmtree(CLUSTER.root, ignore_errors=True)


def agents():
    """pid -> node of every `fedflow-host agent` of this file's cluster (not
    those of another test run on the same machine)."""
    out = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % p, "rb") as f:
                argv = f.read().split(b"\0")
            if len(argv) < 2 or not argv[0].endswith(b"fedflow-host") or argv[1] != b"agent":
                continue
            with open("/proc/%s/environ" % p, "rb") as f:
                env = dict(kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv)
        except OSError:
            continue
        if CLUSTER is None or env.get(b"SLURM_CONF", b"").decode() != CLUSTER.env["SLURM_CONF"]:
            continue
        out[int(p)] = env.get(b"SLURMD_NODENAME", b"?").decode()
    return out


def text(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def workers_under(path):
    """pids of processes whose cwd is below path (a run's workers)."""
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                if os.readlink("/proc/%s/cwd" % p).startswith(path):
                    out.append(int(p))
            except OSError:
                pass
    return out


PLAN_TOP = """
[resources]
cpu-utilization = 1.0
memory-reserve = "1MB"
gpu-memory-reserve = "0B"
"""


class Slurm(HostTest):
    def setUp(self):
        super().setUp()
        if CLUSTER is None:
            self.skipTest(SKIP_WHY)
        self.workdir = os.path.join(self.tmp, "run")

    def tearDown(self):
        # Nothing of a run may outlive it: no agent, no worker.
        deadline = time.monotonic() + 10
        while (agents() or workers_under(self.workdir)) and time.monotonic() < deadline:
            time.sleep(0.1)
        left, workers = agents(), workers_under(self.workdir)
        for pid in list(left) + workers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for job in CLUSTER.jobs():
            CLUSTER.run(["scancel", job[0]])
        super().tearDown()
        self.assertEqual(left, {}, "node agents left running")
        self.assertEqual(workers, [], "workers left running")

    def plan(self, body, slurm="", scheduler=None):
        sched = {"max-processes": 0, "default-memory": "20MB", "default-gpu-memory": "1GiB"}
        sched.update(scheduler or {})
        return self.write_plan(body, scheduler=sched, top=PLAN_TOP + slurm + "\n")

    def salloc(self, plan, *args, background=False, resume=False):
        argv = [fftest.HOST, plan, "--workdir", self.workdir, "--progress", "none", "--simulate-gpus", "2x8GiB"]
        argv += (["--resume"] if resume else []) + list(args)
        env = dict(CLUSTER.env)
        env.update({k: v for k, v in os.environ.items() if k.startswith(("FEDFLOW_", "ASAN_", "UBSAN_"))})
        p = CLUSTER.salloc_popen(["-N2", "--gres=gpu:2", "--job-name=fedflow-test"], argv, env=env, cwd=self.tmp)
        if background:
            return p
        return self.finish(p)

    def finish(self, p, timeout=TIMEOUT):
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            CLUSTER.kill_session(p.pid)
            out, err = p.communicate()
            self.fail("salloc fedflow-host did not end within %ss\n%s\n%s" % (timeout, err[-4000:], CLUSTER.logs()))
        return fftest.Result(p.args, p.returncode, out, err, 0, self.workdir)

    def trains(self, r):
        """task -> the devices it trained on, in order."""
        out = {}
        for e in r.events():
            if e.get("event") == "status" and e.get("status") == "TRAINING":
                out.setdefault(e["task"], []).append(e["device"])
        return out

    def finished_count(self, r):
        out = {}
        for e in r.events():
            if e.get("event") == "status" and e.get("status") == "FINISHED":
                out[e["task"]] = out.get(e["task"], 0) + 1
        return out

    def wait_training_on(self, r_workdir, node, proc, count=1):
        seen = set()

        def match(e):
            if e.get("event") == "status" and e.get("status") == "TRAINING" and e["device"].startswith(node + "/"):
                seen.add(e["task"])
            return len(seen) >= count

        self.wait_for_event(r_workdir, match, proc=proc, timeout=TIMEOUT)

    # -- tests ---------------------------------------------------------------

    def test_many_tasks_run_on_both_nodes_and_their_gpus(self):
        plan = self.plan('[[group]]\nname = "g"\nplugin = "fault_sleep"\ntasks = 24\n'
                         'params = { seconds = 0.2 }\ngpu-memory = "3GiB"\n')
        r = self.salloc(plan, "--slurm")
        self.assertEqual(r.rc, 0, r.describe())
        tasks = r.report("g")["tasks"]
        self.assertEqual(len(tasks), 24)
        for tid, t in tasks.items():
            self.assertEqual(t["status"], "FINISHED", (tid, t))
            self.assertEqual(r.result("g", tid)["slept"], 0.2)
        devices = {d for ds in self.trains(r).values() for d in ds}
        self.assertTrue(devices <= {"n1/sim:0", "n1/sim:1", "n2/sim:0", "n2/sim:1"}, devices)
        self.assertTrue(any(d.startswith("n1/") for d in devices) and any(d.startswith("n2/") for d in devices),
                        devices)
        # No result is left behind as a copied segment.
        self.assertEqual([d for d in os.listdir(r.path("g", "0")) if d.startswith(".fedflow")], [])
        # The page has a lane per node and GPU; run.json names them.
        page = r.read("report.html")
        for lane in ("n1/sim:0", "n1/sim:1", "n2/sim:0", "n2/sim:1"):
            self.assertIn(lane, page)
        names = [d["name"] for d in r.json("run.json")["devices"]] if "devices" in r.json("run.json") else []
        self.assertIn("n2/sim:1", json.dumps(r.json("run.json")), names)

    def test_rounds_pass_their_inputs_across_nodes(self):
        body = """
[[round]]
count = 3
  [[round.group]]
  name = "clients"
  plugin = "round_math"
  tasks = 4
  params = { role = "client" }
  inputs = ["server"]

  [[round.group]]
  name = "server"
  plugin = "round_math"
  params = { role = "server" }
  inputs = ["clients"]

[[group]]
name = "final"
plugin = "inputs_probe"
inputs = ["server"]
"""
        r = self.salloc(self.plan(body), "--slurm")
        self.assertEqual(r.rc, 0, r.describe())
        s = 0
        for rnd in range(1, 4):
            s = 4 * (s + rnd)
        self.assertEqual(r.result("final", "0")["inputs"]["server"]["0"]["value"], s)
        nodes = {d.split("/")[0] for ds in self.trains(r).values() for d in ds}
        self.assertEqual(nodes, {"n1", "n2"})

    KEEP_PLAN = """
[[round]]
count = 4
stop-on-failure = false
  [[round.group]]
  name = "clients"
  plugin = "keep_probe"
  tasks = 4
  keep-loaded = true
  inputs = ["server"]

  [[round.group]]
  name = "server"
  plugin = "round_math"
  params = { role = "server" }
  inputs = ["clients"]
"""

    def kept_clients(self, r, rounds=4, clients=4):
        """task -> [(result, report entry, device) per round]; checks
        round_math's arithmetic across the rounds on the way."""
        out, server = {}, 0
        for n in range(1, rounds + 1):
            rd = "round-%03d" % n
            report = r.json(rd, "clients", "report.json")["tasks"]
            for t in range(clients):
                res = r.json(rd, "clients", str(t), "result.json")
                self.assertEqual(res["value"], server + n, (rd, t))
                out.setdefault(str(t), []).append((res, report[str(t)], report[str(t)]["device"]))
            server = r.json(rd, "server", "0", "result.json")["value"]
        return out

    def test_keep_loaded_clients_stay_loaded_on_their_node(self):
        # docs/slurm.md: a kept client keeps its process on its node; the
        # next round trains it there with that round's inputs.
        r = self.salloc(self.plan(self.KEEP_PLAN), "--slurm")
        self.assertEqual(r.rc, 0, r.describe())
        nodes = set()
        for task, rounds in self.kept_clients(r).items():
            self.assertEqual(len({res["pid"] for res, _, _ in rounds}), 1, (task, rounds))
            self.assertEqual(len({dev.split("/")[0] for _, _, dev in rounds}), 1, (task, rounds))
            nodes.add(rounds[0][2].split("/")[0])
            for n, (res, entry, _) in enumerate(rounds, 1):
                self.assertEqual((res["loads"], res["trains"], res["round"]), (1, n, n))
                self.assertEqual(entry["keep_loaded"], {"kept": n > 1, "loads": 1, "evictions": 0})
        self.assertEqual(nodes, {"n1", "n2"})
        self.assertEqual([e for e in r.events() if e.get("event") == "evicted"], [])
        loading = [e for e in r.events() if e.get("status") == "LOADING" and e.get("group") == "clients"]
        self.assertEqual(len(loading), 4)

    def test_keep_loaded_clients_are_evicted_on_a_full_node(self):
        # Two processes per node: four kept clients fill both nodes, so the
        # server's load ends one of them (on one node, not on each) every
        # round but the last; that client loads again in its next round.
        r = self.salloc(self.plan(self.KEEP_PLAN, scheduler={"max-processes": 2}), "--slurm")
        self.assertEqual(r.rc, 0, r.describe())
        evicted = [e for e in r.events() if e.get("event") == "evicted"]
        # One per round; a second node may end one too when the first's
        # eviction takes longer than a sample period (a slow machine).
        self.assertGreaterEqual(len(evicted), 3, r.describe())
        self.assertLessEqual(len(evicted), 6, r.describe())
        clients = self.kept_clients(r)
        loads = sum(1 for rounds in clients.values() for _, entry, _ in rounds if not entry["keep_loaded"]["kept"])
        self.assertEqual(loads, 4 + len(evicted))
        self.assertEqual(sum(rounds[-1][1]["keep_loaded"]["evictions"] for rounds in clients.values()), len(evicted))

    def test_each_node_counts_the_mapped_inputs_in_its_ledger(self):
        # docs/scheduling.md, "Memory of mapped inputs": on whichever node it
        # runs, a consumer is admitted on its memory plus its input files.
        body = """
[[group]]
name = "producer"
plugin = "big_bytes"
tasks = 2
params = { size = 100000 }

[[group]]
name = "consumer"
plugin = "inputs_probe"
tasks = 4
memory = "1MB"
inputs = ["producer"]
"""
        r = self.salloc(self.plan(body), "--slurm")
        self.assertEqual(r.rc, 0, r.describe())
        starts = [e for e in r.events() if e.get("event") == "status" and e.get("status") == "AVAILABLE"
                  and e["group"] == "consumer"]
        self.assertEqual(len(starts), 4)
        self.assertEqual({e["memory_estimate"] for e in starts}, {1000000 + 2 * 100000})

    def test_failures_timeouts_and_out_of_memory_retries_as_on_one_machine(self):
        body = """
[[group]]
name = "crash"
plugin = "fault_segfault"
tasks = 2

[[group]]
name = "oom"
plugin = "fault_bad_alloc"
tasks = 2

[[group]]
name = "hang"
plugin = "fault_endless_loop"
tasks = 2

[[group]]
name = "after"
plugin = "echo"
tasks = 4
"""
        r = self.salloc(self.plan(body, scheduler={"task-timeout": "2s", "train-retries": 1}), "--slurm")
        self.assertEqual(r.rc, 1, r.describe())
        for tid, t in r.report("crash")["tasks"].items():
            self.assertEqual((t["status"], t["stage"]), ("EXCEPTION", "train"))
            self.assertIn("killed by signal SIGSEGV", t["message"])
            # The crash report is in the task's stderr.log, on the shared workdir.
            self.assertIn("SIGSEGV", r.read("crash", tid, "stderr.log"))
        for t in r.report("oom")["tasks"].values():
            self.assertEqual(t["status"], "EXCEPTION")
            self.assertIn("gave up after 1 train retry", t["message"])
            self.assertEqual(t["retries"]["train"], 1)
        for t in r.report("hang")["tasks"].values():
            self.assertEqual(t["message"], "timed out after 2s in train")
        for t in r.report("after")["tasks"].values():
            self.assertEqual(t["status"], "FINISHED")

    def kill_agent_mid_run(self, slurm=""):
        plan = self.plan('[[group]]\nname = "g"\nplugin = "fault_sleep"\ntasks = 8\nparams = { seconds = 2.0 }\n',
                         slurm=slurm)
        p = self.salloc(plan, *([] if slurm else ["--slurm"]), background=True)
        self.wait_training_on(self.workdir, "n2", p)
        victims = [pid for pid, node in agents().items() if node == "n2"]
        self.assertEqual(len(victims), 1, agents())
        os.kill(victims[0], signal.SIGKILL)
        return plan, self.finish(p)

    def test_a_lost_agent_has_its_running_tasks_run_again_on_the_other_node(self):
        _, r = self.kill_agent_mid_run()
        self.assertEqual(r.rc, 0, r.describe())
        self.assertIn("node n2 is lost", r.stderr)
        requeued = [e for e in r.events() if e.get("event") == "status" and e.get("requeue") == 1]
        self.assertTrue(requeued, r.describe())
        for e in requeued:
            self.assertIn("its node n2 was lost", e["message"])
            self.assertEqual(e["status"], "INTERRUPT")
        trains = self.trains(r)
        for e in requeued:
            # It ran on n2, then again on n1.
            self.assertTrue(trains[e["task"]][-1].startswith("n1/"), trains[e["task"]])
        # Nothing finished twice; everything finished.
        self.assertEqual(self.finished_count(r), {str(i): 1 for i in range(8)})

    def test_requeue_0_fails_the_lost_tasks_and_resume_runs_only_them(self):
        plan, r = self.kill_agent_mid_run(slurm="[slurm]\nenabled = true\nrequeue = 0\n")
        self.assertEqual(r.rc, 1, r.describe())
        failed = {tid for tid, t in r.report("g")["tasks"].items() if t["status"] == "EXCEPTION"}
        self.assertTrue(failed)
        for tid in failed:
            msg = r.report("g")["tasks"][tid]["message"]
            self.assertIn("its node n2 was lost", msg)
            self.assertIn("[slurm] requeue = 0", msg)
        finished_before = set(self.finished_count(r))
        r2 = self.salloc(plan, resume=True)
        self.assertEqual(r2.rc, 0, r2.describe())
        events = r2.events()
        last_start = max(i for i, e in enumerate(events) if e.get("event") == "run_start")
        started = {e["task"] for e in events[last_start:] if e.get("status") == "AVAILABLE"}
        self.assertEqual(started, {str(i) for i in range(8)} - finished_before)
        for tid, t in r2.report("g")["tasks"].items():
            self.assertEqual(t["status"], "FINISHED", (tid, t))

    def test_scancel_ends_every_worker_and_resume_finishes(self):
        plan = self.plan('[[group]]\nname = "g"\nplugin = "fault_sleep"\ntasks = 4\nparams = { seconds = 3.0 }\n')
        p = self.salloc(plan, "--slurm", background=True)
        self.wait_training_on(self.workdir, "n1", p)
        self.wait_training_on(self.workdir, "n2", p)
        jobs = CLUSTER.jobs()
        self.assertEqual(len(jobs), 1, jobs)
        CLUSTER.run(["scancel", jobs[0][0]], check=True)
        r = self.finish(p)
        self.assertNotEqual(r.rc, 0, r.describe())
        deadline = time.monotonic() + 10
        while (agents() or workers_under(self.workdir)) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertEqual(agents(), {})
        self.assertEqual(workers_under(self.workdir), [])
        r2 = self.salloc(plan, "--slurm", resume=True)
        self.assertEqual(r2.rc, 0, r2.describe())
        self.assertEqual(self.finished_count(r2), {str(i): 1 for i in range(4)})

    def test_ctrl_c_to_the_host_ends_every_remote_worker(self):
        plan = self.plan('[[group]]\nname = "g"\nplugin = "fault_sleep"\ntasks = 4\nparams = { seconds = 30.0 }\n')
        p = self.salloc(plan, "--slurm", background=True)
        self.wait_training_on(self.workdir, "n1", p)
        self.wait_training_on(self.workdir, "n2", p)
        hosts = [pid for pid in os.listdir("/proc") if pid.isdigit() and self.is_host(pid)]
        self.assertEqual(len(hosts), 1, hosts)
        os.kill(int(hosts[0]), signal.SIGINT)
        r = self.finish(p)
        self.assertEqual(r.rc, 3, r.describe())
        for t in r.report("g")["tasks"].values():
            self.assertEqual(t["status"], "EXCEPTION")
            self.assertIn("interrupted: the host received SIGINT", t["message"])

    def is_host(self, pid):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            return False
        return argv[0] == fftest.HOST.encode() and b"--workdir" in argv and self.workdir.encode() in argv

    def test_a_workdir_that_a_node_does_not_see_is_refused(self):
        if not os.path.ismount(CLUSTER.private) and not os.listdir(CLUSTER.private) == []:
            self.skipTest("no private mount for n2 (unshare missing)")
        self.workdir = os.path.join(CLUSTER.private, "run-%d" % os.getpid())
        plan = self.plan('[[group]]\nname = "g"\nplugin = "fault_sleep"\ntasks = 2\nparams = { seconds = 0.1 }\n')
        try:
            r = self.salloc(plan, "--slurm")
        finally:
            import shutil
            shutil.rmtree(self.workdir, ignore_errors=True)
        self.assertEqual(r.rc, 3, r.describe())
        self.assertIn("is not shared by every node of the job (node n2", r.stderr)
        self.assertIn("docs/slurm.md", r.stderr)


    def test_the_sbatch_example_runs_a_plan_and_resumes_it(self):
        # docs/examples/slurm/fedflow.sbatch as shipped; only the GPUs per
        # node are this cluster's.
        script = os.path.join(fftest.SOURCE_ROOT, "docs", "examples", "slurm", "fedflow.sbatch")
        plan = self.plan('[[group]]\nname = "g"\nplugin = "fault_sleep"\ntasks = 6\nparams = { seconds = 0.1 }\n')
        env = dict(CLUSTER.env)
        env.update({k: v for k, v in os.environ.items() if k.startswith(("FEDFLOW_", "ASAN_", "UBSAN_"))})
        env["PATH"] = os.path.dirname(fftest.HOST) + ":" + env["PATH"]
        self.workdir = os.path.join(self.tmp, "fedflow-runs", "plan")
        for run in (1, 2):
            r = CLUSTER.run(["sbatch", "--wait", "--quiet", "--gres=gpu:2", "--chdir", self.tmp, script, plan], env=env,
                            timeout=TIMEOUT)
            logs = [f for f in os.listdir(self.tmp) if f.startswith("fedflow-") and f.endswith(".log")]
            log = "".join(text(os.path.join(self.tmp, f)) for f in logs)
            self.assertEqual(r.returncode, 0, r.stderr + log)
            events = [json.loads(line) for line in text(os.path.join(self.workdir, "events.jsonl")).splitlines()]
            starts = [e for e in events if e.get("event") == "run_start"]
            self.assertEqual(len(starts), run)
            self.assertEqual(starts[-1]["resume"], run == 2)
        nodes = {e["device"].split("/")[0] for e in events if e.get("status") == "TRAINING"}
        self.assertEqual(nodes, {"n1", "n2"})
        # The second run found everything finished: nothing ran again.
        self.assertEqual(len([e for e in events if e.get("status") == "FINISHED"]), 6)


class WithoutAllocation(HostTest):
    def test_slurm_outside_an_allocation_is_bad_input(self):
        plan = self.write_plan('[[group]]\nplugin = "echo"\n')
        env = {k: "" for k in os.environ if k.startswith("SLURM_")}
        r = self.host(plan, "--slurm", "--workdir", os.path.join(self.tmp, "w"), env=env)
        self.assertEqual(r.rc, 2, r.describe())
        self.assertIn("not inside a Slurm allocation", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "w", "events.jsonl")))

    def test_slurm_table_is_checked(self):
        plan = self.write_plan('[[group]]\nplugin = "echo"\n', top="[slurm]\nrequeue = -1\nenable = true\n")
        r = self.host("validate", plan)
        self.assertEqual(r.rc, 2, r.describe())
        self.assertIn("requeue", r.stderr)
        self.assertIn("enable", r.stderr)


if __name__ == "__main__":
    fftest.main()
