#!/usr/bin/env python3
"""Rounds: [[round]] repeats its groups; each round's tasks get ctx.round()
and the latest finished instance of the groups they name as inputs; workdirs
are round-NNN/<group>/<task>; stop-when ends the loop early; keep-rounds
keeps only the last folders (of its own block, also on --resume); rounds.csv
has a line per round. A run killed halfway leaves a run.json that parses and a
rounds.csv whose lines are whole; `fedflow-host report` draws its page, and
--resume completes it."""
import csv
import json
import os
import signal

import fftest
from fftest import HostTest


def plan_text(count, clients=2, stop_at=None, keep=None, after=True):
    server_params = "{ role = \"server\"%s }" % (", stop_at = %d" % stop_at if stop_at else "")
    text = """
[[group]]
name = "setup"
plugin = "echo"

[[round]]
count = %d
%s%s
  [[round.group]]
  name = "clients"
  plugin = "round_math"
  tasks = %d
  params = { role = "client" }
  inputs = ["server"]

  [[round.group]]
  name = "server"
  plugin = "round_math"
  params = %s
  inputs = ["clients"]
""" % (count, 'stop-when = "stop"\n' if stop_at else "", "keep-rounds = %d\n" % keep if keep else "", clients,
       server_params)
    if after:
        text += """
[[group]]
name = "final"
plugin = "inputs_probe"
inputs = ["server"]
"""
    return text


def expected(rounds, clients):
    s = 0
    for r in range(1, rounds + 1):
        s = clients * (s + r)
    return s


class Rounds(HostTest):
    def test_each_round_builds_on_the_last_server(self):
        r = self.run_plan(self.write_plan(plan_text(3)))
        self.assertExit(r, 0)
        # s1 = 2 * (0 + 1) = 2, s2 = 2 * (2 + 2) = 8, s3 = 2 * (8 + 3) = 22
        self.assertEqual(expected(3, 2), 22)
        for n in (1, 2, 3):
            rd = "round-%03d" % n
            server = r.json(rd, "server", "0", "result.json")
            self.assertEqual(server["value"], expected(n, 2))
            self.assertEqual(server["round"], n)
            for c in ("0", "1"):
                self.assertEqual(r.json(rd, "clients", c, "result.json"),
                                 {"value": expected(n - 1, 2) + n, "round": n})
            report = r.json(rd, "clients", "report.json")
            self.assertEqual(report["round"], n)
            self.assertEqual(sorted(report["tasks"]), ["0", "1"])
        # Outside rounds: run once, round 0, and see the last server.
        final = r.result("final", "0")
        self.assertEqual(final["round"], 0)
        self.assertEqual(final["inputs"]["server"]["0"]["value"], 22)
        self.assertEqual(r.result("setup", "0")["meta"]["group"], "setup")
        # run.json lists every round; rounds.csv has a line per round.
        run = r.json("run.json")
        self.assertEqual([x["round"] for x in run["rounds"]], [1, 2, 3])
        self.assertEqual([x["values"]["value"] for x in run["rounds"]], [2, 8, 22])
        self.assertEqual(sorted({g.get("round", 0) for g in run["groups"]}), [0, 1, 2, 3])
        with open(r.path("rounds.csv")) as f:
            rows = list(csv.DictReader(f))
        self.assertEqual([int(x["round"]) for x in rows], [1, 2, 3])
        with open(r.path("rounds.csv")) as f:
            header = f.readline().strip().split(",")
        self.assertEqual(header.count("round"), 1, header)  # the server's own "round" is not a column
        self.assertNotIn("round", run["rounds"][0]["values"])
        self.assertEqual([float(x["value"]) for x in rows], [2, 8, 22])
        self.assertTrue(all(float(x["wall_s"]) > 0 for x in rows))

    def test_stop_when_ends_the_loop_on_the_round_that_asked(self):
        r = self.run_plan(self.write_plan(plan_text(10, stop_at=8)))
        self.assertExit(r, 0)
        self.assertTrue(os.path.isdir(r.path("round-002")))
        self.assertFalse(os.path.exists(r.path("round-003")))
        ends = [e for e in r.events() if e.get("event") == "round_end"]
        self.assertEqual([e["round"] for e in ends], [1, 2])
        self.assertEqual(ends[-1]["stopped_by"], "server/0")
        # The plan goes on after the loop, with the last server's result.
        self.assertEqual(r.result("final", "0")["inputs"]["server"]["0"]["value"], 8)

    def test_keep_rounds_leaves_exactly_the_last_folders(self):
        for keep, left in ((1, ["round-004"]), (2, ["round-003", "round-004"])):
            with self.subTest(keep=keep):
                r = self.run_plan(self.write_plan(plan_text(4, keep=keep), name="k%d.toml" % keep),
                                  workdir="keep-%d" % keep)
                self.assertExit(r, 0)
                self.assertEqual(sorted(d for d in os.listdir(r.workdir) if d.startswith("round-")), left)
                self.assertEqual(r.result("final", "0")["inputs"]["server"]["0"]["value"], expected(4, 2))

    def test_a_finished_loop_resumes_without_running_again(self):
        plan = self.write_plan(plan_text(3))
        r = self.run_plan(plan)
        self.assertExit(r, 0)
        count = len(r.events())
        r = self.run_plan(plan, "--resume")
        self.assertExit(r, 0)
        self.assertEqual([e for e in r.events()[count:] if e.get("status") == "AVAILABLE"], [])
        self.assertEqual(r.result("final", "0")["inputs"]["server"]["0"]["value"], 22)
        # Task runs, rounds counted: setup, 3 rounds of 2 clients and a server, final.
        self.assertIn("11 of 11 task(s) finished before", r.stderr)

    def test_keep_rounds_of_one_block_spares_another_block_on_resume(self):
        # Block 1 keeps only its last round; block 2 keeps all of its own.
        # The host is killed in block 2's round 2; --resume must give round
        # 3 the inputs of block 2's round 2, and keep the earlier reports.
        plan = self.write_plan("""
[[round]]
count = 3
keep-rounds = 1
  [[round.group]]
  name = "scratch"
  plugin = "echo"

[[round]]
count = 3
  [[round.group]]
  name = "clients"
  plugin = "round_math"
  tasks = 2
  params = { role = "client" }
  inputs = ["server"]
  [[round.group]]
  name = "server"
  plugin = "round_math"
  params = { role = "server" }
  inputs = ["clients"]
  [[round.group]]
  name = "slow"
  plugin = "fault_sleep"
  params = { seconds = 1.5 }
""")
        wd = os.path.join(self.tmp, "run")
        proc = self.start_host(plan, "--workdir", wd)
        try:
            self.wait_for_event(wd, lambda e: e.get("group") == "slow" and e.get("round") == 2
                                and e.get("status") == "TRAINING", proc=proc)
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            fftest.kill_group(proc)
            proc.communicate()
        r = self.run_plan(plan, "--resume")
        self.assertExit(r, 0)
        self.assertEqual(sorted(d for d in os.listdir(wd) if d.startswith("round-")),
                         ["round-001", "round-002", "round-003"])
        self.assertFalse(os.path.exists(r.path("round-001", "scratch")))
        for n in (1, 2, 3):
            rd = "round-%03d" % n
            self.assertEqual(r.json(rd, "server", "0", "result.json")["value"], expected(n, 2), rd)
            report = r.json(rd, "server", "report.json")["tasks"]["0"]
            self.assertEqual(report["status"], "FINISHED")
            self.assertEqual(report["result"]["value"], expected(n, 2), "%s/server/report.json" % rd)

    def assertResumedWithoutRunningAgain(self, plan, killed, before, rounds, keep):
        # --resume of the keep-rounds run `killed`, whose round `before` was
        # the last to end: the rounds that ended do not run again, and it
        # finishes.
        workdir = os.path.basename(killed.workdir)
        count = len(killed.events())
        r = self.run_plan(plan, "--resume", workdir=workdir)
        self.assertExit(r, 0)
        again = [(e.get("round", 0), e["group"], e["task"]) for e in r.events()[count:] if e.get("status") == "AVAILABLE"]
        self.assertEqual([x for x in again if 0 < x[0] <= before], [], "rounds that ended ran again")
        self.assertEqual(sorted(d for d in os.listdir(r.workdir) if d.startswith("round-")),
                         ["round-%03d" % n for n in range(rounds - keep + 1, rounds + 1)])
        self.assertEqual(r.result("final", "0")["inputs"]["server"]["0"]["value"], expected(rounds, 2))
        self.assertEqual(r.json("run.json")["status"], "finished")
        # And again: nothing is left to run.
        again = self.run_plan(plan, "--resume", workdir=workdir)
        self.assertExit(again, 0)
        self.assertEqual([e for e in again.events()[len(r.events()):] if e.get("status") == "AVAILABLE"], [])
        return r

    def test_keep_rounds_killed_around_a_removal_resumes_without_running_a_round_again(self):
        # round-ended: round 3 ended, round 1's folder is whole and not yet
        # journaled as removed. round-removing: its round_removed line is on
        # disk, the folder not yet removed.
        plan = self.write_plan(plan_text(5, keep=2))
        for point in ("round-ended", "round-removing"):
            with self.subTest(point=point):
                r = self.run_plan(plan, workdir=point, env={"FEDFLOW_FAILPOINTS": "host-kill@" + point})
                self.assertEqual(r.rc, -signal.SIGKILL, r.describe())
                ends = [e["round"] for e in r.events() if e.get("event") == "round_end"]
                self.assertEqual(ends, [1, 2, 3])
                removed = [e["round"] for e in r.events() if e.get("event") == "round_removed"]
                self.assertEqual(removed, [] if point == "round-ended" else [1])
                self.assertTrue(os.path.isdir(r.path("round-001", "server", "0")))
                self.assertResumedWithoutRunningAgain(plan, r, 3, 5, 2)

    def test_a_round_removed_by_an_older_host_that_was_killed_before_it_said_so_is_not_run_again(self):
        # An older host removed the folder first and journaled round_removed
        # after it: killed in between, its journal has the round's FINISHED
        # lines and round_end of the round that removed it, but no
        # round_removed, and the folder is gone.
        plan = self.write_plan(plan_text(5, keep=2))
        r = self.run_plan(plan)
        self.assertExit(r, 0)
        with open(r.path("events.jsonl"), encoding="utf-8") as f:
            lines = f.readlines()
        last = max(i for i, l in enumerate(lines) if '"round_removed"' in l)
        self.assertEqual(json.loads(lines[last])["round"], 3)
        with open(r.path("events.jsonl"), "w", encoding="utf-8") as f:
            f.writelines(lines[:last])
        self.assertFalse(os.path.exists(r.path("round-003")))
        r = self.assertResumedWithoutRunningAgain(plan, r, 5, 5, 2)
        self.assertIn("round-003: keep-rounds was removing it when its host was killed", r.stderr)

    def test_a_resumed_run_tells_the_rounds_it_restores_as_they_were_measured(self):
        # rounds.csv and run.json's rounds: the values and wall times of the
        # run that ran them, also for rounds keep-rounds removed (whose
        # results are gone), not the replay's milliseconds.
        plan = self.write_plan(plan_text(5, keep=2))
        r = self.run_plan(plan, env={"FEDFLOW_FAILPOINTS": "host-kill@round-removing"})
        self.assertEqual(r.rc, -signal.SIGKILL, r.describe())
        ends = {e["round"]: e for e in r.events() if e.get("event") == "round_end"}
        self.assertEqual(sorted(ends), [1, 2, 3])
        r = self.run_plan(plan, "--resume")
        self.assertExit(r, 0)
        rounds = r.json("run.json")["rounds"]
        self.assertEqual([x["values"]["value"] for x in rounds], [expected(n, 2) for n in range(1, 6)])
        for x in rounds[:3]:
            self.assertEqual(x["wall_s"], ends[x["round"]]["wall_ms"] / 1000, x)
            self.assertEqual(x["values"], ends[x["round"]]["values"], x)
        csv_text = r.read("rounds.csv")
        # Resumed again, with every round restored (1 to 3 removed): the same files.
        r = self.run_plan(plan, "--resume")
        self.assertExit(r, 0)
        self.assertEqual(r.json("run.json")["rounds"], rounds)
        self.assertEqual(r.read("rounds.csv"), csv_text)
        with open(r.path("rounds.csv"), encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        self.assertEqual([float(x["value"]) for x in rows], [expected(n, 2) for n in range(1, 6)])
        self.assertEqual([float(x["wall_s"]) for x in rows[:3]], [ends[n]["wall_ms"] / 1000 for n in (1, 2, 3)])

    def test_a_killed_run_leaves_consistent_files_and_report_draws_its_page(self):
        rounds = 40
        plan = self.write_plan(plan_text(rounds, after=False), scheduler={"max-processes": 2})
        workdir = os.path.join(self.tmp, "run")
        proc = self.start_host(plan, "--workdir", workdir, "--progress", "none")
        try:
            # Past round 20: the page summarizes rounds 11 on (it tells the
            # first and the latest 10), and the resume replays them.
            self.wait_for_event(workdir, lambda e: e.get("event") == "round_end" and e.get("round") == 24, proc=proc,
                                timeout=90)
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            fftest.kill_group(proc)
            proc.communicate()

        # run.json: whole, "running", and what it lists is there.
        with open(os.path.join(workdir, "run.json"), encoding="utf-8") as f:
            run = json.load(f)
        self.assertEqual(run["status"], "running")
        for g in run["groups"]:
            self.assertTrue(os.path.isdir(os.path.join(workdir, os.path.dirname(g["report"]))), g)
            self.assertEqual(g.get("block"), 1 if "round" in g else None, g)
        self.assertEqual([r["round"] for r in run["rounds"]], list(range(1, len(run["rounds"]) + 1)))
        # rounds.csv: a whole line per round that ended, nothing more.
        with open(os.path.join(workdir, "events.jsonl"), encoding="utf-8") as f:
            lines = [json.loads(l) for l in f if l.endswith("\n")]
        ended = [e["round"] for e in lines if e["event"] == "round_end"]
        with open(os.path.join(workdir, "rounds.csv"), encoding="utf-8", newline="") as f:
            rows = list(csv.reader(f))
        self.assertEqual(rows[0], ["round", "value", "stop", "wall_s"])
        # (the kill may fall between a round's round_end line and its rounds.csv line)
        self.assertIn([int(row[0]) for row in rows[1:]], (ended, ended[:-1]))
        for row in rows:
            self.assertEqual(len(row), 4, row)

        # The page, from the files alone: every round whose groups started has its band.
        started = {e["round"] for e in lines if e["event"] == "group_start" and e["round"]}
        r = self.host("report", workdir)
        self.assertExit(r, 0)
        self.assertEqual(r.stdout.strip(), os.path.join(workdir, "report.html"))
        with open(os.path.join(workdir, "report.html"), encoding="utf-8") as f:
            page = f.read()
        self.assertIn("<title>Fedflow \u00b7 plan \u00b7 running</title>", page)
        self.assertEqual(page.count('<rect class="rb'), len(started))
        self.assertEqual([n for n in os.listdir(workdir) if n.endswith(".tmp")], [])

        # --resume completes it: every file as a run that was never killed leaves it.
        r = self.host(plan, "--workdir", workdir, "--resume", "--progress", "none", workdir=workdir, timeout=120)
        self.assertExit(r, 0)
        run = r.json("run.json")
        self.assertEqual(run["status"], "finished")
        self.assertEqual(len(run["rounds"]), rounds)
        self.assertEqual(run["rounds"][-1]["values"]["value"], expected(rounds, 2))
        with open(os.path.join(workdir, "rounds.csv"), encoding="utf-8", newline="") as f:
            rows = list(csv.reader(f))
        self.assertEqual([int(row[0]) for row in rows[1:]], list(range(1, rounds + 1)))
        self.assertEqual(float(rows[-1][1]), expected(rounds, 2))
        page = r.read("report.html")
        self.assertIn("<title>Fedflow \u00b7 plan \u00b7 finished</title>", page)
        self.assertIn("Rounds (%d)" % rounds, page)
        self.assertRegex(page, r"Rounds 11\S30 are summarized: their \d+ stages are not drawn")
        # And drawn again from the files, the page is the same but for its footer.
        r2 = self.host("report", workdir)
        self.assertExit(r2, 0)
        again = r.read("report.html")
        self.assertRegex(again, r"Rounds 11\S30 are summarized: their \d+ stages are not drawn")

    def test_report_needs_a_run(self):
        os.makedirs(os.path.join(self.tmp, "empty"))
        r = self.host("report", os.path.join(self.tmp, "empty"))
        self.assertExit(r, 2)
        self.assertInCI("holds no Fedflow run", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "empty", "report.html")))
        r = self.host("report", os.path.join(self.tmp, "nowhere"))
        self.assertExit(r, 2)
        self.assertInCI("is not a directory", r.stderr)
        r = self.host("report")
        self.assertExit(r, 2)

    def test_two_round_tables_are_told_apart_in_run_json_and_the_page(self):
        plan = self.write_plan("""
[[round]]
count = 2
  [[round.group]]
  name = "a"
  plugin = "echo"

[[round]]
count = 2
  [[round.group]]
  name = "b"
  plugin = "echo"
""")
        r = self.run_plan(plan)
        self.assertExit(r, 0)
        run = r.json("run.json")
        self.assertEqual([(g["group"], g["round"], g["block"]) for g in run["groups"]],
                         [("a", 1, 1), ("a", 2, 1), ("b", 1, 2), ("b", 2, 2)])
        self.assertEqual([(x["block"], x["round"]) for x in run["rounds"]], [(1, 1), (1, 2), (2, 1), (2, 2)])
        starts = [(e["group"], e["block"]) for e in r.events() if e["event"] == "group_start"]
        self.assertEqual(starts, [("a", 1), ("a", 1), ("b", 2), ("b", 2)])
        with open(os.path.join(r.workdir, "rounds.csv"), encoding="utf-8") as f:
            self.assertEqual(f.readline().split(",")[:2], ["block", "round"])
        page = r.read("report.html")
        self.assertIn("<h3>[[round]] 2</h3>", page)
        self.assertIn('id="round-2-2"', page)

    def test_validate_shows_the_rounds(self):
        r = self.host("validate", self.write_plan(plan_text(5)))
        self.assertExit(r, 0)
        self.assertIn("clients: 2 tasks of plugin round_math", r.stdout)
        self.assertIn("in each of 5 rounds", r.stdout)


    def failing_server_plan(self, stop_on_failure=None, count=5):
        return self.write_plan("""
[[round]]
count = %d
%s
  [[round.group]]
  name = "clients"
  plugin = "inputs_probe"
  tasks = 2
  inputs = ["server"]
  params = { look_up = ["server", "0"] }

  [[round.group]]
  name = "server"
  plugin = "fault_throw_train"
  inputs = ["clients"]

[[group]]
name = "final"
plugin = "inputs_probe"
""" % (count, "" if stop_on_failure is None else "stop-on-failure = %s" % str(stop_on_failure).lower()))

    def test_a_group_that_failed_entirely_ends_the_run_by_default(self):
        r = self.run_plan(self.failing_server_plan())
        self.assertExit(r, 1)
        why = ("round 1: every task of group 'server' failed (1 of 1; server/0 in train: injected failure in "
               "train): the run ends here")
        self.assertIn(why, r.stderr.strip().splitlines()[-1])  # the host's last word
        self.assertFalse(os.path.exists(r.path("round-002")))
        self.assertFalse(os.path.exists(r.path("final")))
        self.assertEqual([e["round"] for e in r.events() if e.get("event") == "round_end"], [1])
        end = r.events()[-1]
        self.assertEqual((end["event"], end["status"], end["exit_code"]), ("run_end", "failed", 1))
        self.assertIn(why, end["reason"])
        run = r.json("run.json")
        self.assertEqual(run["exit_code"], 1)

    def test_stop_on_failure_false_goes_on_and_inputs_say_what_is_missing(self):
        r = self.run_plan(self.failing_server_plan(stop_on_failure=False, count=3))
        self.assertExit(r, 1)
        self.assertTrue(os.path.isdir(r.path("round-003")))
        self.assertEqual(r.task("final", "0")["status"], "FINISHED")
        # Round 1 has no server yet; rounds 2 and 3 get the instance of the
        # round before, in which no task finished.
        self.assertEqual(r.json("round-001", "clients", "0", "result.json")["look_up"],
                         "inputs has no group 'server' (it has: none), round 1")
        self.assertEqual(r.json("round-003", "clients", "1", "result.json")["look_up"],
                         "inputs.server has no task '0' (0 of 1 finished in round 2), round 3")


if __name__ == "__main__":
    fftest.main()
