"""Suite ``convnet``: training throughput of the fraud ConvNet, Keras backends vs plain PyTorch.

Every contender trains the same network (the report's ConvNet, Adam 1e-4, binary cross-entropy,
batch 360, shuffled every epoch) on the same synthetic 170,883 × 29 array (the size of the real
data's 60% training split) in its own subprocess, one after another in one run. Each one trains a
warm-up epoch (compilation, caches), then ``repeats`` timed epochs; we quote the median samples/s.

The Keras runs are ``model.fit`` exactly as ``scripts/fraud.py`` calls it, with the shared metrics
(accuracy, precision, recall, F1, PR-AUC, ROC-AUC) computed every step; the plain PyTorch peer
computes the loss only, which favours the peer.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time

import numpy as np

from benchmarks._timing import format_table, median

ROWS = 170_883
FEATURES = 29
BATCH = 360
KERAS_BACKENDS = ("tensorflow", "torch", "jax")


def make_data(rows: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, FEATURES), dtype=np.float32)
    y = (rng.random((rows, 1)) < 0.2).astype(np.float32)
    return x, y


def keras_worker(rows: int, repeats: int) -> list[float]:
    """Seconds per epoch of ``model.fit`` under the backend in KERAS_BACKEND."""
    from project.models.convnet import build_convnet, compile_convnet

    x, y = make_data(rows)
    model = compile_convnet(build_convnet())
    model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=True, verbose=0)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=True, verbose=0)
        times.append(time.perf_counter() - start)
    return times


def pytorch_worker(rows: int, repeats: int) -> list[float]:
    """The peer: the same network and training loop written in plain PyTorch."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv1d(1, 32, 2), nn.ReLU(), nn.BatchNorm1d(32), nn.MaxPool1d(2), nn.Dropout(0.2),
        nn.Conv1d(32, 64, 2), nn.ReLU(), nn.BatchNorm1d(64), nn.MaxPool1d(2), nn.Dropout(0.5),
        nn.Flatten(), nn.Linear(64 * 6, 64), nn.ReLU(), nn.Dropout(0.2),
        nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1), nn.Sigmoid(),
    )
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
    loss_fn = nn.BCELoss()
    x, y = make_data(rows)
    x, y = torch.from_numpy(x).unsqueeze(1), torch.from_numpy(y)

    def epoch():
        net.train()
        order = torch.randperm(rows)
        for i in range(0, rows, BATCH):
            idx = order[i:i + BATCH]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(net(x[idx]), y[idx])
            loss.backward()
            optimizer.step()

    epoch()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        epoch()
        times.append(time.perf_counter() - start)
    return times


def _spawn(kind: str, rows: int, repeats: int) -> list[float]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    if kind != "pytorch":
        env["KERAS_BACKEND"] = kind
    cmd = [sys.executable, "-m", "benchmarks.convnet", kind, str(rows), str(repeats)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{kind} worker failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(args) -> dict:
    rows = 20_000 if args.quick else ROWS
    kinds = ["pytorch"] + [b for b in KERAS_BACKENDS if importlib.util.find_spec(b) is not None]
    results = []
    for kind in kinds:
        times = _spawn(kind, rows, args.repeats)
        results.append({
            "contender": "plain PyTorch (peer)" if kind == "pytorch" else f"Keras fit, {kind}",
            "backend": kind,
            "epoch_seconds": median(times),
            "samples_per_second": rows / median(times),
            "times": times,
        })
    peer = results[0]["samples_per_second"]
    for r in results:
        r["vs_pytorch"] = r["samples_per_second"] / peer
    keras_rows = [r for r in results if r["backend"] != "pytorch"]
    fastest = max(keras_rows, key=lambda r: r["samples_per_second"])
    ratios = {
        "fastest_vs_pytorch": fastest["vs_pytorch"],
        "fastest_backend": fastest["backend"],
        "torch_vs_pytorch": next(r["vs_pytorch"] for r in results if r["backend"] == "torch"),
    }
    text = (
        f"ConvNet training, {rows:,} rows x {FEATURES}, batch {BATCH}; median of "
        f"{args.repeats} epochs after a warm-up epoch\n"
        + format_table(results, [
            ("contender", "contender", ""), ("epoch_seconds", "s/epoch", ".2f"),
            ("samples_per_second", "samples/s", ",.0f"), ("vs_pytorch", "vs PyTorch", ".2f"),
        ])
        + f"\nfastest ({fastest['backend']}) vs plain PyTorch: {ratios['fastest_vs_pytorch']:.2f}x"
          " (target >= 2)"
        + f"\ntorch backend vs plain PyTorch: {ratios['torch_vs_pytorch']:.2f}x (target >= 0.9)"
    )
    return {"suite": "convnet", "rows": results, "ratios": ratios, "text": text}


if __name__ == "__main__":
    kind, n, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    worker = pytorch_worker if kind == "pytorch" else keras_worker
    print(json.dumps(worker(n, reps)))
