#!/usr/bin/env python3
"""Worker processes and what they start (docs/architecture.md "Processes" and
"Descendants"):

- what a task starts ends with it, by each mechanism this machine offers
  (FEDFLOW_CONTAIN=cgroup|pidns|subreaper): programs and daemons (double fork,
  setsid) a task left when it ended are killed and reported, and nothing of a
  task outlives a host killed with SIGKILL, nor a host and its worker both;
- descriptors: the host raises its soft limit on open files and gives workers
  the one it started with; with a hard limit too small for every worker at
  once, workers wait for descriptors instead of failing;
- processes: a worker that cannot start under the user's process limit
  (EAGAIN) waits for a slot instead of failing.

Processes are told apart by an environment variable that every process of a
run inherits (FEDFLOW_TEST_TOKEN), so that pids seen inside a PID namespace do
not matter."""
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import time
import uuid

import fftest
from fftest import HostTest

MECHANISMS = ("cgroup", "pidns", "subreaper")
SANITIZED = os.environ.get("FEDFLOW_SANITIZED") == "1"


def token_processes(token):
    """Live processes whose environment holds FEDFLOW_TEST_TOKEN=token."""
    needle = ("FEDFLOW_TEST_TOKEN=%s" % token).encode()
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/environ" % pid, "rb") as f:
                env = f.read().split(b"\0")
            with open("/proc/%s/stat" % pid) as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in env and state not in ("Z", "X"):
            found.append(int(pid))
    return found


def skip_if_unavailable(test, rc, stderr):
    """Skips the (sub)test when the host refused the FEDFLOW_CONTAIN it was
    given because this machine cannot give it, with the host's reason (say,
    "FEDFLOW_CONTAIN=cgroup: cannot create /sys/fs/cgroup/...: Read-only file
    system")."""
    why = re.search(r"FEDFLOW_CONTAIN=\w+: .*", stderr)
    if rc == 2 and why:
        test.skipTest("not available here: " + why.group(0))


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def parent(pid):
    with open("/proc/%d/stat" % pid) as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def wait_until(predicate, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def toml_argv(*items):
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


# Leaves three processes behind and finishes: a daemon pair in a session of
# its own (setsid, the starter exits at once) and a background job.
LEAVES_THREE = ("setsid sh -c 'sleep 301 & sleep 302 & exit 0' </dev/null >/dev/null 2>&1; "
                "sleep 303 </dev/null >/dev/null 2>&1 & echo '{{\"ok\": true}}'")
# Runs until killed, with a child and a daemon; writes `started` when both run.
RUNS_ON = ("sleep 300 & setsid sh -c 'sleep 301 & exit 0' </dev/null >/dev/null 2>&1; "
           "echo started > started; wait")


class Descendants(HostTest):
    def run_with(self, mechanism, train, token, timeout=30):
        plan = self.write_plan('[[group]]\nname = "g"\nplugin = "command"\nparams = { train = %s }\n'
                               % toml_argv("sh", "-c", train), name=mechanism + ".toml")
        return self.run_plan(plan, workdir=mechanism, timeout=timeout,
                             env={"FEDFLOW_CONTAIN": mechanism, "FEDFLOW_TEST_TOKEN": token})

    def test_what_a_finished_task_left_running_is_killed_and_reported(self):
        for mechanism in MECHANISMS:
            with self.subTest(mechanism=mechanism):
                token = uuid.uuid4().hex
                r = self.run_with(mechanism, LEAVES_THREE, token)
                skip_if_unavailable(self, r.rc, r.stderr)
                self.assertExit(r, 0)
                self.assertEqual(r.result("g", "0"), {"ok": True})
                events = r.events()
                self.assertEqual(events[0]["containment"], mechanism)
                left = [e for e in events if e.get("event") == "leftovers"]
                self.assertEqual([(e["task"], e["count"]) for e in left], [("0", 3)], r.describe())
                self.assertIn("g/0: left 3 processes running; they were killed", r.stderr)
                # Reported before the task's EXITED: the kill came at its end.
                statuses = [e.get("status") or e["event"] for e in events if e.get("task") == "0"]
                self.assertLess(statuses.index("leftovers"), statuses.index("EXITED"), statuses)
                self.assertTrue(wait_until(lambda: not token_processes(token), 3),
                                "left running: %s" % [cmdline(p) for p in token_processes(token)])
                if mechanism == "cgroup":
                    where = re.search(r"a cgroup v2 per task, in (\S+)", r.stderr)
                    self.assertTrue(where, r.stderr)
                    self.assertTrue(wait_until(lambda: not os.path.exists(where.group(1)), 3),
                                    "the run's cgroup %s is still there" % where.group(1))

    def host_killed(self, mechanism, kill_worker):
        """Starts a run whose task keeps a child and a daemon running, kills the
        host with SIGKILL (and the worker that runs the plugin too, when
        kill_worker), and checks that nothing of the task is left."""
        token = uuid.uuid4().hex
        plan = self.write_plan('[[group]]\nname = "g"\nplugin = "command"\nparams = { train = %s }\n'
                               % toml_argv("sh", "-c", RUNS_ON), name=mechanism + ".toml")
        wd = os.path.join(self.tmp, "%s-%s" % (mechanism, kill_worker))
        env = dict(os.environ, FEDFLOW_CONTAIN=mechanism, FEDFLOW_TEST_TOKEN=token)
        proc = subprocess.Popen([fftest.HOST, plan, "--workdir", wd], cwd=self.tmp, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                                text=True, errors="replace")
        try:
            started = os.path.join(wd, "g", "0", "started")
            if not wait_until(lambda: os.path.exists(started) or proc.poll() is not None, 20):
                self.fail("the task did not start within 20 s")
            if proc.poll() is not None:
                out, err = proc.communicate()
                skip_if_unavailable(self, proc.returncode, err)
                self.fail("the host ended early (%s):\n%s" % (proc.returncode, err[-3000:]))
            # A background child may not have run exec yet when `started`
            # is written (it is still a copy of the shell): give it a moment.
            def sleeps():
                return [p for p in token_processes(token) if cmdline(p)[:1] == [b"sleep"]]

            def shells():
                return [p for p in token_processes(token)
                        if cmdline(p)[:2] == [b"sh", b"-c"] and RUNS_ON.encode() in cmdline(p)]
            wait_until(lambda: len(sleeps()) == 2 and len(shells()) == 1, 5)
            mine = [cmdline(p) for p in token_processes(token)]
            self.assertEqual(len(sleeps()), 2, mine)
            # The worker that runs the plugin: the parent of the task's shell.
            shell = shells()
            self.assertEqual(len(shell), 1, mine)
            worker = parent(shell[0])
            self.assertIn(b"fedflow-worker", cmdline(worker)[0])
            os.kill(proc.pid, signal.SIGKILL)
            if kill_worker:
                os.kill(worker, signal.SIGKILL)
            proc.communicate()
            self.assertTrue(wait_until(lambda: not token_processes(token), 5),
                            "%s: left running after the host%s was killed: %s"
                            % (mechanism, " and its worker" if kill_worker else "",
                               [cmdline(p) for p in token_processes(token)]))
        finally:
            if proc.poll() is None:
                fftest.kill_group(proc)
                proc.communicate()
            for p in token_processes(token):
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass

    def test_nothing_of_a_task_outlives_a_host_killed_with_sigkill(self):
        for mechanism in MECHANISMS:
            for kill_worker in (False, True):
                with self.subTest(mechanism=mechanism, kill_worker=kill_worker):
                    self.host_killed(mechanism, kill_worker)

    def test_an_empty_task_cgroup_serves_the_next_task_and_one_with_leftovers_does_not(self):
        # One task at a time: the one that leaves processes first, then three
        # that leave nothing. Each tells the cgroup it ran in.
        # (Braces doubled: the command plugin fills in {placeholders}.)
        where = 'echo "{{\\"cgroup\\": \\"$(grep "^0::" /proc/self/cgroup)\\"}}"'
        plan = self.write_plan(
            '[[group]]\nname = "dirty"\nplugin = "command"\nparams = { train = %s }\n\n'
            '[[group]]\nname = "clean"\nplugin = "command"\ntasks = 3\nparams = { train = %s }\n'
            % (toml_argv("sh", "-c", "sleep 301 </dev/null >/dev/null 2>&1 & " + where),
               toml_argv("sh", "-c", where)), name="reuse.toml", scheduler={"max-processes": 1})
        token = uuid.uuid4().hex
        r = self.run_plan(plan, env={"FEDFLOW_CONTAIN": "cgroup", "FEDFLOW_TEST_TOKEN": token})
        skip_if_unavailable(self, r.rc, r.stderr)
        self.assertExit(r, 0)
        dirty = r.result("dirty", "0")["cgroup"]
        clean = [r.result("clean", str(i))["cgroup"] for i in range(3)]
        self.assertRegex(dirty, r"^0::/(.*/)?fedflow-[^/]+/t\d+$")
        # The cgroup whose leftover was killed is not handed on; the clean
        # ones are, one task after the other.
        self.assertNotIn(dirty, clean, r.describe())
        self.assertEqual(len(set(clean)), 1, clean)
        self.assertEqual([(e["group"], e["count"]) for e in r.events() if e.get("event") == "leftovers"],
                         [("dirty", 1)])
        self.assertTrue(wait_until(lambda: not token_processes(token), 3))

    def test_an_unknown_mechanism_is_refused(self):
        plan = self.write_plan('[[group]]\nname = "g"\nplugin = "echo"\n')
        r = self.run_plan(plan, env={"FEDFLOW_CONTAIN": "jail"})
        self.assertExit(r, 2)
        self.assertIn("FEDFLOW_CONTAIN=jail: not one of cgroup, pidns, subreaper", r.stderr)

    def test_the_mechanism_is_in_the_log_and_the_journal(self):
        plan = self.write_plan('[[group]]\nname = "g"\nplugin = "echo"\n')
        r = self.run_plan(plan)
        self.assertExit(r, 0)
        self.assertIn(r.events()[0]["containment"], MECHANISMS)
        self.assertRegex(r.stderr, r"what tasks start ends with them: a (cgroup v2|PID namespace|subreaper) per task")


class Limits(HostTest):
    """The host's own limits: open files and processes."""

    def test_a_small_soft_limit_on_open_files_is_raised_and_workers_get_it_back(self):
        # The case: soft limit 16, max-processes 6, 8 tasks. Each task
        # also reports the soft limit its program was given.
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard != resource.RLIM_INFINITY and hard < 256:
            self.skipTest("the hard limit on open files is %d here" % hard)
        plan = self.write_plan('[[group]]\nname = "g"\nplugin = "command"\ntasks = 8\n'
                               'params = { train = %s }\n'
                               % toml_argv("sh", "-c", "sleep 0.2; echo \"{{\\\"nofile\\\": $(ulimit -n)}}\""),
                               scheduler={"max-processes": 6})
        wd = os.path.join(self.tmp, "run")

        def low():
            resource.setrlimit(resource.RLIMIT_NOFILE, (16, hard))
        r = self.host_with(plan, wd, low)
        self.assertExit(r, 0)
        for i in range(8):
            self.assertEqual(r.result("g", str(i)), {"nofile": 16})

    def test_workers_wait_for_descriptors_when_the_hard_limit_is_small(self):
        # 28 descriptors for the host: a dozen of its own, a few for each
        # worker. Tasks start as descriptors allow, and every one finishes.
        if SANITIZED:
            self.skipTest("AddressSanitizer's own descriptors do not fit a limit this small")
        plan = self.write_plan('[[group]]\nname = "g"\nplugin = "fault_sleep"\ntasks = 8\n'
                               'params = { seconds = 0.3 }\n', scheduler={"max-processes": 8})
        wd = os.path.join(self.tmp, "run")

        def tight():
            resource.setrlimit(resource.RLIMIT_NOFILE, (28, 28))
        r = self.host_with(plan, wd, tight)
        self.assertExit(r, 0)
        for i in range(8):
            self.assertStatus(r, "g", str(i), "FINISHED")
        waits = [e for e in r.events() if e.get("event") == "waiting" and e.get("resource") == "spawn"]
        self.assertTrue(waits, "no task waited for descriptors" + r.describe())
        self.assertIn("file descriptors open (ulimit -n)", waits[0]["reason"])

    def test_workers_wait_for_a_process_slot_under_the_process_limit(self):
        # RLIMIT_NPROC binds only without CAP_SYS_RESOURCE: as root, the host
        # runs as nobody (with neither cgroup nor PID namespace: a shim per
        # task). Room for the host and three tasks at once.
        if os.geteuid() != 0:
            self.skipTest("needs root, to run the host as a user with no other process")
        if SANITIZED:
            self.skipTest("LeakSanitizer's thread at exit does not fit a process limit this small")
        try:
            import pwd
            nobody = pwd.getpwnam("nobody")
        except KeyError:
            self.skipTest("no user nobody")
        if processes_of_user(nobody.pw_uid):
            self.skipTest("user nobody runs processes here")
        os.chmod(self.tmp, 0o777)
        plan = self.write_plan('[[group]]\nname = "g"\nplugin = "fault_sleep"\ntasks = 8\n'
                               'params = { seconds = 0.5 }\n', scheduler={"max-processes": 8})
        os.chmod(plan, 0o644)
        wd = os.path.join(self.tmp, "run")

        def as_nobody():
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            resource.setrlimit(resource.RLIMIT_NPROC, (8, 8))
            os.setuid(nobody.pw_uid)
        r = self.host_with(plan, wd, as_nobody, timeout=60)
        self.assertExit(r, 0)
        for i in range(8):
            self.assertStatus(r, "g", str(i), "FINISHED")
        waits = [e for e in r.events() if e.get("event") == "waiting" and e.get("resource") == "spawn"]
        self.assertTrue(waits, "no task waited for a process slot" + r.describe())
        # Counted before the start (each worker takes a shim too, here) or
        # refused by fork: either way, the limit is named.
        self.assertRegex(waits[0]["reason"], r"the user runs \d+ of the 8 processes it may \(ulimit -u\)|"
                                             r"Resource temporarily unavailable \(the user's process limit, "
                                             r"ulimit -u, is 8\)")

    def host_with(self, plan, wd, preexec, timeout=30):
        argv = [fftest.HOST, plan, "--workdir", wd]
        start = time.monotonic()
        proc = subprocess.Popen(argv, cwd=self.tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True, text=True, errors="replace", preexec_fn=preexec)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            fftest.kill_group(proc)
            out, err = proc.communicate()
            self.fail("fedflow-host did not end within %ss\n%s" % (timeout, err[-3000:]))
        return fftest.Result(argv, proc.returncode, out, err, time.monotonic() - start, wd)


class RunTask(HostTest):
    """fedflow-host run-task PLAN GROUP/ID: one task alone, in the foreground."""

    PLAN = """
[[group]]
name = "first"
plugin = "echo"

[[group]]
name = "g"
plugin = "command"
inputs = ["first"]
params = { train = ["sh", "-c", "echo hello from train; echo '{{\\"n\\": 7}}'"] }

[[group.task]]
id = "talks"

[[group.task]]
id = "other"

[[group]]
name = "crash"
plugin = "fault_segfault"
"""

    def run_task(self, *args, **kw):
        plan = self.write_plan(self.PLAN)
        return self.host("run-task", plan, *args, **kw), plan

    def test_a_task_runs_alone_with_its_output_on_the_terminal_and_its_result_printed(self):
        d = os.path.join(self.tmp, "alone")
        r, _ = self.run_task("g/talks", "--dir", d)
        self.assertExit(r, 0)
        # The program's own output, then the result.
        self.assertTrue(r.stdout.startswith("hello from train\n"), r.stdout)
        self.assertTrue(r.stdout.endswith("\n" + json.dumps({"n": 7}, indent=2) + "\n"), r.stdout)
        with open(os.path.join(d, "g", "talks", "result.json")) as f:
            self.assertEqual(json.load(f), {"n": 7})
        self.assertFalse(os.path.exists(os.path.join(d, "g", "other")), "run-task ran another task")
        self.assertFalse(os.path.exists(os.path.join(d, "first")), "run-task ran another group")
        self.assertIn("run-task: g/talks gets no inputs", r.stderr)
        self.assertIn("run-task: g/talks finished", r.stderr)
        # Its finished task is not replaced by the next run-task there unless asked.
        r, _ = self.run_task("g/talks", "--dir", d)
        self.assertExit(r, 2)
        self.assertIn("workdir %s holds the results of a run" % d, r.stderr)
        self.assertIn("running the task there again would delete them. --overwrite replaces the run, --dir DIR "
                      "runs the task elsewhere", r.stderr)
        r, _ = self.run_task("g/talks", "--dir", d, "--overwrite")
        self.assertExit(r, 0)
        self.assertIn("replacing the previous run in %s (--overwrite)" % d, r.stderr)

    def test_a_crash_shows_its_backtrace_and_fails(self):
        r, _ = self.run_task("crash/0")
        self.assertExit(r, 1)
        self.assertIn("fedflow-worker: SIGSEGV (Segmentation fault) at address", r.stderr)
        self.assertIn("fault_segfault.so", r.stderr)
        self.assertIn("run-task: crash/0 failed in train: killed by signal SIGSEGV", r.stderr)
        where = re.search(r"run-task: crash/0 of \S+ \(plugin fault_segfault\) in (\S+)", r.stderr)
        self.assertTrue(where, r.stderr)
        self.assertTrue(os.path.isdir(where.group(1)))

    def test_print_command_shows_the_worker_under_gdb_and_runs_nothing(self):
        d = os.path.join(self.tmp, "never")
        r, plan = self.run_task("crash/0", "--gdb", "--print-command", "--dir", d)
        self.assertExit(r, 0)
        self.assertRegex(r.stdout, r"command: gdb --args /\S+/fedflow-worker --channel 3 --host-pid 0\n")
        self.assertIn("cwd: %s\n" % os.path.join(d, "crash", "0"), r.stdout)
        self.assertIn("CUDA_DEVICE_ORDER=PCI_BUS_ID", r.stdout)
        self.assertIn("run-task %s crash/0 --gdb runs this command" % plan, r.stdout)
        self.assertFalse(os.path.exists(d))

    def test_under_gdb_the_crash_stops_in_the_plugin(self):
        if not shutil.which("gdb"):
            self.skipTest("gdb is not installed")
        if SANITIZED:
            self.skipTest("gdb and AddressSanitizer's shadow memory do not mix well")
        plan = self.write_plan(self.PLAN)
        # gdb reads its commands from stdin when it is not a terminal.
        r = subprocess.run([fftest.HOST, "run-task", plan, "crash/0", "--gdb"], input="run\nbt\nkill\nquit\n",
                           capture_output=True, text=True, timeout=120, cwd=self.tmp)
        out = r.stdout + r.stderr
        self.assertIn("SIGSEGV", out)
        self.assertRegex(out, r"#0 .*FaultSegfault::train", out[-3000:])
        self.assertEqual(r.returncode, 1, out[-3000:])

    def test_a_target_the_plan_lacks_is_bad_input(self):
        r, _ = self.run_task("nope/0")
        self.assertExit(r, 2)
        self.assertIn("run-task: the plan has no group 'nope' (its groups: first, g, crash)", r.stderr)
        r, _ = self.run_task("g/nope")
        self.assertExit(r, 2)
        self.assertIn("run-task: group 'g' has no task 'nope' (its tasks: talks, other)", r.stderr)
        r, _ = self.run_task("g")
        self.assertExit(r, 2)
        self.assertIn("run-task: 'g' is not GROUP/ID", r.stderr)


def processes_of_user(uid):
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if os.stat("/proc/" + pid).st_uid == uid:
                    out.append(int(pid))
            except OSError:
                pass
    return out


if __name__ == "__main__":
    fftest.main()
