"""The torch backend's training step: Keras's step made lean, and data parallel over processes.

Keras's torch trainer has no data parallelism, and its step walks every module to zero the
gradients. :func:`installed` binds our own ``train_step`` to a model for the length of a ``fit``:
the forward pass is :func:`project.models.torch_chain.chain_forward` where it knows the model
(the fraud ConvNet); the loss (but for the ConvNet's, :func:`direct_loss`), the metrics and the
update (clipping, accumulation, loss scaling) are Keras's; the gradients come from
``torch.autograd.grad``. With several processes the gradients are averaged (one all-reduce)
**before** the optimizer step, so clipping sees the global gradient, and the metrics and the
chain's batch normalisation see the global batch: N processes train, log and checkpoint what
one would. On one process the step gives Keras's results (tested).

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
    backend; elsewhere the block does nothing). ``processes`` train it together (joined with
    ``torch.distributed`` when more than one); ``steps``: the steps of the one ``fit`` epoch the
    block holds, if known: the metrics are then updated once, with every row of the epoch, at
    its last step (the logs of the steps before hold nothing).
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
    # Seeded dropout's seed states are model variables, the same in every process: process
    # i > 0 draws from its own stream while it trains, and gives the states back after.
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
    """A batch-end hook that does nothing, so that Keras calls the batch-end hooks in line
    instead of handing each to a thread: on a CPU the hand-over costs more than the call (about
    4% of a ConvNet step, measured)."""

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
    """One training step of ``model`` on ``data``; returns the logs. ``forward``: the model's
    computation (None: its call); ``world``: processes whose gradients are averaged; ``loss``:
    ``(y, y_pred) -> loss`` (None: Keras's); ``epoch``: None updates the metrics every step."""
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
    """``(y, y_pred) -> loss`` in torch's own ops where ``model``'s loss is Keras's default
    binary cross-entropy alone (the fraud ConvNet); None otherwise (Keras's ``compute_loss``)."""
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
    """Every process's ``tensor`` (same shape everywhere) stacked in process order."""
    if tensor is None:
        return None
    import torch
    import torch.distributed as dist

    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)


def _all_mean(tensor):
    """``tensor`` averaged over the processes, differentiably: global batch-norm statistics."""
    import torch.distributed as dist

    return _all_sum().apply(tensor) / dist.get_world_size()


@functools.cache
def _all_sum():
    import torch
    import torch.distributed as dist

    class AllSum(torch.autograd.Function):
        """The sum over the processes; its gradient is the sum of theirs."""

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
