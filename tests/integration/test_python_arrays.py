#!/usr/bin/env python3
"""Arrays through the python plugin: numpy arrays and torch tensors that
clients return reach a server as arrays of the same dtype and shape (a
read-only view of the shared memory for numpy), result.json shows them as
$tensor dicts, and an array made with Task.array() is sent without a copy.
Skipped where the embedded Python has no numpy (torch: its own test)."""
import json
import fftest
from fftest import HostTest
from test_python import require_module, require_plugin

TASKS = r'''
import numpy as np
from fedflow import Task, Tensor

class NumpyClient(Task):
    def train(self, device):
        k = int(self.task_id)
        a = self.array((2, 3), "float32")      # shared memory: no copy
        a[:] = np.arange(6, dtype=np.float32).reshape(2, 3) + k
        return {
            "a": a,
            "ints": np.array([[1, 2], [3, 4], [5, 6]], dtype=np.int64) * (k + 1),
            "fortran": np.asfortranarray(np.arange(6, dtype=np.int16).reshape(2, 3)),
            "bool": np.array([True, False]),
            "scalar": np.float32(2.5), "count": np.int64(7),
            "zero_d": np.array(3.0),
            "big": np.ones((300, 100), dtype=np.float64),
            "raw": Tensor(bytes(4), "bfloat16", [2]),
        }

class NumpyServer(Task):
    def train(self, device):
        out = {}
        for tid, r in sorted(self.inputs["clients"].items()):
            a = r["a"]
            try:
                a[0, 0] = 1
                writable = True
            except ValueError:
                writable = False
            out[tid] = {
                "a": [type(a).__name__, str(a.dtype), list(a.shape), a.tolist()],
                "ints": [str(r["ints"].dtype), list(r["ints"].shape), int(r["ints"].sum())],
                "fortran": r["fortran"].tolist(),
                "bool": r["bool"].tolist(), "scalar": r["scalar"], "count": r["count"],
                "zero_d": [list(r["zero_d"].shape), float(r["zero_d"])],
                "big": [list(r["big"].shape), float(r["big"].sum())],
                "raw": [type(r["raw"]).__name__ if not hasattr(r["raw"], "dtype") else str(r["raw"].dtype),
                        list(r["raw"].shape)],
                "writable": writable,
            }
        return out
'''

AVERAGE_TASKS = r'''
import numpy as np
from fedflow import Task
from fedflow.fl import weighted_average

class Client(Task):
    def train(self, device):
        k = int(self.task_id)
        a = self.array((5, 4000), "float32")
        a[:] = np.arange(20000, dtype=np.float32).reshape(5, 4000) % 7 + k
        return {"w": a, "samples": k + 1}

class Server(Task):
    def train(self, device):
        clients = [r for _, r in sorted(self.inputs["clients"].items())]
        views = [r["w"] for r in clients]
        avg = weighted_average(views, [r["samples"] for r in clients])
        want = sum(r["w"].astype(np.float64) * r["samples"] for r in clients) / sum(r["samples"] for r in clients)
        errors = []
        for bad in (lambda: weighted_average([], []), lambda: weighted_average(views, [0, 0, 0]),
                    lambda: weighted_average([views[0], views[1][:2]], [1, 1]),
                    lambda: weighted_average(views, [1, -1, 1])):
            try:
                bad()
                errors.append(None)
            except ValueError as e:
                errors.append(str(e))
        return {"shape": list(avg.shape), "dtype": str(avg.dtype), "max_error": float(np.abs(avg - want).max()),
                "views": [v.base is not None and not v.flags.writeable for v in views], "errors": errors}
'''

TORCH_TASKS = r'''
import torch
from fedflow import Task

class TorchClient(Task):
    def train(self, device):
        t = torch.arange(12, dtype=torch.float32).reshape(3, 4)
        return {"t": t.t(), "half": t.to(torch.float16), "bf16": torch.ones(2, 2, dtype=torch.bfloat16),
                "grad": torch.ones(2, requires_grad=True) * 2, "longs": torch.tensor([1, 2, 3])}

class TorchServer(Task):
    tensor_type = "torch"
    def train(self, device):
        r = self.inputs["clients"]["0"]
        return {k: [type(v).__name__, str(v.dtype), list(v.shape), v.float().sum().item()] for k, v in r.items()}
'''


def group(name, module, cls, tasks=1, inputs=None):
    text = '[[group]]\nname = "%s"\nplugin = "python"\ntasks = %d\n' % (name, tasks)
    if inputs:
        text += "inputs = %s\n" % json.dumps(inputs)
    return text + "params = { module = %s, class = %s }\n\n" % (json.dumps(module), json.dumps(cls))


class Arrays(HostTest):
    def setUp(self):
        super().setUp()
        require_plugin(self)

    def test_numpy_arrays_keep_dtype_and_shape(self):
        require_module(self, "numpy")
        self.write("np_tasks.py", TASKS)
        plan = self.write_plan(group("clients", "np_tasks.py", "NumpyClient", tasks=2) +
                               group("server", "np_tasks.py", "NumpyServer", inputs=["clients"]))
        r = self.run_plan(plan, timeout=120)  # numpy's import under ASan, on a busy machine
        self.assertExit(r, 0)
        res = r.result("clients", "1")
        # result.json: the $tensor dict, its data a byte file.
        a = res["a"]["$tensor"]
        self.assertEqual((a["dtype"], a["shape"]), ("float32", [2, 3]))
        self.assertEqual(a["data"]["$bytes"]["size"], 24)
        self.assertEqual(a["data"]["$bytes"]["file"], "a.data.bin")
        with open(r.path("clients", "1", "a.data.bin"), "rb") as f:
            import struct
            self.assertEqual(list(struct.unpack("<6f", f.read())), [1, 2, 3, 4, 5, 6])
        self.assertEqual(res["scalar"], 2.5)
        self.assertEqual(res["count"], 7)
        self.assertEqual(res["zero_d"]["$tensor"]["shape"], [])
        s = r.result("server", "0")
        self.assertEqual(s["0"]["a"], ["ndarray", "float32", [2, 3], [[0, 1, 2], [3, 4, 5]]])
        self.assertEqual(s["1"]["a"], ["ndarray", "float32", [2, 3], [[1, 2, 3], [4, 5, 6]]])
        self.assertEqual(s["1"]["ints"], ["int64", [3, 2], 42])
        self.assertEqual(s["0"]["fortran"], [[0, 1, 2], [3, 4, 5]])
        self.assertEqual(s["0"]["bool"], [True, False])
        self.assertEqual((s["0"]["scalar"], s["0"]["count"]), (2.5, 7))
        self.assertEqual(s["0"]["zero_d"], [[], 3.0])
        self.assertEqual(s["0"]["big"], [[300, 100], 30000.0])
        self.assertEqual(s["0"]["raw"][1], [2])
        self.assertFalse(s["0"]["writable"], "inputs are read-only views of shared memory")

    def test_weighted_average_over_the_mapped_inputs(self):
        require_module(self, "numpy")
        self.write("avg_tasks.py", AVERAGE_TASKS)
        plan = self.write_plan(group("clients", "avg_tasks.py", "Client", tasks=3) +
                               group("server", "avg_tasks.py", "Server", inputs=["clients"]))
        r = self.run_plan(plan, timeout=120)
        self.assertExit(r, 0)
        s = r.result("server", "0")
        self.assertEqual((s["shape"], s["dtype"]), ([5, 4000], "float32"))
        self.assertLess(s["max_error"], 1e-5)
        self.assertEqual(s["views"], [True] * 3, "the inputs are read-only views, not copies")
        self.assertEqual(s["errors"], [
            "fedflow.fl.weighted_average: no array to average",
            "fedflow.fl.weighted_average: the weights sum to zero",
            "fedflow.fl.weighted_average: array 1 has 8000 values, array 0 has 20000: all must have the same size",
            "fedflow.fl.weighted_average: weight 1 is -1.0, not a finite number >= 0"])

    def test_torch_tensors_keep_dtype_and_shape(self):
        require_module(self, "torch")
        self.write("torch_tasks.py", TORCH_TASKS)
        plan = self.write_plan(group("clients", "torch_tasks.py", "TorchClient") +
                               group("server", "torch_tasks.py", "TorchServer", inputs=["clients"]))
        r = self.run_plan(plan, timeout=90)
        self.assertExit(r, 0)
        res = r.result("clients", "0")
        self.assertEqual((res["t"]["$tensor"]["dtype"], res["t"]["$tensor"]["shape"]), ("float32", [4, 3]))
        self.assertEqual(res["bf16"]["$tensor"]["dtype"], "bfloat16")
        s = r.result("server", "0")
        self.assertEqual(s["t"], ["Tensor", "torch.float32", [4, 3], 66.0])
        self.assertEqual(s["half"], ["Tensor", "torch.float16", [3, 4], 66.0])
        self.assertEqual(s["bf16"], ["Tensor", "torch.bfloat16", [2, 2], 4.0])
        self.assertEqual(s["grad"], ["Tensor", "torch.float32", [2], 4.0])
        self.assertEqual(s["longs"], ["Tensor", "torch.int64", [3], 6.0])


if __name__ == "__main__":
    fftest.main()
