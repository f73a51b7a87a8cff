"""Pieces the command lines share: options both experiments take, argument types, --resume,
and the flag each setting comes from. Light to import, so ``--help`` answers at once.

>>> parse_seeds("0,1,2")
(0, 1, 2)
>>> flag("lora_dropout"), flag("modes")
('--lora-dropout', '--mode')
"""

from __future__ import annotations

import argparse
import functools
import math
from pathlib import Path

from project.backend import add_backend_argument
from project.errors import InputError, SettingError
from project.settings import DISTRIBUTIONS, EPOCH_LOG_KEYS, PRECISIONS

#: Settings whose flag is not ``--`` + the name with dashes.
FLAGS = {"modes": "--mode", "protocols": "--protocol"}


def flag(setting: str) -> str:
    """The command-line flag a setting comes from (``batch_size`` -> ``--batch-size``)."""
    return FLAGS.get(setting, "--" + setting.replace("_", "-"))


def flag_names(main):
    """Decorate a script's ``main``: a bad setting found anywhere in the run is reported with
    the flag that set it (``--rank must be >= 1``), not the library's argument name."""

    @functools.wraps(main)
    def wrapped(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except SettingError as err:
            raise err.naming(flag) from None

    return wrapped


def parse_seeds(text: str) -> tuple[int, ...]:
    """``"0,1,2"`` -> ``(0, 1, 2)``; InputError for empty or non-integer seeds."""
    try:
        return tuple(int(p) for p in str(text).split(","))
    except ValueError:
        raise InputError(f"--seeds {text!r}: give comma-separated integers, e.g. 0,1,2") from None


def finite_float(text: str) -> float:
    """An argparse type: a finite float (``nan`` and ``inf`` are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def verbosity(text: str):
    """``auto``, 0, 1 or 2."""
    if text in ("auto", "0", "1", "2"):
        return text if text == "auto" else int(text)
    raise argparse.ArgumentTypeError(f"choose auto, 0, 1 or 2, not {text!r}")


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and exit code 2, like every other of ours."""

    def error(self, message):
        raise InputError(f"{message} (see --help)")


def add_run_options(p: argparse.ArgumentParser, experiment: str) -> None:
    """The options every experiment takes: seeds, best-epoch choice, scaling, output, resume."""
    p.add_argument("--seed", type=int, default=None, help="one seed (default 0)")
    p.add_argument("--seeds", default=None,
                   help="several seeds, e.g. 0,1,2,3,4: one run each, then mean/std/median")
    p.add_argument("--resplit", action="store_true", default=None,
                   help="a new data split per seed (recorded), so that intervals over seeds "
                        "also cover the split (default: one split for every seed)")
    p.add_argument("--monitor", default=None, choices=EPOCH_LOG_KEYS, metavar="METRIC",
                   help=f"epoch-log key that picks the best epoch: {', '.join(EPOCH_LOG_KEYS)}")
    p.add_argument("--monitor-mode", choices=("max", "min"), default=None,
                   help="default: min for loss-like metrics, max otherwise")
    p.add_argument("--patience", type=int, default=None, help="early stopping (default: off)")
    p.add_argument("--precision", choices=PRECISIONS, default=None,
                   help="Keras dtype policy (default float32)")
    p.add_argument("--distribute", choices=DISTRIBUTIONS, default=None,
                   help="data: data parallel over every local device (JAX, TensorFlow; torch: "
                        "one process per device, started by torchrun)")
    p.add_argument("--grad-accum", type=int, default=None,
                   help="accumulate gradients over K batches before each update")
    p.add_argument("--tensorboard", action="store_true", default=None,
                   help="also write TensorBoard scalars (needs the tensorboard extra)")
    p.add_argument("--out", type=Path, default=None,
                   help=f"run folder (default runs/{experiment}-<timestamp>)")
    p.add_argument("--resume", type=Path, default=None, metavar="DIR",
                   help="continue the run in DIR (killed or interrupted): finished parts are "
                        "kept, the others continue from their last epoch")
    p.add_argument("--verbose", type=verbosity, default="auto",
                   help="auto (a progress bar on a terminal, one line per epoch otherwise), 0, 1, 2")
    add_backend_argument(p)


def new_or_resumed(args, given: dict, experiment: str, make_config):
    """``(config, out, run_dir)`` for a new run (``run_dir`` None) or ``args.resume``, whose
    run must agree with the ``given`` options (:func:`given_options`), backend and data, else
    InputError; ``make_config``: ``dict -> validated configuration``."""
    import time

    from project.backend import select_backend
    from project.experiments.rundir import RunDirectory

    backend = select_backend(["--backend", args.backend])  # before keras is imported
    if args.resume is None:
        out = args.out or Path("runs") / f"{experiment}-{time.strftime('%Y%m%d-%H%M%S')}"
        return make_config(given), out, None
    run_dir = RunDirectory.read(args.resume, experiment)
    saved = {k: tuple(v) if isinstance(v, list) else v for k, v in run_dir.record["config"].items()}
    config = make_config({**saved, **given})
    run_dir.check_resumable(given, backend, defaults=make_config({}).to_dict())
    return config, run_dir.path, run_dir


def given_options(args: argparse.Namespace, dests) -> dict:
    """The options of ``dests`` the user gave (not None): what a resumed run must agree with."""
    return {d: getattr(args, d) for d in dests if getattr(args, d, None) is not None}


def seeds_of(args) -> tuple[int, ...] | None:
    """The seeds from ``--seed`` / ``--seeds`` (None: not given)."""
    if args.seed is not None and args.seeds is not None:
        raise InputError("give --seed or --seeds, not both")
    if args.seeds is not None:
        return parse_seeds(args.seeds)
    return None if args.seed is None else (args.seed,)
