"""Helpers shared by bench/throughput and bench/result-size (stdlib only).

Exit status of the scripts: 0 when the measurements ran, whatever the
verdicts (benchmarks report, they do not fail CI); 1 when a run failed
(fedflow-host exited non-zero, a result was missing or wrong); 2 on bad
arguments or a build that lacks what the benchmark needs.
"""

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


class RunFailed(Exception):
    """A measured run failed: the script exits 1."""


class NotBuilt(Exception):
    """Something the benchmark needs is not built: the script exits 2."""


def build_paths(build_arg):
    """The build dir (absolute) and the paths the benchmarks use in it."""
    build = Path(build_arg).resolve()
    if not (build / "build.ninja").is_file() and not (build / "meson-info").is_dir():
        raise NotBuilt(f"{build} is not a meson build dir (meson setup {build_arg})")
    return {
        "build": build,
        "host": build / "host" / "fedflow-host",
        "worker": build / "host" / "worker" / "fedflow-worker",
        "plugins": build / "plugins",
        "bench": build / "bench",
        "spawn_floor": build / "bench" / "spawn_floor",
        "memcpy_floor": build / "bench" / "memcpy_floor",
    }


def require(path, what, build, executable=True):
    if not Path(path).is_file() or not os.access(path, os.X_OK if executable else os.R_OK):
        raise NotBuilt(f"{what} not built: {path} (ninja -C {build})")


def machine_line():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"machine: {os.cpu_count()} CPUs ({cpu}), Linux {platform.release()}, python {platform.python_version()}"


def run_timed(cmd, cwd=None, env=None):
    """Runs cmd to the end; returns (wall ms on the monotonic clock, monotonic ns at exit, CompletedProcess)."""
    t0 = time.monotonic_ns()
    proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t1 = time.monotonic_ns()
    return (t1 - t0) / 1e6, t1, proc


def run_timed_rss(cmd, cwd=None, env=None):
    """run_timed, and the peak RSS of cmd's process in bytes (wait4's
    ru_maxrss: the largest of the process and what it reaped)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.monotonic_ns()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=err, text=True)
        # Reaped here, not by Popen.wait, for its rusage.
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        t1 = time.monotonic_ns()
        out.seek(0)
        err.seek(0)
        done = subprocess.CompletedProcess(cmd, proc.returncode, out.read(), err.read())
    return (t1 - t0) / 1e6, usage.ru_maxrss * 1024, done


def tail(text, lines=20):
    return "\n".join(text.strip().splitlines()[-lines:])


def check_ok(proc, what):
    if proc.returncode != 0:
        msg = f"{what} exited {proc.returncode}"
        if proc.stderr.strip():
            msg += ":\n" + tail(proc.stderr)
        elif proc.stdout.strip():
            msg += ":\n" + tail(proc.stdout)
        raise RunFailed(msg)


def parse_kv(line, prefix):
    """'prefix a=1 b=2.5' -> {'a': 1.0, 'b': 2.5} (the last line that starts with prefix)."""
    found = None
    for l in line.splitlines():
        if l.startswith(prefix + " "):
            found = l
    if found is None:
        raise RunFailed(f"no '{prefix} ...' line in:\n{tail(line)}")
    out = {}
    for item in found.split()[1:]:
        k, _, v = item.partition("=")
        try:
            out[k] = float(v)
        except ValueError:
            out[k] = v
    return out


def host_command(paths, plan, workdir):
    return [
        str(paths["host"]), str(plan),
        "--workdir", str(workdir),
        "--plugin-path", str(paths["plugins"]),
        "--plugin-path", str(paths["bench"]),
        "--progress", "none",
    ]


def host_env():
    # Only the --plugin-path dirs of this build: no plugin from the user's
    # FEDFLOW_PLUGIN_PATH can shadow noop or bench_result_bytes.
    env = dict(os.environ)
    env.pop("FEDFLOW_PLUGIN_PATH", None)
    return env


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def read_events(path):
    events = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    events.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
    except OSError:
        pass
    return events


def best(values):
    return min(values) if values else None


def median(values):
    return statistics.median(values) if values else None


def fmt_ms(v, digits=3):
    return "n/a" if v is None else f"{v:.{digits}f}"


def fmt_ratio(v):
    return "n/a" if v is None else f"{v:.2f}x"


def verdict(ratio, target):
    if ratio is None or target is None:
        return ""
    return "PASS" if ratio <= target else "MISS"


def print_table(headers, rows, out=sys.stdout):
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(str(cell)))

    def line(cells):
        parts = []
        for i, cell in enumerate(cells):
            cell = str(cell)
            parts.append(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]))
        return "  ".join(parts).rstrip()

    print(line(headers), file=out)
    print("  ".join("-" * w for w in widths), file=out)
    for row in rows:
        print(line(row), file=out)


def main_wrapper(main):
    try:
        sys.exit(main())
    except NotBuilt as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except RunFailed as e:
        print(f"error: run failed: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
