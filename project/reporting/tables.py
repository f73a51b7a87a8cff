"""Markdown tables from lists of dicts, and the two cells every report prints: a value with its
95% interval, and a statistic over seeds.

Example:

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
    """A GitHub-flavoured Markdown table of ``rows`` (dicts): ``columns`` are ``(key, header,
    format spec)`` triples; an empty spec prints ``str(value)``, a missing or None value "–"."""
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
    """A statistic over seeds (a ``summary`` entry): mean ± standard deviation (median); the mean
    alone for one seed; "–" when there is no value."""
    if stat["mean"] is None:
        return "–"
    if stat["std"] is None:
        return f"{stat['mean']:.4f}"
    return f"{stat['mean']:.4f} ± {stat['std']:.4f} (median {stat['median']:.4f})"
