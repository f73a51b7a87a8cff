"""What several runs say together, for both experiments: summaries over seeds
(:func:`summarize_runs`), paired comparisons of A and B on the same examples (:func:`compare`)
and their verdicts, one primary, the rest Holm-adjusted across the run (:func:`judge`).

>>> entries = [compare(pairs, "LoRA − full (validation)", ("accuracy",))]  # doctest: +SKIP
>>> judge(entries, primary=(0, "accuracy"))                               # doctest: +SKIP
>>> entries[0]["sentences"]["accuracy"]                                   # doctest: +SKIP
'LoRA − full (validation): +2.1 points accuracy, 95% CI [−0.4, +4.6]: not distinguishable ...'
"""

from __future__ import annotations

from project.settings import METRICS
from project.stats import holm, mcnemar, paired_bootstrap, summarize, two_level_bootstrap, verdict


def summarize_runs(runs: list, group: str, metrics=METRICS) -> dict:
    """``summary[name][split][metric] = {mean, std, median, ci95, n}`` over the seeds of each
    value of ``group`` ("protocol", "mode"), for runs with ``evaluations() -> {split: ...}``."""
    summary = {}
    for name in dict.fromkeys(getattr(r, group) for r in runs):
        mine = [r for r in runs if getattr(r, group) == name]
        summary[name] = {
            split: {m: summarize([getattr(r.evaluations()[split], m) for r in mine])
                    for m in metrics}
            for split in mine[0].evaluations()
        }
    return summary


def compare(pairs: list, label: str, headline=("accuracy", "f1", "average_precision"),
            shared_examples: bool = True) -> dict:
    """A minus B, from ``(seed, evaluation_a, evaluation_b)`` per seed, both of a seed made on
    the same examples (else ValueError); ``shared_examples``: every seed on the same split.

    Returns:
        ``{"label", "headline" (metrics that get a sentence), "covers" ("both" with several
        seeds, else "examples"), "per_seed": [{"seed", "metrics" (paired bootstrap),
        "mcnemar_accuracy"}], "difference" (:func:`~project.stats.two_level_bootstrap`, and
        "over"), "over_seeds" (t-interval of the per-seed differences; None for one seed)}``.
    """
    per_seed = []
    for seed, a, b in pairs:
        if len(a.y_true) != len(b.y_true) or (a.y_true != b.y_true).any():
            raise ValueError(f"{label}: seed {seed} compares evaluations of different examples")
        per_seed.append({
            "seed": seed,
            "metrics": paired_bootstrap(b.y_true, a.scores, b.scores, a.threshold, b.threshold,
                                        seed=seed),
            "mcnemar_accuracy": mcnemar(b.y_true, a.scores >= a.threshold, b.scores >= b.threshold),
        })
    several = len(pairs) > 1
    over = ("seeds and examples" if shared_examples else "seeds, each on its own split"
            ) if several else "examples"
    together = two_level_bootstrap(
        [(b.y_true, a.scores, b.scores, a.threshold, b.threshold) for _, a, b in pairs],
        shared_examples=shared_examples, seed=pairs[0][0])
    over_seeds = None
    if several:
        over_seeds = {}
        for m in METRICS:
            s = summarize([p["metrics"][m]["difference"] for p in per_seed])
            over_seeds[m] = {"difference": s["mean"], "ci95": s["ci95"]}
    return {"label": label, "headline": list(headline),
            "covers": "both" if several else "examples", "per_seed": per_seed,
            "difference": {m: {**together[m], "over": over} for m in METRICS},
            "over_seeds": over_seeds}


def judge(comparisons: list, primary: tuple[int, str] | None) -> None:
    """Word every headline verdict of a run's comparisons: the ``primary`` (comparison index,
    metric) one stands alone at 95%, every other is Holm-adjusted across the run. Adds
    ``"sentences"`` ({metric: str}), ``"holm_p"`` ({metric: adjusted p}) and ``"primary"``.

    >>> entry = {"label": "A − B", "headline": ["accuracy"], "covers": "both", "difference": {
    ...     "accuracy": {"difference": 0.03, "ci95": [0.01, 0.05], "p_value": 0.004}}}
    >>> judge([entry], primary=(0, "accuracy"))
    >>> entry["sentences"]["accuracy"]
    'A − B: +3.0 points accuracy, 95% CI [+1.0, +5.0]: higher, beyond noise'
    """
    family = [(i, m) for i, c in enumerate(comparisons) for m in c["headline"] if (i, m) != primary]
    adjusted = dict(zip(family, holm([comparisons[i]["difference"][m]["p_value"]
                                      for i, m in family])))
    for i, comp in enumerate(comparisons):
        comp["primary"] = primary[1] if primary and primary[0] == i else None
        comp["holm_p"] = {m: adjusted.get((i, m)) for m in comp["headline"]}
        comp["sentences"] = {}
        for m in comp["headline"]:
            d, p = comp["difference"][m], comp["holm_p"][m]
            comp["sentences"][m] = verdict(
                d["difference"], d["ci95"], comp["label"], f"points {m.replace('_', ' ')}",
                covers=comp["covers"], p_adjusted=None if (i, m) == primary or p is None else p)
