"""Helpers shared by the integration tests: find fedflow-host, write plans into
a fresh temporary directory, run the host with a time limit, read what a run
leaves behind. Python 3 standard library only.

Environment (set by tests/integration/meson.build):
  FEDFLOW_HOST         the fedflow-host executable (absent: the test is skipped)
  FEDFLOW_PLUGIN_PATH  the build's plugin directories (bundled and tests/plugins)
  FEDFLOW_BUILD_ROOT   the build tree
  FEDFLOW_SOURCE_ROOT  the source tree
Set FEDFLOW_KEEP_TMP=1 to keep each test's directory for a post-mortem.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

SKIP = 77

HOST = os.environ.get("FEDFLOW_HOST", "")
PLUGIN_PATH = os.environ.get("FEDFLOW_PLUGIN_PATH", "")
BUILD_ROOT = os.environ.get("FEDFLOW_BUILD_ROOT", "")
SOURCE_ROOT = os.environ.get("FEDFLOW_SOURCE_ROOT", "")

# Every host run gets at most this long; a hang is a failure, not a stuck suite.
DEFAULT_TIMEOUT = 30


# Python source for a program a test starts through the host (a command
# task's, a [notify] command): open_fds() lists the descriptors above 2 it
# inherited.
OPEN_FDS_PY = """
def open_fds():
    import os
    found = []
    for fd in range(3, 256):
        try:
            os.fstat(fd)
            found.append(fd)
        except OSError:
            pass
    return found
"""


def have_host():
    return bool(HOST) and os.access(HOST, os.X_OK)


def plugin_file(name):
    """The .so of a plugin built in this tree, found on FEDFLOW_PLUGIN_PATH."""
    for d in PLUGIN_PATH.split(":"):
        p = os.path.join(d, name + ".so")
        if d and os.path.isfile(p):
            return p
    raise AssertionError("plugin %s.so not found on FEDFLOW_PLUGIN_PATH=%s" % (name, PLUGIN_PATH))


def toml_str(s):
    return json.dumps(s)  # a JSON string is a valid TOML basic string


_M64 = (1 << 64) - 1
_P1, _P2, _P3, _P4, _P5 = (0x9E3779B185EBCA87, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9,
                           0x85EBCA77C2B2AE63, 0x27D4EB2F165667C5)


def xxh64(data):
    """XXH64 (seed 0) of bytes, as the host's integrity::checksum: the checksum
    of a byte file in result.json. Pure Python: for test-sized data only."""
    def rotl(x, r):
        return ((x << r) | (x >> (64 - r))) & _M64

    def rnd(acc, v):
        return (rotl((acc + v * _P2) & _M64, 31) * _P1) & _M64

    n, p = len(data), 0
    word = lambda i, k: int.from_bytes(data[i:i + k], "little")  # noqa: E731
    if n >= 32:
        v = [(_P1 + _P2) & _M64, _P2, 0, (-_P1) & _M64]
        while p + 32 <= n:
            v = [rnd(v[i], word(p + 8 * i, 8)) for i in range(4)]
            p += 32
        h = (rotl(v[0], 1) + rotl(v[1], 7) + rotl(v[2], 12) + rotl(v[3], 18)) & _M64
        for x in v:
            h = ((h ^ rnd(0, x)) * _P1 + _P4) & _M64
    else:
        h = _P5
    h = (h + n) & _M64
    while p + 8 <= n:
        h = (rotl(h ^ rnd(0, word(p, 8)), 27) * _P1 + _P4) & _M64
        p += 8
    if p + 4 <= n:
        h = (rotl(h ^ ((word(p, 4) * _P1) & _M64), 23) * _P2 + _P3) & _M64
        p += 4
    while p < n:
        h = (rotl(h ^ ((data[p] * _P5) & _M64), 11) * _P1) & _M64
        p += 1
    h ^= h >> 33
    h = (h * _P2) & _M64
    h ^= h >> 29
    h = (h * _P3) & _M64
    h ^= h >> 32
    return h


def bytes_entry(file, size, content=None):
    """A byte file's entry in result.json; its checksum is that of content
    (default: what the test compares it with must then say "checksum" too)."""
    e = {"file": file, "size": size}
    if content is not None:
        e["checksum"] = "%016x" % xxh64(content)
    return {"$bytes": e}


class Result:
    """One finished fedflow-host process."""

    def __init__(self, args, rc, stdout, stderr, elapsed, workdir):
        self.args = args
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        self.output = stdout + stderr
        self.elapsed = elapsed
        self.workdir = workdir

    def describe(self):
        def tail(s, n=3000):
            return s if len(s) <= n else "...\n" + s[-n:]

        return "\n$ %s\nexit status %s after %.2fs\n--- stdout ---\n%s\n--- stderr ---\n%s" % (
            " ".join(self.args), self.rc, self.elapsed, tail(self.stdout), tail(self.stderr))

    # What a run leaves behind (docs/architecture.md, "Outputs").
    def path(self, *parts):
        return os.path.join(self.workdir, *parts)

    def json(self, *parts):
        with open(self.path(*parts), encoding="utf-8") as f:
            return json.load(f)

    def events(self):
        out = []
        with open(self.path("events.jsonl"), encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    try:
                        out.append(json.loads(line))
                    except ValueError as e:
                        raise AssertionError("events.jsonl line %d is not JSON: %r (%s)" % (n, line, e))
        return out

    def report(self, group):
        return self.json(group, "report.json")

    def task(self, group, task_id):
        """The task's entry in its group's report.json."""
        tasks = self.report(group)["tasks"]
        if task_id not in tasks:
            raise AssertionError("no task %r in %s/report.json: %s" % (task_id, group, sorted(tasks)))
        return tasks[task_id]

    def result(self, group, task_id):
        return self.json(group, task_id, "result.json")

    def read(self, *parts):
        with open(self.path(*parts), encoding="utf-8", errors="replace") as f:
            return f.read()


class HostTest(unittest.TestCase):
    """A test case with its own temporary directory."""

    def setUp(self):
        if not have_host():
            self.skipTest("FEDFLOW_HOST is not set: fedflow-host is not built yet")
        self.tmp = os.path.realpath(tempfile.mkdtemp(prefix="fedflow-it-"))

    def tearDown(self):
        if getattr(self, "tmp", None) and not os.environ.get("FEDFLOW_KEEP_TMP"):
            shutil.rmtree(self.tmp, ignore_errors=True)

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def write_plan(self, body, name="plan.toml", scheduler=None, top=""):
        """A plan: top-level lines, a [scheduler] table, then body. Only keys
        that this host version implements go into the defaults."""
        sched = {"max-processes": 4}
        sched.update(scheduler or {})
        text = top
        text += "[scheduler]\n"
        for k, v in sched.items():
            text += "%s = %s\n" % (k, toml_str(v) if isinstance(v, str) else str(v).lower() if isinstance(v, bool) else v)
        text += "\n" + body
        return self.write(name, text)

    def host(self, *args, timeout=DEFAULT_TIMEOUT, cwd=None, env=None, workdir=None):
        """Runs fedflow-host with args; kills its process group on timeout."""
        argv = [HOST] + [str(a) for a in args]
        full_env = dict(os.environ)
        full_env.update(env or {})
        start = time.monotonic()
        proc = subprocess.Popen(argv, cwd=cwd or self.tmp, env=full_env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True, text=True,
                                errors="replace")
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            out, err = proc.communicate()
            r = Result(argv, proc.returncode, out, err, time.monotonic() - start, workdir)
            self.fail("fedflow-host did not end within %ss%s" % (timeout, r.describe()))
        return Result(argv, proc.returncode, out, err, time.monotonic() - start, workdir)

    def start_host(self, *args, env=None):
        """Starts fedflow-host in the background (its own session, output
        captured): for tests that act while it runs. End it with
        finish_host."""
        full_env = dict(os.environ)
        full_env.update(env or {})
        return subprocess.Popen([HOST] + [str(a) for a in args], cwd=self.tmp, env=full_env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                                text=True, errors="replace")

    def finish_host(self, proc, workdir=None, timeout=DEFAULT_TIMEOUT):
        """Waits for a host from start_host; its Result."""
        start = time.monotonic()
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            out, err = proc.communicate()
            self.fail("fedflow-host did not end within %ss\n%s" % (timeout, err[-3000:]))
        return Result(proc.args, proc.returncode, out, err, time.monotonic() - start, workdir)

    def wait_for_event(self, workdir, match, proc=None, timeout=DEFAULT_TIMEOUT):
        """Polls workdir's events.jsonl until a line for which match(event)
        is true appears; returns that event. Fails when the host (proc) ends
        first or time runs out."""
        path = os.path.join(workdir, "events.jsonl")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with open(path, encoding="utf-8") as f:
                    for line in f:
                        try:
                            e = json.loads(line)
                        except ValueError:
                            continue  # a line being written
                        if match(e):
                            return e
            except FileNotFoundError:
                pass
            if proc is not None and proc.poll() is not None:
                self.fail("fedflow-host ended (exit status %s) before the event came" % proc.returncode)
            time.sleep(0.02)
        self.fail("no such event in %s within %ss" % (path, timeout))

    def run_plan(self, plan, *args, workdir="run", **kw):
        wd = os.path.join(self.tmp, workdir)
        return self.host(plan, "--workdir", wd, *args, workdir=wd, **kw)

    def assertExit(self, r, code):
        self.assertEqual(r.rc, code, "expected exit status %d%s" % (code, r.describe()))

    def assertInCI(self, needle, haystack, what=""):
        """Substring, case-insensitive: host messages are not pinned word for word."""
        self.assertIn(needle.lower(), haystack.lower(), "%r not in %s:\n%s" % (needle, what or "output", haystack))

    def assertStatus(self, r, group, task_id, status):
        t = r.task(group, task_id)
        self.assertEqual(t.get("status"), status, "%s/%s: %s%s" % (group, task_id, json.dumps(t), r.describe()))
        return t


def worker_cwds(under):
    """Processes whose cwd lies under `under` (task workdirs): the workers of
    a run, and whatever they started."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cwd = os.readlink("/proc/%s/cwd" % pid)
        except OSError:
            continue
        if cwd.startswith(under + os.sep):
            found.append((int(pid), cwd))
    return found


def shm_segments(host_pid):
    """The shared-memory segments of the host with that pid."""
    return [n for n in os.listdir("/dev/shm") if n.startswith("fedflow-%d-" % host_pid)]


def max_overlap(intervals):
    """The most intervals (start, end) open at one instant; an interval that
    ends as another starts does not overlap it."""
    points = sorted([(s, 1) for s, e in intervals] + [(e, -1) for s, e in intervals], key=lambda p: (p[0], p[1]))
    best = now = 0
    for _, d in points:
        now += d
        best = max(best, now)
    return best


def run_ok(argv, env=None, cwd=None, timeout=120):
    """Runs a command to the end; its output (stdout and stderr), or an
    AssertionError with the command, its status and the end of its output."""
    p = subprocess.run(argv, env=env, cwd=cwd, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=timeout)
    if p.returncode != 0:
        raise AssertionError("$ %s\nexit status %d\n%s" % (" ".join(argv), p.returncode, p.stdout[-5000:]))
    return p.stdout


def clean_env(**extra):
    """The environment without FEDFLOW_*, PKG_CONFIG* and DESTDIR: what a user
    outside the build has (an installed host needs none of them)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("FEDFLOW_") and not k.startswith("PKG_CONFIG") and k != "DESTDIR"}
    env.update(extra)
    return env


def kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def main():
    """unittest.main with automake exit codes: 0 pass, 1 fail, 77 all skipped."""
    prog = unittest.main(exit=False, verbosity=2)
    res = prog.result
    if not res.wasSuccessful():
        sys.exit(1)
    if res.testsRun > 0 and len(res.skipped) == res.testsRun:
        sys.exit(SKIP)
    sys.exit(0)


def line_of(text, needle):
    """1-based line number of the first line that contains needle."""
    for n, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return n
    raise AssertionError("%r not in plan" % needle)


def location_re(plan_name, line):
    """FILE:LINE:COLUMN as docs/plan.md asks ("Errors": every error names the file, line and column)."""
    return re.compile(re.escape(plan_name) + r":%d:\d+" % line)
