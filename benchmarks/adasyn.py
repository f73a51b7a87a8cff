"""Suite ``adasyn``: our NumPy ADASYN vs imbalanced-learn's vs the course report's Python loop.

Data: synthetic Gaussian stand-ins for the credit-card set (not the real data), 29 features,
float64. Majority rows are N(0, I); the 492 positives are N(mu, 0.7^2 I) with mu = 1.2 on the first
10 features, so they form a cluster that overlaps the majority at its edge (r_i spans 0 to 1). Two
sizes: 284,807 rows (the real data's size) and 10x that, 2,848,070 rows, with the positives held
at 492 so that the growth measures scaling in n (the k-NN work and the output are both linear in n
then; at a fixed fraud rate the k-NN work would grow 100x).

Each contender runs in its own fresh subprocess per size: one warm-up call, then ``repeats`` timed
calls; we quote the median wall time. The report's loop runs once, untimed warm-up skipped, at the
smaller size only (it takes tens of seconds). Memory is the peak resident set size (ru_maxrss) of
that subprocess above its peak before the first call (data generated, libraries imported): it
counts everything the call touches, NumPy or not (imbalanced-learn's scikit-learn k-NN allocates
outside NumPy), and includes the returned arrays (the input X and the output, about 2x X, are the
same for everyone).

All use k = 5, beta = 1 ("auto": the positives are raised to the majority count) and default
threads (BLAS, OpenMP); the machine is shared and noisy, so the ratios, measured in one run, are
the result.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks._timing import format_table, median, time_calls

FEATURES = 29
POSITIVES = 492
SIZES = (284_807, 2_848_070)
QUICK_SIZES = (20_000, 200_000)
QUICK_POSITIVES = 100
K = 5
CONTENDERS = ("ours", "imblearn", "report")
ROOT = Path(__file__).resolve().parents[1]


def make_data(rows: int, positives: int, seed: int = 0):
    """Synthetic Gaussian data: see the module docstring. Built in place (no large temporaries)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, FEATURES))
    pos = np.sort(rng.choice(rows, positives, replace=False))
    X[pos] *= 0.7
    X[pos, :10] += 1.2
    y = np.zeros(rows, dtype=np.int64)
    y[pos] = 1
    return X, y


def report_adasyn(X, y, n_neighbors=K, beta=1.0, seed=0):
    """The course report's ADASYN, as it was written: Python loops (the slow peer).

    For each minority point: Euclidean distances to every row, the k nearest (itself excluded),
    r_i = share of majority among them. Normalise; g_i = round(r_hat_i * G). Then, one Python
    iteration per synthetic point, interpolate towards a random minority point of that
    neighbourhood; a point whose neighbourhood holds no minority point gets nothing.
    """
    rng = np.random.default_rng(seed)
    labels, counts = np.unique(y, return_counts=True)
    minority_label = labels[np.argmin(counts)]
    minority = np.flatnonzero(y == minority_label)
    G = (counts.max() - counts.min()) * beta

    ratios, neighbourhoods = [], []
    for i in minority:
        distances = np.sqrt(np.sum((X - X[i]) ** 2, axis=1))
        nearest = np.argsort(distances)[1:n_neighbors + 1]
        ratios.append(np.sum(y[nearest] != minority_label) / n_neighbors)
        neighbourhoods.append(nearest)
    ratios = np.array(ratios) / np.sum(ratios)

    synthetic = []
    for i, ratio, nearest in zip(minority, ratios, neighbourhoods, strict=True):
        mates = [j for j in nearest if y[j] == minority_label]
        if not mates:
            continue
        for _ in range(int(round(ratio * G))):
            j = mates[rng.integers(len(mates))]
            synthetic.append(X[i] + rng.random() * (X[j] - X[i]))
    X_new = np.array(synthetic).reshape(-1, X.shape[1])
    return np.vstack([X, X_new]), np.concatenate([y, np.full(len(X_new), minority_label)])


def _resampler(contender: str):
    if contender == "ours":
        from project.sampling import ADASYN

        return ADASYN(n_neighbors=K, random_state=0).fit_resample
    if contender == "imblearn":
        from imblearn.over_sampling import ADASYN

        return ADASYN(n_neighbors=K, random_state=0).fit_resample
    return report_adasyn


def worker(contender: str, rows: int, positives: int, repeats: int) -> dict:
    """Runs in the subprocess: time ``repeats`` calls after a warm-up; peak RSS above baseline."""
    resample = _resampler(contender)
    X, y = make_data(rows, positives)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    out = {}

    def call():
        X_res, _ = resample(X, y)
        out["n_synthetic"] = len(X_res) - len(X)

    times = time_calls(call, repeats=repeats, warmup=1 if contender != "report" else 0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"times": times, "peak_mb": (peak - baseline) / 1024, "n_synthetic": out["n_synthetic"]}


def _spawn(contender: str, rows: int, positives: int, repeats: int) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.adasyn", contender, str(rows), str(positives),
           str(repeats)]
    start = time.perf_counter()
    out = subprocess.run(cmd, cwd=ROOT, env=dict(os.environ), capture_output=True, text=True,
                         check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{contender} worker failed:\n{out.stderr[-2000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"  {contender:9s} {rows:>10,} rows: median {median(result['times']):.3f} s "
          f"({time.perf_counter() - start:.0f} s with start-up)", flush=True)
    return result


def run(args) -> dict:
    sizes = QUICK_SIZES if args.quick else SIZES
    positives = QUICK_POSITIVES if args.quick else POSITIVES
    repeats = max(1, int(getattr(args, "repeats", 3)))
    results = []
    for size_index, rows in enumerate(sizes):
        for contender in CONTENDERS:
            if contender == "report" and size_index > 0:
                continue  # the loop is quadratic-ish in practice: only the smaller size
            r = _spawn(contender, rows, positives, 1 if contender == "report" else repeats)
            results.append({
                "contender": {"ours": "ours (NumPy)", "imblearn": "imbalanced-learn",
                              "report": "report's loop (peer)"}[contender],
                "impl": contender,
                "rows": rows,
                "positives": positives,
                "seconds": median(r["times"]),
                "times": r["times"],
                "peak_mb": r["peak_mb"],
                "n_synthetic": r["n_synthetic"],
            })

    def pick(impl, rows):
        return next(r for r in results if r["impl"] == impl and r["rows"] == rows)

    for r in results:
        r["vs_imblearn"] = r["seconds"] / pick("imblearn", r["rows"])["seconds"]
    small, large = sizes
    ratios = {
        "ours_vs_imblearn_time": pick("ours", small)["vs_imblearn"],
        "ours_vs_imblearn_time_large": pick("ours", large)["vs_imblearn"],
        "ours_vs_report_time": pick("ours", small)["seconds"] / pick("report", small)["seconds"],
        "ours_vs_imblearn_peak_mb": pick("ours", small)["peak_mb"]
        / max(pick("imblearn", small)["peak_mb"], 1e-9),
        "ours_vs_imblearn_peak_mb_large": pick("ours", large)["peak_mb"]
        / max(pick("imblearn", large)["peak_mb"], 1e-9),
        "ours_growth_large_vs_small": pick("ours", large)["seconds"] / pick("ours", small)["seconds"],
        "imblearn_growth_large_vs_small": pick("imblearn", large)["seconds"]
        / pick("imblearn", small)["seconds"],
    }
    text = (
        f"ADASYN fit_resample on synthetic Gaussian data, {FEATURES} features, {positives} "
        f"positives, k={K}; median of {repeats} warm calls (report's loop: one call); peak = "
        f"RSS increase (MB) in a fresh subprocess, output included\n"
        + format_table(results, [
            ("rows", "rows", ","), ("contender", "contender", ""), ("seconds", "median s", ".3f"),
            ("vs_imblearn", "vs imblearn", ".2f"), ("peak_mb", "peak MB", ".0f"),
            ("n_synthetic", "synthetic rows", ","),
        ])
        + f"\nours vs imbalanced-learn, {small:,} rows: {ratios['ours_vs_imblearn_time']:.2f}x "
          "the time (target <= 0.4)"
        + f"\nours vs imbalanced-learn, {large:,} rows: "
          f"{ratios['ours_vs_imblearn_time_large']:.2f}x the time"
        + f"\nours vs the report's loop, {small:,} rows: {ratios['ours_vs_report_time']:.4f}x "
          "the time"
        + f"\ntime growth {large:,} / {small:,} rows: ours {ratios['ours_growth_large_vs_small']:.1f}"
          f"x, imbalanced-learn {ratios['imblearn_growth_large_vs_small']:.1f}x (10 = linear)"
        + f"\npeak memory ours / imbalanced-learn: {ratios['ours_vs_imblearn_peak_mb']:.2f} "
          f"({small:,} rows), {ratios['ours_vs_imblearn_peak_mb_large']:.2f} ({large:,} rows)"
    )
    return {"suite": "adasyn", "rows": results, "ratios": ratios, "text": text}


if __name__ == "__main__":
    name, n_rows, n_pos, n_repeats = sys.argv[1], *map(int, sys.argv[2:5])
    print(json.dumps(worker(name, n_rows, n_pos, n_repeats)))
