#!/usr/bin/env python3
"""The bundled plugin `python` (docs/python.md): a Python task class run in
the worker's own process. An original-Fedflow style class with its own
constructor, load and train on one object, values both ways, params and
context, errors with their traceback, out-of-memory retries on the same
object, unbuffered output, a timeout inside C code, an interpreter or venv
named by the plan. Arrays (numpy, torch) are in test_python_arrays.py."""
import json
import os
import subprocess
import textwrap

import fftest
from fftest import HostTest

EXAMPLE = os.path.join(fftest.SOURCE_ROOT, "docs", "examples", "python")

# An original-Fedflow task: its own constructor arguments, state kept from
# load to train, a result of every type.
TASKS = r'''
import json, os, sys, time
from fedflow import Task, Param

class Counter(Task):
    def __init__(self, task_id, scale=1, label="x"):
        super().__init__(task_id, estimate_memory="100MB", estimate_cuda_memory="2GiB")
        self.scale = scale
        self.label = label
        self.loads = 0
        self.trains = 0

    def load(self):
        self.loads += 1
        self.data = [int(self.task_id) * self.scale + i for i in range(4)]
        print("loaded", self.task_id, "in", os.getcwd())

    def train(self, device):
        self.trains += 1
        print("training", self.task_id, "on", device, file=sys.stderr)
        return {
            "task_id": self.task_id, "device": device, "self_device": self.device,
            "sum": sum(self.data), "label": self.label, "loads": self.loads, "trains": self.trains,
            "ratio": 0.5, "ok": True, "none": None, "tuple": (1, "two", 3.0),
            "nested": {"list": [1, [2, {"deep": "yes"}]]},
            "blob": b"\x00\x01\x02", "buf": bytearray(b"abc"),
            "params": self.params, "round": self.round, "group": self.group,
            "workdir": self.workdir, "cwd": os.getcwd(), "plan_dir": self.plan_dir,
            "memory": self.estimate_memory, "module": __name__, "sys_path0": sys.path[0],
            "executable": sys.executable, "prefix": sys.prefix,
        }

class Plain:
    """Not a fedflow.Task: any class with train(self, device) will do."""
    def __init__(self, task_id):
        self.id = task_id
    def train(self, device):
        return {"id": self.id, "from_ctx": self.task_id}

class NoConstructor:
    """No constructor of its own: built without the id, which it gets all the same."""
    def train(self, device):
        return {"from_ctx": self.task_id}

class Diverged(Task):
    """A loss gone to NaN, and infinities in a list."""
    def train(self, device):
        return {"loss": float("nan"), "accuracy": 0.5, "history": [1.0, float("inf"), -float("inf")]}

class ZeroCopy(Task):
    def train(self, device):
        b = self.bytes(8)
        b[:] = b"ABCDEFGH"
        return {"b": b, "big": bytes(range(256)) * 1024}

class Fails(Task):
    def __init__(self, task_id, where="train"):
        super().__init__(task_id)
        self.where = where
        if where == "init":
            raise ValueError("bad init")

    def load(self):
        if self.where == "load":
            helper()

    def train(self, device):
        if self.where == "train":
            return 1 / 0
        if self.where == "result":
            return {"x": object()}
        if self.where == "not-dict":
            return [1, 2]
        if self.where == "bigint":
            return {"n": 2 ** 70}
        if self.where == "bytes-in-load":
            return {}
        if self.where == "library":
            return parse_config("{")
        if self.where == "exit":
            print("the last words")
            os._exit(3)
        if self.where == "sleep":
            time.sleep(600)
        return {}

def helper():
    raise KeyError("no such sample")

def parse_config(text):
    return json.loads(text)  # json's decoder raises 3 frames down

class OomOnce(Task):
    """MemoryError on the first train: the retry runs on the same object."""
    def __init__(self, task_id, torch_cpu=False):
        super().__init__(task_id)
        self.loads = self.trains = 0
        self.torch_cpu = torch_cpu
    def load(self):
        self.loads += 1
        self.cache = list(range(10))
    def train(self, device):
        self.trains += 1
        if self.trains == 1 and self.torch_cpu:
            # What torch's CPU allocator raises (c10/core/impl/alloc_cpu.cpp).
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:83] data. DefaultCPUAllocator: can't allocate "
                               "memory: you tried to allocate 40000000000 bytes. Error code 12 (Cannot allocate memory)")
        if self.trains == 1:
            raise MemoryError("first train wants too much")
        return {"loads": self.loads, "trains": self.trains, "cache": len(self.cache)}

class SimGpu(Task):
    """Declares GPU memory on a simulated GPU (fedflow-host --simulate-gpus)."""
    def __init__(self, task_id, holds="3GiB"):
        super().__init__(task_id)
        self.holds = holds
    def train(self, device):
        declared = self.declare_gpu_memory(self.holds)
        time.sleep(1.2)  # held while the host samples (every 0.5 s while a task trains on a GPU)
        return {"device": device, "declared": declared}

class SimOomOnce(Task):
    """Holds 3 GiB on its simulated GPU, then runs out of (host) memory once."""
    trains = 0
    def train(self, device):
        self.trains += 1
        self.declare_gpu_memory("3GiB")
        if self.trains == 1:
            time.sleep(1.2)  # measured by the host while held
            raise MemoryError("first train wants too much")
        return {"trains": self.trains}

class AlwaysOom(Task):
    def train(self, device):
        raise MemoryError("never enough")

class MissingInput(Task):
    def train(self, device):
        try:
            self.inputs["server"]
        except KeyError as e:
            group = e.args[0]
        try:
            self.inputs["g"]["7"]
        except KeyError as e:
            task = e.args[0]
        return {"group": group, "task": task, "has": sorted(self.inputs["g"])}

class Declared(Task):
    declared_params = {"dim": Param(int, default=20), "lr": Param(float, default=0.1),
                       "data": Param(str, required=True)}
    def train(self, device):
        return {"params": self.params}

class BytesInLoad(Task):
    def load(self):
        self.bytes(4)
    def train(self, device):
        return {}
'''


def group(name, cls, tasks=1, init=None, extra="", module="tasks.py"):
    params = {"module": module, "class": cls}
    text = '[[group]]\nname = "%s"\nplugin = "python"\ntasks = %d\n' % (name, tasks)
    text += "params = { module = %s, class = %s%s%s }\n" % (
        json.dumps(module), json.dumps(cls),
        (", init = { %s }" % ", ".join("%s = %s" % (k, json.dumps(v)) for k, v in init.items())) if init else "",
        extra)
    return text + "\n"


def require_plugin(test):
    """Skips test where the python plugin was not built."""
    try:
        fftest.plugin_file("python")
    except AssertionError:
        test.skipTest("the python plugin is not built (no python3-embed)")


def require_module(test, name):
    """Skips test where the plugin's interpreter cannot import name."""
    if not has_module(name):
        test.skipTest("%s is not installed for %s (Debian: python3-%s)" % (name, python_executable(), name))


class Python(HostTest):
    def setUp(self):
        super().setUp()
        require_plugin(self)
        self.write("tasks.py", TASKS)

    def test_original_style_task(self):
        plan = self.write_plan(group("clients", "Counter", tasks=2, init={"scale": 10, "label": "L"},
                                     extra=", lr = 0.1, epochs = 3"))
        r = self.run_plan(plan)
        self.assertExit(r, 0)
        res = r.result("clients", "1")
        wd = r.path("clients", "1")
        self.assertEqual(res["task_id"], "1")
        self.assertEqual(res["device"], "cpu")
        self.assertEqual(res["self_device"], "cpu")
        self.assertEqual(res["sum"], 10 + 11 + 12 + 13)   # load's data, in train: one object
        self.assertEqual((res["loads"], res["trains"]), (1, 1))
        self.assertEqual(res["label"], "L")
        self.assertEqual(res["ratio"], 0.5)
        self.assertIs(res["ok"], True)
        self.assertIsNone(res["none"])
        self.assertEqual(res["tuple"], [1, "two", 3.0])
        self.assertEqual(res["nested"], {"list": [1, [2, {"deep": "yes"}]]})
        self.assertEqual(res["params"], {"lr": 0.1, "epochs": 3})   # module, class, init are the plugin's
        self.assertEqual((res["round"], res["group"]), (0, "clients"))
        self.assertEqual(res["workdir"], wd)
        self.assertEqual(res["cwd"], wd)
        self.assertEqual(res["plan_dir"], self.tmp)
        self.assertEqual(res["memory"], 100 * 10**6)
        self.assertEqual(res["module"], "tasks")
        self.assertEqual(res["sys_path0"], self.tmp)      # the module's folder: its neighbours import
        # Debian's interpreter, not a python3 that PATH may find first.
        self.assertFalse(res["executable"].startswith(os.path.expanduser("~/.pyenv")), res["executable"])
        with open(os.path.join(wd, res["blob"]["$bytes"]["file"]), "rb") as f:
            self.assertEqual(f.read(), b"\x00\x01\x02")
        with open(os.path.join(wd, res["buf"]["$bytes"]["file"]), "rb") as f:
            self.assertEqual(f.read(), b"abc")
        self.assertIn("loaded 1 in " + wd, r.read("clients", "1", "stdout.log"))
        # The constructor's estimates reached the host with load's end.
        waiting = [e for e in r.events() if e.get("status") == "WAITING" and e["task"] == "1"]
        self.assertEqual((waiting[0].get("memory_estimate"), waiting[0].get("gpu_memory_estimate")),
                         (100 * 10**6, 2 * 2**30), waiting)
        self.assertIn("training 1 on cpu", r.read("clients", "1", "stderr.log"))

    def test_module_by_name_and_any_class(self):
        # An importable module name: the plan's folder is on sys.path.
        plan = self.write_plan(group("g", "Plain", module="tasks"))
        r = self.run_plan(plan)
        self.assertExit(r, 0)
        self.assertEqual(r.result("g", "0"), {"id": "0", "from_ctx": "0"})

    def test_nan_and_infinity_in_a_result_are_null_and_said(self):
        # JSON has no NaN: result.json holds null, and the log and the
        # journal say where, so that a diverged model is not taken for a
        # value that is missing.
        plan = self.write_plan(group("g", "Diverged"))
        r = self.run_plan(plan)
        self.assertExit(r, 0)
        self.assertEqual(r.result("g", "0"), {"loss": None, "accuracy": 0.5, "history": [1.0, None, None]})
        self.assertIn("g/0: its result holds NaN or infinity at loss, history.1, history.2: result.json has null "
                      "there (JSON has no NaN)", r.stderr)
        finished = [e for e in r.events() if e.get("status") == "FINISHED"]
        self.assertEqual(finished[0]["non_finite"], ["loss", "history.1", "history.2"], r.describe())

    def test_a_class_without_a_constructor(self):
        # docs/python.md: a class with train(self, device) runs; one whose
        # constructor takes no id is not given one.
        plan = self.write_plan(group("g", "NoConstructor", module="tasks"))
        r = self.run_plan(plan)
        self.assertExit(r, 0)
        self.assertEqual(r.result("g", "0"), {"from_ctx": "0"})

    def test_missing_inputs_say_what_there_is(self):
        plan = self.write_plan(group("g", "Plain", tasks=2) + group("h", "MissingInput").replace(
            'plugin = "python"', 'plugin = "python"\ninputs = ["g"]'))
        r = self.run_plan(plan)
        self.assertExit(r, 0)
        res = r.result("h", "0")
        self.assertEqual(res["has"], ["0", "1"])
        self.assertIn("inputs has no group 'server' (it has: g)", res["group"])
        self.assertEqual(res["task"], "inputs.g has no task '7' (2 of 2 finished: 0, 1)")

    def test_declared_params_get_defaults_and_are_checked_before_construction(self):
        plan = self.write_plan(group("g", "Declared", tasks=2, extra=', data = "d", lr = 1'))
        r = self.run_plan(plan)
        self.assertExit(r, 0)
        self.assertEqual(r.result("g", "1")["params"], {"data": "d", "lr": 1, "dim": 20})
        plan = self.write_plan(group("g", "Declared", tasks=2, extra=", dim = 20.0"), name="bad.toml")
        r = self.run_plan(plan, workdir="bad")
        self.assertExit(r, 1)
        t = self.assertStatus(r, "g", "0", "EXCEPTION")
        self.assertEqual(t["stage"], "load")
        self.assertIn("TypeError: param 'dim' of group 'g' (class Declared) is 20.0 (double), but it takes an "
                      "integer (write 20); group 'g' (class Declared) needs param 'data' (string), which it requires",
                      t["message"])

    def test_shared_memory_bytes(self):
        plan = self.write_plan(group("g", "ZeroCopy"))
        r = self.run_plan(plan)
        self.assertExit(r, 0)
        res = r.result("g", "0")
        self.assertEqual(r.read("g", "0", res["b"]["$bytes"]["file"]), "ABCDEFGH")
        self.assertEqual(res["big"]["$bytes"]["size"], 256 * 1024)
        with open(r.path("g", "0", res["big"]["$bytes"]["file"]), "rb") as f:
            self.assertEqual(f.read(), bytes(range(256)) * 1024)

    def fails(self, where, stage, *needles, extra_params=""):
        plan = self.write_plan(group("g", "Fails", init={"where": where}, extra=extra_params))
        r = self.run_plan(plan)
        self.assertExit(r, 1)
        t = self.assertStatus(r, "g", "0", "EXCEPTION")
        self.assertEqual(t["stage"], stage, json.dumps(t))
        for n in needles:
            self.assertIn(n, t["message"], json.dumps(t))
        return r, t

    def test_exception_in_train_has_type_message_and_frames(self):
        r, t = self.fails("train", "train", "ZeroDivisionError: division by zero",
                          "at tasks.py:%d in train: return 1 / 0" % (fftest.line_of(TASKS, "return 1 / 0") + 0))
        self.assertNotIn("_runtime.py", t["message"])
        log = r.read("g", "0", "stderr.log")
        self.assertIn("Traceback (most recent call last)", log)
        self.assertIn("ZeroDivisionError: division by zero", log)

    def test_an_exception_in_a_library_names_the_tasks_own_line(self):
        # json's 3 frames would fill the message: the innermost line of the
        # task's own file comes first, and no frame of Fedflow's shows.
        _, t = self.fails("library", "train", "JSONDecodeError: Expecting property name",
                          "at tasks.py:%d in parse_config: return json.loads(text)" % fftest.line_of(
                              TASKS, "return json.loads(text)"), "decoder.py")
        self.assertNotIn("values.py", t["message"])
        self.assertNotIn("task.py", t["message"])

    def test_exception_in_load_and_constructor(self):
        _, t = self.fails("load", "load", "KeyError: 'no such sample'", "in load: helper()", "in helper")
        self.assertLess(t["message"].index("in load"), t["message"].index("in helper"))
        self.fails("init", "load", "ValueError: bad init", "in __init__")

    def test_results_that_cannot_be_sent_name_the_path(self):
        self.fails("result", "train", "result['x']: a object cannot be returned")
        self.fails("not-dict", "train", "TypeError: train returned a list, not a dict")
        self.fails("bigint", "train", "result['n']: the integer does not fit in 64 bits")

    def test_bad_params(self):
        plan = self.write_plan(group("g", "Nope"))
        r = self.run_plan(plan)
        self.assertExit(r, 1)
        t = self.assertStatus(r, "g", "0", "EXCEPTION")
        self.assertIn("module tasks.py has no class 'Nope' (it defines: AlwaysOom, BytesInLoad, Counter", t["message"])
        # A module file that is not there is found by validate (and the
        # run's own check), before any task: exit 2, nothing started.
        plan = self.write_plan(group("g", "X", module="missing.py"))
        for args in (["validate", plan], [plan]):
            r = self.host(*args)
            self.assertExit(r, 2)
            self.assertRegex(r.stderr, r"plan\.toml:\d+:\d+: plugin of group 'g': param 'module': .*/missing\.py is "
                                       r"not a file \(a \.py file is relative to the plan's folder ")

    def test_bytes_only_in_train(self):
        plan = self.write_plan(group("g", "BytesInLoad"))
        r = self.run_plan(plan)
        t = self.assertStatus(r, "g", "0", "EXCEPTION")
        self.assertEqual(t["stage"], "load")
        self.assertIn("bytes() and array() may be called only in train", t["message"])

    def test_memory_error_is_out_of_memory_and_retried_on_the_same_object(self):
        plan = self.write_plan(group("g", "OomOnce") + group("h", "AlwaysOom") +
                               group("torch_cpu", "OomOnce", init={"torch_cpu": True}), scheduler={"train-retries": 2})
        r = self.run_plan(plan)
        self.assertExit(r, 1)
        for g in ("g", "torch_cpu"):
            self.assertStatus(r, g, "0", "FINISHED")
            self.assertEqual(r.result(g, "0"), {"loads": 1, "trains": 2, "cache": 10})
        t = self.assertStatus(r, "h", "0", "EXCEPTION")
        self.assertIn("out of memory", t["message"])
        self.assertIn("MemoryError: never enough", t["message"])
        self.assertIn("gave up after 2 train retries", t["message"])

    def test_declare_gpu_memory_on_a_simulated_gpu(self):
        # 3 GiB fits on the 4 GiB GPU (and is measured as the task's peak);
        # 6 GiB does not: MemoryError, retried, given up. On "cpu" nothing
        # is declared.
        plan = self.write_plan(group("fits", "SimGpu") + group("big", "SimGpu", init={"holds": "6GiB"}) +
                               group("cpu", "SimGpu") + 'device = "cpu"\n',
                               scheduler={"train-retries": 1, "auto-adjust": False},
                               top='[resources]\ngpu-memory-utilization = 1.0\ngpu-memory-reserve = "0"\n')
        r = self.run_plan(plan, "--simulate-gpus", "4GiB")
        self.assertExit(r, 1)
        self.assertEqual(r.result("fits", "0"), {"device": "sim:0", "declared": True})
        self.assertEqual(r.task("fits", "0")["peak_gpu_memory"], 3 << 30)
        t = self.assertStatus(r, "big", "0", "EXCEPTION")
        self.assertIn("MemoryError: simulated GPU out of memory: sim:0 cannot hold", t["message"])
        self.assertEqual(t["retries"]["train"], 1)
        self.assertEqual(r.result("cpu", "0"), {"device": "cpu", "declared": False})

    def test_a_failed_train_frees_what_it_declared_so_that_its_retry_fits(self):
        # 3 GiB of the 4 GiB GPU held by a train that failed would leave its
        # retry (2 GiB) waiting for room that only the task itself holds.
        plan = self.write_plan(group("g", "SimOomOnce") + 'gpu-memory = "2GiB"\n',
                               scheduler={"train-retries": 2, "auto-adjust": False},
                               top='[resources]\ngpu-memory-utilization = 1.0\ngpu-memory-reserve = "0"\n')
        r = self.run_plan(plan, "--simulate-gpus", "4GiB", timeout=40)
        self.assertExit(r, 0)
        self.assertEqual(r.result("g", "0"), {"trains": 2})
        self.assertEqual(r.task("g", "0")["peak_gpu_memory"], 3 << 30)

    def test_output_is_unbuffered(self):
        # os._exit skips every flush: the line is there only if it was
        # written at once.
        _, t = self.fails("exit", "train", "exited with code 3")
        r = self.run_plan(self.write_plan(group("g", "Fails", init={"where": "exit"})))
        self.assertIn("the last words", r.read("g", "0", "stdout.log"))

    def test_timeout_ends_python_inside_c_code(self):
        # Longer than starting Python can take (under ASan, on a busy machine):
        # the timeout must strike in train, inside time.sleep.
        plan = self.write_plan(group("g", "Fails", init={"where": "sleep"}), scheduler={"task-timeout": "8s"})
        r = self.run_plan(plan, timeout=50)
        self.assertExit(r, 1)
        t = self.assertStatus(r, "g", "0", "EXCEPTION")
        self.assertIn("timed out after 8s in train", t["message"])
        self.assertLess(r.elapsed, 40)
        self.assertEqual(fftest.worker_cwds(r.workdir), [])

    # ---- docs/python.md's example -------------------------------------------

    def test_docs_quote_the_example_files(self):
        with open(os.path.join(fftest.SOURCE_ROOT, "docs", "python.md"), encoding="utf-8") as f:
            doc = f.read()
        for name in ("plan.toml", "tasks.py"):
            with open(os.path.join(EXAMPLE, name), encoding="utf-8") as f:
                self.assertIn("\n" + f.read().rstrip("\n") + "\n```", doc,
                              "docs/python.md does not quote docs/examples/python/%s as it is" % name)

    def test_example_from_the_docs(self):
        require_module(self, "numpy")
        r = self.run_plan(os.path.join(EXAMPLE, "plan.toml"), "--progress", "none")
        self.assertExit(r, 0)
        for k in range(3):
            res = r.result("clients", str(k))
            self.assertEqual(res["samples"], 10 * (k + 1))
            self.assertLess(res["loss"], 1e-9)
            self.assertEqual(res["weights"]["$tensor"]["dtype"], "float32")
            self.assertEqual(res["weights"]["$tensor"]["shape"], [2])
            self.assertIn("prepared %d samples for client %d" % (10 * (k + 1), k),
                          r.read("clients", str(k), "stdout.log"))
        server = r.result("server", "0")
        self.assertEqual((server["clients"], server["samples"]), (3, 60))
        self.assertAlmostEqual(server["w"], (10 * 2 + 20 * 3 + 30 * 4) / 60, places=4)
        self.assertAlmostEqual(server["b"], 1.0, places=4)

    # ---- the interpreter -------------------------------------------------

    def make_venv(self, name):
        venv = os.path.join(self.tmp, name)
        p = subprocess.run([python_executable(), "-m", "venv", "--without-pip", venv],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if p.returncode != 0:
            self.skipTest("cannot make a venv: " + p.stdout)
        site = subprocess.run([os.path.join(venv, "bin", "python"), "-c",
                               "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              stdout=subprocess.PIPE, text=True, check=True).stdout.strip()
        os.makedirs(site, exist_ok=True)
        with open(os.path.join(site, "only_in_venv.py"), "w") as f:
            f.write("WHERE = 'venv'\n")
        return venv

    def test_venv_named_by_the_plan(self):
        venv = self.make_venv("venv")
        self.write("venvtask.py", textwrap.dedent('''
            import sys
            from fedflow import Task
            import only_in_venv
            class T(Task):
                def train(self, device):
                    return {"where": only_in_venv.WHERE, "prefix": sys.prefix}
        '''))
        for python in (os.path.join(venv, "bin", "python"), venv):
            plan = self.write_plan(group("g", "T", module="venvtask.py", extra=", python = %s" % json.dumps(python)))
            r = self.run_plan(plan, workdir="run-" + os.path.basename(python))
            self.assertExit(r, 0)
            self.assertEqual(r.result("g", "0"), {"where": "venv", "prefix": venv})
        # Without it, the module is not found.
        r = self.run_plan(self.write_plan(group("g", "T", module="venvtask.py")))
        self.assertIn("ModuleNotFoundError: No module named 'only_in_venv'", r.task("g", "0")["message"])

    def test_interpreter_of_another_python_is_refused_by_validate(self):
        venv = os.path.join(self.tmp, "other")
        os.makedirs(os.path.join(venv, "bin"))
        with open(os.path.join(venv, "pyvenv.cfg"), "w") as f:
            f.write("home = /opt/python/bin\nversion = 3.99.1\n")
        os.symlink("/bin/true", os.path.join(venv, "bin", "python"))
        plan = self.write_plan(group("g", "Counter", extra=", python = %s" % json.dumps(venv + "/bin/python")))
        r = self.host("validate", plan)
        self.assertExit(r, 2)
        embedded = embedded_version()
        self.assertInCI('python = "%s/bin/python" is Python 3.99, but the python plugin embeds Python %s' % (
            venv, embedded), r.output)
        self.assertInCI("rebuild Fedflow against Python 3.99", r.output)
        self.assertRegex(r.output, r"plan\.toml:\d+:\d+: ")
        # A path that is not there.
        plan = self.write_plan(group("g", "Counter", extra=", python = \"/nonexistent/bin/python\""))
        r = self.host("validate", plan)
        self.assertExit(r, 2)
        self.assertInCI("/nonexistent/bin/python does not exist", r.output)


def has_module(name):
    """Whether the plugin's interpreter can import name."""
    return subprocess.run([python_executable(), "-c", "import " + name], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0


def embedded_version():
    """The major.minor the plugin embeds (set by tests/integration/meson.build)."""
    return os.environ["FEDFLOW_PYTHON_VERSION"]


def python_executable():
    """The interpreter the plugin was built with (its libpython)."""
    return os.environ["FEDFLOW_PYTHON"]


if __name__ == "__main__":
    fftest.main()
