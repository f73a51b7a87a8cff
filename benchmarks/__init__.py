"""Benchmark suites for scripts/bench.py, on one protocol (:mod:`benchmarks.harness`).

Each suite module exposes ``run(args) -> dict`` returning ``{"suite": name, "rows": [...],
"ratios": {...}, "text": printed table, "targets": evaluated TARGETS}`` and a ``TARGETS`` tuple
of :class:`benchmarks.harness.Target` rows. Peers (plain PyTorch, the report's ADASYN loop, HF
PEFT) live here, not in the package.
"""
