"""Suite ``lora``: one RoBERTa training step, our LoRA and full fine-tuning vs HF PEFT and HF.

All contenders train RoBERTa-base dimensions (12 layers, 12 heads, hidden 768, FFN 3072, vocabulary
50,265), random weights, on the same random batch (8 pairs x 128 tokens, two classes), AdamW
(lr 1e-4, epsilon 1e-8), one step per timed call:

* ours, per Keras backend: LoRA (:func:`project.models.lora.enable_lora`, matrix style, r=8,
  alpha=16, dropout 0.05 on query/key/value, head trainable) and full fine-tuning; on torch also
  LoRA with the branch's dropout off and with einsum projections (``matrix_form`` off), every step
  :mod:`project.training.torch_step`'s as ``qqp.py`` trains; on TensorFlow also LoRA under XLA;
* HF PEFT (``LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, target_modules=["query", "key",
  "value"])``) and HF full fine-tuning of ``RobertaForSequenceClassification``, plain PyTorch;
* each framework's own fp32 matmul (2048^3): the peak that "of peak" divides by.

Protocol (:mod:`benchmarks.harness`): two warm-up steps, then steps in turns, in groups
(:func:`contenders`) while PEFT takes its turn in every group's rounds, so each contender is
compared with PEFT's steps from its own rounds. GFLOP/s use
:func:`project.models.flops.train_step_flops` (a LoRA step needs about 0.68 of a full step's).
"""

import numpy as np

from benchmarks.harness import Contender, Prepared, Target, check_targets, median_cpu, median_time
from project.models.flops import train_step_flops

BASE = dict(vocabulary_size=50265, num_layers=12, num_heads=12, hidden_dim=768,
            intermediate_dim=3072, max_sequence_length=512)
# --quick (the smoke test of this suite, memory and device_check): one layer runs every code path
# (LoRA, remat, int8); a second only adds tracing time (a fifth of the TensorFlow device check).
QUICK = dict(vocabulary_size=1000, num_layers=1, num_heads=2, hidden_dim=64,
             intermediate_dim=128, max_sequence_length=64)
RANK, ALPHA, DROPOUT, LR = 8, 16, 0.05, 1e-4
MATMUL_N, QUICK_MATMUL_N = 2048, 256
#: What :func:`keras_classifier` builds for each kind: (LoRA or not, quantize, remat).
KINDS = {"full": (False, None, False), "lora": (True, None, False),
         "lora-remat": (True, None, True), "lora-int8": (True, "int8", False),
         "lora-int8-remat": (True, "int8", True)}

TARGETS = (
    Target("torch backend: our LoRA step vs PEFT's (time)", "torch_lora_vs_peft", "<=", 0.9,
           aim=0.8),
    Target("TensorFlow backend: our LoRA step vs PEFT's (time)", "tensorflow_lora_vs_peft", "<=",
           0.9, aim=0.8),
    Target("JAX backend: our LoRA step vs PEFT's (time)", "jax_lora_vs_peft", "<=", 0.9, aim=0.8),
    Target("torch backend: our LoRA step vs PEFT's (CPU time, --threads 1)",
           "torch_lora_vs_peft_cpu", "<=", 0.9, aim=0.8),
    Target("torch backend: our full fine-tuning step vs HF's (time)", "torch_full_vs_hf_full",
           "<=", 1.0),
    Target("torch backend: our full fine-tuning step vs HF's (CPU time, --threads 1)",
           "torch_full_vs_hf_full_cpu", "<=", 1.0),
    # LoRA/full toward the FLOP ratio (0.68): within 10% of it, aiming at it
    Target("torch backend: LoRA/full step time", "torch_lora_vs_full", "<=", 0.75, aim=0.68),
    Target("TensorFlow backend: LoRA/full step time", "tensorflow_lora_vs_full", "<=", 0.75,
           aim=0.68),
    Target("JAX backend: LoRA/full step time", "jax_lora_vs_full", "<=", 0.75, aim=0.68),
)


def sizes(quick: bool):
    """(dims, batch, length) of the measured step."""
    return (QUICK, 2, 16) if quick else (BASE, 8, 128)


def make_batch(dims: dict, batch: int, length: int, seed: int = 0):
    """Random token ids (no special tokens, no padding) as our inputs, and binary labels."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, dims["vocabulary_size"], (batch, length)).astype("int32")
    labels = rng.integers(0, 2, batch).astype("int32")
    return {"token_ids": ids, "padding_mask": np.ones_like(ids, dtype=bool)}, labels


def keras_classifier(dims: dict, kind: str = "full", precision: str = "float32",
                     jit_compile="auto", dropout: float = DROPOUT):
    """Our compiled keras-hub classifier, random weights: a ``kind`` of :data:`KINDS`."""
    import keras

    from project.models.backbone import rematerialize_layers
    from project.models.lora import enable_lora
    from project.models.quantize import quantize_base
    from project.models.roberta import build_classifier
    lora, quantize, remat = KINDS[kind]
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        keras.utils.set_random_seed(0)
        model = build_classifier(**dims, vocabulary=None)
        if lora:
            enable_lora(model, RANK, ALPHA, dropout, seed=0, style="matrix")
        if quantize:
            quantize_base(model, quantize)
        if remat:
            rematerialize_layers(model.backbone)
    finally:
        keras.config.set_dtype_policy(previous)
    model.compile(optimizer=keras.optimizers.AdamW(LR, epsilon=1e-8),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=jit_compile)
    return model


def prepare_keras(kind: str, dims: dict, batch: int, length: int, jit_compile="auto",
                  dropout: float = DROPOUT, precision: str = "float32",
                  matrix_form: bool = True) -> Prepared:
    """One ``train_on_batch`` of :func:`keras_classifier` per call, with our torch step under
    torch (as ``fit_epoch`` trains); ``matrix_form=False``: LoRA projections as einsums."""
    from project.keras_internals import all_layers
    from project.models.lora import count_params
    from project.models.lora_layer import LoraEinsumDense
    from project.training.torch_step import installed
    model = keras_classifier(dims, kind, precision, jit_compile, dropout)
    for layer in all_layers(model):
        if isinstance(layer, LoraEinsumDense):
            layer.matrix_form = layer.matrix_form and matrix_form
    x, labels = make_batch(dims, batch, length)

    def step():
        with installed(model):
            return model.train_on_batch(x, labels)

    return Prepared(step, {"trainable": count_params(model)[0]})


def prepare_hf(kind: str, dims: dict, batch: int, length: int) -> Prepared:
    """HF ``RobertaForSequenceClassification`` in plain PyTorch: ``kind`` full or peft."""
    import torch
    from transformers import RobertaConfig, RobertaForSequenceClassification
    torch.manual_seed(0)
    model = RobertaForSequenceClassification(RobertaConfig(
        vocab_size=dims["vocabulary_size"], hidden_size=dims["hidden_dim"],
        num_hidden_layers=dims["num_layers"], num_attention_heads=dims["num_heads"],
        intermediate_size=dims["intermediate_dim"],
        max_position_embeddings=dims["max_sequence_length"] + 2, type_vocab_size=1, num_labels=2))
    if kind == "peft":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(
            task_type="SEQ_CLS", r=RANK, lora_alpha=ALPHA, lora_dropout=DROPOUT,
            target_modules=["query", "key", "value"]))
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=LR, eps=1e-8)
    x, labels = make_batch(dims, batch, length)
    ids, labels = torch.from_numpy(x["token_ids"]).long(), torch.from_numpy(labels).long()
    mask = torch.from_numpy(x["padding_mask"]).long()

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        return float(loss)

    return Prepared(step, {"trainable": sum(p.numel() for p in params)})


def prepare_matmul(framework: str, n: int, dtype: str = "float32") -> Prepared:
    """One n^3 ``dtype`` matmul in ``framework``'s own op (torch, tensorflow, jax), GPU if any."""
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    if framework == "torch":
        import torch

        t = torch.from_numpy(a).to("cuda" if torch.cuda.is_available() else "cpu",
                                   getattr(torch, dtype))
        step = lambda: float((t @ t)[0, 0])  # noqa: E731
    elif framework == "tensorflow":
        import tensorflow as tf

        t = tf.cast(tf.constant(a), dtype)
        step = lambda: float(tf.linalg.matmul(t, t)[0, 0])  # noqa: E731
    elif framework == "jax":
        import jax
        import jax.numpy as jnp

        t = jnp.asarray(a, dtype=dtype)
        mm = jax.jit(jnp.matmul)
        step = lambda: mm(t, t).block_until_ready()  # noqa: E731
    else:
        raise ValueError(f"unknown framework {framework!r}")
    return Prepared(step, {"flops": 2.0 * n**3})


def contenders(backends, quick: bool):
    """(groups, shared): HF full, then groups per Keras backend; PEFT and torch's matmul shared."""
    dims, batch, length = sizes(quick)
    here = "benchmarks.lora:"
    step = {"dims": dims, "batch": batch, "length": length}
    n = QUICK_MATMUL_N if quick else MATMUL_N

    def ours(b, kind, label, **extra):
        return Contender(f"{b}:{kind}", label, here + "prepare_keras",
                         {"kind": "lora" if kind.startswith("lora") else kind, **step, **extra},
                         backend=b)

    def matmul(framework):
        return Contender(f"matmul-{framework}", f"matmul {n}^3 fp32, {framework}",
                         here + "prepare_matmul", {"framework": framework, "n": n})

    shared = [Contender("peft", "HF PEFT LoRA (PyTorch)", here + "prepare_hf",
                        {"kind": "peft", **step})]
    if quick:
        return [[ours(b, "lora", f"ours LoRA, {b}"), matmul(b)] for b in backends], shared
    shared.append(matmul("torch"))
    groups = [[Contender("hf-full", "HF full (PyTorch)", here + "prepare_hf",
                         {"kind": "full", **step})]]
    for b in backends:
        group = [ours(b, "lora", f"ours LoRA, {b}"), ours(b, "full", f"ours full, {b}")]
        if b == "torch":
            group.append(ours(b, "lora-nodropout", "ours LoRA, dropout 0, torch", dropout=0.0))
            group.append(ours(b, "lora-einsum", "ours LoRA, einsum projections, torch",
                              matrix_form=False))
        else:
            group.append(matmul(b))
        groups.append(group)
        if b == "tensorflow":
            groups.append([ours(b, "lora-xla", "ours LoRA, tensorflow, XLA", jit_compile=True)])
    return groups, shared


def run(args) -> dict:
    from benchmarks.harness import format_table, measure
    quick = bool(args.quick)
    dims, batch, length = sizes(quick)
    backends = list(args.backends)
    groups, shared = contenders(backends, quick)
    threads = int(getattr(args, "threads", 0) or 0)
    results = measure(groups, shared=shared, repeats=args.repeats, warmup=2, threads=threads)

    on_cpu_time = threads == 1  # one thread per contender: rates on CPU time (the work)
    peaks, matmuls, rows = {}, {}, []  # framework -> best GFLOP/s of its own matmul
    for key, r in results.items():
        if key.startswith("matmul-"):
            framework = key.removeprefix("matmul-")
            best = min(r["cpu_times"] if on_cpu_time else r["times"])
            peaks[framework] = r["info"]["flops"] / best / 1e9
            matmuls[framework] = {k: r[k] for k in ("info", "times", "cpu_times")}
    for key, r in results.items():
        if key.startswith("matmul-"):
            continue
        framework = r["backend"] or "torch"
        seconds = median_time(r)
        lora = key.split(":")[-1].startswith("lora") or key == "peft"
        flops = train_step_flops(dims, batch, length, lora, RANK)
        gflops = flops / (median_cpu(r) if on_cpu_time else seconds) / 1e9
        peak = peaks.get(framework)
        rows.append({
            "key": key, "contender": r["label"], "framework": framework,
            "trainable": r["info"]["trainable"], "step_seconds": seconds,
            "cpu_seconds": median_cpu(r), "samples_per_second": batch / seconds, "gflops": gflops,
            "peak_fraction": gflops / peak if peak else None, "times": r["times"],
            "cpu_times": r["cpu_times"], "peak_rss_mb": r["info"].get("peak_rss_mb")})

    ratios: dict = {}

    def t(key):
        return median_time(results[key]) if key in results else None

    def over_peft(key, cpu=False):
        """``key``'s median over PEFT's in the rounds where ``key`` took its turns."""
        (group,) = results[key]["times_by_group"]
        median = median_cpu if cpu else median_time
        return median(results[key]) / median(results["peft"], group)

    for b in backends:
        ratios[f"{b}_lora_vs_peft"] = over_peft(f"{b}:lora")
        if t(f"{b}:full"):
            ratios[f"{b}_lora_vs_full"] = t(f"{b}:lora") / t(f"{b}:full")
            # in different rounds: each against PEFT in its own rounds, then divided
            ratios[f"{b}_full_vs_hf_full"] = over_peft(f"{b}:full") / over_peft("hf-full")
    for key in ("torch:lora-einsum", "torch:lora-nodropout", "tensorflow:lora-xla"):
        if key in results:
            ratios[f"{key.replace(':', '_').replace('-', '_')}_vs_peft"] = over_peft(key)
    if "torch:lora-nodropout" in results:
        ratios["torch_lora_nodropout_vs_lora"] = t("torch:lora-nodropout") / t("torch:lora")
    if "hf-full" in results:
        ratios["peft_vs_hf_full"] = 1 / over_peft("hf-full")
    if threads == 1:  # CPU time measures the work only when each contender has one thread
        for b in backends:
            ratios[f"{b}_lora_vs_peft_cpu"] = over_peft(f"{b}:lora", cpu=True)
            if f"{b}:full" in results:
                ratios[f"{b}_lora_vs_full_cpu"] = (median_cpu(results[f"{b}:lora"])
                                                   / median_cpu(results[f"{b}:full"]))
                ratios[f"{b}_full_vs_hf_full_cpu"] = (over_peft(f"{b}:full", cpu=True)
                                                      / over_peft("hf-full", cpu=True))
    ratios["lora_vs_full_flops"] = (train_step_flops(dims, batch, length, True)
                                    / train_step_flops(dims, batch, length, False))
    ratios.update({f"matmul_peak_gflops_{k}": v for k, v in peaks.items()})

    size = "tiny dims (quick)" if quick else "RoBERTa-base dims"
    text = (
        f"RoBERTa train step, {size}, batch {batch} x {length} tokens; median of {args.repeats} "
        f"steps per contender after 2 warm-up steps, contenders taking turns, each in its own "
        f"process; threads: {threads or 'library default'}; GFLOP/s on "
        f"{'CPU' if on_cpu_time else 'wall-clock'} time; fp32 matmul peak "
        f"({MATMUL_N if not quick else QUICK_MATMUL_N}^3, best call) "
        + ", ".join(f"{k} {v:.0f}" for k, v in peaks.items()) + " GFLOP/s\n"
        + format_table(rows, [
            ("contender", "contender", ""), ("trainable", "trainable", ",d"),
            ("step_seconds", "s/step", ".3f"), ("cpu_seconds", "CPU s/step", ".3f"),
            ("samples_per_second", "samples/s", ".2f"), ("gflops", "GFLOP/s", ".1f"),
            ("peak_fraction", "of peak", ".0%")]))
    return {"suite": "lora", "rows": rows, "ratios": ratios, "text": text, "matmul": matmuls,
            "targets": check_targets(TARGETS, ratios)}
