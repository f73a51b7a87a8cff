"""Callbacks shared by both experiments.

* :class:`EpochTimer` adds ``epoch_seconds`` and ``samples_per_second`` to each epoch's logs (so
  they land in the CSV history too).
* :class:`KeepBest` keeps the weights of the best epoch by a monitored metric and restores them
  when training ends (without stopping early, unlike ``EarlyStopping``).
* :func:`training_callbacks` assembles the standard list: timer, best-epoch keeper, optional early
  stopping, CSV history, optional TensorBoard.

Example:

>>> cbs = training_callbacks("runs/x", num_samples=1000, monitor="val_pr_auc")  # doctest: +SKIP
>>> model.fit(x, y, validation_data=(xv, yv), callbacks=cbs)                    # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import keras


class EpochTimer(keras.callbacks.Callback):
    """Wall-clock seconds and training throughput of each epoch.

    Args:
        num_samples: training samples seen per epoch (for samples/s).

    After ``fit``: ``epoch_seconds`` (list) and ``samples_per_second`` (list).
    """

    def __init__(self, num_samples: int):
        super().__init__()
        self.num_samples = int(num_samples)
        self.epoch_seconds: list[float] = []
        self.samples_per_second: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_test_begin(self, logs=None):
        # Validation runs inside the epoch; keep it out of the training throughput.
        self._test_start = time.perf_counter()

    def on_test_end(self, logs=None):
        self._start += time.perf_counter() - self._test_start

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self._start
        self.epoch_seconds.append(seconds)
        self.samples_per_second.append(self.num_samples / max(seconds, 1e-9))
        if logs is not None:
            logs["epoch_seconds"] = seconds
            logs["samples_per_second"] = self.samples_per_second[-1]


class KeepBest(keras.callbacks.Callback):
    """Remember the best epoch's weights by ``monitor`` and restore them at the end of training.

    Args:
        monitor: a key of the epoch logs, e.g. ``"val_accuracy"`` or ``"val_pr_auc"``.
        mode: ``"max"`` or ``"min"``.

    After ``fit``: ``best_epoch`` (1-based) and ``best_value``.
    """

    def __init__(self, monitor: str = "val_accuracy", mode: str = "max"):
        super().__init__()
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        self.monitor, self.mode = monitor, mode
        self.best_epoch: int | None = None
        self.best_value: float | None = None
        self._best_weights = None

    def _better(self, value: float) -> bool:
        if self.best_value is None:
            return True
        return value > self.best_value if self.mode == "max" else value < self.best_value

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            raise KeyError(f"KeepBest: {self.monitor!r} is not in the epoch logs {sorted(logs or {})}")
        value = float(value)
        if not math.isnan(value) and self._better(value):
            self.best_epoch, self.best_value = epoch + 1, value
            self._best_weights = self.model.get_weights()

    def on_train_end(self, logs=None):
        if self._best_weights is not None:
            self.model.set_weights(self._best_weights)


def training_callbacks(
    out_dir,
    num_samples: int,
    monitor: str = "val_accuracy",
    mode: str = "max",
    patience: int | None = None,
    tensorboard: bool = False,
    prefix: str = "",
) -> list[keras.callbacks.Callback]:
    """The standard callbacks, in the order they must run.

    Args:
        out_dir: folder for ``{prefix}history.csv`` (and ``{prefix}tensorboard/``).
        num_samples: training samples per epoch, for throughput.
        monitor, mode: what "best epoch" means.
        patience: stop after this many epochs without improvement (None: never stop early).
        tensorboard: also write TensorBoard logs.
        prefix: file-name prefix when one folder holds several runs (``"lora-"``).

    Returns:
        ``[EpochTimer, KeepBest, (EarlyStopping), CSVLogger, (TensorBoard)]``; the timer comes first
        so that its numbers reach the CSV file.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    callbacks: list[keras.callbacks.Callback] = [
        EpochTimer(num_samples),
        KeepBest(monitor, mode),
    ]
    if patience is not None:
        callbacks.append(
            keras.callbacks.EarlyStopping(monitor=monitor, mode=mode, patience=patience)
        )
    callbacks.append(keras.callbacks.CSVLogger(str(out_dir / f"{prefix}history.csv")))
    if tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(out_dir / f"{prefix}tensorboard")))
    return callbacks
