#!/usr/bin/env python3
"""The command line (docs/plan.md, "Command line" and "Exit status"): --version, --help, bad arguments."""
import os
import re

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


if __name__ == "__main__":
    fftest.main()
