"""Peak memory of a block of code: host RSS (sampled) and, on an accelerator, the backend's own
peak (:func:`project.training.devices.device_peak_mb`).

Example:

>>> import numpy as np
>>> with PeakMemory() as mem:            # e.g. model.fit(x, y)
...     block = np.ones((4_000, 4_000))  # 122 MiB
>>> mem.peak_rss_mb > 100, mem.peak_device_mb    # no GPU here
(True, None)
"""

from __future__ import annotations

import os
import threading

import keras

from project.training.devices import device_peak_mb, reset_device_peak

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_mb() -> float:
    """Resident set size of this process in MiB (Linux /proc; 0.0 where unavailable)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE / 2**20
    except OSError:
        return 0.0


class PeakMemory:
    """Sample RSS every ``interval`` seconds in a thread; read the GPU peak where there is one.

    Attributes after the block: ``peak_rss_mb`` (host), ``peak_device_mb`` (None on CPU).
    """

    def __init__(self, interval: float = 0.05):
        self.interval = interval
        self.peak_rss_mb = 0.0
        self.peak_device_mb: float | None = None

    def _sample(self):
        while not self._stop.wait(self.interval):
            self.peak_rss_mb = max(self.peak_rss_mb, rss_mb())

    def __enter__(self):
        reset_device_peak(keras.backend.backend())
        self.peak_rss_mb = rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak_rss_mb = max(self.peak_rss_mb, rss_mb())
        self.peak_device_mb = device_peak_mb(keras.backend.backend())
        return False
