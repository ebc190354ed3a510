#!/usr/bin/env python3
"""A result of many keys goes through the host whole (issue 11, item 9).

Before, the host looked each key up as it wrote a result to JSON, and again
as it read result.json and report.json back (report.html, the inputs of a
later group, --resume): a result of 100,000 keys held the host's loop for
37-48 s. bench/result-keys measures the times; this test checks that a
result of 300,000 keys (30,000 under the sanitizers) is written in order,
reported, handed to a later group and read back on --resume. The limits
given to the host are only there so that a regression fails instead of
hanging the suite."""
import os
import select
import signal
import time

import fftest
from fftest import HostTest

KEYS = 30000 if os.environ.get("FEDFLOW_SANITIZED") else 300000
# A result that takes the host seconds to check and write (about 3 s here, more
# under the sanitizers, which build fewer keys in the same time).
BIG = 300000 if os.environ.get("FEDFLOW_SANITIZED") else 1000000


class ResultKeys(HostTest):
    def test_a_result_of_300000_keys_is_written_reported_handed_on_and_resumed(self):
        plan = self.write_plan(
            '[[group]]\nname = "big"\nplugin = "many_keys"\nparams = { keys = %d }\n\n'
            '[[group]]\nname = "reader"\nplugin = "many_keys"\ninputs = ["big"]\nparams = { count = "big" }\n' % KEYS)
        r = self.run_plan(plan, "--progress", "none", timeout=300)
        self.assertExit(r, 0)
        result = r.result("big", "0")
        self.assertEqual(len(result), KEYS)
        self.assertEqual(list(result)[:3], ["k0", "k1", "k2"])  # in the order train set them
        self.assertEqual(result["k%d" % (KEYS - 1)], KEYS - 1)
        self.assertEqual(len(r.task("big", "0")["result"]), KEYS)
        # The later group received all of it, in order.
        self.assertEqual(r.result("reader", "0"), {"counts": {"0": KEYS}, "last": {"0": KEYS - 1}})
        self.assertGreater(os.path.getsize(r.path("report.html")), 0)
        # The journal says how long the loop's longest turn was (bench/result-keys
        # prints it next to the result's time in the host).
        end = [e for e in r.events() if e.get("event") == "run_end"]
        self.assertEqual(len(end), 1)
        self.assertIsInstance(end[0]["loop_max_ms"], float)
        self.assertGreater(end[0]["loop_max_ms"], 0)

        # --resume reads the result and the reports back: nothing runs again.
        again = self.host(plan, "--workdir", r.workdir, "--resume", "--progress", "none", timeout=300,
                          workdir=r.workdir)
        self.assertExit(again, 0)
        started = [e for e in again.events() if e.get("status") == "AVAILABLE"]
        self.assertEqual(len(started), 2, "only the first run started tasks")
        self.assertEqual(len(again.task("big", "0")["result"]), KEYS)

    def test_a_sigterm_is_served_while_a_big_result_is_written(self):
        # Before, the host checked, decoded and wrote a result inside its
        # event loop: a SIGTERM that came meanwhile waited for the whole
        # result, and so did the other task's worker. Now the result is
        # written off the loop: the other task is ended (its EXCEPTION line)
        # before the big result is done (its `result` line), and the big
        # result, whose train had returned, is still kept.
        plan = self.write_plan(
            '[[group]]\nname = "g"\nplugin = "many_keys"\n\n'
            '[[group.task]]\nid = "big"\nparams = { keys = %d }\n\n'
            '[[group.task]]\nid = "slow"\nparams = { keys = 1, seconds = 600 }\n' % BIG,
            scheduler={"max-processes": 2})
        wd = os.path.join(self.tmp, "sigterm")
        proc = self.start_host(plan, "--workdir", wd, "--progress", "none", "--log-level", "debug")
        # The host says at debug level when it takes a result off the loop.
        # (Read from the descriptor itself: a text stream's buffer could hold
        # the line where select() does not see it.)
        deadline = time.monotonic() + 300
        seen = b""
        while b"g/big: its result" not in seen:
            self.assertLess(time.monotonic(), deadline, "the big result never came:\n%r" % seen[-3000:])
            ready, _, _ = select.select([proc.stderr.fileno()], [], [], 1)
            if ready:
                chunk = os.read(proc.stderr.fileno(), 65536)
                self.assertTrue(chunk, "the host ended first:\n%r" % seen[-3000:])
                seen += chunk
        proc.send_signal(signal.SIGTERM)
        r = self.finish_host(proc, workdir=wd, timeout=300)
        self.assertExit(r, 3)
        events = r.events()
        kinds = [(e.get("event"), e.get("task"), e.get("status")) for e in events]
        slow_ended = kinds.index(("status", "slow", "EXCEPTION"))
        big_result = kinds.index(("result", "big", None))
        self.assertLess(slow_ended, big_result, kinds)
        self.assertIn("interrupted", events[slow_ended]["message"])
        self.assertEqual(r.task("g", "big")["status"], "FINISHED")
        self.assertEqual(len(r.result("g", "big")), BIG)


if __name__ == "__main__":
    fftest.main()
