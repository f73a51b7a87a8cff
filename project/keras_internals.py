"""The one door to private Keras and keras-hub names: every access to an attribute that the two
libraries do not document is here, and nowhere else. Each accessor says what it reaches and the
versions it was checked on (the oldest ``make test`` runs, see the README, up to keras 3.15.1
and keras-hub 0.32.0): when a release moves one, this file is the only place to change.

>>> import keras
>>> layer = keras.layers.EinsumDense("ab,bc->ac", output_shape=3)
>>> layer.build((None, 2))
>>> tuple(stored_kernel(layer).shape), len(all_layers(keras.Sequential([layer])))
((2, 3), 2)
"""

from __future__ import annotations

import keras


def stored_kernel(layer):
    """The stored kernel variable of a ``Dense`` / ``EinsumDense`` (``layer._kernel``; int8 once
    quantised), not the public ``kernel``, computed under Keras's LoRA or int4. Checked: keras
    3.10-3.15."""
    return layer._kernel


def all_layers(model) -> list:
    """Every layer inside ``model``, nested ones included, ``model`` first: Keras's own walk,
    ``Layer._flatten_layers(include_self=True, recursive=True)``. Checked: keras 3.10-3.15."""
    return list(model._flatten_layers(include_self=True, recursive=True))


def forget_traced_functions(model) -> None:
    """Drop a model's traced ``train_function`` / ``test_function`` / ``predict_function``, which
    would keep computing the old layers or policies; Keras traces them again. Checked: keras
    3.10-3.15."""
    model.train_function = model.test_function = model.predict_function = None


def replace_sublayer(parent, attribute: str, new) -> None:
    """Put ``new`` in ``parent.<attribute>`` in place of the layer there, updating Keras's
    tracking list (``parent._tracker.replace_tracked_value``) so that nothing counts twice.
    Checked: keras 3.10-3.15."""
    old = getattr(parent, attribute)
    parent._tracker.replace_tracked_value("layers", old, new)
    setattr(parent, attribute, new)


def refresh_torch_parameters(model) -> None:
    """torch backend (else a no-op): rebuild each layer's ``_torch_params`` ParameterDict
    (``_track_variables()``) after sublayers were replaced, so that it holds the new variables.
    Checked: keras 3.10-3.15."""
    if keras.backend.backend() != "torch":
        return
    for layer in all_layers(model):
        if "_torch_params" in getattr(layer, "_modules", {}):
            layer._track_variables()


def set_class(obj, cls) -> None:
    """Switch ``obj`` to the class ``cls`` (same instance layout) in place: a keras-hub backbone
    with LoRA layers becomes our registered subclass (:mod:`project.models.backbone`)."""
    obj.__class__ = cls


def clip_summed_gradients(optimizer):
    """Make ``optimizer``'s global-norm clipping apply to the gradient summed over replicas
    under TensorFlow's ``MirroredStrategy`` (a no-op elsewhere); returns it.

    Keras clips in ``BaseOptimizer._clip_gradients``, in each replica before the replicas'
    gradients are summed, so each share is clipped on its own. This replaces that method on
    the instance: it scales each replica's gradient by Keras's clip factor for the global norm
    of the sum (``all_reduce``), as on one device. Checked: keras 3.10-3.15, TensorFlow 2.21.
    """
    if keras.backend.backend() != "tensorflow" or not optimizer.global_clipnorm:
        return optimizer
    import tensorflow as tf

    keras_clip = optimizer._clip_gradients

    def clip(grads):
        context = tf.distribute.get_replica_context()
        if context is None or context.num_replicas_in_sync == 1:
            return keras_clip(grads)
        summed = context.all_reduce(tf.distribute.ReduceOp.SUM, [g for g in grads if g is not None])
        norm = tf.linalg.global_norm(summed)
        limit = tf.cast(optimizer.global_clipnorm, norm.dtype)
        factor = limit * tf.minimum(1.0 / norm, 1.0 / limit) + (norm - norm)  # Keras's formula
        return [None if g is None else g * tf.cast(factor, g.dtype) for g in grads]

    optimizer._clip_gradients = clip
    return optimizer


class _FixedSeed(keras.random.SeedGenerator):
    """A seed generator handing out one seed drawn beforehand, stateless (no
    ``SeedGenerator.__init__``: it would make a variable)."""

    def __init__(self, value, initial_seed):  # noqa: D107 (no super().__init__, on purpose)
        self._value, self._initial_seed = value, initial_seed

    def next(self, ordered=True):
        return self._value


def _drawing(layer, training) -> list:
    """``layer``'s sublayers whose ``seed_generator`` draws in a call with ``training``: dropout
    (``rate``) and LoRA (``dropout``) layers with a positive rate; not, under torch, unseeded
    ones (``_initial_seed`` None), which draw from the global generator torch's checkpoint
    restores."""
    if not training:
        return []
    found = []
    for sub in all_layers(layer)[1:]:
        generator = getattr(sub, "seed_generator", None)
        rate = getattr(sub, "rate", getattr(sub, "dropout", 0.0))
        if not isinstance(generator, keras.random.SeedGenerator) or not (
                isinstance(rate, (int, float)) and rate > 0):
            continue
        if keras.backend.backend() == "torch" and generator._initial_seed is None:
            continue
        found.append(sub)
    return found


def rematerialize(layer) -> None:
    """Recompute ``layer``'s activations in the backward pass: its ``call`` runs through
    ``keras.remat`` with every keyword argument (``training``, masks) bound outside, which
    Keras's ``RematScope`` cannot do for a keras-hub ``TransformerEncoder`` (TensorFlow's custom
    gradient refuses keyword arguments; JAX would trace ``training`` into an array).

    Dropout stays exact: the seeds its generators would draw are drawn once, before the
    rematerialised function, which sees them fixed (``seed_generator`` swapped for the call),
    so forward pass and recomputation use the masks of a plain call. Checked: keras 3.10-3.15
    (``Dropout.seed_generator``, ``rate``, ``_initial_seed``).
    """
    original = layer.call

    def call(inputs, *args, training=None, **kwargs):
        fixed = {sub: _FixedSeed(sub.seed_generator.next(), sub.seed_generator._initial_seed)
                 for sub in _drawing(layer, training)}

        def forward(x):
            kept = {sub: sub.seed_generator for sub in fixed}
            try:
                for sub, seed in fixed.items():
                    object.__setattr__(sub, "seed_generator", seed)
                return original(x, *args, training=training, **kwargs)
            finally:
                for sub, generator in kept.items():
                    object.__setattr__(sub, "seed_generator", generator)

        return keras.remat(forward)(inputs)

    layer.call = call


#: MultiHeadAttention's private attribute behind each projection (read by ``query_dense`` ...).
_PROJECTIONS = {"query": "_query_dense", "key": "_key_dense", "value": "_value_dense",
                "attention_output": "_output_dense"}


def self_attention(transformer_layer):
    """The ``MultiHeadAttention`` of a keras-hub ``TransformerEncoder``
    (``_self_attention_layer``). Checked: keras-hub 0.21-0.32."""
    return transformer_layer._self_attention_layer


def layer_norms(transformer_layer) -> tuple:
    """``(after attention, after the feed-forward)`` layer norms of a keras-hub
    ``TransformerEncoder`` (``_self_attention_layer_norm``, ``_feedforward_layer_norm``).
    Checked: keras-hub 0.21-0.32."""
    return transformer_layer._self_attention_layer_norm, transformer_layer._feedforward_layer_norm


def feedforward(transformer_layer) -> tuple:
    """``(intermediate, output)`` Dense layers of a keras-hub ``TransformerEncoder``
    (``_feedforward_*_dense``). Checked: keras-hub 0.21-0.32."""
    return (transformer_layer._feedforward_intermediate_dense,
            transformer_layer._feedforward_output_dense)


def replace_projection(attention, target: str, new) -> None:
    """Put ``new`` in place of a ``MultiHeadAttention``'s ``target`` projection (query, key,
    value or attention_output; ``_query_dense`` ...). Checked: keras 3.10-3.15."""
    replace_sublayer(attention, _PROJECTIONS[target], new)


def forget_keras_hub_lora(backbone) -> None:
    """Clear keras-hub's record of the layers its ``enable_lora`` changed
    (``Backbone._lora_enabled_layers``), once merged. Checked: keras-hub 0.21-0.32."""
    backbone._lora_enabled_layers = []
