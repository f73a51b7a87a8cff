"""Markdown tables from lists of dicts.

Example:

>>> print(markdown_table([{"name": "a", "f1": 0.5}], [("name", "Run", ""), ("f1", "F1", ".3f")]))
| Run | F1 |
|---|---|
| a | 0.500 |
"""

from __future__ import annotations


def _cell(value, fmt: str) -> str:
    if value is None:
        return "–"
    if fmt and isinstance(value, (int, float)):
        return format(value, fmt)
    return str(value)


def markdown_table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """A GitHub-flavoured Markdown table.

    Args:
        rows: one dict per row.
        columns: ``(key, header, format spec)`` triples; an empty spec prints ``str(value)``;
            a missing or None value prints "–".
    """
    lines = [
        "| " + " | ".join(h for _, h, _ in columns) + " |",
        "|" + "---|" * len(columns),
    ]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(k), f) for k, _, f in columns) + " |")
    return "\n".join(lines)
