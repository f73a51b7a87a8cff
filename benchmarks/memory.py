"""Suite ``memory``: what RoBERTa-large training needs, full fine-tuning against LoRA, LoRA with
rematerialised layers and LoRA on an int8 base, and what the int8 base costs in quality.

Every configuration is one process (:mod:`benchmarks.harness`, one alive at a time): RoBERTa-large
dimensions, random weights (:func:`benchmarks.lora.keras_classifier`: r=8, alpha 16, dropout 0.05
on q/k/v), ``train_on_batch`` at 16 x 128 tokens, in float32 and mixed_bfloat16, per backend, for
each of :data:`KINDS`. Memory: on a CPU the host RSS, as the peak over the first step (tracing
and compiling included) and over the steps after it (the kernel's high-water mark, reset after
the build and after the first step, freed memory handed back each time) and over the whole
process; on a GPU the device peak over the steps after the first; the weights' bytes
(:func:`project.models.quantize.weight_bytes`). Time: the median step (after one warm-up step).

Quality: the int8 base's logits against the float32 base's (same weights) at RoBERTa-large
dimensions; LoRA trained float32 and on an int8 base, bundled sample (:func:`prepare_quality`).

``--quick`` (a smoke test): tiny dimensions, batch 4 x 16, float32, LoRA and LoRA on an int8
base with remat only, and 1 epoch on a fifth of the bundled sample. Targets: :func:`targets`.
"""

import time

import numpy as np

from benchmarks.harness import Contender, Prepared, Target, check_targets, format_table, median

KINDS = ("full", "lora", "lora-remat", "lora-int8", "lora-int8-remat")
PRECISIONS = ("float32", "mixed_bfloat16")
BATCH, LENGTH, QUALITY_EPOCHS = 16, 128, 10
QUICK = dict(kinds=("lora", "lora-int8-remat"), precisions=("float32",), batch=4, length=16,
             epochs=1, fraction=0.2)


def targets(backends, precisions=PRECISIONS) -> list:
    rows = []
    for b in backends:
        for p in precisions:
            rows += [
                Target(f"{b} {p}: LoRA peak / full fine-tuning peak", f"{b}_{p}_lora_vs_full_peak",
                       "<=", 0.5),
                Target(f"{b} {p}: int8-base LoRA weights / float32 LoRA weights",
                       f"{b}_{p}_int8_vs_lora_weights", "<=", 0.35),
                Target(f"{b} {p}: int8-base LoRA peak / LoRA peak", f"{b}_{p}_int8_vs_lora_peak",
                       "<=", 0.6)]
    return rows


def _high_water_mb(reset: bool = False) -> float | None:
    """This process's peak RSS since the last reset (Linux: VmHWM; ``reset`` starts anew)."""
    try:
        if reset:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return None


def _return_free_memory() -> None:
    """Collect garbage and hand freed heap memory back to the system (glibc's malloc_trim)."""
    import contextlib
    import ctypes
    import gc
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def prepare_memory(kind: str, dims: dict, batch: int, length: int, precision: str,
                   logit_gap: bool = False) -> Prepared:
    """One ``train_on_batch`` per call of :func:`benchmarks.lora.keras_classifier` (``kind``);
    ``logit_gap``: first the int8 base's logits against the float32 base's, on one batch."""
    import keras

    from benchmarks.lora import keras_classifier, make_batch
    from project.models.lora import count_params
    from project.models.quantize import quantize_base, weight_bytes
    from project.training.devices import device_peak_mb, reset_device_peak
    backend = keras.backend.backend()
    info = {}
    if logit_gap:
        model = keras_classifier(dims, kind.replace("-int8", ""), precision)
        x, _ = make_batch(dims, batch, length, seed=1)
        reference = np.asarray(model.predict_on_batch(x), np.float64)
        quantize_base(model)
        diff = np.abs(np.asarray(model.predict_on_batch(x), np.float64) - reference)
        info["logit_gap"] = {"max_abs": float(diff.max()), "mean_abs": float(diff.mean()),
                             "scale": float(np.abs(reference).max()),
                             "argmax_agreement": float(np.mean(
                                 model.predict_on_batch(x).argmax(1) == reference.argmax(1)))}
    else:
        model = keras_classifier(dims, kind, precision)
    x, labels = make_batch(dims, batch, length)
    _return_free_memory()  # what building left free goes back, so RSS counts live memory
    info.update(trainable=count_params(model)[0], weight_mb=weight_bytes(model) / 2**20,
                built_rss_mb=_high_water_mb(reset=True))
    reset_device_peak(backend)

    def step():
        model.train_on_batch(x, labels)
        info.update(step_peak_rss_mb=_high_water_mb(), peak_device_mb=device_peak_mb(backend))
        if "first_step_peak_mb" not in info:  # the first step traces and compiles: its peak
            info["first_step_peak_mb"] = info["peak_device_mb"] or info["step_peak_rss_mb"]
            _return_free_memory()
            _high_water_mb(reset=True)
            reset_device_peak(backend)

    return Prepared(step, info)


def prepare_quality(epochs: int, out: str, fraction: float | None = None) -> Prepared:
    """``scripts/qqp.py --mode lora`` on the bundled sample (tiny random RoBERTa, seed 0), float32
    and ``--quantize int8``, on the first call: each validation accuracy, and their logits' gap."""
    from pathlib import Path

    from project.experiments import qqp
    from project.experiments.config import QQPConfig
    from project.interop import load_classifier
    info = {}

    def step():
        if info:
            return
        logits = {}
        for quantize in (None, "int8"):
            config = QQPConfig(modes=("lora",), epochs=epochs, quantize=quantize,
                               fraction=fraction).resolve()
            folder = Path(out) / f"{quantize or 'float32'}-{time.time_ns()}"
            result = qqp.run(config, folder, verbose=0, log=lambda line: None)
            model = load_classifier(folder / "lora" / "model.keras")
            logits[quantize] = qqp.predict_logits(model, qqp.prepare(config).features["validation"])
            info[f"val_accuracy_{quantize or 'float32'}"] = result.runs[0].val.accuracy
        info.update(logit_gap_max=float(np.abs(logits["int8"] - logits[None]).max()),
                    argmax_agreement=float(np.mean(
                        logits["int8"].argmax(1) == logits[None].argmax(1))))

    return Prepared(step, info)


def run(args) -> dict:
    import tempfile

    from benchmarks.harness import measure
    from benchmarks.lora import QUICK as TINY
    from project.models.roberta import ROBERTA_LARGE
    quick = bool(args.quick)
    dims = TINY if quick else ROBERTA_LARGE
    kinds = QUICK["kinds"] if quick else KINDS
    precisions = QUICK["precisions"] if quick else PRECISIONS
    batch, length = (QUICK["batch"], QUICK["length"]) if quick else (BATCH, LENGTH)
    epochs = QUICK["epochs"] if quick else QUALITY_EPOCHS
    backends = list(args.backends)
    gap_kind = next(k for k in kinds if "int8" in k)
    here = "benchmarks.memory:"
    step = {"dims": dims, "batch": batch, "length": length}
    groups = [[Contender(f"{b}:{p}:{k}", f"{k}, {p}, {b}", here + "prepare_memory",
                         {"kind": k, "precision": p, **step,
                          "logit_gap": k == gap_kind and p == "float32"}, backend=b)]
              for b in backends for p in precisions for k in kinds]
    threads = int(getattr(args, "threads", 0) or 0)
    fraction = QUICK["fraction"] if quick else None
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        groups.append([Contender("quality", "bundled sample, LoRA float32 and on int8",
                                 here + "prepare_quality",
                                 {"epochs": epochs, "out": tmp, "fraction": fraction},
                                 backend=backends[0])])
        results = measure(groups, repeats=args.repeats, warmup=1, threads=threads)
    rows, ratios, gaps = [], {}, {}
    for b in backends:
        for p in precisions:
            by_kind = {}
            for k in kinds:
                r = results[f"{b}:{p}:{k}"]
                info = r["info"]
                by_kind[k] = {
                    "backend": b, "precision": p, "kind": k, "trainable": info["trainable"],
                    "weight_mb": info["weight_mb"],
                    "step_peak_mb": info.get("peak_device_mb") or info["step_peak_rss_mb"],
                    "first_step_peak_mb": info.get("first_step_peak_mb"),
                    "process_peak_mb": info.get("peak_rss_mb"),
                    "step_seconds": median(r["times"])}
                rows.append(by_kind[k])
                if "logit_gap" in info:
                    gaps[b] = info["logit_gap"]
            ratios.update(_ratios(f"{b}_{p}_", by_kind))
    quality = results["quality"]["info"]
    ratios.update({f"sample_{k}": v for k, v in quality.items()})
    for b, g in gaps.items():
        ratios[f"{b}_int8_logit_gap_max"] = g["max_abs"]
        ratios[f"{b}_int8_logit_scale"] = g["scale"]
    size = "tiny dims (quick)" if quick else "RoBERTa-large dims"
    text = (
        f"RoBERTa train step, {size}, batch {batch} x {length}; median of {args.repeats} steps "
        "after 1 warm-up, each configuration in its own process; memory: device peak on a GPU, "
        "else host RSS (step peak: over the steps after the first; first step: tracing and "
        "compiling included; process peak: everything, building included)\n"
        + format_table(rows, [
            ("backend", "backend", ""), ("precision", "precision", ""), ("kind", "kind", ""),
            ("trainable", "trainable", ",d"), ("weight_mb", "weights MB", ",.0f"),
            ("step_peak_mb", "step peak MB", ",.0f"),
            ("first_step_peak_mb", "first step peak MB", ",.0f"),
            ("process_peak_mb", "process peak MB", ",.0f"),
            ("step_seconds", "s/step", ".2f")])
        + f"\n\nint8 base vs float32 base, same weights, inference ({size}): "
        + "; ".join(f"{b}: largest logit change {g['max_abs']:.3g} (logits up to {g['scale']:.3g})"
                    f", argmax agrees {g['argmax_agreement']:.0%}" for b, g in gaps.items())
        + f"\nbundled synthetic sample, tiny random RoBERTa, LoRA {epochs} epochs, seed 0, "
        f"{backends[0]}: validation accuracy float32 {quality['val_accuracy_float32']:.4f}, "
        f"int8 base {quality['val_accuracy_int8']:.4f}; largest validation logit gap "
        f"{quality['logit_gap_max']:.3g}, argmax agrees {quality['argmax_agreement']:.1%}")
    return {"suite": "memory", "rows": rows, "ratios": ratios, "text": text,
            "targets": check_targets(targets(backends, precisions), ratios)}


def _ratios(prefix: str, by_kind: dict) -> dict:
    """Peaks, step times and weights against LoRA's (LoRA's peak against full's), where measured."""
    ratios, lora = {}, by_kind.get("lora")
    if lora and "full" in by_kind:
        ratios[prefix + "lora_vs_full_peak"] = lora["step_peak_mb"] / by_kind["full"]["step_peak_mb"]
    for kind, row in by_kind.items():
        if lora and kind.startswith("lora-"):
            name = kind[len("lora-"):].replace("-", "_")
            ratios[prefix + f"{name}_vs_lora_peak"] = row["step_peak_mb"] / lora["step_peak_mb"]
            ratios[prefix + f"{name}_vs_lora_time"] = row["step_seconds"] / lora["step_seconds"]
            if "int8" in kind:
                ratios[prefix + f"{name}_vs_lora_weights"] = row["weight_mb"] / lora["weight_mb"]
    return ratios
