"""The LoRA layer of the paper and of PEFT (Hu et al. 2021): a frozen projection plus a trained
low-rank branch, ``y = x W0 + b + (alpha / r) * (dropout(x) A) B``.

A starts like PEFT's (kaiming-uniform), B at zeros, so the layer starts out equal to W0.
:meth:`~LoraEinsumDense.unmerge` gives W0 back exactly after a merge (W0 + delta - delta is not
W0 in float32, and adapters are tied to the base's exact bytes). On an int8 base
(:mod:`project.models.quantize`) Keras's int8 path computes the frozen projection; A and B stay
float32. Putting these layers into a backbone, and taking them out: :mod:`project.models.lora`.

Example:

>>> import keras, numpy as np
>>> base = keras.layers.EinsumDense("abc,cde->abde", output_shape=(None, 2, 4), bias_axes="de")
>>> base.build((None, 5, 8))
>>> lora = LoraEinsumDense.from_base(base, rank=2, alpha=4, seed=0)
>>> x = np.ones((1, 5, 8), "float32")
>>> bool(np.allclose(lora(x), base(x)))              # B = 0: the base model's output
True
>>> _ = lora.lora_b.assign(np.ones((2, 8), "float32"))
>>> lora.merge(); lora.unmerge()
>>> bool((keras.ops.convert_to_numpy(stored_kernel(lora))
...       == keras.ops.convert_to_numpy(stored_kernel(base))).all())    # W0 back, bit for bit
True
"""

from __future__ import annotations

import contextlib
import math

import keras
import numpy as np
from keras import ops

from project.errors import InputError
from project.keras_internals import stored_kernel

#: The configuration entries of LoRA (the rest is EinsumDense's).
LORA_KEYS = ("rank", "alpha", "dropout", "seed", "merged")


@keras.saving.register_keras_serializable(package="project")
class LoraEinsumDense(keras.layers.EinsumDense):
    """An EinsumDense projection (the kernel's first axis on the input's last) with the paper's
    LoRA branch: the kernel and bias frozen, ``lora_a`` (d_in, r) and ``lora_b`` (r, d_out;
    zeros at first) float32 and trainable. ``dropout`` applies to the branch's input in training;
    ``seed`` draws A and the dropout masks; ``merged``: the kernel holds W0 + delta (the branch
    is then off). :meth:`from_base` builds one from a plain layer.
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
        # x (..., d_in) @ kernel (d_in, ...) with the bias on all output axes: torch_call's case.
        output = equation.split("->")[1]
        self.matrix_form = ("." not in equation and output == inputs[:-1] + kernel[1:]
                            and kwargs.get("bias_axes") in (None, kernel[1:]))
        self.seed_generator = (keras.random.SeedGenerator(seed, name="lora_dropout_seed")
                               if dropout > 0 else None)
        self._base_kernel = None  # W0 while merged (a NumPy copy), for an exact unmerge

    @classmethod
    def from_base(cls, base, rank: int, alpha: float, dropout: float = 0.0, seed=None):
        """A LoRA layer equal to ``base`` (a built plain EinsumDense), at its place (paths)."""
        layer = cls.from_config({**base.get_config(), "rank": rank, "alpha": alpha,
                                 "dropout": dropout, "seed": seed})
        build_like(layer, base)
        copy_frozen(layer, base)
        return layer

    def build(self, input_shape):
        super().build(input_shape)
        kernel = stored_kernel(self)
        # PEFT: kaiming_uniform_(a=sqrt(5)) on (r, d_in), i.e. U(-1/sqrt(d_in), 1/sqrt(d_in)).
        a_init = keras.initializers.VarianceScaling(1 / 3, "fan_in", "uniform", seed=self.seed)
        self.lora_a = self.add_weight(name="lora_a", shape=(int(kernel.shape[0]), self.rank),
                                      initializer=a_init)
        self.lora_b = self.add_weight(name="lora_b", initializer="zeros",
                                      shape=(self.rank, math.prod(kernel.shape[1:])))
        kernel.trainable = False
        if self.bias is not None:
            self.bias.trainable = False

    @property
    def scale(self) -> float:
        """alpha / r."""
        return self.alpha / self.rank

    def delta(self):
        """(alpha / r) A B, shaped like the kernel (float32)."""
        product = ops.matmul(ops.convert_to_tensor(self.lora_a), self.lora_b)
        return ops.reshape(self.scale * product, stored_kernel(self).shape)

    @property
    def kernel(self):
        """W0 + delta (the stored kernel when merged; on an int8 base, float32)."""
        kernel = stored_kernel(self)
        if self.quantization_mode is not None:  # q / scale, one scale per output channel
            scale = ops.reshape(self.kernel_scale, (1, *kernel.shape[1:]))
            return ops.add(ops.divide(ops.cast(kernel, "float32"), scale), self.delta())
        if self.merged:
            return kernel
        return ops.add(kernel, ops.cast(self.delta(), kernel.dtype))

    def quantize(self, mode=None, type_check=True, config=None, **kwargs):
        """Keras's quantisation of the frozen kernel; A, B and the bias stay float32. Refused
        while merged (W0 would not come back)."""
        if self.merged:
            raise InputError(f"{self.path}: LoRA is merged into the kernel; unmerge it before "
                             "quantising the base")
        if self.activation not in (None, keras.activations.linear):
            raise InputError(f"{self.path}: an int8 base needs a projection without activation")
        if config is not None:  # keras >= 3.13 passes one; 3.10 has no such argument
            kwargs["config"] = config
        super().quantize(mode, type_check=False, **kwargs)

    def merge(self) -> None:
        """Fold the delta into the stored kernel and switch the branch off (A, B and W0 kept).
        InputError on an int8 base: W0 + delta has no exact int8 form."""
        if self.quantization_mode is not None:
            raise InputError(f"cannot merge LoRA into an {self.quantization_mode} base "
                             f"({self.path}): save the model unmerged, or merge on a float base")
        if not self.merged:
            kernel = stored_kernel(self)
            self._base_kernel = ops.convert_to_numpy(kernel)
            kernel.assign(ops.add(kernel, ops.cast(self.delta(), kernel.dtype)))
            self.merged = True

    def unmerge(self) -> None:
        """Give the stored kernel W0 back and switch the branch on again (a layer merged
        without W0 kept subtracts the delta: exact only up to float rounding)."""
        if self.merged:
            kernel = stored_kernel(self)
            if self._base_kernel is not None:
                kernel.assign(self._base_kernel)
            else:
                kernel.assign(ops.subtract(kernel, ops.cast(self.delta(), kernel.dtype)))
            self._base_kernel = None
            self.merged = False

    def call(self, inputs, training=None):
        if self.matrix_form and keras.backend.backend() == "torch" and not self.quantization_mode:
            return self.torch_call(inputs, training)
        outputs = ops.einsum(self.equation, inputs, stored_kernel(self))
        if self.bias is not None:
            outputs = ops.add(outputs, self.bias)
        if not self.merged:
            outputs = ops.add(outputs, self.branch(inputs, outputs, training))
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def torch_call(self, inputs, training=None):
        """:meth:`call` under torch: one 2-D ``addmm`` with the bias (as ``torch.nn.Linear``)
        instead of a batched einsum, the branch accumulated into it; the same numbers."""
        import torch
        kernel = stored_kernel(self).value  # in the compute dtype under mixed precision
        rows = inputs.reshape(-1, kernel.shape[0])
        weight = kernel.reshape(kernel.shape[0], -1)
        if self.bias is None:
            outputs = rows @ weight
        else:
            outputs = torch.addmm(self.bias.value.reshape(-1), rows, weight)
        if not self.merged:
            x = inputs
            if training and self.dropout > 0:
                x = keras.random.dropout(x, self.dropout, seed=self.seed_generator)
            low = (x.reshape(rows.shape) @ self.lora_a.value) * self.scale
            outputs = torch.addmm(outputs, low, self.lora_b.value)
        outputs = outputs.reshape(*inputs.shape[:-1], *kernel.shape[1:])
        return outputs if self.activation is None else self.activation(outputs)

    def quantized_call(self, inputs, training=None):
        """On an int8 base: Keras's int8 projection (bias included) plus the float32 branch."""
        outputs = super().quantized_call(inputs, training=training)
        if not self.merged:
            outputs = ops.add(outputs, self.branch(inputs, outputs, training))
        return outputs

    def branch(self, inputs, outputs, training=None):
        """The LoRA branch (alpha / r) (dropout(x) A) B, shaped like ``outputs``."""
        x = inputs
        if training and self.dropout > 0:
            x = keras.random.dropout(x, self.dropout, seed=self.seed_generator)
        # Two small matmuls; the scale multiplies the rank-r activations, not the output.
        low = ops.matmul(x, self.lora_a) * self.scale
        return ops.reshape(ops.matmul(low, self.lora_b), ops.shape(outputs))

    def get_config(self):
        config = super().get_config()
        config.pop("lora_rank", None)
        config.pop("lora_alpha", None)
        config.update(rank=self.rank, alpha=self.alpha, dropout=self.dropout, seed=self.seed,
                      merged=self.merged)
        return config

    def _variables_by_name(self) -> dict:
        found = {"kernel": stored_kernel(self), "lora_a": self.lora_a, "lora_b": self.lora_b}
        if self.quantization_mode is not None:
            found["kernel_scale"] = self.kernel_scale
        if self.bias is not None:
            found["bias"] = self.bias
        return found

    def save_own_variables(self, store):
        if not self.built:
            return
        for name, variable in self._variables_by_name().items():
            store[name] = variable
        if self.merged and self._base_kernel is not None:
            store["base_kernel"] = self._base_kernel

    def load_own_variables(self, store):
        if not self.built:
            return
        variables = self._variables_by_name()
        saved = sorted(k for k in store.keys() if k != "base_kernel")
        if saved != sorted(variables):
            raise ValueError(f"LoRA layer {self.path}: saved variables {saved}, expected "
                             f"{sorted(variables)}")
        for name, variable in variables.items():
            variable.assign(store[name])
        self._base_kernel = (np.asarray(store["base_kernel"])
                             if self.merged and "base_kernel" in store.keys() else None)


def build_like(layer, base) -> None:
    """Build ``layer`` for ``base``'s input shape, its variables named at ``base``'s place; the
    kernel starts at zeros (drawing a random one costs ~0.2 s per RoBERTa-large projection)."""
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


def plain_copy(layer: LoraEinsumDense) -> keras.layers.EinsumDense:
    """A plain EinsumDense with ``layer``'s configuration, stored kernel and bias, at its place."""
    config = {k: v for k, v in layer.get_config().items() if k not in LORA_KEYS}
    plain = keras.layers.EinsumDense.from_config(config)  # an int8 policy: an int8 kernel
    build_like(plain, layer)
    copy_frozen(plain, layer)
    return plain


def copy_frozen(layer, base) -> None:
    """Give ``layer`` (built like ``base``) ``base``'s stored kernel, int8 scales and bias."""
    stored_kernel(layer).assign(stored_kernel(base))
    if base.quantization_mode is not None:
        layer.kernel_scale.assign(base.kernel_scale)
    if base.bias is not None:
        layer.bias.assign(base.bias)

