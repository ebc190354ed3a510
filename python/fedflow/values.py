"""Arrays in results and inputs: one representation for every language.

A numpy array or a torch tensor in a result travels as the dict

    {"$tensor": {"dtype": "float32", "shape": [10, 64], "data": <bytes>}}

(``dtype`` one of DTYPES, little-endian, C order; ``shape`` a list of ints;
``data`` the elements, ``prod(shape) * itemsize`` bytes). The same dict is
what ``result.json`` and ``report.json`` show (``data`` as a ``$bytes`` file)
and what a C++ plugin reads and writes with ``fedflow::Tensor``
(<fedflow/tensor.hpp>). A task that receives it in ``self.inputs`` gets a
numpy array again, a read-only view of the shared memory the host mapped, with
no copy.
"""
import sys

# dtype name -> bytes per element. The names are numpy's (and torch's, but
# for bfloat16, which numpy lacks).
DTYPES = {
    "bool": 1, "int8": 1, "uint8": 1, "int16": 2, "uint16": 2, "int32": 4, "uint32": 4,
    "int64": 8, "uint64": 8, "float16": 2, "bfloat16": 2, "float32": 4, "float64": 8,
    "complex64": 8, "complex128": 16,
}
MARKER = "$tensor"


class Tensor:
    """An array whose element type numpy cannot hold (bfloat16), or any array
    when numpy is not installed: dtype, shape, and the bytes as a memoryview.
    Return one from train to send such an array; ``numpy()`` converts."""

    __slots__ = ("dtype", "shape", "data")

    def __init__(self, data, dtype, shape):
        if dtype not in DTYPES:
            raise ValueError("dtype %r is not one of %s" % (dtype, ", ".join(DTYPES)))
        self.shape = tuple(int(d) for d in shape)
        if any(d < 0 for d in self.shape):
            raise ValueError("shape %r has a negative dimension" % (self.shape,))
        self.dtype = dtype
        self.data = memoryview(data).cast("B")
        n = DTYPES[dtype]
        for d in self.shape:
            n *= d
        if n != self.data.nbytes:
            raise ValueError("a %s tensor of shape %s needs %d bytes, the data has %d" % (
                dtype, list(self.shape), n, self.data.nbytes))

    def numpy(self):
        import numpy as np
        return np.frombuffer(self.data, dtype=np.dtype(self.dtype).newbyteorder("<")).reshape(self.shape)

    def __repr__(self):
        return "fedflow.Tensor(dtype=%r, shape=%r)" % (self.dtype, list(self.shape))


def _wire(dtype, shape, data):
    return {MARKER: {"dtype": dtype, "shape": [int(d) for d in shape], "data": data}}


def _from_numpy(a):
    np = sys.modules["numpy"]
    if a.dtype.name not in DTYPES or a.dtype.hasobject:
        raise TypeError("a numpy array of dtype %s cannot be sent (use one of: %s)" % (
            a.dtype, ", ".join(DTYPES)))
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("<"))
    shape = a.shape  # ascontiguousarray makes a 0-d array 1-d
    a = np.ascontiguousarray(a)
    # A flat byte view of the same memory: an array made by Task.array() is
    # still recognised as shared memory and sent without a copy.
    return _wire(a.dtype.name, shape, memoryview(a.reshape(-1).view(np.uint8)))


def _from_torch(t):
    torch = sys.modules["torch"]
    t = t.detach()
    if t.device.type != "cpu":
        t = t.cpu()  # a CUDA tensor is copied to the host
    t = t.contiguous()
    name = str(t.dtype).replace("torch.", "")
    if name == "bfloat16":
        flat = t.reshape(-1).view(torch.int16).numpy().view("uint8")
        return _wire("bfloat16", tuple(t.shape), memoryview(flat))
    if name not in DTYPES:
        raise TypeError("a torch tensor of dtype %s cannot be sent (use one of: %s)" % (t.dtype, ", ".join(DTYPES)))
    return _from_numpy(t.numpy())


def encode(value, path="result"):
    """value with every array turned into its $tensor dict and numpy scalars
    into Python numbers; everything else as it is (the plugin converts the
    rest, and names the path of what it cannot)."""
    np = sys.modules.get("numpy")
    torch = sys.modules.get("torch")
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError("%s: key %r is of type %s; keys must be strings" % (path, k, type(k).__name__))
            out[k] = encode(v, "%s[%r]" % (path, k))
        return out
    if isinstance(value, (list, tuple)):
        return [encode(v, "%s[%d]" % (path, i)) for i, v in enumerate(value)]
    if isinstance(value, Tensor):
        return _wire(value.dtype, value.shape, value.data)
    if np is not None:
        if isinstance(value, np.ndarray):
            try:
                return _from_numpy(value)
            except TypeError as e:
                raise TypeError("%s: %s" % (path, e)) from None
        if isinstance(value, np.generic):
            return value.item()
    if torch is not None and isinstance(value, torch.Tensor):
        try:
            return _from_torch(value)
        except TypeError as e:
            raise TypeError("%s: %s" % (path, e)) from None
    return value


def _tensor_of(d):
    """The (dtype, shape, data) of a $tensor dict, or None."""
    if len(d) != 1 or MARKER not in d:
        return None
    t = d[MARKER]
    if not isinstance(t, dict) or set(t) != {"dtype", "shape", "data"}:
        return None
    if not isinstance(t["dtype"], str) or not isinstance(t["shape"], list) or not isinstance(t["data"], memoryview):
        return None
    return t["dtype"], t["shape"], t["data"]


def decode(value, tensor_type="numpy"):
    """value with every $tensor dict turned into a numpy array (a read-only
    view, no copy), a torch tensor (tensor_type "torch": a copy, since torch
    has no read-only tensors), or a Tensor (no numpy, or bfloat16 without
    torch)."""
    if isinstance(value, dict):
        t = _tensor_of(value)
        if t is None:
            return {k: decode(v, tensor_type) for k, v in value.items()}
        dtype, shape, data = t
        tensor = Tensor(data, dtype, shape)
        if tensor_type == "torch" or dtype == "bfloat16":
            try:
                import torch
            except ImportError:
                torch = None
            tdtype = getattr(torch, dtype, None) if torch is not None else None
            if tdtype is not None:
                if dtype == "bfloat16":
                    raw = Tensor(data, "int16", shape).numpy()
                    out = torch.tensor(raw).view(torch.bfloat16)
                else:
                    out = torch.tensor(tensor.numpy())
                return out if out.dtype == tdtype else out.to(tdtype)
        if dtype != "bfloat16":
            try:
                return tensor.numpy()
            except ImportError:
                pass
        return tensor
    if isinstance(value, list):
        return [decode(v, tensor_type) for v in value]
    return value
