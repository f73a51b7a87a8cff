"""Shared fixtures. The suite runs once per backend: KERAS_BACKEND=tensorflow / torch pytest."""

from __future__ import annotations

import contextlib
import io
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BACKEND = os.environ.setdefault("KERAS_BACKEND", "tensorflow")
OTHER_BACKEND = "torch" if BACKEND != "torch" else "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def run_script(name: str, *args, backend: str = BACKEND, timeout: int = 600):
    """Run ``scripts/<name>`` in a fresh interpreter; returns the CompletedProcess."""
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / name), *map(str, args)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )


def run_script_here(name: str, *args) -> tuple[int, str, str]:
    """Run ``scripts/<name>`` as ``__main__`` in this process (fast: keras is already loaded).

    Returns ``(exit code, stdout, stderr)``.
    """
    out, err = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = [str(ROOT / "scripts" / name), *map(str, args)]
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            runpy.run_path(sys.argv[0], run_name="__main__")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = argv
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="session")
def small_creditcard(tmp_path_factory) -> Path:
    """A small synthetic creditcard.csv: 4,000 rows, 80 frauds."""
    from project.data.creditcard_sample import make_creditcard_sample

    path = tmp_path_factory.mktemp("data") / "creditcard_small.csv"
    make_creditcard_sample(n_rows=4000, n_fraud=80, seed=1).to_csv(path, index=False)
    return path
