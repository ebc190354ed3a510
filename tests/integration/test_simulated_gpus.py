#!/usr/bin/env python3
"""GPU scheduling end to end on simulated GPUs (fedflow-host --simulate-gpus,
docs/scheduling.md "Simulated GPUs"), on any machine: gpu_burn declares its
memory on "sim:N" and holds it; the host's probe measures it as NVML's per-
process memory. Every run is also checked for over-commitment from its
events.jsonl: the GPU estimates admitted on a GPU never sum above what
Fedflow may use there."""
import json
import math
import os
import re
import subprocess
import sys
import unittest

import fftest
from fftest import HostTest
from test_progress import ESC, run_in_pty

GiB = 1 << 30
SIZES = {"B": 1, "KB": 1000, "MB": 1000 ** 2, "GB": 1000 ** 3, "TB": 1000 ** 4,
         "KiB": 1024, "MiB": 1024 ** 2, "GiB": 1024 ** 3, "TiB": 1024 ** 4}


def size(text):
    m = re.fullmatch(r"([0-9.]+)\s*([A-Za-z]*)", text)
    return int(float(m.group(1)) * SIZES.get(m.group(2) or "B"))


def parse_spec(spec):
    """[(total, foreign)] of a --simulate-gpus SPEC (the forms these tests use)."""
    gpus = []
    for item in spec.split(","):
        used = 0
        if ":used=" in item:
            item, u = item.split(":used=")
            used = size(u)
        count = 1
        if "x" in item:
            n, item = item.split("x", 1)
            count = int(n)
        gpus += [(size(item), used)] * count
    return gpus


# Every plan here lets Fedflow use the whole of each GPU, so that the numbers
# in the tests are the GPUs' sizes; CPU and RAM are not what is tested.
RESOURCES = """
[resources]
gpu-memory-utilization = 1.0
gpu-memory-reserve = "0"
cpu-utilization = 1
"""


def burn_group(tasks, estimate, holds=None, seconds=0.5, name="burn", extra=""):
    return """
[[group]]
name = "%s"
plugin = "gpu_burn"
tasks = %d
memory = "50MB"
gpu-memory = "%s"
params = { gpu-memory = "%s", seconds = %s }
%s""" % (name, tasks, estimate, holds or estimate, seconds, extra)


class SimulatedGpus(HostTest):
    def plan(self, body, scheduler=None):
        sched = {"max-processes": 16, "auto-adjust": False}
        sched.update(scheduler or {})
        return self.write_plan(body, scheduler=sched, top=RESOURCES)

    def run_sim(self, plan, spec, *args, **kw):
        r = self.run_plan(plan, "--simulate-gpus", spec, "--progress", "plain", *args, **kw)
        if os.path.exists(r.path("events.jsonl")):
            self.assertNeverOverCommitted(r, spec)
        return r

    def trainings(self, r):
        """(start_ms, end_ms, device, estimate, task) of every TRAINING. A
        train that finished ends when the host had its result (its `result`
        event less host_ms): a worker that is not kept exits right after its
        result, and what it held is free from then on, while the host may
        still be writing that result (FINISHED comes after)."""
        seq = {}
        got_result = {}
        for e in r.events():
            if e.get("event") == "status":
                seq.setdefault((e["group"], e["task"]), []).append(e)
            elif e.get("event") == "result":
                # (elapsed_ms is whole milliseconds, rounded down: so is this.)
                got_result[(e["group"], e["task"])] = math.floor(e["elapsed_ms"] - e.get("host_ms", 0))
        out = []
        for key, es in seq.items():
            for i, e in enumerate(es):
                if e["status"] == "TRAINING":
                    end = es[i + 1]["elapsed_ms"] if i + 1 < len(es) else float("inf")
                    if i + 1 < len(es) and es[i + 1]["status"] == "FINISHED" and key in got_result:
                        end = min(end, got_result[key])
                    out.append((e["elapsed_ms"], end, e["device"], e.get("gpu_memory_estimate", 0), key[1]))
        return out

    def assertNeverOverCommitted(self, r, spec):
        gpus = parse_spec(spec)
        trainings = self.trainings(r)
        for index, (total, foreign) in enumerate(gpus):
            dev = "sim:%d" % index
            points = sorted([(s, 1, est) for s, _, d, est, _ in trainings if d == dev] +
                            [(e, 0, est) for _, e, d, est, _ in trainings if d == dev])  # ends first
            held = 0
            for t, starts, est in points:
                held += est if starts else -est
                self.assertLessEqual(held, total - foreign,
                                     "%s over-committed at %s ms: %d bytes admitted, %d usable%s"
                                     % (dev, t, held, total - foreign, r.describe()))

    def peak(self, r, device=None):
        ivs = [(s, e) for s, e, d, _, _ in self.trainings(r) if device is None or d == device]
        return fftest.max_overlap(ivs)

    def devices_of(self, r):
        return {d for _, _, d, _, _ in self.trainings(r)}

    def test_packing_by_memory_on_gpus_of_different_sizes(self):
        # 16 GiB holds four 4 GiB tasks at once, 8 GiB two: six at once.
        plan = self.plan(burn_group(12, "4GiB", seconds=1))
        r = self.run_sim(plan, "16GiB,8GiB")
        self.assertExit(r, 0)
        self.assertEqual(self.peak(r, "sim:0"), 4, r.describe())
        self.assertEqual(self.peak(r, "sim:1"), 2, r.describe())
        for t in range(12):
            res = r.result("burn", str(t))
            self.assertTrue(res["simulated"])
            self.assertIn(res["device"], ("sim:0", "sim:1"))
        self.assertInCI("sim:0: simulated GPU (16.0 GiB)", r.stderr)
        # The probe measured what each task declared, as NVML would.
        self.assertEqual(r.task("burn", "0")["peak_gpu_memory"], 4 * GiB)
        run = r.json("run.json")
        self.assertEqual([d["name"] for d in run["devices"] if d["name"] != "cpu"], ["sim:0", "sim:1"])

    def test_a_task_that_declares_more_than_its_estimate_runs_out_of_memory_and_is_retried_grown(self):
        # 4 GiB of the 8 GiB are another program's: a task that estimates
        # 1 GiB but takes 5 GiB runs out of GPU memory each time, and each
        # retry is admitted on a grown estimate until the retries are spent.
        plan = self.plan(burn_group(1, "1GiB", holds="5GiB"), scheduler={"train-retries": 3})
        r = self.run_sim(plan, "8GiB:used=4GiB")
        self.assertExit(r, 1)
        t = self.assertStatus(r, "burn", "0", "EXCEPTION")
        self.assertEqual(t["retries"]["train"], 3)
        self.assertIn("simulated GPU out of memory", t["message"])
        self.assertIn("gave up after 3 train retries", t["message"])
        estimates = [e.get("gpu_memory_estimate") for e in r.events()
                     if e.get("event") == "status" and e["status"] == "TRAINING"]
        self.assertEqual(estimates[0], GiB)
        self.assertEqual(len(estimates), 4)
        self.assertTrue(all(b > a for a, b in zip(estimates, estimates[1:])), estimates)
        froms = [e.get("estimate_from") for e in r.events() if e.get("event") == "status" and e["status"] == "TRAINING"]
        self.assertEqual(froms[1:], ["grown"] * 3)

    def test_a_grown_estimate_waits_for_room_and_then_fits(self):
        # Two tasks of 5 GiB on 8 GiB, each admitted on 1 GiB: one of them
        # runs out of memory, grows, waits for the other to end, and finishes.
        plan = self.plan(burn_group(2, "1GiB", holds="5GiB", seconds=1.5), scheduler={"train-retries": 8})
        r = self.run_sim(plan, "8GiB")
        self.assertExit(r, 0)
        retried = [t for t in ("0", "1") if r.task("burn", t)["retries"]["train"] > 0]
        self.assertEqual(len(retried), 1, r.describe())
        # Both were admitted at first: each trained before either finished.
        # (Not by the overlap of their stages: on a fast machine the first
        # attempt runs out of memory within the millisecond it started.)
        statuses = [(e["task"], e["status"]) for e in r.events() if e.get("event") == "status"]
        first_end = min(i for i, (_, s) in enumerate(statuses) if s == "FINISHED")
        self.assertEqual({t for t, s in statuses[:first_end] if s == "TRAINING"}, {"0", "1"}, statuses)
        ooms = [e for e in r.events() if e.get("event") == "status" and e["status"] == "INTERRUPT"]
        self.assertTrue(ooms)

    def test_auto_adjust_learns_the_measured_peak(self):
        # The group's 4 GiB estimate is far above the 1 GiB each task
        # declares: once one has finished, the rest are admitted on what was
        # measured (the peak plus a fifth), and more of them fit at once.
        body = burn_group(10, "4GiB", holds="1GiB", seconds=0.8)
        r = self.run_sim(self.plan(body, scheduler={"auto-adjust": True, "max-processes": 12}), "8GiB")
        self.assertExit(r, 0)
        self.assertEqual(r.task("burn", "0")["peak_gpu_memory"], GiB)
        trains = [e for e in r.events() if e.get("event") == "status" and e["status"] == "TRAINING"]
        learned = [e for e in trains if e.get("estimate_from") == "learned"]
        self.assertTrue(learned, r.describe())
        self.assertAlmostEqual(learned[-1]["gpu_memory_estimate"] / GiB, 1.2, places=2)
        self.assertEqual(trains[0]["gpu_memory_estimate"], 4 * GiB)
        self.assertGreater(self.peak(r), 2)  # more than two 4 GiB estimates fit on 8 GiB

    def test_pinned_devices(self):
        body = burn_group(2, "1GiB", name="cuda1", extra='device = "cuda:1"\n')
        body += burn_group(2, "1GiB", name="sim2", extra='device = "sim:2"\n')
        body += burn_group(1, "1GiB", name="cpu", extra='device = "cpu"\n')
        r = self.run_sim(self.plan(body), "3x4GiB")
        # gpu_burn on "cpu" fails: it needs a GPU (and is told so, not sim:N).
        self.assertExit(r, 1)
        for t in ("0", "1"):
            self.assertEqual(r.result("cuda1", t)["device"], "sim:1")
            self.assertEqual(r.result("sim2", t)["device"], "sim:2")
        self.assertIn("needs a GPU, not 'cpu'", r.task("cpu", "0")["message"])

    def test_a_pin_to_a_gpu_that_is_not_simulated_fails_with_the_gpus_there_are(self):
        r = self.run_sim(self.plan(burn_group(1, "1GiB", extra='device = "cuda:5"\n')), "2x4GiB")
        self.assertExit(r, 1)
        self.assertIn("device cuda:5 does not exist: this machine has 2 GPU(s), sim:0 to sim:1",
                      r.task("burn", "0")["message"])

    def test_gpu_order(self):
        # One task at a time, so that each choice is made on an empty machine.
        spec = "8GiB,16GiB:used=12GiB,12GiB"
        for order, expected in (("pci", "sim:0"), ("total-memory", "sim:1"), ("free-memory", "sim:2")):
            with self.subTest(order=order):
                plan = self.plan(burn_group(2, "1GiB", seconds=0), scheduler={"max-processes": 1, "gpu-order": order})
                r = self.run_sim(plan, spec, workdir="run-" + order)
                self.assertExit(r, 0)
                self.assertEqual(self.devices_of(r), {expected}, r.describe())

    def test_gpus_option_and_cuda_visible_devices_choose_simulated_gpus(self):
        plan = self.plan(burn_group(3, "1GiB", seconds=0))
        r = self.run_sim(plan, "3x4GiB", "--gpus", "1")
        self.assertExit(r, 0)
        self.assertEqual(self.devices_of(r), {"sim:1"})
        run = r.json("run.json")
        self.assertEqual([d["used"] for d in run["devices"] if d["name"] != "cpu"], [False, True, False])

        r = self.run_sim(plan, "3x4GiB", workdir="run-visible", env={"CUDA_VISIBLE_DEVICES": "2,0"})
        self.assertExit(r, 0)
        self.assertTrue(self.devices_of(r) <= {"sim:0", "sim:2"} and self.devices_of(r), r.describe())
        self.assertIn("scheduling sim:2, sim:0", r.stderr)

    def test_foreign_use_leaves_less_room(self):
        # 16 GiB of which another program uses 8: two 4 GiB tasks at once, not four.
        plan = self.plan(burn_group(6, "4GiB", seconds=0.5))
        r = self.run_sim(plan, "16GiB:used=8GiB")
        self.assertExit(r, 0)
        self.assertEqual(self.peak(r), 2, r.describe())
        waits = [e for e in r.events() if e.get("event") == "waiting" and e.get("resource") == "gpu-memory"]
        self.assertTrue(waits, r.describe())
        self.assertIn("sim:0", waits[0]["reason"])
        self.assertIn("others 8.00 GiB", waits[0]["reason"])

    def test_report_has_one_timeline_lane_per_gpu(self):
        plan = self.plan(burn_group(2, "1GiB", seconds=0))
        r = self.run_sim(plan, "3x4GiB", "--gpus", "0")
        self.assertExit(r, 0)
        html = r.read("report.html")
        lanes = re.findall(r'<text class="lname"[^>]*>([^<]*)</text>', html)
        self.assertEqual([l for l in lanes if l.startswith("sim:")], ["sim:0", "sim:1", "sim:2"], lanes)

    def test_tty_progress_has_a_line_per_gpu(self):
        plan = self.plan(burn_group(4, "1GiB", seconds=0.3))
        rc, out = run_in_pty([fftest.HOST, plan, "--workdir", os.path.join(self.tmp, "run"), "--progress", "tty",
                              "--simulate-gpus", "4GiB,2GiB"])
        self.assertEqual(rc, 0, out[-2000:])
        text = ESC.sub("", out)
        self.assertRegex(text, r"sim:0 +[\d.]+ \w+ / 4\.00 GiB +in use")
        self.assertRegex(text, r"sim:1 +[\d.]+ \w+ / 2\.00 GiB +in use")

    def test_gpu_check_simulate_runs_the_check_and_compares_with_the_ideal_from_capacity(self):
        if os.environ.get("FEDFLOW_SANITIZED"):
            self.skipTest("24 workers for 10 s under the sanitizers: the other tests cover the path")
        script = os.path.join(fftest.SOURCE_ROOT, "scripts", "gpu-check")
        r = subprocess.run([sys.executable, script, "--simulate", "--build", fftest.BUILD_ROOT,
                            "--workdir", os.path.join(self.tmp, "check")],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr[-3000:])
        self.assertIn("24 (24 finished, 0 failed)", r.stdout)
        # An 80 GiB GPU of which Fedflow may use 95 %: twelve 6.5 GB estimates.
        self.assertIn("ideal makespan:    10.0 s = ceil(24 / 12) * 5.0 s", r.stdout)
        peak = int(re.search(r"training at once: +(\d+) at the peak \(sim:0: \d+\)", r.stdout).group(1))
        self.assertLessEqual(peak, 12)
        self.assertRegex(r.stdout, r"makespan / ideal: +\d\.\d\d")

    def test_bad_spec_is_bad_input(self):
        plan = self.plan(burn_group(1, "1GiB"))
        r = self.run_plan(plan, "--simulate-gpus", "80GiB:free=2GiB")
        self.assertExit(r, 2)
        self.assertIn("--simulate-gpus: '80GiB:free=2GiB': after ':' only used=SIZE may follow", r.stderr)
        self.assertFalse(os.path.exists(r.path("events.jsonl")))


if __name__ == "__main__":
    fftest.main()
