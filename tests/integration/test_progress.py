#!/usr/bin/env python3
"""--progress: the live view on a terminal (through a pseudo-terminal), one
line per event without one (plain, and auto on a pipe), the journal's lines
on stdout (json), nothing (none)."""
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
        self.assertRegex(r.stderr, r"fedflow: \[ *\d+\.\d\ds\] g/0 FINISHED")

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
