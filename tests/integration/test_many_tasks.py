#!/usr/bin/env python3
"""A group of 100,000 tasks stopped by SIGTERM (issue 11, item 11).

Before, each task was looked up among all the others as it was added, failed
and reported: the first task started after 23-28 s, SIGTERM took 80-87 s,
every task that never started got a line of its own in the log, and
report.html listed all 100,000 (the host peaked at 313 MB). bench/many-tasks
measures the times and the memory; this test checks what the run leaves: a
report.json of every task, one log line for the tasks not started, and a page
that lists the first task_detail_limit tasks of the group and counts the
rest. The limits given to the host are only there so that a regression
fails instead of hanging the suite."""
import os
import re
import signal

import fftest
from fftest import HostTest

# Fewer under the sanitizers (each task's lines cost more there); still more
# than the page lists one by one.
TASKS = 10000 if os.environ.get("FEDFLOW_SANITIZED") else 100000
LISTED = 2000  # report::task_detail_limit


class ManyTasks(HostTest):
    def test_sigterm_ends_a_run_of_100000_tasks_with_a_report_of_every_task(self):
        plan = self.write_plan('[[group]]\nname = "many"\nplugin = "noop"\ntasks = %d\n' % TASKS,
                               scheduler={"max-processes": 2})
        wd = os.path.join(self.tmp, "run")
        proc = self.start_host(plan, "--workdir", wd, "--progress", "none")
        self.wait_for_event(wd, lambda e: e.get("status") == "AVAILABLE", proc=proc, timeout=300)
        proc.send_signal(signal.SIGTERM)
        r = self.finish_host(proc, workdir=wd, timeout=300)
        self.assertExit(r, 3)

        # Every task is in report.json, once, in plan order.
        tasks = r.report("many")["tasks"]
        self.assertEqual(list(tasks), [str(i) for i in range(TASKS)])
        message = "not started: the host received SIGTERM"
        not_started = sum(1 for t in tasks.values() if t.get("message") == message)
        finished = sum(1 for t in tasks.values() if t["status"] == "FINISHED")
        interrupted = sum(1 for t in tasks.values() if t.get("message", "").startswith("interrupted"))
        self.assertGreater(not_started, 0)
        self.assertEqual(finished + not_started + interrupted, TASKS, r.describe())
        # ...and in the journal, each with its own line.
        ended = [e for e in r.events() if e.get("status") == "EXCEPTION" and e.get("message") == message]
        self.assertEqual(len(ended), not_started)

        # One log line for the tasks that never started, not one each.
        lines = [l for l in r.stderr.splitlines() if "not started" in l]
        self.assertEqual(lines, ["fedflow: error: many: %d task(s) %s" % (not_started, message)], r.stderr[-3000:])

        # The page lists the first tasks and counts the others.
        with open(os.path.join(wd, "report.html"), encoding="utf-8") as f:
            page = f.read()
        untold = TASKS - LISTED
        m = re.search(r"(\d+) more tasks \((\d+) finished, (\d+) failed\) are not listed here; many/report\.json has every task",
                      page)
        self.assertIsNotNone(m, "report.html does not say that tasks are not listed")
        self.assertEqual(int(m.group(1)), untold)
        self.assertIn("%d tasks \u00b7 %d finished" % (TASKS, finished), page)


if __name__ == "__main__":
    fftest.main()
