#!/usr/bin/env python3
"""The demo CNN as a libtorch C++ plugin (plugins/torch_cnn/): its plan as
shipped, cut to 3 clients, 2 rounds and 2 epochs on a synthetic digits.csv so
that CI can afford it, on the CPU: every round in rounds.csv, the clients'
weights reach the server as float32 tensors of the CNN's shapes, round 2
starts from the server's model, the last round reports the central yardstick,
and a plan whose param has the wrong type is refused by the plugin's
declaration. Skipped where libtorch was not found (and in the sanitized
build, which does not build the plugin: libtorch is not instrumented)."""
import csv
import os
import re

import fftest
from fftest import HostTest
from test_demo import synthetic_digits

DEMO = os.path.join(fftest.SOURCE_ROOT, "plugins", "torch_cnn", "demo.toml")


class TorchCNN(HostTest):
    def setUp(self):
        super().setUp()
        try:
            fftest.plugin_file("torch_cnn")
        except AssertionError:
            self.skipTest("the torch_cnn plugin is not built (no libtorch, or a sanitized build)")
        with open(DEMO) as f:
            plan = f.read()
        plan, n = re.subn(r"(?m)^count = 20$", "count = 2", plan)
        self.assertEqual(n, 1)
        plan = plan.replace("tasks = 10 ", "tasks = 3  ").replace("clients = 10", "clients = 3")
        plan = plan.replace("rounds = 20 ", "rounds = 2 ").replace("epochs = 5", "epochs = 2")
        self.plan = plan.replace("../fedavg/data/digits.csv", "data/digits.csv")
        synthetic_digits(os.path.join(self.tmp, "data", "digits.csv"))

    def test_cnn_fedavg_two_rounds(self):
        plan = self.write("demo.toml", self.plan)
        r = self.run_plan(plan, "--progress", "none", timeout=300)
        self.assertExit(r, 0)
        with open(r.path("rounds.csv")) as f:
            rounds = list(csv.DictReader(f))
        self.assertEqual([int(x["round"]) for x in rounds], [1, 2])
        last = r.json("round-002", "server", "0", "result.json")
        self.assertEqual((last["clients"], last["samples"]), (3, sum(
            r.json("round-002", "clients", c, "result.json")["samples"] for c in "012")))
        self.assertGreater(last["accuracy"], 0.5)
        self.assertGreater(last["central_accuracy"], 0.8)
        conv = r.json("round-002", "clients", "0", "result.json")["weights"]["conv1.weight"]["$tensor"]
        self.assertEqual((conv["dtype"], conv["shape"]), ("float32", [16, 1, 3, 3]))
        self.assertEqual(conv["data"]["$bytes"]["size"], 16 * 9 * 4)
        self.assertEqual(last["weights"]["fc.weight"]["$tensor"]["shape"], [10, 128])
        self.assertIn("from the server's model", r.read("round-002", "clients", "1", "stdout.log"))
        self.assertIn("from the initial model", r.read("round-001", "clients", "1", "stdout.log"))

    def test_a_param_of_the_wrong_type_is_refused_before_anything_runs(self):
        plan = self.write("demo.toml", self.plan.replace("epochs = 2", "epochs = 2.0"))
        r = self.host("validate", plan)
        self.assertExit(r, 2)
        self.assertIn("param 'epochs' of group 'clients' is 2.0 (double), but plugin 'torch_cnn' takes an integer "
                      "(write 2)", r.stderr)


if __name__ == "__main__":
    fftest.main()
