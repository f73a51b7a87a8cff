"""The two experiments' configurations: typed, validated, and light to import.

A configuration is a frozen dataclass; every default and every profile is data here, in one
place. The command lines build one from their options, :meth:`~FraudConfig.validate` checks
every value up front (one clear line per mistake, before any data is read), and the resolved
configuration is recorded in the run's ``config.json`` and ``metrics.json``.

This module imports nothing heavy (no Keras, no pandas), so ``--help`` stays fast.

Example:

>>> config = FraudConfig(protocols=("none", "adasyn-train"), epochs=2).validate()
>>> config.monitor, config.threshold
('val_average_precision', 0.5)
>>> QQPConfig(profile="paper", preset="roberta_large_en").resolve().targets
('query', 'value')
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math

from project.errors import InputError
from project.paths import asset
from project.stats import METRICS

PROTOCOLS = ("none", "adasyn-all", "adasyn-train")
LEAKY = frozenset({"adasyn-all"})
MODES = ("full", "lora")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
DISTRIBUTIONS = ("none", "data")
LORA_TARGETS = ("query", "key", "value")
LORA_STYLES = ("matrix", "per-head")
BASELINES = ("logistic-regression", "gradient-boosting")
#: Keys of every epoch's logs: training loss and accuracy, then the evaluator's on validation.
EPOCH_LOG_KEYS = ("loss", "accuracy", "val_loss", *(f"val_{m}" for m in METRICS))


def protocol_label(protocol: str) -> str:
    """The protocol's name as reports show it: the leaky one says LEAKY."""
    return f"{protocol} (LEAKY)" if protocol in LEAKY else protocol


# --- checks shared by both configurations -------------------------------------------------------


def _number(name: str, value, *, low=None, high=None, low_open=False, integer=False,
            allow_none=False):
    """Check one numeric option; return it. ``name`` is the command-line option."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{name} must be a number, got {value!r}")
    if integer and (not float(value).is_integer()):
        raise InputError(f"{name} must be a whole number, got {value!r}")
    if not math.isfinite(value):
        raise InputError(f"{name} must be a finite number, got {value!r}")
    if low is not None and (value <= low if low_open else value < low):
        raise InputError(f"{name} must be {'>' if low_open else '>='} {low:g}, got {value:g}")
    if high is not None and value > high:
        raise InputError(f"{name} must be <= {high:g}, got {value:g}")
    return int(value) if integer else value


def _seeds(seeds) -> tuple[int, ...]:
    seeds = tuple(seeds)
    if not seeds:
        raise InputError("--seeds is empty: give one or more integers, e.g. --seeds 0,1,2")
    for s in seeds:
        _number("--seeds", s, low=0, integer=True)
    duplicates = sorted({s for s in seeds if seeds.count(s) > 1})
    if duplicates:
        raise InputError(f"--seeds repeats {', '.join(map(str, duplicates))}: each seed once")
    return tuple(int(s) for s in seeds)


def _common(config) -> None:
    """Checks of the options both experiments share."""
    _seeds(config.seeds)
    _number("--epochs", config.epochs, low=1, integer=True)
    _number("--batch-size", config.batch_size, low=1, integer=True)
    _number("--patience", config.patience, low=1, integer=True, allow_none=True)
    _number("--grad-accum", config.grad_accum, low=1, integer=True)
    if config.monitor not in EPOCH_LOG_KEYS:
        raise InputError(
            f"--monitor {config.monitor!r} is not logged; choose one of {', '.join(EPOCH_LOG_KEYS)}"
        )
    if config.monitor_mode not in (None, "max", "min"):
        raise InputError(f"--monitor-mode must be max or min, got {config.monitor_mode!r}")
    if config.precision not in PRECISIONS:
        raise InputError(
            f"unknown --precision {config.precision!r}: choose one of {', '.join(PRECISIONS)}"
        )
    if config.distribute not in DISTRIBUTIONS:
        raise InputError(
            f"unknown --distribute {config.distribute!r}: choose one of {', '.join(DISTRIBUTIONS)}"
        )
    if config.tensorboard and importlib.util.find_spec("tensorboard") is None:
        raise InputError(
            "--tensorboard needs the tensorboard package: pip install 'project[tensorboard]'"
        )


# --- fraud -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FraudConfig:
    """The fraud experiment: the report's ConvNet under the ADASYN protocols.

    Attributes:
        data: ``creditcard.csv`` (plain or gzipped); default the bundled synthetic sample.
        protocols: which of :data:`PROTOCOLS` to run, in order.
        seeds: one run per seed and protocol (weights, data order, dropout, ADASYN).
        epochs, batch_size, learning_rate: the report's 46, 360 and Adam 1e-4 by default.
        stratify: stratified 60/20/20 split (the report's is not).
        monitor, monitor_mode: the validation metric that picks the best epoch, and its
            direction (None: minimise loss-like metrics, maximise the rest).
        patience: early stopping after this many epochs without a new best (None: off).
        threshold: the decision threshold, or ``"val-f1"`` for the best F1 on validation.
        adasyn_k, adasyn_beta: ADASYN's neighbours and balance level.
        baselines: also fit logistic regression and gradient boosting on the same split.
        precision, distribute, grad_accum: see :mod:`project.training.scaling`.
        tensorboard: write TensorBoard scalars.
    """

    data: str = str(asset("creditcard_sample.csv.gz"))
    protocols: tuple = ("none",)
    seeds: tuple = (0,)
    epochs: int = 46
    batch_size: int = 360
    learning_rate: float = 1e-4
    stratify: bool = False
    monitor: str = "val_average_precision"
    monitor_mode: str | None = None
    patience: int | None = None
    threshold: float | str = 0.5
    adasyn_k: int = 5
    adasyn_beta: float = 1.0
    baselines: bool = True
    precision: str = "float32"
    distribute: str = "none"
    grad_accum: int = 1
    tensorboard: bool = False

    #: The report's settings (Table II and its training section).
    PAPER_EPOCHS = 46

    def validate(self) -> FraudConfig:
        """Check every value; return self. Raises InputError naming the option."""
        _common(self)
        unknown = [p for p in self.protocols if p not in PROTOCOLS]
        if unknown or not self.protocols:
            raise InputError(
                f"unknown --protocol {', '.join(unknown) or '(none)'}: choose from "
                f"{', '.join(PROTOCOLS)} or all"
            )
        _number("--learning-rate", self.learning_rate, low=0, low_open=True)
        if self.threshold != "val-f1":
            _number("--threshold", self.threshold, low=0, high=1)
        _number("--adasyn-k", self.adasyn_k, low=1, integer=True)
        _number("--adasyn-beta", self.adasyn_beta, low=0, low_open=True)
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# --- QQP ---------------------------------------------------------------------------------------

#: The two settings the project reproduces. Explicit options override them.
QQP_PROFILES = {
    # The course report (REPORT.md): Hugging Face Trainer defaults, no warm-up, no weight decay,
    # gradient clipping at 1.0 (the Trainer's max_grad_norm), length by the max+max+10 rule,
    # validation 10% of the (balanced, 1%) data, LoRA on q/k/v.
    "report": dict(
        lr_full=1e-6, lr_lora=1e-4, epochs=10, batch_size=16, warmup_ratio=0.0,
        weight_decay=0.0, clip_norm=1.0, sequence_length=None, val_fraction=0.1,
        targets=("query", "key", "value"),
    ),
    # The LoRA paper (Hu et al. 2021), RoBERTa-large on QQP: LoRA on W_q and W_v, batch 4,
    # lr 3e-4, 20 epochs, linear schedule with 6% warm-up, weight decay 0.1, length 512. Full
    # fine-tuning at 1e-5 (RoBERTa's GLUE range; 3e-4 would wreck it).
    "paper": dict(
        lr_full=1e-5, lr_lora=3e-4, epochs=20, batch_size=4, warmup_ratio=0.06,
        weight_decay=0.1, clip_norm=1.0, sequence_length=512, val_fraction=0.1,
        targets=("query", "value"),
    ),
}
#: The bundled tiny RoBERTa has random weights: at the report's rates (1e-6 / 1e-4) it learns
#: nothing and ends at the majority class. Without a preset these rates are the default instead.
TINY_MODEL_RATES = dict(lr_full=1e-3, lr_lora=5e-3)


@dataclasses.dataclass(frozen=True)
class QQPConfig:
    """The QQP experiment: RoBERTa, full fine-tuning vs LoRA, side by side.

    Attributes:
        data, dev: training file (default the bundled synthetic sample) and an optional
            validation file (e.g. GLUE's dev.tsv).
        preset: a keras-hub preset, a local preset folder or a Hugging Face directory; None: the
            tiny random RoBERTa bundled for offline runs.
        modes: which of :data:`MODES` to train.
        profile: "report" or "paper" (:data:`QQP_PROFILES`); None fields below take its values.
        epochs, batch_size, lr_full, lr_lora, weight_decay, warmup_ratio, clip_norm: training
            (AdamW, linear schedule; ``clip_norm`` 0 turns clipping off).
        sequence_length: padded pair length (None: the report's max+max+10 rule).
        val_fraction, test_fraction: shares of the data held out for validation (picks the best
            epoch) and for an untouched test split (None: no test split).
        fraction, balance: keep a stratified share; undersample the majority class.
        lora_style, rank, alpha, lora_dropout, targets: the LoRA settings.
        seeds, monitor, monitor_mode, patience: as in :class:`FraudConfig`.
        precision, distribute, grad_accum, tensorboard: as in :class:`FraudConfig`.
    """

    data: str = str(asset("qqp_sample.csv.gz"))
    dev: str | None = None
    preset: str | None = None
    modes: tuple = MODES
    profile: str = "report"
    epochs: int | None = None
    batch_size: int | None = None
    lr_full: float | None = None
    lr_lora: float | None = None
    weight_decay: float | None = None
    warmup_ratio: float | None = None
    clip_norm: float | None = None
    sequence_length: int | None = None
    val_fraction: float | None = None
    test_fraction: float | None = None
    fraction: float | None = None
    balance: bool = False
    lora_style: str = "matrix"
    rank: int = 8
    alpha: float = 16.0
    lora_dropout: float = 0.05
    targets: tuple | None = None
    seeds: tuple = (0,)
    monitor: str = "val_accuracy"
    monitor_mode: str | None = None
    patience: int | None = None
    precision: str = "float32"
    distribute: str = "none"
    grad_accum: int = 1
    tensorboard: bool = False

    def resolve(self) -> QQPConfig:
        """Fill every None from the profile (and, for the tiny model, learning rates that learn);
        validate; return the resolved configuration."""
        if self.profile not in QQP_PROFILES:
            raise InputError(
                f"unknown --profile {self.profile!r}: choose one of {', '.join(QQP_PROFILES)}"
            )
        filled = {k: v for k, v in QQP_PROFILES[self.profile].items() if getattr(self, k) is None}
        if self.preset is None:
            filled.update({k: v for k, v in TINY_MODEL_RATES.items() if getattr(self, k) is None})
        return dataclasses.replace(self, **filled).validate()

    @property
    def notes(self) -> list[str]:
        """Plain sentences about choices the run made for the user (for report.md)."""
        notes = []
        if self.preset is None and (self.lr_full, self.lr_lora) == tuple(
                TINY_MODEL_RATES.values()):
            profile = QQP_PROFILES[self.profile]
            notes.append(
                f"Learning rates {self.lr_full:g} (full) and {self.lr_lora:g} (LoRA) instead of "
                f"the {self.profile} profile's {profile['lr_full']:g} / {profile['lr_lora']:g}: "
                "the bundled tiny model has random weights and learns nothing at those rates."
            )
        return notes

    def validate(self) -> QQPConfig:
        """Check every value of a resolved configuration; return self."""
        _common(self)
        unknown = [m for m in self.modes if m not in MODES]
        if unknown or not self.modes:
            raise InputError(f"unknown --mode {', '.join(unknown) or '(none)'}: full, lora or both")
        for name, value in (("--lr-full", self.lr_full), ("--lr-lora", self.lr_lora)):
            _number(name, value, low=0, low_open=True)
        _number("--weight-decay", self.weight_decay, low=0)
        _number("--warmup-ratio", self.warmup_ratio, low=0, high=0.999999)
        _number("--clip-norm", self.clip_norm, low=0)
        _number("--sequence-length", self.sequence_length, low=4, integer=True, allow_none=True)
        _number("--val-fraction", self.val_fraction, low=0, high=0.9, low_open=True)
        _number("--test-fraction", self.test_fraction, low=0, high=0.9, low_open=True,
                allow_none=True)
        if self.val_fraction + (self.test_fraction or 0) >= 0.95:
            raise InputError("--val-fraction plus --test-fraction leave no training data")
        _number("--fraction", self.fraction, low=0, high=1, low_open=True, allow_none=True)
        if self.lora_style not in LORA_STYLES:
            raise InputError(
                f"unknown --lora-style {self.lora_style!r}: choose one of {', '.join(LORA_STYLES)}"
            )
        _number("--rank", self.rank, low=1, integer=True)
        _number("--alpha", self.alpha, low=0, low_open=True)
        _number("--lora-dropout", self.lora_dropout, low=0, high=0.999999)
        bad = [t for t in self.targets if t not in LORA_TARGETS]
        if bad or not self.targets:
            raise InputError(
                f"unknown --targets {','.join(bad) or '(none)'}: choose from {','.join(LORA_TARGETS)}"
            )
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
