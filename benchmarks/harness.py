"""The protocol every benchmark suite shares: contenders in their own processes, taking turns.

A suite lists its contenders as data (:class:`Contender`). :func:`measure` starts each in its own
subprocess (``python -m benchmarks.harness``: it imports only what it needs, prepares, and makes
``warmup`` untimed calls), then times them in turns: in each of ``repeats`` rounds every contender
makes ``calls`` timed calls while the others wait, so a change in the shared machine's load hits
every contender alike. Contenders may come in groups run one after the other (to bound memory);
``shared`` contenders (the peers) stay alive and take their turn in every group's rounds. Every
call's wall-clock and CPU seconds come back, and each process's peak RSS; the suites quote medians.

A contender's prepare function takes JSON keyword parameters and returns a :class:`Prepared`:
``step`` (the timed call, returning when the work is done) and ``info`` (a JSON-able dict, reported
with ``peak_rss_mb`` after every turn, where a step may record facts about its output).

Example:

>>> from benchmarks.harness import Target, check_targets
>>> rows = check_targets([Target("fast", "speedup", ">=", 2.0, aim=3.0)], {"speedup": 2.4})
>>> rows[0]["status"]
'met (aim 3 missed)'
"""

import dataclasses
import importlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parents[1]
PROTOCOL = "@@ "  # prefix of the worker's protocol lines (libraries may print to stdout too)


class Prepared(NamedTuple):
    """What a contender's prepare function returns: the timed call and facts to report."""

    step: Callable[[], Any]
    info: dict


@dataclasses.dataclass(frozen=True)
class Contender:
    """One contender: ``function`` (``"module:name"``) is called as ``name(**params)`` in a fresh
    process whose ``KERAS_BACKEND`` is ``backend`` (None: a process without Keras)."""

    key: str
    label: str
    function: str
    params: dict = dataclasses.field(default_factory=dict)
    backend: str | None = None


@dataclasses.dataclass(frozen=True)
class Target:
    """A speed target: ``ratios[key] op threshold`` must hold; ``aim`` is the stretch goal."""

    name: str
    key: str
    op: str  # ">=" or "<="
    threshold: float
    aim: float | None = None


def _holds(value: float, op: str, bound: float) -> bool:
    if op not in (">=", "<="):
        raise ValueError(f"unknown comparison {op!r}")
    return value >= bound if op == ">=" else value <= bound


def check_targets(targets: Sequence[Target], ratios: dict) -> list[dict]:
    """Evaluate ``targets`` against ``ratios``: one dict each, with its status or "not measured"."""
    rows = []
    for t in targets:
        value = ratios.get(t.key)
        row = {"name": t.name, "key": t.key, "op": t.op, "threshold": t.threshold,
               "aim": t.aim, "value": value, "met": None, "aim_met": None}
        if value is None:
            row["status"] = "not measured"
        else:
            row["met"] = _holds(value, t.op, t.threshold)
            row["aim_met"] = None if t.aim is None else _holds(value, t.op, t.aim)
            row["status"] = "met" if row["met"] else "MISSED"
            if t.aim is not None:
                row["status"] += f" (aim {t.aim:g} {'met' if row['aim_met'] else 'missed'})"
        rows.append(row)
    return rows


def format_targets(rows: list[dict]) -> str:
    """One line per evaluated target: name, value, comparison, status."""
    return "\n".join(
        f"target: {r['name']}: {fmt(r['value'], '.2f')} "
        f"(need {r['op']} {r['threshold']:g}): {r['status']}" for r in rows)


def fmt(value, spec: str = "") -> str:
    """``value`` formatted by ``spec``, or "-" for None."""
    return "-" if value is None else format(value, spec)


def format_table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """Plain-text table of (key, header, format spec) ``columns``; missing or None prints "-".

    >>> print(format_table([{"a": 1.5, "b": None}], [("a", "A", ".2f"), ("b", "B", "")]))
    A     B
    ----  -
    1.50  -
    """
    headers = [h for _, h, _ in columns]
    body = [[fmt(r.get(k), f) for k, _, f in columns] for r in rows]
    widths = [max(len(x) for x in col) for col in zip(headers, *body)]
    lines = [headers, ["-" * w for w in widths], *body]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)) for line in lines)


def thread_env(threads: int) -> dict:
    """Environment that holds a process to ``threads`` compute threads (0: library defaults)."""
    if not threads:
        return {}
    n = str(threads)  # torch and NumPy's BLAS read OMP_NUM_THREADS, TensorFlow its own two
    env = {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n,
           "TF_NUM_INTRAOP_THREADS": n, "TF_NUM_INTEROP_THREADS": n}
    xla = f"--xla_cpu_multi_thread_eigen={'false' if threads == 1 else 'true'} " \
          f"intra_op_parallelism_threads={threads}"
    env["XLA_FLAGS"] = " ".join(filter(None, (os.environ.get("XLA_FLAGS"), xla)))
    return env


class Worker:
    """A contender's process: prepared and warmed up on start, then timed on request."""

    def __init__(self, contender: Contender, warmup: int, threads: int = 0):
        self.contender = contender
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **thread_env(threads))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        if contender.backend:
            env["KERAS_BACKEND"] = contender.backend
        spec = {"function": contender.function, "params": contender.params, "warmup": warmup}
        self._stderr = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.harness", json.dumps(spec)], cwd=ROOT, env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True)
        self.info = self._reply()["info"]

    def _reply(self) -> dict:
        for line in self.process.stdout:
            if line.startswith(PROTOCOL):
                return json.loads(line[len(PROTOCOL):])
        code = self.process.wait()
        self._stderr.seek(0)
        tail = self._stderr.read()[-3000:]
        raise RuntimeError(f"contender {self.contender.key!r} stopped (exit code {code}):\n{tail}")

    def time(self, calls: int = 1) -> tuple[list[float], list[float]]:
        """Wall-clock and CPU seconds of ``calls`` calls of the step; ``info`` refreshed."""
        self.process.stdin.write(f"go {calls}\n")
        self.process.stdin.flush()
        reply = self._reply()
        self.info = reply["info"]
        return reply["wall"], reply["cpu"]

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.process.stdin.close()
                self.process.wait(timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
        self._stderr.close()


def measure(groups: Sequence[Sequence[Contender]], *, repeats: int, warmup: int = 1,
            calls: int = 1, threads: int = 0, shared: Sequence[Contender] = (),
            log: Callable[[str], None] = lambda s: print(s, file=sys.stderr, flush=True),
            ) -> dict[str, dict]:
    """Run the contenders in turns (see the module docstring): ``groups`` one after the other,
    ``repeats`` rounds each, ``calls`` timed calls per turn, ``threads`` compute threads per
    contender (0: each library's default); ``shared`` contenders take turns in every group.

    Returns ``{key: {"key", "label", "backend", "info", "times", "cpu_times", "times_by_group",
    "cpu_by_group"}}``: ``info`` as last reported (``peak_rss_mb`` over the whole process);
    ``times_by_group[i]`` / ``cpu_by_group[i]``: the times taken in group ``i``'s rounds."""
    results: dict[str, dict] = {}
    alive: dict[str, Worker] = {}

    def start(contender: Contender) -> Worker:
        if contender.key in results:
            raise ValueError(f"two contenders with the key {contender.key!r}")
        begin = time.perf_counter()
        worker = Worker(contender, warmup, threads)
        log(f"  ready: {contender.label} ({time.perf_counter() - begin:.0f} s with warm-up)")
        results[contender.key] = {
            "key": contender.key, "label": contender.label, "backend": contender.backend,
            "info": worker.info, "times": [], "cpu_times": [], "times_by_group": {},
            "cpu_by_group": {}}
        return worker

    try:
        for contender in shared:
            alive[contender.key] = start(contender)
        for index, group in enumerate(groups):
            own = {}
            try:
                for contender in group:
                    own[contender.key] = start(contender)
                turns = {**own, **alive}
                for _ in range(repeats):
                    for key, worker in turns.items():
                        wall, cpu = worker.time(calls)
                        result = results[key]
                        result["info"] = worker.info
                        result["times"] += wall
                        result["cpu_times"] += cpu
                        result["times_by_group"].setdefault(index, []).extend(wall)
                        result["cpu_by_group"].setdefault(index, []).extend(cpu)
            finally:
                for worker in own.values():
                    worker.close()
    finally:
        for worker in alive.values():
            worker.close()
    return results


def median(values) -> float:
    """The median of ``values`` as a float."""
    return float(statistics.median(values))


def median_time(result: dict, group: int | None = None) -> float:
    """Median wall-clock seconds of a contender's calls (in one group's rounds, if given)."""
    return median(result["times"] if group is None else result["times_by_group"][group])


def median_cpu(result: dict, group: int | None = None) -> float:
    """Median CPU seconds (all threads) of a contender's calls (in one group's rounds, if given)."""
    return median(result["cpu_times"] if group is None else result["cpu_by_group"][group])


def peak_rss_mb() -> float | None:
    """This process's peak resident set size so far, MB (None where unknown: Windows)."""
    try:
        import resource
    except ImportError:  # not on Windows
        return None
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _serve(spec: dict) -> None:
    """The worker's side: prepare, warm up, report; then time ``go N`` requests until EOF."""
    module_name, _, name = spec["function"].partition(":")
    prepared = getattr(importlib.import_module(module_name), name)(**spec["params"])
    for _ in range(int(spec["warmup"])):
        prepared.step()
    print(PROTOCOL + json.dumps({"info": dict(prepared.info, peak_rss_mb=peak_rss_mb())}),
          flush=True)
    for line in sys.stdin:
        wall, cpu = [], []
        for _ in range(int(line.split()[1])):  # "go N": N timed calls
            w, c = time.perf_counter(), time.process_time()
            prepared.step()
            wall.append(time.perf_counter() - w)
            cpu.append(time.process_time() - c)
        info = dict(prepared.info, peak_rss_mb=peak_rss_mb())
        print(PROTOCOL + json.dumps({"wall": wall, "cpu": cpu, "info": info}), flush=True)


if __name__ == "__main__":
    _serve(json.loads(sys.argv[1]))
