"""One command for an accelerator: what this machine does with each installed Keras backend.

    python scripts/device_check.py                  # every installed backend, < 8 minutes
    python scripts/device_check.py --quick          # small sizes (CPU, the tests): seconds
    python scripts/device_check.py --backends torch,jax --json runs/device.json

On whatever devices it finds (a CUDA GPU through torch.cuda / jax.devices("gpu") /
tf.config, else the CPU), each backend in its own process (KERAS_BACKEND is fixed per process),
it measures:

* the peak of a large matmul in the framework's own op, float32 and bfloat16 (8192^3 on a GPU,
  2048^3 on a CPU), the yardstick of the utilisation figures;
* the fraud ConvNet's training throughput (samples/s), trained as scripts/fraud.py trains it;
* RoBERTa-large dimensions (random weights, random token ids: no tokenizer, so no TensorFlow),
  LoRA (r=8, alpha 16, dropout 0.05 on q/k/v) and full fine-tuning, one train_on_batch at batch
  16 x 128 tokens in float32 and in mixed_bfloat16: step time, tokens/s and model FLOPs
  utilisation (``mfu``: project.models.flops's matmul FLOPs / step time / that precision's peak);
* the bfloat16 vs float32 logit gap (the same weights, inference);
* the largest batch that fits (full fine-tuning, float32, length 128): doubling, then bisecting,
  within a time budget (a result cut short reads "at least").

It needs only keras, keras-hub and torch and/or JAX (TensorFlow is optional; no network, no
tokenizer). The time budget is shared between the backends; whatever does not fit in it is
reported as skipped. It prints a table and writes JSON (--json).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from project.backend import installed_backends, parse_backends
from project.cli import Parser
from project.errors import InputError, run_cli
from project.io import check_output_file

STARTED = time.perf_counter()  # a worker's budget counts from here, imports included
BUDGET_SECONDS = 330  # shared by the backends; with the grace periods the run stays under 8 min
QUICK_BUDGET_SECONDS = 400  # a bound on a runaway, not a target: --quick is a smoke test
GRACE_SECONDS = 45  # a worker past its share by this much is stopped (its results so far kept)

# RoBERTa step settings (full check) and the tiny model of --quick
BATCH, LENGTH = 16, 128
QUICK_BATCH, QUICK_LENGTH = 4, 16
TINY = dict(vocabulary_size=1000, num_layers=2, num_heads=2, hidden_dim=64,
            intermediate_dim=128, max_sequence_length=64)
RANK, ALPHA, DROPOUT, LR = 8, 16, 0.05, 1e-4
PRECISIONS = ("float32", "mixed_bfloat16")
MODES = ("lora", "full")



def parse_args(argv=None):
    p = Parser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes (a CPU smoke test)")
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    p.add_argument("--backends", default=None,
                   help="comma-separated Keras backends (default: every installed one)")
    p.add_argument("--budget", type=float, default=None,
                   help=f"seconds for all backends' measurements (default {BUDGET_SECONDS}; "
                        f"--quick {QUICK_BUDGET_SECONDS})")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # internal: one backend
    p.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.budget is None:
        args.budget = QUICK_BUDGET_SECONDS if args.quick else BUDGET_SECONDS
    if not args.budget > 0:
        raise InputError(f"--budget {args.budget:g}: must be a positive number of seconds")
    if args.json is not None:
        check_output_file(args.json, "--json")
    if args.backends is None:
        args.backends = installed_backends()
        if not args.backends:
            raise InputError("no Keras backend installed (pip install torch, jax or tensorflow)")
    else:
        args.backends = parse_backends(args.backends)
    return args


# ---------------------------------------------------------------------------------------------
# The parent: one worker process per backend, then the table and the JSON.


def run_backend(backend: str, quick: bool, budget: float) -> dict:
    """Run one backend's worker; its results (partial if it overran or crashed)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", backend,
               "--out", str(out), "--budget", str(budget)] + (["--quick"] if quick else [])
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
        # JAX would preallocate 75% of a GPU: allow more, for the largest-batch search
        env.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.95")
        error = None
        try:  # the worker's progress lines go straight to stdout; its stderr is kept for errors
            done = subprocess.run(cmd, env=env, stderr=subprocess.PIPE, text=True,
                                  timeout=budget + GRACE_SECONDS)
            if done.returncode != 0:
                lines = [x for x in done.stderr.strip().splitlines() if x.strip()]
                error = f"worker exit code {done.returncode}: " + (lines[-1] if lines else "")
        except subprocess.TimeoutExpired:
            error = f"stopped after {budget + GRACE_SECONDS:.0f} s (time budget)"
        result = json.loads(out.read_text()) if out.is_file() else {"backend": backend}
    if error:
        result["error"] = error
    return result


def _fmt(value, spec: str, missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def table(results: dict) -> str:
    """A plain-text table of every backend's measurements."""
    rows = []
    for backend, r in results.items():
        device = r.get("device", {}).get("name", "?")
        m = r.get("matmul")
        if m and (m.get("float32_tflops") or m.get("bfloat16_tflops")):
            rows.append((backend, device, f"matmul {m['n']}^3 peak",
                         f"{_fmt(m.get('float32_tflops'), '.3g')} TFLOP/s fp32, "
                         f"{_fmt(m.get('bfloat16_tflops'), '.3g')} bf16"))
        c = r.get("convnet")
        if c:
            rows.append((backend, device, f"ConvNet training ({c['rows']:,} rows)",
                         f"{c['samples_per_second']:,.0f} samples/s"))
        for run in r.get("roberta", {}).get("runs", []):
            name = f"{r['roberta']['model']} {run['mode']} {run['precision']} " \
                   f"({r['roberta']['batch']}x{r['roberta']['length']})"
            memory = run.get("peak_device_mb")
            rows.append((backend, device, name,
                         f"{run['step_seconds']:.3f} s/step, {run['tokens_per_second']:,.0f} "
                         f"tokens/s, MFU {_fmt(run.get('mfu'), '.1%')}"
                         + ("" if memory is None else f", device peak {memory:,.0f} MiB")))
        g = r.get("logit_gap")
        if g:
            rows.append((backend, device, "bf16 vs fp32 logits",
                         f"max |diff| {g['max_abs']:.3g} (logits up to {g['scale']:.3g}), "
                         f"argmax agrees {g['argmax_agreement']:.0%}"))
        for s in r.get("largest_batch", []):
            found = s["largest_fitting"]
            text = ("none fits" if not found else
                    ("" if s["complete"] else "at least ") + f"{found}")
            if s.get("first_failing"):
                text += f" ({s['first_failing']} does not fit)"
            elif s.get("capped"):
                text += f" (search capped at {s['cap']})"
            rows.append((backend, device, f"largest batch, {s['mode']} {s['precision']}", text))
        for item in r.get("skipped", []):
            rows.append((backend, device, item, "skipped: time budget"))
        if r.get("error"):
            rows.append((backend, device, "error", r["error"]))
    headers = ("backend", "device", "measurement", "result")
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in rows]
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker(args)
    from project.io import write_json
    from project.machine import machine_line

    machine = machine_line()
    print(machine, flush=True)
    share = args.budget / len(args.backends)
    results = {}
    for backend in args.backends:
        print(f"  {backend}: measuring (up to {share + GRACE_SECONDS:.0f} s)", file=sys.stderr,
              flush=True)
        results[backend] = run_backend(backend, args.quick, share)
    print(table(results))
    if args.json:
        write_json(args.json, {"machine": machine, "quick": args.quick, "budget_seconds":
                               args.budget, "backends": results})
        print(f"wrote {args.json}")
    return 0 if any("error" not in r for r in results.values()) else 1


# ---------------------------------------------------------------------------------------------
# The worker: one backend, in its own process.


class Deadline:
    """Seconds left of a budget, and a rough cost estimate per kind of measurement."""

    def __init__(self, seconds: float, started: float | None = None):
        self.end = (time.perf_counter() if started is None else started) + seconds
        self.cost: dict[str, float] = {}

    def left(self) -> float:
        return self.end - time.perf_counter()

    def allows(self, kind: str) -> bool:
        """Whether a measurement of ``kind`` should start: the last one's cost still fits."""
        return self.left() > self.cost.get(kind, 0.0)


def _is_out_of_memory(err: BaseException) -> bool:
    text = f"{type(err).__name__}: {err}".lower()
    return any(s in text for s in ("out of memory", "resource_exhausted", "resourceexhausted",
                                   "outofmemory", "failed to allocate", "cannot allocate"))


def _device(backend: str) -> dict:
    """The accelerator the backend computes on (``platform`` gpu or cpu), its name and count."""
    from project.machine import cpu_model

    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            return {"platform": "gpu", "name": torch.cuda.get_device_name(0),
                    "count": torch.cuda.device_count()}
    elif backend == "jax":
        import jax

        gpus = [d for d in jax.devices() if d.platform == "gpu"]
        if gpus:
            return {"platform": "gpu", "name": gpus[0].device_kind, "count": len(gpus)}
    elif backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            details = tf.config.experimental.get_device_details(gpus[0])
            return {"platform": "gpu", "name": details.get("device_name", "GPU"),
                    "count": len(gpus)}
    return {"platform": "cpu", "name": cpu_model(), "count": 1}


def _sync(backend: str, value) -> None:
    """Wait until ``value`` (a framework tensor) is computed."""
    if backend == "jax":
        value.block_until_ready()
    elif backend == "torch":
        import torch

        if value.is_cuda:
            torch.cuda.synchronize()
    else:
        value[0, 0].numpy()  # one element: the whole result would be a large copy


def matmul_peak(backend: str, n: int, dtype: str, seconds: float = 0.3) -> float:
    """Best FLOP/s of an n x n x n matmul in the framework's own op (``dtype`` float32/bfloat16)."""
    import numpy as np

    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    if backend == "torch":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
        t = torch.from_numpy(a).to(device=device, dtype=getattr(torch, dtype))
        mm = torch.matmul
    elif backend == "jax":
        import jax
        import jax.numpy as jnp

        t = jnp.asarray(a, dtype=dtype)
        mm = jax.jit(jnp.matmul)
    else:
        import tensorflow as tf

        t = tf.cast(tf.constant(a), dtype)
        mm = tf.linalg.matmul
    _sync(backend, mm(t, t))  # compile, allocate
    start = time.perf_counter()
    _sync(backend, mm(t, t))
    calls = max(1, int(seconds / max(time.perf_counter() - start, 1e-6)))
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(calls):
            c = mm(t, t)
        _sync(backend, c)
        best = min(best, (time.perf_counter() - start) / calls)
    return 2.0 * n**3 / best


def _free_memory(backend: str) -> None:
    import gc

    import keras

    keras.backend.clear_session()
    gc.collect()
    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _reset_device_peak(backend: str) -> None:
    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()


def _peak_device_mb(backend: str) -> float | None:
    """The accelerator's peak allocation: torch's since the last reset, JAX's since the process
    started (None on a CPU or where unknown)."""
    try:
        if backend == "torch":
            import torch

            if torch.cuda.is_available():
                return torch.cuda.max_memory_allocated() / 2**20
        elif backend == "jax":
            import jax

            device = jax.devices()[0]
            if device.platform == "gpu":
                return device.memory_stats()["peak_bytes_in_use"] / 2**20
    except Exception:  # memory statistics are optional everywhere
        return None
    return None


def convnet_throughput(rows: int, epochs: int) -> dict:
    """The fraud ConvNet trained as scripts/fraud.py trains it, on synthetic rows: samples/s."""
    import numpy as np

    from project.models.convnet import build_convnet, compile_convnet
    from project.settings import FRAUD_BATCH_SIZE as BATCH_SIZE
    from project.training.loop import fit_epoch

    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, 29), dtype=np.float32)
    y = (rng.random((rows, 1)) < 0.2).astype(np.float32)
    model = compile_convnet(build_convnet())
    fit_epoch(model, x, y, batch_size=BATCH_SIZE, epoch=0, seed=0)  # warm-up, compilation
    seconds = []
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        fit_epoch(model, x, y, batch_size=BATCH_SIZE, epoch=epoch, seed=0)
        seconds.append(time.perf_counter() - start)
    seconds.sort()
    return {"rows": rows, "batch": BATCH_SIZE, "epoch_seconds": seconds,
            "samples_per_second": rows / seconds[len(seconds) // 2]}


def _classifier(dims: dict, mode: str, precision: str):
    """A compiled RoBERTa classifier with random weights (LoRA or full) under ``precision``."""
    import keras

    from project.models.lora import enable_lora
    from project.models.roberta import build_classifier

    keras.config.set_dtype_policy(precision)
    try:
        keras.utils.set_random_seed(0)
        model = build_classifier(**dims, vocabulary=None)
        if mode == "lora":
            enable_lora(model, RANK, ALPHA, DROPOUT, seed=0)
    finally:
        keras.config.set_dtype_policy("float32")
    model.compile(
        optimizer=keras.optimizers.AdamW(LR, epsilon=1e-8),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def _batch(dims: dict, batch: int, length: int, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    ids = rng.integers(5, dims["vocabulary_size"], (batch, length)).astype("int32")
    x = {"token_ids": ids, "padding_mask": np.ones_like(ids, dtype=bool)}
    return x, rng.integers(0, 2, batch).astype("int32")


def roberta_step(backend, dims, mode, precision, batch, length, warmup, steps, peak) -> dict:
    """Median train_on_batch time of one configuration, tokens/s and MFU."""
    from project.models.flops import train_step_flops
    from project.models.lora import count_params

    _reset_device_peak(backend)
    model = _classifier(dims, mode, precision)
    x, y = _batch(dims, batch, length)
    for _ in range(warmup):
        model.train_on_batch(x, y)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        model.train_on_batch(x, y)  # returns NumPy logs: the step has finished
        times.append(time.perf_counter() - start)
    times.sort()
    seconds = times[len(times) // 2]
    flops = train_step_flops(dims, batch, length, lora=mode == "lora", rank=RANK)
    result = {"mode": mode, "precision": precision, "step_seconds": seconds, "times": times,
              "tokens_per_second": batch * length / seconds, "model_flops": flops,
              "mfu": flops / seconds / peak if peak else None,
              "trainable": count_params(model)[0], "peak_device_mb": _peak_device_mb(backend)}
    del model
    _free_memory(backend)
    return result


def logit_gap(backend, dims, batch, length) -> dict:
    """Logits of the same weights in float32 and mixed_bfloat16 (inference): the gap."""
    import numpy as np

    x, _ = _batch(dims, batch, length, seed=1)
    full = _classifier(dims, "full", "float32")
    reference = np.asarray(full.predict_on_batch(x), dtype=np.float64)
    weights = full.get_weights()
    del full
    _free_memory(backend)
    half = _classifier(dims, "full", "mixed_bfloat16")
    half.set_weights(weights)
    logits = np.asarray(half.predict_on_batch(x), dtype=np.float64)
    del half, weights
    _free_memory(backend)
    diff = np.abs(logits - reference)
    return {"max_abs": float(diff.max()), "mean_abs": float(diff.mean()),
            "scale": float(np.abs(reference).max()),
            "argmax_agreement": float(np.mean(logits.argmax(1) == reference.argmax(1)))}


def search_largest(fits, start: int, cap: int, budget: float) -> dict:
    """The largest ``batch`` for which ``fits(batch)`` holds: double from ``start``, then bisect
    until the answer is within 1/16 of the first batch that fails.

    Stops at ``cap`` (``capped``) or when ``budget`` seconds are spent (``complete`` False: the
    answer is a lower bound). Assumes that whatever fits, a smaller batch fits too.

    Example:

    >>> r = search_largest(lambda b: b <= 100, start=16, cap=4096, budget=60)
    >>> r["largest_fitting"], r["first_failing"], r["complete"]
    (100, 104, True)
    """
    began = time.perf_counter()
    tried = []

    def attempt(batch: int) -> bool:
        ok = bool(fits(batch))
        tried.append([batch, ok])
        return ok

    def out_of_time() -> bool:
        return time.perf_counter() - began > budget

    good, bad, complete, capped = 0, None, True, False
    batch = start
    while True:
        if out_of_time():
            complete = False
            break
        if batch > cap:
            capped = True
            break
        if not attempt(batch):
            bad = batch
            break
        good, batch = batch, batch * 2
    while complete and bad is not None and bad - good > max(1, good // 16):
        if out_of_time():
            complete = False
            break
        middle = (good + bad) // 2
        if attempt(middle):
            good = middle
        else:
            bad = middle
    return {"largest_fitting": good, "first_failing": bad, "complete": complete,
            "capped": capped, "cap": cap, "tried": tried,
            "seconds": time.perf_counter() - began}


def largest_batch(backend, dims, mode, precision, length, start, cap, budget) -> dict:
    """:func:`search_largest` over one training step of a RoBERTa classifier; running out of
    accelerator (or host) memory is what "does not fit" means."""
    models = [_classifier(dims, mode, precision)]  # a list, so that it can be emptied

    def fits(batch: int) -> bool:
        x, y = _batch(dims, batch, length)
        try:
            models[0].train_on_batch(x, y)
            return True
        except Exception as err:  # out of memory shows up as many exception types
            if not _is_out_of_memory(err):
                raise
            _free_memory(backend)
            return False

    result = search_largest(fits, start, cap, budget)
    models.clear()
    _free_memory(backend)
    return {"mode": mode, "precision": precision, "length": length, **result}


def worker(args) -> int:
    """Measure one backend (``--worker``); write the results after each item."""
    from project.backend import select_backend

    select_backend(["--backend", args.worker])  # before keras is imported
    import keras

    from project.io import write_json
    from project.machine import library_versions
    from project.models.roberta import ROBERTA_LARGE

    backend = keras.backend.backend()
    deadline = Deadline(args.budget, started=STARTED)
    device = _device(backend)
    gpu = device["platform"] == "gpu"
    quick = args.quick
    dims = TINY if quick else ROBERTA_LARGE
    batch, length = (QUICK_BATCH, QUICK_LENGTH) if quick else (BATCH, LENGTH)
    result = {"backend": backend, "device": device, "versions": library_versions(),
              "quick": quick, "skipped": [], "item_seconds": {}}

    def save():
        result["seconds"] = args.budget - deadline.left()
        if args.out:
            write_json(args.out, result)

    def step(kind: str, label: str, fn):
        """Run ``fn`` if the budget allows; record its cost; save after it."""
        if not deadline.allows(kind):
            result["skipped"].append(label)
            print(f"  {backend}: {label}: skipped (time budget)", flush=True)
            save()
            return None
        start = time.perf_counter()
        value = fn()
        spent = time.perf_counter() - start
        deadline.cost[kind] = max(deadline.cost.get(kind, 0.0), spent)
        result["item_seconds"][label] = spent
        print(f"  {backend}: {label}: {spent:.0f} s", flush=True)
        save()
        return value

    n = 256 if quick else (8192 if gpu else 2048)
    peaks = {}
    for dtype in ("float32", "bfloat16"):
        peaks[dtype] = step("matmul", f"matmul peak {dtype}",
                            lambda dtype=dtype: matmul_peak(backend, n, dtype))
        result["matmul"] = {"n": n, "float32_tflops": _tera(peaks.get("float32")),
                            "bfloat16_tflops": _tera(peaks.get("bfloat16"))}
    rows = 720 if quick else 170_883
    result["convnet"] = step("convnet", "ConvNet training",
                             lambda: convnet_throughput(rows, 1 if quick else 2))
    result["roberta"] = {"model": "tiny RoBERTa" if quick else "RoBERTa-large", "batch": batch,
                         "length": length, "dims": dims, "runs": []}
    for precision in PRECISIONS:
        peak = peaks.get("bfloat16" if precision == "mixed_bfloat16" else "float32")
        for mode in MODES:
            run = step("roberta", f"RoBERTa {mode} {precision}", lambda m=mode, p=precision, k=peak:
                       roberta_step(backend, dims, m, p, batch, length,
                                    warmup=1 if quick else 2, steps=2 if quick else 5, peak=k))
            if run:
                result["roberta"]["runs"].append(run)
                save()
    result["logit_gap"] = step("gap", "bf16 vs fp32 logit gap",
                               lambda: logit_gap(backend, dims, batch, length))
    result["largest_batch"] = []
    # --quick: a single trial at the cap (each new batch shape is a new compilation)
    cap = 4 if quick else (4096 if gpu else 32)
    search = step("search", "largest batch (full float32)", lambda: largest_batch(
        backend, dims, "full", "float32", length, start=cap if quick else 16, cap=cap,
        budget=max(deadline.left() - 15, 0.0)))
    if search:
        result["largest_batch"].append(search)
    save()
    return 0


def _tera(flops):
    return None if flops is None else flops / 1e12


def cli():
    run_cli(main)


if __name__ == "__main__":
    cli()
