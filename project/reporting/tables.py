"""Markdown tables, the cells every report prints, and the "is the difference more than noise?"
lines both reports share (:func:`noise_lines`).

>>> print(markdown_table([{"name": "a", "f1": 0.5}], [("name", "Run", ""), ("f1", "F1", ".3f")]))
| Run | F1 |
|---|---|
| a | 0.500 |
>>> value_cell(0.81234, (0.79, 0.83))
'0.8123 [0.790, 0.830]'
>>> stat_cell({"mean": 0.8, "std": 0.01, "median": 0.805})
'0.8000 ± 0.0100 (median 0.8050)'
"""

from __future__ import annotations


def _cell(value, fmt: str) -> str:
    if value is None:
        return "–"
    if fmt and isinstance(value, (int, float)):
        return format(value, fmt)
    return str(value)


def markdown_table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """A Markdown table of ``rows`` (dicts) in ``columns`` ``(key, header, format spec)``; an
    empty spec prints ``str(value)``, a missing or None value "–"."""
    lines = ["| " + " | ".join(h for _, h, _ in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(k), f) for k, _, f in columns) + " |" for row in rows]
    return "\n".join(lines)


def value_cell(value, interval=None) -> str:
    """``value`` to four places, with its 95% interval ``(lo, hi)`` when given; "–" for None."""
    if value is None:
        return "–"
    if interval:
        return f"{value:.4f} [{interval[0]:.3f}, {interval[1]:.3f}]"
    return f"{value:.4f}"


def stat_cell(stat: dict) -> str:
    """A ``summary`` entry: mean ± standard deviation (median); the mean alone for one seed."""
    if stat["mean"] is None:
        return "–"
    if stat["std"] is None:
        return f"{stat['mean']:.4f}"
    return f"{stat['mean']:.4f} ± {stat['std']:.4f} (median {stat['median']:.4f})"


def points(x: float) -> str:
    """A difference of shares in points, signed: ``0.0123`` -> ``+1.2``."""
    return f"{x * 100:+.1f}".replace("-", "−")


def _interval_note(seeds: int, resplit: bool, rows: str) -> str:
    if seeds == 1:
        return (f"95% paired bootstrap over the {rows} (1,000 replicates). With one seed it "
                f"covers the sampling of the {rows}, not the training randomness, so no verdict "
                "here calls a difference more than noise (`--seeds 0,1,2,3,4` counts both).")
    if resplit:
        return (f"95% bootstrap over the {seeds} seeds, each trained and scored on its own split "
                f"(`--resplit`), so the per-seed differences vary with the training randomness "
                f"and with the {rows}: the interval counts both (widened for few seeds).")
    return (f"95% two-level bootstrap (1,000 replicates): the {seeds} seeds are resampled and, "
            f"in each replicate, the {rows}, one resample shared by every seed and both "
            f"models (every seed is scored on the same {rows}, so their noise does not average "
            "out over seeds). It counts both the training randomness and the sampling of the "
            f"{rows}; the seed level is widened for few seeds. \"Beyond noise\" means this "
            "interval leaves 0 out.")


def noise_lines(comparisons: list, seeds: int, resplit: bool, rows: str,
                extra=lambda comp: []) -> list[str]:
    """The lines under "Is the difference more than noise?" for judged ``comparisons``: what the
    intervals cover, the multiplicity, one line per verdict, and under each comparison the
    t-interval over seeds, ``extra(comp)`` (e.g. the LEAKY note) and McNemar on the first seed.
    ``rows`` names the evaluated examples ("test rows", "pairs")."""
    primary = next(((c["label"], c["primary"]) for c in comparisons if c.get("primary")), None)
    others = sum(len(c["headline"]) for c in comparisons) - (primary is not None)
    lead = (f"Primary verdict: {primary[0]}, {primary[1].replace('_', ' ')} (marked); it stands "
            "alone at 95%. " if primary else "No primary comparison in this run. ")
    lines = [f"Intervals: {_interval_note(seeds, resplit, rows)}", "",
             lead + f"The other {others} verdicts are Holm-adjusted across this run (adjusted p "
             "beside each; the call is made on it) and are exploratory.", ""]
    for comp in comparisons:
        lines += [f"- {'**primary:** ' if m == comp['primary'] else ''}{sentence}"
                  for m, sentence in comp["sentences"].items()]
        if comp.get("over_seeds"):
            spans = [f"{m.replace('_', ' ')} {points(d['difference'])} [{points(d['ci95'][0])}, "
                     f"{points(d['ci95'][1])}]" for m in comp["headline"]
                     if (d := comp["over_seeds"][m])["ci95"]]
            lines.append(f"  - over seeds, on these {rows} (95% t-interval of the per-seed "
                         "differences: training randomness only): " + "; ".join(spans))
        lines += extra(comp)
        first = comp["per_seed"][0]
        mcn = first["mcnemar_accuracy"]
        lines.append(f"  - accuracy, McNemar on seed {first['seed']} (these {rows} only, "
                     f"unadjusted): {mcn['a_only']} right only with {comp['a']}, "
                     f"{mcn['b_only']} only with {comp['b']}, p = {mcn['p_value']:.3g}")
    return lines + [""]
