#!/usr/bin/env python3
"""A task pinned to a GPU trains there (SPEC: train(device) with "cuda:N").
Skipped (77) on a machine without an NVIDIA GPU."""
import glob
import os
import re

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


if __name__ == "__main__":
    fftest.main()
