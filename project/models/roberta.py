"""The RoBERTa pair classifier for QQP: keras-hub's ``RobertaTextClassifier`` (head: ``<s>``
token, dropout, ``pooled_dense`` tanh, dropout, ``logits``) with its preprocessor (pair format
``<s> A </s></s> B </s>``), from a keras-hub preset or, offline, the bundled tiny configuration.

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

from project import settings
from project.errors import InputError, SettingError, literal
from project.paths import asset

TINY_CONFIG_PATH = asset("qqp_tiny_config.json")
ASSETS_DIR = TINY_CONFIG_PATH.parent

BACKBONE_KEYS = ("vocabulary_size", "num_layers", "num_heads", "hidden_dim", "intermediate_dim",
                 "max_sequence_length")
# Dimensions of the published checkpoint (keras-hub counts 512 positions; HF stores 514).
ROBERTA_LARGE = dict(vocabulary_size=50265, num_layers=24, num_heads=16, hidden_dim=1024,
                     intermediate_dim=4096, max_sequence_length=512)

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
        merges=str(merges) if isinstance(merges, os.PathLike) else merges)


def build_preprocessor(tokenizer, sequence_length: int):
    """The pair preprocessor: ``<s> q1 </s></s> q2 </s>``, truncated round-robin, padded."""
    return keras_hub.models.RobertaTextClassifierPreprocessor(
        tokenizer=tokenizer, sequence_length=int(sequence_length))


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


def is_hf_checkpoint(path) -> bool:
    """Whether ``path`` is a folder whose config.json is a transformers one (``model_type``;
    keras-hub presets have ``class_name`` instead)."""
    try:
        config = json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and "model_type" in config and "class_name" not in config


def _preset_error(preset: str, problem: str, sep: str = ": ") -> SettingError:
    return SettingError.about("preset", f"{preset}{sep}{problem}")


def resolve_preset(preset: str) -> str:
    """``preset`` if it can be loaded now (a local folder is returned as is), else SettingError."""
    folder = Path(preset).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise _preset_error(preset, "not a model folder (no config.json; expected a keras-hub "
                                        "preset or a Hugging Face RoBERTa checkpoint)")
        return str(folder)
    looks_like_path = os.sep in preset or preset.startswith((".", "~"))
    if looks_like_path and "://" not in preset:
        raise _preset_error(preset, "no such directory")
    known = keras_hub.models.RobertaBackbone.presets
    if "://" in preset:
        scheme, handle = preset.split("://", 1)
    elif preset in known:
        scheme, handle = known[preset]["kaggle_handle"].split("://", 1)
    else:
        raise _preset_error(preset, "not a directory nor a keras-hub RoBERTa preset "
                                    f"({', '.join(sorted(known))})")
    if scheme == "kaggle" and _kaggle_cached(handle):
        return preset
    host = _NETWORK_HOSTS.get(scheme)
    if host is None or not _reachable(host):
        shown = literal(preset)
        raise SettingError(
            "{preset} " + f"{shown}: cannot download it (no network to {host or scheme}); "
            f"{shown} needs the network once, or a local copy: give " + "{preset} a folder (a "
            "keras-hub preset folder, e.g. saved with classifier.save_to_preset)")
    return preset


def build_classifier(preset: str | None = None, num_classes: int = 2,
                     sequence_length: int | None = None, dropout: float = 0.1,
                     **config) -> keras_hub.models.RobertaTextClassifier:
    """A RoBERTa pair classifier with its preprocessor and a new head (:func:`init_head`).

    Args:
        preset: a keras-hub preset name (``"roberta_large_en"``; needs the network once) or
            folder, or None for random weights from ``config``.
        num_classes, dropout: the head's logits and dropout.
        sequence_length: padded pair length; None: the model's maximum (``max_sequence_length``).
        **config: with ``preset=None`` only; overrides of ``assets/qqp_tiny_config.json``
            (:data:`BACKBONE_KEYS`, ``backbone_dropout`` (default 0.1), ``vocabulary`` /
            ``merges`` (tokenizer files; None for no preprocessor)).

    Raises:
        SettingError: a preset that cannot be loaded, or a sequence length above the maximum.
        InputError: unknown config key, a tokenizer larger than the vocabulary.

    Example:

    >>> from project.models.roberta import ROBERTA_LARGE
    >>> big = build_classifier(**ROBERTA_LARGE, vocabulary=None)  # doctest: +SKIP
    """
    if preset is not None:
        if config:
            raise _preset_error(preset, f"takes no model configuration ({', '.join(config)})",
                                sep=" ")
        preset = resolve_preset(str(preset))
        if is_hf_checkpoint(preset):
            raise _preset_error(preset, "a Hugging Face checkpoint: load it with "
                                        "project.interop.load_classifier")
        try:
            backbone = keras_hub.models.RobertaBackbone.from_preset(preset)
            tokenizer = keras_hub.models.RobertaTokenizer.from_preset(preset)
        except Exception as err:  # keras-hub raises many types for a bad or missing preset
            first_line = (str(err).strip() or type(err).__name__).splitlines()[0]
            raise _preset_error(preset, f"cannot load it ({first_line})") from err
    else:
        tiny = tiny_config()
        unknown = sorted(set(config) - set(tiny) - {"backbone_dropout"})
        if unknown:
            raise InputError(f"unknown model configuration key(s): {', '.join(unknown)}")
        tiny.update(config)
        dims = {k: int(tiny[k]) for k in BACKBONE_KEYS}
        backbone = keras_hub.models.RobertaBackbone(
            **dims, dropout=float(tiny.get("backbone_dropout", 0.1)))
        tokenizer = None
        if tiny["vocabulary"] is not None:
            tokenizer = build_tokenizer(tiny["vocabulary"], tiny["merges"])
            if tokenizer.vocabulary_size() > backbone.vocabulary_size:
                raise InputError(f"tokenizer has {tokenizer.vocabulary_size()} tokens, more than "
                                 f"the model's vocabulary_size {backbone.vocabulary_size}")
    length = settings.sequence_length(sequence_length, backbone.max_sequence_length)
    preprocessor = None if tokenizer is None else build_preprocessor(tokenizer, length)
    model = keras_hub.models.RobertaTextClassifier(
        backbone=backbone, num_classes=num_classes, preprocessor=preprocessor, dropout=dropout)
    init_head(model)
    return model


def init_head(model, stddev: float = 0.02) -> None:
    """Initialise the head as Hugging Face does: kernels from normal(0, ``stddev``), biases at
    zero (the draws follow Keras's global seed)."""
    for name in ("pooled_dense", "logits"):
        layer = model.get_layer(name)
        layer.kernel.assign(keras.initializers.RandomNormal(stddev=stddev)(layer.kernel.shape))
        layer.bias.assign(keras.ops.zeros(layer.bias.shape, layer.bias.dtype))


@contextlib.contextmanager
def detached_preprocessor(model):
    """Run ``model`` on pre-tokenised ``{"token_ids", "padding_mask"}`` inside the block (else
    keras-hub's ``fit`` runs the string preprocessor on every batch).

    Example:

    >>> import pandas as pd
    >>> from project.data.qqp_length import tokenize_pairs
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
