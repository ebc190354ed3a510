#!/usr/bin/env python3
"""The demo's plan as shipped (plugins/fedavg/demo.toml: 20 rounds of 10
clients and a server) on a synthetic digits.csv: every round reported in
rounds.csv, the server's global model returned as Bytes, and the federated
accuracy within a few points of the central baseline."""
import csv
import os
import random
import shutil

import fftest
from fftest import HostTest


def synthetic_digits(path, n=1797, seed=7):
    """Ten noisy prototypes of 8x8 images: learnable, not trivially so."""
    rng = random.Random(seed)
    protos = [[rng.randint(0, 16) for _ in range(64)] for _ in range(10)]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        for i in range(n):
            label = i % 10
            pixels = [min(16, max(0, p + rng.randint(-6, 6))) for p in protos[label]]
            f.write(",".join(map(str, pixels + [label])) + "\n")


class Demo(HostTest):
    def test_the_demo_plan_runs_twenty_rounds_of_fedavg(self):
        src = os.path.join(fftest.SOURCE_ROOT, "plugins", "fedavg", "demo.toml")
        plan = os.path.join(self.tmp, "demo.toml")
        shutil.copy(src, plan)
        synthetic_digits(os.path.join(self.tmp, "data", "digits.csv"))
        r = self.run_plan(plan, "--progress", "none", timeout=150)
        self.assertExit(r, 0)
        with open(r.path("rounds.csv")) as f:
            rounds = list(csv.DictReader(f))
        self.assertEqual([int(x["round"]) for x in rounds], list(range(1, 21)))
        acc = [float(x["accuracy"]) for x in rounds]
        self.assertGreaterEqual(acc[-1], acc[0])
        last = r.json("round-020", "server", "0", "result.json")
        self.assertEqual(last["clients"], 10)
        self.assertEqual(last["weights"]["$bytes"]["size"], 65 * 10 * 4)  # the global model: 64 features + bias, 10 classes
        self.assertLess(abs(last["central_accuracy"] - last["accuracy"]), 0.05, rounds[-1])
        # Round 2's clients started from round 1's global model.
        self.assertIn("from server weights", r.read("round-002", "clients", "0", "stdout.log"))
        self.assertIn("from zeros", r.read("round-001", "clients", "0", "stdout.log"))


if __name__ == "__main__":
    fftest.main()
