"""Putting LoRA into a keras-hub RoBERTa classifier and taking it out: enable, merge, unmerge.

:func:`enable_lora` replaces each target projection by a
:class:`~project.models.lora_layer.LoraEinsumDense` and freezes the rest of the backbone; the
head trains: 2,231,298 parameters at RoBERTa-large dimensions with r=8 on q/k/v, as PEFT
reports. Style ``"matrix"`` is the paper's and PEFT's; ``"per-head"`` is keras-hub's own
EinsumDense LoRA (every head its own A, no dropout, q/k/v biases trainable), kept for
comparison. Adapter files: :mod:`project.models.adapters`.

Example:

>>> from project.models.roberta import build_classifier
>>> model = build_classifier()                    # tiny random RoBERTa, bundled tokenizer
>>> model = enable_lora(model, rank=8, alpha=16, dropout=0.05, seed=0)
>>> lora_config(model)["targets"]
['query', 'key', 'value']
>>> model = merge_lora(model, unload=False)       # delta folded in, A and B kept
>>> model = unmerge_lora(model)                   # and taken out again, exactly
>>> model = merge_lora(model)                     # plain keras-hub model, LoRA folded in
>>> lora_config(model) is None
True
"""

from __future__ import annotations

import math
import random
import warnings

import keras
import keras_hub

from project import keras_internals, settings
from project.errors import InputError
from project.models.backbone import (
    RobertaBackbone,
    attention,
    freeze_all_but_lora,
    is_default,
    lora_projections,
    projections,
)
from project.models.lora_layer import LoraEinsumDense, plain_copy


def per_head_projections(backbone) -> list:
    """``[(index, target, layer)]`` for every projection with keras-hub's own LoRA on."""
    return [(i, t, layer) for i, t, _, layer in projections(backbone)
            if getattr(layer, "lora_enabled", False)]


def lora_layers(model) -> dict:
    """``{"layer_{i}.{target}": LoraEinsumDense}`` of ``model`` (empty without matrix LoRA)."""
    return {f"layer_{i}.{target}": layer for i, target, layer in lora_projections(model.backbone)}


def lora_config(model) -> dict | None:
    """``{"style", "rank", "alpha", "dropout", "targets"}`` of ``model``'s LoRA (None: no LoRA)."""
    backbone = model.backbone
    matrix, per_head = lora_projections(backbone), per_head_projections(backbone)
    if matrix:
        layer = matrix[0][2]
        config = dict(style="matrix", rank=layer.rank, alpha=layer.alpha, dropout=layer.dropout)
        found = matrix
    elif per_head:
        layer = per_head[0][2]
        config = dict(style="per-head", rank=int(layer.lora_rank),
                      alpha=float(layer.lora_alpha), dropout=0.0)
        found = per_head
    else:
        return None
    config["targets"] = [t for t in settings.LORA_TARGETS if any(t == f[1] for f in found)]
    return config


def is_merged(model) -> bool:
    """Whether the model's LoRA deltas are in its kernels (``merge_lora(unload=False)``)."""
    return any(layer.merged for _, _, layer in lora_projections(model.backbone))


def count_params(model) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts; the total includes LoRA's A and B."""
    trainable = sum(math.prod(v.shape) for v in model.trainable_weights)
    total = sum(math.prod(v.shape) for v in model.weights)
    return int(trainable), int(total)


def enable_lora(model, rank: int = settings.LORA_RANK, alpha: float = settings.LORA_ALPHA,
                dropout: float = settings.LORA_DROPOUT, targets=settings.LORA_TARGETS,
                style: str = "matrix", seed=None):
    """Turn a RoBERTa classifier into a LoRA model, in place (returned): frozen backbone, A/B
    and head trainable.

    Args:
        model: a ``keras_hub.models.RobertaTextClassifier`` (built).
        rank, alpha: r, the rank of the update, scaled by alpha / r.
        dropout: on the branch's input, in training only ("matrix" style only).
        targets: which projections of each attention layer: "query", "key", "value" (default
            all three, the report's choice; the paper's is query and value).
        style: "matrix" (the paper's and PEFT's) or "per-head" (keras-hub's EinsumDense LoRA).
        seed: each layer's seed (A's initial values, dropout masks) is drawn from it; None:
            from Python's ``random`` (which ``keras.utils.set_random_seed`` seeds).

    Raises:
        SettingError: a bad rank, alpha, dropout, target or style.
        InputError: LoRA already enabled, or a backbone that is not keras-hub's RoBERTa.

    Example:

    >>> from project.models.roberta import build_classifier
    >>> model = build_classifier()              # the bundled tiny RoBERTa, random weights
    >>> _ = enable_lora(model, rank=8, alpha=16, targets=("query", "value"))
    >>> sorted(lora_layers(model))[:2], count_params(model)   # (trainable, total)
    (['layer_0.query', 'layer_0.value'], (3170, 51490))
    """
    targets = settings.lora_settings(rank, alpha, dropout, targets, style)
    if lora_config(model):
        raise InputError("LoRA is already enabled on this model; call merge_lora first")
    backbone = model.backbone
    if not isinstance(backbone, keras_hub.models.RobertaBackbone):
        raise InputError(f"LoRA needs a keras-hub RoBERTa backbone, not {type(backbone).__name__}")
    chosen = projections(backbone, targets)
    if style == "per-head":
        if dropout > 0:
            warnings.warn("per-head (keras-hub) LoRA has no dropout; lora dropout "
                          f"{dropout} is ignored", stacklevel=2)
        # keras-hub's own recipe: freeze the backbone's layers, then EinsumDense.enable_lora on
        # the targets (their kernels freeze, their biases stay trainable).
        backbone.enable_lora(rank, target_layer_names=list(targets))
        for *_, layer in chosen:
            layer.lora_alpha = alpha
    else:
        for *_, layer in chosen:
            if type(layer) is not keras.layers.EinsumDense:
                raise InputError(f"{layer.path} is not a plain EinsumDense projection")
        seeds = random.Random(seed) if seed is not None else random
        for _, target, parent, layer in chosen:
            lora = LoraEinsumDense.from_base(layer, rank, alpha, dropout,
                                             seed=seeds.randrange(2**31))
            keras_internals.replace_projection(parent, target, lora)
        freeze_all_but_lora(backbone)
        if type(backbone) is keras_hub.models.RobertaBackbone:
            keras_internals.set_class(backbone, RobertaBackbone)
        keras_internals.refresh_torch_parameters(model)
    keras_internals.forget_traced_functions(model)
    return model


def merge_lora(model, unload: bool = True):
    """Fold every LoRA delta into its kernel; returns ``model``, changed in place.

    Args:
        model: a LoRA model (a model without LoRA is returned unchanged).
        unload: True: remove A and B as well; the model is then a plain keras-hub classifier
            (every weight trainable again; its ``.keras`` file loads without this package).
            False: keep A and B, the branch off until :func:`unmerge_lora` (not per-head LoRA:
            InputError).
    """
    config = lora_config(model)
    if not config:
        return model
    backbone = model.backbone
    if config["style"] == "per-head":
        if not unload:
            raise InputError("per-head (keras-hub) LoRA can only be merged with unload=True")
        for _, _, layer in per_head_projections(backbone):
            merged = layer.kernel
            layer.lora_enabled = False
            keras_internals.stored_kernel(layer).assign(merged)
            for name in ("lora_kernel_a", "lora_kernel_b"):  # untracked by Layer.__delattr__
                delattr(layer, name)
            layer.lora_rank = layer.lora_alpha = None
        keras_internals.forget_keras_hub_lora(backbone)
    else:
        for _, _, layer in lora_projections(backbone):
            layer.merge()
        if not unload:
            keras_internals.forget_traced_functions(model)
            return model
        remove_lora_layers(model)
    backbone.trainable = True  # also re-enables the layers keras-hub's enable_lora froze
    for variable in backbone.weights:
        variable.trainable = True
    keras_internals.forget_traced_functions(model)
    return model


def remove_lora_layers(model) -> None:
    """Replace every LoraEinsumDense by a plain layer with its stored kernel (unmerged: the
    deltas are dropped)."""
    backbone = model.backbone
    for index, target, layer in lora_projections(backbone):
        keras_internals.replace_projection(attention(backbone, index), target, plain_copy(layer))
    if type(backbone) is RobertaBackbone and is_default(backbone):
        keras_internals.set_class(backbone, keras_hub.models.RobertaBackbone)
    keras_internals.refresh_torch_parameters(model)


def unmerge_lora(model):
    """Undo ``merge_lora(model, unload=False)``: the exact base kernels come back and the LoRA
    branches are on again; returns ``model``, changed in place."""
    for _, _, layer in lora_projections(model.backbone):
        layer.unmerge()
    keras_internals.forget_traced_functions(model)
    return model
