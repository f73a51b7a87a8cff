"""What :func:`project.training.loop.train` does at the end of every epoch: :class:`BestEpoch`,
``history.csv`` (:func:`write_history`, atomic), TensorBoard scalars and the progress line.

>>> best = BestEpoch("val_loss")
>>> best.mode
'min'
>>> best.update(0.5, epoch=1), best.update(0.7, epoch=2), best.update(0.4, epoch=3)
(True, False, True)
>>> best.epoch, best.value
(3, 0.4)
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from project.io import write_text
from project.settings import monitor_mode


class BestEpoch:
    """The best epoch so far by ``monitor``, an epoch-log key (NaN never counts as best);
    ``mode``: "max", "min", or None to infer it (:func:`project.settings.monitor_mode`)."""

    def __init__(self, monitor: str, mode: str | None = None, epoch=None, value=None):
        self.monitor, self.mode = monitor, monitor_mode(monitor, mode)
        self.epoch: int | None = epoch
        self.value: float | None = value

    def update(self, value: float, epoch: int) -> bool:
        """Record epoch ``epoch`` (1-based) scoring ``value``; True if it is the new best."""
        value = float(value)
        if math.isnan(value):
            return False
        better = (self.value is None
                  or (value > self.value if self.mode == "max" else value < self.value))
        if better:
            self.epoch, self.value = epoch, value
        return better


def write_history(path, history: dict) -> Path:
    """Write ``{"loss": [...], ...}`` as ``history.csv``: one row per epoch, ``epoch`` from 1."""
    keys = sorted(history, key=lambda k: (k.startswith("val_"), k != "loss", k))
    epochs = len(next(iter(history.values()), []))
    lines = [",".join(["epoch", *keys])]
    for i in range(epochs):
        lines.append(",".join([str(i + 1), *(repr(float(history[k][i])) for k in keys)]))
    return write_text(path, "\n".join(lines) + "\n")


class TensorBoardLog:
    """Epoch scalars as TensorBoard event files under ``directory`` (needs ``tensorboard``)."""

    def __init__(self, directory):
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        Path(directory).mkdir(parents=True, exist_ok=True)
        self._writer = EventFileWriter(str(directory))

    def log(self, epoch: int, logs: dict) -> None:
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary

        values = [Summary.Value(tag=k, simple_value=float(v)) for k, v in logs.items()]
        self._writer.add_event(Event(wall_time=time.time(), step=epoch,
                                     summary=Summary(value=values)))
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def progress_line(where: str, epoch: int, epochs: int, logs: dict, keys, seconds_left) -> str:
    """``[seed 1 · lora] epoch 3/10 · loss 0.52 · val_accuracy 0.71 · 4.1 s · ~2 min left``."""
    shown = " · ".join(f"{k} {logs[k]:.4g}" for k in keys if k in logs)
    left = "" if seconds_left is None else f" · ~{_duration(seconds_left)} left"
    return (f"[{where}] epoch {epoch}/{epochs} · {shown} · "
            f"{logs.get('epoch_seconds', 0.0):.1f} s{left}")
