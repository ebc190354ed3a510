#!/usr/bin/env python3
"""A client of docs/examples/command/plan.toml.

  client.py prepare --client ID     (load) writes this client's data.json
  client.py train --device DEV ...  (train) fits y = w*x + b by gradient
                                    descent and writes result.json and
                                    weights.bin (w and b as float32)

Both run in the task's workdir, so relative paths stay in it."""
import argparse
import json
import os
import struct


def prepare(args):
    # Client k holds 10 * (k + 1) points of its own line y = (2 + k) x + 1,
    # x in [0, 2): the clients differ in how much data they have and in
    # what it says.
    k = int(args.client)
    n = 10 * (k + 1)
    xs = [2 * i / n for i in range(n)]
    data = {"x": xs, "y": [(2 + k) * x + 1 for x in xs]}
    with open("data.json", "w") as f:
        json.dump(data, f)
    print("prepared %d samples for client %s" % (len(xs), args.client))


def train(args):
    with open("data.json") as f:
        data = json.load(f)
    xs, ys = data["x"], data["y"]
    n = len(xs)
    # Centre x for a stable step size, then undo it in b.
    mean_x = sum(xs) / n
    w = b = 0.0
    for _ in range(args.epochs):
        grad_w = sum((w * (x - mean_x) + b - y) * (x - mean_x) for x, y in zip(xs, ys)) * 2 / n
        grad_b = sum((w * (x - mean_x) + b - y) for x, y in zip(xs, ys)) * 2 / n
        w -= args.lr * grad_w
        b -= args.lr * grad_b
    b -= w * mean_x
    loss = sum((w * x + b - y) ** 2 for x, y in zip(xs, ys)) / n
    print("client %s on %s: w=%.4f b=%.4f loss=%.2e" % (os.environ["FEDFLOW_TASK_ID"], args.device, w, b, loss))

    with open("weights.bin", "wb") as f:
        f.write(struct.pack("=2f", w, b))   # float32, this machine's byte order
    result = {
        "samples": n,
        "loss": loss,
        "client": os.environ["CLIENT_NAME"],
        "device": args.device,
        "weights": {"$bytes": {"file": "weights.bin"}},   # becomes Bytes
    }
    with open("result.json", "w") as f:
        json.dump(result, f)


parser = argparse.ArgumentParser()
parser.add_argument("stage", choices=["prepare", "train"])
parser.add_argument("--client")
parser.add_argument("--device")
parser.add_argument("--epochs", type=int)
parser.add_argument("--lr", type=float)
args = parser.parse_args()
prepare(args) if args.stage == "prepare" else train(args)
