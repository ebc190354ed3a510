#!/usr/bin/env python3
"""The workdir and what guards it: one run at a time (a second one, fresh or
--resume, is refused with the holder's pid and host, and the first run's
files stay intact); a run with results is replaced only with --overwrite; a
host killed at any point of its start leaves a workdir
that the next run accepts; a torn last journal line is cut, not glued to; a
full disk stops the run cleanly, and --resume finishes it once there is
space."""
import os
import signal
import socket
import subprocess

import fftest
from fftest import HostTest


SLEEPERS = """
[[group]]
name = "s"
plugin = "fault_sleep"
tasks = %d
params = { seconds = %s }
"""


class Ownership(HostTest):
    def assertRefusedBy(self, r, holder_pid):
        self.assertExit(r, 2)
        self.assertIn("is in use by another run", r.stderr)
        self.assertIn("pid %d on host %s" % (holder_pid, socket.gethostname()), r.stderr)

    def assertComplete(self, r, tasks, host_pid):
        """Every task of group s finished once, in files that one host wrote."""
        run = r.json("run.json")
        self.assertEqual((run["status"], run["host_pid"]), ("finished", host_pid))
        events = r.events()  # every line is JSON
        self.assertEqual(events[-1]["event"], "run_end")
        for i in range(tasks):
            self.assertStatus(r, "s", str(i), "FINISHED")
            self.assertIn("slept", r.result("s", str(i)))
        self.assertEqual(sorted(r.report("s")["tasks"]), [str(i) for i in range(tasks)])

    def test_a_second_run_is_refused_while_the_first_runs(self):
        plan = self.write_plan(SLEEPERS % (3, 1.5), scheduler={"max-processes": 3})
        wd = os.path.join(self.tmp, "run")
        first = self.start_host(plan, "--workdir", wd)
        try:
            self.wait_for_event(wd, lambda e: e.get("status") == "TRAINING", proc=first)
            for args in ((), ("--resume",)):
                with self.subTest(second=" ".join(args) or "fresh"):
                    self.assertRefusedBy(self.host(plan, "--workdir", wd, *args, workdir=wd), first.pid)
        finally:
            r = self.finish_host(first, wd)
        self.assertExit(r, 0)
        self.assertComplete(r, 3, first.pid)
        self.assertEqual([e["event"] for e in r.events()].count("run_start"), 1, "a second run wrote here")

    def test_of_two_resumes_started_together_one_runs(self):
        plan = self.write_plan(SLEEPERS % (4, 1), scheduler={"max-processes": 2})
        wd = os.path.join(self.tmp, "run")
        killed = self.start_host(plan, "--workdir", wd)
        try:
            done = self.wait_for_event(wd, lambda e: e.get("status") == "FINISHED", proc=killed)
            os.kill(killed.pid, signal.SIGKILL)
        finally:
            fftest.kill_group(killed)
            killed.communicate()
        before = fftest.Result([], 0, "", "", 0, wd).result("s", done["task"])

        both = [self.start_host(plan, "--workdir", wd, "--resume") for _ in range(2)]
        results = [self.finish_host(p, wd, timeout=60) for p in both]
        self.assertEqual(sorted(r.rc for r in results), [0, 2],
                         "".join(r.describe() for r in results))
        winner, loser = (0, 1) if results[0].rc == 0 else (1, 0)
        self.assertRefusedBy(results[loser], both[winner].pid)
        r = results[winner]
        self.assertComplete(r, 4, both[winner].pid)
        self.assertEqual(r.result("s", done["task"]), before, "a finished task ran again")

    def test_a_workdir_that_is_a_file_or_lies_below_one_is_refused_and_named(self):
        plan = self.write_plan('[[group]]\nplugin = "echo"\n')
        notes = self.write("run", "not a directory")
        for args in ((), ("--resume",)):
            with self.subTest(args=args):
                r = self.run_plan(plan, *args)
                self.assertExit(r, 2)
                self.assertIn("workdir %s is a regular file, not a directory (choose --workdir)" % notes, r.stderr)
                self.assertNotIn("not empty", r.output)
        below = os.path.join(notes, "sub")
        r = self.host(plan, "--workdir", below)
        self.assertExit(r, 2)
        self.assertIn("cannot create workdir %s: %s is a regular file, not a directory" % (below, notes), r.stderr)
        r = self.host(plan, "--workdir", below, "--resume")
        self.assertExit(r, 2)
        self.assertIn("cannot create workdir %s: %s is a regular file, not a directory" % (below, notes), r.stderr)
        with open(notes, encoding="utf-8") as f:
            self.assertEqual(f.read(), "not a directory")


class Replacing(HostTest):
    """A run whose tasks finished is never deleted by a plan run again in its
    workdir: that exits 2 and names --resume, --overwrite and --workdir; a
    run of which nothing finished is replaced without asking."""

    def files(self, wd):
        """Every file of the workdir but the lock, with its bytes."""
        out = {}
        for d, _, names in os.walk(wd):
            for n in names:
                if n != ".fedflow.lock":
                    with open(os.path.join(d, n), "rb") as f:
                        out[os.path.relpath(os.path.join(d, n), wd)] = f.read()
        return out

    def assertRefusedToReplace(self, r, wd, what):
        self.assertExit(r, 2)
        self.assertIn("workdir %s holds the results of a run (started " % wd, r.stderr)
        self.assertIn(what + "): running the plan there again would delete them. --resume runs what did not "
                      "finish, --overwrite replaces the run, --workdir DIR starts this one elsewhere", r.stderr)

    def test_a_finished_run_is_replaced_only_with_overwrite(self):
        plan = self.write_plan('[[group]]\nname = "g"\nplugin = "echo"\ntasks = 2\n')
        wd = os.path.join(self.tmp, "run")
        first = self.run_plan(plan, workdir=wd)
        self.assertExit(first, 0)
        started = first.json("run.json")["started"]
        before = self.files(wd)
        self.assertIn(os.path.join("g", "1", "result.json"), before)

        r = self.run_plan(plan, workdir=wd)
        self.assertRefusedToReplace(r, wd, "ended 'finished', 2 task(s) finished")
        self.assertEqual(self.files(wd), before, "a refused run changed the workdir")
        # A dry run says so beforehand.
        r = self.run_plan(plan, "--dry-run", workdir=wd)
        self.assertExit(r, 0)
        self.assertIn("workdir: %s\n  it holds the results of a run (started " % wd, r.stdout)
        self.assertIn("2 task(s) finished): the run exits 2 without --resume or --overwrite\n", r.stdout)
        self.assertNotIn("holds the results", self.run_plan(plan, "--dry-run", "--overwrite", workdir=wd).stdout)
        r = self.run_plan(plan, "--overwrite", "--resume", workdir=wd)
        self.assertExit(r, 2)
        self.assertIn("--overwrite replaces the run in the workdir, --resume finishes it: give one of them", r.stderr)
        self.assertEqual(self.files(wd), before)

        r = self.run_plan(plan, "--overwrite", workdir=wd)
        self.assertExit(r, 0)
        self.assertIn("replacing the previous run in %s (--overwrite)" % wd, r.stderr)
        self.assertNotEqual(r.json("run.json")["started"], started)
        self.assertEqual([e["event"] for e in r.events()].count("run_start"), 1, "the journal was not replaced")
        for t in ("0", "1"):
            self.assertStatus(r, "g", t, "FINISHED")

    def test_a_run_of_which_nothing_finished_is_replaced_without_asking(self):
        plan = self.write_plan('[[group]]\nname = "g"\nplugin = "fault_throw_load"\ntasks = 2\n')
        wd = os.path.join(self.tmp, "run")
        self.assertExit(self.run_plan(plan, workdir=wd), 1)
        r = self.run_plan(plan, workdir=wd)
        self.assertExit(r, 1)
        self.assertIn("replacing the previous run in %s: none of its tasks finished" % wd, r.stderr)
        self.assertEqual([e["event"] for e in r.events()].count("run_start"), 1)

    def test_a_killed_run_with_finished_tasks_is_not_replaced(self):
        plan = self.write_plan(SLEEPERS % (4, 1), scheduler={"max-processes": 2})
        wd = os.path.join(self.tmp, "run")
        killed = self.start_host(plan, "--workdir", wd)
        try:
            self.wait_for_event(wd, lambda e: e.get("status") == "FINISHED", proc=killed)
            os.kill(killed.pid, signal.SIGKILL)
        finally:
            fftest.kill_group(killed)
            killed.communicate()
        before = self.files(wd)
        r = self.run_plan(plan, workdir=wd)
        # Its run.json still says "running", with no count yet.
        self.assertRefusedToReplace(r, wd, "whose host was killed")
        self.assertEqual(self.files(wd), before)
        r = self.run_plan(plan, "--resume", workdir=wd)
        self.assertExit(r, 0)


class KilledWhileStarting(HostTest):
    # Where the host's start sequence can be cut (FEDFLOW_FAILPOINTS).
    POINTS = ("workdir-locked", "workdir-cleaning", "workdir-ready", "run-json-written", "journal-open")

    def test_a_host_killed_anywhere_in_its_start_leaves_a_workdir_both_runs_accept(self):
        plan = self.write_plan('[[group]]\nname = "g"\nplugin = "echo"\ntasks = 2\n')
        # (killed run, the run after it): from an empty workdir first, then
        # each from the finished run the one before left, which a fresh run
        # replaces only when asked.
        fresh = ("--overwrite",)
        steps = ((fresh, ("--resume",)), (fresh, fresh), (("--resume",), ("--resume",)), (("--resume",), fresh),
                 (fresh, ("--resume",)))
        for point in self.POINTS:
            wd = point
            for killed, then in steps:
                if point == "workdir-cleaning" and killed != fresh:
                    continue  # only a fresh start empties the workdir
                with self.subTest(point=point, killed=" ".join(killed), then=" ".join(then)):
                    r = self.run_plan(plan, *killed, workdir=wd, env={"FEDFLOW_FAILPOINTS": "host-kill@" + point})
                    self.assertEqual(r.rc, -signal.SIGKILL, "the host was not killed at %s%s" % (point, r.describe()))
                    r = self.run_plan(plan, *then, workdir=wd)
                    self.assertExit(r, 0)
                    self.assertEqual(r.json("run.json")["status"], "finished")
                    for t in ("0", "1"):
                        self.assertStatus(r, "g", t, "FINISHED")
                    self.assertEqual(r.events()[-1]["event"], "run_end")  # and every line is JSON

    def test_a_torn_last_line_is_cut_before_the_resumed_run_appends(self):
        plan = self.write_plan('[[group]]\nname = "g"\nplugin = "fault_throw_train"\n'
                               '[[group.task]]\nid = "ok"\nparams = { fail = false }\n[[group.task]]\nid = "bad"\n')
        r = self.run_plan(plan)
        self.assertExit(r, 1)
        lines = len(r.events())
        # What a full disk, or a kill in the middle of a write, leaves.
        with open(r.path("events.jsonl"), "a", encoding="utf-8") as f:
            f.write('{"time":"2026-11-28T00:29:40.514Z","elapsed_ms":9,"event":"status","group":"g","ta')
        r = self.run_plan(plan, "--resume")
        self.assertExit(r, 1)
        self.assertIn("cut off", r.stderr)
        events = r.events()  # fails on a line that is not JSON
        self.assertEqual(events[lines]["event"], "run_start")
        self.assertTrue(events[lines]["resume"])
        self.assertEqual([e["task"] for e in events[lines:] if e.get("status") == "AVAILABLE"], ["bad"])
        self.assertStatus(r, "g", "ok", "FINISHED")


class FullDisk(HostTest):
    """The workdir on a small tmpfs of its own (root only: skipped elsewhere)."""

    def setUp(self):
        super().setUp()
        self.disk = os.path.join(self.tmp, "disk")
        os.mkdir(self.disk)
        mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", self.disk],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if mount.returncode != 0:
            self.skipTest("cannot mount a tmpfs here: %s" % mount.stdout.strip())

    def tearDown(self):
        subprocess.run(["umount", "-l", self.disk], stderr=subprocess.DEVNULL)
        super().tearDown()

    def assertStoppedCleanly(self, r):
        """Exit 3 that says why, run.json and the journal that agree, no
        temporary file left."""
        self.assertExit(r, 3)
        self.assertIn("the workdir's filesystem is full", r.stderr)
        run = r.json("run.json")
        self.assertEqual((run["status"], run["exit_code"], run.get("reason")),
                         ("interrupted", 3, "the workdir's filesystem is full"))
        end = r.events()[-1]  # and every line is JSON
        self.assertEqual((end["event"], end.get("reason")), ("run_end", "the workdir's filesystem is full"))
        left = [os.path.join(d, f) for d, _, files in os.walk(r.workdir) for f in files
                if f.endswith(".tmp") or f == ".fedflow.reserve"]
        self.assertEqual(left, [])

    def test_a_filesystem_without_room_for_the_reserve_is_said_at_the_start(self):
        # 512 KiB: no room for the 1 MiB reserve. The run says so before it
        # starts a task, and a disk that fills later is told for what it is.
        subprocess.run(["mount", "-o", "remount,size=512k", self.disk], check=True)
        fill = "head -c 600000 /dev/zero > fill; echo '{{}}' > result.json"
        plan = self.write_plan("""
[[group]]
name = "g"
plugin = "echo"

[[group]]
name = "filler"
plugin = "command"
params = { train = ["sh", "-c", %s] }
""" % fftest.toml_str(fill), scheduler={"max-processes": 1})
        wd = os.path.join(self.disk, "run")
        r = self.host(plan, "--workdir", wd, workdir=wd)
        self.assertIn("the workdir's filesystem has less than 1.00 MiB free: should a task fill it, run.json and the "
                      "reports may be left as they were (the journal keeps what finished)", r.stderr)
        self.assertStatus(r, "g", "0", "FINISHED")
        # The filler's 600 KB fill the disk: the run stops, and says that no
        # reserve was there to free (not "even after freeing the reserve").
        self.assertExit(r, 3)
        self.assertIn("the filesystem is full (it had no room for a reserve)", r.stderr)
        self.assertNotIn("even after freeing the reserve", r.stderr)

    def test_a_result_that_does_not_fit_stops_the_run_and_resume_finishes_it(self):
        # "filler" leaves 400 KiB free; each "big" result needs 1 MiB.
        fill = ("avail=$(df -B1 --output=avail . | tail -1); head -c $((avail - 409600)) /dev/zero > fill; "
                "echo '{{\"filled\": true}}' > result.json")
        plan = self.write_plan("""
[[group]]
name = "first"
plugin = "echo"
tasks = 2

[[group]]
name = "filler"
plugin = "command"
params = { train = ["sh", "-c", %s] }

[[group]]
name = "big"
plugin = "big_bytes"
tasks = 3

[[group]]
name = "after"
plugin = "echo"
""" % fftest.toml_str(fill), scheduler={"max-processes": 1})
        wd = os.path.join(self.disk, "run")
        r = self.host(plan, "--workdir", wd, workdir=wd)
        self.assertStoppedCleanly(r)
        first = r.result("first", "0")
        self.assertStatus(r, "filler", "0", "FINISHED")
        big = r.report("big")["tasks"]
        saved = [t for t, e in big.items() if e.get("message", "").startswith("not saved: the workdir's filesystem is full")]
        # The next task may have started while that result was written (its
        # worker had exited: its process slot was free): its result is not
        # saved either, or the stop interrupts it.
        self.assertIn(len(saved), (1, 2), big)
        for t in saved:
            self.assertEqual(sorted(os.listdir(r.path("big", t))), ["stderr.log", "stdout.log"])
        for t, e in big.items():
            if t in saved:
                continue
            if e.get("status") in ("FINISHED", "EXITED"):
                # That next task may also finish: the host freed its 1 MiB
                # reserve when the disk filled, and its result fits there.
                # What finished is kept, whole.
                self.assertEqual(r.result("big", t)["size"], 1 << 20, e)
                continue
            self.assertIn(e.get("message"), ("not started: the workdir's filesystem is full",
                                             "interrupted: the workdir's filesystem is full"),
                          "big/%s: %s\n%s" % (t, e, r.describe()))
            self.assertFalse(os.path.exists(r.path("big", t, "result.json")))
        self.assertFalse(os.path.exists(r.path("after")))

        os.unlink(r.path("filler", "0", "fill"))  # the user frees some space
        r = self.host(plan, "--workdir", wd, "--resume", workdir=wd)
        self.assertExit(r, 0)
        self.assertEqual(r.result("first", "0"), first)
        for t in ("0", "1", "2"):
            self.assertEqual(r.result("big", t)["size"], 1 << 20)
        self.assertStatus(r, "after", "0", "FINISHED")
        self.assertEqual(r.json("run.json")["status"], "finished")

    def test_a_task_that_fills_the_disk_to_the_last_byte_leaves_a_consistent_run(self):
        # Nothing can be written after "hog" (its first time): run.json and
        # the journal's last lines need the space the host set aside.
        once = os.path.join(self.tmp, "filled-once")
        hog = ("echo '{{\"hog\": true}}' > result.json; "
               "if [ ! -e %s ]; then touch %s; cat /dev/zero > fill 2>/dev/null; fi; true" % (once, once))
        plan = self.write_plan("""
[[group]]
name = "first"
plugin = "echo"

[[group]]
name = "hog"
plugin = "command"
params = { train = ["sh", "-c", %s] }

[[group]]
name = "after"
plugin = "echo"
""" % fftest.toml_str(hog))
        wd = os.path.join(self.disk, "run")
        r = self.host(plan, "--workdir", wd, workdir=wd)
        self.assertStoppedCleanly(r)
        self.assertStatus(r, "first", "0", "FINISHED")
        self.assertFalse(os.path.exists(r.path("after")))

        os.unlink(r.path("hog", "0", "fill"))
        r = self.host(plan, "--workdir", wd, "--resume", workdir=wd)
        self.assertExit(r, 0)
        self.assertStatus(r, "hog", "0", "FINISHED")
        self.assertStatus(r, "after", "0", "FINISHED")


if __name__ == "__main__":
    fftest.main()
