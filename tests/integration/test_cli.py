#!/usr/bin/env python3
"""The command line (docs/plan.md, "Command line" and "Exit status"): --version, --help, bad arguments."""
import json
import os
import re
import time

import fftest
from fftest import HostTest


def project_version():
    with open(os.path.join(fftest.SOURCE_ROOT, "meson.build"), encoding="utf-8") as f:
        m = re.search(r"version:\s*'([^']+)'", f.read())
    return m.group(1)


class Cli(HostTest):
    def test_version(self):
        r = self.host("--version")
        self.assertExit(r, 0)
        self.assertIn(project_version(), r.stdout)
        self.assertRegex(r.stdout, r"fedflow-host")

    def test_help(self):
        r = self.host("--help")
        self.assertExit(r, 0)
        for word in ("validate", "plugins", "--workdir", "--plugin-path"):
            self.assertIn(word, r.stdout, r.describe())

    def test_unknown_option(self):
        plan = self.write_plan('[[group]]\nplugin = "noop"\n')
        for args in (["--no-such-option"], [plan, "--no-such-option"], ["plugins", "--no-such-option"],
                     ["validate", plan, "--bogus"]):
            with self.subTest(args=args):
                r = self.host(*args)
                self.assertExit(r, 2)
                self.assertTrue(r.stderr.strip(), "says why" + r.describe())
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "fedflow-runs")), "nothing ran")

    def test_unknown_option_gets_a_suggestion(self):
        # CLI11 alone says "arguments were not expected"; the host names the
        # option and the one it is closest to (the rule of plan keys).
        plan = self.write_plan('[[group]]\nplugin = "noop"\n')
        for args, said in (([plan, "--gpu", "0"], "unknown option '--gpu' (did you mean '--gpus'?)"),
                           ([plan, "--workdr=x"], "unknown option '--workdr' (did you mean '--workdir'?)"),
                           (["validate", plan, "--plugin-pth", "x"],
                            "unknown option '--plugin-pth' (did you mean '--plugin-path'?)"),
                           ([plan, "--zzz"], "unknown option '--zzz'\n")):
            with self.subTest(args=args):
                r = self.host(*args)
                self.assertExit(r, 2)
                self.assertIn("fedflow-host: " + said, r.stderr, r.describe())
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "fedflow-runs")), "nothing ran")

    def test_no_plan(self):
        self.assertExit(self.host(), 2)

    def test_bad_option_values(self):
        plan = self.write_plan('[[group]]\nplugin = "noop"\n')
        for args in ([plan, "--seed", "many"], [plan, "--log-level", "loud"], [plan, "--progress", "sometimes"]):
            with self.subTest(args=args):
                self.assertExit(self.host(*args), 2)

    def test_seed_is_an_unsigned_64_bit_integer(self):
        # CLI11's conversion once ran each of these with seed 2^64 - 1.
        plan = self.write_plan('[[group]]\nplugin = "noop"\n')
        wd = os.path.join(self.tmp, "run")
        for seed in ("-1", "18446744073709551616", "99999999999999999999999", "+5", "0x10", "1.0", " 7"):
            with self.subTest(seed=seed):
                r = self.host(plan, "--workdir", wd, "--seed", seed)
                self.assertExit(r, 2)
                self.assertIn("fedflow-host: --seed must be an unsigned 64-bit integer, 0 to 18446744073709551615, "
                              "not '%s'" % seed, r.stderr, r.describe())
                self.assertFalse(os.path.exists(wd), "nothing is written")
        r = self.host(plan, "--workdir", wd, "--seed", "18446744073709551615")
        self.assertExit(r, 0)
        with open(os.path.join(wd, "run.json"), encoding="utf-8") as f:
            self.assertEqual(json.load(f)["seed"], 18446744073709551615)

    def test_an_empty_option_value_is_refused(self):
        # An empty --workdir once meant the plan's workdir, an empty --gpus
        # the plan's GPUs and an empty --simulate-gpus the machine's GPUs.
        plan = self.write_plan('[[group]]\nname = "g"\nplugin = "noop"\n')
        cases = [([plan], "--workdir"), ([plan], "--gpus"), ([plan], "--simulate-gpus"), ([plan], "--plugin-path"),
                 ([plan], "--seed"), ([plan, "--dry-run"], "--workdir"), (["validate", plan], "--plugin-path"),
                 (["run-task", plan, "g/0"], "--dir"), (["run-task", plan, "g/0"], "--device")]
        for args, option in cases:
            for given in ([option, ""], [option + "="]):
                with self.subTest(args=args + given):
                    # "--workdir=" before an option: CLI11 took the option as its value.
                    r = self.host(*(args + given + ["--log-level", "debug"]))
                    self.assertExit(r, 2)
                    self.assertIn("fedflow-host: %s was given an empty value" % option, r.stderr, r.describe())
                    self.assertEqual(sorted(os.listdir(self.tmp)), ["plan.toml"], "nothing is written")
        for args, name in ((["validate", ""], "PLAN.toml"), (["run-task", plan, ""], "GROUP/ID"),
                           (["report", ""], "WORKDIR")):
            with self.subTest(args=args):
                r = self.host(*args)
                self.assertExit(r, 2)
                self.assertIn("fedflow-host: %s was given an empty value" % name, r.stderr, r.describe())

    def test_a_run_refused_at_the_workdir_changes_nothing_in_it(self):
        # The refused run once rewrote .fedflow.lock with its own pid.
        def state(wd):
            out = {}
            for root, dirs, files in os.walk(wd):
                for name in dirs + files + ["."]:
                    p = os.path.join(root, name)
                    st = os.lstat(p)
                    with open(p, "rb") if os.path.isfile(p) else open(os.devnull, "rb") as f:
                        out[os.path.relpath(p, wd)] = (st.st_size, st.st_mtime_ns, f.read())
            return out

        plan = self.write_plan('[[group]]\nname = "g"\nplugin = "noop"\ntasks = 2\n')
        wd = os.path.join(self.tmp, "run")
        self.assertExit(self.run_plan(plan), 0)
        changed = self.write_plan('[[group]]\nname = "g"\nplugin = "noop"\ntasks = 3\n', name="changed.toml")
        for without_lock in (False, True):
            if without_lock:
                os.remove(os.path.join(wd, ".fedflow.lock"))
            before = state(wd)
            for args, said in (([plan], "holds the results of a run"),
                               ([changed, "--resume"], "--resume: the plan changed since the run")):
                with self.subTest(args=args, without_lock=without_lock):
                    time.sleep(0.02)
                    r = self.run_plan(*args)
                    self.assertExit(r, 2)
                    self.assertIn(said, r.stderr, r.describe())
                    self.assertEqual(state(wd), before, "the workdir is as it was")


if __name__ == "__main__":
    fftest.main()
