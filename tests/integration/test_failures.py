#!/usr/bin/env python3
"""Tasks that fail: each fault plugin in turn. A failed task ends EXCEPTION with
the stage and a message (docs/architecture.md, "report.json"), the other tasks of the run
finish, and the host exits 1. A task that sends the host SIGTERM fails alone."""
import json
import os
import re
import shutil
import signal
import subprocess
import time

import fftest
from fftest import HostTest

# plugin, stage, what the message must contain (a regex, case-insensitive)
FAULTS = [
    ("fault_throw_load", "load", r"injected failure in load"),
    ("fault_throw_train", "train", r"injected failure in train"),
    ("fault_segfault", "train", r"SIGSEGV"),
    ("fault_abort", "train", r"SIGABRT"),
    ("fault_exit", "train", r"exit.*\b3\b"),
    ("fault_bad_alloc", "train", r"out of memory"),
]


def fault_plan(plugin):
    # An echo group before, tasks that fail and tasks that do not in the
    # faulty group, and an echo group after: one failure spoils nothing else.
    return """
[[group]]
name = "before"
plugin = "echo"
tasks = 2

[[group]]
name = "faulty"
plugin = "%s"

[[group.task]]
id = "boom"

[[group.task]]
id = "spared"
params = { fail = false }

[[group.task]]
id = "boom-2"

[[group]]
name = "after"
plugin = "echo"
""" % plugin


class Faults(HostTest):
    def test_each_fault_fails_only_its_task(self):
        for plugin, stage, message in FAULTS:
            with self.subTest(plugin=plugin):
                plan = self.write_plan(fault_plan(plugin), name=plugin + ".toml")
                r = self.run_plan(plan, workdir=plugin)
                self.assertExit(r, 1)
                for t in ("boom", "boom-2"):
                    entry = self.assertStatus(r, "faulty", t, "EXCEPTION")
                    self.assertEqual(entry.get("stage"), stage, json.dumps(entry))
                    self.assertRegex(entry.get("message", ""), re.compile(message, re.I))
                    # A failed task has its logs but no result.
                    self.assertTrue(os.path.isdir(r.path("faulty", t)))
                    self.assertFalse(os.path.exists(r.path("faulty", t, "result.json")))
                spared = self.assertStatus(r, "faulty", "spared", "FINISHED")
                self.assertEqual(spared["result"], {"ok": True} if plugin != "fault_bad_alloc"
                                 else {"ok": True, "attempts": 1, "loads_in_process": 1, "load_attempts": 1})
                for t in ("0", "1"):
                    self.assertStatus(r, "before", t, "FINISHED")
                self.assertStatus(r, "after", "0", "FINISHED")
                events = json.dumps(r.events())
                self.assertIn("EXCEPTION", events)
                # Quick: nothing here waits on a timeout.
                self.assertLess(r.elapsed, 15)


    def test_a_train_sent_with_its_load_runs_only_after_a_load_that_ended_well(self):
        # On "cpu" the train goes to the worker with the load (messages.hpp,
        # Train::ahead): it runs as soon as the load has ended well, and is
        # dropped after a load that failed. Each task's train leaves a file.
        plan = self.write_plan(
            '[[group]]\nname = "g"\nplugin = "command"\ntasks = 2\n'
            'params = { load = ["sh", "-c", "test {task_id} = 0"], train = ["sh", "-c", "touch trained; echo {{}}"] }\n')
        r = self.run_plan(plan)
        self.assertExit(r, 1)
        self.assertStatus(r, "g", "0", "FINISHED")
        self.assertTrue(os.path.exists(r.path("g", "0", "trained")))
        failed = self.assertStatus(r, "g", "1", "EXCEPTION")
        self.assertEqual(failed["stage"], "load", json.dumps(failed))
        self.assertFalse(os.path.exists(r.path("g", "1", "trained")), "the train of a failed load ran")
        statuses = [e["status"] for e in r.events() if e.get("event") == "status" and e["task"] == "0"]
        self.assertEqual(statuses, ["AVAILABLE", "LOADING", "WAITING", "TRAINING", "FINISHED", "EXITED"])


class CrashReport(HostTest):
    """A task that crashes leaves the signal, its stage and a backtrace of the
    crashing thread in stderr.log; its status still says which signal."""

    def test_a_segfault_writes_its_backtrace_into_stderr_log(self):
        r = self.run_plan(self.write_plan(fault_plan("fault_segfault")))
        self.assertExit(r, 1)
        entry = self.assertStatus(r, "faulty", "boom", "EXCEPTION")
        self.assertRegex(entry["message"], r"^killed by signal SIGSEGV")
        err = r.read("faulty", "boom", "stderr.log")
        self.assertRegex(err, r"fedflow-worker: SIGSEGV \(Segmentation fault\) at address 0x[0-9a-f]+ "
                              r"in train of task faulty/boom\n", err)
        frames = re.findall(r"^  #(\d+) (0x[0-9a-f]+) (\S+) (0x[0-9a-f]+)", err, re.M)
        self.assertTrue(frames, "no frame in stderr.log:\n" + err)
        # The innermost frame is the faulting store, in the plugin's train.
        so = fftest.plugin_file("fault_segfault")
        self.assertEqual(os.path.realpath(frames[0][2]), os.path.realpath(so), err)
        self.assertIn(os.path.basename(fftest.HOST).replace("host", "worker"), err)
        # Its offset is one addr2line can take to the source line.
        addr2line = shutil.which("addr2line")
        if addr2line:
            where = subprocess.run([addr2line, "-Cfie", so, frames[0][3]], capture_output=True, text=True).stdout
            self.assertIn("fault_segfault.cpp", where, err)
        # A spared task's log has no report.
        self.assertNotIn("backtrace", r.read("faulty", "spared", "stderr.log"))

    def test_an_abort_is_reported_and_still_ends_by_sigabrt(self):
        r = self.run_plan(self.write_plan(fault_plan("fault_abort")))
        self.assertExit(r, 1)
        entry = self.assertStatus(r, "faulty", "boom", "EXCEPTION")
        self.assertRegex(entry["message"], r"^killed by signal SIGABRT")
        err = r.read("faulty", "boom", "stderr.log")
        self.assertIn("fedflow-worker: SIGABRT (Aborted) sent by pid ", err)
        self.assertIn("in train of task faulty/boom", err)
        self.assertRegex(err, r"  #0 0x[0-9a-f]+ \S*libc\.so\S* 0x[0-9a-f]+", err)
        self.assertIn(os.path.realpath(fftest.plugin_file("fault_abort")), err)


class SharedMemory(HostTest):
    def test_more_bytes_than_dev_shm_holds_is_out_of_memory_not_a_crash(self):
        # 1 PiB cannot be reserved in /dev/shm: ctx.bytes() must fail at once
        # as out-of-memory (kind oom), never hand out pages that SIGBUS later.
        plan = self.write_plan("""
[[group]]
name = "big"
plugin = "big_bytes"

[[group.task]]
id = "huge"
params = { size = 1125899906842624 }

[[group.task]]
id = "fine"
params = { size = 4096 }
""")
        r = self.run_plan(plan)
        self.assertExit(r, 1)
        huge = self.assertStatus(r, "big", "huge", "EXCEPTION")
        self.assertEqual(huge.get("stage"), "train")
        self.assertRegex(huge.get("message", ""), re.compile(r"^out of memory: .*bytes\(1125899906842624\)", re.I))
        self.assertNotIn("SIGBUS", huge.get("message", ""))
        self.assertEqual(r.result("big", "fine")["size"], 4096)
        with open(r.path("run.json"), encoding="utf-8") as f:
            host_pid = json.load(f)["host_pid"]
        self.assertEqual(fftest.shm_segments(host_pid), [])


class Detection(HostTest):
    def test_crash_is_seen_while_a_sibling_still_runs_and_sigint_ends_the_run(self):
        # "crash" segfaults at once; "slow" trains for 20 s. The crash must be in
        # the journal long before "slow" ends.
        plan = self.write_plan("""
[[group]]
name = "mixed"
plugin = "fault_segfault"

[[group.task]]
id = "crash"

[[group.task]]
id = "slow"
params = { fail = false, sleep = 20 }
""")
        wd = os.path.join(self.tmp, "run")
        events = os.path.join(wd, "events.jsonl")
        proc = subprocess.Popen([fftest.HOST, plan, "--workdir", wd], cwd=self.tmp, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True, text=True, errors="replace")
        try:
            start = time.monotonic()
            seen = None
            while time.monotonic() - start < 10 and proc.poll() is None:
                try:
                    with open(events, encoding="utf-8") as f:
                        for line in f:
                            if '"crash"' in line and "EXCEPTION" in line:
                                seen = time.monotonic() - start
                except FileNotFoundError:
                    pass
                if seen is not None:
                    break
                time.sleep(0.05)
            self.assertIsNone(proc.poll(), "the host ended before the slow task could have")
            self.assertIsNotNone(seen, "the crash was not in events.jsonl within 10 s")
            with open(events, encoding="utf-8") as f:
                self.assertIn("SIGSEGV", f.read())
            self.assertTrue(fftest.worker_cwds(wd), "the slow task's worker is running")

            # docs/plan.md, "Exit status": 3 when the host is interrupted.
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=15)
            self.assertEqual(proc.returncode, 3, "after SIGINT\n--- stderr ---\n" + err[-3000:])
        finally:
            if proc.poll() is None:
                fftest.kill_group(proc)
                proc.communicate()
        # No worker outlives the host.
        deadline = time.monotonic() + 5
        while fftest.worker_cwds(wd) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertEqual(fftest.worker_cwds(wd), [], "workers left behind")

    def test_task_timeout(self):
        plan = self.write_plan("""
[[group]]
name = "hang"
plugin = "fault_sleep"
params = { seconds = 60 }
""", scheduler={"task-timeout": "1s"})
        r = self.run_plan(plan)
        self.assertExit(r, 1)
        entry = self.assertStatus(r, "hang", "0", "EXCEPTION")
        self.assertEqual(entry.get("stage"), "train")
        self.assertRegex(entry.get("message", ""), re.compile(r"time", re.I))
        self.assertLess(r.elapsed, 15)



class SignalsToTheHost(HostTest):
    def test_a_task_that_sends_the_host_sigterm_fails_alone(self):
        # Each rogue program sends SIGTERM to the host (the first of its
        # parents named fedflow-host: with a shim, the worker's parent is the
        # shim) and lives on a moment, as a script's stray kill does: one in
        # the worker's process group, one in a session of its own (setsid),
        # a second later: two SIGTERMs pending at once are one signal.
        find_host = ("p=$$; while [ $p -gt 1 ] && [ \"$(cat /proc/$p/comm)\" != fedflow-host ]; "
                     "do p=$(cut -d' ' -f4 /proc/$p/stat); done; ")
        kill_host = find_host + "[ $p -gt 1 ] && kill -TERM $p; sleep 2; echo '{{}}' > result.json"
        plan = self.write_plan("""
[[group]]
name = "g"
plugin = "command"
[[group.task]]
id = "rogue"
params = { train = ["sh", "-c", %s] }
[[group.task]]
id = "rogue-setsid"
params = { train = ["setsid", "sh", "-c", %s] }
[[group.task]]
id = "good"
params = { train = ["sh", "-c", "sleep 1; echo '{{\\"ok\\": true}}' > result.json"] }

[[group]]
name = "after"
plugin = "echo"
""" % (fftest.toml_str(kill_host), fftest.toml_str("sleep 1; " + kill_host)))
        r = self.run_plan(plan)
        if r.events()[0].get("containment") == "pidns":
            self.skipTest("in a PID namespace per task (FEDFLOW_CONTAIN=pidns) a task cannot see the host to signal it")
        self.assertExit(r, 1)
        for rogue in ("rogue", "rogue-setsid"):
            t = self.assertStatus(r, "g", rogue, "EXCEPTION")
            self.assertEqual(t["stage"], "train")
            self.assertIn("sent SIGTERM to fedflow-host", t["message"])
        self.assertEqual(r.result("g", "good"), {"ok": True})
        self.assertStatus(r, "after", "0", "FINISHED")
        self.assertEqual(r.json("run.json")["status"], "failed")


if __name__ == "__main__":
    fftest.main()
