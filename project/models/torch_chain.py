"""A chain of Keras layers computed the way plain PyTorch computes it (torch backend only).

Under the torch backend every Keras layer call goes through Keras's dispatch (about 0.2 ms per
layer on a CPU core), convolutions and pooling transpose channels-last activations around each
torch op, and batch normalisation runs as about ten separate ops. For a model that is a plain
chain of layers this module knows (the fraud ConvNet: Reshape, Conv1D, BatchNormalization,
MaxPooling1D, Dropout, Flatten, Dense), :func:`chain_forward` returns a function computing the
same outputs directly with torch's own ops on the layers' variables:

* activations stay in the memory layout Keras gives them: a convolution's output is
  channels-first in memory and seen channels-last (a view, no copy), so the next
  convolution, batch norm or pooling reads it channels-first for free, and elementwise layers
  (dropout) see the very layout Keras's path gives them, hence draw the same masks;
* batch normalisation in training is torch's fused kernel; the moving statistics are
  updated exactly as Keras updates them (biased batch variance, Keras's momentum);
* max pooling whose stride equals its size is a reshape and a max (torch's ``max_pool1d`` is
  slow on CPUs; the same maximum, and the same element gets the gradient on ties);
* with ``all_mean`` (several processes, :mod:`project.training.torch_step`), batch
  normalisation uses the statistics of the global batch, as one process would.

The saved model is unchanged (this is a way to compute it, not another model): the same
variables, the same configuration. Anything else (another layer or setting, a mixed-precision
policy, a branching graph, another backend) gives None, and the caller uses the model's own
call. The results equal Keras's to float rounding (tests: predictions and trained weights).

Example:

>>> import keras
>>> from project.models.convnet import build_convnet
>>> forward = chain_forward(build_convnet())
>>> forward is None or callable(forward)          # None unless the backend is torch
True
"""

from __future__ import annotations

import keras

#: The layers a chain may hold.
_LAYERS = ("InputLayer", "Reshape", "Conv1D", "BatchNormalization", "MaxPooling1D", "Dropout",
           "Flatten", "Dense")


def chain_forward(model, all_mean=None):
    """A function ``(x, training) -> outputs`` computing ``model`` with torch ops, or None.

    Args:
        model: a built Keras model (functional or Sequential).
        all_mean: ``tensor -> its mean over the processes`` (differentiable), for batch
            normalisation over the global batch of several processes; None in one process.

    Returns:
        The function, or None where the model is not a float32 chain of the layers this module
        knows under the torch backend.
    """
    if keras.backend.backend() != "torch":
        return None
    try:
        if len(model.inputs) != 1 or len(model.outputs) != 1:
            return None
        tensor, steps = model.inputs[0], []
        for layer in model.layers:
            if type(layer).__name__ == "InputLayer":
                continue
            if layer.input is not tensor:  # a branch, a shared layer, a nested model
                return None
            step = _step(layer, all_mean)
            if step is None:
                return None
            steps.append(step)
            tensor = layer.output
        if tensor is not model.outputs[0]:
            return None
    except (AttributeError, ValueError, TypeError):  # an unbuilt or unusual model
        return None

    def forward(x, training=False):
        import torch

        if x.dtype != torch.float32:
            x = x.to(torch.float32)
        for step in steps:
            x = step(x, training)
        return x

    return forward


def _plain(layer) -> bool:
    """float32 throughout, no LoRA, no quantisation, a known layer class."""
    return (type(layer).__name__ in _LAYERS and type(layer).__module__.startswith("keras.")
            and layer.compute_dtype == "float32"
            and all(v.dtype == "float32" for v in layer.weights)
            and not getattr(layer, "lora_enabled", False)
            and getattr(layer, "quantization_mode", None) is None)


def _step(layer, all_mean):
    """The torch computation of one layer, ``(x, training) -> y``, or None."""
    if not _plain(layer):
        return None
    kind = type(layer).__name__
    if kind == "Reshape":
        shape = tuple(layer.target_shape)
        return lambda x, training: x.reshape((x.shape[0], *shape))
    if kind == "Flatten":
        if layer.data_format != "channels_last":
            return None
        return lambda x, training: x.reshape(x.shape[0], -1)
    if kind == "Dropout":
        if layer.noise_shape is not None:
            return None
        return lambda x, training: layer.call(x, training=training)
    if kind == "Dense":
        return _dense(layer)
    if kind == "Conv1D":
        return _conv1d(layer)
    if kind == "MaxPooling1D":
        return _max_pool1d(layer)
    return _batch_norm(layer, all_mean)


def _dense(layer):
    import torch

    def step(x, training):
        kernel = layer.kernel.value
        if layer.bias is None:
            y = x @ kernel
        elif x.ndim == 2:
            y = torch.addmm(layer.bias.value, x, kernel)
        else:
            y = x @ kernel + layer.bias.value
        return layer.activation(y)

    return step


def _conv1d(layer):
    from torch.nn import functional

    if (layer.data_format != "channels_last" or layer.padding != "valid"
            or layer.groups != 1):
        return None
    stride, dilation = layer.strides[0], layer.dilation_rate[0]

    def step(x, training):
        # Keras's kernel is (width, in, out); torch's (out, in, width).
        y = functional.conv1d(x.transpose(1, 2), layer.kernel.value.permute(2, 1, 0),
                              None if layer.bias is None else layer.bias.value,
                              stride=stride, dilation=dilation)
        return layer.activation(y.transpose(1, 2))

    return step


def _max_pool1d(layer):
    from torch.nn import functional

    if layer.data_format != "channels_last" or layer.padding != "valid":
        return None
    size, stride = layer.pool_size[0], layer.strides[0]

    def step(x, training):
        x = x.transpose(1, 2)
        if size == stride:
            n, c, length = x.shape
            out = length // size
            y = x[:, :, :out * size].reshape(n, c, out, size).max(-1).values
        else:
            y = functional.max_pool1d(x, size, stride)
        return y.transpose(1, 2)

    return step


def _batch_norm(layer, all_mean):
    import torch
    from torch.nn import functional

    if (getattr(layer, "renorm", False) or layer.synchronized
            or layer.axis not in (-1, len(layer.input.shape) - 1)):
        return None
    momentum, epsilon = layer.momentum, layer.epsilon

    def step(x, training):
        xc = x.transpose(1, -1) if x.ndim > 2 else x  # channels on axis 1, as torch has them
        gamma = None if layer.gamma is None else layer.gamma.value
        beta = None if layer.beta is None else layer.beta.value
        if not (training and layer.trainable):
            y = functional.batch_norm(xc, layer.moving_mean.value, layer.moving_variance.value,
                                      gamma, beta, False, 0.0, epsilon)
            return y.transpose(1, -1) if x.ndim > 2 else y
        channels = xc.shape[1]
        if all_mean is None:
            # torch's fused kernel; with momentum 1 the "running" buffers receive the batch's
            # mean and unbiased variance, from which Keras's biased one follows.
            mean, var = xc.new_zeros(channels), xc.new_zeros(channels)
            y = functional.batch_norm(xc, mean, var, gamma, beta, True, 1.0, epsilon)
            n = xc.numel() // channels
            var = var * ((n - 1) / n)
        else:
            y, mean, var = _global_batch_norm(xc, gamma, beta, epsilon, all_mean)
        with torch.no_grad():  # Keras's update: moving * momentum + batch * (1 - momentum)
            layer.moving_mean.value.mul_(momentum).add_(mean.detach() * (1.0 - momentum))
            layer.moving_variance.value.mul_(momentum).add_(var.detach() * (1.0 - momentum))
        return y.transpose(1, -1) if x.ndim > 2 else y

    return step


def _global_batch_norm(xc, gamma, beta, epsilon, all_mean):
    """Batch normalisation with the mean and variance of every process's rows together
    (Keras's moments: E[x^2] - E[x]^2), differentiable through ``all_mean``."""
    import torch

    channels = xc.shape[1]
    axes = [0, *range(2, xc.ndim)]
    shape = [1, channels] + [1] * (xc.ndim - 2)
    stats = all_mean(torch.cat([xc.mean(axes), (xc * xc).mean(axes)]))
    mean, var = stats[:channels], stats[channels:] - stats[:channels] ** 2
    scale = torch.rsqrt(var + epsilon)
    if gamma is not None:
        scale = scale * gamma
    y = (xc - mean.reshape(shape)) * scale.reshape(shape)
    if beta is not None:
        y = y + beta.reshape(shape)
    return y, mean, var
