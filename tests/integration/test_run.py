#!/usr/bin/env python3
"""fedflow-host end to end on plans that succeed: the outputs of docs/architecture.md
("Outputs": run.json, events.jsonl, report.json, result.json), params, inputs, max-processes."""
import json
import os
import re
import shutil

import fftest
from fftest import HostTest

ECHO_PLAN = """
[[group]]
name = "first"
plugin = "echo"
device = "cpu"
tasks = 2
params = { n = 5 }

[[group.task]]
id = "custom"
params = { n = 9 }
"""


TASK_STATUS = {"INIT", "AVAILABLE", "LOADING", "WAITING", "TRAINING", "FINISHED", "EXITED", "EXCEPTION",
               "INTERRUPT"}


def pattern(n):
    """n bytes of i % 251, as big_bytes writes them."""
    block = bytes(range(251))
    return (block * (n // 251 + 1))[:n]


class EchoRun(HostTest):
    """One run of the echo plugin (docs/sdk.md, "A first plugin"), checked file by file."""

    # One run for all the checks below: it is the same run each time.
    shared_tmp = None
    shared_run = None

    def setUp(self):
        if EchoRun.shared_run is None:
            super().setUp()
            EchoRun.shared_tmp = self.tmp
            EchoRun.shared_run = self.run_plan(self.write_plan(ECHO_PLAN))
        self.tmp = EchoRun.shared_tmp
        self.r = EchoRun.shared_run
        self.assertExit(self.r, 0)

    def tearDown(self):
        pass

    @classmethod
    def tearDownClass(cls):
        if cls.shared_tmp and not os.environ.get("FEDFLOW_KEEP_TMP"):
            shutil.rmtree(cls.shared_tmp, ignore_errors=True)

    def test_workdir_layout(self):
        for f in ("run.json", "events.jsonl", "report.html", os.path.join("first", "report.json")):
            self.assertTrue(os.path.isfile(self.r.path(f)), f + self.r.describe())
        # The page is written by the run itself, and names what ran.
        page = self.r.read("report.html")
        self.assertTrue(page.startswith("<!DOCTYPE html>"), page[:80])
        self.assertIn("first", page)
        self.assertIn("custom", page)
        for t in ("0", "1", "custom"):
            d = self.r.path("first", t)
            self.assertTrue(os.path.isdir(d), d)
            for f in ("result.json", "stdout.log", "stderr.log"):
                self.assertTrue(os.path.isfile(os.path.join(d, f)), os.path.join(d, f))

    def test_run_json(self):
        run = self.r.json("run.json")
        self.assertIsInstance(run, dict)
        version = re.search(r"\d+\.\d+\.\d+", self.host("--version").stdout)
        self.assertIsNotNone(version)
        self.assertIn(version.group(0), json.dumps(run), "run.json names the host version")

    def test_events_journal(self):
        events = self.r.events()
        self.assertGreaterEqual(len(events), 3 * 2, "at least two state changes per task")
        for e in events:
            self.assertIsInstance(e, dict)
        # Every task reaches FINISHED in the journal.
        for t in ("0", "1", "custom"):
            self.assertTrue(any(e.get("task") == t and "FINISHED" in json.dumps(e) for e in events),
                            "no FINISHED event for task %s" % t)
        # State changes use TaskStatus's names (docs/architecture.md, "Task states"), in the order of the stages.
        for t in ("0", "1", "custom"):
            seq = [e["status"] for e in events if e.get("task") == t and "status" in e]
            self.assertTrue(set(seq) <= TASK_STATUS, seq)
            for earlier, later in (("LOADING", "TRAINING"), ("TRAINING", "FINISHED")):
                self.assertLess(seq.index(earlier), seq.index(later), "task %s: %s" % (t, seq))

    def test_report_json(self):
        report = self.r.report("first")
        self.assertEqual(report["group"], "first")
        self.assertEqual(report["plugin"], "echo")
        self.assertIsInstance(report["index"], int)
        self.assertEqual(set(report["tasks"]), {"0", "1", "custom"})
        for t, entry in report["tasks"].items():
            self.assertEqual(entry["status"], "FINISHED", t)
            self.assertEqual(entry["device"], "cpu", t)
            self.assertEqual(entry["result"], self.r.result("first", t), "report.json holds the result of " + t)
            self.assertIsInstance(entry.get("load_ms"), (int, float))
            self.assertIsInstance(entry.get("train_ms"), (int, float))

    def test_result_json_is_what_train_returned(self):
        result = self.r.result("first", "0")
        # The insertion order of the Dict is kept.
        self.assertEqual(list(result), ["device", "n", "ok", "loss", "history", "meta", "weights"])
        weights = result.pop("weights")
        self.assertEqual(result, {"device": "cpu", "n": 5, "ok": True, "loss": 0.25,
                                  "history": [1.0, 0.5, 0.25], "meta": {"group": "first"}})
        self.assertEqual(list(weights), ["$bytes"])
        self.assertEqual(weights["$bytes"]["size"], 4096)
        name = weights["$bytes"]["file"]
        self.assertNotIn("/", name, "a Bytes file lies beside result.json")
        with open(self.r.path("first", "0", name), "rb") as f:
            self.assertEqual(f.read(), b"\x07" * 4096)

    def test_task_params_override_group_params(self):
        self.assertEqual(self.r.result("first", "1")["n"], 5)
        self.assertEqual(self.r.result("first", "custom")["n"], 9)

    def test_stdout_log(self):
        for t in ("0", "1", "custom"):
            log = self.r.read("first", t, "stdout.log")
            self.assertIn("loading %s in " % t, log)
            # The task's workdir is <workdir>/<group>/<task_id>, and its cwd.
            m = re.search(r"loading %s in (\S+)" % re.escape(t), log)
            self.assertEqual(os.path.realpath(m.group(1)), os.path.realpath(self.r.path("first", t)))


class Params(HostTest):
    def test_group_params_overridden_by_task_params(self):
        plan = self.write_plan("""
[[group]]
name = "probe"
plugin = "inputs_probe"
tasks = 1
params = { a = 1, b = "group", lr = 0.5, layers = [1, 2], opt = { m = 0.9 } }

[[group.task]]
id = "t"
params = { b = "task", c = true }
""")
        r = self.run_plan(plan)
        self.assertExit(r, 0)
        self.assertEqual(r.result("probe", "0")["params"],
                         {"a": 1, "b": "group", "lr": 0.5, "layers": [1, 2], "opt": {"m": 0.9}})
        self.assertEqual(r.result("probe", "t")["params"],
                         {"a": 1, "b": "task", "lr": 0.5, "layers": [1, 2], "opt": {"m": 0.9}, "c": True})


class Inputs(HostTest):
    def test_earlier_group_results_reach_a_later_group(self):
        plan = self.write_plan("""
[[group]]
name = "producer"
plugin = "echo"
tasks = 2

[[group]]
name = "unrelated"
plugin = "inputs_probe"

[[group]]
name = "consumer"
plugin = "inputs_probe"
inputs = ["producer"]
""")
        r = self.run_plan(plan)
        self.assertExit(r, 0)
        probe = r.result("consumer", "0")
        inputs = probe["inputs"]
        self.assertEqual(list(inputs), ["producer"], "only the groups named in inputs")
        self.assertEqual(set(inputs["producer"]), {"0", "1"})
        for t in ("0", "1"):
            got = dict(inputs["producer"][t])
            want = dict(r.result("producer", t))
            # Bytes come back as Bytes; the probe returned them, so they are
            # files of the consumer's task now.
            gw, ww = got.pop("weights"), want.pop("weights")
            self.assertEqual(got, want)
            self.assertEqual(gw["$bytes"]["size"], 4096)
            with open(r.path("consumer", "0", gw["$bytes"]["file"]), "rb") as f:
                self.assertEqual(f.read(), b"\x07" * 4096)
        self.assertEqual(probe["round"], 0)
        self.assertEqual(probe["task_id"], "0")
        self.assertEqual(probe["group"], "consumer")
        task_dir = os.path.realpath(r.path("consumer", "0"))
        self.assertEqual(os.path.realpath(probe["workdir"]), task_dir)
        self.assertEqual(os.path.realpath(probe["cwd"]), task_dir, "the task's cwd is its workdir")
        self.assertEqual(os.path.realpath(probe["cwd_in_load"]), task_dir)
        self.assertEqual(os.path.realpath(probe["plan_dir"]), self.tmp)
        # A group without inputs gets none.
        self.assertEqual(r.result("unrelated", "0")["inputs"], {})
        # Groups run strictly in order: every event of a group comes before
        # any task event of the next one.
        order = [e.get("group") for e in r.events() if e.get("task") is not None]
        firsts = {g: order.index(g) for g in ("producer", "unrelated", "consumer")}
        lasts = {g: len(order) - 1 - order[::-1].index(g) for g in firsts}
        self.assertLess(lasts["producer"], firsts["unrelated"])
        self.assertLess(lasts["unrelated"], firsts["consumer"])

    def test_task_output_goes_to_its_logs(self):
        plan = self.write_plan("""
[[group]]
name = "probe"
plugin = "inputs_probe"
""")
        r = self.run_plan(plan)
        self.assertExit(r, 0)
        self.assertIn("probe: stdout in load of 0", r.read("probe", "0", "stdout.log"))
        err = r.read("probe", "0", "stderr.log")
        self.assertIn("probe: stderr in load of 0", err)
        self.assertIn("probe: ctx.log in load of 0", err)


class MaxProcesses(HostTest):
    def overlap(self, r, group, ids):
        """Most trains that ran at the same moment, from fault_sleep's own clock."""
        return fftest.max_overlap([(r.result(group, t)["start"], r.result(group, t)["end"]) for t in ids])

    def test_at_most_max_processes_run_at_once(self):
        for limit, tasks, seconds in ((1, 3, 0.3), (2, 4, 1.0)):
            with self.subTest(max_processes=limit):
                plan = self.write_plan("""
[[group]]
name = "sleepers"
plugin = "fault_sleep"
tasks = %d
params = { seconds = %s }
""" % (tasks, seconds), name="plan-%d.toml" % limit, scheduler={"max-processes": limit})
                r = self.run_plan(plan, workdir="run-%d" % limit)
                self.assertExit(r, 0)
                ids = [str(i) for i in range(tasks)]
                for t in ids:
                    self.assertStatus(r, "sleepers", t, "FINISHED")
                # The limit is reached (spawning a worker takes far less than a
                # second) and never passed.
                self.assertEqual(self.overlap(r, "sleepers", ids), limit)


class Results(HostTest):
    def test_large_bytes_result(self):
        size = 8 * 1024 * 1024 + 3
        plan = self.write_plan("""
[[group]]
name = "big"
plugin = "big_bytes"
params = { size = %d }
""" % size)
        r = self.run_plan(plan)
        self.assertExit(r, 0)
        result = r.result("big", "0")
        self.assertEqual(result["size"], size)
        self.assertEqual(result["data"]["$bytes"]["size"], size)
        with open(r.path("big", "0", result["data"]["$bytes"]["file"]), "rb") as f:
            self.assertTrue(f.read() == pattern(size), "the bytes arrive intact")

    def test_large_bytes_through_inputs(self):
        size = 3 * 1024 * 1024 + 1
        plan = self.write_plan("""
[[group]]
name = "big"
plugin = "big_bytes"
tasks = 2
params = { size = %d }

[[group]]
name = "probe"
plugin = "inputs_probe"
inputs = ["big"]
""" % size)
        r = self.run_plan(plan)
        self.assertExit(r, 0)
        got = r.result("probe", "0")["inputs"]["big"]
        self.assertEqual(set(got), {"0", "1"})
        files = set()
        for t in ("0", "1"):
            ref = got[t]["data"]["$bytes"]
            self.assertEqual(ref["size"], size)
            files.add(ref["file"])
            with open(r.path("probe", "0", ref["file"]), "rb") as f:
                self.assertTrue(f.read() == pattern(size), "input %s arrives intact" % t)
        self.assertEqual(len(files), 2, "two values, two files")

    def test_empty_result_is_an_empty_object(self):
        plan = self.write_plan("""
[[group]]
name = "nothing"
plugin = "noop"
tasks = 3
""")
        r = self.run_plan(plan)
        self.assertExit(r, 0)
        for t in ("0", "1", "2"):
            self.assertEqual(r.result("nothing", t), {})


class Workdir(HostTest):
    def test_plan_workdir_is_relative_to_the_plan_file(self):
        os.makedirs(os.path.join(self.tmp, "elsewhere"))
        plan = self.write_plan("""
[[group]]
name = "g"
plugin = "noop"
""", name="plans/p.toml", top='workdir = "out"\n')
        r = self.host(plan, cwd=os.path.join(self.tmp, "elsewhere"))
        self.assertExit(r, 0)
        self.assertTrue(os.path.isfile(os.path.join(self.tmp, "plans", "out", "run.json")), r.describe())
        self.assertTrue(os.path.isdir(os.path.join(self.tmp, "plans", "out", "g", "0")))
        self.assertEqual(os.listdir(os.path.join(self.tmp, "elsewhere")), [])

    def test_default_group_name(self):
        plan = self.write_plan("""
[[group]]
plugin = "noop"
""")
        r = self.run_plan(plan)
        self.assertExit(r, 0)
        groups = [d for d in os.listdir(r.workdir) if os.path.isdir(r.path(d))]
        self.assertEqual(len(groups), 1, groups)
        self.assertRegex(groups[0], r"^group-\d+$")
        self.assertEqual(r.report(groups[0])["group"], groups[0])


class PluginPath(HostTest):
    def test_plugin_path_option_and_plan_key(self):
        # A copy of inputs_probe in two private folders, with the build's
        # plugin path emptied: only --plugin-path or the plan's plugin-path
        # can find it.
        for d in ("opt-dir", "plans/plan-dir"):
            os.makedirs(os.path.join(self.tmp, d))
            shutil.copy(fftest.plugin_file("inputs_probe"), os.path.join(self.tmp, d, "probe-copy.so"))
        body = """
[[group]]
name = "g"
plugin = "inputs_probe"
"""
        no_env = {"FEDFLOW_PLUGIN_PATH": ""}
        plan = self.write_plan(body, name="plans/a.toml")
        r = self.run_plan(plan, "--plugin-path", os.path.join(self.tmp, "opt-dir"), workdir="a", env=no_env)
        self.assertExit(r, 0)
        plan = self.write_plan(body, name="plans/b.toml", top='plugin-path = ["plan-dir"]\n')
        r = self.run_plan(plan, workdir="b", env=no_env)
        self.assertExit(r, 0)
        r = self.run_plan(self.write_plan(body, name="plans/c.toml"), workdir="c", env=no_env)
        self.assertExit(r, 2)


if __name__ == "__main__":
    fftest.main()
