"""What the python plugin (plugins/python/) calls, and nothing else should.

The plugin converts values between Fedflow's and Python's types; this module
does the Python side of a task's life: import the module, construct the
class, run load and train, and describe an exception for report.json.
"""
import importlib
import importlib.util
import inspect
import os
import sys
import sysconfig
import traceback

from . import task as _task
from . import values

# The plugin's own params; the others are the task's (self.params).
PLUGIN_PARAMS = ("module", "class", "init", "python")
# Frames of a traceback that go into report.json (the log gets all of them).
FRAMES_IN_MESSAGE = 3


def _import(module, plan_dir):
    if module.endswith(".py") or "/" in module:
        path = module if os.path.isabs(module) else os.path.join(plan_dir, module)
        if not os.path.isfile(path):
            raise FileNotFoundError("param 'module': %s is not a file (a .py file is relative to the plan's "
                                    "folder %s)" % (path, plan_dir))
        folder = os.path.dirname(os.path.abspath(path))
        if folder not in sys.path:
            sys.path.insert(0, folder)  # so that it can import its neighbours
        name = os.path.splitext(os.path.basename(path))[0]
        if name in sys.modules and getattr(sys.modules[name], "__file__", None) != os.path.abspath(path):
            name = "fedflow_task_" + name  # never shadow a module already imported (os, types, ...)
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        try:
            spec.loader.exec_module(mod)
        except BaseException:
            del sys.modules[name]
            raise
        return mod
    if plan_dir not in sys.path:
        sys.path.insert(0, plan_dir)
    return importlib.import_module(module)


def create(info, host):
    """The task object: the class named by params, constructed with the task
    id and the init table. info: task_id, group, round, workdir, plan_dir,
    params, inputs (inputs still in wire form: $tensor dicts)."""
    params = info["params"]
    module, cls_name, init = params.get("module"), params.get("class"), params.get("init", {})
    if not isinstance(module, str) or not module:
        raise TypeError("param 'module' must name a .py file (relative to the plan's folder) or an importable "
                        "module, not %r" % (module,))
    if not isinstance(cls_name, str) or not cls_name:
        raise TypeError("param 'class' must name the task class in module %s, not %r" % (module, cls_name))
    if not isinstance(init, dict):
        raise TypeError("param 'init' must be a table of the constructor's keyword arguments, not %s"
                        % type(init).__name__)
    mod = _import(module, info["plan_dir"])
    cls = getattr(mod, cls_name, None)
    if cls is None:
        classes = sorted(n for n, v in vars(mod).items() if isinstance(v, type) and v.__module__ == mod.__name__)
        raise AttributeError("module %s has no class %r (it defines: %s)" % (
            module, cls_name, ", ".join(classes) or "no class"))
    if not isinstance(cls, type) or not callable(getattr(cls, "train", None)):
        raise TypeError("%s in module %s is not a task class (a class with train(self, device))" % (cls_name, module))

    own = _task.check_params(cls, {k: v for k, v in params.items() if k not in PLUGIN_PARAMS}, info["group"])
    info = dict(info, params=own)
    ctx = _task._Context(info, host)
    _task._constructing = ctx
    try:
        obj = cls(info["task_id"], **init) if _takes_task_id(cls) else cls(**init)
    finally:
        _task._constructing = None
    # A class that does not call Task.__init__ (or is no Task at all) still
    # gets its context and id.
    if getattr(obj, "_fedflow", None) is None:
        obj._fedflow = ctx
    if not hasattr(obj, "task_id"):
        obj.task_id = info["task_id"]
    return obj


def _takes_task_id(cls):
    """Whether cls(...) takes the task id: its constructor has a positional
    parameter without a default (Task's task_id), or *args. A class without
    a constructor of its own, or whose parameters all have defaults, is not
    given one: it would take the id for its first option."""
    try:
        params = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):  # no signature to read (a class made in C)
        return True
    return any(p.kind == p.VAR_POSITIONAL or
               (p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty) for p in params)


def load(obj):
    if callable(getattr(obj, "load", None)):  # a class without load has nothing to prepare
        obj.load()


def next_round(obj, info):
    """A kept task (keep-loaded) in its next round: round, workdir and inputs
    change; the object, and what its load built, stay."""
    ctx = obj._fedflow
    ctx.info = dict(ctx.info, **info)
    ctx.inputs = None  # decoded again from this round's, at first use


def train(obj, device):
    """train(device)'s dict, with arrays in wire form."""
    obj.device = device
    out = obj.train(device)
    if not isinstance(out, dict):
        raise TypeError("train returned %s, not a dict" % ("None" if out is None else "a " + type(out).__name__))
    obj.result = out
    return values.encode(out)


def is_out_of_memory(exc):
    """MemoryError, torch's CUDA out-of-memory error (its own class since
    torch 1.13; a RuntimeError with that text before), and torch's CPU
    allocator's failure (a RuntimeError: "DefaultCPUAllocator: can't
    allocate memory", or "not enough memory" on some builds)."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    text = str(exc)
    return "CUDA out of memory" in text or (
        isinstance(exc, RuntimeError) and "DefaultCPUAllocator" in text and "memory" in text)


def describe(exc):
    """(out_of_memory, message, traceback): the message is the type, the
    text and the last frames, short enough for report.json; the traceback is
    the whole of it, for stderr.log."""
    full = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    text = str(exc)
    if len(text) > 500:
        text = text[:500] + "..."
    head = type(exc).__name__ + (": " + text if text else "")
    lines = ["  at %s:%d in %s%s" % (os.path.basename(f.filename), f.lineno, f.name,
                                     (": " + f.line.strip()[:80]) if f.line else "")
             for f in _frames_to_show(traceback.extract_tb(exc.__traceback__))]
    return is_out_of_memory(exc), "\n".join([head] + lines), full


_FEDFLOW_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_STDLIB_DIR = os.path.join(sysconfig.get_paths()["stdlib"], "")


def _is_fedflow(filename):
    """This package's frames and the import system's (<frozen importlib...>):
    they say nothing about the user's code."""
    return filename.startswith(_FEDFLOW_DIR) or filename.startswith("<frozen ")


def _is_library(filename):
    return (filename.startswith(_STDLIB_DIR) or os.sep + "site-packages" + os.sep in filename or
            os.sep + "dist-packages" + os.sep in filename)


def _frames_to_show(frames):
    """The innermost FRAMES_IN_MESSAGE frames that are not Fedflow's; and when
    those are all a library's (torch's layers, json's decoder), the innermost
    frame of the task's own code before them, where it called the library."""
    frames = [f for f in frames if not _is_fedflow(f.filename)]
    shown = frames[-FRAMES_IN_MESSAGE:]
    own = [f for f in frames if not _is_library(f.filename)]
    if own and own[-1] not in shown:
        shown = [own[-1]] + shown[-(FRAMES_IN_MESSAGE - 1):]
    return shown


# What after_fork calls in each child to set OpenMP's thread count, looked up
# once by the fork server (prepare_fork): None where torch needs
# torch.set_num_threads; _UNKNOWN before prepare_fork ran.
_UNKNOWN = object()
_omp_set_num_threads = _UNKNOWN


def prepare_fork():
    """In the fork server, once the preload modules are imported, before the
    first fork. Looks up what after_fork needs: reading /proc/self/maps and a
    dlopen of libgomp cost each forked torch task 10-50 ms. Freezes the
    garbage collector (gc.freeze): what is loaded now is never scanned by a
    child's collections, which would write to every object's header and so
    copy every page the child shares with the server."""
    global _omp_set_num_threads
    torch = sys.modules.get("torch")
    _omp_set_num_threads = _openmp_setter(torch) if torch is not None else None
    import gc
    gc.freeze()


def after_fork(env):
    """In a worker forked by a fork server: the thread settings the task was
    started with (env: variable -> value, None when unset), which the preload
    ran without (OMP_NUM_THREADS=1 and the like, docs/python.md)."""
    for name, value in env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "set_num_threads"):
        # torch sized its pool from OMP_NUM_THREADS when it was imported.
        wanted = env.get("OMP_NUM_THREADS")
        try:
            n = int(wanted) if wanted else len(os.sched_getaffinity(0))
        except ValueError:
            n = len(os.sched_getaffinity(0))
        if not _set_openmp_threads(torch, max(1, n)):
            torch.set_num_threads(max(1, n))


def _set_openmp_threads(torch, n):
    """torch's intra-op thread count set through OpenMP alone, for a task
    forked with torch preloaded; False when this torch needs
    torch.set_num_threads. With torch on libgomp and without MKL the count is
    OpenMP's (omp_set_num_threads: microseconds, no thread started), where
    torch.set_num_threads also builds its pthreadpool (QNNPACK's and
    XNNPACK's) at once, twice over: 20 ms and a thread here, before the task
    has done anything. That pool is built at its first use instead, and
    OpenMP starts its threads at the first parallel op. The count holds in
    the task's main thread (where load and train run), as OpenMP's settings
    are per thread."""
    setter = _omp_set_num_threads
    if setter is _UNKNOWN:
        setter = _openmp_setter(torch)
    if setter is None:
        return False
    try:
        setter(n)
        return torch.get_num_threads() == n
    except (OSError, AttributeError):
        return False


def _openmp_setter(torch):
    """libgomp's omp_set_num_threads, as torch uses it, or None (see
    _set_openmp_threads)."""
    try:
        if not torch.backends.openmp.is_available() or torch.backends.mkl.is_available():
            return None
        # The libgomp torch uses: a second one (a wheel's own, loaded next to
        # a system one) would leave it unknown which.
        with open("/proc/self/maps") as maps:
            found = {line.split(None, 5)[-1].strip() for line in maps if "/libgomp" in line}
        if len(found) != 1:
            return None
        import ctypes
        return ctypes.CDLL(found.pop(), mode=os.RTLD_NOLOAD | os.RTLD_LAZY).omp_set_num_threads
    except (OSError, AttributeError, ImportError):
        return None
