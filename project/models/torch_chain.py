"""A chain of Keras layers computed the way plain PyTorch computes it (torch backend only).

Under torch every Keras layer call goes through Keras's dispatch (~0.2 ms per layer on a CPU
core), convolutions transpose channels-last activations around each op, and batch normalisation
runs as about ten ops. For a plain chain of the layers in :data:`_LAYERS` (the fraud ConvNet),
:func:`chain_forward` computes the same outputs with torch's own ops on the layers' variables:
activations stay channels-first (dropout gets Keras's channels-last view, so it draws the same
masks on the same elements; on keras 3.10 the first dropout's differ), batch normalisation is
torch's fused kernel with Keras's moving statistics update (over the global batch with
``all_mean``), and max pooling with stride = size is a reshape and a max (torch's ``max_pool1d``
is slow on CPUs). The model and its variables are unchanged; anything else (another layer or
setting, mixed precision, a branching graph, another backend) gives None, and the caller uses
the model's own call. The results equal Keras's to float rounding.

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
    """A function ``(x, training) -> outputs`` computing ``model`` (built) with torch ops, or
    None. ``all_mean``: ``tensor -> its mean over the processes`` (differentiable), for batch
    normalisation over the global batch; None in one process."""
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
        x = _standard(_channels_first(x))
        for step in steps:
            x = step(x, training)
        return _keras_layout(x)

    return forward


def _plain(layer) -> bool:
    """float32 throughout, no LoRA, no quantisation, a known layer class."""
    return (type(layer).__name__ in _LAYERS and type(layer).__module__.startswith("keras.")
            and layer.compute_dtype == "float32"
            and all(v.dtype == "float32" for v in layer.weights)
            and not getattr(layer, "lora_enabled", False)
            and getattr(layer, "activity_regularizer", None) is None  # added by Keras's call
            and getattr(layer, "quantization_mode", None) is None)


def _step(layer, all_mean):
    """One layer's torch computation ``(x, training) -> y`` (3-D: channels-first), or None."""
    if not _plain(layer) or len(layer.output.shape) > 3:
        return None
    kind = type(layer).__name__
    if kind == "Reshape":
        shape = tuple(layer.target_shape)
        return lambda x, training: _standard(_channels_first(x.reshape((x.shape[0], *shape))))
    if kind == "Flatten":
        if layer.data_format != "channels_last":
            return None
        return lambda x, training: _keras_layout(x).reshape(x.shape[0], -1)
    if kind == "Dropout":
        if layer.noise_shape is not None:
            return None
        # in Keras's layout (a view): the masks fall on the elements Keras's path gives them
        return lambda x, training: _channels_first(layer.call(_keras_layout(x), training))
    builders = {"Dense": _dense, "Conv1D": _conv1d, "MaxPooling1D": _max_pool1d}
    return builders[kind](layer) if kind in builders else _batch_norm(layer, all_mean)


def _standard(x):
    """``x`` with standard strides (else torch's convolution may answer channels-last: slower)."""
    import torch
    return x.clone(memory_format=torch.contiguous_format)


def _channels_first(x):
    return x.transpose(1, 2) if x.ndim == 3 else x


_keras_layout = _channels_first  # the same transposition, back


def _activation(layer, y):
    """``layer``'s activation on a channels-first ``y``: in place where it is elementwise."""
    if layer.activation in (keras.activations.relu, keras.activations.linear):
        return layer.activation(y)
    return _channels_first(layer.activation(_keras_layout(y)))


def _dense(layer):
    import torch
    def step(x, training):
        kernel = layer.kernel.value
        if x.ndim == 2 and layer.bias is not None:
            return layer.activation(torch.addmm(layer.bias.value, x, kernel))
        y = _keras_layout(x) @ kernel
        if layer.bias is not None:
            y = y + layer.bias.value
        return _channels_first(layer.activation(y))

    return step


def _conv1d(layer):
    from torch.nn import functional
    if layer.data_format != "channels_last" or layer.padding != "valid" or layer.groups != 1:
        return None
    stride, dilation = layer.strides[0], layer.dilation_rate[0]

    def step(x, training):
        # Keras's kernel is (width, in, out); torch's (out, in, width).
        y = functional.conv1d(x, layer.kernel.value.permute(2, 1, 0),
                              None if layer.bias is None else layer.bias.value,
                              stride=stride, dilation=dilation)
        return _activation(layer, y)

    return step


def _max_pool1d(layer):
    from torch.nn import functional
    if layer.data_format != "channels_last" or layer.padding != "valid":
        return None
    size, stride = layer.pool_size[0], layer.strides[0]

    def step(x, training):
        if size != stride:
            return functional.max_pool1d(x, size, stride)
        n, c, length = x.shape
        out = length // size
        return x[:, :, :out * size].reshape(n, c, out, size).max(-1).values

    return step


def _batch_norm(layer, all_mean):
    import torch
    from torch.nn import functional
    if (getattr(layer, "renorm", False) or layer.synchronized
            or layer.axis not in (-1, len(layer.input.shape) - 1)):
        return None
    momentum, epsilon = layer.momentum, layer.epsilon

    def step(x, training):
        gamma = None if layer.gamma is None else layer.gamma.value
        beta = None if layer.beta is None else layer.beta.value
        if not (training and layer.trainable):
            return functional.batch_norm(x, layer.moving_mean.value, layer.moving_variance.value,
                                         gamma, beta, False, 0.0, epsilon)
        channels = x.shape[1]
        if all_mean is None:
            # torch's fused kernel; with momentum 1 the "running" buffers receive the batch's
            # mean and unbiased variance, from which Keras's biased one follows.
            mean, var = x.new_zeros(channels), x.new_zeros(channels)
            y = functional.batch_norm(x, mean, var, gamma, beta, True, 1.0, epsilon)
            n = x.numel() // channels
            var = var * ((n - 1) / n)
        else:
            y, mean, var = _global_batch_norm(x, gamma, beta, epsilon, all_mean)
        with torch.no_grad():  # Keras's update: moving * momentum + batch * (1 - momentum)
            layer.moving_mean.value.mul_(momentum).add_(mean.detach() * (1.0 - momentum))
            layer.moving_variance.value.mul_(momentum).add_(var.detach() * (1.0 - momentum))
        return y

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
