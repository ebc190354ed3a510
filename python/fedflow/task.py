"""fedflow.Task: the base class of a Python task (docs/python.md)."""
import re

from . import values

_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([A-Za-z]*)\s*$")
_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}

# The context of the task being constructed: set by the plugin around the
# constructor call, so that Task.__init__ (and a subclass's __init__ after
# it) can already read params, workdir and inputs.
_constructing = None


def parse_size(value, what="size"):
    """Bytes as an int: an int, or a string with a unit as in the plan
    ("1.5GB", "512MiB"; B KB MB GB TB are powers of 1000, KiB MiB GiB TiB of
    1024). None stays None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise TypeError("%s must be a number of bytes or a string such as \"2GB\", not %s" % (
            what, type(value).__name__))
    if isinstance(value, str):
        m = _SIZE.match(value)
        if not m or m.group(2) not in _UNITS:
            raise ValueError("%s %r is not a size (a number with one of the units %s)" % (
                what, value, ", ".join(u for u in _UNITS if u)))
        value = float(m.group(1)) * _UNITS[m.group(2)]
    if value < 0 or value != value:
        raise ValueError("%s must not be negative" % what)
    return int(value)


class Inputs(dict):
    """self.inputs: group -> task id -> result, a dict whose missing keys say
    where they were looked for and what there is."""

    def __init__(self, data, path, round_number):
        super().__init__(data)
        self._path, self._round = path, round_number

    def __missing__(self, key):
        where = " in round %d" % self._round if self._round else ""
        if self._path == "inputs":
            raise KeyError("inputs has no group %r%s (it has: %s): a group's results are here when the plan's "
                           "inputs = [...] names it and it has finished at least once" % (
                               key, where, ", ".join(sorted(self)) or "none"))
        raise KeyError("%s has no task %r%s (finished: %s)" % (self._path, key, where, ", ".join(sorted(self)) or "none"))


class _Context:
    """What the plugin tells a task; shared by the Task's properties."""

    def __init__(self, info, host):
        self.info = info   # task_id, group, round, workdir, plan_dir, params, inputs
        self.host = host   # the plugin's built-in module: bytes(), log()
        self.inputs = None


class Task:
    """A Fedflow task, as in the original Fedflow (0.2): subclass it, give
    your constructor the arguments you need (the plan's ``init`` table), and
    implement ``load(self)`` (CPU only) and ``train(self, device) -> dict``.

    Attributes: ``task_id``, ``device`` (None until train; then the device
    train runs on), ``estimate_memory`` and ``estimate_cuda_memory`` (bytes or
    None), ``result`` (what the last train returned); properties
    ``workdir``, ``group``, ``round``, ``plan_dir``, ``params``, ``inputs``.
    """

    #: How arrays in ``self.inputs`` appear: "numpy" (read-only views of the
    #: shared memory, no copy) or "torch" (tensors, copied).
    tensor_type = "numpy"

    def __init__(self, task_id, estimate_memory=None, estimate_cuda_memory=None, device=None):
        self.task_id = str(task_id)
        self.estimate_memory = parse_size(estimate_memory, "estimate_memory")
        self.estimate_cuda_memory = parse_size(estimate_cuda_memory, "estimate_cuda_memory")
        if device is not None and not isinstance(device, str):
            raise TypeError("device must be a string such as \"cuda:0\", not %s" % type(device).__name__)
        self.device = device
        self.result = None
        if _constructing is not None:
            self._fedflow = _constructing

    # ---- what the plugin fills in ----------------------------------------

    def _ctx(self):
        ctx = getattr(self, "_fedflow", None)
        if ctx is None:
            raise RuntimeError("this Task is not run by Fedflow's python plugin: it has no context")
        return ctx

    @property
    def workdir(self):
        """Absolute path of the task's own directory (the process's cwd)."""
        return self._ctx().info["workdir"]

    @property
    def group(self):
        return self._ctx().info["group"]

    @property
    def round(self):
        """The round number; 0 outside rounds."""
        return self._ctx().info["round"]

    @property
    def plan_dir(self):
        """The plan file's directory: resolve relative data paths here."""
        return self._ctx().info["plan_dir"]

    @property
    def params(self):
        """The group's params (the task's own override them), without the
        plugin's own keys (module, class, init, python)."""
        return self._ctx().info["params"]

    @property
    def inputs(self):
        """Results of the groups named in the plan's ``inputs``:
        ``self.inputs[group][task_id]`` is that task's result dict, with its
        arrays as numpy arrays (see tensor_type) and bytes as memoryviews."""
        ctx = self._ctx()
        if ctx.inputs is None:
            r = ctx.info["round"]
            decoded = values.decode(ctx.info["inputs"], self.tensor_type)
            ctx.inputs = Inputs({g: Inputs(tasks, "inputs[%r]" % g, r) for g, tasks in decoded.items()}, "inputs", r)
        return ctx.inputs

    # ---- the two stages ----------------------------------------------------

    def load(self):
        """CPU stage: read and prepare data; keep it on self. No GPU here."""

    def train(self, device):
        """GPU stage on ``device`` ("cuda:N", "cpu", or "sim:N": a simulated
        GPU, see declare_gpu_memory): returns a dict."""
        raise NotImplementedError("%s does not implement train(self, device)" % type(self).__name__)

    # ---- services ----------------------------------------------------------

    def bytes(self, n):
        """n zero bytes in shared memory, as a writable memoryview: put it
        (or an array over it) in the result and it reaches the host without
        a copy."""
        return self._ctx().host.bytes(int(n))

    def array(self, shape, dtype="float32"):
        """A zero-filled numpy array in shared memory (see bytes())."""
        import numpy as np
        dt = np.dtype(dtype)
        shape = (int(shape),) if isinstance(shape, int) else tuple(int(d) for d in shape)
        n = dt.itemsize
        for d in shape:
            n *= d
        return np.frombuffer(self.bytes(n), dtype=dt).reshape(shape)

    def declare_gpu_memory(self, n):
        """On a simulated GPU (``device`` is "sim:N", fedflow-host
        --simulate-gpus), where no CUDA may be used: the task now holds n
        bytes of GPU memory there (an int, or a size such as "6GB"), as if
        it had allocated them; the host measures them as a CUDA process's.
        Raises MemoryError when the simulated GPU cannot hold them (the host
        retries train with a grown estimate). Returns False, doing nothing,
        on any other device. In train only."""
        return self._ctx().host.declare_gpu_memory(parse_size(n, "declare_gpu_memory"))

    def log(self, message, level="info"):
        """One line in the task's stderr.log, with the level (debug, info,
        warning, error)."""
        self._ctx().host.log(level, str(message))
