"""Federated averaging of a small PyTorch CNN on the handwritten digits
(plugins/python/demo/demo.toml; `scripts/demo --torch` runs it).

Client: load() reads the data and keeps this client's non-IID shard (a
Dirichlet(alpha) split over the classes, the same seed in every process);
train(device) starts from the server's last global model (its weights arrive
as numpy arrays, dtype and shape kept) and trains `epochs` local epochs.
Server: averages the clients' weights, weighted by their sample counts,
evaluates the global model on the held-out test split and, in the last round,
trains the same model centrally on the union of the clients' data for as many
epochs as a client trained in all: the yardstick.

Written as for the original Fedflow: `from fedflow import Task`, load(self),
train(self, device) -> dict, and constructor arguments of its own (the plan's
`init` tables).
"""
import time

import numpy as np
import torch
from torch import nn

from fedflow import Task


def read_digits(path):
    """scikit-learn's digits.csv: 64 pixels 0..16 and a label per row."""
    raw = np.loadtxt(path, delimiter=",", dtype=np.float32, ndmin=2)
    if raw.shape[1] != 65:
        raise ValueError("%s: %d columns, expected 65 (64 pixels and a label)" % (path, raw.shape[1]))
    return (raw[:, :64] / 16.0).reshape(-1, 1, 8, 8), raw[:, 64].astype(np.int64)


def split(y, clients, alpha, seed, test_fraction):
    """(test indices, [train indices of each client]): a stratified test
    split, then a Dirichlet(alpha) split of the rest over the clients."""
    rng = np.random.default_rng(seed)
    test, train = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_test = int(round(test_fraction * len(idx)))
        test.extend(idx[:n_test])
        train.append(idx[n_test:])
    parts = [[] for _ in range(clients)]
    for idx in train:
        shares = rng.dirichlet([alpha] * clients)
        cuts = (np.cumsum(shares)[:-1] * len(idx)).round().astype(int)
        for k, part in enumerate(np.split(idx, cuts)):
            parts[k].extend(part)
    return np.sort(test), [np.sort(np.array(p, dtype=np.int64)) for p in parts]


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)    # 8x8 -> 8x8, pooled to 4x4
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)   # 4x4 -> 4x4, pooled to 2x2
        self.fc = nn.Linear(32 * 2 * 2, 10)

    def forward(self, x):
        x = torch.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = torch.max_pool2d(torch.relu(self.conv2(x)), 2)
        return self.fc(x.flatten(1))


def make_model(device, weights=None, seed=0):
    torch.manual_seed(seed)  # every client starts round 1 from the same model
    model = CNN()
    if weights is not None:
        model.load_state_dict({k: torch.as_tensor(np.array(v)) for k, v in weights.items()})
    return model.to(device)


def fit(model, x, y, device, epochs, lr, batch_size, seed):
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    g = torch.Generator().manual_seed(seed)
    x, y = torch.as_tensor(x), torch.as_tensor(y)
    model.train()
    loss = torch.tensor(0.0)
    for _ in range(epochs):
        for b in torch.randperm(len(y), generator=g).split(batch_size):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x[b].to(device)), y[b].to(device))
            loss.backward()
            opt.step()
    return float(loss)


def evaluate(model, x, y, device):
    model.eval()
    with torch.no_grad():
        out = model(torch.as_tensor(x).to(device))
        loss = nn.functional.cross_entropy(out, torch.as_tensor(y).to(device))
        acc = (out.argmax(1).cpu().numpy() == y).mean()
    return float(acc), float(loss)


class Digits(Task):
    """What clients and server share: the data, the split, the settings."""

    def __init__(self, task_id, data, clients=10, alpha=0.5, seed=42, test_fraction=0.2, epochs=5,
                 lr=0.05, batch_size=16, threads=1):
        super().__init__(task_id, estimate_memory="500MB")
        self.data, self.clients, self.alpha, self.seed = data, clients, alpha, seed
        self.test_fraction, self.epochs, self.lr, self.batch_size = test_fraction, epochs, lr, batch_size
        # Many tasks share few cores: one thread each trains faster in all.
        torch.set_num_threads(threads)

    def load(self):
        import os
        self.x, self.y = read_digits(os.path.join(self.plan_dir, self.data))
        self.test, self.parts = split(self.y, self.clients, self.alpha, self.seed, self.test_fraction)


class Client(Digits):
    def load(self):
        super().load()
        mine = self.parts[int(self.task_id)]
        self.x, self.y = self.x[mine], self.y[mine]

    def train(self, device):
        server = self.inputs.get("server", {}).get("0")
        model = make_model(device, server["weights"] if server else None)
        print("client %s, round %d: %d samples, from %s" % (
            self.task_id, self.round, len(self.y), "the server's model" if server else "the initial model"))
        loss = fit(model, self.x, self.y, device, self.epochs, self.lr, self.batch_size,
                   seed=self.seed + 1000 * self.round + int(self.task_id))
        # Tensors go back as they are: dtype and shape travel with them.
        return {"weights": dict(model.state_dict()), "samples": len(self.y), "loss": loss}


class Server(Digits):
    def __init__(self, task_id, rounds=20, central=True, **kw):
        super().__init__(task_id, **kw)
        self.rounds, self.central = rounds, central

    def train(self, device):
        results = [r for _, r in sorted(self.inputs["clients"].items())]
        total = sum(r["samples"] for r in results)
        # Arrays arrive as numpy arrays of the clients' dtype and shape.
        weights = {k: sum(r["weights"][k].astype(np.float64) * (r["samples"] / total) for r in results)
                   .astype(results[0]["weights"][k].dtype) for k in results[0]["weights"]}
        model = make_model(device, weights)
        acc, loss = evaluate(model, self.x[self.test], self.y[self.test], device)
        out = {"accuracy": acc, "loss": loss, "clients": len(results), "samples": total, "weights": weights}
        print("round %d: %d clients, accuracy %.4f, loss %.4f" % (self.round, len(results), acc, loss))
        if self.central and self.round == self.rounds:
            t0 = time.monotonic()
            union = np.concatenate(self.parts)
            central = make_model(device)
            fit(central, self.x[union], self.y[union], device, self.epochs * self.rounds, self.lr,
                self.batch_size, seed=self.seed)
            out["central_accuracy"], out["central_loss"] = evaluate(central, self.x[self.test], self.y[self.test], device)
            print("central: accuracy %.4f in %.1fs" % (out["central_accuracy"], time.monotonic() - t0))
        return out
