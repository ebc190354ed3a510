#!/usr/bin/env python3
"""Workers started by a fork server ([scheduler] worker-start, docs/scheduling.md
"Starting workers"): a forked worker is set up as an exec'd one; a plugin that
starts a thread when loaded, or a preload that fails, falls back to exec with a
warning; crashes, exit codes, stops, timeouts and out-of-memory retries are
told apart as for exec'd workers; a result sent just before its worker's exit
is read before the exit is told; a stopped fork server is ended rather than
hold the run; a SIGKILLed host leaves no process; Python
tasks start with the group's `preload` modules imported, their thread
settings restored, and are charged for their own memory, not the server's."""
import json
import os
import signal
import subprocess
import sys
import time

import fftest
from fftest import HostTest

sys.path.insert(0, os.path.dirname(__file__))
import test_python  # noqa: E402  (its helpers: the python plugin, the interpreter)


def group(plugin, tasks=1, extra=""):
    return '[[group]]\nname = "g"\nplugin = "%s"\ntasks = %d\n%s\n' % (plugin, tasks, extra)


def is_forked(result):
    """Whether the worker that returned result (process_info) was forked by a
    fork server. Under a PID namespace the parent cannot be seen: None."""
    if result["pid"] == 2 and result["parent"] == "":
        return None
    return "--fork-server" in result["parent"]


def parent(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return -1


def processes_of_host(host_pid):
    """Fork servers of that host (their command line names it) and the
    workers they forked (which have the same command line)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if b"--fork-server" in argv and str(host_pid).encode() in argv:
            found.append(int(pid))
    return found


class ForkServer(HostTest):
    def signal_server_when(self, plan, when, sig, *args):
        """Runs plan, sends sig to its (only) fork server at the first event
        for which when(event) holds, and waits for the run's end. Returns the
        run, the server's pid and the host's."""
        wd = os.path.join(self.tmp, "run")
        proc = self.start_host(plan, "--workdir", wd, *args)
        try:
            self.wait_for_event(wd, when, proc)
            servers = [p for p in processes_of_host(proc.pid) if parent(p) == proc.pid]
            self.assertEqual(len(servers), 1, "one fork server")
            os.kill(servers[0], sig)
            return self.finish_host(proc, wd, timeout=60), servers[0], proc.pid
        finally:
            fftest.kill_group(proc)

    def test_forked_worker_is_set_up_as_an_exec_one(self):
        results = {}
        for start in ("fork-server", "exec"):
            plan = self.write_plan(group("process_info", tasks=3), name=start + ".toml",
                                   scheduler={"worker-start": start})
            r = self.run_plan(plan, workdir=start)
            self.assertExit(r, 0)
            for i in range(3):
                res = r.result("g", str(i))
                self.assertEqual(res["fds"], [0, 1, 2, 3], "stdin, the logs and the channel only")
                self.assertEqual(res["cwd"], r.path("g", str(i)))
                self.assertEqual(res["blocked"], [])
                self.assertTrue(res["sigterm_default"])
                self.assertEqual(res["threads"], 1)
                with open(r.path("g", str(i), "stdout.log")) as f:
                    self.assertEqual(f.read(), "")
            results[start] = r.result("g", "0")
        forked, execd = results["fork-server"], results["exec"]
        # Its own process group (with a shim: the shim's, as for an exec'd worker).
        self.assertEqual(forked["pgrp"] == forked["pid"], execd["pgrp"] == execd["pid"], results)
        self.assertIn(is_forked(forked), (True, None))
        self.assertIn(is_forked(execd), (False, None))

    def test_thread_at_load_falls_back_to_exec(self):
        plan = self.write_plan(group("fault_thread_at_load", tasks=3))
        r = self.run_plan(plan)
        self.assertExit(r, 0)
        self.assertInCI("the fork server of plugin 'fault_thread_at_load' cannot fork: it runs 2 threads", r.stderr)
        self.assertInCI("its tasks start by exec", r.stderr)
        self.assertEqual(r.stderr.count("cannot fork"), 1, "warned once" + r.describe())
        for i in range(3):
            self.assertIn(is_forked(r.result("g", str(i))), (False, None))

    def test_a_start_that_failed_for_want_of_a_descriptor_is_tried_again(self):
        # The run's first start of the fork server fails with EMFILE (a
        # failpoint standing for a host out of descriptors for a moment): the
        # first tasks start by exec, and a second later the server starts
        # and forks the rest. Before, it stayed off for the whole run.
        plan = self.write_plan(group("process_info", tasks=6, extra="params = { seconds = 0.4 }"),
                               scheduler={"max-processes": 1})
        r = self.run_plan(plan, env={"FEDFLOW_FAILPOINTS": "fork-server-emfile"})
        self.assertExit(r, 0)
        self.assertInCI("the fork server of plugin 'process_info' could not start: fork server: socketpair: "
                        "too many open files; its tasks start by exec until it can (tried again in 1 s)", r.stderr)
        self.assertInCI("the fork server of plugin 'process_info' started", r.stderr)
        self.assertEqual(r.stderr.count("could not start"), 1, "warned once" + r.describe())
        started = [e["task"] for e in r.events() if e.get("status") == "LOADING"]
        self.assertEqual(len(started), 6, r.describe())
        self.assertIn(is_forked(r.result("g", started[0])), (False, None))
        self.assertIn(is_forked(r.result("g", started[-1])), (True, None))

    def test_bad_worker_start(self):
        plan = self.write_plan(group("process_info"), scheduler={"worker-start": "zygote"})
        r = self.run_plan(plan)
        self.assertExit(r, 2)
        self.assertInCI("worker-start 'zygote' in [scheduler] must be \"fork-server\" or \"exec\"", r.stderr)

    def test_bad_preload(self):
        plan = self.write_plan(group("process_info", extra="preload = [1]"))
        r = self.run_plan(plan)
        self.assertExit(r, 2)
        self.assertInCI("preload of group 'g' must be module names (strings)", r.stderr)

    def test_failures_are_told_apart(self):
        plan = self.write_plan(
            '[[group]]\nname = "seg"\nplugin = "fault_segfault"\n'
            '[[group]]\nname = "exit"\nplugin = "fault_exit"\n'
            '[[group]]\nname = "throw"\nplugin = "fault_throw_train"\n'
            '[[group]]\nname = "slow"\nplugin = "fault_sleep"\nparams = { seconds = 30 }\n',
            scheduler={"task-timeout": "1s"})
        r = self.run_plan(plan)
        self.assertExit(r, 1)
        self.assertEqual(r.task("seg", "0")["message"], "killed by signal SIGSEGV (Segmentation fault)")
        self.assertInCI("SIGSEGV", r.read("seg", "0", "stderr.log"))  # the crash report of a forked worker
        self.assertRegex(r.task("exit", "0")["message"], r"exited with code \d+")
        self.assertEqual(r.task("throw", "0")["stage"], "train")
        self.assertEqual(r.task("slow", "0")["message"], "timed out after 1s in train")

    def test_out_of_memory_retry(self):
        plan = self.write_plan(group("fault_bad_alloc"))
        r = self.run_plan(plan)
        t = r.task("g", "0")
        self.assertGreater(t["retries"]["train"] + t["retries"]["load"], 0, json.dumps(t) + r.describe())

    def test_frames_sent_just_before_an_exit_are_read(self):
        # A forked worker's exit comes from its server, read after poll():
        # a worker that sends its result and exits after the host's poll()
        # looked must still be read to the end first. The failpoint has the
        # host sleep after each poll(), so that this happens again and again.
        plan = self.write_plan(group("process_info", tasks=24), scheduler={"max-processes": 2})
        r = self.run_plan(plan, env={"FEDFLOW_FAILPOINTS": "executor-pause-after-poll"})
        self.assertExit(r, 0)
        for i in range(24):
            self.assertStatus(r, "g", str(i), "FINISHED")
            self.assertIn(is_forked(r.result("g", str(i))), (True, None))

    def test_stopped_worker_is_continued(self):
        plan = self.write_plan(group("fault_stop"))
        r = self.run_plan(plan)
        self.assertExit(r, 0)
        self.assertTrue(any(e.get("event") == "stopped" for e in r.events()), r.describe())

    def test_sigkilled_host_leaves_no_process(self):
        plan = self.write_plan(group("process_info", tasks=2, extra="params = { seconds = 60 }"))
        wd = os.path.join(self.tmp, "run")
        proc = self.start_host(plan, "--workdir", wd)
        try:
            self.wait_for_event(wd, lambda e: e.get("status") == "TRAINING", proc)
            servers = [p for p in processes_of_host(proc.pid) if parent(p) == proc.pid]
            self.assertEqual(len(servers), 1, "one fork server")
            os.kill(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=10)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and (fftest.worker_cwds(wd) or processes_of_host(proc.pid)):
                time.sleep(0.05)
            self.assertEqual(fftest.worker_cwds(wd), [], "workers survived the host")
            self.assertEqual(processes_of_host(proc.pid), [], "the fork server survived the host")
        finally:
            fftest.kill_group(proc)

    def test_a_stopped_fork_server_does_not_hold_the_run(self):
        # A server that stops telling of its workers' ends (SIGSTOP here; a
        # plugin's fork handler that hangs is the same) would hold their
        # slots forever: 5 s after the host's SIGKILL of a worker that closed
        # its channel, the server is ended, and the tasks left start by exec.
        plan = self.write_plan(group("fault_sleep", tasks=6, extra="params = { seconds = 1 }"),
                               scheduler={"max-processes": 2})
        r, server, host = self.signal_server_when(plan, lambda e: e.get("status") == "TRAINING", signal.SIGSTOP,
                                                  "--progress", "plain")
        self.assertExit(r, 0)
        for i in range(6):
            self.assertStatus(r, "g", str(i), "FINISHED")
        self.assertInCI("fork server of plugin 'fault_sleep' (pid %d) did not tell of the end" % server, r.stderr)
        deadline = time.monotonic() + 10
        while processes_of_host(host) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(processes_of_host(host), [], "the stopped server or its workers outlived the run")

    def test_workers_killed_with_their_fork_server_run_again(self):
        # A fork server that dies (the out-of-memory killer's choice, a
        # user's kill) takes its workers with it, their parent-death signal:
        # their tasks did nothing wrong, and run again, started by exec.
        plan = self.write_plan(group("process_info", tasks=4, extra="params = { seconds = 2 }"),
                               scheduler={"max-processes": 2})
        r, server, _ = self.signal_server_when(plan, lambda e: e.get("status") == "TRAINING", signal.SIGKILL)
        self.assertExit(r, 0)
        lost = [e for e in r.events() if e.get("status") == "INTERRUPT"]
        self.assertTrue(lost, "no task was in flight when its server died" + r.describe())
        for e in lost:
            self.assertEqual(e["message"], "its fork server (pid %d) ended (killed by signal SIGKILL (Killed)), "
                             "and its worker with it" % server)
            self.assertIn("%s: its fork server (pid %d) ended" % (e["task"], server), r.stderr)
        # A worker on its way out with its server is no process its task left.
        self.assertEqual([e for e in r.events() if e.get("event") == "leftovers"], [])
        self.assertNotIn("left 1 process", r.stderr)
        for i in range(4):
            self.assertStatus(r, "g", str(i), "FINISHED")
        for e in lost:
            self.assertIs(is_forked(r.result("g", e["task"])), False, "it ran again by exec")

    def test_workers_of_a_fork_server_asked_to_end_are_not_run_again(self):
        # SIGTERM (a scancel sends it to every process of a Slurm step, a
        # shutdown to every process) asks the server to end: its workers went
        # with what was asked to end, and their tasks fail, as before.
        plan = self.write_plan(group("process_info", tasks=2, extra="params = { seconds = 3 }"),
                               scheduler={"max-processes": 2})
        r, _, _ = self.signal_server_when(plan, lambda e: e.get("status") == "TRAINING", signal.SIGTERM)
        self.assertExit(r, 1)
        self.assertFalse([e for e in r.events() if e.get("status") == "INTERRUPT"], r.describe())
        failed = [t for t in r.report("g")["tasks"].values() if t["status"] == "EXCEPTION"]
        self.assertTrue(failed, r.describe())
        for t in failed:
            self.assertEqual(t["message"], "killed by signal SIGKILL (Killed)")
        self.assertNotIn("left 1 process", r.stderr)

    def test_a_fork_server_that_died_starts_again(self):
        # Later tasks are forked again, by a new server, a second after the
        # old one died; the tasks in between start by exec.
        plan = self.write_plan(group("process_info", tasks=12, extra="params = { seconds = 0.5 }"),
                               scheduler={"max-processes": 2})
        r, server, _ = self.signal_server_when(plan, lambda e: e.get("status") == "TRAINING", signal.SIGKILL)
        self.assertExit(r, 0)
        self.assertIn("the fork server of plugin 'process_info' (pid %d) ended (killed by signal SIGKILL (Killed)); "
                      "it starts again in a second (its tasks start by exec until then)" % server, r.stderr)
        results = [r.result("g", str(i)) for i in range(12)]
        exec_d = [res for res in results if is_forked(res) is False]
        forked_again = [res for res in results if is_forked(res) and res["ppid"] != server]
        self.assertTrue(exec_d, "no task started by exec while the server was down" + r.describe())
        self.assertTrue(forked_again, "no task was forked by a new server" + r.describe())
        self.assertIn("the fork server of plugin 'process_info' started again (pid", r.stderr)

    def test_a_fork_server_that_keeps_dying_is_given_up(self):
        # Each server dies after its first fork (the failpoint), taking that
        # worker with it: its task runs again by exec, the server starts
        # again a second later, and after its fourth end no more.
        plan = self.write_plan(group("process_info", tasks=24, extra="params = { seconds = 0.3 }"),
                               scheduler={"max-processes": 1})
        r = self.run_plan(plan, env={"FEDFLOW_FAILPOINTS": "fork-server-die"})
        self.assertExit(r, 0)
        for i in range(24):
            self.assertStatus(r, "g", str(i), "FINISHED")
        lost = [e for e in r.events() if e.get("status") == "INTERRUPT"]
        servers = {int(e["message"].split("(pid ")[1].split(")")[0]) for e in lost}
        self.assertEqual((len(lost), len(servers)), (4, 4), r.describe())
        self.assertEqual(r.stderr.count("it starts again in a second"), 3, r.stderr)
        self.assertEqual(r.stderr.count("it ended 4 times in the run: its tasks start by exec from now on"), 1,
                         r.stderr)
        # Each lost task ran again by exec.
        for e in lost:
            self.assertIs(is_forked(r.result("g", e["task"])), False)

    def test_a_load_out_of_memory_whose_worker_is_lost_with_its_server_loads_again_once(self):
        # Its load ran out of memory (INTERRUPT: it loads again in a new
        # process once this one is gone), and its server died while the
        # worker was on its way out: it loads again once, as it would have.
        plan = self.write_plan(group("fault_bad_alloc", extra="params = { load_ooms = 1, linger = 2, fail = false }"))
        r, _, _ = self.signal_server_when(plan, lambda e: e.get("status") == "INTERRUPT", signal.SIGKILL)
        self.assertExit(r, 0)
        self.assertStatus(r, "g", "0", "FINISHED")
        self.assertEqual(r.result("g", "0")["load_attempts"], 2, r.describe())
        statuses = [e["status"] for e in r.events() if e.get("status")]
        self.assertEqual(statuses.count("INTERRUPT"), 1, statuses)

    def test_a_worker_that_cannot_enter_its_cgroup_runs_nothing_of_its_task(self):
        # A forked worker moves itself into its task's cgroup before it runs
        # anything of the task; where that fails (the failpoint stands for a
        # cgroup it may not enter), its task fails in start, saying why, and
        # the plugin's load never ran.
        plan = self.write_plan(group("process_info", tasks=2))
        r = self.run_plan(plan, env={"FEDFLOW_FAILPOINTS": "fork-cgroup-enter"})
        if r.events()[0]["containment"] != "cgroup":
            self.skipTest("tasks are not contained by cgroups here: " + r.events()[0]["containment"])
        self.assertExit(r, 1)
        for i in ("0", "1"):
            t = r.task("g", i)
            self.assertEqual((t["status"], t["stage"]), ("EXCEPTION", "start"), json.dumps(t))
            self.assertEqual(t["message"], "cannot enter the task's cgroup: Permission denied")
            self.assertFalse(os.path.exists(r.path("g", i, "result.json")))
        self.assertFalse(any(e.get("status") == "WAITING" for e in r.events()), "a load ran" + r.describe())

    def spare_killer(self, tasks, wait, env=None):
        """Runs tasks one at a time whose train kills every spare its server
        forked ahead (the worker's only siblings then), waiting up to `wait`
        seconds for one. Each result: how many it killed, and whether its
        worker was forked by a fork server."""
        train = ("import json, os, time\n"
                 "def ppid(p):\n"
                 "    return int(open('/proc/%d/stat' % p).read().rsplit(')', 1)[1].split()[1])\n"
                 "worker = os.getppid()\n"
                 "server = ppid(worker)\n"
                 "forked = b'--fork-server' in open('/proc/%d/cmdline' % server, 'rb').read()\n"
                 "def spares():\n"
                 "    out = []\n"
                 "    for p in os.listdir('/proc'):\n"
                 "        try:\n"
                 "            if p.isdigit() and int(p) != worker and ppid(int(p)) == server:\n"
                 "                out.append(int(p))\n"
                 "        except (OSError, ValueError, IndexError):\n"
                 "            pass\n"
                 "    return out\n"
                 "deadline = time.monotonic() + WAIT\n"
                 "while forked and not spares() and time.monotonic() < deadline:\n"
                 "    time.sleep(0.01)\n"
                 "killed = spares() if forked else []\n"
                 "for p in killed:\n"
                 "    os.kill(p, 9)\n"
                 "print(json.dumps({'killed': len(killed), 'forked': forked}))\n").replace("WAIT", str(wait))
        # (Braces doubled: the command plugin fills in {placeholders}.)
        argv = ["/usr/bin/python3", "-c", train.replace("{", "{{").replace("}", "}}")]
        plan = self.write_plan(group("command", tasks=tasks, extra="params = { train = %s }" % json.dumps(argv)),
                               scheduler={"max-processes": 1})
        r = self.run_plan(plan, env=env)
        self.assertExit(r, 0)
        return r

    def test_a_spare_that_is_gone_leaves_its_task_to_a_fork_on_request(self):
        # Each task kills the spare forked ahead for the next one: the next
        # task's request finds it gone, and the task is forked on request.
        r = self.spare_killer(3, 10)
        for i in range(3):
            self.assertEqual(r.result("g", str(i)), {"killed": 1, "forked": True}, r.describe())

    def test_without_spares_every_worker_is_forked_on_request(self):
        r = self.spare_killer(3, 0.5, env={"FEDFLOW_FAILPOINTS": "fork-spare-none"})
        for i in range(3):
            self.assertEqual(r.result("g", str(i)), {"killed": 0, "forked": True}, r.describe())

    def test_resume_after_failure(self):
        # Task 1 fails in the first run; --resume forks only it again.
        plan = self.write_plan('[[group]]\nname = "g"\nplugin = "fault_throw_train"\n'
                               '[[group.task]]\nid = "0"\nparams = { fail = false }\n'
                               '[[group.task]]\nid = "1"\n')
        r = self.run_plan(plan)
        self.assertExit(r, 1)
        self.assertStatus(r, "g", "0", "FINISHED")
        r2 = self.run_plan(plan, "--resume")
        self.assertStatus(r2, "g", "0", "FINISHED")
        self.assertStatus(r2, "g", "1", "EXCEPTION")
        started = [e for e in r2.events() if e.get("status") == "AVAILABLE" and e.get("task") == "1"]
        self.assertEqual(len(started), 2, "task 1 ran again")


PRELOADED = r'''
import gc, os, sys
import blob  # preloaded by the fork server: imported once, shared

class Probe:
    def __init__(self, task_id):
        self.id = task_id
    def train(self, device):
        try:
            with open("/proc/%d/environ" % os.getppid(), "rb") as f:
                server_env = [e.decode() for e in f.read().split(b"\0") if e.startswith(b"LD_BIND_NOW=")]
        except OSError:
            server_env = None
        return {"omp": os.environ.get("OMP_NUM_THREADS"), "c_omp": os.getenv("OMP_NUM_THREADS"),
                "imported_at": blob.IMPORTED_AT, "pid": os.getpid(), "ppid": os.getppid(),
                "size": len(blob.DATA), "bind_now": os.environ.get("LD_BIND_NOW"), "server_env": server_env,
                "frozen": gc.get_freeze_count()}
'''

TORCH_THREADS = r'''
import os
import torch
from fedflow import Task

class Threads(Task):
    def load(self):
        self.threads_at_load = len(os.listdir("/proc/self/task"))
        # Looked up by the fork server (prepare_fork), not in each task.
        from fedflow import _runtime
        self.setter_prepared = _runtime._omp_set_num_threads is not _runtime._UNKNOWN
    def train(self, device):
        try:
            with open("/proc/%d/cmdline" % os.getppid(), "rb") as f:
                parent = f.read().replace(b"\0", b" ").decode()
        except OSError:
            parent = ""
        return {"torch_threads": torch.get_num_threads(), "threads_at_load": self.threads_at_load,
                "setter_prepared": self.setter_prepared,
                "omp": os.environ.get("OMP_NUM_THREADS"), "pid": os.getpid(), "parent": parent}
'''

BLOB = r'''
import os, time
IMPORTED_AT = os.getpid()
# 200 MB, touched: resident in the fork server and shared with every task.
DATA = bytearray(200 * 1000 * 1000)
for i in range(0, len(DATA), 4096):
    DATA[i] = 1
'''


class PythonForkServer(HostTest):
    def setUp(self):
        super().setUp()
        test_python.require_plugin(self)
        self.write("tasks.py", PRELOADED)
        self.write("mods/blob.py", BLOB)

    def plan(self, start, preload='["blob"]', tasks=3):
        return self.write_plan(
            '[[group]]\nname = "g"\nplugin = "python"\ntasks = %d\npreload = %s\n'
            'params = { module = "tasks.py", class = "Probe" }\n' % (tasks, preload),
            name=start + ".toml", scheduler={"worker-start": start})

    def env(self, **extra):
        env = {"PYTHONPATH": os.path.join(self.tmp, "mods")}
        env.update(extra)
        return env

    def test_preloaded_modules_and_thread_settings(self):
        env = self.env()
        os.environ.pop("OMP_NUM_THREADS", None)
        r = self.run_plan(self.plan("fork-server"), env=env, timeout=60)
        self.assertExit(r, 0)
        servers = set()
        for i in range(3):
            res = r.result("g", str(i))
            self.assertNotEqual(res["imported_at"], res["pid"], "imported by the fork server, not the task")
            servers.add(res["imported_at"])
            self.assertIsNone(res["omp"], "OMP_NUM_THREADS=1 of the preload is gone")
            self.assertIsNone(res["c_omp"])
            # The server was started with LD_BIND_NOW (its imports bound
            # once, not in every task); the task's environment has none.
            self.assertEqual(res["server_env"], ["LD_BIND_NOW=1"])
            self.assertIsNone(res["bind_now"])
            # The server froze its objects (gc.freeze): the task's collections
            # do not scan them, and so do not copy their pages.
            self.assertGreater(res["frozen"], 0)
        self.assertEqual(len(servers), 1, "one fork server")
        # Charged for its own memory: the 200 MB it shares with the server
        # are not its own, as RSS would count them (an exec'd task holds
        # them all; sanitizers add the same to both).
        execd = self.run_plan(self.plan("exec", tasks=1), workdir="exec", env=env, timeout=60)
        self.assertExit(execd, 0)
        whole = execd.task("g", "0")["peak_memory"]
        for i in range(3):
            self.assertLess(r.task("g", str(i))["peak_memory"], whole - 60 * 1000 * 1000, r.describe())

        r = self.run_plan(self.plan("fork-server", tasks=1), workdir="omp",
                          env=self.env(OMP_NUM_THREADS="3", LD_BIND_NOW="1"), timeout=60)
        self.assertExit(r, 0)
        self.assertEqual(r.result("g", "0")["omp"], "3")
        self.assertEqual(r.result("g", "0")["c_omp"], "3")
        self.assertEqual(r.result("g", "0")["bind_now"], "1", "the user's own LD_BIND_NOW is kept")

    def test_exec_imports_in_each_task(self):
        r = self.run_plan(self.plan("exec", tasks=1), env=self.env(), timeout=60)
        self.assertExit(r, 0)
        res = r.result("g", "0")
        self.assertEqual(res["imported_at"], res["pid"])
        self.assertGreater(r.task("g", "0")["peak_memory"], 200 * 1000 * 1000)

    def test_torch_threads_are_set_back_without_starting_threads(self):
        # torch preloaded (with OMP_NUM_THREADS=1): each task gets its own
        # thread count back, and starts no thread to get it (torch's
        # set_num_threads built its thread pool there: 20 ms and a thread
        # before the task did anything).
        self.write("torch_task.py", TORCH_THREADS)
        plan = self.write_plan(
            '[[group]]\nname = "g"\nplugin = "python"\ntasks = 2\npreload = ["torch"]\n'
            'params = { module = "torch_task.py", class = "Threads" }\n', name="torch.toml",
            scheduler={"worker-start": "fork-server"})
        os.environ.pop("OMP_NUM_THREADS", None)
        for omp, wanted in ((None, len(os.sched_getaffinity(0))), ("3", 3)):
            env = {} if omp is None else {"OMP_NUM_THREADS": omp}
            r = self.run_plan(plan, workdir="omp-%s" % omp, env=env, timeout=120)
            if "No module named 'torch'" in r.stderr:
                self.skipTest("the plugin's interpreter has no torch (Debian: python3-torch)")
            self.assertExit(r, 0)
            for i in range(2):
                res = r.result("g", str(i))
                self.assertIn(is_forked(res), (True, None))
                self.assertEqual(res["torch_threads"], wanted, r.describe())
                self.assertEqual(res["threads_at_load"], 1, "no thread started before load")
                self.assertTrue(res["setter_prepared"])
                self.assertEqual(res["omp"], omp)

    def test_failed_preload_falls_back_to_exec(self):
        r = self.run_plan(self.plan("fork-server", preload='["blob", "no_such_module_here"]', tasks=2),
                          env=self.env(), timeout=60)
        self.assertExit(r, 0)
        self.assertInCI("the fork server of plugin 'python' could not start: ModuleNotFoundError: No module named "
                        "'no_such_module_here'; its tasks start by exec", r.stderr)
        self.assertEqual(r.stderr.count("could not start"), 1, r.describe())
        # The warning says it: no traceback of the import system on the
        # host's stderr, which the server shares.
        self.assertNotIn("Traceback", r.stderr)
        self.assertNotIn("<frozen", r.stderr)
        for i in range(2):
            res = r.result("g", str(i))
            self.assertEqual(res["imported_at"], res["pid"], "imported by the task itself")


SLOW = r'''
import os, signal, time
# Slow, or deadly, in the fork server only: a task started by exec imports
# it at once.
with open("/proc/self/cmdline", "rb") as f:
    if b"--fork-server" in f.read().split(b"\0"):
        if os.environ.get("SLOW_MODE") == "die":
            os.kill(os.getpid(), signal.SIGKILL)
        elif os.environ.get("SLOW_MODE") == "fork":
            # Its load and its first fork are quick, each later fork (a
            # spare) slow: a large server.
            forks = [0]
            def before():
                forks[0] += 1
                if forks[0] > 1:
                    time.sleep(float(os.environ["SLOW_SECONDS"]))
            os.register_at_fork(before=before)
        else:
            time.sleep(float(os.environ.get("SLOW_SECONDS", "3")))
IMPORTED_AT = os.getpid()
'''

SLOW_TASK = r'''
import os
import slow

class Probe:
    def __init__(self, task_id):
        pass
    def train(self, device):
        return {"imported_at": slow.IMPORTED_AT, "pid": os.getpid()}
'''


class SlowPreload(HostTest):
    """The host's loop does not wait for a fork server to load, nor for a
    spare that it forks slowly: the plugin's loads wait, and start when it is
    ready; one that fails, dies or is too slow leaves its tasks to exec."""

    def setUp(self):
        super().setUp()
        test_python.require_plugin(self)
        self.write("tasks_slow.py", SLOW_TASK)
        self.write("mods/slow.py", SLOW)
        self.plan = self.write_plan(
            '[[group]]\nname = "g"\nplugin = "python"\ntasks = 2\npreload = ["slow"]\n'
            'params = { module = "tasks_slow.py", class = "Probe" }\n', scheduler={"worker-start": "fork-server"})

    def run_slow(self, **env):
        env["PYTHONPATH"] = os.path.join(self.tmp, "mods")
        r = self.run_plan(self.plan, env=env, timeout=90)
        self.assertExit(r, 0)
        return r, [r.result("g", str(i)) for i in range(2)]

    def test_the_host_runs_on_while_a_server_loads(self):
        r, results = self.run_slow(SLOW_SECONDS="3")
        for res in results:
            self.assertNotEqual(res["imported_at"], res["pid"], "not forked from the server" + r.describe())
        waits = [e for e in r.events() if e.get("event") == "waiting"]
        self.assertTrue(waits, r.describe())
        self.assertEqual(waits[0]["resource"], "fork-server")
        self.assertRegex(waits[0]["reason"], r"^the fork server of plugin 'python' \(pid \d+\) is loading it and slow$")
        # The longest turn of the loop: it waited for the server's 3 s in one
        # turn when it started the server and read its answer.
        self.assertLess(r.events()[-1]["loop_max_ms"], 1500, r.describe())

    def test_ctrl_c_while_a_server_loads_stops_the_run_at_once(self):
        wd = os.path.join(self.tmp, "run")
        proc = self.start_host(self.plan, "--workdir", wd,
                               env={"PYTHONPATH": os.path.join(self.tmp, "mods"), "SLOW_SECONDS": "60"})
        try:
            self.wait_for_event(wd, lambda e: e.get("event") == "waiting" and e.get("resource") == "fork-server",
                                proc=proc)
            proc.send_signal(signal.SIGINT)
            r = self.finish_host(proc, wd, timeout=30)
        finally:
            fftest.kill_group(proc)
        # Not after the server's 60 s, nor its 120 s of patience.
        self.assertExit(r, 3)
        self.assertLess(r.elapsed, 20, r.describe())
        self.assertEqual(r.events()[-1].get("reason"), "the host received SIGINT")
        for i in range(2):
            self.assertIn("not started: the host received SIGINT", r.task("g", str(i))["message"])

    def test_a_server_slower_than_its_patience_is_ended_and_its_tasks_exec(self):
        r, results = self.run_slow(SLOW_SECONDS="30", FEDFLOW_FAILPOINTS="fork-server-short-patience")
        self.assertInCI("the fork server of plugin 'python' could not start: it did not load the plugin within 1 s; "
                        "its tasks start by exec", r.stderr)
        for res in results:
            self.assertEqual(res["imported_at"], res["pid"], "imported by the task itself")
        self.assertLess(r.elapsed, 25, "the run waited for the server's 30 s")

    def test_a_server_that_dies_while_it_loads_leaves_its_tasks_to_exec(self):
        r, results = self.run_slow(SLOW_MODE="die")
        self.assertInCI("the fork server of plugin 'python' could not start: it ended (killed by signal SIGKILL "
                        "(Killed)); its tasks start by exec", r.stderr)
        self.assertEqual(r.stderr.count("could not start"), 1, r.describe())
        for res in results:
            self.assertEqual(res["imported_at"], res["pid"], "imported by the task itself")

    def test_the_host_runs_on_while_a_server_forks_a_spare_slowly(self):
        # The first task is forked on request (the host waits for that
        # answer); each later one is handed to a spare that takes 2 s to
        # come, and its load waits in the journal meanwhile.
        r, results = self.run_slow(SLOW_MODE="fork", SLOW_SECONDS="2")
        for res in results:
            self.assertNotEqual(res["imported_at"], res["pid"], "not forked from the server" + r.describe())
        waits = [e for e in r.events() if e.get("event") == "waiting" and e.get("resource") == "fork-server"]
        self.assertTrue(waits, r.describe())
        self.assertRegex(waits[-1]["reason"],
                         r"^the fork server of plugin 'python' \(pid \d+\) has not forked a process for it yet$")
        # Before, the loop waited for the whole spare in one turn.
        self.assertLess(r.events()[-1]["loop_max_ms"], 1500, r.describe())

    def test_a_server_whose_spare_does_not_come_within_its_patience_is_given_up(self):
        # 1 s of patience for an answer (the failpoint), a spare that takes
        # 30 s: the server is ended as one that does not answer, and the
        # task that waited for its spare starts by exec.
        r, results = self.run_slow(SLOW_MODE="fork", SLOW_SECONDS="30",
                                   FEDFLOW_FAILPOINTS="fork-server-short-patience")
        self.assertInCI("the fork server of plugin 'python' (pid ", r.stderr)
        self.assertInCI(") did not answer; it starts again in a second", r.stderr)
        self.assertIn(True, [res["imported_at"] == res["pid"] for res in results], "no task started by exec")
        self.assertLess(r.elapsed, 25, "the run waited for the server's 30 s")
        # Given up by the loop's deadline, not waited for in one turn.
        self.assertLess(r.events()[-1]["loop_max_ms"], 900, r.describe())


if __name__ == "__main__":
    fftest.main()
