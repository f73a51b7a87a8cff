"""Every setting's name, default and check, in one place (light: no Keras, no NumPy).

The configurations, LoRA, scaling, the protocols and the scripts' help take their names and
defaults from here (change a default here), and check a value with one function below per
setting. A bad value raises :class:`~project.errors.SettingError` naming the *argument*
(``rank must be >= 1, got 0``); command lines show the *flag* (:func:`project.cli.flag_names`).

>>> lora_settings(rank=8, alpha=16, dropout=0.05, targets=("value", "query"))
('query', 'value')
>>> number("rank", 0, low=1, integer=True)
Traceback (most recent call last):
...
project.errors.SettingError: rank must be >= 1, got 0
"""

from __future__ import annotations

import math
import numbers

from project.errors import SettingError

#: The fraud protocols; ``adasyn-all`` (ADASYN before the split, the paper's) leaks.
PROTOCOLS = ("none", "adasyn-all", "adasyn-train")
LEAKY = frozenset({"adasyn-all"})
#: The QQP training modes, and their names in reports.
MODES = ("full", "lora")
MODE_LABELS = {"full": "Full fine-tuning", "lora": "LoRA"}
#: Keras dtype policies a run may use.
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
#: ``data``: data parallel over every local device (and every process of the run).
DISTRIBUTIONS = ("none", "data")
#: The attention projections LoRA may target, in their canonical order.
LORA_TARGETS = ("query", "key", "value")
#: ``matrix``: the paper's and PEFT's LoRA; ``per-head``: keras-hub's EinsumDense LoRA.
LORA_STYLES = ("matrix", "per-head")
#: Quantisations of LoRA's frozen base (``--quantize``): Keras's int8 (per-channel scales).
QUANTIZE_MODES = ("int8",)
#: The scikit-learn baselines fitted beside the ConvNet.
BASELINES = ("logistic-regression", "gradient-boosting")
#: Metrics every evaluation reports, with an interval each. ``average_precision`` is
#: scikit-learn's step-wise average precision, not Keras's interpolated PR-AUC.
METRICS = ("accuracy", "precision", "recall", "f1", "average_precision", "roc_auc")
#: Keys of every epoch's logs: training loss and accuracy, then the evaluator's on validation.
EPOCH_LOG_KEYS = ("loss", "accuracy", "val_loss", *(f"val_{m}" for m in METRICS))


def protocol_label(protocol: str) -> str:
    """The protocol's name as reports show it: the leaky one says LEAKY.

    >>> protocol_label("adasyn-all")
    'adasyn-all (LEAKY)'
    """
    return f"{protocol} (LEAKY)" if protocol in LEAKY else protocol


#: LoRA as in the paper and PEFT: rank, alpha (the branch is scaled by alpha / rank), dropout
#: on the branch's input; the report's targets are query, key and value.
LORA_RANK = 8
LORA_ALPHA = 16.0
LORA_DROPOUT = 0.05
#: The report's ConvNet training (Table II and its training section).
FRAUD_EPOCHS = 46
FRAUD_BATCH_SIZE = 360
FRAUD_LEARNING_RATE = 1e-4
FRAUD_MONITOR = "val_average_precision"
#: ADASYN's neighbours and balance level, and the default decision threshold.
ADASYN_K = 5
ADASYN_BETA = 1.0
#: ADASYN's variants: He et al. (2008), and the course report's function (which its published
#: numbers used); see :class:`project.sampling.adasyn.ADASYN`.
ADASYN_VARIANTS = ("he2008", "report")
ADASYN_VARIANT = "he2008"
#: The report's split: ``train_test_split(..., random_state=50)``. With ``resplit`` seed s
#: splits with ``FRAUD_SPLIT_SEED + s`` (so seed 0 keeps the report's split); QQP with the seed.
FRAUD_SPLIT_SEED = 50
THRESHOLD = 0.5
QQP_MONITOR = "val_accuracy"
#: ``<s> A </s></s> B </s>`` needs at least four positions.
MIN_SEQUENCE_LENGTH = 4

#: The two QQP settings the project reproduces. Explicit options override them.
QQP_PROFILES = {
    # The course report: Hugging Face Trainer defaults, no warm-up, no weight decay, gradient
    # clipping at 1.0 (the Trainer's max_grad_norm), length by the max+max+10 rule, validation
    # 10% of the (balanced, 1%) data, LoRA on q/k/v.
    "report": dict(
        lr_full=1e-6, lr_lora=1e-4, epochs=10, batch_size=16, warmup_ratio=0.0,
        weight_decay=0.0, clip_norm=1.0, sequence_length=None, val_fraction=0.1,
        targets=LORA_TARGETS,
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


def number(name: str, value, *, low=None, high=None, low_open=False, integer=False,
           allow_none=False):
    """Check one numeric setting; return it (an int when ``integer``).

    >>> number("epochs", 3.0, low=1, integer=True)
    3
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise SettingError.about(name, f"must be a number, got {value!r}")
    if not math.isfinite(value):
        raise SettingError.about(name, f"must be a finite number, got {value!r}")
    if integer and not float(value).is_integer():
        raise SettingError.about(name, f"must be a whole number, got {value!r}")
    if low is not None and (value <= low if low_open else value < low):
        raise SettingError.about(name, f"must be {'>' if low_open else '>='} {low:g}, "
                                       f"got {value:g}")
    if high is not None and value > high:
        raise SettingError.about(name, f"must be <= {high:g}, got {value:g}")
    return int(value) if integer else float(value) if isinstance(value, float) else value


def choice(name: str, value, allowed):
    """``value`` if it is one of ``allowed``."""
    if value not in allowed:
        raise SettingError.about(name, f"{value!r} is not one of {', '.join(map(str, allowed))}")
    return value


def several(name: str, values, allowed, canonical: bool = False) -> tuple:
    """A non-empty selection from ``allowed`` without repeats, in the given order (or in
    ``allowed``'s order when ``canonical``)."""
    values = (values,) if isinstance(values, str) else tuple(values)
    unknown = [v for v in values if v not in allowed]
    if unknown or not values:
        what = f"has unknown {', '.join(map(str, unknown))}" if unknown else "is empty"
        raise SettingError.about(name, f"{what}: choose from {', '.join(allowed)}")
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        raise SettingError.about(name, f"repeats {', '.join(repeated)}")
    return tuple(v for v in allowed if v in values) if canonical else values


def seeds(values) -> tuple[int, ...]:
    """One or more distinct non-negative integer seeds."""
    values = tuple(values)
    if not values:
        raise SettingError.about("seeds", "is empty: give one or more integers, e.g. 0,1,2")
    values = tuple(number("seeds", s, low=0, integer=True) for s in values)
    repeated = sorted({s for s in values if values.count(s) > 1})
    if repeated:
        raise SettingError.about("seeds", f"repeats {', '.join(map(str, repeated))}: each seed "
                                          "once")
    return values


def lora_settings(rank, alpha, dropout, targets=LORA_TARGETS, style="matrix") -> tuple:
    """Check LoRA's settings; return the targets in their canonical order (query, key, value)."""
    number("rank", rank, low=1, integer=True)
    number("alpha", alpha, low=0, low_open=True)
    number("lora_dropout", dropout, low=0)
    if dropout >= 1:
        raise SettingError.about("lora_dropout", f"must be < 1, got {dropout:g}")
    choice("lora_style", style, LORA_STYLES)
    return several("targets", targets, LORA_TARGETS, canonical=True)


def quantize_mode(value) -> str | None:
    """None (float32 base) or one of :data:`QUANTIZE_MODES`.

    >>> quantize_mode("int4")
    Traceback (most recent call last):
    ...
    project.errors.SettingError: quantize 'int4' is not one of int8
    """
    return None if value is None else choice("quantize", value, QUANTIZE_MODES)


def quantize_settings(quantize, modes, lora_style: str = "matrix",
                      precision: str = "float32") -> str | None:
    """Check ``quantize`` against its run: LoRA's frozen base only, matrix LoRA, no float16
    compute (Keras's int8 path refuses it)."""
    quantize = quantize_mode(quantize)
    if quantize is None:
        return None
    if "full" in modes:
        raise SettingError("{quantize} " + f"{quantize} quantises LoRA's frozen base: use it with "
                           "{modes} lora (full fine-tuning trains every weight)")
    if lora_style != "matrix":
        raise SettingError("{quantize} needs {lora_style} matrix (the paper's LoRA)")
    if precision == "mixed_float16":
        raise SettingError("{quantize} " + f"{quantize} does not work with float16 compute "
                           "({precision} mixed_float16): use float32 or mixed_bfloat16")
    return quantize


def flag_value(name: str, value) -> bool:
    """A yes/no setting (``remat``, ...)."""
    if not isinstance(value, bool):
        raise SettingError.about(name, f"must be true or false, got {value!r}")
    return value


def sequence_length(value, max_length: int) -> int:
    """A padded pair length the model can take (None: ``max_length``)."""
    if value is None:
        return int(max_length)
    value = number("sequence_length", value, low=MIN_SEQUENCE_LENGTH, integer=True)
    if value > max_length:
        raise SettingError.about("sequence_length", f"{value} is above the model's maximum "
                                                    f"{max_length}")
    return value


def split_seed(experiment: str, seed: int, resplit: bool) -> int:
    """The data split's seed for a training seed: fixed (the fraud report's 50, QQP's 0), or,
    with ``resplit``, one per training seed.

    >>> split_seed("fraud", 3, False), split_seed("fraud", 3, True), split_seed("qqp", 3, True)
    (50, 53, 3)
    """
    fixed = FRAUD_SPLIT_SEED if experiment == "fraud" else 0
    return fixed + int(seed) if resplit else fixed


def monitor_mode(monitor: str, mode: str | None = None) -> str:
    """``"min"`` for loss-like metrics (``loss``, ``val_loss``, ``*_error``), else ``"max"``;
    an explicit ``mode`` (``"max"`` or ``"min"``) wins.

    >>> monitor_mode("val_loss"), monitor_mode("val_accuracy"), monitor_mode("loss", "max")
    ('min', 'max', 'max')
    """
    if mode is not None:
        return choice("monitor_mode", mode, ("max", "min"))
    return "min" if ("loss" in monitor or monitor.endswith("error")) else "max"
