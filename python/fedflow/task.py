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


_NO_DEFAULT = object()


class Param:
    """One param a task class declares in its ``declared_params`` dict
    (name -> Param), as a C++ plugin does with FEDFLOW_PARAMS: before the
    class is constructed, each task's params are checked against it (a
    param of another type, or a required one missing, fails the task with
    what and where), and the defaults of params a task does not set are
    added to ``self.params``.

    type: bool, int, float (an int is accepted too), str, list, dict, or
    None for any; default: its value when the plan does not set it;
    required: the plan must set it."""

    # The plan's words for the types, as the host says them of C++ plugins.
    _KINDS = {bool: "bool", int: "integer", float: "double", str: "string", list: "list", dict: "table"}
    _NAMES = {t: ("an " if k[0] in "aeiou" else "a ") + k for t, k in _KINDS.items()}

    def __init__(self, type=None, default=_NO_DEFAULT, required=False, doc=""):
        if type is not None and type not in self._NAMES:
            raise TypeError("Param type must be one of bool, int, float, str, list, dict or None, not %r" % (type,))
        if required and default is not _NO_DEFAULT:
            raise TypeError("a required Param has no default: choose one")
        self.type, self.default, self.required, self.doc = type, default, required, doc
        if default is not _NO_DEFAULT and not self.fits(default):
            raise TypeError("Param default %r is not %s" % (default, self._NAMES[type]))

    def fits(self, value):
        t = self.type
        if t is None:
            return True
        if t is float:
            return isinstance(value, (int, float)) and not isinstance(value, bool)
        if t is int:
            return isinstance(value, int) and not isinstance(value, bool)
        return isinstance(value, t)

    def check(self, name, params, where):
        """The problem with params[name] (a message), or None; adds the
        default when it is missing."""
        if name not in params:
            if self.required:
                return "%s needs param %r (%s), which it requires" % (where, name, self._KINDS.get(self.type, "any"))
            if self.default is not _NO_DEFAULT:
                params[name] = self.default
            return None
        value = params[name]
        if self.fits(value):
            return None
        shown = self._KINDS.get(type(value), type(value).__name__)
        message = "param %r of %s is %r (%s), but it takes %s" % (name, where, value, shown, self._NAMES[self.type])
        if self.type is int and isinstance(value, float) and value.is_integer():
            message += " (write %d)" % int(value)
        return message


def check_params(cls, params, group):
    """params with the defaults of cls.declared_params added; raises
    TypeError naming every param that does not fit the declaration."""
    declared = getattr(cls, "declared_params", None)
    if not declared:
        return params
    if not isinstance(declared, dict) or not all(isinstance(p, Param) for p in declared.values()):
        raise TypeError("%s.declared_params must be a dict of name -> fedflow.Param" % cls.__name__)
    params = dict(params)
    where = "group %r (class %s)" % (group, cls.__name__)
    problems = [m for m in (p.check(n, params, where) for n, p in declared.items()) if m]
    if problems:
        raise TypeError("; ".join(problems))
    return params


class Inputs(dict):
    """self.inputs: group -> task id -> result, a dict whose missing keys say
    where they were looked for and what there is."""

    def __init__(self, data, path, round_number, about=None):
        super().__init__(data)
        self._path, self._round = path, round_number
        self._about = about or {}  # the host's {tasks, finished, round} of this group's instance

    def __missing__(self, key):
        where = ", round %d" % self._round if self._round else ""
        if self._path == "inputs":
            raise KeyError("inputs has no group %r (it has: %s)%s: a group's results are here when the plan's "
                           "inputs = [...] names it and it has run at least once" % (
                               key, ", ".join(sorted(self)) or "none", where))
        count = "%d" % len(self)
        if "tasks" in self._about:
            count += " of %d" % self._about["tasks"]
        count += " finished"
        if self._about.get("round") not in (None, 0, self._round):
            count += " in round %d" % self._about["round"]
        raise KeyError("%s has no task %r (%s: %s)%s" % (
            self._path, key, count, ", ".join(sorted(self)) or "none", where))


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
            about = ctx.info.get("inputs_about") or {}
            ctx.inputs = Inputs({g: Inputs(tasks, "inputs.%s" % g, r, about.get(g)) for g, tasks in decoded.items()},
                                "inputs", r)
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
