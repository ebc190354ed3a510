"""The tasks of docs/examples/python/plan.toml, written as for the original
Fedflow: subclasses of fedflow.Task with a constructor of their own."""
import numpy as np

from fedflow import Task


class Client(Task):
    def __init__(self, task_id, epochs=100):
        super().__init__(task_id, estimate_memory="200MB")
        self.epochs = epochs

    def load(self):
        # CPU only. Client k holds 10 * (k + 1) points of its own line
        # y = (2 + k) x + 1, x in [0, 2). What load keeps on self is there
        # in train: the same object, in the same process.
        k = int(self.task_id)
        self.x = np.linspace(0, 2, 10 * (k + 1), endpoint=False)
        self.y = (2 + k) * self.x + 1
        print("prepared %d samples for client %s" % (len(self.x), self.task_id))

    def train(self, device):
        lr = self.params["lr"]
        x = self.x - self.x.mean()  # centred, for a stable step size
        w = b = 0.0
        for _ in range(self.epochs):
            err = w * x + b - self.y
            w -= lr * 2 * (err * x).mean()
            b -= lr * 2 * err.mean()
        b -= w * self.x.mean()
        loss = float(((w * self.x + b - self.y) ** 2).mean())
        print("client %s on %s: w=%.4f b=%.4f loss=%.2e" % (self.task_id, device, w, b, loss))
        return {
            "samples": len(self.x),
            "loss": loss,
            "weights": np.array([w, b], dtype=np.float32),   # dtype and shape travel with it
        }


class Server(Task):
    def train(self, device):
        clients = self.inputs["clients"]       # task id -> that client's result
        n = sum(r["samples"] for r in clients.values())
        # Each "weights" is a float32 numpy array of shape (2,) again: a
        # read-only view of the client's byte file, mapped, not a copy.
        avg = sum(r["weights"] * (r["samples"] / n) for r in clients.values())
        return {"clients": len(clients), "samples": n, "w": float(avg[0]), "b": float(avg[1]),
                "weights": avg.astype(np.float32)}
