#!/usr/bin/env python3
"""Isolating a run (docs/architecture.md, "Isolating a run"): the bubblewrap
command the docs show, run as written, keeps a task from writing outside the
run's workdir; that task fails with the reason, and the others finish.
Skipped where bwrap is not installed or cannot make its namespaces."""
import os
import re
import shlex
import shutil
import subprocess
import tempfile

import fftest
from fftest import HostTest

DOC = os.path.join(fftest.SOURCE_ROOT, "docs", "architecture.md")

PLAN = """
[[group]]
name = "inside"
plugin = "command"
tasks = 2
params = { train = ["sh", "-c", "echo ok > {workdir}/mine.txt && echo '{{\\"ok\\": true}}'"] }

[[group]]
name = "escape"
plugin = "command"
tasks = 1
params = { train = ["sh", "-c", "echo gotcha > {plan_dir}/escaped.txt"] }
"""


def documented_command():
    """The sh block of the section "Isolating a run", its lines joined."""
    with open(DOC, encoding="utf-8") as f:
        text = f.read()
    section = text.split("### Isolating a run", 1)[1].split("\n### ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    return block.replace("\\\n", " ").strip().splitlines()


class Sandbox(HostTest):
    def setUp(self):
        super().setUp()
        if shutil.which("bwrap") is None:
            self.skipTest("bwrap is not installed (Debian: bubblewrap)")
        probe = subprocess.run(["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "true"],
                               capture_output=True, text=True)
        if probe.returncode != 0:
            self.skipTest("bwrap cannot make its namespaces here: " + probe.stderr.strip())
        # The sandbox's private /tmp hides the usual temporary folder: this
        # test's plan lives in the build tree instead, as a user's would in
        # a project folder.
        shutil.rmtree(self.tmp)
        self.tmp = tempfile.mkdtemp(prefix="fedflow-sandbox-", dir=os.path.dirname(os.path.dirname(fftest.HOST)))

    def test_documented_command_keeps_tasks_inside_the_workdir(self):
        self.write_plan(PLAN)
        mkdir, bwrap = documented_command()
        self.assertEqual(mkdir, "mkdir -p run")
        argv = shlex.split(bwrap.replace("$PWD", self.tmp))
        self.assertEqual(argv[0], "bwrap")
        argv[argv.index("fedflow-host")] = fftest.HOST
        os.makedirs(os.path.join(self.tmp, "run"))
        p = subprocess.run(argv, cwd=self.tmp, capture_output=True, text=True, timeout=fftest.DEFAULT_TIMEOUT)
        r = fftest.Result(argv, p.returncode, p.stdout, p.stderr, 0, os.path.join(self.tmp, "run"))
        self.assertExit(r, 1)  # the escaping task failed, alone
        for i in ("0", "1"):
            self.assertStatus(r, "inside", i, "FINISHED")
            self.assertEqual(r.read("inside", i, "mine.txt"), "ok\n")
        self.assertStatus(r, "escape", "0", "EXCEPTION")
        self.assertIn("Read-only file system", r.read("escape", "0", "stderr.log"))
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "escaped.txt")))


if __name__ == "__main__":
    fftest.main()
