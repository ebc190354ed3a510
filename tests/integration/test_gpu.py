#!/usr/bin/env python3
"""A task pinned to a GPU trains there (docs/sdk.md, "CUDA": train(device) with "cuda:N").
Skipped on a machine without an NVIDIA GPU. scripts/gpu-check's analysis of
a run (--from) is checked everywhere, on an events.jsonl written here."""
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

import fftest
from fftest import HostTest


def have_gpu():
    return bool(glob.glob("/dev/nvidia[0-9]*"))


class Gpu(HostTest):
    def setUp(self):
        if not have_gpu():
            self.skipTest("no NVIDIA GPU")
        super().setUp()

    def test_pinned_device_reaches_train(self):
        plan = self.write_plan("""
[[group]]
name = "gpu"
plugin = "echo"
device = "cuda:0"
tasks = 2
""")
        r = self.run_plan(plan)
        self.assertExit(r, 0)
        for t in ("0", "1"):
            entry = self.assertStatus(r, "gpu", t, "FINISHED")
            self.assertEqual(entry["result"]["device"], "cuda:0")
            self.assertEqual(entry["device"], "cuda:0")

    def test_a_gpu_that_does_not_exist_fails_train(self):
        plan = self.write_plan("""
[[group]]
name = "gpu"
plugin = "echo"
device = "cuda:999"
""")
        r = self.run_plan(plan)
        self.assertExit(r, 1)
        entry = self.assertStatus(r, "gpu", "0", "EXCEPTION")
        self.assertEqual(entry.get("stage"), "train")
        self.assertRegex(entry.get("message", ""), re.compile(r"cuda|device", re.I))


def status(ms, task, st, **extra):
    e = {"time": "2026-11-28T00:00:00.000Z", "elapsed_ms": ms, "event": "status", "group": "burn",
         "task": task, "status": st}
    e.update(extra)
    return json.dumps(e)


class GpuCheckAnalysis(unittest.TestCase):
    """scripts/gpu-check --from: peak concurrency, makespan and outcomes from
    the status events of a finished run. Needs no GPU and no host."""

    def setUp(self):
        self.script = os.path.join(fftest.SOURCE_ROOT or os.path.join(os.path.dirname(__file__), "..", ".."),
                                   "scripts", "gpu-check")
        self.tmp = tempfile.mkdtemp(prefix="fedflow-gpu-check-test-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def check(self, *args):
        r = subprocess.run([sys.executable, self.script, "--from", self.tmp] + list(args), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=60)
        return r

    def write_run(self):
        # Five tasks of 5 s: 0, 1 (cuda:0) and 2 (cuda:1) start together;
        # 3 starts on cuda:0 the moment 0 finishes (not alongside it); 4
        # is retried once after an out-of-memory INTERRUPT and then fails.
        lines = [json.dumps({"time": "x", "elapsed_ms": 0, "event": "run_start", "tasks": 5})]
        for t in "01234":
            lines.append(status(1, t, "AVAILABLE", pid=100 + int(t)))
            lines.append(status(2, t, "LOADING"))
            lines.append(status(3, t, "WAITING", load_ms=1))
        lines += [
            status(10, "0", "TRAINING", device="cuda:0"),
            status(110, "1", "TRAINING", device="cuda:0"),
            status(210, "2", "TRAINING", device="cuda:1"),
            status(300, "4", "TRAINING", device="cuda:1"),
            status(400, "4", "INTERRUPT"),
            status(401, "4", "WAITING"),
            status(5010, "0", "FINISHED", train_ms=5000),
            status(5010, "3", "TRAINING", device="cuda:0"),
            status(5011, "0", "EXITED"),
            status(5110, "1", "FINISHED", train_ms=5000),
            status(5110, "4", "TRAINING", device="cuda:1"),
            status(5210, "2", "FINISHED", train_ms=5000),
            status(6110, "4", "EXCEPTION", stage="train", message="out of memory: cudaErrorMemoryAllocation"),
            status(10010, "3", "FINISHED", train_ms=5000),
            json.dumps({"time": "x", "elapsed_ms": 10020, "event": "run_end", "status": "failed", "exit_code": 1}),
        ]
        with open(os.path.join(self.tmp, "events.jsonl"), "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n" + '{"time": "torn')  # a host killed mid-line

    def test_json_analysis(self):
        self.write_run()
        r = self.check("--json", "--seconds", "5")
        self.assertEqual(r.returncode, 1, r.stderr)  # task 4 failed
        a = json.loads(r.stdout)
        self.assertEqual(a["tasks"], 5)
        self.assertEqual(a["finished"], 4)
        self.assertEqual(a["failed"], 1)
        # At 300 ms: 0, 1, 2 and 4 train; 0's end and 3's start do not overlap.
        self.assertEqual(a["peak_training"], 4)
        self.assertEqual(a["peak_training_per_device"], {"cuda:0": 2, "cuda:1": 2})
        self.assertAlmostEqual(a["makespan_s"], 10.0)
        self.assertAlmostEqual(a["ideal_makespan_s"], 10.0)  # ceil(5 / 4) * 5
        self.assertAlmostEqual(a["median_training_s"], 5.0)

    def test_text_report_and_measured_seconds(self):
        self.write_run()
        r = self.check()
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("5 (4 finished, 1 failed)", r.stdout)
        self.assertIn("4 at the peak (cuda:0: 2, cuda:1: 2)", r.stdout)
        self.assertIn("makespan:          10.0 s", r.stdout)
        self.assertIn("ceil(5 / 4) * 5.0 s", r.stdout)  # the median training time
        self.assertIn("not JSON", r.stderr)  # the torn line is named, not fatal

    def test_all_finished_is_success(self):
        with open(os.path.join(self.tmp, "events.jsonl"), "w", encoding="utf-8") as f:
            for t in "01":
                f.write(status(5, t, "TRAINING", device="cuda:0") + "\n")
                f.write(status(2005, t, "FINISHED", train_ms=2000) + "\n")
        r = self.check("--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        a = json.loads(r.stdout)
        self.assertEqual((a["tasks"], a["finished"], a["failed"], a["peak_training"]), (2, 2, 0, 2))
        self.assertAlmostEqual(a["ideal_makespan_s"], 2.0)

    def test_no_run_there(self):
        r = self.check("--json")
        self.assertEqual(r.returncode, 2)
        self.assertIn("events.jsonl", r.stderr)


if __name__ == "__main__":
    fftest.main()
