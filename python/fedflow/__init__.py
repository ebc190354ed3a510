"""Fedflow tasks in Python.

A task is a subclass of :class:`fedflow.Task`, run by the bundled ``python``
plugin inside ``fedflow-worker``: one Python interpreter per task process,
``load()`` and then ``train(device)`` on the same object::

    from fedflow import Task

    class Client(Task):
        def __init__(self, task_id, lr=0.1):
            super().__init__(task_id, estimate_memory="1GB")
            self.lr = lr

        def load(self):                  # CPU only: read and prepare data
            self.data = ...

        def train(self, device):         # "cuda:N" or "cpu"
            ...
            return {"loss": loss, "weights": weights_array}

and in the plan::

    [[group]]
    name = "clients"
    plugin = "python"
    tasks = 10
    params = { module = "client.py", class = "Client", init = { lr = 0.05 } }

docs/python.md is the user's guide.
"""
from .task import Task, Param, parse_size
from .values import Tensor, DTYPES

__all__ = ["Task", "Param", "Tensor", "DTYPES", "parse_size"]
__version__ = "0.1.0"
