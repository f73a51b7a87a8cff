"""Suite ``convnet``: training throughput of the fraud ConvNet, Keras backends vs plain PyTorch.

Every contender trains the same network (the report's ConvNet, Adam 1e-4, binary cross-entropy,
batch 360, shuffled every epoch) on the same synthetic 170,883 × 29 array (the size of the real
data's 60% training split) in its own subprocess. Each one trains a warm-up epoch (compilation,
caches); then the timed epochs alternate between contenders, one at a time; we quote the median
samples/s of ``repeats`` epochs each.

Each Keras backend runs twice: like for like with the peer (loss only), and exactly as
``scripts/fraud.py`` compiles it, with the six shared metrics (accuracy, precision, recall, F1,
PR-AUC, ROC-AUC) updated every step. The ratios compare like for like.
"""

from __future__ import annotations

import importlib.util
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


def keras_epoch(rows: int, with_metrics: bool):
    """An ``epoch()`` closure: one ``model.fit`` epoch under the backend in KERAS_BACKEND."""
    import keras

    from project.models.convnet import build_convnet, compile_convnet

    x, y = make_data(rows)
    model = build_convnet()
    if with_metrics:
        compile_convnet(model)  # exactly as scripts/fraud.py
    else:
        model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="binary_crossentropy")
    return lambda: model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=True, verbose=0)


def pytorch_epoch(rows: int):
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

    return epoch


class Worker:
    """A contender in its own process; ``epoch()`` runs one timed epoch there.

    All workers start (and warm up) first; then the timed epochs alternate between them, one at a
    time, so a change in the machine's load hits every contender alike.
    """

    def __init__(self, kind: str, rows: int, threads: int = 0):
        backend, _, variant = kind.partition(":")
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", BENCH_THREADS=str(threads))
        if threads:
            env["OMP_NUM_THREADS"] = str(threads)
            if threads == 1:
                env["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        if backend != "pytorch":
            env["KERAS_BACKEND"] = backend
        self.kind = kind
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.convnet", kind, str(rows)], env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self._read()  # "ready" after the warm-up epoch

    def _read(self) -> str:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.kind} worker died:\n{self.proc.stderr.read()[-2000:]}")
        return line.strip()

    def epoch(self) -> float:
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        return float(self._read())

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def _limit_threads(backend: str, threads: int) -> None:
    """Hold the contender to ``threads`` compute threads (0: the library's default)."""
    if not threads:
        return
    if backend in ("pytorch", "torch"):
        import torch

        torch.set_num_threads(threads)
    elif backend == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)


def _serve(kind: str, rows: int) -> None:
    backend, _, variant = kind.partition(":")
    _limit_threads(backend, int(os.environ.get("BENCH_THREADS", "0")))
    epoch = pytorch_epoch(rows) if backend == "pytorch" else keras_epoch(rows, variant == "metrics")
    epoch()  # warm-up: compilation, caches
    print("ready", flush=True)
    for _ in sys.stdin:
        start = time.perf_counter()
        epoch()
        print(time.perf_counter() - start, flush=True)


def run(args) -> dict:
    rows = 20_000 if args.quick else ROWS
    backends = [b for b in KERAS_BACKENDS if importlib.util.find_spec(b) is not None]
    kinds = ["pytorch"] + [f"{b}:{v}" for b in backends for v in ("loss", "metrics")]
    threads = getattr(args, "threads", 0) or 0
    workers = [Worker(kind, rows, threads) for kind in kinds]
    times = {w.kind: [] for w in workers}
    try:
        for _ in range(args.repeats):
            for w in workers:
                times[w.kind].append(w.epoch())
    finally:
        for w in workers:
            w.close()

    results = []
    for kind, values in times.items():
        backend, _, variant = kind.partition(":")
        results.append({
            "contender": "plain PyTorch (peer), loss only" if backend == "pytorch"
            else f"Keras fit, {backend}, " + ("loss only" if variant == "loss" else "6 metrics"),
            "backend": backend,
            "metrics": variant == "metrics",
            "epoch_seconds": median(values),
            "samples_per_second": rows / median(values),
            "times": values,
        })
    peer = results[0]["samples_per_second"]
    for r in results:
        r["vs_pytorch"] = r["samples_per_second"] / peer

    def like_for_like(backend):
        return next(r for r in results if r["backend"] == backend and not r["metrics"])

    fastest = max((like_for_like(b) for b in backends), key=lambda r: r["samples_per_second"])
    ratios = {
        "threads": threads,
        "fastest_vs_pytorch": fastest["vs_pytorch"],
        "fastest_backend": fastest["backend"],
        "torch_vs_pytorch": like_for_like("torch")["vs_pytorch"],
        "torch_with_metrics_vs_pytorch": next(
            r["vs_pytorch"] for r in results if r["backend"] == "torch" and r["metrics"]
        ),
    }
    text = (
        f"ConvNet training, {rows:,} rows x {FEATURES}, batch {BATCH}; median of "
        f"{args.repeats} epochs per contender (after a warm-up epoch), contenders alternating; "
        f"threads: {threads or 'library default'}\n"
        + format_table(results, [
            ("contender", "contender", ""), ("epoch_seconds", "s/epoch", ".2f"),
            ("samples_per_second", "samples/s", ",.0f"), ("vs_pytorch", "vs PyTorch", ".2f"),
        ])
        + f"\nfastest backend ({fastest['backend']}, loss only) vs plain PyTorch: "
          f"{ratios['fastest_vs_pytorch']:.2f}x (target >= 2)"
        + f"\ntorch backend (loss only) vs plain PyTorch: {ratios['torch_vs_pytorch']:.2f}x"
          " (target >= 0.9)"
    )
    return {"suite": "convnet", "rows": results, "ratios": ratios, "text": text}


if __name__ == "__main__":
    _serve(sys.argv[1], int(sys.argv[2]))
