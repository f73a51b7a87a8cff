"""Shared fixtures. The suite runs once per backend: KERAS_BACKEND=tensorflow / torch / jax pytest."""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

# Before anything imports torch: one intra-op thread. On this shared 2-core machine PyTorch's
# two spinning threads collapse to a tenth of their speed whenever another process holds a core.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# JAX: compiled programs are kept on disk and shared by the suite's processes (many tests, and
# the scripts they start, compile the same tiny models). The programs, so the numbers, are the
# same; only the compile time is saved.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      os.path.join(tempfile.gettempdir(), "project-tests-jax-cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
# XLA's backend optimisations off (JAX; TensorFlow runs no XLA on a CPU): the suite's models are
# tiny, so compiling them costs more than running them. A tiny RoBERTa's first fit + predict +
# evaluate compiles in 6-8 s instead of 11-16 s on this machine; the numbers move by float
# rounding only (within every test's tolerance; runs compared for equality share the flag).
# Users' runs keep XLA's defaults.
if "--xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = " ".join(filter(None, [os.environ.get("XLA_FLAGS"),
                                                     "--xla_backend_optimization_level=0"]))

import pytest  # noqa: E402

# BACKENDS: every backend, for the tests that run them all in one go (marked
# backend_independent: they run once, under the first backend's session).
from project.backend import BACKENDS, quiet_tensorflow_startup  # noqa: E402,F401
from project.errors import InputError  # noqa: E402

# What every script does first (select_backend): TensorFlow's C++ log off, here and in the
# scripts the tests start (they inherit it; `import jax` would otherwise set level 1 first).
quiet_tensorflow_startup()

ROOT = Path(__file__).resolve().parents[1]
BACKEND = os.environ.setdefault("KERAS_BACKEND", "tensorflow")
OTHER_BACKEND = "torch" if BACKEND != "torch" else "tensorflow"
#: Numbers that depend on the clock, the machine or the process, left out when two runs are
#: compared: timings, memory, and file sizes (a .keras file holds Keras's auto-generated layer
#: names, which count the layers the process built before, so its size moves by a few bytes).
TIMING_KEYS = {"train_seconds", "epoch_seconds", "samples_per_second", "peak_rss_mb",
               "peak_device_mb", "resumed_from", "model_bytes", "adapter_bytes"}


def run_script(name: str, *args, backend: str = BACKEND, timeout: int = 600, env=None):
    """Run ``scripts/<name>`` in a fresh interpreter; returns the CompletedProcess."""
    full_env = dict(os.environ, KERAS_BACKEND=backend, **(env or {}))
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / name), *map(str, args)],
        cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=timeout,
    )


def run_python(code: str, *args, backend: str = OTHER_BACKEND, timeout: int = 300):
    """Run ``python -c code args...`` from the repository root in a fresh interpreter under
    ``backend`` (default: the other one, for cross-backend checks); returns the
    CompletedProcess."""
    # The checkout first, then whatever was on the path (make test-oldest's older keras).
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=path)
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def call_script(name: str, *args) -> tuple[int, str, str]:
    """Call ``scripts/<name>``'s ``main`` in this process, as its command line would (fast: keras
    is already loaded). Returns ``(exit code, stdout, stderr)``; bad input is exit code 2."""
    module = importlib.import_module(f"scripts.{Path(name).stem}")
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = module.main([str(a) for a in args]) or 0
        except InputError as error:
            print(f"error: {error}", file=sys.stderr)
            code = 2
        except SystemExit as exc:  # --help
            code = exc.code if isinstance(exc.code, int) else 1
    return code, out.getvalue(), err.getvalue()


def without_timings(value):
    """A metrics.json (or part of one) without clock- and machine-dependent numbers, run ids and
    environment, so that two runs of the same configuration can be compared for equality."""
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items()
                if k not in TIMING_KEYS | {"run_id", "environment", "command", "git_commit",
                                           "cpu", "platform", "versions", "created"}
                and not k.endswith("_seconds")}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


def read_metrics(out: Path) -> dict:
    return json.loads((Path(out) / "metrics.json").read_text())


@pytest.fixture(scope="session")
def small_creditcard(tmp_path_factory) -> Path:
    """A small synthetic creditcard.csv: 4,000 rows, 80 frauds."""
    from project.data.creditcard_sample import make_creditcard_sample

    path = tmp_path_factory.mktemp("data") / "creditcard_small.csv"
    make_creditcard_sample(n_rows=4000, n_fraud=80, seed=1).to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def tiny_creditcard(tmp_path_factory) -> Path:
    """A tiny synthetic creditcard.csv for runs that train several times: 1,500 rows, 40 frauds."""
    from project.data.creditcard_sample import make_creditcard_sample

    path = tmp_path_factory.mktemp("data") / "creditcard_tiny.csv"
    make_creditcard_sample(n_rows=1500, n_fraud=40, seed=1).to_csv(path, index=False)
    return path


# pytest-xdist (--dist loadfile) hands whole files to its workers in collection order. The
# longest files (measured, TensorFlow session, 2 cores) go first, so that the short ones fill in
# at the end and the workers finish together: run last, test_real_sizes.py alone kept one worker
# busy 58 s after the other had finished.
LONGEST_FIRST = ("test_real_sizes.py", "test_bench.py", "test_resume.py", "test_lora.py",
                 "test_fraud_experiment.py", "test_scaling.py", "test_quantize.py",
                 "test_scaling_processes.py", "test_qqp_experiment.py", "test_device_check.py",
                 "test_wheel.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: files stay whole
