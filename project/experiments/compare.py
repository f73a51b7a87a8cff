"""What several runs say together: summaries over seeds and paired comparisons, shared by both
experiments.

* :func:`summarize_runs`: ``summary[group][split][metric] = {mean, std, median, ci95, n}`` over
  the seeds of each group (a protocol, a mode).
* :func:`compare` : model A minus model B scored on the same examples, seed by seed (paired
  bootstrap of every metric, McNemar for accuracy) and, with several seeds, over seeds (mean of
  the per-seed differences with a t-interval), with a plain sentence per headline metric.

Example:

>>> entry = compare(pairs, "LoRA − full (validation)", ("accuracy",))   # doctest: +SKIP
>>> entry["sentences"]["accuracy"]                                      # doctest: +SKIP
'LoRA − full (validation): +2.1 points accuracy, 95% CI [−0.4, +4.6]: not distinguishable ...'
"""

from __future__ import annotations

from project.settings import METRICS
from project.stats import mcnemar, paired_bootstrap, summarize, verdict


def summarize_runs(runs: list, group: str, metrics=METRICS) -> dict:
    """Summaries over seeds of every evaluation, for each value of ``group`` (a run attribute).

    Args:
        runs: run records with ``group`` and ``evaluations() -> {split: Evaluation}``.
        group: "protocol" or "mode".
        metrics: which :class:`~project.training.metrics.Evaluation` fields to summarise.
    """
    summary = {}
    for name in dict.fromkeys(getattr(r, group) for r in runs):
        mine = [r for r in runs if getattr(r, group) == name]
        summary[name] = {
            split: {m: summarize([getattr(r.evaluations()[split], m) for r in mine])
                    for m in metrics}
            for split in mine[0].evaluations()
        }
    return summary


def compare(pairs: list, label: str, headline=("accuracy", "f1", "average_precision")) -> dict:
    """A minus B on the same examples.

    Args:
        pairs: ``(seed, evaluation_a, evaluation_b)`` per seed; both evaluations of the same
            examples (same labels, same order).
        label: what is compared, for the sentences (``"adasyn-train − none"``).
        headline: metrics that get a sentence.

    Returns:
        ``{"per_seed": [{"seed", "metrics": {metric: {difference, ci95}}, "mcnemar_accuracy"}],
        "difference": {metric: {difference, ci95, over}}, "sentences": {metric: str}}``.

    Raises:
        ValueError: two evaluations of one pair were not made on the same examples.
    """
    per_seed = []
    for seed, a, b in pairs:
        if len(a.y_true) != len(b.y_true) or (a.y_true != b.y_true).any():
            raise ValueError(f"{label}: seed {seed} compares evaluations of different examples")
        per_seed.append({
            "seed": seed,
            "metrics": paired_bootstrap(b.y_true, a.scores, b.scores, a.threshold, b.threshold,
                                        seed=seed),
            "mcnemar_accuracy": mcnemar(b.y_true, a.scores >= a.threshold,
                                        b.scores >= b.threshold),
        })
    pooled = {}
    for m in METRICS:
        if len(per_seed) > 1:
            s = summarize([p["metrics"][m]["difference"] for p in per_seed])
            pooled[m] = {"difference": s["mean"], "ci95": s["ci95"], "over": "seeds"}
        else:
            pooled[m] = {**per_seed[0]["metrics"][m], "over": "examples"}
    sentences = {m: verdict(pooled[m]["difference"], pooled[m]["ci95"], label,
                            f"points {m.replace('_', ' ')}") for m in headline}
    return {"per_seed": per_seed, "difference": pooled, "sentences": sentences}
