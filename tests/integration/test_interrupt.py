#!/usr/bin/env python3
"""SIGINT/SIGTERM to fedflow-host: it starts nothing new, ends its workers
(TERM, then KILL after the grace period), writes every report, leaves no
shared memory behind and exits 3."""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HOST = os.environ.get("FEDFLOW_HOST")

PLAN = """
[scheduler]
max-processes = 2

[[group]]
name = "slow"
plugin = "fault_sleep"
tasks = 4
params = { seconds = 60 }

[[group]]
name = "after"
plugin = "echo"
"""


def events(workdir):
    path = workdir / "events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose; /proc tells.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def run(sig):
    with tempfile.TemporaryDirectory(prefix="fedflow-interrupt-") as tmp:
        tmp = Path(tmp)
        plan = tmp / "plan.toml"
        plan.write_text(PLAN)
        workdir = tmp / "run"
        host = subprocess.Popen([HOST, str(plan), "--workdir", str(workdir), "--progress", "none"],
                                stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: sum(e.get("status") == "TRAINING" for e in events(workdir)) == 2, 30,
                     "two tasks training")
            pids = [e["pid"] for e in events(workdir) if "pid" in e]
            assert len(pids) == 2, pids
            started = time.monotonic()
            host.send_signal(sig)
            _, err = host.communicate(timeout=30)
            elapsed = time.monotonic() - started
        finally:
            if host.poll() is None:
                host.kill()
        assert host.returncode == 3, (host.returncode, err)
        # Sleeping workers die of SIGTERM at once: no wait for the grace period.
        assert elapsed < 4, f"took {elapsed:.1f}s to stop"
        for pid in pids:
            assert not alive(pid), f"worker {pid} survived"

        report = json.loads((workdir / "slow" / "report.json").read_text())
        statuses = {tid: t["status"] for tid, t in report["tasks"].items()}
        assert set(statuses.values()) == {"EXCEPTION"}, statuses
        messages = [t["message"] for t in report["tasks"].values()]
        assert sum("interrupted" in m for m in messages) == 2, messages
        assert sum("not started" in m for m in messages) == 2, messages
        # Groups after the interruption never start.
        assert not (workdir / "after").exists()
        run_json = json.loads((workdir / "run.json").read_text())
        assert run_json["status"] == "interrupted", run_json
        assert run_json["exit_code"] == 3
        assert events(workdir)[-1]["event"] == "run_end"
        leftovers = [n for n in os.listdir("/dev/shm") if n.startswith(f"fedflow-{host.pid}-")]
        assert not leftovers, leftovers


def main():
    if not HOST:
        print("FEDFLOW_HOST is not set", file=sys.stderr)
        return 77
    for sig in (signal.SIGINT, signal.SIGTERM):
        run(sig)
        print(f"ok: {signal.Signals(sig).name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
