"""The RoBERTa pair classifier for QQP, from keras-hub.

:func:`build_classifier` returns a ``keras_hub.models.RobertaTextClassifier`` with its
preprocessor (pair format ``<s> A </s></s> B </s>``, padded to ``sequence_length``) from one of:

* a keras-hub preset name such as ``"roberta_large_en"`` (downloaded once, needs the network),
* a local keras-hub preset folder (``config.json``, ``model.weights.h5``, ``tokenizer.json`` and
  the vocabulary and merges under ``assets/``), e.g. one saved with ``save_to_preset``,
* nothing: a random-weight RoBERTa from an explicit configuration, by default the tiny one in
  ``assets/qqp_tiny_config.json`` with the bundled byte-level BPE tokenizer (works offline).

The head is keras-hub's (``<s>`` token, dropout, ``pooled_dense`` tanh, dropout, ``logits``) with
dropout 0.1 as in Hugging Face's ``RobertaForSequenceClassification``.

Example:

>>> model = build_classifier(sequence_length=64)       # tiny, random weights, offline
>>> model.preprocessor.sequence_length
64
>>> model.predict((["How do I learn Python?"], ["How can I learn Python?"]), verbose=0).shape
(1, 2)
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
from pathlib import Path

import keras
import keras_hub

from project.errors import InputError
from project.paths import asset

TINY_CONFIG_PATH = asset("qqp_tiny_config.json")
ASSETS_DIR = TINY_CONFIG_PATH.parent

BACKBONE_KEYS = (
    "vocabulary_size", "num_layers", "num_heads", "hidden_dim", "intermediate_dim",
    "max_sequence_length",
)
# Dimensions of the published checkpoints (keras-hub counts 512 positions; HF stores 514).
ROBERTA_BASE = dict(
    vocabulary_size=50265, num_layers=12, num_heads=12, hidden_dim=768, intermediate_dim=3072,
    max_sequence_length=512,
)
ROBERTA_LARGE = dict(
    vocabulary_size=50265, num_layers=24, num_heads=16, hidden_dim=1024, intermediate_dim=4096,
    max_sequence_length=512,
)

_NETWORK_HOSTS = {"kaggle": "www.kaggle.com", "hf": "huggingface.co"}


def tiny_config() -> dict:
    """The bundled tiny configuration, tokenizer paths made absolute."""
    with open(TINY_CONFIG_PATH, encoding="utf-8") as f:
        config = json.load(f)
    for key in ("vocabulary", "merges"):
        config[key] = str(TINY_CONFIG_PATH.parent / config[key])
    return config


def build_tokenizer(vocabulary, merges) -> keras_hub.models.RobertaTokenizer:
    """A RobertaTokenizer from vocab.json and merges.txt paths (or a dict and a list)."""
    for name, value in (("vocabulary", vocabulary), ("merges", merges)):
        if isinstance(value, (str, os.PathLike)) and not Path(value).is_file():
            raise InputError(f"{value}: no such tokenizer file ({name})")
    return keras_hub.models.RobertaTokenizer(
        vocabulary=str(vocabulary) if isinstance(vocabulary, os.PathLike) else vocabulary,
        merges=str(merges) if isinstance(merges, os.PathLike) else merges,
    )


def build_preprocessor(tokenizer, sequence_length: int):
    """The pair preprocessor: ``<s> q1 </s></s> q2 </s>``, truncated round-robin, padded."""
    return keras_hub.models.RobertaTextClassifierPreprocessor(
        tokenizer=tokenizer, sequence_length=int(sequence_length)
    )


def _check_length(sequence_length, max_length: int) -> int:
    if sequence_length is None:
        return int(max_length)
    if int(sequence_length) < 4:
        raise InputError(
            f"sequence length must be at least 4, got {sequence_length} (--sequence-length)"
        )
    if int(sequence_length) > max_length:
        raise InputError(
            f"sequence length {sequence_length} is above the model's maximum {max_length} "
            "(--sequence-length)"
        )
    return int(sequence_length)


def _reachable(host: str, timeout: float = 3.0) -> bool:
    """Whether ``host:443`` accepts a connection within ``timeout`` seconds (DNS included)."""
    ok = []

    def probe():
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            ok.append(True)
        except OSError:
            pass

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 1.0)  # a hanging DNS lookup cannot hold us longer than this
    return bool(ok)


def _kaggle_cached(handle: str) -> bool:
    """Whether kagglehub's cache already holds ``keras/roberta/keras/<name>/<version>``."""
    cache = os.environ.get("KAGGLEHUB_CACHE", Path.home() / ".cache" / "kagglehub")
    return (Path(cache) / "models" / handle / "config.json").is_file()


def _resolve_preset(preset: str) -> str:
    """Check that ``preset`` can be loaded now; fail fast with an InputError if it cannot.

    A local folder is returned as is: a keras-hub preset folder, or a Hugging Face transformers
    checkpoint folder (config.json with ``model_type``), which :func:`build_classifier` reads
    with :func:`project.interop.load_hf_classifier`.
    """
    if Path(preset).expanduser().is_dir():
        folder = Path(preset).expanduser()
        if not (folder / "config.json").is_file():
            raise InputError(
                f"--preset {preset}: not a model folder (no config.json; expected a keras-hub "
                "preset or a Hugging Face RoBERTa checkpoint)"
            )
        return str(folder)
    looks_like_path = os.sep in preset or preset.startswith((".", "~"))
    if looks_like_path and "://" not in preset:
        raise InputError(f"--preset {preset}: no such directory")
    known = keras_hub.models.RobertaBackbone.presets
    if "://" in preset:
        scheme, handle = preset.split("://", 1)
    elif preset in known:
        scheme, handle = known[preset]["kaggle_handle"].split("://", 1)
    else:
        raise InputError(
            f"--preset {preset}: not a directory nor a keras-hub RoBERTa preset "
            f"({', '.join(sorted(known))})"
        )
    if scheme == "kaggle" and _kaggle_cached(handle):
        return preset
    host = _NETWORK_HOSTS.get(scheme)
    if host is None or not _reachable(host):
        raise InputError(
            f"--preset {preset}: cannot download it (no network to {host or scheme}); "
            f"{preset} needs the network once, or a local copy: pass --preset /path/to/folder "
            "(a keras-hub preset folder, e.g. saved with classifier.save_to_preset)"
        )
    return preset


def build_classifier(
    preset: str | None = None,
    num_classes: int = 2,
    sequence_length: int | None = None,
    dropout: float = 0.1,
    **config,
) -> keras_hub.models.RobertaTextClassifier:
    """A RoBERTa pair classifier with its preprocessor.

    Args:
        preset: a keras-hub preset name (``"roberta_large_en"``; needs the network once), a local
            keras-hub preset folder, a Hugging Face transformers checkpoint folder
            (``RobertaForSequenceClassification`` or ``RobertaModel`` ``save_pretrained``; read
            by :func:`project.interop.load_hf_classifier`), or None for random weights from
            ``config``.
        num_classes: output logits.
        sequence_length: padded pair length; None: the model's maximum (``max_sequence_length``).
        dropout: head dropout (Hugging Face uses 0.1).
        **config: with ``preset=None`` only; overrides of the bundled tiny configuration:
            ``vocabulary_size``, ``num_layers``, ``num_heads``, ``hidden_dim``,
            ``intermediate_dim``, ``max_sequence_length``, ``backbone_dropout`` (default 0.1),
            ``vocabulary`` / ``merges`` (tokenizer files; None for no preprocessor).

    Returns:
        A ``keras_hub.models.RobertaTextClassifier`` (logits, no activation). A new head is
        initialised as Hugging Face does (normal, std 0.02; zero biases); a Hugging Face
        checkpoint's own head is kept.

    Raises:
        InputError: unknown config key, a preset that cannot be found or downloaded, a tokenizer
            larger than the vocabulary, or a sequence length above the model's maximum.

    Example:

    >>> from project.models.roberta import ROBERTA_LARGE
    >>> big = build_classifier(**ROBERTA_LARGE, vocabulary=None)  # doctest: +SKIP
    """
    if preset is not None:
        if config:
            raise InputError(
                f"--preset {preset} takes no model configuration ({', '.join(config)})"
            )
        preset = _resolve_preset(str(preset))
        from project.interop.hf import is_hf_checkpoint, load_hf_classifier

        if is_hf_checkpoint(preset):
            model, _ = load_hf_classifier(
                preset, sequence_length=sequence_length, dropout=dropout, num_classes=num_classes
            )
            return model
        try:
            backbone = keras_hub.models.RobertaBackbone.from_preset(preset)
            tokenizer = keras_hub.models.RobertaTokenizer.from_preset(preset)
        except Exception as err:  # keras-hub raises many types for a bad or missing preset
            first_line = (str(err).strip() or type(err).__name__).splitlines()[0]
            raise InputError(f"--preset {preset}: cannot load it ({first_line})") from err
    else:
        settings = tiny_config()
        unknown = sorted(set(config) - set(settings) - {"backbone_dropout"})
        if unknown:
            raise InputError(f"unknown model configuration key(s): {', '.join(unknown)}")
        settings.update(config)
        backbone = keras_hub.models.RobertaBackbone(
            **{k: int(settings[k]) for k in BACKBONE_KEYS},
            dropout=float(settings.get("backbone_dropout", 0.1)),
        )
        tokenizer = None
        if settings["vocabulary"] is not None:
            tokenizer = build_tokenizer(settings["vocabulary"], settings["merges"])
            if tokenizer.vocabulary_size() > backbone.vocabulary_size:
                raise InputError(
                    f"tokenizer has {tokenizer.vocabulary_size()} tokens, more than the model's "
                    f"vocabulary_size {backbone.vocabulary_size}"
                )
    length = _check_length(sequence_length, backbone.max_sequence_length)
    preprocessor = None if tokenizer is None else build_preprocessor(tokenizer, length)
    model = keras_hub.models.RobertaTextClassifier(
        backbone=backbone, num_classes=num_classes, preprocessor=preprocessor, dropout=dropout
    )
    _init_head(model)
    return model


def _init_head(model, stddev: float = 0.02) -> None:
    """Initialise the classification head as Hugging Face does: ``pooled_dense`` and ``logits``
    kernels from normal(0, ``stddev``) (``initializer_range``), biases at zero. The draws follow
    Keras's global seed (``keras.utils.set_random_seed``)."""
    for name in ("pooled_dense", "logits"):
        layer = model.get_layer(name)
        layer.kernel.assign(keras.initializers.RandomNormal(stddev=stddev)(layer.kernel.shape))
        layer.bias.assign(keras.ops.zeros(layer.bias.shape, layer.bias.dtype))


@keras.saving.register_keras_serializable(package="project")
class LinearWarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Hugging Face's linear schedule: 0 -> ``peak`` over ``warmup_steps``, then down to 0 at
    ``total_steps`` (``get_linear_schedule_with_warmup``; with no warm-up it starts at ``peak``).

    Steps are optimizer updates. Keras calls a schedule with its micro-step counter, which with
    gradient accumulation advances ``accumulation`` times per update; the schedule divides it
    back, so K accumulated batches of B follow the same learning rates as batches of K·B.
    """

    def __init__(self, peak: float, total_steps: int, warmup_steps: int = 0,
                 accumulation: int = 1):
        self.peak = float(peak)
        self.total_steps, self.warmup_steps = int(total_steps), int(warmup_steps)
        self.accumulation = int(accumulation)

    def __call__(self, step):
        step = keras.ops.cast(keras.ops.floor_divide(step, self.accumulation), "float32")
        warm = step / max(self.warmup_steps, 1)
        decay = (self.total_steps - step) / max(self.total_steps - self.warmup_steps, 1)
        factor = keras.ops.where(step < self.warmup_steps, warm, decay)
        return self.peak * keras.ops.maximum(factor, 0.0)

    def get_config(self):
        return {"peak": self.peak, "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps, "accumulation": self.accumulation}


def fine_tuning_optimizer(
    learning_rate: float,
    total_steps: int,
    warmup_ratio: float = 0.0,
    weight_decay: float = 0.0,
    clip_norm: float = 1.0,
    grad_accum: int = 1,
) -> keras.optimizers.AdamW:
    """AdamW as Hugging Face's Trainer sets it up: epsilon 1e-8, linear decay (with optional
    warm-up), no weight decay on biases and layer-norm weights, gradients clipped to a global
    norm of ``clip_norm`` (the Trainer's ``max_grad_norm`` = 1.0; 0 turns clipping off).

    Args:
        learning_rate: the peak rate.
        total_steps: optimizer updates in the whole run (batches / ``grad_accum``).
        warmup_ratio: share of the updates spent warming up from 0.
        weight_decay: decoupled weight decay (AdamW).
        clip_norm: global-norm gradient clipping (0: none).
        grad_accum: accumulate the gradients of this many batches per update.

    Example:

    >>> opt = fine_tuning_optimizer(3e-4, total_steps=1000, warmup_ratio=0.06, weight_decay=0.1)
    >>> float(opt.learning_rate), opt.global_clipnorm    # step 0 of the warm-up; clipping at 1
    (0.0, 1.0)
    """
    schedule = LinearWarmupDecay(learning_rate, total_steps, round(warmup_ratio * total_steps),
                                 accumulation=grad_accum)
    optimizer = keras.optimizers.AdamW(
        learning_rate=schedule, weight_decay=weight_decay, epsilon=1e-8,
        global_clipnorm=clip_norm or None,
        gradient_accumulation_steps=grad_accum if grad_accum > 1 else None,
    )
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return optimizer


@contextlib.contextmanager
def detached_preprocessor(model):
    """Run ``model`` on pre-tokenised ``{"token_ids", "padding_mask"}`` inside the block.

    keras-hub's ``fit`` would otherwise run the string preprocessor on every batch. The
    preprocessor is put back afterwards, so a saved model still tokenises raw pairs.

    Example:

    >>> import pandas as pd
    >>> from project.data.qqp import tokenize_pairs
    >>> model = build_classifier(sequence_length=16)
    >>> pairs = pd.DataFrame({"question1": ["How do I learn Python?"],
    ...                       "question2": ["How to learn Python?"]})
    >>> tokens = tokenize_pairs(model.preprocessor, pairs)   # {"token_ids", "padding_mask"}
    >>> with detached_preprocessor(model):     # e.g. model.fit(tokenised_dataset)
    ...     model.predict(tokens, verbose=0).shape, model.preprocessor is None
    ((1, 2), True)
    >>> model.preprocessor is not None         # put back: raw pairs work again
    True
    """
    preprocessor = model.preprocessor
    model.preprocessor = None
    try:
        yield model
    finally:
        model.preprocessor = preprocessor


# Registers the LoRA layer and the LoRA-aware backbone, so that loading a saved LoRA model works
# wherever this module is imported (it imports nothing from here).
import project.models.lora  # noqa: E402, F401
