"""Suite ``convnet``: training throughput of the fraud ConvNet, Keras backends vs plain PyTorch.

Every contender trains the report's ConvNet (Adam 1e-4, binary cross-entropy, batch 360) on the
same synthetic 170,883 x 29 array (the real data's 60% training split), one epoch per timed call,
in its own process (:mod:`benchmarks.harness`: a warm-up epoch, then epochs in turns; medians):

* Keras, per backend, exactly as ``scripts/fraud.py`` trains it (``compile_convnet``,
  :func:`project.training.loop.fit_epoch`: rows pre-shuffled by (seed, epoch));
* the peer: the same network and loop in plain PyTorch (same permutation per epoch, Keras's
  BatchNormalization epsilon and momentum, loss and accuracy tracked every step as Keras logs them);
* for reference, on torch, Keras's own training step (without :mod:`project.training.torch_step`);
* prediction over the validation split's 56,962 rows (batch 4096, as the per-epoch evaluation
  does), per backend and in plain PyTorch.

``--quick`` (a smoke test) runs only the peer and the Keras backends' training on 2,000 rows.
"""

import numpy as np

from benchmarks.harness import Contender, Prepared, Target, check_targets, median_cpu, median_time
from project.settings import FRAUD_BATCH_SIZE as BATCH  # exactly as scripts/fraud.py trains

ROWS, VALIDATION_ROWS, QUICK_ROWS = 170_883, 56_962, 2_000
FEATURES, PREDICT_BATCH, SEED = 29, 4096, 0

TARGETS = (
    Target("torch backend vs plain PyTorch, samples/s (as fraud.py trains)",
           "torch_vs_pytorch", ">=", 0.9, aim=1.0),
    Target("fastest backend vs plain PyTorch, samples/s", "fastest_vs_pytorch", ">=", 2.0, aim=3.0),
    # the same on CPU time (with --threads 1 only): steadier than wall-clock on a shared machine
    Target("torch backend vs plain PyTorch, samples per CPU second (--threads 1)",
           "torch_vs_pytorch_cpu", ">=", 0.9, aim=1.0),
    Target("fastest backend vs plain PyTorch, samples per CPU second (--threads 1)",
           "fastest_vs_pytorch_cpu", ">=", 2.0, aim=3.0),
)


def make_data(rows: int, seed: int = SEED):
    """Synthetic standard-normal features and 20% positive labels, float32, shape (rows, 1)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, FEATURES), dtype=np.float32)
    y = (rng.random((rows, 1)) < 0.2).astype(np.float32)
    return x, y


def prepare_keras(rows: int, step: str = "ours") -> Prepared:
    """One ``fit_epoch`` per call (``step="keras"``: Keras's own step, not our torch step)."""
    import contextlib

    import keras

    from project.models.convnet import build_convnet, compile_convnet
    from project.training import loop, torch_step
    x, y = make_data(rows)
    keras.utils.set_random_seed(SEED)
    model = compile_convnet(build_convnet())  # exactly as scripts/fraud.py
    if step == "keras":  # this process only
        torch_step.installed = lambda *args: contextlib.nullcontext()
        torch_step.callbacks = list
    epoch = iter(range(10**9))
    return Prepared(
        lambda: loop.fit_epoch(model, x, y, batch_size=BATCH, epoch=next(epoch), seed=SEED),
        {"params": int(model.count_params())})


def prepare_keras_predict(rows: int) -> Prepared:
    """One ``model.predict`` over ``rows`` validation rows per call."""
    from project.models.convnet import build_convnet, compile_convnet
    x, _ = make_data(rows, seed=1)
    model = compile_convnet(build_convnet())
    return Prepared(lambda: model.predict(x, batch_size=PREDICT_BATCH, verbose=0), {})


def _pytorch_net():
    import torch
    from torch import nn
    torch.manual_seed(SEED)
    # Keras's BatchNormalization: epsilon 1e-3, moving average momentum 0.99 (torch: 0.01).
    return nn.Sequential(
        nn.Conv1d(1, 32, 2), nn.ReLU(), nn.BatchNorm1d(32, eps=1e-3, momentum=0.01),
        nn.MaxPool1d(2), nn.Dropout(0.2),
        nn.Conv1d(32, 64, 2), nn.ReLU(), nn.BatchNorm1d(64, eps=1e-3, momentum=0.01),
        nn.MaxPool1d(2), nn.Dropout(0.5),
        nn.Flatten(), nn.Linear(64 * 6, 64), nn.ReLU(), nn.Dropout(0.2),
        nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1), nn.Sigmoid())


def prepare_pytorch(rows: int) -> Prepared:
    """The peer: one epoch of the same network and loop written in plain PyTorch per call."""
    import torch
    from torch import nn
    net, loss_fn = _pytorch_net(), nn.BCELoss()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
    x, y = make_data(rows)
    x, y = torch.from_numpy(x).unsqueeze(1), torch.from_numpy(y)
    epoch = iter(range(10**9))

    def step():
        net.train()
        # the permutation of project.training.loop.epoch_order (not imported: no Keras here)
        order = torch.from_numpy(np.random.default_rng([SEED, next(epoch)]).permutation(rows))
        xe, ye = x[order], y[order]
        loss_sum, correct = torch.zeros(()), torch.zeros(())
        for i in range(0, rows, BATCH):
            xb, yb = xe[i:i + BATCH], ye[i:i + BATCH]
            optimizer.zero_grad(set_to_none=True)
            out = net(xb)
            loss = loss_fn(out, yb)
            loss.backward()
            optimizer.step()
            with torch.no_grad():  # the running loss and accuracy Keras logs every step
                loss_sum += loss * len(xb)
                correct += ((out > 0.5) == (yb > 0.5)).sum()
        return float(loss_sum) / rows, float(correct) / rows

    return Prepared(step, {"params": sum(p.numel() for p in net.parameters())})


def prepare_pytorch_predict(rows: int) -> Prepared:
    """Plain PyTorch prediction over ``rows`` rows, batch 4096, per call."""
    import torch
    net = _pytorch_net().eval()
    x = torch.from_numpy(make_data(rows, seed=1)[0]).unsqueeze(1)

    def step():
        with torch.no_grad():
            return torch.cat([net(x[i:i + PREDICT_BATCH])
                              for i in range(0, rows, PREDICT_BATCH)]).numpy()

    return Prepared(step, {})


def contenders(backends, quick: bool) -> list[Contender]:
    rows = QUICK_ROWS if quick else ROWS
    val = VALIDATION_ROWS
    here = "benchmarks.convnet:"
    out = [Contender("pytorch", "plain PyTorch (peer)", here + "prepare_pytorch", {"rows": rows})]
    for b in backends:
        out.append(Contender(b, f"Keras {b}, as fraud.py trains", here + "prepare_keras",
                             {"rows": rows}, backend=b))
    if quick:  # a smoke test: two processes
        return out
    if "torch" in backends:
        out.append(Contender("torch-keras-step", "Keras torch, Keras's own step (before)",
                             here + "prepare_keras", {"rows": rows, "step": "keras"},
                             backend="torch"))
    out.append(Contender("pytorch-predict", "plain PyTorch predict", here + "prepare_pytorch_predict",
                         {"rows": val}))
    for b in backends:
        out.append(Contender(f"{b}-predict", f"Keras {b} predict", here + "prepare_keras_predict",
                             {"rows": val}, backend=b))
    return out


def run(args) -> dict:
    from benchmarks.harness import format_table, measure
    quick = bool(args.quick)
    rows = QUICK_ROWS if quick else ROWS
    val = VALIDATION_ROWS
    backends = list(args.backends)
    threads = int(getattr(args, "threads", 0) or 0)
    results = measure([contenders(backends, quick)], repeats=args.repeats, warmup=1,
                      threads=threads)
    table = []
    for key, r in results.items():
        predict = key.endswith("predict")
        seconds, cpu = median_time(r), median_cpu(r)
        n = val if predict else rows
        table.append({
            "key": key, "contender": r["label"], "backend": r["backend"] or "pytorch",
            "task": "predict" if predict else "train", "rows": n, "seconds": seconds,
            "samples_per_second": n / seconds, "cpu_seconds": cpu,
            "samples_per_cpu_second": n / cpu, "times": r["times"], "cpu_times": r["cpu_times"]})
    peer = {t["task"]: t for t in table if t["key"].startswith("pytorch")}
    for t in table:
        t["vs_pytorch"] = t["samples_per_second"] / peer[t["task"]]["samples_per_second"]
        t["vs_pytorch_cpu"] = (t["samples_per_cpu_second"]
                               / peer[t["task"]]["samples_per_cpu_second"])

    by_key = {t["key"]: t for t in table}
    ratios: dict = {f"{b}_vs_pytorch": by_key[b]["vs_pytorch"] for b in backends}
    ratios.update({f"{b}_predict_vs_pytorch": by_key[f"{b}-predict"]["vs_pytorch"]
                   for b in backends if f"{b}-predict" in by_key})
    fastest = max(backends, key=lambda b: by_key[b]["samples_per_second"])
    ratios["fastest_backend"] = fastest
    ratios["fastest_vs_pytorch"] = by_key[fastest]["vs_pytorch"]
    if "torch-keras-step" in by_key:
        ratios["torch_keras_step_vs_pytorch"] = by_key["torch-keras-step"]["vs_pytorch"]
    if threads == 1:  # CPU time measures the work only when each contender has one thread
        for b in backends:
            ratios[f"{b}_vs_pytorch_cpu"] = by_key[b]["vs_pytorch_cpu"]
        fastest_cpu = max(backends, key=lambda b: by_key[b]["samples_per_cpu_second"])
        ratios["fastest_backend_cpu"] = fastest_cpu
        ratios["fastest_vs_pytorch_cpu"] = by_key[fastest_cpu]["vs_pytorch_cpu"]
        if step := by_key.get("torch-keras-step"):
            ratios["torch_keras_step_vs_pytorch_cpu"] = step["vs_pytorch_cpu"]
    ratios["threads"] = threads

    text = (
        f"ConvNet, {rows:,} training rows x {FEATURES} (batch {BATCH}; one epoch per call)"
        + ("" if quick else f" and {val:,} validation rows predicted (batch {PREDICT_BATCH})")
        + f"; median of {args.repeats} calls per contender after a warm-up call, contenders "
        f"taking turns, each in its own process; threads: {threads or 'library default'} (CPU: "
        f"the process's CPU seconds, the work of a call when it has one thread)\n"
        + format_table(table, [
            ("contender", "contender", ""), ("task", "task", ""), ("seconds", "s/call", ".2f"),
            ("samples_per_second", "samples/s", ",.0f"), ("vs_pytorch", "vs PyTorch", ".2f"),
            ("cpu_seconds", "CPU s/call", ".2f"),
            ("samples_per_cpu_second", "samples/CPU-s", ",.0f"),
            ("vs_pytorch_cpu", "vs PyTorch (CPU)", ".2f")]))
    return {"suite": "convnet", "rows": table, "ratios": ratios, "text": text,
            "targets": check_targets(TARGETS, ratios)}
