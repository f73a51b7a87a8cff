"""keras-hub's RoBERTa backbone, plus what keras-hub's configuration cannot say.

``keras_hub.models.RobertaBackbone`` saves only its sizes; loading rebuilds every layer from
them, with layer-norm epsilon 1e-5, exact GELU and plain ``EinsumDense`` attention projections.
:class:`RobertaBackbone` (registered as ``project>RobertaBackbone``) is the same network with
three more configuration entries, so that a ``.keras`` file rebuilds the model that was saved:

* ``layer_norm_epsilon``: every layer norm's epsilon (Hugging Face's ``layer_norm_eps``);
* ``activation``: the feed-forward activation, one of :data:`ACTIVATIONS` (Hugging Face's
  ``hidden_act``: ``gelu``, ``gelu_new`` / ``gelu_pytorch_tanh`` = ``gelu_tanh``, ``relu``,
  ``silu``);
* ``lora_layers``: the LoRA projections (:class:`project.models.lora.LoraEinsumDense`) by place,
  ``{"transformer_layer_3/query": <serialized layer>, ...}``; the constructor puts them back in
  the attention layers and freezes everything else in the backbone, as
  :func:`project.models.lora.enable_lora` does.

The defaults are keras-hub's, so a keras-hub backbone and this class with default settings are
the same network. :func:`project.models.roberta.build_classifier` uses keras-hub's class unless a
setting differs (a plain keras-hub ``.keras`` file then loads without this package);
:func:`project.models.lora.enable_lora` switches a backbone to this class (see its module for
why), and ``merge_lora`` switches it back.

Loading a ``.keras`` file that uses it needs the class registered: import ``project.models.lora``
(or ``project.models.roberta``) first.

Example:

>>> backbone = RobertaBackbone(vocabulary_size=50, num_layers=1, num_heads=2, hidden_dim=8,
...                            intermediate_dim=16, max_sequence_length=12,
...                            layer_norm_epsilon=1e-3, activation="relu")
>>> backbone.get_config()["layer_norm_epsilon"]
0.001
"""

from __future__ import annotations

import keras
import keras_hub

from project.errors import InputError

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
    """``keras_hub.models.RobertaBackbone`` with ``layer_norm_epsilon``, ``activation`` and
    ``lora_layers`` in its configuration (see the module docstring).

    Args:
        *args, **kwargs: ``keras_hub.models.RobertaBackbone``'s.
        layer_norm_epsilon: epsilon of every layer norm (embeddings and transformer layers).
        activation: a key of :data:`ACTIVATIONS`.
        lora_layers: ``{"transformer_layer_{i}/{query|key|value}": serialized LoRA layer}``.

    Raises:
        InputError: an unknown activation or a non-positive epsilon.
    """

    # Class-level defaults (keras-hub's): a keras-hub backbone switched to this class by
    # ``enable_lora`` has no instance values yet and reads these.
    layer_norm_epsilon = DEFAULT_EPSILON
    activation = DEFAULT_ACTIVATION

    def __init__(
        self,
        *args,
        layer_norm_epsilon: float = DEFAULT_EPSILON,
        activation: str = DEFAULT_ACTIVATION,
        lora_layers: dict | None = None,
        **kwargs,
    ):
        if activation not in ACTIVATIONS:
            raise InputError(
                f"unsupported activation {activation!r}: choose one of {', '.join(ACTIVATIONS)}"
            )
        if not float(layer_norm_epsilon) > 0:
            raise InputError(f"layer_norm_epsilon must be positive, got {layer_norm_epsilon!r}")
        super().__init__(*args, **kwargs)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.activation = activation
        # keras-hub builds every layer in the constructor with its fixed values; the layers read
        # these attributes when called, so setting them now changes what the model computes.
        self.embeddings_layer_norm.epsilon = self.layer_norm_epsilon
        for layer in self.transformer_layers:
            layer.layer_norm_epsilon = self.layer_norm_epsilon
            layer._self_attention_layer_norm.epsilon = self.layer_norm_epsilon
            layer._feedforward_layer_norm.epsilon = self.layer_norm_epsilon
            layer._feedforward_intermediate_dense.activation = ACTIVATIONS[activation]
        if lora_layers:
            from project.models.lora import install_lora_layers  # lora imports this module

            install_lora_layers(self, lora_layers)

    def get_config(self):
        from project.models.lora import lora_layer_configs

        config = super().get_config()
        config.update(
            layer_norm_epsilon=self.layer_norm_epsilon,
            activation=self.activation,
            lora_layers=lora_layer_configs(self) or None,
        )
        return config


def is_default(backbone) -> bool:
    """Whether ``backbone`` computes what keras-hub's own class with the same sizes computes
    (default epsilon and activation; LoRA layers are not looked at)."""
    return (
        getattr(backbone, "layer_norm_epsilon", DEFAULT_EPSILON) == DEFAULT_EPSILON
        and getattr(backbone, "activation", DEFAULT_ACTIVATION) == DEFAULT_ACTIVATION
    )
