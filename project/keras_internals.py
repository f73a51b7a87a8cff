"""The one door to private Keras and keras-hub names: every access to an attribute that the two
libraries do not document is here, and nowhere else in the project.

Each accessor says what it reaches and the versions it was checked on (keras 3.15.1 and
keras-hub 0.32.0, and the oldest versions ``make test`` runs: see the README). When a Keras or
keras-hub release moves one of these, this file is the only place to change.

Example:

>>> import keras
>>> layer = keras.layers.EinsumDense("ab,bc->ac", output_shape=3)
>>> layer.build((None, 2))
>>> tuple(stored_kernel(layer).shape), len(all_layers(keras.Sequential([layer])))
((2, 3), 2)
"""

from __future__ import annotations

import keras

# --- Keras layers and models ---------------------------------------------------------------------


def stored_kernel(layer):
    """The variable holding a ``Dense`` / ``EinsumDense`` kernel as stored: ``layer._kernel``.

    The public ``layer.kernel`` is a computed value where Keras's own LoRA or quantisation is on
    (W + AB, or an unpacked int4 kernel); this is the stored variable itself (int8 once the
    layer is quantised). Checked: keras 3.10-3.15 (``Dense`` and ``EinsumDense``).
    """
    return layer._kernel


def all_layers(model) -> list:
    """Every layer inside ``model``, nested ones included, ``model`` first: Keras's own walk,
    ``Layer._flatten_layers(include_self=True, recursive=True)``. Checked: keras 3.10-3.15."""
    return list(model._flatten_layers(include_self=True, recursive=True))


def forget_traced_functions(model) -> None:
    """Drop a model's compiled train/test/predict functions (``train_function`` ...), which keep
    the graph they were traced with (TensorFlow) and so would keep computing a model whose layers
    or dtype policies have changed since. Keras makes them again on the next call. Checked:
    keras 3.10-3.15."""
    model.train_function = model.test_function = model.predict_function = None


def replace_sublayer(parent, attribute: str, new) -> None:
    """Put ``new`` in ``parent.<attribute>`` in place of the layer there, updating Keras's
    tracking list in place (``parent._tracker.replace_tracked_value``), so that nothing is
    counted twice; under torch the attribute assignment registers the new module. Checked:
    keras 3.10-3.15."""
    old = getattr(parent, attribute)
    parent._tracker.replace_tracked_value("layers", old, new)
    setattr(parent, attribute, new)


def refresh_torch_parameters(model) -> None:
    """torch backend: every built layer keeps a ``torch.nn.ParameterDict`` of its variables
    (``_torch_params``), filled when it was built. After sublayers were replaced, rebuild those
    dicts (``_track_variables()``) so that they hold the new variables and not the old ones.
    A no-op on other backends. Checked: keras 3.10-3.15."""
    if keras.backend.backend() != "torch":
        return
    for layer in all_layers(model):
        if "_torch_params" in getattr(layer, "_modules", {}):
            layer._track_variables()


def set_class(obj, cls) -> None:
    """Switch ``obj`` to the (sub- or super-) class ``cls`` in place: ``obj.__class__ = cls``.

    Used for one thing (see :mod:`project.models.backbone`): a keras-hub backbone that gets LoRA
    layers becomes our registered subclass, whose configuration can say so, without rebuilding
    the functional classifier around it. The two classes must have the same instance layout.
    """
    obj.__class__ = cls


def clip_summed_gradients(optimizer):
    """Make ``optimizer``'s global-norm clipping apply to the gradient summed over replicas
    under TensorFlow's ``MirroredStrategy``; returns it. A no-op elsewhere.

    Keras clips in ``BaseOptimizer._clip_gradients``, called in each replica before the
    TensorFlow optimizer sums the replicas' gradients (``_backend_update_step``), so each
    replica's share is clipped on its own: one weight, MSE, SGD lr 1, ``global_clipnorm=1``,
    batch 2 gives w = 0 on one device and -1 on two. This replaces that method on the instance:
    in a replica context of several replicas it sums the gradients across them
    (``all_reduce``), takes the global norm of that sum and scales each replica's own
    gradient by Keras's clip factor, so the sum the optimizer then applies is the clipped
    gradient of the whole batch, as on one device and under JAX. Checked: keras 3.10-3.15
    (``_clip_gradients(grads)`` on ``BaseOptimizer``), TensorFlow 2.21.
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


# --- rematerialisation -------------------------------------------------------------------------


class _FixedSeed(keras.random.SeedGenerator):
    """A seed generator that hands out one seed drawn beforehand, and has no state of its own
    (``SeedGenerator.__init__`` is not called: it would make a variable)."""

    def __init__(self, value, initial_seed):  # noqa: D107 (no super().__init__, on purpose)
        self._value, self._initial_seed = value, initial_seed

    def next(self, ordered=True):
        return self._value


def _drawing(layer, training) -> list:
    """``layer``'s sublayers whose ``seed_generator`` draws once in a call with ``training``:
    dropout layers (``rate``) and LoRA layers (``dropout``) with a positive rate. Under torch an
    unseeded generator (``_initial_seed`` None) draws from PyTorch's global generator, whose
    state torch's checkpoint restores for the recomputation: left alone."""
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
    """Recompute ``layer``'s activations in the backward pass instead of keeping them: its
    ``call`` (an instance attribute now) runs its original ``call`` through ``keras.remat``
    (jax.checkpoint, tf.recompute_grad, torch.utils.checkpoint), with every keyword argument
    (``training``, masks) bound outside, as Keras's ``RematScope`` cannot do for a keras-hub
    ``TransformerEncoder`` (TensorFlow's custom gradient refuses keyword arguments in a graph;
    JAX traces ``training`` into an array that ``if training`` cannot read).

    Dropout inside stays exact: the seeds its generators would draw (``seed_generator.next()``,
    reading ``_initial_seed``) are drawn once, before the rematerialised function, which then
    sees fixed seeds (``seed_generator`` swapped for the call, bypassing Keras's tracking), so
    the forward pass and the recomputation use the same masks, the masks of a call without
    rematerialisation. Checked: keras 3.10-3.15 (``Dropout.seed_generator``, ``rate``).
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


# --- keras-hub's RoBERTa (TransformerEncoder and Backbone) ---------------------------------------

#: MultiHeadAttention's private attribute behind each projection (the public ``query_dense`` ...
#: properties read them; only :func:`replace_projection` needs the attribute itself).
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
    (``_feedforward_intermediate_dense``, ``_feedforward_output_dense``). Checked: keras-hub
    0.21-0.32."""
    return (transformer_layer._feedforward_intermediate_dense,
            transformer_layer._feedforward_output_dense)


def replace_projection(attention, target: str, new) -> None:
    """Put ``new`` in place of a ``MultiHeadAttention``'s ``target`` projection (query, key,
    value or attention_output; ``_query_dense`` ...). Checked: keras 3.10-3.15."""
    replace_sublayer(attention, _PROJECTIONS[target], new)


def forget_keras_hub_lora(backbone) -> None:
    """Clear keras-hub's record of the layers its own ``enable_lora`` changed
    (``Backbone._lora_enabled_layers``), after they were merged. Checked: keras-hub 0.21-0.32."""
    backbone._lora_enabled_layers = []
