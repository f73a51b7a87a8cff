"""The training loop both experiments share: one ``model.fit`` per epoch, then evaluation,
best-epoch tracking, a checkpoint and a line of progress.

One ``fit`` per epoch, in an order drawn from ``(seed, epoch)`` alone (:func:`epoch_order`), so a
run resumed from its checkpoint replays the next epochs exactly as an uninterrupted run.
Validation is the task's one evaluator, on predictions, once per epoch.

>>> import tempfile, numpy as np
>>> from project.models.convnet import build_convnet, compile_convnet
>>> rng = np.random.default_rng(0)
>>> x, y = rng.normal(size=(200, 29)).astype("float32"), (rng.random(200) < 0.3).astype("float32")
>>> def validate(model):                  # the task's evaluator on validation rows, in real use
...     return {"val_loss": model.evaluate(x, y, verbose=0, return_dict=True)["loss"]}
>>> result = train(compile_convnet(build_convnet()), x, y, validate=validate, epochs=2,
...                batch_size=50, seed=0, monitor="val_loss", verbose=0, data_id="toy",
...                checkpoint=tempfile.mkdtemp() + "/checkpoint.safetensors")
>>> result.epochs_run, result.mode, result.best_epoch in (1, 2), len(result.history["val_loss"])
(2, 'min', True, 2)
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np

from project.errors import InputError, SettingError
from project.training import torch_step
from project.training.callbacks import BestEpoch, TensorBoardLog, progress_line, write_history
from project.training.checkpoint import load_checkpoint, save_checkpoint
from project.training.distribution import Scaling
from project.training.memory import PeakMemory


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The order in which epoch ``epoch`` visits ``n`` training rows, from ``(seed, epoch)`` only.

    >>> epoch_order(5, seed=0, epoch=3).tolist() == epoch_order(5, seed=0, epoch=3).tolist()
    True
    """
    return np.random.default_rng([int(seed), int(epoch)]).permutation(int(n))


class SeedEpoch(keras.callbacks.Callback):
    """Seeds PyTorch's global generator, which Keras's torch backend draws unseeded dropout
    masks from, from ``(seed, epoch)`` when the epoch's steps begin (after ``fit``'s one-off
    set-up): each epoch's masks are independent of what ran before. Process ``i > 0`` draws
    from its own stream. (TensorFlow and JAX keep seed states in checkpointed variables.)
    """

    def __init__(self, seed: int, epoch: int, process: int = 0):
        super().__init__()
        self.seed, self.epoch, self.process = int(seed), int(epoch), int(process)

    def on_epoch_begin(self, epoch, logs=None):
        if keras.backend.backend() == "torch":
            import torch

            rng = np.random.default_rng([self.seed, self.epoch, 1]
                                        + ([self.process] if self.process else []))
            torch.manual_seed(int(rng.integers(2**62)))


def fit_epoch(model, x, y, *, batch_size: int, epoch: int, seed: int, verbose=0,
              plan=None, callbacks=()) -> dict:
    """Train ``model`` for epoch ``epoch`` (0-based) on NumPy ``x`` (array or dict) and ``y``,
    in the order :func:`epoch_order` gives (``shuffle=False``); returns the epoch's training
    logs. ``batch_size`` is the global batch of one step; ``plan`` the run's
    :class:`~project.training.distribution.Scaling` (None: one device); ``callbacks``: more
    Keras callbacks. Under torch the step is :mod:`project.training.torch_step`'s.
    """
    plan = plan or Scaling(keras.backend.backend())
    first = next(iter(x.values())) if isinstance(x, dict) else x
    order, step_batch = plan.epoch_rows(epoch_order(len(first), seed, epoch), batch_size)
    x_epoch = {k: v[order] for k, v in x.items()} if isinstance(x, dict) else x[order]
    x_epoch = plan.fit_inputs(x_epoch)
    steps = -(-len(order) // step_batch)
    with plan.training_inputs(), torch_step.installed(model, plan.processes, steps):
        history = model.fit(
            x_epoch, y[order], batch_size=step_batch, epochs=epoch + 1, initial_epoch=epoch,
            shuffle=False, verbose=verbose,
            callbacks=[SeedEpoch(seed, epoch, plan.process_id), *callbacks,
                       *torch_step.callbacks()],
        )
    return {k: float(v[-1]) for k, v in history.history.items()}


def keras_verbose(verbose) -> int:
    """Keras's progress display for our ``--verbose``: ``"auto"`` is a bar on a terminal only."""
    if verbose == "auto":
        return 1 if sys.stdout.isatty() else 0
    return int(verbose)


class Progress:
    """Epochs done and left across every part of an experiment (seeds x protocols or modes), for
    the "time left" of each progress line: the median epoch time so far times the epochs left."""

    def __init__(self, total_epochs: int):
        self.total, self.done, self.seconds = int(total_epochs), 0, []

    def epoch_done(self, seconds: float | None = None) -> None:
        self.done += 1
        if seconds is not None:
            self.seconds.append(seconds)

    def skip(self, epochs: int) -> None:
        """Epochs that will not run (a finished part, early stopping)."""
        self.total -= int(epochs)

    def seconds_left(self) -> float | None:
        if not self.seconds:
            return None
        return statistics.median(self.seconds) * max(self.total - self.done, 0)


@dataclasses.dataclass
class TrainingResult:
    """What one training run produced: per-epoch logs (``history``), the best epoch (1-based,
    whose weights the model now holds) by ``monitor``, ``train_seconds`` (every epoch with its
    validation, summed over resumes), ``epoch_seconds`` (training only), the median throughput,
    memory peaks, and ``resumed_from`` (epochs done before this process; None: a fresh run)."""

    history: dict
    epochs_run: int
    best_epoch: int | None
    best_value: float | None
    monitor: str
    mode: str
    train_seconds: float
    epoch_seconds: list
    samples_per_second: float | None
    peak_rss_mb: float
    peak_device_mb: float | None
    resumed_from: int | None = None

    def summary(self) -> dict:
        """The scalar fields, for metrics.json."""
        data = dataclasses.asdict(self)
        data.pop("history")
        return data


def train(model, x, y, *, validate: Callable[[object], dict], epochs: int, batch_size: int,
          seed: int, monitor: str, mode: str | None = None, patience: int | None = None,
          checkpoint, data_id: str, where: str = "", progress: Progress | None = None,
          tensorboard_dir=None, verbose="auto", log: Callable[[str], None] = print,
          plan=None) -> TrainingResult:
    """Train ``model`` for ``epochs``, resuming from ``checkpoint`` if it exists.

    Args:
        model, x, y: a compiled Keras model; NumPy training data (``x`` may be a dict).
        validate: ``model -> {"val_loss": ..., ...}``, the task's evaluator, after every epoch.
        monitor, mode: the epoch-log key that picks the best epoch, and its direction (None:
            from the name). patience: stop after this many epochs without a new best.
        checkpoint: the checkpoint file, rewritten after every epoch (only by process 0).
        data_id: identity of the training data; a checkpoint of other data is refused.
        where, progress, log: the progress line's label, shared epoch counter and destination.
        verbose: ``"auto"``, 0, 1 or 2 (:func:`keras_verbose`); 0 prints nothing.
        plan: the run's :class:`~project.training.distribution.Scaling` (None: one device).

    Returns:
        A :class:`TrainingResult`; the model holds the best epoch's weights.
    """
    checkpoint = Path(checkpoint)
    progress = progress or Progress(epochs)
    best, history, best_weights, resumed_from = BestEpoch(monitor, mode), {}, None, None
    state = {"epochs_done": 0, "train_seconds": 0.0, "epoch_seconds": [], "stopped_early": False}
    if checkpoint.exists():
        saved, best_weights = load_checkpoint(checkpoint, model)
        if saved.get("data_id") != data_id:
            raise InputError(f"{checkpoint}: the training data differs from the one this "
                             "checkpoint was trained on (another data file, split or seed)")
        history, state = saved["history"], saved
        best = BestEpoch(monitor, mode, saved["best_epoch"], saved["best_value"])
        resumed_from = state["epochs_done"]
        progress.skip(resumed_from)
    writer = plan is None or plan.chief
    tensorboard = TensorBoardLog(tensorboard_dir) if tensorboard_dir and writer else None
    n_samples = len(next(iter(x.values())) if isinstance(x, dict) else x)

    with PeakMemory() as memory:
        epoch = state["epochs_done"]
        while epoch < epochs and not state["stopped_early"]:
            start = time.perf_counter()
            logs = fit_epoch(model, x, y, batch_size=batch_size, epoch=epoch, seed=seed,
                             verbose=keras_verbose(verbose), plan=plan)
            fit_seconds = time.perf_counter() - start
            logs.update(validate(model))
            validation_seconds = time.perf_counter() - start - fit_seconds
            if monitor not in logs:
                raise SettingError.about("monitor", f"{monitor!r} is not logged "
                                                    f"({', '.join(logs)})")
            logs["epoch_seconds"], logs["val_seconds"] = fit_seconds, validation_seconds
            logs["samples_per_second"] = n_samples / max(fit_seconds, 1e-9)
            for key, value in logs.items():
                history.setdefault(key, []).append(float(value))
            epoch += 1
            if best.update(logs[monitor], epoch):
                best_weights = [keras.ops.convert_to_numpy(w) for w in model.weights]
            if patience is not None and best.epoch is not None and epoch - best.epoch >= patience:
                state["stopped_early"] = True
                progress.skip(epochs - epoch)
            state.update(
                epochs_done=epoch, history=history, best_epoch=best.epoch,
                best_value=best.value, data_id=data_id, monitor=monitor, mode=best.mode,
                train_seconds=state["train_seconds"] + time.perf_counter() - start,
                epoch_seconds=[*state["epoch_seconds"], fit_seconds],
            )
            if writer:
                save_checkpoint(checkpoint, model, state, best_weights)
                write_history(checkpoint.parent / "history.csv", history)
            if tensorboard:
                tensorboard.log(epoch, logs)
            progress.epoch_done(time.perf_counter() - start)
            if verbose != 0:
                log(progress_line(where, epoch, epochs, logs, ("loss", monitor),
                                  progress.seconds_left()))
    if tensorboard:
        tensorboard.close()
    if best_weights is not None:
        for variable, value in zip(model.weights, best_weights):
            variable.assign(value)
    speeds = history.get("samples_per_second") or []
    return TrainingResult(
        history=history, epochs_run=state["epochs_done"], best_epoch=best.epoch,
        best_value=best.value, monitor=monitor, mode=best.mode,
        train_seconds=state["train_seconds"], epoch_seconds=state["epoch_seconds"],
        samples_per_second=statistics.median(speeds) if speeds else None,
        peak_rss_mb=memory.peak_rss_mb, peak_device_mb=memory.peak_device_mb,
        resumed_from=resumed_from)
