"""The torch backend's training step: Keras's step made lean, and data parallel over processes.

Keras's torch trainer has no data parallelism, and its step walks every module to zero the
gradients and dispatches every layer through Keras. :func:`installed` binds our own
``train_step`` to a model for the length of a ``fit`` (Keras documents overriding
``train_step`` per backend; nothing is subclassed, nothing stays behind):

* the forward pass is :func:`project.models.torch_chain.chain_forward` where the model is a
  chain of layers it knows (the fraud ConvNet), the model's own call otherwise;
* the loss, the metrics and the update are Keras's (``compute_loss``, ``compute_metrics``,
  ``optimizer.apply``: clipping, gradient accumulation and loss scaling as usual); the
  gradients come from ``torch.autograd.grad`` (no ``zero_grad`` walk, no ``.grad``
  accumulation);
* with several processes (``torch.distributed``, :func:`project.training.devices.join_torch`),
  each process feeds its slice of every global batch; the gradients are averaged over the
  processes (one all-reduce of one flat buffer, the loss with them) **before** the optimizer
  step, so clipping sees the global gradient; the metrics are computed on every process's
  predictions gathered, and batch normalisation in the chain forward uses the statistics of
  the global batch (a model that is not such a chain normalises each process's rows on their
  own). So N processes train, log and checkpoint what one process would; each draws its own
  dropout masks.

On one process the step gives Keras's results (tests compare trained weights, predictions and
logs with Keras's own step).

Example:

>>> import keras, numpy as np
>>> from project.models.convnet import build_convnet, compile_convnet
>>> model = compile_convnet(build_convnet())
>>> with installed(model, processes=1):
...     logs = model.fit(np.zeros((8, 29), "float32"), np.zeros((8, 1), "float32"),
...                      batch_size=4, verbose=0).history
>>> sorted(logs), "train_step" in vars(model)        # the model's own step is back
(['accuracy', 'loss'], False)
"""

from __future__ import annotations

import contextlib
import functools

import keras

from project.models.torch_chain import chain_forward

#: How far apart the dropout seed streams of two processes start.
SEED_STREAM = 2**20


@contextlib.contextmanager
def installed(model, processes: int = 1):
    """Inside the block, ``model.fit`` and ``train_on_batch`` use :func:`train_step` (torch
    backend; elsewhere the block does nothing).

    Args:
        model: a compiled Keras model.
        processes: the processes that train it together (``torch.distributed`` joined when more
            than one).
    """
    if keras.backend.backend() != "torch":
        yield model
        return
    world, rank = 1, 0
    if processes > 1:
        import torch.distributed as dist

        world, rank = dist.get_world_size(), dist.get_rank()
    forward = chain_forward(model, all_mean=_all_mean if world > 1 else None)
    model.train_step = functools.partial(train_step, model, forward=forward, world=world)
    # Seeded dropout (the LoRA branch's) draws from seed states that are model variables, the
    # same in every process: each process other than 0 draws from its own stream while it
    # trains (so the processes' rows get independent masks), and gives the states back after.
    seeds = [v for v in model.non_trainable_variables
             if v.path.endswith("seed_generator_state")] if rank else []
    for state in seeds:
        state.assign(state + [rank * SEED_STREAM, 0])
    try:
        yield model
    finally:
        del model.train_step
        for state in seeds:
            state.assign(state - [rank * SEED_STREAM, 0])


def train_step(model, data, forward=None, world: int = 1):
    """One training step of ``model`` on ``data`` (``(x, y, sample_weight)``); returns the
    metrics as Keras's step does. ``forward``: the model's computation (None: its call);
    ``world``: processes whose gradients are averaged."""
    import torch

    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    y_pred = model(x, training=True) if forward is None else forward(x, training=True)
    loss = model.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                              training=True)
    variables = model.trainable_weights
    grads = []
    if variables:
        scaled = model.optimizer.scale_loss(loss)
        grads = list(torch.autograd.grad(scaled, [v.value for v in variables],
                                         allow_unused=True))
    batch = y_pred.shape[0]
    if world > 1:
        grads, loss = _all_mean_gradients(grads, loss.detach(), world)
        y, y_pred, sample_weight = keras.tree.map_structure(
            _all_gather, (y, y_pred.detach(), sample_weight))
        batch *= world
    for metric in model.metrics:
        if metric.name == "loss":  # Keras's loss tracker: the mean over rows
            metric.update_state(loss.detach(), sample_weight=batch)
    if variables:
        with torch.no_grad():
            model.optimizer.apply(grads, variables)
    return model.compute_metrics(x, y, y_pred.detach(), sample_weight)


def _all_mean_gradients(grads, loss, world: int):
    """The gradients and the loss averaged over the processes: one all-reduce of one buffer."""
    import torch
    import torch.distributed as dist

    present = [g for g in grads if g is not None]
    flat = torch.cat([g.reshape(-1) for g in present] + [loss.reshape(1).to(present[0].dtype)
                                                         if present else loss.reshape(1)])
    dist.all_reduce(flat)
    flat /= world
    parts = iter(torch.split(flat, [g.numel() for g in present] + [1]))
    averaged = [None if g is None else next(parts).view_as(g) for g in grads]
    return averaged, next(parts)[0].to(loss.dtype)


def _all_gather(tensor):
    """Every process's ``tensor`` (same shape everywhere) stacked along the batch axis, in
    process order."""
    if tensor is None:
        return None
    import torch
    import torch.distributed as dist

    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)


def _all_mean(tensor):
    """``tensor`` averaged over the processes, differentiably (the gradient flows back to every
    process's contribution): batch-norm statistics of the global batch."""
    import torch.distributed as dist

    return _all_sum().apply(tensor) / dist.get_world_size()


@functools.cache
def _all_sum():
    import torch
    import torch.distributed as dist

    class AllSum(torch.autograd.Function):
        """The sum over the processes; its gradient is the sum of theirs (every process's
        loss depends on every process's contribution)."""

        @staticmethod
        def forward(ctx, tensor):
            total = tensor.clone()
            dist.all_reduce(total)
            return total

        @staticmethod
        def backward(ctx, grad):
            total = grad.clone()
            dist.all_reduce(total)
            return total

    return AllSum
