"""Suite ``adasyn``: our NumPy ADASYN vs imbalanced-learn's vs the course report's Python loop.

Data: synthetic Gaussian stand-ins for the credit-card set, 29 float64 features: majority rows
N(0, I); the 492 positives N(mu, 0.7^2 I), mu = 1.2 on the first 10 features, a cluster that
overlaps the majority at its edge (r_i spans 0 to 1). At 284,807 rows (the real data's size) and
10x that, positives held at 492, so the growth measures scaling in n.

Contenders (:mod:`benchmarks.harness`): at 284,807 rows ours (both variants) and imbalanced-learn,
then the report's loop (:mod:`benchmarks.report_adasyn`) alone, one call without warm-up (it takes
tens of seconds); at 2,848,070 rows ours and imbalanced-learn. Times are medians of at least
:data:`MIN_REPEATS` calls (``--quick``: tiny sizes, a smoke test). "peak MB" is the process's peak
RSS over its calls minus its peak before the first: everything a call touches, NumPy or not, the
returned arrays included. k = 5, beta = 1; the ratios, measured in one run, are the result.
"""

import numpy as np

from benchmarks.harness import Contender, Prepared, Target, check_targets, peak_rss_mb
from benchmarks.report_adasyn import report_loop

TARGETS = (
    Target("ours vs imbalanced-learn, time at 284,807 x 29 (492 positives)",
           "ours_vs_imblearn_time", "<=", 0.4, aim=0.3),
)

FEATURES, POSITIVES, K = 29, 492, 5
SIZES, QUICK_SIZES, QUICK_POSITIVES = (284_807, 2_848_070), (5_000, 50_000), 60
IMPLS = ("ours", "ours-report", "imblearn", "report")
NAMES = {"ours": "ours (NumPy)", "ours-report": "ours, variant=report",
         "imblearn": "imbalanced-learn", "report": "report's loop (peer)"}
LARGE_IMPLS = ("ours", "imblearn")  # the report's loop and variant="report": the small size only
MIN_REPEATS = 5  # medians of at least 5 timed calls, whatever --repeats says (not with --quick)


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
    """The course report's ADASYN (the slow peer): ``(X_res, y_res, per-point counts)``."""
    counts, _, synthetic = report_loop(X, y, n_neighbors, beta, np.random.RandomState(seed))
    X_new = np.array([row for *_, row in synthetic]).reshape(-1, X.shape[1])
    return (np.vstack([X, X_new]), np.concatenate([y, np.ones(len(X_new), y.dtype)]),
            counts.tolist())


def _resampler(impl: str):
    """A function (X, y) -> (X_res, y_res, per-point counts or None) for the contender."""
    if impl in ("ours", "ours-report"):
        from project.sampling import ADASYN

        variant = "report" if impl == "ours-report" else "he2008"
        sampler = ADASYN(n_neighbors=K, random_state=0, variant=variant)

        def resample(X, y):
            X_res, y_res = sampler.fit_resample(X, y)
            return X_res, y_res, sampler.n_synthetic_per_sample_[1].tolist()

        return resample
    if impl == "imblearn":
        from imblearn.over_sampling import ADASYN

        sampler = ADASYN(n_neighbors=K, random_state=0)
        return lambda X, y: (*sampler.fit_resample(X, y), None)
    if impl == "report":
        return report_adasyn
    raise ValueError(f"unknown ADASYN contender {impl!r}")


def prepare(impl: str, rows: int, positives: int) -> Prepared:
    """One ``fit_resample`` per call; ``info``: ``baseline_rss_mb`` (peak RSS before the first
    call), then ``n_synthetic`` and ``counts`` (synthetic rows per positive, where told)."""
    resample = _resampler(impl)
    X, y = make_data(rows, positives)
    info = {"impl": impl, "rows": rows, "positives": positives, "baseline_rss_mb": peak_rss_mb()}

    def step():
        X_res, _, counts = resample(X, y)
        info.update(n_synthetic=len(X_res) - len(X), counts=counts)

    return Prepared(step, info)


def peak_mb(info: dict) -> float | None:
    """A contender's peak RSS over its calls above its peak before the first, MB (None: unknown)."""
    if info.get("peak_rss_mb") is None or info.get("baseline_rss_mb") is None:
        return None
    return info["peak_rss_mb"] - info["baseline_rss_mb"]


def _contender(impl: str, rows: int, positives: int, key: str) -> Contender:
    return Contender(key, NAMES[impl], "benchmarks.adasyn:prepare",
                     {"impl": impl, "rows": rows, "positives": positives})


def contenders(quick: bool) -> tuple[list[Contender], list[Contender], Contender]:
    """The small size's contenders (but the report's loop), the large size's, the report's loop."""
    small, large = QUICK_SIZES if quick else SIZES
    positives = QUICK_POSITIVES if quick else POSITIVES
    return ([_contender(i, small, positives, i) for i in IMPLS if i != "report"],
            [_contender(i, large, positives, f"{i}-large") for i in LARGE_IMPLS],
            _contender("report", small, positives, "report"))


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a / max(b, 1e-9)


def run(args) -> dict:
    from benchmarks.harness import fmt, format_table, measure, median_cpu, median_time
    quick = bool(args.quick)
    small, large = QUICK_SIZES if quick else SIZES
    positives = QUICK_POSITIVES if quick else POSITIVES
    repeats = args.repeats if quick else max(MIN_REPEATS, args.repeats)
    threads = int(getattr(args, "threads", 0) or 0)
    small_group, large_group, report = contenders(quick)
    # the two sizes one after the other (one size's processes alive at a time), then the loop
    results = measure([small_group, large_group], repeats=repeats, warmup=1, threads=threads)
    results.update(measure([[report]], repeats=1, warmup=0, threads=threads))

    table, counts = [], {}
    for key, r in results.items():
        info = r["info"]
        table.append({
            "key": key, "impl": info["impl"], "contender": r["label"], "rows": info["rows"],
            "positives": info["positives"], "seconds": median_time(r),
            "cpu_seconds": median_cpu(r), "calls": len(r["times"]), "times": r["times"],
            "cpu_times": r["cpu_times"], "peak_mb": peak_mb(info), "n_synthetic": info["n_synthetic"],
        })
        counts[key] = info["counts"]
    table.sort(key=lambda t: (t["rows"], IMPLS.index(t["impl"])))
    by_key = {t["key"]: t for t in table}
    for t in table:
        peer = by_key["imblearn" if t["rows"] == small else "imblearn-large"]
        t["vs_imblearn"] = t["seconds"] / peer["seconds"]
        t["vs_imblearn_cpu"] = t["cpu_seconds"] / peer["cpu_seconds"]

    def get(key, field):
        return by_key[key][field]

    g = small - 2 * positives  # G = n_majority - n_minority (beta = 1)
    ratios = {
        "ours_vs_imblearn_time": get("ours", "vs_imblearn"),
        "ours_vs_imblearn_time_large": get("ours-large", "vs_imblearn"),
        "ours_report_vs_imblearn_time": get("ours-report", "vs_imblearn"),
        "ours_vs_report_time": get("ours", "seconds") / get("report", "seconds"),
        "ours_vs_imblearn_cpu": get("ours", "vs_imblearn_cpu"),
        "ours_vs_imblearn_cpu_large": get("ours-large", "vs_imblearn_cpu"),
        "ours_report_vs_imblearn_cpu": get("ours-report", "vs_imblearn_cpu"),
        "ours_vs_imblearn_peak_mb": _ratio(get("ours", "peak_mb"), get("imblearn", "peak_mb")),
        "ours_vs_imblearn_peak_mb_large": _ratio(get("ours-large", "peak_mb"),
                                                 get("imblearn-large", "peak_mb")),
        "ours_growth_large_vs_small": get("ours-large", "seconds") / get("ours", "seconds"),
        "imblearn_growth_large_vs_small": get("imblearn-large", "seconds")
        / get("imblearn", "seconds"),
        # variant="report" against the report's loop, same data: same count for every point?
        "report_counts_match": counts["ours-report"] == counts["report"],
        # the paper's G = n_majority - n_minority synthetic rows, exactly
        "ours_makes_G_rows": get("ours", "n_synthetic") == g,
        "threads": threads}
    synthetic = ", ".join(f"{get(i, 'contender')} {get(i, 'n_synthetic'):,}" for i in IMPLS)
    text = (
        f"ADASYN fit_resample on synthetic Gaussian data, {FEATURES} features, {positives} "
        f"positives, k={K}; median of {repeats} calls per contender after a warm-up call, "
        f"contenders of one size taking turns, each in its own process (report's loop: one call, "
        f"no warm-up); threads: {threads or 'library default'}; CPU: the process's CPU seconds, "
        f"all threads; peak = the process's peak RSS over its calls minus its peak before the "
        f"first (MB), output included\n"
        + format_table(table, [
            ("rows", "rows", ","), ("contender", "contender", ""), ("calls", "calls", "d"),
            ("seconds", "median s", ".3f"), ("vs_imblearn", "vs imblearn", ".2f"),
            ("cpu_seconds", "CPU s", ".3f"), ("vs_imblearn_cpu", "vs imblearn (CPU)", ".2f"),
            ("peak_mb", "peak MB", ",.0f"), ("n_synthetic", "synthetic rows", ",")])
        + f"\nours vs imbalanced-learn, {small:,} rows: {ratios['ours_vs_imblearn_time']:.2f}x "
          f"the time, {ratios['ours_vs_imblearn_cpu']:.2f}x the CPU time"
        + f"\nours vs imbalanced-learn, {large:,} rows: "
          f"{ratios['ours_vs_imblearn_time_large']:.2f}x the time, "
          f"{ratios['ours_vs_imblearn_cpu_large']:.2f}x the CPU time"
        + f"\nours vs the report's loop, {small:,} rows: {ratios['ours_vs_report_time']:.4f}x "
          "the time"
        + f"\ntime growth {large:,} / {small:,} rows: ours {ratios['ours_growth_large_vs_small']:.1f}"
          f"x, imbalanced-learn {ratios['imblearn_growth_large_vs_small']:.1f}x (10 = linear)"
        + "\npeak memory ours / imbalanced-learn: "
          f"{fmt(ratios['ours_vs_imblearn_peak_mb'], '.2f')} ({small:,} rows), "
          f"{fmt(ratios['ours_vs_imblearn_peak_mb_large'], '.2f')} ({large:,} rows)"
        + f"\nsynthetic rows at {small:,} (G = {g:,}): {synthetic}"
        + f"\nvariant='report' per-point counts equal the report's loop's: "
          f"{ratios['report_counts_match']}")
    return {"suite": "adasyn", "rows": table, "ratios": ratios, "text": text,
            "targets": check_targets(TARGETS, ratios)}
