"""LoRA for keras-hub RoBERTa, as in the paper and in PEFT (Hu et al. 2021).

For each target projection W0 (the ``query``, ``key`` and ``value`` EinsumDense layers of every
transformer layer; kernel shape (hidden, heads, head_dim), seen as a d_in x d_out matrix with
d_out = heads * head_dim), LoRA freezes W0 and its bias and learns A (d_in x r) and B (r x d_out):

    y = x W0 + b + (alpha / r) * (dropout(x) A) B

A starts like PEFT's (kaiming-uniform, bound 1/sqrt(d_in)), B at zeros, so the model starts out
exactly equal to the base model. The branch is two small matmuls; A B is never formed during
training. Everything else in the backbone is frozen (embeddings, layer norms, feed-forward,
attention output, all biases); the classification head (``pooled_dense`` and ``logits``) trains.
At RoBERTa-large dimensions with r=8 on q/k/v and two classes this trains 2,231,298 parameters
(1,179,648 LoRA + 1,051,650 head), the number PEFT reports; on q/v (the paper's choice) 1,838,082.

As in PEFT's LoRA layer, the pieces are small named computations on :class:`LoraEinsumDense`:
``delta()`` = (alpha / r) A B shaped like the kernel, ``merge()`` adds it to the kernel (A and B
kept, the branch switched off), ``unmerge()`` subtracts it again.

How the layers get there, and why one object changes class
-----------------------------------------------------------
:func:`enable_lora` builds, for each target, a new :class:`LoraEinsumDense` from the plain
layer's configuration, gives it the plain layer's kernel and bias values, and puts it in the
attention layer's attribute (``_query_dense`` ...) in place of the plain one (Keras's tracking
list is updated in place, so nothing is counted twice). No layer is re-classed.

Saving is the hard part: keras-hub's ``RobertaBackbone`` configuration holds only sizes, and
loading rebuilds every attention layer with plain ``EinsumDense`` projections, so LoRA would be
lost (or, with Keras's own LoRA, merged). The backbone of a LoRA model is therefore
:class:`project.models.backbone.RobertaBackbone`, a registered subclass whose configuration lists
the LoRA layers and whose constructor puts them back. :func:`enable_lora` switches the existing
backbone object to that class (``backbone.__class__ = ...``), the one re-classing in this module:
Keras names a saved object by its class, and the classifier is a functional graph built around
that very backbone object, so a new backbone would mean a new classifier (not "in place", and
twice the memory at RoBERTa-large). The subclass adds no state of its own (its extra settings
default, at class level, to keras-hub's values), so the switch changes only what ``get_config``
writes. ``merge_lora(model, unload=True)`` switches it back, and the merged model is a plain
keras-hub model again (its ``.keras`` file loads without this package).

A LoRA model saved as is (unmerged) therefore reloads in safe mode, in any backend, with
``project.models.lora`` imported: LoRA still on, the same trainable count and outputs, and
training continues. Under a mixed-precision policy A and B are float32 variables (Keras's
``add_weight`` uses the policy's variable dtype) and the branch computes in the layer's compute
dtype (Keras autocasts variables inside ``call``).

Two styles:

* ``"matrix"`` (default, the paper's): :class:`LoraEinsumDense` as above.
* ``"per-head"``: keras-hub's own ``backbone.enable_lora(rank, targets)`` plus ``lora_alpha``.
  Keras's EinsumDense LoRA gives every head its own A (hidden x heads x r), has no dropout, and
  leaves the q/k/v biases trainable: 10,599,426 trainable parameters at RoBERTa-large dimensions.
  It is kept for comparison; it is not the paper's LoRA, and Keras merges it when saving.

Adapters (:func:`save_adapter` / :func:`load_adapter`) are ``adapter.safetensors`` files holding
only what LoRA trained, under names that do not depend on the process (``layer_3.query.lora_a``,
``head.pooled_dense.kernel``), with the settings and a SHA-256 of the frozen base weights in the
metadata. Loading checks everything before it changes anything; two adapters can be switched on
one base without rebuilding it.

Example:

>>> from project.models.roberta import build_classifier
>>> from project.models.lora import enable_lora, count_params, merge_lora, unmerge_lora
>>> model = build_classifier()                    # tiny random RoBERTa, bundled tokenizer
>>> model = enable_lora(model, rank=8, alpha=16, dropout=0.05, seed=0)
>>> lora_config(model)["targets"]
['query', 'key', 'value']
>>> model = merge_lora(model, unload=False)       # delta folded in, A and B kept
>>> model = unmerge_lora(model)                   # and taken out again
>>> model = merge_lora(model)                     # plain keras-hub model, LoRA folded in
>>> lora_config(model) is None
True
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import random
import warnings
from pathlib import Path

import keras
import keras_hub
import numpy as np
from keras import ops

from project.errors import InputError
from project.models.backbone import RobertaBackbone as LoraAwareBackbone
from project.models.backbone import is_default

TARGETS = ("query", "key", "value")
STYLES = ("matrix", "per-head")
HEAD_LAYERS = ("pooled_dense", "logits")
ADAPTER_FILE = "adapter.safetensors"
ADAPTER_FORMAT = "project.lora-adapter/1"
_ATTRIBUTE = {"query": "_query_dense", "key": "_key_dense", "value": "_value_dense"}


@keras.saving.register_keras_serializable(package="project")
class LoraEinsumDense(keras.layers.EinsumDense):
    """An EinsumDense projection with the paper's LoRA branch (registered, serialisable).

    Args:
        equation, output_shape, **kwargs: ``keras.layers.EinsumDense``'s. The kernel's first
            axis must be the input's last axis (keras-hub's q/k/v: ``"abc,cde->abde"``).
        rank: r.
        alpha: the branch is scaled by alpha / r.
        dropout: dropout on the branch's input, in training only.
        seed: A's initial values and the dropout masks (differ it between layers).
        merged: whether the kernel already holds W0 + delta (the branch is then off).

    Attributes:
        lora_a: (d_in, r) float32 variable, trainable.
        lora_b: (r, d_out) float32 variable, trainable, zeros at first.

    The kernel and bias are frozen. :meth:`from_base` builds one from a plain layer.
    """

    def __init__(self, equation, output_shape=None, *, rank: int, alpha: float,
                 dropout: float = 0.0, seed: int | None = None, merged: bool = False,
                 **kwargs):
        kwargs.pop("lora_rank", None)  # Keras's own LoRA must stay off
        kwargs.pop("lora_alpha", None)
        super().__init__(equation, output_shape, **kwargs)
        inputs, kernel = equation.split("->")[0].split(",")
        if kernel[0] != inputs[-1]:
            raise ValueError(f"LoRA needs the kernel's first axis on the input's last: {equation}")
        self.rank, self.alpha, self.dropout = int(rank), float(alpha), float(dropout)
        self.seed, self.merged = seed, bool(merged)
        self.seed_generator = (
            keras.random.SeedGenerator(seed, name="lora_dropout_seed") if dropout > 0 else None
        )

    @classmethod
    def from_base(cls, base, rank: int, alpha: float, dropout: float = 0.0, seed=None):
        """A LoRA layer computing what ``base`` (a built plain EinsumDense) computes, with
        ``base``'s kernel and bias values, at ``base``'s place in the model (variable paths)."""
        config = base.get_config()
        layer = cls(**config, rank=rank, alpha=alpha, dropout=dropout, seed=seed)
        _build_like(layer, base)
        layer._kernel.assign(base.kernel)
        if base.bias is not None:
            layer.bias.assign(base.bias)
        return layer

    def build(self, input_shape):
        super().build(input_shape)
        d_in = int(self._kernel.shape[0])
        self._out_dims = tuple(int(d) for d in self._kernel.shape[1:])
        self.lora_a = self.add_weight(
            name="lora_a",
            shape=(d_in, self.rank),
            # PEFT: kaiming_uniform_(a=sqrt(5)) on (r, d_in), i.e. U(-1/sqrt(d_in), 1/sqrt(d_in)).
            initializer=keras.initializers.VarianceScaling(
                1 / 3, "fan_in", "uniform", seed=self.seed
            ),
        )
        self.lora_b = self.add_weight(
            name="lora_b", shape=(self.rank, math.prod(self._out_dims)), initializer="zeros"
        )
        self._kernel.trainable = False
        if self.bias is not None:
            self.bias.trainable = False

    @property
    def scale(self) -> float:
        """alpha / r."""
        return self.alpha / self.rank

    def delta(self):
        """(alpha / r) A B, shaped like the kernel (float32)."""
        product = ops.matmul(ops.convert_to_tensor(self.lora_a), self.lora_b)
        return ops.reshape(self.scale * product, self._kernel.shape)

    @property
    def kernel(self):
        """The kernel the layer computes with: W0 + delta (the stored kernel when merged)."""
        if self.merged:
            return self._kernel
        return ops.add(self._kernel, ops.cast(self.delta(), self._kernel.dtype))

    def merge(self) -> None:
        """Fold the delta into the stored kernel and switch the branch off (A and B kept)."""
        if not self.merged:
            self._kernel.assign(ops.add(self._kernel, ops.cast(self.delta(), self._kernel.dtype)))
            self.merged = True

    def unmerge(self) -> None:
        """Take the delta out of the stored kernel again and switch the branch back on."""
        if self.merged:
            self._kernel.assign(
                ops.subtract(self._kernel, ops.cast(self.delta(), self._kernel.dtype))
            )
            self.merged = False

    def call(self, inputs, training=None):
        outputs = ops.einsum(self.equation, inputs, self._kernel)
        if self.bias is not None:
            outputs = ops.add(outputs, self.bias)
        if not self.merged:
            x = inputs
            if training and self.dropout > 0:
                x = keras.random.dropout(x, self.dropout, seed=self.seed_generator)
            # Two small matmuls; the scale multiplies the rank-r activations, not the output.
            low = ops.matmul(x, self.lora_a) * self.scale
            up = ops.matmul(low, self.lora_b)
            outputs = ops.add(outputs, ops.reshape(up, ops.shape(outputs)))
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def get_config(self):
        config = super().get_config()
        config.pop("lora_rank", None)
        config.pop("lora_alpha", None)
        config.update(rank=self.rank, alpha=self.alpha, dropout=self.dropout, seed=self.seed,
                      merged=self.merged)
        return config

    def save_own_variables(self, store):
        if not self.built:
            return
        store["kernel"] = self._kernel
        if self.bias is not None:
            store["bias"] = self.bias
        store["lora_a"] = self.lora_a
        store["lora_b"] = self.lora_b

    def load_own_variables(self, store):
        if not self.built:
            return
        names = ["kernel", "lora_a", "lora_b"] + (["bias"] if self.bias is not None else [])
        if sorted(store.keys()) != sorted(names):
            raise ValueError(
                f"LoRA layer {self.path}: saved variables {sorted(store.keys())}, "
                f"expected {sorted(names)}"
            )
        self._kernel.assign(store["kernel"])
        if self.bias is not None:
            self.bias.assign(store["bias"])
        self.lora_a.assign(store["lora_a"])
        self.lora_b.assign(store["lora_b"])


def _build_like(layer, base) -> None:
    """Build ``layer`` for ``base``'s input shape, its variables named at ``base``'s place.

    The kernel starts at zeros (its values are assigned next; drawing a random one costs ~0.2 s
    per RoBERTa-large projection); the layer keeps its configured initializer."""
    parents = base.path.split("/")[:-1]
    initializer = layer.kernel_initializer
    layer.kernel_initializer = keras.initializers.Zeros()
    try:
        with contextlib.ExitStack() as scopes:
            for name in parents:
                scopes.enter_context(keras.name_scope(name))
            layer.build_from_config(base.get_build_config())
    finally:
        layer.kernel_initializer = initializer


def _plain_copy(layer: LoraEinsumDense) -> keras.layers.EinsumDense:
    """A plain EinsumDense with ``layer``'s configuration and stored kernel (W0, or W0 + delta
    if merged) and bias, at its place."""
    config = {k: v for k, v in layer.get_config().items()
              if k not in ("rank", "alpha", "dropout", "seed", "merged")}
    plain = keras.layers.EinsumDense(**config)
    _build_like(plain, layer)
    plain._kernel.assign(layer._kernel)
    if layer.bias is not None:
        plain.bias.assign(layer.bias)
    return plain


# ---------------------------------------------------------------------------- where LoRA goes


def _attention(backbone, index: int):
    return backbone.get_layer(f"transformer_layer_{index}")._self_attention_layer


def _projections(backbone, targets=TARGETS):
    """``[(index, target, attention layer, projection layer), ...]`` in a fixed order."""
    return [
        (i, target, _attention(backbone, i), getattr(_attention(backbone, i), _ATTRIBUTE[target]))
        for i in range(backbone.num_layers)
        for target in targets
    ]


def _replace(attention, target: str, new) -> None:
    """Put ``new`` in ``attention``'s ``target`` projection slot, in place of the current one."""
    attribute = _ATTRIBUTE[target]
    attention._tracker.replace_tracked_value("layers", getattr(attention, attribute), new)
    setattr(attention, attribute, new)  # already tracked; torch registers the new module


def _refresh_torch_parameters(model) -> None:
    """torch: every layer keeps a ParameterDict of its variables; rebuild them after layers were
    replaced (else they would hold the old tensors and miss A and B)."""
    if keras.backend.backend() != "torch":
        return
    for layer in model._flatten_layers(include_self=True):
        if "_torch_params" in getattr(layer, "_modules", {}):
            layer._track_variables()


def _lora_layers(backbone):
    """``[(index, target, layer)]`` for every matrix-style LoRA layer."""
    return [(i, t, layer) for i, t, _, layer in _projections(backbone)
            if isinstance(layer, LoraEinsumDense)]


def _per_head_layers(backbone):
    return [(i, t, layer) for i, t, _, layer in _projections(backbone)
            if getattr(layer, "lora_enabled", False)]


def lora_layers(model) -> dict:
    """``{"layer_{i}.{target}": LoraEinsumDense}`` of ``model`` (empty without matrix LoRA)."""
    return {f"layer_{i}.{target}": layer for i, target, layer in _lora_layers(model.backbone)}


def lora_layer_configs(backbone) -> dict:
    """``{"transformer_layer_{i}/{target}": serialized LoraEinsumDense}`` (for saving)."""
    return {
        f"transformer_layer_{i}/{target}": keras.saving.serialize_keras_object(layer)
        for i, target, layer in _lora_layers(backbone)
    }


def install_lora_layers(backbone, configs: dict) -> None:
    """Put serialized LoRA layers (:func:`lora_layer_configs`) into ``backbone`` and freeze all
    its other weights (what loading a saved LoRA backbone does)."""
    for place, config in configs.items():
        layer_name, target = place.split("/")
        index = int(layer_name.rsplit("_", 1)[1])
        attention = _attention(backbone, index)
        base = getattr(attention, _ATTRIBUTE[target])
        config = dict(config)
        config.pop("build_config", None)
        layer = keras.saving.deserialize_keras_object(config)
        _build_like(layer, base)
        _replace(attention, target, layer)
    _freeze_all_but_lora(backbone)


def _freeze_all_but_lora(backbone) -> None:
    lora = {id(v) for _, _, layer in _lora_layers(backbone) for v in (layer.lora_a, layer.lora_b)}
    for variable in backbone.weights:
        variable.trainable = id(variable) in lora


def _forget_traced_functions(model) -> None:
    """Drop compiled train/test/predict functions: a TensorFlow graph traced before LoRA was
    enabled or merged would keep computing the old model."""
    model.train_function = model.test_function = model.predict_function = None


# ---------------------------------------------------------------------------- public functions


def check_settings(rank, alpha, dropout, targets=TARGETS, style="matrix") -> tuple[str, ...]:
    """Raise InputError for a bad LoRA setting (see :func:`enable_lora`); return the targets
    in their canonical order (query, key, value)."""
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or rank <= 0:
        raise InputError(f"LoRA rank must be a positive integer, got {rank!r} (--rank)")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.number)) or not alpha > 0:
        raise InputError(f"LoRA alpha must be positive, got {alpha!r} (--alpha)")
    if (isinstance(dropout, bool) or not isinstance(dropout, (int, float, np.number))
            or not 0 <= dropout < 1):
        raise InputError(f"LoRA dropout must be in [0, 1), got {dropout!r} (--lora-dropout)")
    if isinstance(targets, str):
        targets = (targets,)
    targets = tuple(targets)
    unknown = [t for t in targets if t not in TARGETS]
    if unknown or not targets:
        raise InputError(
            f"unknown LoRA target(s) {', '.join(map(repr, unknown)) or '(none given)'}: "
            f"choose from {', '.join(TARGETS)}"
        )
    if style not in STYLES:
        raise InputError(
            f"unknown LoRA style {style!r}: choose one of {', '.join(STYLES)} (--lora-style)"
        )
    return tuple(t for t in TARGETS if t in targets)


def lora_config(model) -> dict | None:
    """The LoRA settings of ``model``, read from its layers (None if LoRA is not enabled).

    Returns:
        ``{"style", "rank", "alpha", "dropout", "targets"}``.
    """
    backbone = model.backbone
    matrix, per_head = _lora_layers(backbone), _per_head_layers(backbone)
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
    config["targets"] = [t for t in TARGETS if any(t == target for _, target, _ in found)]
    return config


def _is_merged(model) -> bool:
    return any(layer.merged for _, _, layer in _lora_layers(model.backbone))


def enable_lora(
    model,
    rank: int = 8,
    alpha: float = 16,
    dropout: float = 0.05,
    targets=TARGETS,
    style: str = "matrix",
    seed=None,
):
    """Turn a RoBERTa classifier into a LoRA model: frozen backbone, A/B and head trainable.

    Args:
        model: a ``keras_hub.models.RobertaTextClassifier`` (built).
        rank: r, the rank of the update.
        alpha: the update is scaled by alpha / r.
        dropout: dropout on the LoRA branch's input, in training only ("matrix" style only).
        targets: which projections of each attention layer: "query", "key", "value" (default
            all three, the report's choice; the paper's is query and value).
        style: "matrix" (the paper's and PEFT's) or "per-head" (keras-hub's EinsumDense LoRA).
        seed: makes A's initial values and the dropout masks reproducible (each layer gets its
            own seed drawn from it); None: drawn from Python's ``random`` (which
            ``keras.utils.set_random_seed`` seeds).

    Returns:
        ``model`` (changed in place).

    Raises:
        InputError: rank <= 0, alpha <= 0, dropout outside [0, 1), unknown targets or style,
            LoRA already enabled, or a backbone that is not keras-hub's RoBERTa.

    Example:

    >>> from project.models.roberta import build_classifier
    >>> model = build_classifier()              # the bundled tiny RoBERTa, random weights
    >>> _ = enable_lora(model, rank=8, alpha=16, targets=("query", "value"))
    >>> sorted(lora_layers(model))[:2], count_params(model)   # (trainable, total)
    (['layer_0.query', 'layer_0.value'], (3170, 51490))
    """
    targets = check_settings(rank, alpha, dropout, targets, style)
    if lora_config(model):
        raise InputError("LoRA is already enabled on this model; call merge_lora first")
    backbone = model.backbone
    if not isinstance(backbone, keras_hub.models.RobertaBackbone):
        raise InputError(f"LoRA needs a keras-hub RoBERTa backbone, not {type(backbone).__name__}")
    projections = _projections(backbone, targets)
    if style == "per-head":
        if dropout > 0:
            warnings.warn(
                "per-head (keras-hub) LoRA has no dropout; lora dropout "
                f"{dropout} is ignored", stacklevel=2,
            )
        # keras-hub's own recipe: freeze the backbone's layers, then EinsumDense.enable_lora on
        # the targets (their kernels freeze, their biases stay trainable).
        backbone.enable_lora(rank, target_layer_names=list(targets))
        for *_, layer in projections:
            layer.lora_alpha = alpha
    else:
        for *_, layer in projections:
            if type(layer) is not keras.layers.EinsumDense:
                raise InputError(f"{layer.path} is not a plain EinsumDense projection")
        seeds = random.Random(seed) if seed is not None else random
        for _, target, attention, layer in projections:
            lora = LoraEinsumDense.from_base(layer, rank, alpha, dropout,
                                             seed=seeds.randrange(2**31))
            _replace(attention, target, lora)
        _freeze_all_but_lora(backbone)
        if type(backbone) is keras_hub.models.RobertaBackbone:
            backbone.__class__ = LoraAwareBackbone  # why: see the module docstring
        _refresh_torch_parameters(model)
    _forget_traced_functions(model)
    return model


def merge_lora(model, unload: bool = True):
    """Fold every LoRA delta into its kernel.

    Args:
        model: a LoRA model (a model without LoRA is returned unchanged).
        unload: True: remove A and B as well; the model is then a plain keras-hub classifier
            whose outputs equal the LoRA model's (in inference), all of its weights trainable
            again as in a freshly built model, and its ``.keras`` file loads without this
            package. False: keep A and B (and LoRA's frozen/trainable split); the branch is off
            until :func:`unmerge_lora`.

    Returns:
        ``model`` (changed in place).

    Raises:
        InputError: ``unload=False`` on per-head (keras-hub) LoRA.
    """
    config = lora_config(model)
    if not config:
        return model
    backbone = model.backbone
    if config["style"] == "per-head":
        if not unload:
            raise InputError("per-head (keras-hub) LoRA can only be merged with unload=True")
        for _, _, layer in _per_head_layers(backbone):
            merged = layer.kernel
            layer.lora_enabled = False
            layer._kernel.assign(merged)
            _drop_attributes(layer, ("lora_kernel_a", "lora_kernel_b"))
            layer.lora_rank = layer.lora_alpha = None
        backbone._lora_enabled_layers = []
    else:
        for _, _, layer in _lora_layers(backbone):
            layer.merge()
        if not unload:
            _forget_traced_functions(model)
            return model
        _remove_lora_layers(model)
    backbone.trainable = True  # also re-enables the layers keras-hub's enable_lora froze
    for variable in backbone.weights:
        variable.trainable = True
    _forget_traced_functions(model)
    return model


def _remove_lora_layers(model) -> None:
    """Replace every LoraEinsumDense by a plain layer with its stored kernel (merge first to
    keep the deltas; without merging, this drops them and the base is back)."""
    backbone = model.backbone
    for index, target, layer in _lora_layers(backbone):
        _replace(_attention(backbone, index), target, _plain_copy(layer))
    if type(backbone) is LoraAwareBackbone and is_default(backbone):
        backbone.__class__ = keras_hub.models.RobertaBackbone
    _refresh_torch_parameters(model)


def unmerge_lora(model):
    """Take the deltas folded in by ``merge_lora(model, unload=False)`` out of the kernels again
    and switch the LoRA branches back on (a model not merged is returned unchanged).

    Returns:
        ``model`` (changed in place).
    """
    for _, _, layer in _lora_layers(model.backbone):
        layer.unmerge()
    _forget_traced_functions(model)
    return model


def _drop_attributes(layer, names) -> None:
    """Delete LoRA attributes; variables are untracked first (Layer.__delattr__)."""
    for name in names:
        if getattr(layer, name, None) is not None:
            delattr(layer, name)


def count_params(model) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts; the total includes LoRA's A and B."""
    trainable = sum(math.prod(v.shape) for v in model.trainable_weights)
    total = sum(math.prod(v.shape) for v in model.weights)
    return int(trainable), int(total)


# ---------------------------------------------------------------------------- adapters


def _adapter_variables(model) -> dict:
    """``{stable name: variable}`` of what LoRA trains in ``model`` (its current LoRA)."""
    config = lora_config(model)
    found = {}
    for i, target, layer in _lora_layers(model.backbone):
        found[f"layer_{i}.{target}.lora_a"] = layer.lora_a
        found[f"layer_{i}.{target}.lora_b"] = layer.lora_b
    if config and config["style"] == "per-head":
        for i, target, layer in _per_head_layers(model.backbone):
            found[f"layer_{i}.{target}.lora_kernel_a"] = layer.lora_kernel_a
            found[f"layer_{i}.{target}.lora_kernel_b"] = layer.lora_kernel_b
            found[f"layer_{i}.{target}.bias"] = layer.bias
    found.update(_head_variables(model))
    return found


def _head_variables(model) -> dict:
    return {
        f"head.{name}.{kind}": getattr(model.get_layer(name), kind)
        for name in HEAD_LAYERS for kind in ("kernel", "bias")
    }


def _adapter_shapes(model, settings: dict) -> dict:
    """``{stable name: shape}`` an adapter with ``settings`` must hold for ``model``."""
    shapes = {}
    for i, target, _, layer in _projections(model.backbone, settings["targets"]):
        kernel = tuple(int(d) for d in _base_kernel(layer).shape)
        r = settings["rank"]
        if settings["style"] == "matrix":
            shapes[f"layer_{i}.{target}.lora_a"] = (kernel[0], r)
            shapes[f"layer_{i}.{target}.lora_b"] = (r, math.prod(kernel[1:]))
        else:
            shapes[f"layer_{i}.{target}.lora_kernel_a"] = kernel[:-1] + (r,)
            shapes[f"layer_{i}.{target}.lora_kernel_b"] = (r, kernel[-1])
            shapes[f"layer_{i}.{target}.bias"] = tuple(int(d) for d in layer.bias.shape)
    for name, variable in _head_variables(model).items():
        shapes[name] = tuple(int(d) for d in variable.shape)
    return shapes


def _base_kernel(layer):
    return layer._kernel


def base_fingerprint(model, style: str = "matrix", targets=()) -> str:
    """SHA-256 of the frozen base weights: every backbone weight except LoRA's A and B (and, for
    per-head style, the targets' biases, which it trains), as float32, in path order.

    Raises:
        InputError: the model's LoRA kernels are merged (they no longer hold the base).
    """
    if _is_merged(model):
        raise InputError("LoRA is merged into the kernels: call unmerge_lora first")
    backbone = model.backbone
    skip = set()
    for _, _, layer in _lora_layers(backbone):
        skip |= {id(layer.lora_a), id(layer.lora_b)}
    for _, _, layer in _per_head_layers(backbone):
        skip |= {id(layer.lora_kernel_a), id(layer.lora_kernel_b)}
    if style == "per-head":
        skip |= {id(layer.bias) for *_, layer in _projections(backbone, targets)}
    digest = hashlib.sha256()
    for variable in sorted(backbone.weights, key=lambda v: v.path):
        if id(variable) in skip:
            continue
        value = np.ascontiguousarray(ops.convert_to_numpy(variable), dtype="<f4")
        digest.update(f"{variable.path}:{value.shape}\n".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def _adapter_file(path) -> Path:
    path = Path(path)
    return path / ADAPTER_FILE if path.is_dir() else path


def save_adapter(model, path) -> Path:
    """Write only what LoRA trained (A, B, the head; per-head style: also q/k/v biases).

    Args:
        model: a LoRA model (not merged).
        path: a ``.safetensors`` file, or a folder (``adapter.safetensors`` is written there).

    Returns:
        The file written (atomically). Tensors are float32, keyed ``layer_{i}.{target}.lora_a``
        / ``lora_b`` and ``head.{pooled_dense|logits}.{kernel|bias}``; the metadata holds
        ``format``, ``lora`` (the settings as JSON) and ``base_sha256`` (:func:`base_fingerprint`).

    Raises:
        InputError: no LoRA on the model, LoRA merged, or a file name not ending .safetensors.

    Example:

    >>> import tempfile
    >>> from project.models.roberta import build_classifier
    >>> model = enable_lora(build_classifier(), rank=8, alpha=16)
    >>> save_adapter(model, tempfile.mkdtemp()).name
    'adapter.safetensors'
    """
    from project.models.tensor_files import write_safetensors

    config = lora_config(model)
    if not config:
        raise InputError("the model has no LoRA enabled: nothing to save as an adapter")
    path = _adapter_file(path)
    if path.suffix != ".safetensors":
        raise InputError(f"{path}: an adapter file name must end in .safetensors")
    tensors = {name: np.asarray(ops.convert_to_numpy(v), dtype="float32")
               for name, v in _adapter_variables(model).items()}
    metadata = {
        "format": ADAPTER_FORMAT,
        "lora": json.dumps(config, sort_keys=True),
        "base_sha256": base_fingerprint(model, config["style"], config["targets"]),
    }
    return write_safetensors(path, tensors, metadata)


def _settings_from_metadata(path, metadata: dict) -> dict:
    if metadata.get("format") != ADAPTER_FORMAT:
        raise InputError(f"{path}: not an adapter of this project (metadata format "
                         f"{metadata.get('format')!r}, expected {ADAPTER_FORMAT!r})")
    try:
        settings = json.loads(metadata["lora"])
        if not isinstance(settings, dict):
            raise ValueError("not a JSON object")
        settings = {k: settings[k] for k in ("style", "rank", "alpha", "dropout", "targets")}
    except (KeyError, ValueError) as err:
        raise InputError(f"{path}: bad LoRA settings in the metadata ({err})") from None
    try:
        settings["targets"] = list(check_settings(**settings))
    except InputError as err:
        raise InputError(f"{path}: bad LoRA settings in the metadata ({err})") from None
    if "base_sha256" not in metadata:
        raise InputError(f"{path}: the metadata has no base_sha256")
    return settings


def check_tensors(path, tensors: dict, expected: dict, what: str = "adapter") -> None:
    """Raise one InputError line unless ``tensors`` has exactly the ``expected`` names and
    shapes, in float32, with finite values."""
    missing = sorted(set(expected) - set(tensors))
    if missing:
        raise InputError(f"{path}: {what} lacks {len(missing)} tensor(s), e.g. {missing[0]}")
    unexpected = sorted(set(tensors) - set(expected))
    if unexpected:
        raise InputError(f"{path}: unexpected tensor {unexpected[0]} "
                         f"({len(unexpected)} in all) for this {what}'s settings")
    for name, shape in expected.items():
        value = tensors[name]
        if tuple(value.shape) != tuple(shape):
            raise InputError(f"{path}: {name} has shape {tuple(value.shape)}, "
                             f"the model expects {tuple(shape)}")
        if value.dtype != np.float32:
            raise InputError(f"{path}: {name} is {value.dtype}, expected float32")
        if not np.isfinite(value).all():
            raise InputError(f"{path}: {name} holds NaN or infinite values")


def load_adapter(model, path):
    """Put an adapter written by :func:`save_adapter` on ``model`` (the same base).

    Everything is checked first (file, settings, names, shapes, dtypes, finite values, base
    hash); only then is LoRA enabled with the adapter's settings (or the model's current LoRA
    layers replaced, if their settings differ) and the weights assigned. A failure leaves the
    model as it was. Loading another adapter later switches tasks without rebuilding the base.

    Args:
        model: a RoBERTa classifier with the base weights the adapter was trained on.
        path: the ``.safetensors`` file, or a folder holding ``adapter.safetensors``.

    Returns:
        ``model`` (changed in place).

    Raises:
        InputError: one line: missing, truncated or non-safetensors file, bad settings,
            missing, unexpected, mis-shaped, non-float32 or non-finite tensors, or an adapter
            made for another base.

    Example:

    >>> import tempfile, numpy as np
    >>> from project.models.roberta import build_classifier
    >>> model = enable_lora(build_classifier(), rank=8, alpha=16)
    >>> path = save_adapter(model, tempfile.mkdtemp())
    >>> query = lora_layers(model)["layer_0.query"]
    >>> _ = query.lora_b.assign(np.ones(query.lora_b.shape, "float32"))  # e.g. another task's
    >>> _ = load_adapter(model, path)                                 # switched back
    >>> float(np.abs(keras.ops.convert_to_numpy(query.lora_b)).max())
    0.0
    """
    from project.models.tensor_files import read_safetensors

    path = _adapter_file(path)
    tensors, metadata = read_safetensors(path, what="adapter", float32_only=True)
    settings = _settings_from_metadata(path, metadata)
    check_tensors(path, tensors, _adapter_shapes(model, settings))
    current = lora_config(model)
    if current is not None and current["style"] != settings["style"]:
        raise InputError(f"{path}: a {settings['style']} adapter cannot replace the model's "
                         f"{current['style']} LoRA; merge_lora first or use a fresh model")
    if current is not None and current["style"] == "per-head" and current != settings:
        raise InputError(f"{path}: adapter settings {settings} differ from the model's per-head "
                         f"LoRA {current}")
    if _is_merged(model):
        raise InputError("LoRA is merged into the kernels: call unmerge_lora first")
    expected_hash = base_fingerprint(model, settings["style"], settings["targets"])
    if metadata["base_sha256"] != expected_hash:
        raise InputError(
            f"{path}: made for another base model (base weights SHA-256 "
            f"{metadata['base_sha256'][:12]}..., this model's {expected_hash[:12]}...)"
        )
    apply_adapter(model, settings, tensors)
    return model


def apply_adapter(model, settings: dict, tensors: dict) -> None:
    """Enable LoRA with ``settings`` (replacing LoRA layers with other settings) and assign the
    checked ``tensors`` (stable names, as :func:`save_adapter` writes them)."""
    current = lora_config(model)
    if current is not None and current != settings:
        _remove_lora_layers(model)  # the base kernels are unchanged: nothing was merged
        current = None
    if current is None:
        enable_lora(model, settings["rank"], settings["alpha"], settings["dropout"],
                    settings["targets"], settings["style"])
    for name, variable in _adapter_variables(model).items():
        variable.assign(tensors[name])
    _forget_traced_functions(model)
