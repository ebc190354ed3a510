#!/usr/bin/env python3
"""Reliability: a result spoiled after train returned is refused; segments of
a host killed with SIGKILL are removed by the next run, those of a live host
in another PID namespace are not; --resume runs only
what has not finished, refuses a changed plan unless --force; and the crash
test: SIGKILL the host halfway, no worker survives, --resume finishes the
rest without running a finished task again."""
import fcntl
import json
import os
import re
import signal
import subprocess
import time

import fftest
from fftest import HostTest


SLEEPERS = """
[[group]]
name = "first"
plugin = "echo"
tasks = 2

[[group]]
name = "sleepers"
plugin = "fault_sleep"
tasks = 6
params = { seconds = 0.6 }
inputs = ["first"]

[[group]]
name = "last"
plugin = "inputs_probe"
inputs = ["sleepers"]
"""


class Integrity(HostTest):
    def run_damaged(self, failpoints, workdir, extra=""):
        plan = self.write_plan('[[group]]\nname = "g"\nplugin = "big_bytes"\nparams = { size = 65536 }\n'
                               '[[group]]\nname = "after"\nplugin = "echo"\n' + extra, name=workdir + ".toml")
        return self.run_plan(plan, workdir=workdir, env={"FEDFLOW_FAILPOINTS": failpoints})

    def test_truncated_or_corrupt_results_are_never_accepted(self):
        # bytes-corrupt: a byte changed after the worker took its checksum
        # (a plugin still writing into a returned buffer) is found by the
        # host's copy.
        for failpoints, message in (("result-truncate@g/0", r"result segment truncated: \d+ bytes of \d+"),
                                    ("result-corrupt@g/0", r"result segment corrupt: its checksum does not match"),
                                    ("bytes-truncate@g/0", r"bytes buffer 0 truncated: 1000 bytes of 65536"),
                                    ("bytes-corrupt@g/0",
                                     r"bytes buffer 0 corrupt: its checksum does not match")):
            with self.subTest(failpoints=failpoints):
                r = self.run_damaged(failpoints, workdir=failpoints.split("@")[0])
                self.assertExit(r, 1)
                t = self.assertStatus(r, "g", "0", "EXCEPTION")
                self.assertEqual(t["stage"], "train")
                self.assertRegex(t["message"], r"^invalid result: " + message)
                self.assertFalse(os.path.exists(r.path("g", "0", "result.json")))
                self.assertEqual(sorted(os.listdir(r.path("g", "0"))), ["stderr.log", "stdout.log"])
                self.assertStatus(r, "after", "0", "FINISHED")
                self.assertEqual(fftest.shm_segments(r.json("run.json")["host_pid"]), [])

    def test_an_intact_result_is_accepted(self):
        plan = self.write_plan('[[group]]\nname = "g"\nplugin = "big_bytes"\nparams = { size = 65536 }\n')
        r = self.run_plan(plan)
        self.assertExit(r, 0)
        self.assertEqual(r.result("g", "0")["size"], 65536)


class StaleSegments(HostTest):
    def test_segments_of_runs_whose_lock_nobody_holds_are_removed(self):
        # Three runs named after a pid that is dead here: one whose lock file
        # nobody holds (gone), one whose lock this test holds (a live host in
        # another PID namespace), one with no lock file (nothing proves it
        # gone); and a name that is no run's.
        dead = subprocess.Popen(["true"])
        dead.wait()
        gone, alive, unproven = ("fedflow-%d-%s" % (dead.pid, h) for h in ("0123abcd", "4567cdef", "89abcdef"))
        names = [gone + ".lock", gone + "-t1-r", gone + "-in1", alive + ".lock", alive + "-in1",
                 unproven + "-t1-r", "fedflow-notapid-x"]
        for n in names:
            with open("/dev/shm/" + n, "wb") as f:
                f.write(b"left behind")
        held = open("/dev/shm/" + alive + ".lock", "rb")
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        try:
            plan = self.write_plan('[[group]]\nplugin = "echo"\n')
            r = self.run_plan(plan, "--log-level", "info")
            self.assertExit(r, 0)
            left = set(os.listdir("/dev/shm"))
            self.assertEqual([n for n in names if n.startswith(gone) and n in left], [])
            self.assertEqual([n for n in names if not n.startswith(gone) and n not in left], [])
            # (Whether this host or another one running beside it removed
            # the dead run's segments is not this test's concern.)
            self.assertIn("cannot be proven gone", r.stderr)
        finally:
            held.close()
            for n in names:
                try:
                    os.unlink("/dev/shm/" + n)
                except FileNotFoundError:
                    pass

    def test_a_live_host_in_another_pid_namespace_keeps_its_segments(self):
        # Containers that share /dev/shm (docker --ipc=host) but not pids:
        # the host in the namespace is pid 1 there, a pid that is no
        # fedflow-host here. Its group's inputs segment lives while it runs.
        if subprocess.run(["unshare", "--pid", "--fork", "true"], stderr=subprocess.DEVNULL).returncode != 0:
            self.skipTest("unshare --pid is not permitted here")
        plan = self.write_plan('[[group]]\nname = "first"\nplugin = "echo"\n'
                               '[[group]]\nname = "slow"\nplugin = "fault_sleep"\nparams = { seconds = 2 }\n'
                               'inputs = ["first"]\n', name="contained.toml")
        wd = os.path.join(self.tmp, "contained")
        proc = subprocess.Popen(["unshare", "--pid", "--fork", "--kill-child", fftest.HOST, plan, "--workdir", wd],
                                cwd=self.tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True, text=True, errors="replace")
        try:
            self.wait_for_event(wd, lambda e: e.get("group") == "slow" and e.get("status") == "TRAINING", proc=proc)
            inner_pid = json.load(open(os.path.join(wd, "run.json")))["host_pid"]
            segments = fftest.shm_segments(inner_pid)
            inputs = [n for n in segments if re.search(r"-in\d+$", n)]
            self.assertEqual(len(inputs), 1, segments)
            r = self.run_plan(self.write_plan('[[group]]\nplugin = "echo"\n'), "--log-level", "info")
            self.assertExit(r, 0)
            self.assertTrue(os.path.exists("/dev/shm/" + inputs[0]), "a live host's segment was removed")
        finally:
            contained = self.finish_host(proc, wd)
        self.assertExit(contained, 0)
        self.assertStatus(contained, "slow", "0", "FINISHED")


class Orphans(HostTest):
    def test_what_a_dead_worker_started_dies_with_it(self):
        # The task's program leaves a sleeper in the background, then the
        # worker dies of a segfault: the sleeper must not outlive it.
        plan = self.write_plan("""
[[group]]
name = "g"
plugin = "command"
params = { train = ["sh", "-c", "sleep 300 & sleep 0.2; kill -SEGV $PPID; sleep 300"] }
""")
        r = self.run_plan(plan)
        self.assertExit(r, 1)
        t = self.assertStatus(r, "g", "0", "EXCEPTION")
        # (Under AddressSanitizer the segfault is caught and ends in abort().)
        self.assertRegex(t["message"], r"killed by signal SIG(SEGV|ABRT)")
        deadline = time.monotonic() + 3
        while fftest.worker_cwds(r.workdir) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(fftest.worker_cwds(r.workdir), [], "the task's programs outlived their worker")


class Resume(HostTest):
    def test_resume_of_a_finished_run_runs_nothing(self):
        plan = self.write_plan(SLEEPERS, scheduler={"max-processes": 6})
        r = self.run_plan(plan)
        self.assertExit(r, 0)
        before = {i: r.result("sleepers", str(i)) for i in range(6)}
        events = len(r.events())
        r2 = self.run_plan(plan, "--resume")
        self.assertExit(r2, 0)
        new = r2.events()[events:]
        self.assertEqual([e for e in new if e.get("status") == "AVAILABLE"], [], "a finished task ran again")
        self.assertTrue(new[0]["resume"])
        self.assertEqual(new[0]["finished_before"], 9)
        for i in range(6):
            self.assertEqual(r2.result("sleepers", str(i)), before[i])
            t = self.assertStatus(r2, "sleepers", str(i), "FINISHED")
            self.assertIn("train_ms", t)  # the report entry of the first run is kept
        # The last group still sees every sleeper's result.
        self.assertEqual(sorted(r2.result("last", "0")["inputs"]["sleepers"]), [str(i) for i in range(6)])

    def test_a_finished_task_whose_byte_file_was_cut_short_runs_again(self):
        # Its result.json is intact (its checksum matches), but a byte file
        # it names is shorter than it says: kept as finished, it would fail
        # every task that takes it as input, at every resume.
        plan = self.write_plan('[[group]]\nname = "g"\nplugin = "echo"\ntasks = 2\n'
                               '[[group]]\nname = "h"\nplugin = "inputs_probe"\ninputs = ["g"]\n')
        r = self.run_plan(plan)
        self.assertExit(r, 0)
        weights = r.path("g", "0", r.result("g", "0")["weights"]["$bytes"]["file"])
        with open(weights, "r+b") as f:
            f.truncate(100)
        r = self.run_plan(plan, "--resume")
        self.assertExit(r, 0)
        self.assertIn("g/0: its byte file weights.bin has 100 bytes, its result.json says 4096: it runs again", r.stderr)
        events = r.events()
        resumed = max(i for i, e in enumerate(events) if e.get("event") == "run_start")
        again = [e.get("task") for e in events[resumed:] if e.get("status") == "AVAILABLE" and e.get("group") == "g"]
        self.assertEqual(again, ["0"], r.describe())
        self.assertEqual(os.path.getsize(weights), 4096)

    def test_a_changed_plan_is_refused_unless_forced(self):
        plan = self.write_plan('[[group]]\nname = "g"\nplugin = "echo"\ntasks = 3\n')
        r = self.run_plan(plan)
        self.assertExit(r, 0)
        with open(plan) as f:
            text = f.read()
        with open(plan, "w") as f:
            f.write(text.replace("tasks = 3", "tasks = 4"))
        r = self.run_plan(plan, "--resume")
        self.assertExit(r, 2)
        self.assertIn("--resume: the plan changed since the run in", r.stderr)
        self.assertIn("line %d: 'tasks = 3' is now 'tasks = 4'" % fftest.line_of(text, "tasks = 3"), r.stderr)
        self.assertIn("add --force", r.stderr)
        r = self.run_plan(plan, "--resume", "--force")
        self.assertExit(r, 0)
        new = [e for e in r.events() if e.get("status") == "AVAILABLE"]
        self.assertEqual([e["task"] for e in new][-1:], ["3"], "only the new task runs")
        self.assertEqual(len(r.report("g")["tasks"]), 4)

    def test_nothing_to_resume_and_force_alone_are_bad_input(self):
        plan = self.write_plan('[[group]]\nplugin = "echo"\n')
        r = self.run_plan(plan, "--resume")
        self.assertExit(r, 2)
        self.assertIn("holds no Fedflow run (no run.json): nothing to resume", r.stderr)
        r = self.run_plan(plan, "--force")
        self.assertExit(r, 2)
        self.assertIn("--force is for --resume", r.stderr)

    def test_failed_tasks_run_again(self):
        plan = self.write_plan("""
[[group]]
name = "g"
plugin = "fault_throw_train"
[[group.task]]
id = "ok"
params = { fail = false }
[[group.task]]
id = "bad"
""")
        r = self.run_plan(plan)
        self.assertExit(r, 1)
        count = len(r.events())
        r = self.run_plan(plan, "--resume")
        self.assertExit(r, 1)
        again = [e["task"] for e in r.events()[count:] if e.get("status") == "AVAILABLE"]
        self.assertEqual(again, ["bad"])
        self.assertStatus(r, "g", "ok", "FINISHED")
        self.assertStatus(r, "g", "bad", "EXCEPTION")


class HostCrash(HostTest):
    def test_sigkill_halfway_then_resume(self):
        plan = self.write_plan(SLEEPERS, scheduler={"max-processes": 2})
        workdir = os.path.join(self.tmp, "run")
        proc = subprocess.Popen([fftest.HOST, plan, "--workdir", workdir], cwd=self.tmp,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        events = os.path.join(workdir, "events.jsonl")
        deadline = time.monotonic() + 30
        finished = []
        try:
            while time.monotonic() < deadline:
                if os.path.exists(events):
                    with open(events) as f:
                        lines = [json.loads(l) for l in f if l.strip()]
                    finished = [e["task"] for e in lines
                                if e.get("group") == "sleepers" and e.get("status") == "FINISHED"]
                    running = [e for e in lines if e.get("group") == "sleepers" and e.get("status") == "TRAINING"]
                    if len(finished) >= 2 and len(running) > len(finished):
                        break
                time.sleep(0.02)
            else:
                self.fail("the run never got halfway")
            os.kill(proc.pid, signal.SIGKILL)  # the host alone: its workers must follow
            proc.wait()
        finally:
            fftest.kill_group(proc)
        host_pid = proc.pid
        # PR_SET_PDEATHSIG: no worker outlives the host.
        deadline = time.monotonic() + 5
        while fftest.worker_cwds(workdir) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(fftest.worker_cwds(workdir), [], "workers survived their host")
        run = json.load(open(os.path.join(workdir, "run.json")))
        self.assertEqual(run["status"], "running")  # the host had no chance to say more

        before = {t: json.load(open(os.path.join(workdir, "sleepers", t, "result.json"))) for t in finished}
        r = self.host(plan, "--workdir", workdir, "--resume", workdir=workdir, timeout=60)
        self.assertExit(r, 0)
        # Nothing of the killed host is left in /dev/shm, nor of this one.
        self.assertEqual(fftest.shm_segments(host_pid), [])
        self.assertEqual(fftest.shm_segments(r.json("run.json")["host_pid"]), [])
        # What finished before the kill was not run again.
        for t, result in before.items():
            self.assertEqual(r.result("sleepers", t), result, "task %s ran again" % t)
        resumed = [e for e in r.events() if e.get("event") == "run_start"][-1]
        self.assertTrue(resumed["resume"])
        starts = [e["task"] for e in r.events()[r.events().index(resumed):]
                  if e.get("group") == "sleepers" and e.get("status") == "AVAILABLE"]
        self.assertEqual(sorted(starts), sorted(set(map(str, range(6))) - set(finished)))
        # The final report holds every task exactly once, all finished.
        tasks = r.report("sleepers")["tasks"]
        self.assertEqual(sorted(tasks), [str(i) for i in range(6)])
        for t in tasks.values():
            self.assertEqual(t["status"], "FINISHED")
        self.assertEqual(r.json("run.json")["status"], "finished")
        self.assertEqual(sorted(r.result("last", "0")["inputs"]["sleepers"]), [str(i) for i in range(6)])


if __name__ == "__main__":
    fftest.main()
