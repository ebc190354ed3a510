"""A real Slurm cluster on this machine, for the tests of fedflow-host --slurm:
munge, slurmctld and two slurmd (nodes n1 and n2, both this host, on
127.0.0.1 ports 17001 and 17002, or the next free block of ports), each with fake GPUs (character devices made
with mknod, declared in gres.conf). Set up and torn down by the test itself,
in a directory of its own (its own ports and state: nothing of /etc is read or
written, and the machine's own Slurm, if any, is left alone). Python 3
standard library only.

    with slurmcluster.Cluster(tmp) as c:     # or Cluster.start(tmp), c.stop()
        c.srun(["-N2", "hostname"])
        job = c.salloc_popen(["-N2", "--gres=gpu:2"], ["fedflow-host", ...])

Needs root (slurmd runs jobs as their user, and mknod) and Debian's slurmctld,
slurmd, slurm-client and munge (scripts/install-deps --tests): unavailable()
says why not, and the tests skip with that reason (exit 77).
"""
import os
import shutil
import signal
import socket
import subprocess
import time

BINARIES = ["munged", "slurmctld", "slurmd", "srun", "salloc", "sbatch", "scontrol", "sinfo", "scancel", "squeue"]
NODE_NAMES = ["n1", "n2"]
# slurmctld on BASE, the nodes on BASE+1 and BASE+2: the first block of
# three free ports from 17000 (two clusters of two test runs side by side
# each get their own).
BASE_PORTS = range(17000, 17100, 10)
GPUS_PER_NODE = 2


def _which(name):
    return shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")


def unavailable():
    """Why no cluster can be set up here (None when one can)."""
    if os.geteuid() != 0:
        return "the Slurm tests need root (slurmd, mknod)"
    missing = [b for b in BINARIES if _which(b) is None]
    if missing:
        return "Slurm is not installed (missing %s: scripts/install-deps --tests installs slurmctld slurmd " \
               "slurm-client munge)" % ", ".join(missing)
    if os.environ.get("FEDFLOW_SANITIZED") and os.environ.get("FEDFLOW_SLURM_UNDER_ASAN") is None:
        pass  # the cluster is not sanitized; the host is, and runs as usual
    return None


def _free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


class Cluster:
    """One running cluster; every process it started is ended by stop()."""

    def __init__(self, root):
        self.root = os.path.abspath(root)
        self.procs = []
        self.env = dict(os.environ)
        self.env["SLURM_CONF"] = os.path.join(self.root, "slurm.conf")
        self.env["PATH"] = self.env.get("PATH", "") + ":/usr/sbin:/sbin"
        for k in list(self.env):
            if k.startswith("SLURM_") and k != "SLURM_CONF":
                del self.env[k]  # a test run inside an allocation must not leak it into ours

    # -- set up --
    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self, timeout=40):
        base = next((b for b in BASE_PORTS if all(_free(b + i) for i in range(3))), None)
        if base is None:
            raise RuntimeError("no three free ports in %d..%d for the cluster" % (BASE_PORTS[0], BASE_PORTS[-1] + 2))
        self.ctld_port = base
        self.nodes = [(n, base + 1 + i) for i, n in enumerate(NODE_NAMES)]
        os.makedirs(self.root, exist_ok=True)
        d = self.root
        for sub in ["state", "spool", "log", "run", "munge", "dev"]:
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        os.chmod(d, 0o755)
        os.chmod(os.path.join(d, "munge"), 0o700)
        # munge: a key and a daemon of our own, on its own socket.
        key = os.path.join(d, "munge", "munge.key")
        with open(key, "wb") as f:
            f.write(os.urandom(1024))
        os.chmod(key, 0o400)
        self.munge_socket = os.path.join(d, "munge", "munge.socket")
        munged = _which("munged")
        subprocess.run([munged, "--force", "--key-file", key, "--socket", self.munge_socket,
                        "--pid-file", os.path.join(d, "munge", "munged.pid"),
                        "--log-file", os.path.join(d, "log", "munged.log"),
                        "--seed-file", os.path.join(d, "munge", "munge.seed")],
                       check=True, capture_output=True, timeout=20)
        self.munged_pidfile = os.path.join(d, "munge", "munged.pid")
        # Fake GPUs: character devices with NVIDIA's major number.
        gres = []
        for i, name in enumerate(NODE_NAMES):
            for g in range(GPUS_PER_NODE):
                dev = os.path.join(d, "dev", "%s-nvidia%d" % (name, g))
                if not os.path.exists(dev):
                    os.mknod(dev, 0o666 | 0o020000, os.makedev(195, i * GPUS_PER_NODE + g))
            gres.append("NodeName=%s Name=gpu File=%s/dev/%s-nvidia[0-%d]" % (name, d, name, GPUS_PER_NODE - 1))
        with open(os.path.join(d, "gres.conf"), "w") as f:
            f.write("\n".join(gres) + "\n")
        host = socket.gethostname()
        cpus = os.cpu_count() or 1
        mem = max(1024, self._mem_mb() // 2)
        self.cpus = cpus
        conf = [
            "ClusterName=fedflowtest",
            "SlurmctldHost=%s(127.0.0.1)" % host,
            "SlurmctldPort=%d" % self.ctld_port,
            "SlurmdPort=%d" % self.nodes[0][1],
            "AuthType=auth/munge",
            "CredType=cred/munge",
            "AuthInfo=socket=%s" % self.munge_socket,
            "SlurmUser=root",
            "SlurmdUser=root",
            "StateSaveLocation=%s/state" % d,
            "SlurmdSpoolDir=%s/spool/%%n" % d,
            "SlurmctldPidFile=%s/run/slurmctld.pid" % d,
            "SlurmdPidFile=%s/run/slurmd-%%n.pid" % d,
            "SlurmctldLogFile=%s/log/slurmctld.log" % d,
            "SlurmdLogFile=%s/log/slurmd-%%n.log" % d,
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core_Memory",
            "GresTypes=gpu",
            "MpiDefault=none",
            "ReturnToService=2",
            "SlurmctldTimeout=30",
            "SlurmdTimeout=30",
            "InactiveLimit=0",
            "KillWait=2",
            "MinJobAge=2",
            "Waittime=0",
            "SchedulerType=sched/builtin",
            "JobCompType=jobcomp/none",
            "AccountingStorageType=accounting_storage/none",
            "JobAcctGatherType=jobacct_gather/none",
            "SlurmctldParameters=enable_configless",
            "LaunchParameters=use_interactive_step",
        ]
        for name, port in self.nodes:
            conf.append("NodeName=%s NodeHostname=%s NodeAddr=127.0.0.1 Port=%d CPUs=%d RealMemory=%d Gres=gpu:%d "
                        "State=UNKNOWN" % (name, host, port, cpus, mem, GPUS_PER_NODE))
        conf.append("PartitionName=test Nodes=%s Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO"
                    % ",".join(NODE_NAMES))
        with open(self.env["SLURM_CONF"], "w") as f:
            f.write("\n".join(conf) + "\n")
        self._daemon([_which("slurmctld"), "-D", "-i", "-f", self.env["SLURM_CONF"]], "slurmctld")
        # n2 runs in a mount namespace of its own where `private` is an
        # empty tmpfs: a folder there is one that n2 does not share.
        self.private = os.path.join(d, "private")
        os.makedirs(self.private, exist_ok=True)
        for name, _ in self.nodes:
            argv = [_which("slurmd"), "-D", "-N", name, "-f", self.env["SLURM_CONF"]]
            if name == NODE_NAMES[-1] and _which("unshare"):
                argv = ["unshare", "-m", "--propagation", "private", "sh", "-c",
                        'mount -t tmpfs fedflow-private "$0" && exec "$@"', self.private] + argv
            self._daemon(argv, "slurmd-" + name)
        self.wait_idle(timeout)
        return self

    @staticmethod
    def _mem_mb():
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
        return 4096

    def _daemon(self, argv, name):
        out = open(os.path.join(self.root, "log", name + ".out"), "wb")
        p = subprocess.Popen(argv, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        out.close()
        self.procs.append((name, p))

    def logs(self):
        """The tail of every daemon's log, for a failure's message."""
        out = []
        for f in sorted(os.listdir(os.path.join(self.root, "log"))):
            with open(os.path.join(self.root, "log", f), errors="replace") as fh:
                text = fh.read()
            out.append("--- %s ---\n%s" % (f, text[-1500:]))
        return "\n".join(out)

    def wait_idle(self, timeout=40):
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            for name, p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError("%s exited with %s\n%s" % (name, p.returncode, self.logs()))
            r = subprocess.run(["sinfo", "-h", "-N", "-o", "%N %t"], env=self.env, capture_output=True, text=True)
            last = r.stdout + r.stderr
            states = dict(line.split() for line in r.stdout.splitlines() if len(line.split()) == 2)
            if r.returncode == 0 and all(states.get(n) == "idle" for n in NODE_NAMES):
                return
            time.sleep(0.2)
        raise RuntimeError("the nodes were not idle within %ds: %s\n%s" % (timeout, last, self.logs()))

    # -- use --
    def run(self, argv, **kw):
        """A Slurm command (sinfo, scontrol, ...) against this cluster."""
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        kw.setdefault("timeout", 30)
        kw.setdefault("env", self.env)
        return subprocess.run(argv, **kw)

    def salloc_popen(self, salloc_args, command, **kw):
        """`salloc SALLOC_ARGS COMMAND` in the background: COMMAND runs here
        inside a new allocation (in its own session, so that a test can signal
        the whole of it)."""
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
        kw.setdefault("text", True)
        return subprocess.Popen(["salloc", "--quiet"] + salloc_args + command, env=kw.pop("env", self.env),
                                start_new_session=True, **kw)

    def kill_session(self, sid):
        """SIGKILL to every process of session sid (salloc's, from
        salloc_popen: the host, its sruns in process groups of their own)."""
        for p in os.listdir("/proc"):
            if not p.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % p) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[3]) == sid:
                    os.kill(int(p), signal.SIGKILL)
            except (OSError, ValueError, IndexError):
                pass

    def jobs(self):
        """[job id, state] of every job of the cluster."""
        r = self.run(["squeue", "-h", "-o", "%i %T"])
        return [line.split() for line in r.stdout.splitlines() if line.strip()]

    # -- tear down --
    def stop(self):
        for job in (self.jobs() if self.procs else []):
            self.run(["scancel", job[0]])
        for name, p in reversed(self.procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for name, p in reversed(self.procs):
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        # slurmstepd processes of steps that outlived their slurmd.
        for name in NODE_NAMES:
            spool = os.path.join(self.root, "spool", name)
            if os.path.isdir(spool):
                for pid in _pids_with_cwd_or_cmd(spool):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        self.procs = []
        try:
            with open(self.munged_pidfile) as f:
                os.kill(int(f.read().strip()), signal.SIGTERM)
        except (OSError, ValueError, AttributeError):
            pass


def _pids_with_cwd_or_cmd(spool):
    """slurmstepd processes of this cluster: their command line names the node's spool dir's node."""
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % p, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink("/proc/%s/cwd" % p)
        except OSError:
            continue
        if cmd.startswith("slurmstepd") and cwd.startswith(spool):
            out.append(int(p))
    return out
