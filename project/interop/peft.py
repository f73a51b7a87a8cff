"""PEFT LoRA adapters for RoBERTa sequence classification <-> our LoRA, both ways.

An adapter folder holds ``adapter_config.json`` and ``adapter_model.safetensors`` (our A and B
transposed, and the head). What our LoRA cannot express (DoRA, trained biases, per-layer ranks,
a subset of layers or other targets, PiSSA-like initialisations, any other non-default option)
is refused with one line.

Example:

>>> import pathlib, tempfile
>>> from project.interop import load_hf_classifier, save_hf_classifier
>>> from project.models.lora import enable_lora, lora_config
>>> from project.models.roberta import build_classifier
>>> tmp = pathlib.Path(tempfile.mkdtemp())
>>> base = save_hf_classifier(build_classifier(), tmp / "base")     # a Hugging Face base model
>>> model, _ = load_hf_classifier(base)
>>> _ = enable_lora(model, rank=4, alpha=8, targets=("query", "value"))
>>> adapter = save_peft_adapter(model, tmp / "adapter")      # PeftModel.from_pretrained reads it
>>> sorted(p.name for p in adapter.iterdir())
['adapter_config.json', 'adapter_model.safetensors']
>>> other, _ = load_hf_classifier(base)
>>> lora_config(load_peft_adapter(other, adapter))["rank"]          # any PEFT LoRA adapter folder
4
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
from keras import ops

from project.errors import InputError
from project.interop import names
from project.interop.tokenizer import load_json
from project.io import write_json
from project.models.adapters import (
    adapter_shapes,
    adapter_variables,
    apply_adapter,
    check_tensors,
    check_unmerged,
    head_variables,
)
from project.models.lora import lora_config
from project.models.tensor_files import read_safetensors, write_safetensors

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
_PREFIX = "base_model.model."
#: Our adapter's head names by Hugging Face's.
_HEAD = {w.hf: "head.{}.{}".format(*w.place[1:]) for w in names.head_weights(1, 1)}
#: Options whose value we read or that do not change the computation.
_UNDERSTOOD = {
    "peft_type", "task_type", "r", "lora_alpha", "lora_dropout", "target_modules",
    "modules_to_save", "bias", "fan_in_fan_out", "use_rslora", "use_dora", "rank_pattern",
    "alpha_pattern", "layers_to_transform", "layers_pattern", "exclude_modules",
    "base_model_name_or_path", "revision", "inference_mode", "init_lora_weights", "peft_version",
    "auto_mapping", "megatron_core", "qalora_group_size", "loftq_config", "eva_config",
    "corda_config", "lora_ga_config", "ensure_weight_tying", "lora_bias", "use_qalora",
    "megatron_config", "layer_replication", "target_parameters", "trainable_token_indices",
}


def is_peft_adapter(path) -> bool:
    """Whether ``path`` is a folder with ``adapter_config.json``."""
    return (Path(path) / CONFIG_FILE).is_file()


def _module_names(num_layers: int) -> list[str]:
    """The names of the modules PEFT could target in ``RobertaForSequenceClassification``."""
    dims = dict(vocabulary_size=1, num_layers=num_layers, num_heads=1, hidden_dim=1,
                intermediate_dim=1)
    modules = ["roberta.embeddings.position_embeddings", "roberta.embeddings.token_type_embeddings"]
    modules += ["roberta." + w.hf.removesuffix(".weight") for w in names.encoder_weights(dims)
                if w.place[2] in ("kernel", "embeddings")]
    return modules + [w.hf.removesuffix(".weight") for w in names.head_weights(1, 1)
                      if w.place[2] == "kernel"]


def _targeted(targets, name: str) -> bool:
    """PEFT's rule: a regex matches the full name; a list entry equals it or ends it after a dot."""
    if isinstance(targets, str):
        return re.fullmatch(targets, name) is not None
    return any(name == t or name.endswith("." + t) for t in targets)


def _settings(path: Path, config: dict, num_layers: int) -> dict:
    """Our LoRA settings from a PEFT config; InputError for what we cannot express."""
    where = path / CONFIG_FILE
    if config.get("peft_type") != "LORA":
        raise InputError(f"{where}: peft_type {config.get('peft_type')!r} is not LORA")
    if config.get("task_type") not in ("SEQ_CLS", None):
        raise InputError(f"{where}: task_type {config.get('task_type')!r} is not SEQ_CLS")
    for key, value in config.items():
        if key not in _UNDERSTOOD and value not in (None, False, {}, [], "", 0):
            raise InputError(f"{where}: option {key}={value!r} is not supported")
    refusals = [
        ("use_dora", "DoRA"), ("fan_in_fan_out", "fan_in_fan_out"), ("lora_bias", "lora_bias"),
        ("rank_pattern", "per-layer ranks (rank_pattern)"),
        ("alpha_pattern", "per-layer alphas (alpha_pattern)"),
        ("layers_to_transform", "a subset of layers (layers_to_transform)"),
        ("exclude_modules", "exclude_modules"), ("layer_replication", "layer_replication"),
        ("target_parameters", "target_parameters"), ("megatron_config", "megatron_config"),
        ("use_qalora", "QALoRA"), ("trainable_token_indices", "trainable_token_indices"),
    ]
    for key, what in refusals:
        if config.get(key):
            raise InputError(f"{where}: {what} is not supported")
    init = config.get("init_lora_weights", True)
    if isinstance(init, str) and init != "gaussian" or config.get("loftq_config"):
        raise InputError(f"{where}: init_lora_weights={init!r} changes the base weights "
                         "(PiSSA, OLoRA, LoftQ, ...): not supported")
    if config.get("bias", "none") != "none":
        raise InputError(f"{where}: bias={config['bias']!r} (trained biases) is not supported")
    rank, alpha = config.get("r"), config.get("lora_alpha")
    dropout = config.get("lora_dropout", 0.0) or 0.0
    if isinstance(rank, bool) or not isinstance(rank, int) or rank <= 0:
        raise InputError(f"{where}: r must be a positive integer, got {rank!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0:
        raise InputError(f"{where}: lora_alpha must be positive, got {alpha!r}")
    if not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise InputError(f"{where}: lora_dropout must be in [0, 1), got {dropout!r}")
    targets = config.get("target_modules")
    if targets == "all-linear":
        raise InputError(f"{where}: target_modules 'all-linear' includes layers other than "
                         "query/key/value")
    if not isinstance(targets, (str, list)) or not targets:
        raise InputError(f"{where}: target_modules must be a name list or a regex")
    chosen = {}
    for name in _module_names(num_layers):
        if _targeted(targets, name):
            kind = name.rsplit(".", 1)[1]
            if ".attention.self." not in name:
                raise InputError(f"{where}: target {name} is not query/key/value (only those "
                                 "are supported)")
            chosen.setdefault(kind, set()).add(int(name.split(".")[3]))
    if not chosen:
        raise InputError(f"{where}: target_modules {targets!r} match no query/key/value layer")
    for kind, layers in chosen.items():
        if len(layers) != num_layers:
            raise InputError(f"{where}: {kind} is targeted in {len(layers)} of {num_layers} "
                             "layers (only all layers are supported)")
    saved = config.get("modules_to_save") or []
    if not isinstance(saved, list) or set(saved) - {"classifier", "score"}:
        raise InputError(f"{where}: modules_to_save {saved!r}: only the classifier is supported")
    scale_alpha = float(alpha) * math.sqrt(rank) if config.get("use_rslora") else float(alpha)
    return dict(style="matrix", rank=rank, alpha=scale_alpha, dropout=float(dropout),
                targets=[t for t in ("query", "key", "value") if t in chosen],
                head="classifier" in saved)


def load_peft_adapter(model, path):
    """Put a PEFT LoRA adapter (folder ``path``) on ``model``, its base, in place (replacing
    any LoRA) and return ``model``; its logits then equal ``PeftModel``'s. Everything is checked
    first: InputError (one line) for missing files, an unsupported option, or tensors missing,
    unexpected, mis-shaped or non-finite.

    Example:

    >>> load_peft_adapter(model, "peft-adapter")         # doctest: +SKIP
    """
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{path}: no such adapter folder")
    if not (path / CONFIG_FILE).is_file():
        raise InputError(f"{path}: not a PEFT adapter (no {CONFIG_FILE})")
    backbone = model.backbone
    settings = _settings(path, load_json(path / CONFIG_FILE, object_only=True),
                         backbone.num_layers)
    weights = path / WEIGHTS_FILE
    tensors, _ = read_safetensors(weights, what="adapter")
    ours = {}
    hidden = backbone.hidden_dim
    for name, value in tensors.items():
        short = name[len(_PREFIX):] if name.startswith(_PREFIX) else name
        match = re.fullmatch(r"roberta\.encoder\.layer\.(\d+)\.attention\.self\."
                             r"(query|key|value)\.lora_([AB])\.weight", short)
        if match:
            index, target, which = int(match[1]), match[2], match[3]
            if index >= backbone.num_layers or target not in settings["targets"]:
                raise InputError(f"{weights}: unexpected tensor {name} (the config targets "
                                 f"{'/'.join(settings['targets'])} in "
                                 f"{backbone.num_layers} layers)")
            if which == "A" and value.ndim == 2 and value.shape[1] != hidden:
                raise InputError(f"{weights}: made for a base with hidden size {value.shape[1]}; "
                                 f"this model's is {hidden}")
            if value.ndim == 2 and value.shape[0 if which == "A" else 1] != settings["rank"]:
                raise InputError(f"{weights}: {name} has rank "
                                 f"{value.shape[0 if which == 'A' else 1]}, the config's r is "
                                 f"{settings['rank']}")
            ours[f"layer_{index}.{target}.lora_{which.lower()}"] = np.asarray(value).T
        elif short in _HEAD and settings["head"]:
            ours[_HEAD[short]] = np.asarray(value).T
        else:
            raise InputError(f"{weights}: unexpected tensor {name}")
    if not settings["head"]:  # PEFT keeps the base's head: so do we
        for name, variable in head_variables(model).items():
            ours[name] = np.asarray(ops.convert_to_numpy(variable), dtype=np.float32)
    head = ours.get("head.logits.kernel")
    if head is not None and head.ndim == 2 and head.shape[1] != model.num_classes:
        raise InputError(f"{weights}: the adapter's head has {head.shape[1]} classes, "
                         f"the model {model.num_classes}")
    ours = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in ours.items()}
    peft_settings = {k: settings[k] for k in ("style", "rank", "alpha", "dropout", "targets")}
    check_tensors(weights, ours, adapter_shapes(model, peft_settings), what="PEFT adapter")
    current = lora_config(model)
    if current is not None and current["style"] != "matrix":
        raise InputError(f"{path}: the model has per-head LoRA; merge_lora first")
    check_unmerged(model)
    apply_adapter(model, peft_settings, ours)
    return model


def save_peft_adapter(model, path, base_model_name_or_path: str | None = None) -> Path:
    """Write ``model``'s matrix LoRA as a PEFT adapter folder ``path`` (the head through
    ``modules_to_save``) and return ``Path(path)``; ``PeftModel.from_pretrained`` on our base
    exported by :func:`project.interop.save_hf_classifier` gives our logits. InputError: no,
    per-head or merged LoRA. ``base_model_name_or_path`` is only recorded.

    Example:

    >>> save_peft_adapter(model, "runs/qqp/lora/peft")     # doctest: +SKIP
    """
    config = lora_config(model)
    if config is None:
        raise InputError("the model has no LoRA enabled: nothing to save as an adapter")
    if config["style"] != "matrix":
        raise InputError("PEFT adapters hold the paper's LoRA only, not per-head LoRA")
    check_unmerged(model)
    heads = {ours: hf for hf, ours in _HEAD.items()}
    tensors = {}
    for name, variable in adapter_variables(model).items():
        value = np.asarray(ops.convert_to_numpy(variable), dtype=np.float32).T
        if name in heads:
            hf = heads[name]
        else:
            layer, target, which = name.split(".")
            module = names.projection_module(int(layer.split("_")[1]), target)
            hf = f"roberta.{module}.lora_{which[-1].upper()}.weight"
        tensors[_PREFIX + hf] = np.ascontiguousarray(value)
    alpha = config["alpha"]
    peft_config = {
        "peft_type": "LORA", "task_type": "SEQ_CLS", "r": config["rank"],
        "lora_alpha": int(alpha) if float(alpha).is_integer() else alpha,
        "lora_dropout": config["dropout"], "target_modules": config["targets"],
        "modules_to_save": ["classifier"], "bias": "none", "fan_in_fan_out": False,
        "use_rslora": False, "use_dora": False, "rank_pattern": {}, "alpha_pattern": {},
        "layers_to_transform": None, "layers_pattern": None, "inference_mode": True,
        "init_lora_weights": True, "base_model_name_or_path": base_model_name_or_path,
        "revision": None}
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    write_safetensors(folder / WEIGHTS_FILE, tensors, {"format": "pt"})
    write_json(folder / CONFIG_FILE, peft_config)
    return folder
