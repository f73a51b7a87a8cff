"""Choosing and checking the Keras backend. Keras reads ``KERAS_BACKEND`` once, at its first
import, so every script calls :func:`select_backend` at the very top.

>>> from project.backend import check_backend, select_backend
>>> check_backend("torch")                          # known to Keras, and installed
'torch'
>>> select_backend(["--backend", "torch"])  # before `import keras`  # doctest: +SKIP
'torch'
"""

from __future__ import annotations

import importlib.util
import os
import sys

from project.errors import InputError

BACKENDS = ("tensorflow", "torch", "jax")
DEFAULT_BACKEND = "tensorflow"


def _from_argv(argv: list[str]) -> str | None:
    """The value of the last ``--backend X`` or ``--backend=X`` in ``argv``."""
    found = None
    for i, arg in enumerate(argv):
        if arg == "--backend" and i + 1 < len(argv):
            found = argv[i + 1]
        elif arg.startswith("--backend="):
            found = arg.split("=", 1)[1]
    return found


def check_backend(name: str) -> str:
    """Return ``name`` if it is a Keras backend whose package is installed, else raise InputError."""
    if name not in BACKENDS:
        raise InputError(f"unknown backend {name!r}: choose one of {', '.join(BACKENDS)} "
                         "(--backend or KERAS_BACKEND)")
    if importlib.util.find_spec(name) is None:  # each backend's package has its name
        raise InputError(f"backend {name!r} is not installed (pip install {name}); "
                         f"installed: {', '.join(installed_backends()) or 'none'}")
    return name


def installed_backends() -> list[str]:
    """The Keras backends whose package is installed, in :data:`BACKENDS` order."""
    return [b for b in BACKENDS if importlib.util.find_spec(b) is not None]


def parse_backends(value: str, option: str = "--backends") -> list[str]:
    """A comma-separated list of checked backends without repeats; InputError naming ``option``.

    >>> parse_backends("torch,torch")
    ['torch']
    """
    names = [v.strip() for v in value.split(",") if v.strip()]
    if not names:
        raise InputError(f"{option}: give one or more of " + ", ".join(BACKENDS))
    for name in names:
        try:
            check_backend(name)
        except InputError as err:
            raise InputError(f"{option}: {err}") from None
    return list(dict.fromkeys(names))


def select_backend(argv: list[str] | None = None) -> str:
    """Pick, check, export as ``KERAS_BACKEND`` and return the backend of the last ``--backend``
    in ``argv`` (default ``sys.argv``), else of ``KERAS_BACKEND``; quiet TensorFlow's start-up.
    Run it before ``import keras``: keras loaded with another backend is an InputError."""
    argv = sys.argv[1:] if argv is None else argv
    name = _from_argv(argv) or os.environ.get("KERAS_BACKEND") or DEFAULT_BACKEND
    check_backend(name)
    if "keras" in sys.modules:
        current = sys.modules["keras"].backend.backend()
        if current != name:
            raise InputError(f"keras was already imported with backend {current!r}; "
                             f"set KERAS_BACKEND={name} before importing keras")
    os.environ["KERAS_BACKEND"] = name
    quiet_tensorflow_startup()
    return name


def quiet_tensorflow_startup() -> None:
    """Keep TensorFlow's C++ log off stderr (keras-hub imports it on every backend) unless the
    user set ``TF_CPP_MIN_LOG_LEVEL``: level 3, plus :mod:`project.quiet_tensorflow` for the
    lines printed before TensorFlow reads it. Real failures still raise Python exceptions."""
    from project import quiet_tensorflow

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    quiet_tensorflow.install()


def seed_everything(seed: int) -> None:
    """Fix every source of randomness we control, for identical runs on the same machine:
    Python's, NumPy's and the backend's generators, and TensorFlow's and PyTorch's deterministic
    kernels (JAX is deterministic on CPU). Call it before building a model."""
    import keras

    keras.utils.set_random_seed(int(seed))
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    elif backend == "torch":
        import torch

        torch.use_deterministic_algorithms(True, warn_only=True)


def add_backend_argument(parser) -> None:
    """Add ``--backend`` to an argparse parser (the value was already applied by select_backend)."""
    parser.add_argument("--backend", choices=BACKENDS,
                        default=os.environ.get("KERAS_BACKEND", DEFAULT_BACKEND),
                        help="Keras backend (default: $KERAS_BACKEND or tensorflow)")
