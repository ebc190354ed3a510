#!/usr/bin/env python3
"""The scheduler on a real machine, CPU only: RAM estimates that do not all fit
make tasks wait and then run; auto-adjust admits later tasks on what earlier
ones used; out-of-memory in train is retried in the same process and in load
in a new one; exhausted retries end in EXCEPTION. (Admission against GPU
tables is tested in tests/unit/admission_test.cpp; real GPUs in test_gpu.py.)

Runs alone (is_parallel: false in meson.build): the RAM tests size their
estimates from what this machine has free."""
import json
import os
import re

import fftest
from fftest import HostTest


def meminfo():
    out = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key, value = line.split(":", 1)
            out[key] = int(value.split()[0]) * 1024
    return out


class Memory(HostTest):
    def sleepers(self, n, estimate, auto_adjust, seconds=1.0):
        # All the RAM and no reserve: Fedflow may fill what others leave
        # free. Each task's estimate is `estimate` of that (0.4: 2 fit, the
        # 3rd waits, whatever else the machine does within +-20%).
        m = meminfo()
        free_for_us = m["MemAvailable"]
        if free_for_us < 2 * 1024 ** 3:
            self.skipTest("less than 2 GiB of RAM available")
        each = int(free_for_us * estimate)
        plan = self.write_plan("""
[resources]
memory-utilization = 1.0
memory-reserve = 0
cpu-utilization = 1.0

[[group]]
name = "sleepers"
plugin = "fault_sleep"
tasks = %d
memory = %d
params = { seconds = %s }
""" % (n, each, seconds), scheduler={"max-processes": 0, "auto-adjust": auto_adjust})
        return self.run_plan(plan, "--log-level", "info", timeout=60), each

    def trains(self, r, n):
        return [(r.result("sleepers", str(i))["start"], r.result("sleepers", str(i))["end"]) for i in range(n)]

    def test_tasks_whose_estimates_exceed_what_is_free_wait_and_then_run(self):
        r, each = self.sleepers(5, 0.4, auto_adjust=False)
        self.assertExit(r, 0)
        for i in range(5):
            self.assertStatus(r, "sleepers", str(i), "FINISHED")
        self.assertEqual(fftest.max_overlap(self.trains(r, 5)), 2, r.describe())
        # (A fork server slower than its start grace, as under ASan, makes
        # the first load wait for it too: not this test's business.)
        waits = [e for e in r.events() if e.get("event") == "waiting" and e.get("resource") != "fork-server"]
        self.assertTrue(waits, "no task waited" + r.describe())
        self.assertEqual({e["resource"] for e in waits}, {"memory"})
        self.assertEqual({e["stage"] for e in waits}, {"load"})
        # The log says which resource, how much is needed and how much is free.
        self.assertRegex(r.stderr, re.compile(r"sleepers/\d waits to load: RAM: needs [\d.]+ \w+, [-\d.]+ \w+ free"))
        started = [e for e in r.events() if e.get("event") == "status" and e.get("status") == "AVAILABLE"]
        self.assertEqual({e["memory_estimate"] for e in started}, {each})

    def test_auto_adjust_admits_later_tasks_on_what_earlier_ones_used(self):
        r, each = self.sleepers(6, 0.4, auto_adjust=True, seconds=1.5)
        self.assertExit(r, 0)
        started = [e for e in r.events() if e.get("event") == "status" and e.get("status") == "AVAILABLE"]
        estimates = [e["memory_estimate"] for e in started]
        # The first ones on the group's estimate; once one finished, the
        # rest on its measured peak (a few MB) plus a fifth.
        self.assertEqual(estimates[:2], [each, each])
        self.assertLess(max(estimates[2:]), 200 * 1024 ** 2, estimates)
        self.assertGreater(fftest.max_overlap(self.trains(r, 6)), 2, r.describe())

    def test_an_estimate_that_can_never_fit_fails_at_once(self):
        plan = self.write_plan("""
[[group]]
name = "huge"
plugin = "echo"
memory = "1000TB"

[[group]]
name = "after"
plugin = "echo"
""")
        r = self.run_plan(plan)
        self.assertExit(r, 1)
        t = self.assertStatus(r, "huge", "0", "EXCEPTION")
        self.assertEqual(t["stage"], "load")
        self.assertRegex(t["message"], r"RAM: needs .* \(memory estimate\), but Fedflow may use at most")
        self.assertStatus(r, "after", "0", "FINISHED")


class OutOfMemory(HostTest):
    def run_oom(self, params, scheduler=None):
        plan = self.write_plan("""
[[group]]
name = "oom"
plugin = "fault_bad_alloc"
params = %s

[[group]]
name = "after"
plugin = "echo"
""" % params, scheduler=scheduler)
        # A workdir per run: a run with results is not replaced.
        self.oom_runs = getattr(self, "oom_runs", 0) + 1
        return self.run_plan(plan, workdir="run-%d" % self.oom_runs)

    def statuses(self, r):
        return [e["status"] for e in r.events() if e.get("event") == "status" and e.get("group") == "oom"]

    def test_train_is_retried_in_the_same_process_with_its_loaded_data(self):
        r = self.run_oom("{ fail = false, train_ooms = 2 }")
        self.assertExit(r, 0)
        t = self.assertStatus(r, "oom", "0", "FINISHED")
        self.assertEqual(t["retries"], {"load": 0, "train": 2})
        res = r.result("oom", "0")
        self.assertEqual(res["attempts"], 3)
        self.assertEqual(res["loads_in_process"], 1)  # load ran once
        self.assertEqual(res["load_attempts"], 1)
        self.assertEqual(self.statuses(r), ["AVAILABLE", "LOADING", "WAITING", "TRAINING", "INTERRUPT", "WAITING",
                                            "TRAINING", "INTERRUPT", "WAITING", "TRAINING", "FINISHED", "EXITED"])
        pids = {e["pid"] for e in r.events() if e.get("group") == "oom" and "pid" in e}
        self.assertEqual(len(pids), 1)
        interrupts = [e for e in r.events() if e.get("status") == "INTERRUPT"]
        self.assertEqual([e["retry"] for e in interrupts], [1, 2])
        self.assertEqual(interrupts[0]["stage"], "train")
        # bad_alloc is host memory: the RAM estimate grows by half.
        self.assertIn("memory_estimate", interrupts[0])
        self.assertGreater(interrupts[1]["memory_estimate"], interrupts[0]["memory_estimate"])
        self.assertInCI("ran out of memory in train (retry 1 of 3, estimate now", r.stderr)

    def test_load_is_retried_in_a_new_process(self):
        r = self.run_oom("{ fail = false, load_ooms = 2 }")
        self.assertExit(r, 0)
        t = self.assertStatus(r, "oom", "0", "FINISHED")
        self.assertEqual(t["retries"], {"load": 2, "train": 0})
        res = r.result("oom", "0")
        self.assertEqual(res["load_attempts"], 3)
        self.assertEqual(res["loads_in_process"], 1)
        self.assertEqual(self.statuses(r), ["AVAILABLE", "LOADING", "INTERRUPT", "AVAILABLE", "LOADING", "INTERRUPT",
                                            "AVAILABLE", "LOADING", "WAITING", "TRAINING", "FINISHED", "EXITED"])
        pids = [e["pid"] for e in r.events() if e.get("group") == "oom" and "pid" in e]
        self.assertEqual(len(set(pids)), 3, pids)

    def test_exhausted_retries_end_in_exception(self):
        r = self.run_oom("{ fail = false, train_ooms = 9 }", scheduler={"train-retries": 2})
        self.assertExit(r, 1)
        t = self.assertStatus(r, "oom", "0", "EXCEPTION")
        self.assertEqual(t["stage"], "train")
        self.assertEqual(t["retries"], {"load": 0, "train": 2})
        self.assertRegex(t["message"], r"^out of memory: .*gave up after 2 train retries: train-retries = 2")
        self.assertStatus(r, "after", "0", "FINISHED")

        r = self.run_oom("{ fail = false, load_ooms = 9 }", scheduler={"load-retries": 1})
        self.assertExit(r, 1)
        t = self.assertStatus(r, "oom", "0", "EXCEPTION")
        self.assertEqual(t["stage"], "load")
        self.assertRegex(t["message"], r"gave up after 1 load retry: load-retries = 1")

        r = self.run_oom("{ fail = false, train_ooms = 1 }", scheduler={"train-retries": 0})
        self.assertExit(r, 1)
        t = self.assertStatus(r, "oom", "0", "EXCEPTION")
        self.assertRegex(t["message"], r"train-retries = 0")
        self.assertNotIn("INTERRUPT", self.statuses(r))


class Devices(HostTest):
    def has_gpu(self):
        return os.path.exists("/dev/nvidia0")

    def test_without_gpus_tasks_train_on_the_cpu(self):
        if self.has_gpu():
            self.skipTest("this machine has a GPU")
        plan = self.write_plan('[[group]]\nname = "g"\nplugin = "echo"\ntasks = 2\ngpu-memory = "500GB"\n')
        r = self.run_plan(plan)
        self.assertExit(r, 0)
        for i in ("0", "1"):
            self.assertEqual(self.assertStatus(r, "g", i, "FINISHED")["device"], "cpu")
            self.assertEqual(r.result("g", i)["device"], "cpu")
        run = r.json("run.json")
        self.assertEqual([d["name"] for d in run["devices"]], ["cpu"])
        self.assertGreater(run["devices"][0]["memory"], 0)

    def test_a_pinned_gpu_that_does_not_exist_fails_the_task(self):
        plan = self.write_plan('[[group]]\nname = "g"\nplugin = "echo"\n[[group.task]]\nid = "far"\n'
                               'device = "cuda:63"\n[[group.task]]\nid = "near"\n')
        r = self.run_plan(plan)
        self.assertExit(r, 1)
        t = self.assertStatus(r, "g", "far", "EXCEPTION")
        self.assertEqual(t["stage"], "train")
        self.assertIn("device cuda:63 does not exist", t["message"])
        self.assertStatus(r, "g", "near", "FINISHED")

    def test_cuda_visible_devices_becomes_the_gpu_selection(self):
        if self.has_gpu():
            self.skipTest("this machine has a GPU")
        plan = self.write_plan('[[group]]\nname = "g"\nplugin = "echo"\n')
        r = self.run_plan(plan, "--log-level", "info", env={"CUDA_VISIBLE_DEVICES": "0"})
        self.assertExit(r, 0)
        self.assertIn("CUDA_VISIBLE_DEVICES=0 names no GPU of this machine", r.stderr)
        self.assertEqual(self.assertStatus(r, "g", "0", "FINISHED")["device"], "cpu")

    def test_gpus_that_do_not_exist_are_bad_input(self):
        if self.has_gpu():
            self.skipTest("this machine has a GPU")
        plan = self.write_plan('[[group]]\nplugin = "echo"\n')
        r = self.run_plan(plan, "--gpus", "0,1")
        self.assertExit(r, 2)
        self.assertIn("gpus lists GPU 0, but no GPU was found", r.stderr)
        self.assertFalse(os.path.exists(r.path("run.json")))
        r = self.run_plan(plan, "--gpus", "zero")
        self.assertExit(r, 2)
        self.assertIn("--gpus: 'zero' is not a GPU selection", r.stderr)
        # gpus = "none" on the command line: fine anywhere.
        r = self.run_plan(plan, "--gpus", "none")
        self.assertExit(r, 0)


if __name__ == "__main__":
    fftest.main()
