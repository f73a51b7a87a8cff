"""Benchmark suites for scripts/bench.py, on one protocol (:mod:`benchmarks.harness`).

Each suite module has ``run(args) -> dict`` (``suite``, ``rows``, ``ratios``, ``text``: the printed
table, ``targets``: its evaluated :class:`benchmarks.harness.Target` rows). Peers (plain PyTorch,
the report's ADASYN loop, HF PEFT) live here, not in the package.
"""
