"""Suite ``adasyn``: our NumPy ADASYN vs imbalanced-learn's vs the course report's Python loop.

Data: synthetic Gaussian stand-ins for the credit-card set (not the real data), 29 features,
float64. Majority rows are N(0, I); the 492 positives are N(mu, 0.7^2 I) with mu = 1.2 on the first
10 features, so they form a cluster that overlaps the majority at its edge (r_i spans 0 to 1). Two
sizes: 284,807 rows (the real data's size) and 10x that, 2,848,070 rows, with the positives held
at 492 so that the growth measures scaling in n (the k-NN work and the output are both linear in n
then; at a fixed fraud rate the k-NN work would grow 100x).

Contenders: ours (the paper's variant, the default), ours with ``variant="report"``,
imbalanced-learn's ADASYN, and the report's loop (:func:`report_adasyn`, written here from
REPORT.md). Each runs in its own fresh subprocess per size: one warm-up call, then ``repeats``
timed calls (at least :data:`MIN_REPEATS`, whatever ``--repeats`` says); we quote the median wall
time. The report's loop runs once, untimed warm-up skipped, at the smaller size only (it takes tens
of seconds). Memory is the peak resident set size (ru_maxrss) of
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
from benchmarks.harness import Target

TARGETS = (
    Target("ours vs imbalanced-learn, time at 284,807 x 29 (492 positives)",
           "ours_vs_imblearn_time", "<=", 0.4, aim=0.3),
)

FEATURES = 29
POSITIVES = 492
SIZES = (284_807, 2_848_070)
QUICK_SIZES = (20_000, 200_000)
QUICK_POSITIVES = 100
K = 5
CONTENDERS = ("ours", "ours-report", "imblearn", "report")
NAMES = {"ours": "ours (NumPy)", "ours-report": "ours, variant=report", "imblearn": "imbalanced-learn",
         "report": "report's loop (peer)"}
MIN_REPEATS = 5  # medians of at least 5 warm calls, whatever --repeats says
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


def report_adasyn(X, y, n_neighbors=K, beta=1.0, seed=50):
    """The course report's ADASYN, as REPORT.md describes it: Python loops (the slow peer).

    NumPy's global seed 50; G = int((n_majority - n_minority) * beta). For each minority point m,
    in data order: squared distances to every row, positions 1..k of their argsort (NumPy's
    default sort, as the report; position 0 taken as m itself) are its neighbours, the minority
    ones its partners, and its weight is (k - partners) % k. Counts int(G * w / sum(w)); one
    Python iteration per synthetic point: a partner uniformly, lambda in [0, 1), m + (p - m) * lam.

    Returns (X_resampled, y_resampled, per-point counts).
    """
    np.random.seed(seed)
    n_minority, n_majority = int(np.sum(y == 1)), int(np.sum(y == 0))
    G = int((n_majority - n_minority) * beta)
    points, partners, weights = [], [], []
    for m in range(len(X)):
        if y[m] != 1:
            continue
        distances = np.sum((X - X[m]) ** 2, axis=1)
        nearest = np.argsort(distances)[1:n_neighbors + 1]
        mates = [j for j in nearest if y[j] == 1]
        points.append(m)
        partners.append(mates)
        weights.append((n_neighbors - len(mates)) % n_neighbors)
    counts = [int(G * w / sum(weights)) for w in weights]
    synthetic = []
    for m, mates, count in zip(points, partners, counts, strict=True):
        for _ in range(count):
            partner = mates[np.random.randint(len(mates))]
            lam = np.random.uniform()
            synthetic.append(X[m] + (X[partner] - X[m]) * lam)
    X_new = np.array(synthetic).reshape(-1, X.shape[1])
    return np.vstack([X, X_new]), np.concatenate([y, np.ones(len(X_new), y.dtype)]), counts


def _resampler(contender: str):
    """A function (X, y) -> (X_res, y_res, per-point counts or None) for the contender."""
    if contender in ("ours", "ours-report"):
        from project.sampling import ADASYN

        variant = "report" if contender == "ours-report" else "he2008"
        sampler = ADASYN(n_neighbors=K, random_state=0, variant=variant)

        def resample(X, y):
            X_res, y_res = sampler.fit_resample(X, y)
            return X_res, y_res, sampler.n_synthetic_per_sample_[1].tolist()

        return resample
    if contender == "imblearn":
        from imblearn.over_sampling import ADASYN

        sampler = ADASYN(n_neighbors=K, random_state=0)
        return lambda X, y: (*sampler.fit_resample(X, y), None)
    return report_adasyn


def worker(contender: str, rows: int, positives: int, repeats: int) -> dict:
    """Runs in the subprocess: time ``repeats`` calls after a warm-up; peak RSS above baseline."""
    resample = _resampler(contender)
    X, y = make_data(rows, positives)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    out = {}

    def call():
        X_res, _, counts = resample(X, y)
        out["n_synthetic"] = len(X_res) - len(X)
        out["counts"] = counts

    times = time_calls(call, repeats=repeats, warmup=1 if contender != "report" else 0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"times": times, "peak_mb": (peak - baseline) / 1024, "n_synthetic": out["n_synthetic"],
            "counts": out["counts"]}


def _spawn(contender: str, rows: int, positives: int, repeats: int) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.adasyn", contender, str(rows), str(positives),
           str(repeats)]
    start = time.perf_counter()
    out = subprocess.run(cmd, cwd=ROOT, env=dict(os.environ), capture_output=True, text=True,
                         check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{contender} worker failed:\n{out.stderr[-2000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"  {contender:11s} {rows:>10,} rows: median {median(result['times']):.3f} s "
          f"({time.perf_counter() - start:.0f} s with start-up)", flush=True)
    return result


def run(args) -> dict:
    sizes = QUICK_SIZES if args.quick else SIZES
    positives = QUICK_POSITIVES if args.quick else POSITIVES
    repeats = max(MIN_REPEATS, int(getattr(args, "repeats", MIN_REPEATS) or MIN_REPEATS))
    results, counts = [], {}
    for size_index, rows in enumerate(sizes):
        for contender in CONTENDERS:
            if contender == "report" and size_index > 0:
                continue  # the loop is quadratic-ish in practice: only the smaller size
            r = _spawn(contender, rows, positives, 1 if contender == "report" else repeats)
            counts[contender, rows] = r["counts"]
            results.append({
                "contender": NAMES[contender],
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
        "ours_report_vs_imblearn_time": pick("ours-report", small)["vs_imblearn"],
        "ours_vs_report_time": pick("ours", small)["seconds"] / pick("report", small)["seconds"],
        "ours_vs_imblearn_peak_mb": pick("ours", small)["peak_mb"]
        / max(pick("imblearn", small)["peak_mb"], 1e-9),
        "ours_vs_imblearn_peak_mb_large": pick("ours", large)["peak_mb"]
        / max(pick("imblearn", large)["peak_mb"], 1e-9),
        "ours_growth_large_vs_small": pick("ours", large)["seconds"] / pick("ours", small)["seconds"],
        "imblearn_growth_large_vs_small": pick("imblearn", large)["seconds"]
        / pick("imblearn", small)["seconds"],
        # variant="report" against the report's loop, same data: same count for every point?
        "report_counts_match": counts["ours-report", small] == counts["report", small],
    }
    synthetic = ", ".join(f"{NAMES[c]} {pick(c, small)['n_synthetic']:,}" for c in CONTENDERS)
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
        + f"\nsynthetic rows at {small:,}: {synthetic}"
        + f"\nvariant='report' per-point counts equal the report's loop's: "
          f"{ratios['report_counts_match']}"
    )
    return {"suite": "adasyn", "rows": results, "ratios": ratios, "text": text}


if __name__ == "__main__":
    name, n_rows, n_pos, n_repeats = sys.argv[1], *map(int, sys.argv[2:5])
    print(json.dumps(worker(name, n_rows, n_pos, n_repeats)))
