"""keras-hub's RoBERTa backbone, plus what keras-hub's configuration cannot say, and the walk
over its attention projections.

``keras_hub.models.RobertaBackbone`` saves only its sizes. :class:`RobertaBackbone`
(``project>RobertaBackbone``) also saves ``layer_norm_epsilon``, ``activation`` and
``lora_layers``, so a ``.keras`` file rebuilds what was saved. ``enable_lora`` switches the
classifier's very backbone object to this class in place (a new one would mean a new classifier
and twice the memory); the subclass adds no state, so the switch changes only what
``get_config`` writes.

Example:

>>> backbone = RobertaBackbone(vocabulary_size=50, num_layers=1, num_heads=2, hidden_dim=8,
...                            intermediate_dim=16, max_sequence_length=12,
...                            layer_norm_epsilon=1e-3, activation="relu")
>>> backbone.get_config()["layer_norm_epsilon"]
0.001
>>> [(i, target) for i, target, _, _ in projections(backbone, ("query", "value"))]
[(0, 'query'), (0, 'value')]
"""

from __future__ import annotations

import keras
import keras_hub

from project import keras_internals
from project.errors import SettingError
from project.models.lora_layer import LoraEinsumDense, build_like
from project.settings import LORA_TARGETS

#: Feed-forward activations by name (Hugging Face's ``gelu`` is the exact, erf-based one).
ACTIVATIONS = {
    "gelu": lambda x: keras.activations.gelu(x, approximate=False),
    "gelu_tanh": lambda x: keras.activations.gelu(x, approximate=True),
    "relu": keras.activations.relu,
    "silu": keras.activations.silu,
}
DEFAULT_EPSILON = 1e-5
DEFAULT_ACTIVATION = "gelu"


@keras.saving.register_keras_serializable(package="project")
class RobertaBackbone(keras_hub.models.RobertaBackbone):
    """``keras_hub.models.RobertaBackbone`` with ``layer_norm_epsilon``, ``activation`` (a key
    of :data:`ACTIVATIONS`) and ``lora_layers`` (:func:`lora_layer_configs`) in its config."""

    # keras-hub's values, for a backbone switched to this class by ``enable_lora``.
    layer_norm_epsilon = DEFAULT_EPSILON
    activation = DEFAULT_ACTIVATION

    def __init__(self, *args, layer_norm_epsilon: float = DEFAULT_EPSILON,
                 activation: str = DEFAULT_ACTIVATION, lora_layers: dict | None = None, **kwargs):
        if activation not in ACTIVATIONS:
            raise SettingError.about("activation", f"{activation!r} is not supported: choose "
                                                   f"one of {', '.join(ACTIVATIONS)}")
        if not float(layer_norm_epsilon) > 0:
            raise SettingError.about("layer_norm_epsilon",
                                     f"must be positive, got {layer_norm_epsilon!r}")
        super().__init__(*args, **kwargs)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.activation = activation
        # keras-hub builds every layer in the constructor with its fixed values; the layers read
        # these attributes when called, so setting them now changes what the model computes.
        self.embeddings_layer_norm.epsilon = self.layer_norm_epsilon
        for layer in self.transformer_layers:
            layer.layer_norm_epsilon = self.layer_norm_epsilon
            for norm in keras_internals.layer_norms(layer):
                norm.epsilon = self.layer_norm_epsilon
            keras_internals.feedforward(layer)[0].activation = ACTIVATIONS[activation]
        if lora_layers:
            install_lora_layers(self, lora_layers)

    def get_config(self):
        config = super().get_config()
        config.update(layer_norm_epsilon=self.layer_norm_epsilon, activation=self.activation,
                      lora_layers=lora_layer_configs(self) or None)
        return config


def is_default(backbone) -> bool:
    """Whether ``backbone`` has keras-hub's epsilon and activation (LoRA is not looked at)."""
    return (getattr(backbone, "layer_norm_epsilon", DEFAULT_EPSILON) == DEFAULT_EPSILON
            and getattr(backbone, "activation", DEFAULT_ACTIVATION) == DEFAULT_ACTIVATION)


def attention(backbone, index: int):
    """The self-attention layer of transformer layer ``index``."""
    return keras_internals.self_attention(backbone.get_layer(f"transformer_layer_{index}"))


def projections(backbone, targets=LORA_TARGETS) -> list:
    """``[(index, target, attention layer, projection layer), ...]`` for every transformer
    layer and target (query, key, value), in that order."""
    found = []
    for index in range(backbone.num_layers):
        layer = attention(backbone, index)
        found += [(index, t, layer, getattr(layer, f"{t}_dense")) for t in targets]
    return found


def rematerialize_layers(backbone) -> None:
    """Recompute every transformer layer's activations in the backward pass (``--remat``,
    :func:`project.keras_internals.rematerialize`): the same numbers, dropout included."""
    for layer in backbone.transformer_layers:
        keras_internals.rematerialize(layer)


def lora_projections(backbone) -> list:
    """``[(index, target, layer)]`` for every matrix-style LoRA layer of ``backbone``."""
    return [(i, t, layer) for i, t, _, layer in projections(backbone)
            if isinstance(layer, LoraEinsumDense)]


def lora_layer_configs(backbone) -> dict:
    """``{"transformer_layer_{i}/{target}": serialized LoraEinsumDense}`` (for saving)."""
    return {f"transformer_layer_{i}/{target}": keras.saving.serialize_keras_object(layer)
            for i, target, layer in lora_projections(backbone)}


def install_lora_layers(backbone, configs: dict) -> None:
    """Put serialized LoRA layers (:func:`lora_layer_configs`) in ``backbone``, the rest frozen."""
    for place, config in configs.items():
        layer_name, target = place.split("/")
        layer = attention(backbone, int(layer_name.rsplit("_", 1)[1]))
        config = dict(config)
        config.pop("build_config", None)
        lora = keras.saving.deserialize_keras_object(config)
        build_like(lora, getattr(layer, f"{target}_dense"))
        keras_internals.replace_projection(layer, target, lora)
    freeze_all_but_lora(backbone)


def freeze_all_but_lora(backbone) -> None:
    """Every backbone weight frozen except LoRA's A and B."""
    lora = {id(v) for _, _, layer in lora_projections(backbone)
            for v in (layer.lora_a, layer.lora_b)}
    for variable in backbone.weights:
        variable.trainable = id(variable) in lora
