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
(1,179,648 LoRA + 1,051,650 head), the number PEFT reports.

Two styles:

* ``"matrix"`` (default, the paper's): each target layer becomes a :class:`LoraEinsumDense`, a
  small EinsumDense subclass (the instance is re-classed in place, so keras-hub's attention layer
  and Keras's layer tracking see the same object; nothing is counted twice).
* ``"per-head"``: keras-hub's own ``backbone.enable_lora(rank, targets)`` plus ``lora_alpha``.
  Keras's EinsumDense LoRA gives every head its own A (hidden x heads x r), has no dropout, and
  leaves the q/k/v biases trainable: 10,599,426 trainable parameters at RoBERTa-large dimensions.
  It is kept for comparison; it is not the paper's LoRA.

:func:`merge_lora` folds the delta into the kernels and removes the LoRA variables, so the model is
a plain keras-hub model again (its ``.keras`` file loads in safe mode, in any backend, without this
module). :func:`save_adapter` / :func:`load_adapter` write and read only the trained variables.

Example:

>>> from project.models.roberta import build_classifier
>>> from project.models.lora import enable_lora, count_params, merge_lora
>>> model = build_classifier()                    # tiny random RoBERTa, bundled tokenizer
>>> enable_lora(model, rank=8, alpha=16, dropout=0.05)
>>> trainable, total = count_params(model)
>>> merge_lora(model)                             # plain keras-hub model, LoRA folded in
"""

from __future__ import annotations

import json
import math
import random
import warnings
from pathlib import Path

import keras
import numpy as np
from keras import ops

from project.errors import InputError
from project.io import atomic_path

TARGETS = ("query", "key", "value")
STYLES = ("matrix", "per-head")
_ATTRIBUTE = {"query": "_query_dense", "key": "_key_dense", "value": "_value_dense"}


class LoraEinsumDense(keras.layers.EinsumDense):
    """An EinsumDense projection with the paper's LoRA branch.

    Not built directly: :func:`enable_lora` re-classes an existing, built ``EinsumDense`` whose
    kernel's first axis is the input's last axis (keras-hub's q/k/v: ``"abc,cde->abde"``) and
    calls :meth:`add_lora`.

    Attributes:
        lora_a: (d_in, rank), trainable.
        lora_b: (rank, d_out), trainable, zeros at first.
        lora_rank, lora_alpha, lora_dropout: the settings; the branch is scaled by alpha / rank.

    The ``kernel`` property returns W0 + delta (what ``save`` writes and what :meth:`merge` folds
    in); ``call`` uses the frozen W0 and the two small matmuls instead.
    """

    def add_lora(self, rank: int, alpha: float, dropout: float = 0.0, seed: int | None = None):
        """Freeze kernel and bias; add A, B (and a seed generator for the branch's dropout).

        ``seed`` must differ between layers: one integer seed gives the same A, and the same
        dropout masks, wherever it is used.
        """
        d_in = int(self._kernel.shape[0])
        self._lora_out_shape = tuple(int(d) for d in self._kernel.shape[1:])
        d_out = math.prod(self._lora_out_shape)
        self._tracker.unlock()
        self.lora_a = self.add_weight(
            name="lora_a",
            shape=(d_in, rank),
            # PEFT: kaiming_uniform_(a=sqrt(5)) on (r, d_in), i.e. U(-1/sqrt(d_in), 1/sqrt(d_in)).
            initializer=keras.initializers.VarianceScaling(1 / 3, "fan_in", "uniform", seed=seed),
        )
        self.lora_b = self.add_weight(name="lora_b", shape=(rank, d_out), initializer="zeros")
        if dropout > 0:
            self.lora_seed_generator = keras.random.SeedGenerator(seed, name="lora_dropout_seed")
        self._tracker.lock()
        self._kernel.trainable = False
        if self.bias is not None:
            self.bias.trainable = False
        self.lora_rank, self.lora_alpha, self.lora_dropout = rank, alpha, dropout

    @property
    def lora_scale(self) -> float:
        return self.lora_alpha / self.lora_rank

    def delta(self):
        """(alpha / r) * A B, shaped like the kernel."""
        product = ops.matmul(self.lora_a, self.lora_b)
        return ops.reshape(self.lora_scale * product, self._kernel.shape)

    @property
    def kernel(self):
        """W0 + delta: the kernel the layer computes with (saving writes this)."""
        return ops.add(self._kernel, ops.cast(self.delta(), self._kernel.dtype))

    def call(self, inputs, training=None):
        outputs = ops.einsum(self.equation, inputs, self._kernel)
        if self.bias is not None:
            outputs = ops.add(outputs, self.bias)
        lora_inputs = inputs
        if training and self.lora_dropout > 0:
            lora_inputs = keras.random.dropout(
                inputs, self.lora_dropout, seed=self.lora_seed_generator
            )
        # Two small matmuls; the scale multiplies the rank-r activations, not the output.
        low = ops.matmul(lora_inputs, ops.cast(self.lora_a, inputs.dtype)) * self.lora_scale
        lora_b = ops.reshape(ops.cast(self.lora_b, inputs.dtype), (-1,) + self._lora_out_shape)
        outputs = ops.add(outputs, ops.tensordot(low, lora_b, axes=1))
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def merge(self) -> None:
        """Fold the delta into the kernel, drop A and B, and become a plain EinsumDense again."""
        self._kernel.assign(self.kernel)
        _drop_attributes(self, ("lora_a", "lora_b", "lora_seed_generator"))
        for name in ("_lora_out_shape", "lora_dropout"):
            self.__dict__.pop(name, None)
        self.lora_rank = self.lora_alpha = None
        self.__class__ = keras.layers.EinsumDense


def _drop_attributes(layer, names) -> None:
    """Delete LoRA attributes; variables and seed generators are untracked first."""
    for name in names:
        value = getattr(layer, name, None)
        if value is None:
            continue
        if isinstance(value, keras.random.SeedGenerator):
            layer._tracker.untrack(value)
        delattr(layer, name)  # Layer.__delattr__ untracks variables (and, on torch, parameters)


def _forget_traced_functions(model) -> None:
    """Drop compiled train/test/predict functions: a TensorFlow graph traced before LoRA was
    enabled or merged would keep computing the old model."""
    model.train_function = model.test_function = model.predict_function = None


def _target_layers(model, targets) -> list[tuple[str, keras.layers.EinsumDense]]:
    """``[("transformer_layer_0/query", layer), ...]`` for every transformer layer."""
    backbone = model.backbone
    found = []
    for i in range(backbone.num_layers):
        attention = backbone.get_layer(f"transformer_layer_{i}")._self_attention_layer
        for target in targets:
            layer = getattr(attention, _ATTRIBUTE[target])
            found.append((f"transformer_layer_{i}/{target}", layer))
    return found


def check_settings(rank, alpha, dropout, targets=TARGETS, style="matrix") -> tuple[str, ...]:
    """Raise InputError for a bad LoRA setting (see :func:`enable_lora`); return the targets."""
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or rank <= 0:
        raise InputError(f"LoRA rank must be a positive integer, got {rank!r} (--rank)")
    if not alpha > 0:
        raise InputError(f"LoRA alpha must be positive, got {alpha!r} (--alpha)")
    if not 0 <= dropout < 1:
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
    return targets


def lora_config(model) -> dict | None:
    """The settings :func:`enable_lora` applied to ``model`` (None if LoRA is not enabled)."""
    config = getattr(model, "_project_lora", None)
    return json.loads(config) if config else None


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
        targets: which projections of each attention layer: "query", "key", "value".
        style: "matrix" (the paper's and PEFT's) or "per-head" (keras-hub's EinsumDense LoRA).
        seed: makes A's initial values and the dropout masks reproducible (each layer gets its
            own seed drawn from it); None: drawn from Python's ``random`` (which
            ``keras.utils.set_random_seed`` seeds).

    Returns:
        ``model`` (changed in place).

    Raises:
        InputError: rank <= 0, alpha <= 0, dropout outside [0, 1), unknown targets or style,
            or LoRA already enabled.

    Example:

    >>> model = build_classifier()                                  # doctest: +SKIP
    >>> enable_lora(model, rank=8, alpha=16, targets=("query", "value"))  # doctest: +SKIP
    """
    targets = check_settings(rank, alpha, dropout, targets, style)
    if lora_config(model):
        raise InputError("LoRA is already enabled on this model; call merge_lora first")
    layers = _target_layers(model, targets)
    if style == "per-head":
        if dropout > 0:
            warnings.warn(
                "per-head (keras-hub) LoRA has no dropout; lora dropout "
                f"{dropout} is ignored", stacklevel=2,
            )
        # keras-hub's own recipe: freeze the backbone's layers, then EinsumDense.enable_lora on
        # the targets (their kernels freeze, their biases stay trainable).
        model.backbone.enable_lora(rank, target_layer_names=list(targets))
        for _, layer in layers:
            layer.lora_alpha = alpha
        dropout = 0.0
    else:
        for variable in model.backbone.weights:
            variable.trainable = False
        seeds = random.Random(seed) if seed is not None else random
        for name, layer in layers:
            if type(layer) is not keras.layers.EinsumDense or not layer.equation.startswith(
                "abc,cde->"
            ):
                raise InputError(f"{name} is not a plain q/k/v EinsumDense ({layer.equation})")
            layer.__class__ = LoraEinsumDense
            layer.add_lora(rank, alpha, dropout, seed=seeds.randrange(2**31))
    # Kept as a JSON string: Keras and TensorFlow wrap dict and list attributes for tracking.
    model._project_lora = json.dumps({
        "style": style, "rank": int(rank), "alpha": float(alpha), "dropout": float(dropout),
        "targets": list(targets),
    })
    _forget_traced_functions(model)
    return model


def merge_lora(model):
    """Fold every LoRA delta into its kernel and remove the LoRA variables.

    Afterwards the model is a plain keras-hub classifier whose outputs equal the LoRA model's (in
    inference); all its weights are trainable again, as in a freshly built model. Saving it gives
    a ``.keras`` file that any backend loads in safe mode without this module.

    Returns:
        ``model`` (changed in place). A model without LoRA is returned unchanged.
    """
    config = lora_config(model)
    if not config:
        return model
    for _, layer in _target_layers(model, config["targets"]):
        if isinstance(layer, LoraEinsumDense):
            layer.merge()
        elif getattr(layer, "lora_enabled", False):
            merged = layer.kernel
            layer.lora_enabled = False
            layer._kernel.assign(merged)
            _drop_attributes(layer, ("lora_kernel_a", "lora_kernel_b"))
            layer.lora_rank = layer.lora_alpha = None
    model.backbone._lora_enabled_layers = []
    model.backbone.trainable = True  # also re-enables the layers keras-hub's enable_lora froze
    for variable in model.backbone.weights:
        variable.trainable = True
    model._project_lora = None
    _forget_traced_functions(model)
    return model


def count_params(model) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts; the total includes LoRA's A and B."""
    trainable = sum(math.prod(v.shape) for v in model.trainable_weights)
    total = sum(math.prod(v.shape) for v in model.weights)
    return int(trainable), int(total)


def _trained_variables(model) -> dict:
    """The variables LoRA trains, by a name that is the same in every backend."""
    return {v.path: v for v in model.trainable_weights}


def save_adapter(model, path) -> Path:
    """Write only what LoRA trained (A, B, the head; per-head style: also q/k/v biases).

    The file is a NumPy ``.npz`` archive: one array per variable, keyed by its Keras path, plus
    the LoRA settings as JSON under ``"__lora__"``. Written atomically.

    Example:

    >>> save_adapter(model, "runs/x/lora-adapter.npz")   # doctest: +SKIP
    """
    config = lora_config(model)
    if not config:
        raise InputError("the model has no LoRA enabled: nothing to save as an adapter")
    arrays = {name: ops.convert_to_numpy(v) for name, v in _trained_variables(model).items()}
    arrays["__lora__"] = np.array(json.dumps(config))
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    return Path(path)


def load_adapter(model, path):
    """Load an adapter written by :func:`save_adapter` into ``model`` (same architecture).

    LoRA is enabled with the saved settings first if the model has none.

    Raises:
        InputError: missing or unreadable file, or a variable missing / shaped differently.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such adapter file")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as err:
        raise InputError(f"{path}: not an adapter archive ({err})") from err
    if "__lora__" not in arrays:
        raise InputError(f"{path}: not an adapter archive (no __lora__ settings)")
    saved = json.loads(str(arrays.pop("__lora__")))
    current = lora_config(model)
    if current is None:
        enable_lora(
            model, saved["rank"], saved["alpha"], saved["dropout"], saved["targets"], saved["style"]
        )
    elif current != saved:
        raise InputError(f"{path}: adapter settings {saved} differ from the model's {current}")
    variables = _trained_variables(model)
    missing = sorted(set(variables) - set(arrays))
    if missing:
        raise InputError(f"{path}: adapter lacks {len(missing)} variable(s), e.g. {missing[0]}")
    for name, variable in variables.items():
        if tuple(arrays[name].shape) != tuple(variable.shape):
            raise InputError(
                f"{path}: {name} has shape {arrays[name].shape}, the model expects {variable.shape}"
            )
        variable.assign(arrays[name])
    return model
