#!/usr/bin/env python3
"""The bundled plugin `command` (docs/command.md): Python scripts as tasks.
Success with result.json and with the last line of stdout, placeholders, the
environment, inputs.json from an earlier group, failures (exit code, signal,
program not found, bad placeholder, no result), the task's logs, and a
task-timeout that ends the program too."""
import json
import os
import struct
import sys
import textwrap
import time

import fftest
from fftest import HostTest, SOURCE_ROOT

EXAMPLE = os.path.join(SOURCE_ROOT, "docs", "examples", "command")

def slurp(path, binary=True):
    with open(path, "rb" if binary else "r") as f:
        return f.read()


def argv(*items):
    """A TOML array of strings."""
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


# Writes what it was given: argv, FEDFLOW_* and the env params, its cwd, the
# fds it inherited, and where stdin comes from. In train it returns that as
# result.json; in load it writes load.json.
PROBE = fftest.OPEN_FDS_PY + r'''
import json, os, sys
seen = {
    "argv": sys.argv[1:],
    "env": {k: v for k, v in os.environ.items() if k.startswith("FEDFLOW_") or k.startswith("MY_")},
    "cwd": os.getcwd(),
    "stdin": os.readlink("/proc/self/fd/0"),
}
seen["fds"] = open_fds()
stage = os.environ["FEDFLOW_STAGE"]
with open(stage + ".json" if stage == "load" else "result.json", "w") as f:
    json.dump(seen, f)
'''


GROUP_G = '[[group]]\nname = "g"\nplugin = "command"\n'


class Command(HostTest):
    def script(self, name, text):
        return self.write(name, textwrap.dedent(text))

    def run_one_task(self, params, scheduler=None):
        """Runs group "g" of one command task with these params (TOML)."""
        return self.run_plan(self.write_plan(GROUP_G + "params = { %s }\n" % params, scheduler=scheduler))

    def test_docs_quote_the_example_files(self):
        with open(os.path.join(SOURCE_ROOT, "docs", "command.md"), encoding="utf-8") as f:
            doc = f.read()
        for name in ("plan.toml", "client.py", "server.py"):
            with open(os.path.join(EXAMPLE, name), encoding="utf-8") as f:
                self.assertIn("\n" + f.read().rstrip("\n") + "\n```", doc,
                              "docs/command.md does not quote docs/examples/command/%s as it is" % name)

    def test_example_from_the_docs(self):
        # docs/examples/command, run as it is: the docs cannot drift.
        r = self.run_plan(os.path.join(EXAMPLE, "plan.toml"), "--progress", "none")
        self.assertExit(r, 0)
        for k in range(3):
            res = r.result("clients", str(k))
            self.assertEqual(res["samples"], 10 * (k + 1))
            self.assertEqual(res["client"], "client-%d" % k)
            self.assertEqual(res["device"], r.task("clients", str(k))["device"])
            self.assertLess(res["loss"], 1e-9)
            # The program's weights.bin became Bytes, written back by the host.
            raw = slurp(r.path("clients", str(k), "weights.bin"))
            self.assertEqual(res["weights"], fftest.bytes_entry("weights.bin", 8, raw))
            w, b = struct.unpack("=2f", raw)
            self.assertAlmostEqual(w, 2 + k, places=4)
            self.assertAlmostEqual(b, 1, places=4)
            # The program's own result.json is kept under another name.
            self.assertTrue(os.path.isfile(r.path("clients", str(k), "program-result.json")))
            self.assertIn("prepared %d samples for client %d" % (10 * (k + 1), k),
                          r.read("clients", str(k), "stdout.log"))
        server = r.result("server", "0")
        self.assertEqual(server["clients"], 3)
        self.assertEqual(server["samples"], 60)
        self.assertAlmostEqual(server["w"], (10 * 2 + 20 * 3 + 30 * 4) / 60, places=4)
        self.assertAlmostEqual(server["b"], 1.0, places=4)
        # The clients' weights: their own byte files, linked, not copied.
        inputs = r.json("server", "0", "inputs.json")
        self.assertEqual(sorted(inputs["clients"]), ["0", "1", "2"])
        ref = inputs["clients"]["2"]["weights"]["$bytes"]
        self.assertEqual(ref, {"file": "inputs.clients.2.weights.bin", "size": 8})
        # A hard link to the client's own byte file: the same file, no copy.
        self.assertEqual(os.stat(r.path("server", "0", ref["file"])).st_ino,
                         os.stat(r.path("clients", "2", "weights.bin")).st_ino)

    def test_placeholders_and_environment(self):
        probe = self.script("probe.py", PROBE)
        plan = self.write_plan("""
[[group]]
name = "probe"
plugin = "command"
device = "cpu"
[[group.task]]
id = "t-1"
[group.params]
lr = 0.5
epochs = 3
name = "a b"
flag = true
layers = [64, 32]
opts = { k = "v" }
load = %s
train = %s
env = { MY_DATA = "{plan_dir}/data-{task_id}", MY_NUMBER = 7 }
""" % (argv(sys.executable, probe, "{task_id}", "{group}", "{round}", "{workdir}"),
       argv(sys.executable, probe, "{task_id}", "{group}", "{round}", "{device}", "{workdir}", "{plan_dir}",
            "--lr={lr}", "{epochs}", "{name}", "{flag}", "{layers}", "{opts}", "{{literal}}", "}}{{")))
        r = self.run_plan(plan)
        self.assertExit(r, 0)
        wd = r.path("probe", "t-1")
        res = r.result("probe", "t-1")
        self.assertEqual(res["argv"], ["t-1", "probe", "0", "cpu", wd, self.tmp, "--lr=0.5", "3", "a b", "true",
                                       "[64,32]", '{"k":"v"}', "{literal}", "}{"])
        self.assertEqual(res["cwd"], wd)
        self.assertEqual(res["stdin"], "/dev/null")
        self.assertEqual(res["fds"], [], "the program inherits no fd but 0, 1 and 2")
        env = res["env"]
        self.assertEqual(env["FEDFLOW_TASK_ID"], "t-1")
        self.assertEqual(env["FEDFLOW_GROUP"], "probe")
        self.assertEqual(env["FEDFLOW_ROUND"], "0")
        self.assertEqual(env["FEDFLOW_DEVICE"], "cpu")
        self.assertEqual(env["FEDFLOW_STAGE"], "train")
        self.assertEqual(env["FEDFLOW_WORKDIR"], wd)
        self.assertEqual(env["FEDFLOW_PLAN_DIR"], self.tmp)
        self.assertEqual(env["FEDFLOW_INPUTS"], os.path.join(wd, "inputs.json"))
        self.assertEqual(env["MY_DATA"], os.path.join(self.tmp, "data-t-1"))
        self.assertEqual(env["MY_NUMBER"], "7")
        # No inputs: an empty object.
        self.assertEqual(r.json("probe", "t-1", "inputs.json"), {})

        load = r.json("probe", "t-1", "load.json")
        self.assertEqual(load["argv"], ["t-1", "probe", "0", wd])
        self.assertEqual(load["env"]["FEDFLOW_STAGE"], "load")
        self.assertNotIn("FEDFLOW_DEVICE", load["env"])

    def test_inputs_from_an_earlier_group(self):
        first = self.script("first.py", """
            import json, os
            tid = os.environ["FEDFLOW_TASK_ID"]
            with open("blob.bin", "wb") as f:
                f.write(bytes([int(tid)]) * 5)
            print(json.dumps({"id": tid, "n": int(tid) * 10, "x": 0.5, "blob": {"$bytes": {"file": "blob.bin", "size": 5}},
                              "nested": {"list": [1, "two", None, True]}}))
        """)
        second = self.script("second.py", """
            import json, os
            path = os.environ["FEDFLOW_INPUTS"]
            inputs = json.load(open(path))
            blobs = {}
            for tid, res in inputs["first"].items():
                ref = res["blob"]["$bytes"]
                blobs[tid] = list(open(os.path.join(os.path.dirname(path), ref["file"]), "rb").read())
            json.dump({"inputs": inputs, "blobs": blobs}, open("result.json", "w"))
        """)
        plan = self.write_plan("""
[[group]]
name = "first"
plugin = "command"
tasks = 2
params = { train = %s }

[[group]]
name = "second"
plugin = "command"
inputs = ["first"]
params = { train = %s }
""" % (argv(sys.executable, first), argv(sys.executable, second)))
        r = self.run_plan(plan)
        self.assertExit(r, 0)
        # first's result came from the last line of stdout, with a byte file.
        self.assertEqual(r.result("first", "1")["blob"], fftest.bytes_entry("blob.bin", 5, bytes([1] * 5)))
        res = r.result("second", "0")
        self.assertEqual(res["blobs"], {"0": [0] * 5, "1": [1] * 5})
        got = r.json("second", "0", "inputs.json")["first"]
        self.assertEqual(sorted(got), ["0", "1"])
        self.assertEqual(got["1"]["n"], 10)
        self.assertEqual(got["1"]["x"], 0.5)
        self.assertEqual(got["1"]["nested"], {"list": [1, "two", None, True]})
        self.assertEqual(got["1"]["blob"], {"$bytes": {"file": "inputs.first.1.blob.bin", "size": 5}})
        self.assertEqual(os.stat(r.path("second", "0", "inputs.first.1.blob.bin")).st_ino,
                         os.stat(r.path("first", "1", "blob.bin")).st_ino, "linked, not copied")
        # second returned those references in its own result.json: they are
        # byte files too, so the host wrote them beside its result.
        theirs = r.result("second", "0")["inputs"]["first"]["1"]["blob"]
        self.assertEqual(theirs, fftest.bytes_entry("inputs.first.1.blob.bin", 5, bytes([1] * 5)))
        self.assertEqual(slurp(r.path("second", "0", "inputs.first.1.blob.bin")), bytes([1]) * 5)

    def test_result_from_stdout_and_result_modes(self):
        chatty = self.script("chatty.py", """
            import json, sys
            mode = sys.argv[1]
            print("epoch 1")
            print('{"not": "the last line"}')
            if mode in ("both", "file-only"):
                json.dump({"from": "file"}, open("result.json", "w"))
            if mode != "file-only":
                print(json.dumps({"from": "stdout", "acc": 0.875}))
                print("   ")
            if mode in ("nothing", "file-only"):
                print("done.")
        """)
        tasks = ""
        for tid, mode, result in [("stdout", "stdout-only", "auto"), ("file", "both", "auto"),
                                  ("forced-stdout", "both", "stdout"), ("file-mode", "file-only", "file"),
                                  ("none", "nothing", "auto"), ("no-file", "stdout-only", "file"),
                                  ("no-line", "file-only", "stdout")]:
            tasks += """
[[group.task]]
id = "%s"
params = { train = %s, result = "%s" }
""" % (tid, argv(sys.executable, chatty, mode), result)
        plan = self.write_plan(GROUP_G + tasks)
        r = self.run_plan(plan)
        self.assertExit(r, 1)
        self.assertEqual(r.result("g", "stdout"), {"from": "stdout", "acc": 0.875})
        self.assertEqual(r.result("g", "file"), {"from": "file"})
        self.assertEqual(r.result("g", "forced-stdout"), {"from": "stdout", "acc": 0.875})
        self.assertEqual(r.result("g", "file-mode"), {"from": "file"})
        for tid, message in [
                ("none", "wrote no result.json and its last line of stdout is not a JSON object"),
                ("no-file", 'wrote no result.json in'),
                ("no-line", "stdout is not a JSON object")]:
            t = self.assertStatus(r, "g", tid, "EXCEPTION")
            self.assertEqual(t["stage"], "train")
            self.assertInCI(message, t["message"])
        self.assertInCI('"done."', r.task("g", "none")["message"])
        # A program's result.json is kept as program-result.json, even when unused.
        self.assertEqual(json.loads(slurp(r.path("g", "forced-stdout", "program-result.json"))), {"from": "file"})
        self.assertEqual(json.loads(slurp(r.path("g", "forced-stdout", "result.json"))),
                         {"from": "stdout", "acc": 0.875})

    def test_bad_results(self):
        bad = self.script("bad.py", """
            import os, sys
            kind = sys.argv[1]
            text = {"not-json": '{"loss": NaN}', "list": "[1, 2]",
                    "missing-bytes": '{"w": {"$bytes": {"file": "nowhere.bin"}}}',
                    "wrong-size": '{"w": {"$bytes": {"file": "w.bin", "size": 9}}}'}[kind]
            with open("w.bin", "wb") as f:
                f.write(b"1234")
            with open("result.json", "w") as f:
                f.write(text)
        """)
        body = GROUP_G
        cases = [("not-json", "wrote a result.json that is not JSON: "),
                 ("list", "wrote a result.json that holds a JSON array, not an object"),
                 ("missing-bytes", 'result.json: byte file "nowhere.bin": No such file or directory'),
                 ("wrong-size", 'result.json: byte file "w.bin": it has 4 bytes, not the 9 its JSON says')]
        for tid, _ in cases:
            body += '[[group.task]]\nid = "%s"\nparams = { train = %s }\n' % (tid, argv(sys.executable, bad, tid))
        r = self.run_plan(self.write_plan(body))
        self.assertExit(r, 1)
        for tid, message in cases:
            with self.subTest(task=tid):
                t = self.assertStatus(r, "g", tid, "EXCEPTION")
                self.assertEqual(t["stage"], "train")
                self.assertIn(message, t["message"])
                self.assertFalse(os.path.exists(r.path("g", tid, "result.json")))
                self.assertTrue(os.path.exists(r.path("g", tid, "program-result.json")))
        self.assertIn("JSON has no NaN or Infinity", r.task("g", "not-json")["message"])

    def test_byte_files_follow_the_hosts_rule(self):
        # One rule for byte files, the host's (tests/unit/results_test.cpp
        # checks the same names and words there): a plain name in the task's
        # folder, a regular file. An absolute path, a path upwards or into a
        # subfolder, or a symbolic link fails the task, whatever the file.
        outside = self.write("outside.bin", "secret")
        bad = self.script("bad_bytes.py", """
            import json, os, sys
            name = sys.argv[1]
            if name == "link.bin":
                os.symlink(sys.argv[2], "link.bin")
            os.makedirs("sub", exist_ok=True)
            with open("sub/w.bin", "wb") as f:
                f.write(b"1234")
            json.dump({"w": {"$bytes": {"file": name}}}, open("result.json", "w"))
        """)
        plain = "a byte file is a plain name in the folder of its JSON: 1 to 255 characters of [A-Za-z0-9._-], " \
                "not '.' or '..' (no '/')"
        cases = {"absolute": (outside, 'byte file "%s": %s' % (outside, plain)),
                 "upwards": ("../../outside.bin", 'byte file "../../outside.bin": ' + plain),
                 "subfolder": ("sub/w.bin", 'byte file "sub/w.bin": ' + plain),
                 "link": ("link.bin", 'byte file "link.bin": is a symbolic link; a byte file must be a regular file')}
        body = GROUP_G
        for tid, (name, _) in cases.items():
            body += '[[group.task]]\nid = "%s"\nparams = { train = %s }\n' % (
                tid, argv(sys.executable, bad, name, outside))
        r = self.run_plan(self.write_plan(body))
        self.assertExit(r, 1)
        for tid, (_, message) in cases.items():
            with self.subTest(task=tid):
                t = self.assertStatus(r, "g", tid, "EXCEPTION")
                self.assertEqual(t["message"], "result.json: " + message)

    def test_control_characters_of_a_failure_are_escaped_on_the_terminal(self):
        # The end of a program's stderr is part of its task's failure message.
        # On the host's output an ESC sequence (retitle the terminal, clear
        # the screen) is escaped, and a line of it cannot pass for the host's
        # own: it is indented. report.json keeps the message as it was.
        evil = self.script("evil.py", """
            import sys
            sys.stderr.write("\\x1b]0;pwned\\x07\\x1b[2J\\rback\\nfedflow: error: forged\\n")
            sys.exit(1)
        """)
        r = self.run_one_task("train = %s" % argv(sys.executable, evil))
        self.assertExit(r, 1)
        t = self.assertStatus(r, "g", "0", "EXCEPTION")
        self.assertIn("\x1b]0;pwned\x07\x1b[2J\rback\nfedflow: error: forged", t["message"])
        for raw in ("\x1b", "\x07", "\r", "\nfedflow: error: forged"):
            self.assertNotIn(raw, r.stderr, r.describe())
        self.assertIn("\\e]0;pwned\\x07\\e[2J\\rback\n  fedflow: error: forged", r.stderr, r.describe())

    def test_cuda_out_of_memory_on_stderr_is_retried(self):
        # PyTorch's message in the end of stderr makes the stage's failure an
        # out-of-memory one, which the host retries (train-retries).
        oom = self.script("oom.py", """
            import json, os, sys
            tries = int(open("tries").read()) + 1 if os.path.exists("tries") else 1
            open("tries", "w").write(str(tries))
            if tries == 1:
                print("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB", file=sys.stderr)
                sys.exit(1)
            print(json.dumps({"tries": tries}))
        """)
        r = self.run_one_task("train = %s" % argv(sys.executable, oom), scheduler={"train-retries": 2})
        self.assertExit(r, 0)
        t = self.assertStatus(r, "g", "0", "FINISHED")
        self.assertEqual(t["result"], {"tries": 2})
        self.assertEqual(t["retries"]["train"], 1)

    def test_non_zero_exit_fails_only_that_task(self):
        fail = self.script("fail.py", """
            import json, sys
            tid = sys.argv[1]
            if tid == "bad":
                for i in range(1, 41):
                    print("stderr line %d" % i, file=sys.stderr)
                print("ValueError: the loss is NaN", file=sys.stderr)
                sys.exit(3)
            json.dump({"ok": True}, open("result.json", "w"))
        """)
        loadfail = self.script("loadfail.py", """
            import sys
            print("no data file", file=sys.stderr)
            sys.exit(2)
        """)
        plan = self.write_plan("""
[[group]]
name = "g"
plugin = "command"
tasks = 2
params = { train = %s }
[[group.task]]
id = "bad"
[[group.task]]
id = "bad-load"
params = { load = %s }

[[group]]
name = "after"
plugin = "command"
params = { train = %s }
""" % (argv(sys.executable, fail, "{task_id}"), argv(sys.executable, loadfail), argv(sys.executable, fail, "ok")))
        r = self.run_plan(plan)
        self.assertExit(r, 1)
        bad = self.assertStatus(r, "g", "bad", "EXCEPTION")
        self.assertEqual(bad["stage"], "train")
        msg = bad["message"]
        self.assertTrue(msg.startswith("`%s` exited with code 3; the end of its stderr:\n" % sys.executable), msg)
        self.assertTrue(msg.endswith("stderr line 40\nValueError: the loss is NaN"), msg)
        self.assertNotIn("stderr line 1\n", msg)
        self.assertLessEqual(msg.count("\n"), 21)
        self.assertLess(len(msg.encode()), 1024)
        bl = self.assertStatus(r, "g", "bad-load", "EXCEPTION")
        self.assertEqual(bl["stage"], "load")
        self.assertEqual(bl["message"], "`%s` exited with code 2; the end of its stderr:\nno data file" % sys.executable)
        for t in ("0", "1"):
            self.assertStatus(r, "g", t, "FINISHED")
        self.assertStatus(r, "after", "0", "FINISHED")
        # The whole stderr is in the log.
        self.assertIn("stderr line 1\n", r.read("g", "bad", "stderr.log"))
        self.assertFalse(os.path.exists(r.path("g", "bad", "result.json")))

    def test_killed_by_a_signal(self):
        crash = self.script("crash.py", """
            import os, signal
            os.kill(os.getpid(), signal.SIGSEGV)
        """)
        r = self.run_one_task("train = %s" % argv(sys.executable, crash))
        self.assertExit(r, 1)
        t = self.assertStatus(r, "g", "0", "EXCEPTION")
        self.assertIn("was killed by signal SIGSEGV", t["message"])

    def test_program_not_found(self):
        plan = self.write_plan("""
[[group]]
name = "g"
plugin = "command"
[[group.task]]
id = "on-path"
params = { train = ["no-such-program-fedflow", "x"] }
[[group.task]]
id = "by-path"
params = { load = ["./missing.sh"] }
[[group.task]]
id = "fine"
params = { train = ["true"] }
""")
        r = self.run_plan(plan)
        self.assertExit(r, 1)
        t = self.assertStatus(r, "g", "on-path", "EXCEPTION")
        self.assertEqual(t["stage"], "train")
        self.assertIn("cannot run `no-such-program-fedflow`: not found on PATH (", t["message"])
        t = self.assertStatus(r, "g", "by-path", "EXCEPTION")
        self.assertEqual(t["stage"], "load")
        self.assertEqual(t["message"], "cannot run `./missing.sh`: No such file or directory")
        # A train that prints nothing and writes nothing has no result.
        t = self.assertStatus(r, "g", "fine", "EXCEPTION")
        self.assertInCI("`true` wrote no result.json and its last line of stdout is not a JSON object "
                        "(stdout is empty)", t["message"])

    def test_bad_placeholders_and_params(self):
        cases = [
            ("typo", 'train = ["echo", "{lrr}"], lr = 1',
             'param train[1] = "{lrr}": unknown placeholder {lrr}; known: {task_id}, {group}, {round}, {device}, '
             '{workdir}, {plan_dir}, {lr}'),
            ("device-in-load", 'load = ["echo", "{device}"]',
             'param load[1] = "{device}": {device} is known only in train: load runs before a device is assigned'),
            ("unclosed", 'train = ["echo", "{task_id"]', "'{' without a closing '}'"),
            ("env-typo", 'train = ["echo"], env = { X = "{nope}" }', 'param env.X = "{nope}": unknown placeholder'),
            ("not-a-list", 'train = "python3 x.py"', "param 'train' must be a list of strings"),
            ("empty", 'train = []', "param 'train' is empty"),
            ("bad-element", 'train = ["echo", ["x"]]', "param 'train': element 1 is a list"),
            ("bad-result", 'train = ["echo"], result = "both"',
             'param \'result\' must be "auto", "file" or "stdout", not "both"'),
            ("bad-env", 'env = { X = [1] }', "param 'env': X is a list"),
        ]
        body = GROUP_G
        for tid, params, _ in cases:
            body += '[[group.task]]\nid = "%s"\nparams = { %s }\n' % (tid, params)
        r = self.run_plan(self.write_plan(body))
        self.assertExit(r, 1)
        for tid, _, message in cases:
            with self.subTest(task=tid):
                t = self.assertStatus(r, "g", tid, "EXCEPTION")
                # Found in load, before any program ran.
                self.assertEqual(t["stage"], "load")
                self.assertIn(message, t["message"])

    def test_output_reaches_the_logs(self):
        talk = self.script("talk.py", """
            import sys
            for i in range(3000):
                print("out %d" % i)
                print("err %d" % i, file=sys.stderr)
            print('{"lines": 3000}')
        """)
        r = self.run_one_task("load = %s, train = %s" % (argv(sys.executable, talk), argv(sys.executable, talk)))
        self.assertExit(r, 0)
        self.assertEqual(r.result("g", "0"), {"lines": 3000})
        out = r.read("g", "0", "stdout.log").splitlines()
        err = r.read("g", "0", "stderr.log").splitlines()
        expected_out = ["out %d" % i for i in range(3000)] + ['{"lines": 3000}']
        self.assertEqual(out, expected_out * 2)
        self.assertEqual([l for l in err if l.startswith("err ")], ["err %d" % i for i in range(3000)] * 2)
        self.assertIn("[info] train: running %s %s" % (sys.executable, talk), err)

    def test_task_timeout_ends_the_program(self):
        sleeper = self.script("sleeper.py", """
            import os, time
            with open("pid", "w") as f:
                f.write(str(os.getpid()))
            time.sleep(120)
        """)
        # The second task's sleeper is the child of a shell: SIGTERM reaches
        # it too.
        r = self.run_plan(self.write_plan(GROUP_G + """
[[group.task]]
id = "direct"
params = { train = %s }
[[group.task]]
id = "in-shell"
params = { train = ["sh", "-c", "%s %s; echo not reached"] }
""" % (argv(sys.executable, sleeper), sys.executable, sleeper), scheduler={"task-timeout": "2s"}))
        self.assertExit(r, 1)
        self.assertLess(r.elapsed, 20)
        for tid in ("direct", "in-shell"):
            with self.subTest(task=tid):
                t = self.assertStatus(r, "g", tid, "EXCEPTION")
                self.assertIn("timed out", t["message"])
                pid = int(slurp(r.path("g", tid, "pid")))
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline and alive(pid):
                    time.sleep(0.05)
                self.assertFalse(alive(pid), "the program outlived its timed-out task")


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


if __name__ == "__main__":
    fftest.main()
