"""The fraud experiment: a :class:`FraudConfig` in, a :class:`FraudResult` out.

For every seed and protocol (none, adasyn-all = LEAKY, adasyn-train): split, scale and
oversample, train the report's ConvNet with the shared loop, choose the threshold, evaluate with
this task's one evaluator (:func:`evaluate`), fit the baselines on the same rows, save the part.
Then summarise over seeds and compare every protocol with ``none`` on its untouched test rows.

Example (``run(FraudConfig(...).validate(), "runs/x")`` runs it all; here, the evaluator):

>>> from project.data.creditcard import BUNDLED_SAMPLE
>>> split = split_and_scale(load_creditcard(BUNDLED_SAMPLE))
>>> model = fit_baseline("logistic-regression", split.x_train, split.y_train)
>>> scores = evaluate(model, split.x_test, split.y_test, n_boot=0)
>>> scores.n, 0.5 < scores.roc_auc <= 1
(6400, True)
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import ClassVar

import numpy as np

from project.backend import seed_everything
from project.data.creditcard import (
    CLASS_NAMES,
    FEATURES,
    is_bundled_sample,
    load_creditcard,
    split_and_scale,
)
from project.errors import InputError, SettingError, literal
from project.experiments import rundir
from project.experiments.compare import compare, judge, summarize_runs
from project.experiments.config import FraudConfig
from project.io import write_json
from project.models import convnet
from project.models.baselines import fit_baseline
from project.models.saving import save_model
from project.sampling.protocols import protocol_split
from project.settings import BASELINES, FRAUD_SPLIT_SEED, protocol_label
from project.training.distribution import setup
from project.training.loop import TrainingResult, train
from project.training.metrics import (
    Evaluation,
    binary_cross_entropy,
    choose_threshold,
    epoch_logs,
    evaluate_scores,
)


def predict_scores(model, x) -> np.ndarray:
    """Fraud probability per row, from the ConvNet or from a scikit-learn baseline."""
    if hasattr(model, "predict_proba"):
        return model.predict_proba(x)[:, 1].astype(np.float64)
    return np.asarray(model.predict(x, batch_size=4096, verbose=0), np.float64).reshape(-1)


def evaluate(model, x, y, threshold: float = 0.5, n_boot: int | None = None,
             seed: int = 0) -> Evaluation:
    """The fraud evaluator: every model of this task (the ConvNet, a reloaded ``.keras`` file,
    a baseline with ``predict_proba``) is scored here, on scaled features ``x`` and labels ``y``;
    fraud when the probability is at least ``threshold``. ``n_boot``: bootstrap replicates of
    the intervals (None: 1,000; 0: none), drawn with ``seed``."""
    scores = predict_scores(model, x)
    kwargs = {} if n_boot is None else {"n_boot": n_boot}
    return evaluate_scores(y, scores, threshold, CLASS_NAMES,
                           loss=binary_cross_entropy(y, scores), seed=seed, **kwargs)


def validation_logs(model, x, y) -> dict:
    """:func:`evaluate`'s numbers at threshold 0.5 as epoch logs (``val_loss``, ...), without
    tables and intervals (the same values at a tenth of the cost): called after every epoch."""
    scores = predict_scores(model, x)
    return epoch_logs(y, scores, 0.5, loss=binary_cross_entropy(y, scores))


def _threshold(config: FraudConfig, model, x_val, y_val) -> float:
    if config.threshold == "val-f1":
        return choose_threshold(y_val, predict_scores(model, x_val))
    return float(config.threshold)


@dataclasses.dataclass
class ProtocolRun:
    """One protocol trained with one seed.

    Attributes:
        counts: rows and frauds per split; synthetic_rows: ADASYN rows per split.
        baselines: ``{name: {"val": Evaluation, "test": Evaluation}}``.
        clean_test: for the LEAKY adasyn-all, whose test split is not the untouched one, the
            ConvNet scored on ``none``'s test rows; ``leaked_rows`` of them were training rows.
        directory: the part's folder, relative to the run.
        split_seed: the split's random_state (50, the report's, unless ``resplit``).
        timings: ``{what}_seconds`` for ``split`` (with scaling and ADASYN), ``fit``,
            ``validation`` (per epoch), ``evaluation`` (final, with intervals), ``baselines``,
            ``save``.
    """

    protocol: str
    seed: int
    counts: dict
    synthetic_rows: dict
    training: TrainingResult
    threshold: float
    val: Evaluation
    test: Evaluation
    baselines: dict
    clean_test: Evaluation | None
    leaked_rows: int | None
    directory: str
    split_seed: int = FRAUD_SPLIT_SEED
    timings: dict = dataclasses.field(default_factory=dict)

    @property
    def label(self) -> str:
        return protocol_label(self.protocol)

    @property
    def comparable_test(self) -> Evaluation:
        """The evaluation on ``none``'s untouched test rows (the one to compare across)."""
        return self.clean_test if self.clean_test is not None else self.test

    def evaluations(self) -> dict:
        """Every evaluation of this run, by a flat name (``test``, ``baseline:...:val``)."""
        found = {"val": self.val, "test": self.test}
        if self.clean_test is not None:
            found["clean_test"] = self.clean_test
        for name, splits in self.baselines.items():
            for split, ev in splits.items():
                found[f"baseline:{name}:{split}"] = ev
        return found

    def to_dict(self) -> dict:
        return {
            "protocol": self.protocol, "label": self.label, "leaky": self.protocol == "adasyn-all",
            "seed": self.seed, "counts": self.counts, "synthetic_rows": self.synthetic_rows,
            "training": self.training.summary(), "history": self.training.history,
            "threshold": self.threshold, "val": self.val.to_dict(), "test": self.test.to_dict(),
            "clean_test": None if self.clean_test is None else self.clean_test.to_dict(),
            "leaked_rows": self.leaked_rows,
            "baselines": {n: {s: e.to_dict() for s, e in v.items()}
                          for n, v in self.baselines.items()},
            "directory": self.directory, "split_seed": self.split_seed, "timings": self.timings,
        }


def check_adasyn_can_run(df, config: FraudConfig) -> None:
    """Fail before any training, in one line naming the file and what to change, when ADASYN
    cannot run on this data (too few frauds, frauds all identical, only frauds)."""
    from project.data.creditcard import features_and_labels
    from project.sampling import ADASYN

    oversampling = [p for p in config.protocols if p != "none"]
    if not oversampling:
        return
    x, y = features_and_labels(df)
    checks = []
    if "adasyn-all" in oversampling:
        checks.append((x, y, "the whole data"))
    if "adasyn-train" in oversampling:
        for split_seed in dict.fromkeys(config.split_seed(s) for s in config.seeds):
            split = split_and_scale(df, stratify=config.stratify, seed=split_seed)
            where = "the training split" + (f" (split seed {split_seed})" if config.resplit else "")
            checks.append((split.x_train, split.y_train, where))
    for xs, ys, where in checks:
        frauds = int(ys.sum())
        if frauds == 0 or frauds == len(ys):
            raise InputError(f"{config.data}: {where} has {frauds} frauds in {len(ys)} rows; "
                             "ADASYN needs both classes")
        if frauds <= config.adasyn_k:
            raise SettingError(
                literal(f"{config.data}: {where} has {frauds} frauds; ADASYN with ") + "{adasyn_k} "
                + literal(f"{config.adasyn_k} needs more than {config.adasyn_k} (lower ")
                + "{adasyn_k})")
        try:
            ADASYN(n_neighbors=config.adasyn_k, beta=config.adasyn_beta,
                   variant=config.adasyn_variant).fit(xs, ys)
        except ValueError as err:
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise InputError(f"{config.data}: ADASYN cannot run on {where} ({reason})") from None


def _train_part(df, raw_x, protocol: str, seed: int, folder: Path, config: FraudConfig,
                context: rundir.RunContext) -> ProtocolRun:
    run, plan, log = context.run, context.plan, context.log
    clock = time.perf_counter()
    split_seed = config.split_seed(seed)
    split = protocol_split(df, protocol, seed=seed, stratify=config.stratify,
                           n_neighbors=config.adasyn_k, beta=config.adasyn_beta,
                           variant=config.adasyn_variant, split_seed=split_seed)
    timings = {"split_seconds": time.perf_counter() - clock}
    seed_everything(seed)
    with plan.model_scope():  # the run's precision and devices
        model = convnet.compile_convnet(plan.prepare(convnet.build_convnet()),
                                        learning_rate=config.learning_rate,
                                        grad_accum=config.grad_accum)
    y_train = split.y_train[:, None].astype("float32")

    def validate(m):
        return validation_logs(m, split.x_val, split.y_val)

    log(f"== seed {seed} · {protocol_label(protocol)}: {len(split.y_train):,} training rows ==")
    training = train(
        model, split.x_train, y_train, validate=validate, epochs=config.epochs, seed=seed,
        batch_size=config.batch_size, monitor=config.monitor, mode=config.monitor_mode,
        patience=config.patience, checkpoint=folder / rundir.CHECKPOINT_FILE,
        data_id=rundir.array_digest(split.x_train, y_train, split.x_val, split.y_val),
        where=f"seed {seed} · {protocol}", progress=context.progress, verbose=context.verbose,
        tensorboard_dir=folder / "tensorboard" if config.tensorboard else None, log=log, plan=plan)
    timings.update(fit_seconds=sum(training.epoch_seconds),
                   validation_seconds=sum(training.history.get("val_seconds", [])))
    clock = time.perf_counter()
    threshold = _threshold(config, model, split.x_val, split.y_val)
    val = evaluate(model, split.x_val, split.y_val, threshold, seed=seed)
    test = evaluate(model, split.x_test, split.y_test, threshold, seed=seed)

    clean_test = leaked = None
    if (split.test_rows < 0).any():  # the LEAKY split: also score none's untouched test rows
        clean = split_and_scale(df, stratify=config.stratify, seed=split_seed)
        x_clean = split.scaler.transform(raw_x[clean.test_rows]).astype(np.float32)
        clean_test = evaluate(model, x_clean, clean.y_test, threshold, seed=seed)
        leaked = int(np.isin(clean.test_rows, split.train_rows).sum())

    timings["evaluation_seconds"], clock = time.perf_counter() - clock, time.perf_counter()
    baselines = {}
    if config.baselines:
        for name in BASELINES:
            estimator = fit_baseline(name, split.x_train, split.y_train, seed)
            cut = _threshold(config, estimator, split.x_val, split.y_val)
            baselines[name] = {
                "val": evaluate(estimator, split.x_val, split.y_val, cut, seed=seed),
                "test": evaluate(estimator, split.x_test, split.y_test, cut, seed=seed),
            }

    timings["baselines_seconds"], clock = time.perf_counter() - clock, time.perf_counter()
    part = ProtocolRun(
        protocol=protocol, seed=seed, counts=split.counts(),
        synthetic_rows={s: int((rows < 0).sum()) for s, rows in (
            ("train", split.train_rows), ("val", split.val_rows), ("test", split.test_rows))},
        training=training, threshold=threshold, val=val, test=test, baselines=baselines,
        clean_test=clean_test, leaked_rows=leaked,
        directory=str(folder.relative_to(run.path)), split_seed=split_seed, timings=timings,
    )
    model_path = save_model(model, folder / "model.keras")  # float32 policies
    write_json(folder / "model.json", {
        "task": "fraud", "run_id": run.run_id, "part": protocol, "seed": seed,
        "model_sha256": rundir.file_sha256(model_path), "features": FEATURES,
        "mean": split.scaler.mean_, "scale": split.scaler.scale_, "protocol": protocol,
        "stratify": config.stratify, "adasyn_k": config.adasyn_k, "adasyn_beta": config.adasyn_beta,
        "adasyn_variant": config.adasyn_variant, "split_seed": split_seed, "threshold": threshold,
    })
    timings["save_seconds"] = time.perf_counter() - clock
    rundir.save_part(folder, part)
    return part


@dataclasses.dataclass
class FraudResult(rundir.RunResult):
    """A whole fraud run: one :class:`ProtocolRun` per (seed, protocol); ``summary`` covers the
    ConvNet (``val``, ``test``) and the baselines (``baseline:<name>:<split>``)."""

    experiment: ClassVar[str] = "fraud"
    part_key: ClassVar[str] = "protocol"


#: The primary comparison and metric, whose verdict stands alone (others are Holm-adjusted).
PRIMARY = ("adasyn-train", "average_precision")


def compare_with_none(runs: list, resplit: bool = False) -> list:
    """Each protocol minus ``none`` on ``none``'s untouched test rows (for the LEAKY protocol:
    :attr:`ProtocolRun.comparable_test`), :data:`PRIMARY` the primary verdict (``resplit``: each
    seed had its own split)."""
    by_key = {(r.protocol, r.seed): r for r in runs}
    comparisons = []
    for protocol in dict.fromkeys(r.protocol for r in runs):
        pairs = [(seed, by_key[(protocol, seed)], by_key[("none", seed)])
                 for seed in dict.fromkeys(r.seed for r in runs)
                 if protocol != "none" and ("none", seed) in by_key]
        if not pairs:
            continue
        entry = compare([(seed, a.comparable_test, b.test) for seed, a, b in pairs],
                        f"{protocol_label(protocol)} − none",
                        ("average_precision", "f1", "recall", "precision"),
                        shared_examples=not resplit)
        comparisons.append({"a": protocol, "b": "none", "split": "test (none's rows)",
                            "leaked_rows": pairs[0][1].leaked_rows, **entry})
    primary = next(((i, PRIMARY[1]) for i, c in enumerate(comparisons) if c["a"] == PRIMARY[0]),
                   None)
    judge(comparisons, primary)
    return comparisons


def run(config: FraudConfig, out, *, resume: rundir.RunDirectory | None = None,
        verbose="auto", log=print) -> FraudResult:
    """Run a validated ``config`` (or, with ``resume``, a checked run folder's) under ``out``,
    which must not hold a run unless resumed. Every part's files are written; metrics.json and
    report.md are the caller's (:func:`project.reporting.fraud.write_fraud_outputs`)."""
    plan = setup(config)  # before any data: precision, devices, other processes
    if resume is None:
        rundir.RunDirectory.check_writable(out, plan.chief)  # before any data is read
    df = load_creditcard(config.data)
    check_adasyn_can_run(df, config)
    context = rundir.start("fraud", config, out, plan, config.protocols, resume=resume,
                           data_files=[config.data], verbose=verbose, log=log)
    raw_x = df[FEATURES].to_numpy(np.float32)
    parts = rundir.run_parts(
        context, config.protocols,
        lambda protocol, seed, folder: _train_part(df, raw_x, protocol, seed, folder, config,
                                                   context),
        ProtocolRun, label=protocol_label)
    data = {"path": str(config.data),
            "sha256": context.run.record["data_sha256"].get(str(config.data)),
            "synthetic": is_bundled_sample(config.data), "rows": len(df),
            "frauds": int(df["Class"].sum())}
    return FraudResult.of(context, data=data, runs=parts,
                          summary=summarize_runs(parts, "protocol"),
                          comparisons=compare_with_none(parts, config.resplit))
