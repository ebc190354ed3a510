#!/usr/bin/env python3
"""What a worker says on its control channel (issue "Hardening", items 2 and
18). A plugin that writes frames to fd 3 behind the worker's back
(fault_protocol: malformed frames, unknown types, messages out of turn,
duplicates, garbage) fails only its own task, in the stage it was in, with
"protocol error: ..."; its worker is ended; the group still gets its
report.json and the next group runs. A plugin that closes fd 3
(fault_close_channel) is reported as having closed its channel, not by how
its worker then ended.

The messages themselves, their decoding and the check of their turn are
unit-tested in tests/unit/messages_test.cpp; the fuzz target channel_fuzz
feeds the same code arbitrary bytes."""
import json
import os
import re

import fftest
from test_faults_more import FaultTest, faulty_plan, worker_alive

GARBAGE_TYPE = int.from_bytes(b"GARB", "little")
GARBAGE_LENGTH = int.from_bytes(b"AGE!", "little")

# task id -> (params of fault_protocol, the stage it fails in, its message)
HOSTILE = {
    # The two frames of the issue: each made the host exit 3.
    "failed-empty": ({"send": "failed-empty"}, "train",
                     r"^protocol error: 'failed' message: field 'stage' is missing$"),
    "loaded-twice": ({"send": "loaded", "stage": "load"}, "train",
                     r"^protocol error: unexpected 'loaded' message \(expected (nothing: no stage is running|"
                     r"'result' or 'failed' in train)\)$"),
    "loaded-in-train": ({"send": "loaded"}, "train",
                        r"^protocol error: unexpected 'loaded' message \(expected 'result' or 'failed' in train\)$"),
    "ready-again": ({"send": "ready"}, "train",
                    r"^protocol error: unexpected 'ready' message \(expected 'result' or 'failed' in train\)$"),
    "result-in-load": ({"send": "result", "stage": "load"}, "load",
                       r"^protocol error: unexpected 'result' message \(expected 'loaded' or 'failed' in load\)$"),
    "host-type": ({"send": "config"}, "train", r"^protocol error: 'config' message, which only the host sends$"),
    "unknown-type": ({"send": "unknown-type"}, "train", r"^protocol error: message of unknown type 99$"),
    "bad-field": ({"send": "bad-field", "stage": "load"}, "load",
                  r"^protocol error: 'loaded' message: field 'ms' is a string, not an integer$"),
    "not-ffv1": ({"send": "not-ffv1"}, "train",
                 r"^protocol error: 'loaded' frame: the body is not an FFV1 document: .+"),
    "not-dict": ({"send": "not-dict"}, "train", r"^protocol error: 'failed' frame: the body is list, not a dict$"),
    "garbage": ({"send": "garbage"}, "train",
                r"^protocol error: frame of unknown type %d of %d bytes refused \(at most 67108864\)$"
                % (GARBAGE_TYPE, GARBAGE_LENGTH)),
}

CLOSED = r"^the task closed its control channel \(fd 3\), so it could not report: a plugin must leave fd 3 open$"


class HostileFrames(FaultTest):
    def test_whatever_a_worker_sends_fails_only_its_task(self):
        plan = self.write_plan(faulty_plan("fault_protocol", {t: p for t, (p, _, _) in HOSTILE.items()}),
                               scheduler={"max-processes": 6})
        r = self.run_plan(plan, timeout=60)
        self.assertExit(r, 1)
        self.assertNotIn("no transition", r.output)
        for task_id, (_, stage, message) in HOSTILE.items():
            with self.subTest(task=task_id):
                self.check_failed(r, task_id, stage, message)
                pids = self.pids(r, task_id)
                self.assertEqual(len(pids), 1)
                self.assertFalse(worker_alive(pids[0]), "%s's worker %d still runs" % (task_id, pids[0]))
                # Its log says why, once: a protocol error ends the task at
                # the first word out of place.
                errors = [l for l in r.stderr.splitlines() if "faulty/%s EXCEPTION" % task_id in l]
                self.assertEqual(len(errors), 1, r.describe())
        self.check_others_finished(r)
        run = r.json("run.json")
        self.assertEqual(run["status"], "failed")
        self.assertEqual(run["exit_code"], 1)
        statuses = {t: e["status"] for t, e in r.report("faulty")["tasks"].items()}
        self.assertEqual(sorted(t for t, s in statuses.items() if s == "EXCEPTION"), sorted(HOSTILE))
        # The workers were ended by the host, not left to finish: none of
        # the faulty tasks reached a result.
        for task_id in HOSTILE:
            statuses = [e["status"] for e in self.status_events(r, task_id)]
            self.assertNotIn("FINISHED", statuses, task_id)


class AfterTheEnd(FaultTest):
    def test_a_frame_after_the_result_keeps_the_result(self):
        # The task's result was taken and the host said exit; its destructor
        # then writes a bad frame, or one out of turn. The task finished and
        # stays so: its worker is ended and the host says why, once.
        plan = self.write_plan(faulty_plan("fault_protocol", {
            "garbage-at-exit": {"send": "not-dict", "stage": "exit"},
            "loaded-at-exit": {"send": "loaded", "stage": "exit"}}))
        r = self.run_plan(plan, timeout=60)
        self.assertExit(r, 0)
        for task_id in ("garbage-at-exit", "loaded-at-exit"):
            with self.subTest(task=task_id):
                self.assertStatus(r, "faulty", task_id, "FINISHED")
                self.assertEqual(r.json("faulty", task_id, "result.json"), {"ok": True})
                warnings = [l for l in r.stderr.splitlines()
                            if "faulty/%s: protocol error after the task ended (FINISHED)" % task_id in l]
                self.assertEqual(len(warnings), 1, r.describe())
                self.assertFalse(worker_alive(self.pids(r, task_id)[0]))
        self.check_others_finished(r)
        self.assertEqual(r.json("run.json")["status"], "finished")


class ClosedChannel(FaultTest):
    def test_a_plugin_that_closes_fd_3_is_reported_as_such(self):
        # "now": closes fd 3 and returns at once (the worker then finds its
        # channel gone); "load": in load, a second before it returns (the
        # host sees the channel close while the worker runs, or, behind a
        # shim, the worker's exit code); "forever": closes it and never
        # returns: the host sees the socket close only where nothing but the
        # worker holds it (cgroup containment; ended 5 s later); behind a
        # shim (pidns, subreaper), which holds it too, the task-timeout ends it.
        plan = self.write_plan(faulty_plan("fault_close_channel", {
            "now": {}, "load": {"stage": "load", "linger": 1.0}, "forever": {"linger": -1.0}}),
            scheduler={"task-timeout": "10s"})
        r = self.run_plan(plan, timeout=60)
        self.assertExit(r, 1)
        self.check_failed(r, "now", "train", CLOSED)
        self.check_failed(r, "load", "load", CLOSED)
        if r.events()[0]["containment"] == "cgroup":
            self.check_failed(r, "forever", "train", CLOSED)
        else:
            self.check_failed(r, "forever", "train", r"^timed out after 10s in train$")
        self.assertNotIn("SIGABRT", r.output)
        self.assertIn("fedflow-worker: the control channel (fd 3) is closed",
                      r.read("faulty", "now", "stderr.log"))
        self.check_others_finished(r)


if __name__ == "__main__":
    fftest.main()
