#!/usr/bin/env python3
"""The server of docs/examples/command/plan.toml: averages the clients'
weights, weighted by their sample counts, and prints the result as the last
line of its stdout."""
import json
import os
import struct

inputs_path = os.environ["FEDFLOW_INPUTS"]
with open(inputs_path) as f:
    inputs = json.load(f)

total = 0
w_sum = b_sum = 0.0
for task_id, result in sorted(inputs["clients"].items()):
    # A byte file's name is relative to the folder of inputs.json.
    weights = os.path.join(os.path.dirname(inputs_path), result["weights"]["$bytes"]["file"])
    with open(weights, "rb") as f:
        w, b = struct.unpack("=2f", f.read())
    n = result["samples"]
    print("client %s: %d samples, w=%.4f b=%.4f" % (task_id, n, w, b))
    total += n
    w_sum += n * w
    b_sum += n * b

print(json.dumps({"w": w_sum / total, "b": b_sum / total, "clients": len(inputs["clients"]), "samples": total}))
