#!/usr/bin/env python3
"""More ways a task can die (issue "Reliability", fault-injection plugins): an
endless loop ended by task-timeout, memory exhausted until std::bad_alloc, a
flood on stdout, a result of 2 GiB with and without [scheduler] result-limit,
a plugin table with the wrong ABI version that only the worker can see, and a
plugin file that lost its entry symbol after the host checked it.

Each test checks the failed tasks' status, stage and message, that the other
tasks of the run finished (a spared task in the same group, a group before
and a group after), and the host's exit status. Throw in load or train,
SIGSEGV, abort() and exit(3) are in test_failures.py; a plugin whose file has
the wrong ABI version or no entry symbol is bad input, refused before
anything starts (exit 2), in test_plan_errors.py.

FEDFLOW_SANITIZED=1 (the ASan/UBSan build, scripts/test --all) skips what
cannot run under AddressSanitizer: a small RLIMIT_AS."""
import json
import os
import re
import shutil
import subprocess
import time

import fftest
from fftest import HostTest

SANITIZED = os.environ.get("FEDFLOW_SANITIZED") == "1"
GiB = 1 << 30
MiB = 1 << 20


def faulty_plan(plugin, armed, group_params=None, spared=True, before=("echo", 2, None)):
    """Groups "before" (`before`: plugin, number of tasks, params), "faulty"
    (plugin: the tasks in `armed`, id -> own params, then "spared" with
    fail = false) and "after" (echo)."""
    def inline(params):
        return "{ %s }" % ", ".join("%s = %s" % (k, json.dumps(v) if not isinstance(v, bool) else str(v).lower())
                                    for k, v in params.items())

    text = '[[group]]\nname = "before"\nplugin = "%s"\ntasks = %d\n' % before[:2]
    if before[2]:
        text += "params = %s\n" % inline(before[2])
    text += "\n"
    text += '[[group]]\nname = "faulty"\nplugin = "%s"\n' % plugin
    if group_params:
        text += "params = %s\n" % inline(group_params)
    for task_id, params in list(armed.items()) + ([("spared", {"fail": False})] if spared else []):
        text += '\n[[group.task]]\nid = "%s"\n' % task_id
        if params:
            text += "params = %s\n" % inline(params)
    text += '\n[[group]]\nname = "after"\nplugin = "echo"\n'
    return text


def worker_alive(pid):
    """True while pid is a fedflow-worker (not a zombie)."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            cmd = f.read()
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return b"fedflow-worker" in cmd and state != "Z"


class FaultTest(HostTest):
    def check_failed(self, r, task_id, stage, message, group="faulty"):
        entry = self.assertStatus(r, group, task_id, "EXCEPTION")
        self.assertEqual(entry.get("stage"), stage, json.dumps(entry))
        self.assertRegex(entry.get("message", ""), re.compile(message, re.I), json.dumps(entry))
        self.assertFalse(os.path.exists(r.path(group, task_id, "result.json")))
        return entry

    def check_others_finished(self, r):
        """The spared task of the faulty group and the groups around it."""
        self.assertStatus(r, "faulty", "spared", "FINISHED")
        for t in ("0", "1"):
            self.assertStatus(r, "before", t, "FINISHED")
        self.assertStatus(r, "after", "0", "FINISHED")

    def status_events(self, r, task_id, group="faulty"):
        return [e for e in r.events() if e.get("event") == "status" and e.get("group") == group
                and e.get("task") == task_id]

    def pids(self, r, task_id, group="faulty"):
        return [e["pid"] for e in self.status_events(r, task_id, group) if "pid" in e]


class EndlessLoop(FaultTest):
    def test_task_timeout_kills_the_loop_and_the_run_goes_on(self):
        # "spin" loops in train, "spin-load" in load; "deaf" ignores SIGTERM,
        # so that only the SIGKILL after the timeout's 0.5 s grace ends it.
        plan = self.write_plan(faulty_plan("fault_endless_loop", {
            "spin": {}, "spin-load": {"stage": "load"}, "deaf": {"ignore_sigterm": True}}),
            scheduler={"task-timeout": "1s", "train-retries": 0, "load-retries": 0})
        r = self.run_plan(plan, timeout=60)
        self.assertExit(r, 1)
        self.check_failed(r, "spin", "train", r"^timed out after 1s in train$")
        self.check_failed(r, "spin-load", "load", r"^timed out after 1s in load$")
        self.check_failed(r, "deaf", "train", r"^timed out after 1s in train$")
        self.check_others_finished(r)

        # No worker outlives its timeout, the deaf one included.
        for task_id in ("spin", "spin-load", "deaf"):
            pids = self.pids(r, task_id)
            self.assertEqual(len(pids), 1, task_id)
            self.assertFalse(worker_alive(pids[0]), "%s's worker %d is still running" % (task_id, pids[0]))

        # SIGTERM ends a loop at once; the deaf one takes the grace period,
        # and the timeout still holds to within a second.
        self.assertGreaterEqual(stage_ms(self, r, "spin", "TRAINING"), 1000)
        self.assertLess(stage_ms(self, r, "spin", "TRAINING"), 5000)
        self.assertGreaterEqual(stage_ms(self, r, "deaf", "TRAINING"), 1500)
        self.assertLess(stage_ms(self, r, "deaf", "TRAINING"), 2500)
        self.assertLess(r.elapsed, 40)


def stage_ms(test, r, task_id, start, group="faulty"):
    """From the task's status `start` to its EXCEPTION, in the journal's ms."""
    events = test.status_events(r, task_id, group)
    begin = next(e["elapsed_ms"] for e in events if e["status"] == start)
    end = next(e["elapsed_ms"] for e in events if e["status"] == "EXCEPTION")
    return end - begin


class Stop(FaultTest):
    """A worker that stops itself (SIGSTOP) is seen, continued, and ended if it
    keeps stopping; a task-timeout holds for it to within a second."""

    def stops(self, r, task_id):
        return [e for e in r.events() if e.get("event") == "stopped" and e.get("task") == task_id]

    def test_a_stopped_worker_is_continued_and_its_task_finishes(self):
        # No task-timeout: before, nothing ever ended this run.
        plan = self.write_plan(faulty_plan("fault_stop", {"once": {}, "in-load": {"stage": "load"}}))
        r = self.run_plan(plan, timeout=30)
        self.assertExit(r, 0)
        for task_id in ("once", "in-load"):
            self.assertStatus(r, "faulty", task_id, "FINISHED")
            self.assertEqual([(e["signal"], e["count"]) for e in self.stops(r, task_id)], [("SIGSTOP", 1)])
        self.check_others_finished(r)
        self.assertInCI("faulty/once: its worker was stopped by SIGSTOP: continuing it", r.stderr)
        self.assertLess(r.elapsed, 15)

    def test_a_worker_that_keeps_stopping_is_ended(self):
        plan = self.write_plan(faulty_plan("fault_stop", {"often": {"times": 100}}))
        r = self.run_plan(plan, timeout=30)
        self.assertExit(r, 1)
        self.check_failed(r, "often", "train", r"^stopped by SIGSTOP 3 times; ended$")
        self.assertEqual([e["count"] for e in self.stops(r, "often")], [1, 2, 3])
        self.check_others_finished(r)
        pids = self.pids(r, "often")
        self.assertFalse(worker_alive(pids[0]))

    def test_the_timeout_of_a_stopped_worker_holds_to_within_a_second(self):
        # Stops, is continued, then sleeps past its 2 s timeout (before, the
        # run ended only after the 5 s grace that followed it).
        plan = self.write_plan(faulty_plan("fault_stop", {"late": {"sleep": 60}}),
                               scheduler={"task-timeout": "2s"})
        r = self.run_plan(plan, timeout=30)
        self.assertExit(r, 1)
        self.check_failed(r, "late", "train", r"^timed out after 2s in train$")
        ms = stage_ms(self, r, "late", "TRAINING")
        self.assertGreaterEqual(ms, 2000)
        self.assertLess(ms, 3000)
        self.check_others_finished(r)


class AllocUntilBadAlloc(FaultTest):
    def test_real_memory_exhaustion_is_out_of_memory_and_retried(self):
        if SANITIZED:
            self.skipTest("AddressSanitizer cannot run under the plugin's 1 GiB RLIMIT_AS")
        # Each attempt allocates and touches 64 MiB blocks until its 1 GiB
        # address space is full. The train is retried twice in its process,
        # the load once in a new process; then the task gives up.
        plan = self.write_plan(faulty_plan("fault_alloc_until_bad_alloc", {
            "boom": {}, "boom-load": {"stage": "load"}}, group_params={"limit": GiB}),
            scheduler={"train-retries": 2, "load-retries": 1, "max-processes": 2})
        r = self.run_plan(plan, timeout=120)
        self.assertExit(r, 1)
        boom = self.check_failed(r, "boom", "train",
                                 r"^out of memory: .*bad_alloc.*gave up after 2 train retries: train-retries = 2")
        self.assertEqual(boom.get("retries"), {"load": 0, "train": 2})
        in_load = self.check_failed(r, "boom-load", "load",
                                    r"^out of memory: .*bad_alloc.*gave up after 1 load retry: load-retries = 1")
        self.assertEqual(in_load.get("retries"), {"load": 1, "train": 0})
        self.assertEqual(len(self.pids(r, "boom-load")), 2, "a load is retried in a new process")
        self.assertEqual(len(self.pids(r, "boom")), 1, "a train is retried in the same process")
        # It did fill its address space: its peak is most of the 1 GiB.
        self.assertGreater(boom.get("peak_memory", 0), GiB // 2)
        self.check_others_finished(r)


class StdoutFlood(FaultTest):
    def test_100_mb_on_stdout_go_to_the_log_and_the_task_finishes(self):
        plan = self.write_plan(faulty_plan("fault_stdout_flood", {"flood": {}}))
        r = self.run_plan(plan, timeout=120)
        self.assertExit(r, 0)
        flood = self.assertStatus(r, "faulty", "flood", "FINISHED")
        self.assertEqual(flood["result"], {"ok": True, "printed": 100 * 1000 * 1000})
        size = os.path.getsize(r.path("faulty", "flood", "stdout.log"))
        self.assertEqual(size, 100 * 1000 * 1000)
        with open(r.path("faulty", "flood", "stdout.log"), "rb") as f:
            self.assertTrue(f.read(64).startswith(b"flood line 0 ...."))
        self.check_others_finished(r)
        # Nothing of it reaches the host's own output, and the host went on
        # with the other tasks while the flood was being written.
        self.assertLess(len(r.output), 100 * 1000, r.describe())
        finished = {e["task"]: e["elapsed_ms"] for e in r.events()
                    if e.get("event") == "status" and e.get("status") == "FINISHED" and e.get("group") == "faulty"}
        self.assertLess(finished["spared"], finished["flood"])


class HugeResult(FaultTest):
    def test_a_result_over_result_limit_fails_with_both_sizes_and_the_key(self):
        plan = self.write_plan(faulty_plan("fault_huge_result", {"boom": {}}),
                               scheduler={"result-limit": "1GiB"})
        r = self.run_plan(plan, timeout=60)
        self.assertExit(r, 1)
        boom = self.check_failed(r, "boom", "train",
                                 r"^bytes\(2147483648\): result too large: it needs 2147483648 bytes \(2\.00 GiB\), "
                                 r"more than the result limit of 1073741824 bytes \(1\.00 GiB\) "
                                 r"\(\[scheduler\] result-limit\)$")
        # Too large is not out of memory: no retry would make it smaller.
        self.assertEqual(boom.get("retries"), {"load": 0, "train": 0})
        self.check_others_finished(r)
        self.assertEqual([n for n in os.listdir("/dev/shm") if n.startswith("fedflow-%d-" % self.host_pid(r))], [])

    def test_the_limit_counts_the_encoded_result_and_every_bytes_buffer(self):
        # 2 MiB in ordinary memory: the encoded result is what is too large.
        # 1 MiB - 4 KiB through ctx.bytes, and the small result dict with it,
        # fit in 1 MiB.
        plan = self.write_plan(faulty_plan("fault_huge_result", {
            "inline": {"inline": True, "size": 2 * MiB}, "fits": {"size": MiB - 4096}}),
            scheduler={"result-limit": "1MiB"})
        r = self.run_plan(plan)
        self.assertExit(r, 1)
        self.check_failed(r, "inline", "train",
                          r"^result of 2097\d{3} bytes: result too large: it needs 2097\d{3} bytes \(2\.00 MiB\), "
                          r"more than the result limit of 1048576 bytes \(1\.00 MiB\) \(\[scheduler\] result-limit\)$")
        fits = self.assertStatus(r, "faulty", "fits", "FINISHED")
        self.assertEqual(fits["result"]["size"], MiB - 4096)
        self.assertEqual(os.path.getsize(r.path("faulty", "fits", "data.bin")), MiB - 4096)
        self.check_others_finished(r)

    def test_without_a_limit_a_2_gib_result_arrives_whole(self):
        need = 3 * GiB
        shm = os.statvfs("/dev/shm")
        if shm.f_bavail * shm.f_frsize < need:
            self.skipTest("/dev/shm has less than 3 GiB free for a 2 GiB result")
        disk = os.statvfs(self.tmp)
        if disk.f_bavail * disk.f_frsize < need:
            self.skipTest("%s has less than 3 GiB free for a 2 GiB byte file" % self.tmp)
        plan = self.write_plan(faulty_plan("fault_huge_result", {"huge": {}}))
        r = self.run_plan(plan, timeout=300)
        self.assertExit(r, 0)
        huge = self.assertStatus(r, "faulty", "huge", "FINISHED")
        size = 2 * GiB
        self.assertRegex(huge["result"]["data"]["$bytes"].pop("checksum"), "^[0-9a-f]{16}$")
        self.assertEqual(huge["result"], {"data": {"$bytes": {"file": "data.bin", "size": size}}, "size": size})
        path = r.path("faulty", "huge", "data.bin")
        self.assertEqual(os.path.getsize(path), size)
        with open(path, "rb") as f:
            for at in (0, MiB, 1024 * MiB, size - MiB, size - 1):
                f.seek(at)
                self.assertEqual(f.read(1)[0], at % 251 if at % MiB == 0 or at == size - 1 else 0, at)
        self.check_others_finished(r)
        self.assertEqual([n for n in os.listdir("/dev/shm") if n.startswith("fedflow-%d-" % self.host_pid(r))], [])
        os.remove(path)  # 2 GiB: not left for tearDown alone

    def host_pid(self, r):
        return r.json("run.json")["host_pid"]


class BadPluginAtRunTime(FaultTest):
    def test_a_table_with_another_abi_version_fails_in_start(self):
        # Its file says ABI 1, so discovery accepts it; the worker reads the
        # table's 99 and refuses to call anything.
        plan = self.write_plan(faulty_plan("fault_table_abi", {"boom": {}}, spared=False))
        r = self.run_plan(plan)
        self.assertExit(r, 1)
        self.check_failed(r, "boom", "start", r"fault_table_abi\.so: plugin ABI version 99, this worker supports version 1$")
        self.assertNotIn("fault_table_abi ran", r.read("faulty", "boom", "stderr.log"))
        for t in ("0", "1"):
            self.assertStatus(r, "before", t, "FINISHED")
        self.assertStatus(r, "after", "0", "FINISHED")

    def test_a_plugin_file_that_lost_its_entry_symbol_fails_in_start(self):
        # The host checks a group's plugin file when the run starts. A file
        # replaced after that (here, while the first group runs) is caught by
        # the worker that loads it.
        plugin = os.path.join(self.tmp, "swapped.so")
        shutil.copy(fftest.plugin_file("echo"), plugin)
        plan = self.write_plan(faulty_plan(plugin, {"0": {}, "1": {}}, spared=False,
                                           before=("fault_sleep", 1, {"seconds": 3})))
        wd = os.path.join(self.tmp, "run")
        proc = subprocess.Popen([fftest.HOST, plan, "--workdir", wd, "--progress", "none"], cwd=self.tmp,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, text=True,
                                errors="replace")
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                try:
                    with open(os.path.join(wd, "events.jsonl"), encoding="utf-8") as f:
                        if '"group_start"' in f.read():
                            break
                except FileNotFoundError:
                    pass
                time.sleep(0.05)
            else:
                self.fail("the first group did not start within 20 s")
            swap = plugin + ".new"
            shutil.copy(fftest.plugin_file("fault_no_entry"), swap)
            os.replace(swap, plugin)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                fftest.kill_group(proc)
                proc.communicate()
        r = fftest.Result(proc.args, proc.returncode, out, err, 0, wd)
        self.assertExit(r, 1)
        self.assertStatus(r, "before", "0", "FINISHED")
        for t in ("0", "1"):
            self.check_failed(r, t, "start", r"swapped\.so does not export fedflow_plugin_enum")
        self.assertStatus(r, "after", "0", "FINISHED")


if __name__ == "__main__":
    fftest.main()
