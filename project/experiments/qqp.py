"""The QQP experiment: a :class:`QQPConfig` in, a :class:`QQPResult` out.

Prepare the pairs (:func:`prepare`: split, pair length, tokens); then for every seed and mode
(full fine-tuning, LoRA) build the classifier, train it with the shared loop, evaluate it with
this task's one evaluator (:func:`evaluate`) and save it. Finally summarise over seeds and
compare LoRA with full fine-tuning on the same validation (and test) pairs.

Example (``run(QQPConfig(...).resolve(), "runs/x")`` runs it all; here, its data):

>>> from project.experiments.config import QQPConfig
>>> prepared = prepare(QQPConfig().resolve())          # the bundled sample, tiny RoBERTa
>>> prepared.features["train"]["token_ids"].shape[0], prepared.length.sequence_length > 10
(2157, True)
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import ClassVar

import keras
import numpy as np

from project.backend import seed_everything
from project.data.qqp import CLASS_NAMES, LABEL
from project.data.qqp_length import LengthChoice, choose_sequence_length, tokenize_pairs
from project.data.qqp_splits import QQPData, load_qqp
from project.experiments import rundir
from project.experiments.compare import compare, judge, summarize_runs
from project.experiments.config import QQPConfig
from project.interop import load_classifier
from project.io import write_json
from project.models import lora
from project.models.adapters import save_adapter
from project.models.backbone import rematerialize_layers
from project.models.quantize import quantize_base
from project.models.roberta import build_preprocessor, detached_preprocessor
from project.models.saving import save_model
from project.settings import METRICS, MODE_LABELS
from project.training.devices import check_quantize_support
from project.training.distribution import setup
from project.training.loop import TrainingResult, train
from project.training.metrics import (
    Evaluation,
    epoch_logs,
    evaluate_scores,
    positive_scores,
    softmax_cross_entropy,
)
from project.training.optimizer import fine_tuning_optimizer


def predict_logits(model, features: dict, batch_size: int = 64) -> np.ndarray:
    """Logits for pre-tokenised pairs (``{"token_ids", "padding_mask"}``); the model's string
    preprocessor, if any, is bypassed."""
    with detached_preprocessor(model):
        return np.asarray(model.predict(features, batch_size=batch_size, verbose=0), np.float64)


def evaluate(model, features: dict, labels, n_boot: int | None = None, seed: int = 0,
             batch_size: int = 64) -> Evaluation:
    """The QQP evaluator: every classifier of this task (in training, reloaded from a ``.keras``
    file, with an adapter) is scored here, at threshold 0.5 (the argmax of its 2 logits), on
    tokenised pairs (:func:`project.data.qqp_length.tokenize_pairs`) and ``is_duplicate``
    labels. ``n_boot``: bootstrap replicates (None: 1,000; 0: none), drawn with ``seed``."""
    logits = predict_logits(model, features, batch_size)
    kwargs = {} if n_boot is None else {"n_boot": n_boot}
    return evaluate_scores(labels, positive_scores(logits), 0.5, CLASS_NAMES,
                           loss=softmax_cross_entropy(labels, logits), seed=seed, **kwargs)


def validation_logs(model, features: dict, labels) -> dict:
    """:func:`evaluate`'s numbers as epoch logs (``val_loss``, ``val_accuracy``, ...), without
    tables and intervals: called after every epoch."""
    logits = predict_logits(model, features)
    return epoch_logs(labels, positive_scores(logits), 0.5,
                      loss=softmax_cross_entropy(labels, logits))


@dataclasses.dataclass
class PreparedData:
    """The pairs of one run, tokenised: what every seed and mode trains and is scored on."""

    data: QQPData
    length: LengthChoice
    features: dict  # {"train", "validation", "test"}: tokenised pairs (test may be None)
    labels: dict
    max_length: int
    model_description: str
    data_seed: int = 0

    def summary(self) -> dict:
        return {**self.data.summary(), "length": self.length.summary(), "data_seed": self.data_seed}


def prepare(config: QQPConfig, data_seed: int = 0) -> PreparedData:
    """Read, balance, subsample and split the pairs (``data_seed``: the seed of all three);
    choose the length from the training pairs alone; tokenise once."""
    data = load_qqp(config.data, config.dev, fraction=config.fraction, balance=config.balance,
                    validation_fraction=config.val_fraction, test_fraction=config.test_fraction,
                    seed=data_seed)
    probe = load_classifier(config.preset)
    max_length = probe.backbone.max_sequence_length
    requested = config.sequence_length
    if requested is not None and requested == (QQPConfig(profile=config.profile).resolve()
                                               .sequence_length):
        requested = min(requested, max_length)  # a profile's length (the paper's 512), capped
    # The rule reads the training questions only: validation and test pairs are not looked at.
    length = choose_sequence_length(probe.preprocessor.tokenizer, data.train, max_length, requested)
    preprocessor = build_preprocessor(probe.preprocessor.tokenizer, length.sequence_length)
    splits = {"train": data.train, "validation": data.validation, "test": data.test}
    features = {k: None if f is None else tokenize_pairs(preprocessor, f)
                for k, f in splits.items()}
    labels = {k: None if f is None else f[LABEL].to_numpy() for k, f in splits.items()}
    b = probe.backbone
    description = (f"`{config.preset}`" if config.preset else "tiny RoBERTa, random weights") + (
        f" ({b.num_layers} layers, {b.num_heads} heads, hidden {b.hidden_dim}, vocabulary "
        f"{b.vocabulary_size:,})")
    return PreparedData(data, length, features, labels, max_length, description, data_seed)


@dataclasses.dataclass
class ModeRun:
    """One mode trained with one seed: its peak ``learning_rate``, parameter counts (LoRA's A and
    B in the total), evaluations (``test`` None without a test split), file sizes, and for LoRA
    its settings and the largest logit change from merging it into the kernels; ``directory``
    is relative to the run, ``data_seed`` that of its split (0 unless ``resplit``)."""

    mode: str
    seed: int
    learning_rate: float
    trainable_params: int
    total_params: int
    training: TrainingResult
    val: Evaluation
    test: Evaluation | None
    model_bytes: int
    adapter_bytes: int | None
    merge_max_abs_diff: float | None
    lora: dict | None
    directory: str
    data_seed: int = 0

    @property
    def label(self) -> str:
        return MODE_LABELS[self.mode]

    def evaluations(self) -> dict:
        return {"val": self.val} if self.test is None else {"val": self.val, "test": self.test}

    def to_dict(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data.update(label=self.label, training=self.training.summary(),
                    history=self.training.history, val=self.val.to_dict(),
                    test=None if self.test is None else self.test.to_dict(),
                    trainable_share=self.trainable_params / self.total_params)
        return data


def new_model(config: QQPConfig, mode: str, seed: int, sequence_length: int):
    """A fresh classifier for ``mode``; the same seed gives full and LoRA the same start. LoRA
    on an int8 base with ``config.quantize``; rematerialised layers with ``config.remat``."""
    seed_everything(seed)
    model = load_classifier(config.preset, sequence_length=sequence_length)
    if mode == "lora":
        lora.enable_lora(model, config.rank, config.alpha, config.lora_dropout,
                         targets=config.targets, style=config.lora_style, seed=seed)
        if config.quantize:
            quantize_base(model, config.quantize)
    if config.remat:
        rematerialize_layers(model.backbone)
    return model


def _train_part(prepared: PreparedData, mode: str, seed: int, folder: Path, config: QQPConfig,
                context: rundir.RunContext) -> ModeRun:
    run, plan, log = context.run, context.plan, context.log
    features, labels = prepared.features, prepared.labels
    learning_rate = config.lr_full if mode == "full" else config.lr_lora
    # The updates that really happen, so that the linear schedule ends at 0 on the last one.
    updates = plan.updates(len(labels["train"]), config.batch_size, config.epochs)
    with plan.model_scope():  # the run's precision and devices
        model = plan.prepare(new_model(config, mode, seed, prepared.length.sequence_length))
        model.compile(
            optimizer=fine_tuning_optimizer(learning_rate, updates, config.warmup_ratio,
                                            config.weight_decay, config.clip_norm,
                                            config.grad_accum),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        )
    trainable, total = lora.count_params(model)
    log(f"== seed {seed} · {MODE_LABELS[mode]}: {trainable:,} of {total:,} parameters trainable, "
        f"lr {learning_rate:g}, {config.epochs} epochs ==")

    def validate(m):
        return validation_logs(m, features["validation"], labels["validation"])

    with detached_preprocessor(model):
        training = train(
            model, features["train"], labels["train"], validate=validate, epochs=config.epochs,
            batch_size=config.batch_size, seed=seed, monitor=config.monitor,
            mode=config.monitor_mode, patience=config.patience,
            checkpoint=folder / rundir.CHECKPOINT_FILE, where=f"seed {seed} · {mode}",
            data_id=rundir.array_digest(features["train"]["token_ids"], labels["train"],
                                        features["validation"]["token_ids"]),
            tensorboard_dir=folder / "tensorboard" if config.tensorboard else None,
            progress=context.progress, verbose=context.verbose, log=log, plan=plan)
    val = evaluate(model, features["validation"], labels["validation"], seed=seed)
    test = None
    if features["test"] is not None:
        test = evaluate(model, features["test"], labels["test"], seed=seed)

    adapter_bytes = merge_diff = settings = None
    if mode == "lora":
        settings = lora.lora_config(model)
        adapter = save_adapter(model, folder / "adapter.safetensors")
        adapter_bytes = adapter.stat().st_size
    if mode == "lora" and not config.quantize:  # an int8 base is saved unmerged
        before = predict_logits(model, features["validation"])
        lora.merge_lora(model)
        merge_diff = float(np.abs(predict_logits(model, features["validation"]) - before).max())
    # A plain optimizer: the saved file holds no training state and no custom schedule.
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate, epsilon=1e-8),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    model_path = save_model(model, folder / "model.keras")  # float32 policies
    data = prepared.data
    write_json(folder / "model.json", {
        "task": "qqp", "run_id": run.run_id, "part": mode, "seed": seed,
        "model_sha256": rundir.file_sha256(model_path),
        "sequence_length": prepared.length.sequence_length,
        "data": {"path": data.source, "dev": config.dev, "balance": config.balance,
                 "fraction": config.fraction, "val_fraction": config.val_fraction,
                 "test_fraction": config.test_fraction, "seed": prepared.data_seed,
                 "sha256": run.record["data_sha256"].get(str(config.data))},
    })
    part = ModeRun(
        mode=mode, seed=seed, learning_rate=learning_rate, trainable_params=trainable,
        total_params=total, training=training, val=val, test=test, lora=settings,
        model_bytes=model_path.stat().st_size, adapter_bytes=adapter_bytes,
        merge_max_abs_diff=merge_diff, directory=str(folder.relative_to(run.path)),
        data_seed=prepared.data_seed)
    rundir.save_part(folder, part)
    return part


@dataclasses.dataclass
class QQPResult(rundir.RunResult):
    """A whole QQP run: one :class:`ModeRun` per (seed, mode); ``data`` also holds the splits,
    duplicate rates and length choice; ``model``: its description and maximum length;
    ``lengths``: the token counts behind the pair length (for the report's histogram)."""

    model: dict | None = None
    lengths: LengthChoice | None = None

    experiment: ClassVar[str] = "qqp"
    part_key: ClassVar[str] = "mode"

    def to_dict(self) -> dict:
        data = super().to_dict()
        data["config"]["notes"] = self.config.notes
        return {**data, "model": self.model}


def compare_modes(runs: list, resplit: bool = False) -> list:
    """LoRA minus full fine-tuning on the same validation (and test) pairs, judged with accuracy
    on the held-out split (test, else validation) as the primary verdict (``resplit``: each seed
    had its own split)."""
    by_key = {(r.mode, r.seed): r for r in runs}
    seeds = [s for s in dict.fromkeys(r.seed for r in runs)
             if ("lora", s) in by_key and ("full", s) in by_key]
    if not seeds:
        return []
    comparisons = []
    for split in by_key[("lora", seeds[0])].evaluations():
        pairs = [(s, by_key[("lora", s)].evaluations()[split],
                  by_key[("full", s)].evaluations()[split]) for s in seeds]
        name = "validation" if split == "val" else "test"
        comparisons.append({"a": "lora", "b": "full", "split": split,
                            **compare(pairs, f"LoRA − full ({name})", shared_examples=not resplit)})
    held_out = [i for i, c in enumerate(comparisons) if c["split"] == "test"] or [0]
    judge(comparisons, (held_out[0], "accuracy"))
    return comparisons


def run(config: QQPConfig, out, *, resume: rundir.RunDirectory | None = None,
        verbose="auto", log=print) -> QQPResult:
    """Run a resolved ``config`` (or, with ``resume``, a checked run folder's) under ``out``,
    which must not hold a run unless resumed. metrics.json, report.md and the plots are the
    caller's (:func:`project.reporting.qqp.write_qqp_outputs`)."""
    plan = setup(config)  # before any data: precision, devices, other processes
    check_quantize_support(config.quantize, keras.backend.backend())
    if resume is None:
        rundir.RunDirectory.check_writable(out, plan.chief)  # before any data is read
    prepared = {}  # the data of the seed being trained (one split per seed with resplit)

    def data_for(seed: int) -> PreparedData:
        if config.split_seed(seed) not in prepared:
            prepared.clear()
            prepared[config.split_seed(seed)] = prepare(config, config.split_seed(seed))
        return prepared[config.split_seed(seed)]

    first = data_for(config.seeds[0])  # before the run folder: bad data is refused first
    data = first.data
    log(f"{data.source}: {data.rows_read:,} rows, dropped {data.dropped_missing} with an empty "
        f"question; {len(data.train):,} training, {len(data.validation):,} validation"
        + (f", {len(data.test):,} test" if data.test is not None else "") + " pairs; pair length "
        f"{first.length.sequence_length}" + (f" (seed {config.seeds[0]}'s split; one per seed)"
                                             if config.resplit else ""))
    # What the report says of the data: the first seed's.
    summary, lengths = first.summary(), first.length
    model = {"preset": config.preset, "random_weights": config.preset is None,
             "description": first.model_description, "max_sequence_length": first.max_length}
    del first, data
    context = rundir.start("qqp", config, out, plan, config.modes, resume=resume,
                           data_files=[config.data, config.dev], verbose=verbose, log=log)
    parts = rundir.run_parts(
        context, config.modes,
        lambda mode, seed, folder: _train_part(data_for(seed), mode, seed, folder, config, context),
        ModeRun, label=MODE_LABELS.get)
    return QQPResult.of(
        context, data={**summary,
                       "sha256": context.run.record["data_sha256"].get(str(config.data)),
                       "data_seeds": [config.split_seed(s) for s in config.seeds]},
        model=model, runs=parts, summary=summarize_runs(parts, "mode", ("loss", *METRICS)),
        comparisons=compare_modes(parts, config.resplit), lengths=lengths)
