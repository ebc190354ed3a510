"""Federated-learning helpers for Python tasks (numpy), the counterpart of
fedflow/fl.hpp.

A server's inputs are the clients' byte files mapped read-only: each model in
``self.inputs`` is a numpy array that views those pages (docs/python.md).
:func:`weighted_average` reads them a chunk at a time, so a server holds one
model (its output) and one chunk of sums, whatever the number of clients::

    from fedflow.fl import weighted_average

    clients = self.inputs["clients"].values()
    avg = weighted_average([c["weights"] for c in clients], [c["samples"] for c in clients])
"""
import math

CHUNK = 8192


def weighted_average(arrays, weights, out=None, chunk=CHUNK):
    """sum_i weights[i] * arrays[i] / sum_i weights[i], value by value,
    accumulated in float64, as a float32 array of the first array's shape.

    arrays: numpy arrays of float32 values (views of mapped inputs are not
    copied), or objects with the buffer protocol holding float32 values
    (memoryview, bytes); all of the same number of values. A weight of 0
    leaves its array out. out: a float32 array of that many values to write
    into (a new one by default). Raises ValueError when there is no array, the
    sizes differ, a weight is negative or not finite, or the weights sum to
    zero."""
    import numpy as np

    if len(arrays) == 0:
        raise ValueError("fedflow.fl.weighted_average: no array to average")
    if len(weights) != len(arrays):
        raise ValueError("fedflow.fl.weighted_average: %d arrays but %d weights" % (len(arrays), len(weights)))
    flat = []
    for i, a in enumerate(arrays):
        v = a if isinstance(a, np.ndarray) else np.frombuffer(a, dtype="<f4")
        if v.dtype != np.float32:
            raise ValueError("fedflow.fl.weighted_average: array %d is %s, not float32" % (i, v.dtype))
        flat.append(v.reshape(-1))
    n = flat[0].size
    total = 0.0
    for i, (v, w) in enumerate(zip(flat, weights)):
        if v.size != n:
            raise ValueError("fedflow.fl.weighted_average: array %d has %d values, array 0 has %d: all must have "
                             "the same size" % (i, v.size, n))
        w = float(w)
        if not (w >= 0.0) or not math.isfinite(w):
            raise ValueError("fedflow.fl.weighted_average: weight %d is %r, not a finite number >= 0" % (i, w))
        total += w
    if not total > 0.0:
        raise ValueError("fedflow.fl.weighted_average: the weights sum to zero")
    shape = arrays[0].shape if isinstance(arrays[0], np.ndarray) else (n,)
    if out is None:
        out = np.empty(shape, dtype=np.float32)
    elif out.dtype != np.float32 or out.size != n:
        raise ValueError("fedflow.fl.weighted_average: out must be a float32 array of %d values" % n)
    dest = out.reshape(-1)
    acc = np.empty(min(n, chunk), dtype=np.float64)
    for first in range(0, n, chunk):
        k = min(chunk, n - first)
        a = acc[:k]
        a.fill(0.0)
        for v, w in zip(flat, weights):
            if float(w) != 0.0:
                # In float64 (a float32 chunk times a Python float would stay
                # float32): one chunk-sized temporary, never a model.
                a += v[first:first + k].astype(np.float64) * float(w)
        dest[first:first + k] = a / total
    return out
