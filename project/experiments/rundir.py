"""A run's folder: what it was asked to do, where each part goes, and how to pick it up again.

``--out DIR`` holds one run of one experiment::

    DIR/config.json          the resolved configuration, the environment, a run id (written first)
    DIR/<part>/              one part: a protocol or a mode (``seed-<s>/<part>/`` with --seeds)
        checkpoint.safetensors   while training: rewritten every epoch
        history.csv, model.keras, model.json, ...
        result.json              written last: the part is finished
    DIR/metrics.json, DIR/report.md, plots      written when every part is finished

``--resume DIR`` reads ``config.json`` back: options given again must agree with it, the data
must be the same (SHA-256); finished parts are kept, the rest continue from their checkpoints.

>>> run = RunDirectory.create("runs/x", "fraud", config.to_dict(), "torch")  # doctest: +SKIP
>>> run.part("none", seed=0)                                                # doctest: +SKIP
PosixPath('runs/x/none')
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from project.errors import InputError, SettingError, literal
from project.io import RunLock, atomic_path, remove_stale_temporaries, write_json

CONFIG_FILE = "config.json"
RESULT_FILE = "result.json"
CHECKPOINT_FILE = "checkpoint.safetensors"


def file_sha256(path, chunk: int = 2**20) -> str:
    """SHA-256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def array_digest(*arrays) -> str:
    """A short hash of NumPy arrays' shapes, dtypes and bytes: the identity of training data."""
    import numpy as np

    digest = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        digest.update(f"{a.shape}{a.dtype}".encode())
        digest.update(a.tobytes())
    return digest.hexdigest()[:32]


def git_commit() -> str | None:
    """The commit of the source checkout this package runs from, if it is one (else None)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "project",
                                "scripts"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out + ("+local-changes" if dirty.strip() else "")


def environment(backend: str) -> dict:
    """Versions and machine facts recorded with every run."""
    from project.machine import cpu_model, library_versions

    return {"backend": backend,
            "versions": {"python": platform.python_version(), **library_versions()},
            "command": [Path(sys.argv[0]).name, *sys.argv[1:]], "git_commit": git_commit(),
            "cpu": cpu_model(), "platform": platform.platform()}


class RunDirectory:
    """The ``--out`` folder of one run (:meth:`create`, or :meth:`read` to resume): ``path``, and
    ``record``, the contents of ``config.json`` (``experiment``, ``run_id``, ``config``,
    ``data_sha256``, ``environment``, ``created``)."""

    def __init__(self, path, record: dict, source=None, private=None):
        self.path, self.record = Path(path), record
        self.source = None if source is None else Path(source)
        self._private = private  # the TemporaryDirectory behind a private path, if any

    def for_process(self, chief: bool) -> RunDirectory:
        """This run as one process sees it: itself in process 0 (``chief``); in the others a
        private temporary folder to write, while the run folder (:attr:`source`) is only read."""
        if chief or self.source is not None:
            return self
        private = tempfile.TemporaryDirectory(prefix=f"project-process-{os.getpid()}-")
        return RunDirectory(private.name, self.record, source=self.path, private=private)

    @property
    def run_id(self) -> str:
        return self.record["run_id"]

    @classmethod
    def check_writable(cls, path, chief: bool = True) -> Path:
        """Refuse an ``--out`` that cannot hold a new run, before any work; nothing is created
        (a run refused later leaves no empty folder). Only process 0 (``chief``) checks."""
        path = Path(path)
        if not chief:
            return path
        if path.exists() and not path.is_dir():
            raise SettingError.about("out", f"{path}: exists and is not a folder")
        if (path / CONFIG_FILE).exists():
            raise SettingError("{out} " + literal(path) + ": already holds a run; continue it "
                               "with {resume} " + literal(path) + ", or choose another {out}")
        existing = path
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            raise SettingError.about("out", f"{path}: cannot create it ({existing} is not a "
                                            "folder)")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise SettingError.about("out", f"{path}: not writable" + (
                "" if existing == path else f" ({existing} is read-only)"))
        return path

    @classmethod
    def create(cls, path, experiment: str, config: dict, backend: str,
               data_files=(), devices: dict | None = None, chief: bool = True) -> RunDirectory:
        """Start a new run in ``path`` (which must not hold one): write ``config.json``;
        ``devices`` (``{"devices": 2, "processes": 1}``) joins the recorded environment."""
        path = cls.check_writable(path, chief)
        try:
            if chief:
                path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise SettingError.about("out", f"{path}: cannot create it ({err.strerror})") from None
        record = {"experiment": experiment, "run_id": uuid.uuid4().hex[:12], "config": config,
                  "data_sha256": {str(f): file_sha256(f) for f in data_files if f is not None},
                  "environment": {**environment(backend), **(devices or {})},
                  "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        run = cls(path, record).for_process(chief)
        write_json(run.path / CONFIG_FILE, record)
        return run

    @classmethod
    def read(cls, path, experiment: str) -> RunDirectory:
        """Open an existing run of ``experiment`` (for --resume); nothing is changed."""
        path = Path(path)
        config_file = path / CONFIG_FILE
        if not path.is_dir():
            raise SettingError.about("resume", f"{path}: no such folder")
        if not config_file.is_file():
            raise SettingError.about("resume", f"{path}: not a run folder (no {CONFIG_FILE})")
        try:
            record = json.loads(config_file.read_text(encoding="utf-8"))
            kind = record["experiment"]
            record["config"], record["run_id"]  # noqa: B018 - both must be there
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise SettingError.about("resume", f"{path}: {CONFIG_FILE} is damaged ({err})"
                                     ) from None
        if kind != experiment:
            raise SettingError.about("resume", f"{path}: that is a {kind} run, not a {experiment} "
                                               "run")
        return cls(path, record)

    def check_resumable(self, given: dict, backend: str, defaults: dict | None = None) -> None:
        """Refuse to resume with options that differ from the run's, another backend, or changed
        data files. A setting an older run's ``config.json`` lacks counts as in ``defaults``."""
        saved = {**(defaults or {}), **self.record["config"]}
        for key, value in given.items():
            if key in saved and _normal(saved[key]) != _normal(value):
                raise SettingError(
                    "{resume} " + literal(self.path) + ": {" + key + "} " + literal(
                        f"{_show(value)} differs from the run's {_show(saved[key])}; drop it "
                        "to continue the run as it was"))
        was = self.record["environment"]["backend"]
        if was != backend:
            raise SettingError(
                "{resume} " + literal(f"{self.path}: the run used the {was} backend, not "
                                      f"{backend}; resume with ") + "{backend} " + literal(
                    f"{was} (checkpoints are exact only on the same backend)"))
        for file, digest in self.record.get("data_sha256", {}).items():
            if not Path(file).is_file():
                problem = f"the run's data file {file} is missing"
            elif file_sha256(file) != digest:
                problem = f"{file} changed since the run started"
            else:
                continue
            raise SettingError.about("resume", f"{self.path}: {problem}")

    @contextlib.contextmanager
    def writing(self):
        """Hold the run's lock while writing, after removing temporaries killed writers left.

        >>> with run.writing():     # doctest: +SKIP
        ...     train_every_part()
        """
        with RunLock(self.path):
            remove_stale_temporaries(self.path, recursive=True)
            yield self

    def part(self, name: str, seed: int) -> Path:
        """The folder of one part: ``<name>/``, or ``seed-<s>/<name>/`` with several seeds."""
        seeds = self.record["config"]["seeds"]
        relative = Path(name) if len(seeds) == 1 else Path(f"seed-{seed}") / name
        folder = self.path / relative
        if self.source is not None:  # a private folder: see process 0's progress in the run's
            folder.mkdir(parents=True, exist_ok=True)
            for file in (CHECKPOINT_FILE, RESULT_FILE, "scores.npz"):
                _link(self.source / relative / file, folder / file)
        return folder


def _link(source: Path, target: Path) -> None:
    """``target`` shows ``source`` (a symbolic link, else a copy); nothing if there is none."""
    target.unlink(missing_ok=True)
    if not source.is_file():
        return
    try:
        target.symlink_to(source.resolve())
    except OSError:  # no symbolic links here (Windows without the privilege)
        import shutil

        shutil.copyfile(source, target)


@dataclasses.dataclass
class RunContext:
    """What every part of a run shares: the configuration, the run folder, its
    :class:`~project.training.distribution.Scaling` plan, the epoch counter behind "time left",
    the progress display and where its lines go."""

    config: object
    run: RunDirectory
    plan: object
    progress: object
    verbose: object = "auto"
    log: Callable[[str], None] = print


def start(experiment: str, config, out, plan, names, *, resume: RunDirectory | None = None,
          data_files=(), verbose="auto", log=print) -> RunContext:
    """The context of a new run in ``out`` (or of ``resume``), whose parts are ``names`` for
    every seed; the plan is logged when it is not one float32 device."""
    from project.training.distribution import Scaling
    from project.training.loop import Progress

    run = resume.for_process(plan.chief) if resume else RunDirectory.create(
        out, experiment, config.to_dict(), plan.backend, data_files=data_files,
        devices={"devices": plan.devices, "processes": plan.processes}, chief=plan.chief)
    if plan != Scaling(plan.backend):
        log(plan.describe())
    progress = Progress(len(config.seeds) * len(names) * config.epochs)
    return RunContext(config, run, plan, progress, verbose, log)


def run_parts(context: RunContext, names, train_part, part_class, label=str) -> list:
    """The results of every (seed, name) part, seeds outermost, holding the run's lock, in the
    plan's scope: a finished part (``result.json``) is read back as a ``part_class``
    (:func:`read_part`), any other trained with ``train_part(name, seed, folder)`` (from its
    checkpoint, if any)."""
    parts = []
    with context.run.writing(), context.plan.scope():
        for seed in context.config.seeds:
            for name in names:
                folder = context.run.part(name, seed)
                if (folder / RESULT_FILE).is_file():
                    parts.append(read_part(folder, part_class))
                    context.progress.skip(context.config.epochs)
                    context.log(f"== seed {seed} · {label(name)}: finished earlier, kept ==")
                else:
                    parts.append(train_part(name, seed, folder))
    return parts


@dataclasses.dataclass
class RunResult:
    """A whole run: ``data`` (path, SHA-256, sizes, whether it is a bundled synthetic sample),
    one part per (seed, name) in ``runs``, ``summary[name][split][metric]`` over seeds, the
    paired ``comparisons``; ``chief``: whether this process writes the run folder."""

    config: object
    run_id: str
    environment: dict
    data: dict
    runs: list
    summary: dict
    comparisons: list
    chief: bool = True

    #: The experiment's name, and the part attribute that names a part (protocol, mode).
    experiment: ClassVar[str] = ""
    part_key: ClassVar[str] = ""

    @classmethod
    def of(cls, context: RunContext, **fields):
        return cls(config=context.config, run_id=context.run.run_id, chief=context.plan.chief,
                   environment=context.run.record["environment"], **fields)

    @property
    def synthetic(self) -> bool:
        return self.data["synthetic"]

    def runs_of(self, name: str) -> list:
        return [r for r in self.runs if getattr(r, self.part_key) == name]

    def to_dict(self) -> dict:
        """``metrics.json``."""
        return {"experiment": self.experiment, "run_id": self.run_id,
                "config": {**self.config.to_dict(), **self.environment,
                           "data_sha256": self.data.get("sha256")},
                "data": self.data, "runs": [r.to_dict() for r in self.runs],
                "summary": self.summary, "comparisons": self.comparisons}


def save_part(folder, part) -> None:
    """Write a finished part: ``scores.npz`` (labels and scores of ``part.evaluations()``), then
    ``result.json`` (``part.to_dict()``), which marks it finished; drop its checkpoint."""
    import numpy as np

    arrays = {}
    for name, ev in part.evaluations().items():
        arrays[f"{name}/y"], arrays[f"{name}/scores"] = ev.y_true, ev.scores
    with atomic_path(Path(folder) / "scores.npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    write_json(Path(folder) / RESULT_FILE, part.to_dict())
    (Path(folder) / CHECKPOINT_FILE).unlink(missing_ok=True)


def read_part(folder, part_class):
    """A finished part read back, nothing recomputed: a ``part_class`` of its ``result.json``'s
    fields, the training record and every evaluation (``val``, ``test``, ``clean_test``,
    ``baselines``) rebuilt, with labels and scores from ``scores.npz``."""
    import numpy as np

    from project.training.loop import TrainingResult
    from project.training.metrics import Evaluation

    folder = Path(folder)
    try:
        record = json.loads((folder / RESULT_FILE).read_text(encoding="utf-8"))
        with np.load(folder / "scores.npz", allow_pickle=False) as arrays:
            scores = {k: arrays[k] for k in arrays.files}
    except (OSError, ValueError, KeyError) as err:
        raise InputError(f"{folder}: damaged finished part ({err}); delete the folder to redo "
                         "it") from None

    def evaluation(name: str, fields: dict | None):
        if fields is None:
            return None
        try:
            return Evaluation(**fields, y_true=scores[f"{name}/y"], scores=scores[f"{name}/scores"])
        except (KeyError, TypeError) as err:
            raise InputError(f"{folder}: damaged finished part ({err})") from None

    names = {f.name for f in dataclasses.fields(part_class)}
    kept = {k: v for k, v in record.items() if k in names}
    kept["training"] = TrainingResult(history=record["history"], **record["training"])
    for name in ("val", "test", "clean_test"):
        if name in kept:
            kept[name] = evaluation(name, kept[name])
    if "baselines" in kept:
        kept["baselines"] = {n: {s: evaluation(f"baseline:{n}:{s}", r) for s, r in v.items()}
                             for n, v in kept["baselines"].items()}
    return part_class(**kept)


def _normal(value):
    """Compare configuration values after a JSON round trip (tuples become lists)."""
    return json.loads(json.dumps(value))


def _show(value) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)
