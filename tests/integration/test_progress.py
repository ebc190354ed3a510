#!/usr/bin/env python3
"""--progress: the live view on a terminal (through a pseudo-terminal), a
line per group or round and every failure without one (plain, and auto on a
pipe), a line per event (verbose, or plain with --log-level debug), the
journal's lines on stdout (json), nothing (none)."""
import fcntl
import json
import os
import re
import struct
import subprocess
import termios
import time

import fftest
from fftest import HostTest

PLAN = """
[[round]]
count = 2
  [[round.group]]
  name = "sleepers"
  plugin = "fault_sleep"
  tasks = 4
  params = { seconds = 0.5 }

[[group]]
name = "faulty"
plugin = "fault_throw_train"
"""

ESC = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def run_in_pty(argv, cols=80, rows=24, timeout=60):
    """Runs argv with stdout and stderr on a fresh pseudo-terminal of
    cols x rows; returns (exit status, everything it wrote)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the terminal's other side is closed
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    try:
        rc = proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        fftest.kill_group(proc)
        rc = None
    return rc, out.decode("utf-8", "replace")


class Progress(HostTest):
    def test_tty_redraws_in_place_and_keeps_the_log_above(self):
        plan = self.write_plan(PLAN)
        rc, out = run_in_pty([fftest.HOST, plan, "--workdir", os.path.join(self.tmp, "run"), "--progress", "tty"])
        self.assertEqual(rc, 1, out[-2000:])
        # Redrawn in place: cursor up to the frame's first line, each line
        # cleared as it is rewritten; no cursor while it draws.
        self.assertRegex(out, r"\r\x1b\[\d+A")
        self.assertIn("\x1b[2K", out)
        self.assertIn("\x1b[?25l", out)
        self.assertTrue(out.rstrip().endswith("\x1b[?25h"), repr(out[-200:]))
        # The last frame: the header with the outcome, a line per group with
        # its bar and counts, the RAM line, and nothing running any more.
        self.assertIn("failed", out)
        self.assertRegex(ESC.sub("", out), r"sleepers r2 +\[[█]+\] +4/4 +done")
        self.assertRegex(ESC.sub("", out), r"RAM +[\d.]+ \w+ / [\d.]+ GiB +in use")
        self.assertIn("running: none", ESC.sub("", out))
        self.assertRegex(ESC.sub("", out), r"fedflow +plan\.toml +\d+s")
        # The failure is printed above the frame, whole, as a log line.
        self.assertRegex(ESC.sub("", out), r"fedflow: faulty/0 EXCEPTION: injected failure in train")
        # No line of any frame is wider than the terminal (a wrapped line
        # would break the redraw).
        for line in ESC.sub("", out).replace("\r", "").split("\n"):
            if not line.startswith("fedflow: "):  # log lines above the frame may wrap
                self.assertLessEqual(len(line), 80, repr(line))

    def test_auto_is_tty_on_a_terminal_and_plain_on_a_pipe(self):
        plan = self.write_plan('[[group]]\nname = "g"\nplugin = "echo"\ntasks = 2\n')
        rc, out = run_in_pty([fftest.HOST, plan, "--workdir", os.path.join(self.tmp, "tty")])
        self.assertEqual(rc, 0, out)
        self.assertIn("\x1b[2K", out)
        r = self.run_plan(plan, workdir="pipe")
        self.assertExit(r, 0)
        self.assertNotIn("\x1b[", r.stderr)
        self.assertRegex(r.stderr, r"fedflow: \[ *\d+\.\d\ds\] group g ended: 2 finished")

    def test_plain_is_a_line_per_group_or_round_and_every_failure(self):
        # Issue 11, item 21: plain printed ~6 lines per task (550 for 90 tasks).
        plan = self.write_plan(PLAN.replace("tasks = 4", "tasks = 30").replace("0.5", "0.05") +
                               'tasks = 3\nparams = { fail = false }\n[[group.task]]\nid = "bad"\nparams = { fail = true }\n'
                               '[[group]]\nname = "many"\nplugin = "echo"\ntasks = 30\n')
        r = self.run_plan(plan, "--progress", "plain", workdir="plain")
        self.assertExit(r, 1)
        lines = [re.sub(r"^fedflow: \[ *\d+\.\d\ds\] ", "", l) for l in r.stderr.splitlines()
                 if l.startswith("fedflow: [")]
        expected = [
            re.escape("run started in " + os.path.join(self.tmp, "plain")),
            r"round 1 ended: sleepers 30 finished; slept 0.05, start \S+, end \S+",
            r"round 2 ended: sleepers 30 finished; slept 0.05, start \S+, end \S+",
            re.escape("faulty/bad EXCEPTION: injected failure in train"),
            re.escape("group faulty ended: 3 finished, 1 failed"),
            re.escape("group many ended: 30 finished"),
            re.escape("run ended: failed"),
        ]
        self.assertEqual(len(lines), len(expected), r.stderr)
        for line, pattern in zip(lines, expected):
            self.assertRegex(line, "^" + pattern + "$")

        # verbose, and plain at --log-level debug: every state of every task too.
        for args in (["--progress", "verbose"], ["--progress", "plain", "--log-level", "debug"]):
            r = self.run_plan(plan, *args, workdir="verbose-" + args[-1])
            self.assertExit(r, 1)
            for state in ("AVAILABLE", "LOADING", "WAITING", "TRAINING on cpu", "FINISHED", "EXITED"):
                self.assertEqual(len(re.findall(r"\] round 2 sleepers/\d+ %s\n" % state, r.stderr)), 30, (args, state))
            self.assertIn("] faulty/bad EXCEPTION: injected failure in train\n", r.stderr)
            self.assertIn("] group many ended: 30 finished, 0 failed\n", r.stderr)

    def test_alike_failures_are_three_lines_and_a_count(self):
        # After a SIGTERM 100,000 tasks fail alike ("not started: ..."): a line
        # for each would drown the log. The log does not repeat them either.
        plan = self.write_plan('[[group]]\nname = "hopeless"\nplugin = "fault_throw_train"\ntasks = 10\n')
        r = self.run_plan(plan, "--progress", "plain", workdir="alike")
        self.assertExit(r, 1)
        self.assertEqual(len(re.findall(r"\] hopeless/\d+ EXCEPTION: injected failure in train\n", r.stderr)), 3, r.stderr)
        self.assertIn("] hopeless: 7 more task(s) failed in train: injected failure in train\n", r.stderr)
        self.assertIn("] group hopeless ended: 0 finished, 10 failed\n", r.stderr)
        self.assertNotIn("failed in train: injected", r.stderr.replace("7 more task(s) failed in train: injected", ""))

    def test_json_is_the_journal_on_stdout_and_none_is_silent(self):
        plan = self.write_plan('[[group]]\nname = "g"\nplugin = "echo"\ntasks = 2\n')
        r = self.run_plan(plan, "--progress", "json", workdir="json")
        self.assertExit(r, 0)
        lines = [json.loads(l) for l in r.stdout.splitlines()]
        self.assertEqual(lines, r.events())
        r = self.run_plan(plan, "--progress", "none", "--log-level", "warning", workdir="none")
        self.assertExit(r, 0)
        self.assertEqual(r.stderr, "")
        self.assertEqual(r.stdout, "")


if __name__ == "__main__":
    fftest.main()
