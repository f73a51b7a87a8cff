"""Hugging Face transformers RoBERTa checkpoints <-> our keras-hub classifier.

:func:`load_hf_classifier` reads a ``save_pretrained`` folder (a ``RobertaModel``'s gets a new
head); :func:`save_hf_classifier` writes one. Layouts: :mod:`project.interop.names`. keras-hub
has no token-type table, so Hugging Face's row 0 (added to every RoBERTa token) is folded into
the position embeddings. What keras-hub cannot express is refused with one line
(:func:`hf_settings`); pickled ``.bin`` weights are never read.

Example:

>>> import pathlib, tempfile, keras, numpy as np, pandas as pd
>>> from project.data.qqp_length import tokenize_pairs
>>> from project.models.roberta import build_classifier
>>> ours = build_classifier(sequence_length=16)               # the bundled tiny RoBERTa
>>> folder = save_hf_classifier(ours, pathlib.Path(tempfile.mkdtemp()) / "hf")
>>> (folder / "config.json").is_file(), (folder / "model.safetensors").is_file()
(True, True)
>>> model, preprocessor = load_hf_classifier(folder)         # any save_pretrained folder
>>> pairs = pd.DataFrame({"question1": ["How do I learn Python?"],
...                       "question2": ["How to learn Python?"]})
>>> x = tokenize_pairs(preprocessor, pairs)
>>> float(np.abs(keras.ops.convert_to_numpy(model(x) - ours(x))).max()) < 1e-5
True
"""

from __future__ import annotations

import json
from pathlib import Path

import keras_hub
import numpy as np
from keras import ops

from project.errors import InputError
from project.interop import names
from project.interop.tokenizer import load_json, read_hf_tokenizer, write_hf_tokenizer
from project.io import write_json
from project.models.backbone import DEFAULT_ACTIVATION, DEFAULT_EPSILON, RobertaBackbone
from project.models.quantize import quantization_mode
from project.models.roberta import BACKBONE_KEYS, build_preprocessor, build_tokenizer, init_head
from project.models.tensor_files import SafetensorsReader, write_safetensors
from project.settings import sequence_length as checked_length

#: transformers' RobertaConfig defaults, for keys a config.json leaves out.
HF_DEFAULTS = dict(hidden_act="gelu", layer_norm_eps=1e-12, type_vocab_size=2, pad_token_id=1,
                   max_position_embeddings=512, hidden_dropout_prob=0.1, initializer_range=0.02,
                   bos_token_id=0, eos_token_id=2)
#: Hugging Face ``hidden_act`` -> :data:`project.models.backbone.ACTIVATIONS` key.
HF_ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh",
                  "relu": "relu", "silu": "silu", "swish": "silu"}
_EXPORT_ACTIVATIONS = {"gelu": "gelu", "gelu_tanh": "gelu_new", "relu": "relu", "silu": "silu"}
_REQUIRED = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
             "intermediate_size")
HEAD_KEYS = tuple(w.hf for w in names.head_weights(1, 1))


def _dims(backbone) -> dict:
    return {k: getattr(backbone, k) for k in BACKBONE_KEYS}


def hf_settings(folder) -> dict:
    """The checked configuration of a checkpoint folder, in our terms: ``backbone``
    (RobertaBackbone keyword arguments), ``num_labels``, ``pad_token_id``, ``type_vocab_size``,
    ``position_offset``, ``classifier_dropout``, ``initializer_range``. InputError (one line)
    for anything keras-hub cannot express."""
    folder = Path(folder)
    where = folder / "config.json"
    if not where.is_file():
        raise InputError(f"{folder}: not a Hugging Face checkpoint (no config.json)")
    config = load_json(where, object_only=True)
    if config.get("model_type") != "roberta":
        raise InputError(f"{where}: model_type {config.get('model_type')!r} is not RoBERTa "
                         "('roberta')")
    config = {**HF_DEFAULTS, **{k: v for k, v in config.items() if v is not None}}
    for key in (*_REQUIRED, "max_position_embeddings", "type_vocab_size", "pad_token_id"):
        value = config.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0 or (
                value == 0 and key != "pad_token_id"):
            raise InputError(f"{where}: {key} must be a positive integer, got {value!r}")
    refusals = [
        (config.get("position_embedding_type", "absolute") != "absolute",
         f"position_embedding_type {config.get('position_embedding_type')!r}: keras-hub has "
         "absolute positions only"),
        (config.get("is_decoder"), "is_decoder=true: keras-hub's RoBERTa is an encoder only"),
        (config.get("add_cross_attention"), "add_cross_attention=true is not supported"),
        (config["hidden_act"] not in HF_ACTIVATIONS,
         f"hidden_act {config['hidden_act']!r} is not supported "
         f"({', '.join(HF_ACTIVATIONS)})"),
        (config["hidden_size"] % config["num_attention_heads"] != 0,
         f"hidden_size {config['hidden_size']} is not divisible by num_attention_heads "
         f"{config['num_attention_heads']}"),
    ]
    for refused, why in refusals:
        if refused:
            raise InputError(f"{where}: {why}")
    eps = config["layer_norm_eps"]
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0:
        raise InputError(f"{where}: layer_norm_eps must be positive, got {eps!r}")
    offset = config["pad_token_id"] + 1
    length = config["max_position_embeddings"] - offset
    if length < 4:
        raise InputError(f"{where}: max_position_embeddings {config['max_position_embeddings']} "
                         f"leaves {length} positions after the padding offset {offset}")
    labels = config.get("id2label")
    num_labels = int(config.get("num_labels") or (len(labels) if labels else 2))
    dropout = float(config["hidden_dropout_prob"])
    backbone = dict(
        vocabulary_size=config["vocab_size"], num_layers=config["num_hidden_layers"],
        num_heads=config["num_attention_heads"], hidden_dim=config["hidden_size"],
        intermediate_dim=config["intermediate_size"], max_sequence_length=length, dropout=dropout,
        layer_norm_epsilon=float(eps), activation=HF_ACTIVATIONS[config["hidden_act"]])
    return dict(
        backbone=backbone, num_labels=num_labels, pad_token_id=config["pad_token_id"],
        type_vocab_size=config["type_vocab_size"], position_offset=offset,
        classifier_dropout=float(config.get("classifier_dropout", dropout)),
        initializer_range=float(config["initializer_range"]))


class _Checkpoint:
    """The tensors of ``model.safetensors`` (or its shards), read one at a time."""

    def __init__(self, folder: Path):
        single, index = folder / "model.safetensors", folder / "model.safetensors.index.json"
        if single.is_file():
            files = [single]
        elif index.is_file():
            try:
                weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
                files = [folder / name for name in sorted(set(weight_map.values()))]
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
                raise InputError(f"{index}: unreadable shard index ({err})") from None
        elif any(folder.glob("*.bin")):
            raise InputError(f"{folder}: only pickled .bin weights; this project reads "
                             "safetensors only (re-save with safe_serialization=True)")
        else:
            raise InputError(f"{folder}: no model.safetensors")
        self.readers = [SafetensorsReader(f, "checkpoint") for f in files]
        self.where = {name: r for r in self.readers for name in r.names}

    def shape(self, name):
        return self.where[name].shape(name)

    def get(self, name) -> np.ndarray:
        reader = self.where[name]
        if reader.dtype(name) not in ("F32", "F16", "BF16", "F64"):
            raise InputError(f"{reader.path}: {name} is {reader.dtype(name)}, not floating point")
        value = np.asarray(reader.get(name), dtype=np.float32)
        if not np.isfinite(value).all():
            raise InputError(f"{reader.path}: {name} holds NaN or infinite values")
        return value

    def close(self):
        for reader in self.readers:
            reader.close()


def _expected_shapes(settings: dict, prefix: str, with_head: bool) -> dict:
    b = settings["backbone"]
    h = b["hidden_dim"]
    shapes = {prefix + w.hf: w.hf_shape for w in names.encoder_weights(b)}
    shapes[f"{prefix}embeddings.position_embeddings.weight"] = (
        b["max_sequence_length"] + settings["position_offset"], h)
    shapes[f"{prefix}embeddings.token_type_embeddings.weight"] = (settings["type_vocab_size"], h)
    if with_head:
        shapes.update({w.hf: w.hf_shape for w in names.head_weights(h, settings["num_labels"])})
    return shapes


def _check_checkpoint(folder: Path, checkpoint: _Checkpoint, settings: dict):
    """Which prefix the encoder's names use, whether a head is there; every shape checked."""
    names = set(checkpoint.where)
    prefix = next((p for p in ("roberta.", "") if f"{p}embeddings.word_embeddings.weight" in names),
                  None)
    if prefix is None:
        raise InputError(f"{folder}: not a RoBERTa checkpoint (no "
                         "[roberta.]embeddings.word_embeddings.weight in its weights)")
    head = [k for k in HEAD_KEYS if k in names]
    if head and len(head) < len(HEAD_KEYS):
        missing = sorted(set(HEAD_KEYS) - set(head))
        raise InputError(f"{folder}: the classification head lacks {missing[0]}")
    expected = _expected_shapes(settings, prefix, bool(head))
    missing = sorted(set(expected) - names)
    if missing:
        raise InputError(f"{folder}: the checkpoint lacks {len(missing)} tensor(s), "
                         f"e.g. {missing[0]}")
    layer_names = {n for n in names if n.startswith(f"{prefix}encoder.")}
    unexpected = sorted(layer_names - set(expected))
    if unexpected:
        raise InputError(f"{folder}: unexpected tensor {unexpected[0]} for a "
                         f"{settings['backbone']['num_layers']}-layer RoBERTa")
    for name, shape in expected.items():
        found = checkpoint.shape(name)
        if found != shape:
            raise InputError(f"{checkpoint.where[name].path}: {name} has shape {found}, "
                             f"the config implies {shape}")
    return prefix, bool(head)


def _assign_backbone(backbone, checkpoint: _Checkpoint, prefix: str, offset: int) -> None:
    for weight in names.encoder_weights(_dims(backbone)):
        names.value(backbone, weight).assign(weight.to_keras(checkpoint.get(prefix + weight.hf)))
    positions = checkpoint.get(f"{prefix}embeddings.position_embeddings.weight")
    token_type = checkpoint.get(f"{prefix}embeddings.token_type_embeddings.weight")[0]
    length = backbone.max_sequence_length
    backbone.embeddings.position_embedding.position_embeddings.assign(
        positions[offset:offset + length] + token_type)


def load_hf_classifier(path, sequence_length: int | None = None, dropout: float | None = None,
                       num_classes: int | None = None):
    """``(classifier, preprocessor)`` from a transformers ``save_pretrained`` folder ``path``,
    giving transformers' token ids and logits (to float32 rounding). ``sequence_length``
    defaults to the model's maximum, ``dropout`` to ``classifier_dropout`` (else
    ``hidden_dropout_prob``), ``num_classes`` to ``num_labels`` (a head must have as many).
    InputError (one line): not a checkpoint keras-hub can express, no tokenizer, bad tensors.

    Example:

    >>> model, preprocessor = load_hf_classifier("hf-qqp", sequence_length=128)  # doctest: +SKIP
    """
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise InputError(f"{folder}: no such directory")
    settings = hf_settings(folder)
    vocabulary, merges = read_hf_tokenizer(folder)
    where = folder / "config.json"
    if vocabulary["<pad>"] != settings["pad_token_id"]:
        raise InputError(f"{where}: pad_token_id {settings['pad_token_id']} differs from the "
                         f"tokenizer's <pad> id {vocabulary['<pad>']}")
    if len(vocabulary) > settings["backbone"]["vocabulary_size"]:
        raise InputError(f"{where}: the tokenizer has {len(vocabulary)} tokens, more than "
                         f"vocab_size {settings['backbone']['vocabulary_size']}")
    checkpoint = _Checkpoint(folder)
    try:
        prefix, has_head = _check_checkpoint(folder, checkpoint, settings)
        classes = settings["num_labels"] if num_classes is None else int(num_classes)
        if has_head and classes != settings["num_labels"]:
            raise InputError(f"{folder}: the checkpoint's head has {settings['num_labels']} "
                             f"labels, {classes} were asked for")
        args = settings["backbone"]
        length = checked_length(sequence_length, args["max_sequence_length"])
        extra = {k: args.pop(k) for k in ("layer_norm_epsilon", "activation")}
        if extra == dict(layer_norm_epsilon=DEFAULT_EPSILON, activation=DEFAULT_ACTIVATION):
            backbone = keras_hub.models.RobertaBackbone(**args)
        else:
            backbone = RobertaBackbone(**args, **extra)
        _assign_backbone(backbone, checkpoint, prefix, settings["position_offset"])
        tokenizer = build_tokenizer(vocabulary, merges)
        preprocessor = build_preprocessor(tokenizer, length)
        head_dropout = settings["classifier_dropout"] if dropout is None else float(dropout)
        model = keras_hub.models.RobertaTextClassifier(
            backbone=backbone, num_classes=classes, preprocessor=preprocessor, dropout=head_dropout)
        if has_head:
            for weight in names.head_weights(backbone.hidden_dim, classes):
                names.value(model, weight).assign(weight.to_keras(checkpoint.get(weight.hf)))
        else:
            init_head(model, stddev=settings["initializer_range"])
    finally:
        checkpoint.close()
    return model, preprocessor


def _export_tensors(model, offset: int) -> dict:
    """Our classifier's weights under transformers' names and layouts, float32."""
    def np32(x):
        return np.asarray(ops.convert_to_numpy(x), dtype=np.float32)

    backbone = model.backbone
    tensors = {"roberta." + w.hf: w.to_hf(np32(names.value(model, w)))
               for w in names.encoder_weights(_dims(backbone))}
    tensors.update({w.hf: w.to_hf(np32(names.value(model, w)))
                    for w in names.head_weights(backbone.hidden_dim, int(model.num_classes))})
    h = backbone.hidden_dim
    positions = np32(backbone.embeddings.position_embedding.position_embeddings)
    tensors["roberta.embeddings.position_embeddings.weight"] = np.concatenate(
        [np.zeros((offset, h), np.float32), positions])
    tensors["roberta.embeddings.token_type_embeddings.weight"] = np.zeros((1, h), np.float32)
    return {k: np.ascontiguousarray(v) for k, v in tensors.items()}


def save_hf_classifier(model, path) -> Path:
    """Write ``model`` (with its preprocessor) as a transformers
    ``RobertaForSequenceClassification`` folder ``path`` (each file replaced atomically) and
    return ``Path(path)``; transformers then gives our logits and token ids. LoRA deltas are
    folded in. InputError: no preprocessor, a head transformers cannot express, an int8 base.

    Example:

    >>> import tempfile
    >>> from project.models.roberta import build_classifier
    >>> folder = save_hf_classifier(build_classifier(), tempfile.mkdtemp() + "/hf")
    >>> (folder / "model.safetensors").is_file(), (folder / "tokenizer.json").is_file()
    (True, True)
    """
    preprocessor = getattr(model, "preprocessor", None)
    if preprocessor is None:
        raise InputError("the model has no preprocessor: there is no tokenizer to export")
    if quantization_mode(model):
        raise InputError(f"the model's base is {quantization_mode(model)}: a transformers "
                         "checkpoint holds float weights; export the float base, and the "
                         "adapter with save_peft_adapter")
    if model.hidden_dim != model.backbone.hidden_dim:
        raise InputError(f"the head's hidden_dim {model.hidden_dim} differs from the backbone's "
                         f"{model.backbone.hidden_dim}: transformers cannot express it")
    backbone, tokenizer, folder = model.backbone, preprocessor.tokenizer, Path(path)
    pad, classes = int(tokenizer.pad_token_id), int(model.num_classes)
    offset = pad + 1
    config = {
        "architectures": ["RobertaForSequenceClassification"], "model_type": "roberta",
        "vocab_size": int(backbone.vocabulary_size), "hidden_size": int(backbone.hidden_dim),
        "num_hidden_layers": int(backbone.num_layers),
        "num_attention_heads": int(backbone.num_heads),
        "intermediate_size": int(backbone.intermediate_dim),
        "hidden_act": _EXPORT_ACTIVATIONS[getattr(backbone, "activation", DEFAULT_ACTIVATION)],
        "hidden_dropout_prob": float(backbone.dropout),
        "attention_probs_dropout_prob": float(backbone.dropout),
        "max_position_embeddings": int(backbone.max_sequence_length) + offset,
        "type_vocab_size": 1, "initializer_range": 0.02,
        "layer_norm_eps": float(getattr(backbone, "layer_norm_epsilon", DEFAULT_EPSILON)),
        "pad_token_id": pad, "bos_token_id": int(tokenizer.start_token_id),
        "eos_token_id": int(tokenizer.end_token_id), "classifier_dropout": float(model.dropout),
        "id2label": {str(i): f"LABEL_{i}" for i in range(classes)},
        "label2id": {f"LABEL_{i}": i for i in range(classes)}, "dtype": "float32",
    }
    tensors = _export_tensors(model, offset)
    folder.mkdir(parents=True, exist_ok=True)
    write_safetensors(folder / "model.safetensors", tensors, {"format": "pt"})
    write_hf_tokenizer(folder, tokenizer, model_max_length=int(backbone.max_sequence_length))
    write_json(folder / "config.json", config)
    return folder

