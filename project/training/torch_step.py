"""The torch backend's training step: Keras's step made lean, and data parallel over processes.

Keras's torch trainer has no data parallelism, and its step walks every module to zero the
gradients and dispatches every layer through Keras. :func:`installed` binds our own
``train_step`` to a model for the length of a ``fit`` (Keras documents overriding
``train_step`` per backend; nothing is subclassed, nothing stays behind):

* the forward pass is :func:`project.models.torch_chain.chain_forward` where the model is a
  chain of layers it knows (the fraud ConvNet), the model's own call otherwise;
* the loss, the metrics and the update are Keras's (``compute_loss``, ``compute_metrics``,
  ``optimizer.apply``: clipping, gradient accumulation and loss scaling as usual), but for
  the ConvNet's binary cross-entropy, computed with torch's own op (:func:`direct_loss`); the
  gradients come from ``torch.autograd.grad`` (no ``zero_grad`` walk, no ``.grad``
  accumulation); in ``fit_epoch`` the metrics (streaming over rows) are updated once, with
  every row of the epoch, at its last step;
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
def installed(model, processes: int = 1, steps: int | None = None):
    """Inside the block, ``model.fit`` and ``train_on_batch`` use :func:`train_step` (torch
    backend; elsewhere the block does nothing).

    Args:
        model: a compiled Keras model.
        processes: the processes that train it together (``torch.distributed`` joined when more
            than one).
        steps: the steps of the one ``fit`` epoch the block holds, if known: the metrics (which
            stream over rows) are then updated once, at the epoch's last step, with every row
            of the epoch, instead of once a step (the logs of the steps before hold the loss).
    """
    if keras.backend.backend() != "torch":
        yield model
        return
    world, rank = 1, 0
    if processes > 1:
        import torch.distributed as dist

        world, rank = dist.get_world_size(), dist.get_rank()
    forward = chain_forward(model, all_mean=_all_mean if world > 1 else None)
    model.train_step = functools.partial(
        train_step, model, forward=forward, world=world,
        loss=None if forward is None else direct_loss(model),
        epoch=None if steps is None else _Epoch(model, steps))
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


class InlineBatchEnd(keras.callbacks.Callback):
    """A batch-end hook that does nothing, so that Keras calls the batch-end hooks in line.

    When no callback has a batch-end hook of its own, Keras hands every step's batch end to a
    thread (on a GPU, turning the logs into numbers would otherwise wait for the device). On a
    CPU the hand-over costs more wall time than the call (measured: about 4% of a ConvNet
    step): :func:`callbacks` adds this hook there."""

    def on_train_batch_end(self, batch, logs=None):
        pass


def callbacks() -> list:
    """The callbacks a ``fit`` with our step adds: :class:`InlineBatchEnd` under torch on a
    CPU, nothing elsewhere."""
    if keras.backend.backend() != "torch":
        return []
    import torch

    return [] if torch.cuda.is_available() else [InlineBatchEnd()]


class _Epoch:
    """One epoch of ``steps`` steps: its trainable variables, and every step's targets,
    predictions and loss, for the metrics at its last step."""

    def __init__(self, model, steps: int):
        self.variables, self.steps = model.trainable_weights, int(steps)
        self.kept, self.loss_sum, self.rows = [], 0.0, 0

    def step_logs(self, model, x, y, y_pred, sample_weight, loss, rows: int, world: int):
        """The logs of a step; at the last, the epoch's metrics (all rows, every process)."""
        self.kept.append((y, y_pred, sample_weight))
        self.loss_sum = self.loss_sum + loss * rows
        self.rows += rows
        if len(self.kept) < self.steps:
            return {}
        y, y_pred, sample_weight = (_concatenate(part) for part in zip(*self.kept))
        return _metrics(model, x, y, y_pred, sample_weight, self.loss_sum / self.rows,
                        self.rows, world)


def train_step(model, data, forward=None, world: int = 1, loss=None,
               epoch: _Epoch | None = None):
    """One training step of ``model`` on ``data`` (``(x, y, sample_weight)``); returns the
    logs. ``forward``: the model's computation (None: its call); ``world``: processes whose
    gradients are averaged; ``loss``: ``(y, y_pred) -> loss`` (None: Keras's
    ``compute_loss``); ``epoch``: the epoch it belongs to (None: Keras's metrics are updated at
    every step)."""
    import torch

    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    y_pred = model(x, training=True) if forward is None else forward(x, training=True)
    if loss is not None and sample_weight is None:
        loss = loss(y, y_pred)
    else:
        loss = model.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                                  training=True)
    variables = model.trainable_weights if epoch is None else epoch.variables
    grads = []
    if variables:
        scaled = model.optimizer.scale_loss(loss)
        grads = list(torch.autograd.grad(scaled, [v.value for v in variables],
                                         allow_unused=True))
    loss, rows = loss.detach(), y_pred.shape[0]
    if world > 1:
        grads, loss = _all_mean_gradients(grads, loss, world)
    if variables:
        with torch.no_grad():
            model.optimizer.apply(grads, variables)
    if epoch is None:
        return _metrics(model, x, y, y_pred.detach(), sample_weight, loss, rows * world, world)
    return epoch.step_logs(model, x, y, y_pred.detach(), sample_weight, loss, rows * world,
                           world)


#: Keras's binary cross-entropy as ``compile(loss="binary_crossentropy")`` makes it.
_BINARY_CROSSENTROPY = {"reduction": "sum_over_batch_size", "from_logits": False,
                        "label_smoothing": 0.0, "axis": -1}


def direct_loss(model):
    """``(y, y_pred) -> loss`` computed with torch's own ops where ``model`` is compiled with
    Keras's binary cross-entropy (the fraud ConvNet) and nothing else adds to its loss (no
    regularisation); None otherwise (Keras's ``compute_loss``). Keras's formula: predictions
    clipped to [epsilon, 1 - epsilon], the mean over the last axis, then over the rows."""
    compiled = model.loss
    if isinstance(compiled, keras.losses.BinaryCrossentropy):
        config = {k: v for k, v in compiled.get_config().items() if k not in ("name", "dtype")}
        if config != _BINARY_CROSSENTROPY:
            return None
    elif compiled not in ("binary_crossentropy", keras.losses.binary_crossentropy):
        return None
    if model.losses:
        return None
    return _binary_crossentropy


def _binary_crossentropy(y, y_pred):
    import torch
    from torch.nn import functional

    epsilon = keras.config.epsilon()
    y_pred = torch.clip(y_pred, epsilon, 1.0 - epsilon)
    return functional.binary_cross_entropy(y_pred, y.to(y_pred.dtype),
                                           reduction="none").mean(-1).mean()


def _metrics(model, x, y, y_pred, sample_weight, loss, rows: int, world: int) -> dict:
    """Keras's loss tracker and compiled metrics updated with these rows (every process's)."""
    if world > 1:
        y, y_pred, sample_weight = keras.tree.map_structure(
            _all_gather, (y, y_pred, sample_weight))
    for metric in model.metrics:
        if metric.name == "loss":  # Keras's loss tracker: the mean over rows
            metric.update_state(loss, sample_weight=rows)
    return model.compute_metrics(x, y, y_pred, sample_weight)


def _concatenate(parts):
    import torch

    return None if parts[0] is None else torch.cat(parts)


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
