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

import fftest
from fftest import HostTest

KEYS = 30000 if os.environ.get("FEDFLOW_SANITIZED") else 300000


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

        # --resume reads the result and the reports back: nothing runs again.
        again = self.host(plan, "--workdir", r.workdir, "--resume", "--progress", "none", timeout=300,
                          workdir=r.workdir)
        self.assertExit(again, 0)
        started = [e for e in again.events() if e.get("status") == "AVAILABLE"]
        self.assertEqual(len(started), 2, "only the first run started tasks")
        self.assertEqual(len(again.task("big", "0")["result"]), KEYS)


if __name__ == "__main__":
    fftest.main()
