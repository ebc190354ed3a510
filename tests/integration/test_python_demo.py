#!/usr/bin/env python3
"""The PyTorch demo (plugins/python/demo/: a CNN trained by FedAvg, clients
and server in Python), its plan and module as shipped but cut to 3 clients
and 2 rounds on a synthetic digits.csv, so that CI can afford it: every round
in rounds.csv, the clients' state_dict tensors reach the server with their
dtype and shape, round 2 starts from the server's model, and the last round
reports the central yardstick. Skipped without torch or numpy."""
import csv
import os
import re
import shutil

import fftest
from fftest import HostTest
from test_demo import synthetic_digits
from test_python import require_module, require_plugin

DEMO = os.path.join(fftest.SOURCE_ROOT, "plugins", "python", "demo")


class TorchDemo(HostTest):
    def test_cnn_fedavg_two_rounds(self):
        if os.environ.get("FEDFLOW_SANITIZED") == "1":
            # Its Python paths are python-arrays' (whose torch test runs
            # there); what it adds is minutes of torch training, which is
            # not instrumented.
            self.skipTest("the sanitized build: torch's training is not instrumented, and python-arrays covers the plugin")
        require_plugin(self)
        require_module(self, "numpy")
        require_module(self, "torch")
        with open(os.path.join(DEMO, "demo.toml")) as f:
            plan = f.read()
        plan, n = re.subn(r"(?m)^count = 20$", "count = 2", plan)
        self.assertEqual(n, 1)
        plan = plan.replace("tasks = 10 ", "tasks = 3  ").replace("clients = 10", "clients = 3")
        plan = plan.replace("rounds = 20 ", "rounds = 2  ").replace("../../fedavg/data/digits.csv", "data/digits.csv")
        self.write("demo.toml", plan)
        shutil.copy(os.path.join(DEMO, "fedavg_torch.py"), self.tmp)
        synthetic_digits(os.path.join(self.tmp, "data", "digits.csv"))
        r = self.run_plan(os.path.join(self.tmp, "demo.toml"), "--progress", "none", timeout=300)
        self.assertExit(r, 0)
        with open(r.path("rounds.csv")) as f:
            rounds = list(csv.DictReader(f))
        self.assertEqual([int(x["round"]) for x in rounds], [1, 2])
        last = r.json("round-002", "server", "0", "result.json")
        self.assertEqual(last["clients"], 3)
        self.assertGreater(last["accuracy"], 0.5)
        self.assertGreater(last["central_accuracy"], 0.8)
        conv = r.json("round-002", "clients", "0", "result.json")["weights"]["conv1.weight"]["$tensor"]
        self.assertEqual((conv["dtype"], conv["shape"]), ("float32", [16, 1, 3, 3]))
        self.assertEqual(last["weights"]["fc.bias"]["$tensor"]["shape"], [10])
        self.assertIn("from the server's model", r.read("round-002", "clients", "1", "stdout.log"))
        self.assertIn("from the initial model", r.read("round-001", "clients", "1", "stdout.log"))


if __name__ == "__main__":
    fftest.main()
