"""One timed ``model.fit`` with the shared callbacks, returning what the reports need.

Example:

>>> result = fit(model, x, y, validation_data=(xv, yv), epochs=3, batch_size=360,
...              out_dir="runs/x", monitor="val_pr_auc")                 # doctest: +SKIP
>>> result.best_epoch, result.train_seconds, result.samples_per_second  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import statistics
import time

import numpy as np

from project.training.callbacks import EpochTimer, KeepBest, training_callbacks
from project.training.memory import PeakMemory


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The order in which epoch ``epoch`` visits ``n`` training rows: a permutation that depends
    only on ``(seed, epoch)``, so a resumed run visits the rows exactly as an uninterrupted one.

    Example:

    >>> epoch_order(5, seed=0, epoch=3).tolist() == epoch_order(5, seed=0, epoch=3).tolist()
    True
    """
    return np.random.default_rng([int(seed), int(epoch)]).permutation(int(n))


def fit_epoch(model, x, y, *, batch_size: int, epoch: int, seed: int, verbose=0) -> dict:
    """Train ``model`` for epoch ``epoch`` (0-based) on NumPy ``x`` (array or dict) and ``y``,
    in the order :func:`epoch_order` gives; returns the epoch's training logs (loss, metrics).

    This is how both experiments train: one ``model.fit`` call per epoch, data pre-shuffled by
    ``(seed, epoch)`` and ``shuffle=False``, so nothing depends on a data pipeline's hidden state.
    """
    first = next(iter(x.values())) if isinstance(x, dict) else x
    order = epoch_order(len(first), seed, epoch)
    x_epoch = {k: v[order] for k, v in x.items()} if isinstance(x, dict) else x[order]
    history = model.fit(
        x_epoch, y[order], batch_size=batch_size, epochs=epoch + 1, initial_epoch=epoch,
        shuffle=False, verbose=verbose,
    )
    return {k: float(v[-1]) for k, v in history.history.items()}


@dataclasses.dataclass
class TrainingResult:
    """What one training run produced.

    Attributes:
        history: per-epoch logs, ``{"loss": [...], "val_loss": [...], ...}``.
        train_seconds: wall time of ``fit`` (including validation).
        epochs_run: epochs actually run (early stopping may cut them short).
        best_epoch, best_value: the epoch (1-based) whose weights the model now holds.
        epoch_seconds: training time per epoch, validation excluded.
        samples_per_second: median training throughput over epochs.
        peak_rss_mb, peak_device_mb: host peak and accelerator peak (None on CPU).
    """

    history: dict
    train_seconds: float
    epochs_run: int
    best_epoch: int | None
    best_value: float | None
    epoch_seconds: list
    samples_per_second: float
    peak_rss_mb: float
    peak_device_mb: float | None

    def summary(self) -> dict:
        """The scalar fields, for metrics.json."""
        data = dataclasses.asdict(self)
        data.pop("history")
        return data


def fit(
    model,
    x,
    y=None,
    *,
    validation_data,
    epochs: int,
    out_dir,
    num_samples: int,
    batch_size: int | None = None,
    monitor: str = "val_accuracy",
    mode: str = "max",
    patience: int | None = None,
    tensorboard: bool = False,
    prefix: str = "",
    verbose: int | str = "auto",
    **fit_kwargs,
) -> TrainingResult:
    """Train ``model`` with the shared callbacks; restore the best epoch; time and measure it.

    Args:
        model: a compiled Keras model.
        x, y, validation_data, epochs, batch_size: as for ``model.fit`` (``x`` may be a dataset
            or a ``keras.utils.PyDataset``; then ``batch_size`` is None).
        out_dir: where the CSV history (and TensorBoard logs) go.
        num_samples: training samples per epoch, for throughput.
        monitor, mode: the metric that picks the best epoch (e.g. ``"val_pr_auc"``, ``"max"``).
        patience: early-stopping patience (None: run all epochs).
        tensorboard: also write TensorBoard logs.
        prefix: history file prefix (``"lora-"`` when one folder holds several runs).
        verbose: Keras's progress display.
        **fit_kwargs: passed to ``model.fit`` (e.g. ``shuffle``, ``class_weight``).

    Returns:
        A :class:`TrainingResult`.
    """
    callbacks = training_callbacks(
        out_dir, num_samples, monitor=monitor, mode=mode, patience=patience,
        tensorboard=tensorboard, prefix=prefix,
    )
    timer = next(c for c in callbacks if isinstance(c, EpochTimer))
    keeper = next(c for c in callbacks if isinstance(c, KeepBest))
    with PeakMemory() as memory:
        start = time.perf_counter()
        history = model.fit(
            x, y, validation_data=validation_data, epochs=epochs, batch_size=batch_size,
            callbacks=callbacks, verbose=verbose, **fit_kwargs,
        )
        seconds = time.perf_counter() - start
    history = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    return TrainingResult(
        history=history,
        train_seconds=seconds,
        epochs_run=len(timer.epoch_seconds),
        best_epoch=keeper.best_epoch,
        best_value=keeper.best_value,
        epoch_seconds=timer.epoch_seconds,
        samples_per_second=statistics.median(timer.samples_per_second),
        peak_rss_mb=memory.peak_rss_mb,
        peak_device_mb=memory.peak_device_mb,
    )
