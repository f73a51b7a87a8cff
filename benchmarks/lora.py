"""Suite ``lora``: one training step of RoBERTa, our LoRA and full fine-tuning vs HF PEFT and HF.

All contenders train RoBERTa-base dimensions (12 layers, 12 heads, hidden 768, FFN 3072, vocabulary
50,265) with random weights on the same random batch (8 pairs x 128 tokens, two classes), AdamW
(lr 1e-4, epsilon 1e-8):

* ours, LoRA: :func:`project.models.lora.enable_lora` (matrix style: r=8, alpha=16, dropout 0.05
  on query/key/value; head trainable), ``train_on_batch`` in the current Keras backend;
* ours, full fine-tuning: the same keras-hub classifier, every weight trainable;
* keras-hub's own LoRA (per-head style), for reference;
* HF PEFT: ``RobertaForSequenceClassification`` from a ``RobertaConfig`` +
  ``LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, target_modules=["query", "key", "value"])``;
* HF full fine-tuning.

Ours run in this process (the current Keras backend); the HF contenders in a separate
PyTorch-only process (TensorFlow's thread pools in the Keras process slow PyTorch down). All are
built and warmed up (two steps: compilation, allocation), then timed in turns, one step each per
round, ``repeats`` rounds (at least 3): the machine may be shared, and taking turns spreads
outside load over all contenders. We quote each one's median step time.

Achieved GFLOP/s use an analytic count of a step's matmul FLOPs. Forward: F = F_w + F_att, with
F_w = 2 x (projection and feed-forward weights) x tokens and F_att = 4 x T^2 x hidden per layer
and sequence. Full fine-tuning: 3 F (forward, input gradients, weight gradients). LoRA:
2 F_w + 3 F_att (frozen weights get no weight gradients; attention has none) plus the small A/B
terms, so at RoBERTa-base dimensions and T=128 a LoRA step is at best ~0.68 of a full step.
Peak: the best of a 2048^3 fp32 matmul in PyTorch and NumPy.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks._timing import format_table, median, time_calls

BASE = dict(vocabulary_size=50265, num_layers=12, num_heads=12, hidden_dim=768,
            intermediate_dim=3072, max_sequence_length=512)
QUICK = dict(vocabulary_size=1000, num_layers=2, num_heads=2, hidden_dim=64,
             intermediate_dim=128, max_sequence_length=64)
RANK, ALPHA, DROPOUT, LR = 8, 16, 0.05, 1e-4
ROOT = Path(__file__).resolve().parents[1]


def step_flops(dims: dict, batch: int, length: int, lora: bool) -> float:
    """Analytic matmul FLOPs of one training step (see the module docstring)."""
    h, layers, inner = dims["hidden_dim"], dims["num_layers"], dims["intermediate_dim"]
    tokens = batch * length
    weights = 2 * layers * (4 * h * h + 2 * h * inner) * tokens
    attention = 4 * layers * length * length * h * batch
    if not lora:
        return 3.0 * (weights + attention)
    branch = 2 * layers * 3 * (h * RANK + RANK * h) * tokens  # x A, (x A) B
    return 2.0 * weights + 3.0 * attention + 3.0 * branch


def matmul_peak_gflops(n: int = 2048, repeats: int = 5) -> dict:
    """Best fp32 GFLOP/s of an n x n x n matmul in PyTorch and NumPy."""
    import torch

    result = {}
    a32 = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    ta = torch.from_numpy(a32)
    for name, fn in (("torch", lambda: ta @ ta), ("numpy", lambda: a32 @ a32)):
        best = min(time_calls(fn, repeats=repeats, warmup=1))
        result[name] = 2 * n**3 / best / 1e9
    return result


def _batch(dims, batch, length, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, dims["vocabulary_size"], (batch, length)).astype("int32")
    labels = rng.integers(0, 2, batch).astype("int32")
    return ids, labels


def keras_step(kind: str, dims: dict, batch: int, length: int, jit_compile="auto"):
    """(step function, trainable params) for our keras-hub classifier: full, lora, per-head."""
    import keras

    from project.models.lora import count_params, enable_lora
    from project.models.roberta import build_classifier

    keras.utils.set_random_seed(0)
    model = build_classifier(**dims, vocabulary=None)
    if kind != "full":
        enable_lora(model, RANK, ALPHA, 0.0 if kind == "per-head" else DROPOUT, seed=0,
                    style="per-head" if kind == "per-head" else "matrix")
    model.compile(
        optimizer=keras.optimizers.AdamW(LR, epsilon=1e-8),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=jit_compile,
    )
    ids, labels = _batch(dims, batch, length)
    x = {"token_ids": ids, "padding_mask": np.ones_like(ids, dtype=bool)}
    return (lambda: model.train_on_batch(x, labels)), count_params(model)[0], model


def hf_step(kind: str, dims: dict, batch: int, length: int):
    """(step function, trainable params) for HF RobertaForSequenceClassification: full or peft."""
    import torch
    from transformers import RobertaConfig, RobertaForSequenceClassification

    torch.manual_seed(0)
    config = RobertaConfig(
        vocab_size=dims["vocabulary_size"], hidden_size=dims["hidden_dim"],
        num_hidden_layers=dims["num_layers"], num_attention_heads=dims["num_heads"],
        intermediate_size=dims["intermediate_dim"],
        max_position_embeddings=dims["max_sequence_length"] + 2, type_vocab_size=1, num_labels=2,
    )
    model = RobertaForSequenceClassification(config)
    if kind == "peft":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(
            task_type="SEQ_CLS", r=RANK, lora_alpha=ALPHA, lora_dropout=DROPOUT,
            target_modules=["query", "key", "value"],
        ))
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=LR, eps=1e-8)
    ids, labels = _batch(dims, batch, length)
    ids, labels = torch.from_numpy(ids).long(), torch.from_numpy(labels).long()
    mask = torch.ones_like(ids)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        optimizer.step()

    return step, sum(p.numel() for p in params), model


def build(contenders) -> list[dict]:
    """Build every contender and warm it up (two steps).

    ``contenders``: (label, key, make) triples; ``make()`` returns (step, trainable, model).
    """
    built = []
    for label, key, make in contenders:
        start = time.perf_counter()
        step, trainable, model = make()
        build_seconds = time.perf_counter() - start
        time_calls(step, repeats=0, warmup=2)
        built.append(dict(label=label, key=key, step=step, model=model, trainable=trainable,
                          build_seconds=build_seconds, times=[]))
        print(f"  built and warmed up: {label}", file=sys.stderr, flush=True)
    return built


def hf_contenders(dims, batch, length):
    return [
        ("HF PEFT LoRA", "peft", lambda: hf_step("peft", dims, batch, length)),
        ("HF full", "hf-full", lambda: hf_step("full", dims, batch, length)),
    ]


class HFWorker:
    """The HF contenders in a separate PyTorch-only process, stepped on request.

    In the Keras process TensorFlow's thread pools and the other models slow PyTorch down by
    10-30%, which would flatter us; a clean process is the fair peer. Each round of turns times
    our contenders here, then asks the worker to time its own, so both see the same load.
    """

    def __init__(self, quick: bool):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.lora", "hf-worker", str(int(quick))],
            cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        self.contenders = self._reply()

    def _reply(self):
        for line in self.process.stdout:
            if line.startswith("@@ "):
                return json.loads(line[3:])
        raise RuntimeError(f"HF worker stopped (exit code {self.process.wait()})")

    def step(self) -> dict:
        self.process.stdin.write("step\n")
        self.process.stdin.flush()
        return self._reply()

    def close(self):
        self.process.stdin.close()
        self.process.wait(timeout=60)


def _serve_hf(quick: bool) -> None:
    """The worker's side: build and warm up, then time one step of each on every request."""
    built = build(hf_contenders(*sizes(quick)))
    meta = [{k: c[k] for k in ("label", "key", "trainable", "build_seconds")} for c in built]
    print("@@ " + json.dumps(meta), flush=True)
    for _ in sys.stdin:
        print("@@ " + json.dumps({c["key"]: time_calls(c["step"], 1, 0)[0] for c in built}),
              flush=True)


def sizes(quick: bool):
    return (QUICK, 2, 16) if quick else (BASE, 8, 128)


def run(args) -> dict:
    import keras

    backend = getattr(args, "backend", None) or keras.backend.backend()
    quick = bool(getattr(args, "quick", False))
    dims, batch, length = sizes(quick)
    repeats = max(3, int(getattr(args, "repeats", 3)))
    peak = matmul_peak_gflops(512 if quick else 2048)
    peak_gflops = max(peak.values())

    contenders = [
        ("ours, LoRA (matrix)", "lora", lambda: keras_step("lora", dims, batch, length)),
        ("ours, full", "full", lambda: keras_step("full", dims, batch, length)),
        ("keras-hub LoRA (per-head)", "per-head",
         lambda: keras_step("per-head", dims, batch, length)),
    ]
    if backend == "tensorflow":  # XLA is off by default on a CPU; measure it as well
        contenders.insert(1, ("ours, LoRA (matrix), XLA", "lora-xla",
                              lambda: keras_step("lora", dims, batch, length, True)))
    worker = HFWorker(quick)
    try:
        ours = build(contenders)
        peers = [dict(c, times=[]) for c in worker.contenders]
        for _ in range(repeats):  # one step each per round, ours then the peers'
            for contender in ours:
                contender["times"] += time_calls(contender["step"], repeats=1, warmup=0)
            times = worker.step()
            for peer in peers:
                peer["times"].append(times[peer["key"]])
    finally:
        worker.close()
    ours = [{k: v for k, v in c.items() if k not in ("step", "model")} for c in ours]
    gc.collect()

    rows = []
    for result in ours + peers:
        lora = result["key"] in ("lora", "lora-xla", "per-head", "peft")
        seconds = median(result["times"])
        gflops = step_flops(dims, batch, length, lora) / seconds / 1e9
        rows.append({
            **result,
            "contender": result["label"],
            "framework": "torch" if result["key"] in ("peft", "hf-full") else f"keras/{backend}",
            "step_seconds": seconds, "samples_per_second": batch / seconds,
            "gflops": gflops, "peak_fraction": gflops / peak_gflops,
        })

    by_key = {r["key"]: r["step_seconds"] for r in rows}
    ratios = {
        "lora_vs_peft_step_time": by_key["lora"] / by_key["peft"],
        "lora_vs_full_step_time": by_key["lora"] / by_key["full"],
        "keras_hub_lora_vs_ours_step_time": by_key["per-head"] / by_key["lora"],
        "full_vs_hf_full_step_time": by_key["full"] / by_key["hf-full"],
        "peft_vs_hf_full_step_time": by_key["peft"] / by_key["hf-full"],
        "lora_vs_full_flops": step_flops(dims, batch, length, True)
        / step_flops(dims, batch, length, False),
        "matmul_peak_gflops": peak_gflops,
    }
    if "lora-xla" in by_key:
        ratios["lora_xla_vs_peft_step_time"] = by_key["lora-xla"] / by_key["peft"]
    size = "tiny dims (quick)" if quick else "RoBERTa-base dims"
    text = (
        f"RoBERTa train step, {size}, batch {batch} x {length} tokens, backend {backend}; "
        f"median of {repeats} steps taken in turns after 2 warm-up steps (HF: its own process, "
        f"in the same rounds); fp32 matmul peak "
        f"{peak_gflops:.0f} GFLOP/s (torch {peak['torch']:.0f}, numpy {peak['numpy']:.0f})\n"
        + format_table(rows, [
            ("contender", "contender", ""), ("framework", "framework", ""),
            ("trainable", "trainable", ",d"), ("step_seconds", "s/step", ".3f"),
            ("samples_per_second", "samples/s", ".2f"), ("gflops", "GFLOP/s", ".1f"),
            ("peak_fraction", "of peak", ".0%"),
        ])
        + f"\nours LoRA vs PEFT LoRA: {ratios['lora_vs_peft_step_time']:.2f}x step time "
          "(target <= 0.9)"
        + f"\nours LoRA vs ours full: {ratios['lora_vs_full_step_time']:.2f}x step time "
          f"(target <= 0.6; the FLOP ratio is {ratios['lora_vs_full_flops']:.2f})"
    )
    return {"suite": "lora", "rows": rows, "ratios": ratios, "text": text}


if __name__ == "__main__":  # the HF worker: python -m benchmarks.lora hf-worker <quick 0/1>
    _serve_hf(bool(int(sys.argv[2])))
