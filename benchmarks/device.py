"""scripts/device_check.py's measurements of one Keras backend, in a process of its own
(:func:`run_backend` starts ``python -m benchmarks.device``), on the device it finds (a CUDA GPU,
else the CPU): a large matmul's peak in float32 and bfloat16 (8192^3 on a GPU, 2048^3 on a CPU),
the yardstick of the utilisation figures; the fraud ConvNet's training samples/s; RoBERTa-large
dimensions (random weights and token ids) trained with LoRA, full fine-tuning, LoRA with
rematerialised layers and LoRA on an int8 base (benchmarks.lora) at 16 x 128 tokens in float32 and
mixed_bfloat16: step time, tokens/s, ``mfu`` (project.models.flops's FLOPs / step time / that
precision's matmul peak; int8 matmuls counted as float), device memory peak; the bfloat16 vs
float32 logit gap; and the largest batch that fits (full, float32): :func:`search_largest`.

A measurement whose last cost no longer fits in the budget is skipped; the results are written
after each one (a worker stopped past its budget still reports what it measured).

Example (the search, on a rule instead of a model):

>>> r = search_largest(lambda b: b <= 100, start=16, cap=4096, budget=60)
>>> r["largest_fitting"], r["first_failing"], r["complete"]
(100, 104, True)
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import convnet
from benchmarks.harness import fmt, format_table
from benchmarks.lora import QUICK as TINY
from benchmarks.lora import RANK, keras_classifier, make_batch, prepare_keras, prepare_matmul

STARTED = time.perf_counter()  # a worker's budget counts from here, imports included
ROOT = Path(__file__).resolve().parents[1]
GRACE_SECONDS = 45  # a worker past its share by this much is stopped (its results so far kept)
BATCH, LENGTH, QUICK_BATCH, QUICK_LENGTH = 16, 128, 4, 16  # the RoBERTa step (--quick: TINY dims)
PRECISIONS = ("float32", "mixed_bfloat16")
MODES = ("lora", "full", "lora-remat", "lora-int8")  # kinds of benchmarks.lora.KINDS
OUT_OF_MEMORY = ("out of memory", "resource_exhausted", "resourceexhausted", "outofmemory",
                 "failed to allocate", "cannot allocate")  # in an error's type or message


def run_backend(backend: str, quick: bool, budget: float) -> dict:
    """Run one backend's worker process; its results (partial if it overran or crashed)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", "benchmarks.device", backend, str(out), str(budget),
               *(["--quick"] if quick else [])]
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        # JAX would preallocate 75% of a GPU: allow more, for the largest-batch search
        env.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.95")
        try:  # the worker's progress lines go straight to stdout; its stderr is kept for errors
            done = subprocess.run(cmd, env=env, stderr=subprocess.PIPE, text=True,
                                  timeout=budget + GRACE_SECONDS)
            last = ([x for x in done.stderr.splitlines() if x.strip()] or [""])[-1]
            error = done.returncode and f"worker exit code {done.returncode}: {last}"
        except subprocess.TimeoutExpired:
            error = f"stopped after {budget + GRACE_SECONDS:.0f} s (time budget)"
        result = json.loads(out.read_text()) if out.is_file() else {"backend": backend}
    if error:
        result["error"] = error
    return result


def _items(r: dict):
    """One backend's measurements as (measurement, result) pairs."""
    m = r.get("matmul")
    if m and (m.get("float32_tflops") or m.get("bfloat16_tflops")):
        yield (f"matmul {m['n']}^3 peak", f"{fmt(m.get('float32_tflops'), '.3g')} TFLOP/s "
               f"fp32, {fmt(m.get('bfloat16_tflops'), '.3g')} bf16")
    if c := r.get("convnet"):
        yield f"ConvNet training ({c['rows']:,} rows)", f"{c['samples_per_second']:,.0f} samples/s"
    b = r.get("roberta", {})
    for run in b.get("runs", []):
        memory = run.get("peak_device_mb")
        yield (f"{b['model']} {run['mode']} {run['precision']} ({b['batch']}x{b['length']})",
               f"{run['step_seconds']:.3f} s/step, {run['tokens_per_second']:,.0f} tokens/s, "
               f"MFU {fmt(run.get('mfu'), '.1%')}"
               + ("" if memory is None else f", device peak {memory:,.0f} MiB"))
    if g := r.get("logit_gap"):
        yield ("bf16 vs fp32 logits", f"max |diff| {g['max_abs']:.3g} (logits up to "
               f"{g['scale']:.3g}), argmax agrees {g['argmax_agreement']:.0%}")
    for s in r.get("largest_batch", []):
        found = s["largest_fitting"]
        text = "none fits" if not found else ("" if s["complete"] else "at least ") + str(found)
        if s.get("first_failing"):
            text += f" ({s['first_failing']} does not fit)"
        elif s.get("capped"):
            text += f" (search capped at {s['cap']})"
        yield f"largest batch, {s['mode']} {s['precision']}", text
    for item in r.get("skipped", []):
        yield item, "skipped: time budget"
    if r.get("error"):
        yield "error", r["error"]


def table(results: dict) -> str:
    """A plain-text table of every backend's measurements."""
    rows = [{"backend": backend, "device": r.get("device", {}).get("name", "?"),
             "measurement": name, "result": text}
            for backend, r in results.items() for name, text in _items(r)]
    return format_table(rows, [(k, k, "") for k in ("backend", "device", "measurement", "result")])


# --- the measurements, in the worker process ----------------------------------------------------


def _timed(step, warmup: int, calls: int) -> list[float]:
    """Seconds of ``calls`` calls of ``step`` (each returns when its work is done), sorted."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return sorted(times)


def matmul_peak(backend: str, n: int, dtype: str, seconds: float = 0.3) -> float:
    """Best TFLOP/s of an n^3 ``dtype`` matmul: the best of 3 means over ``seconds`` of calls."""
    step, info = prepare_matmul(backend, n, dtype)
    calls = max(1, int(seconds / max(_timed(step, 1, 1)[0], 1e-6)))
    return info["flops"] / 1e12 * calls / min(sum(_timed(step, 0, calls)) for _ in range(3))


def convnet_throughput(rows: int, epochs: int) -> dict:
    """The fraud ConvNet trained as scripts/fraud.py trains it, on synthetic rows: samples/s."""
    seconds = _timed(convnet.prepare_keras(rows).step, 1, epochs)  # one epoch per call
    return {"rows": rows, "batch": convnet.BATCH, "epoch_seconds": seconds,
            "samples_per_second": rows / seconds[len(seconds) // 2]}


def _free_memory(backend: str) -> None:
    import gc

    import keras
    keras.backend.clear_session()
    gc.collect()
    if backend == "torch":
        import torch

        torch.cuda.empty_cache()  # a no-op without CUDA


def roberta_step(backend, dims, mode, precision, batch, length, warmup, steps, peak) -> dict:
    """Median train_on_batch time of one configuration, tokens/s, MFU (of ``peak`` TFLOP/s)."""
    from project.models.flops import train_step_flops
    from project.training.devices import device_peak_mb, reset_device_peak
    reset_device_peak(backend)
    prepared = prepare_keras(mode, dims, batch, length, precision=precision)
    times = _timed(prepared.step, warmup, steps)  # train_on_batch returns NumPy logs: done
    seconds = times[len(times) // 2]
    flops = train_step_flops(dims, batch, length, lora=mode.startswith("lora"), rank=RANK)
    result = {"mode": mode, "precision": precision, "step_seconds": seconds, "times": times,
              "tokens_per_second": batch * length / seconds, "model_flops": flops,
              "mfu": flops / seconds / (peak * 1e12) if peak else None,
              "trainable": prepared.info["trainable"], "peak_device_mb": device_peak_mb(backend)}
    del prepared
    _free_memory(backend)
    return result


def logit_gap(backend, dims, batch, length) -> dict:
    """Logits of the same weights in float32 and mixed_bfloat16 (inference): the gap."""
    import numpy as np
    x, _ = make_batch(dims, batch, length, seed=1)
    logits, weights = [], None
    for precision in PRECISIONS:  # the float32 model's weights in both
        model = keras_classifier(dims, "full", precision)
        weights = weights or model.get_weights()
        model.set_weights(weights)
        logits.append(np.asarray(model.predict_on_batch(x), dtype=np.float64))
        del model
        _free_memory(backend)
    reference, half = logits
    diff = np.abs(half - reference)
    return {"max_abs": float(diff.max()), "mean_abs": float(diff.mean()),
            "scale": float(np.abs(reference).max()),
            "argmax_agreement": float(np.mean(half.argmax(1) == reference.argmax(1)))}


def search_largest(fits, start: int, cap: int, budget: float) -> dict:
    """The largest ``batch`` for which ``fits(batch)`` holds: double from ``start``, then bisect
    until the answer is within 1/16 of the first batch that fails; stops at ``cap`` (``capped``)
    or when ``budget`` seconds are spent (``complete`` False: a lower bound). Assumes that
    whatever fits, a smaller batch fits too."""
    began, tried = time.perf_counter(), []
    good, bad, complete, capped = 0, None, True, False
    while bad is None or bad - good > max(1, good // 16):
        # doubling until a batch fails, then bisecting
        batch = (2 * good if good else start) if bad is None else (good + bad) // 2
        if time.perf_counter() - began > budget:
            complete = False
            break
        if batch > cap:
            capped = True
            break
        tried.append([batch, bool(fits(batch))])
        good, bad = (batch, bad) if tried[-1][1] else (good, batch)
    return {"largest_fitting": good, "first_failing": bad, "complete": complete,
            "capped": capped, "cap": cap, "tried": tried, "seconds": time.perf_counter() - began}


def largest_batch(backend, dims, mode, precision, length, start, cap, budget) -> dict:
    """:func:`search_largest` over a RoBERTa training step; out of memory means "does not fit"."""
    models = [keras_classifier(dims, mode, precision)]  # a list, so that it can be emptied

    def fits(batch: int) -> bool:
        try:
            models[0].train_on_batch(*make_batch(dims, batch, length))
            return True
        except Exception as err:  # out of memory shows up as many exception types
            if not any(s in f"{type(err).__name__}: {err}".lower() for s in OUT_OF_MEMORY):
                raise
            _free_memory(backend)
            return False

    result = search_largest(fits, start, cap, budget)
    models.clear()
    _free_memory(backend)
    return {"mode": mode, "precision": precision, "length": length, **result}


def worker(backend: str, out: Path, budget: float, quick: bool, started: float = STARTED) -> int:
    """Measure one backend, in this process; write the results to ``out`` after each item."""
    from project.backend import select_backend

    select_backend(["--backend", backend])  # before keras is imported
    from project.io import write_json
    from project.machine import library_versions
    from project.models.roberta import ROBERTA_LARGE
    from project.training.devices import device_info

    end, cost = started + budget, {}  # cost: the longest measurement of each kind so far
    device = device_info(backend)
    gpu = device["platform"] == "gpu"
    dims = TINY if quick else ROBERTA_LARGE
    batch, length = (QUICK_BATCH, QUICK_LENGTH) if quick else (BATCH, LENGTH)
    result = {"backend": backend, "device": device, "versions": library_versions(),
              "quick": quick, "skipped": [], "item_seconds": {}}

    def save():
        result["seconds"] = budget - (end - time.perf_counter())
        write_json(out, result)

    def step(kind: str, label: str, fn):
        """Run ``fn`` if the last measurement of its kind would still fit; record; save."""
        value, start = None, time.perf_counter()
        if end - start <= cost.get(kind, 0.0):
            result["skipped"].append(label)
            note = "skipped (time budget)"
        else:
            value = fn()
            spent = result["item_seconds"][label] = time.perf_counter() - start
            cost[kind], note = max(cost.get(kind, 0.0), spent), f"{spent:.0f} s"
        print(f"  {backend}: {label}: {note}", flush=True)
        save()
        return value

    n = 256 if quick else (8192 if gpu else 2048)
    matmul = result["matmul"] = {"n": n, "float32_tflops": None, "bfloat16_tflops": None}
    for dtype in ("float32", "bfloat16"):
        matmul[f"{dtype}_tflops"] = step("matmul", f"matmul peak {dtype}",
                                         lambda d=dtype: matmul_peak(backend, n, d))
    result["convnet"] = step("convnet", "ConvNet training", lambda: convnet_throughput(
        720 if quick else 170_883, 1 if quick else 2))
    runs = []  # appended to before each save
    result["roberta"] = {"model": "tiny RoBERTa" if quick else "RoBERTa-large", "batch": batch,
                         "length": length, "dims": dims, "runs": runs}
    for precision in PRECISIONS:
        peak = matmul["bfloat16_tflops" if precision == "mixed_bfloat16" else "float32_tflops"]
        for mode in MODES:
            step("roberta", f"RoBERTa {mode} {precision}", lambda m=mode, p=precision, k=peak:
                 runs.append(roberta_step(backend, dims, m, p, batch, length, peak=k,
                                          warmup=1 if quick else 2, steps=2 if quick else 5)))
    result["logit_gap"] = step("gap", "bf16 vs fp32 logit gap",
                               lambda: logit_gap(backend, dims, batch, length))
    # --quick: a single trial at the cap (each new batch shape is a new compilation)
    cap = 4 if quick else (4096 if gpu else 32)
    search = step("search", "largest batch (full float32)", lambda: largest_batch(
        backend, dims, "full", "float32", length, start=cap if quick else 16, cap=cap,
        budget=max(end - time.perf_counter() - 15, 0.0)))
    result["largest_batch"] = [search] if search else []
    save()
    return 0


if __name__ == "__main__":  # python -m benchmarks.device BACKEND OUT BUDGET [--quick]
    sys.exit(worker(sys.argv[1], Path(sys.argv[2]), float(sys.argv[3]), "--quick" in sys.argv))
