"""Benchmark suites for scripts/bench.py. Each module exposes ``run(args) -> dict`` returning
``{"suite": name, "rows": [...], "ratios": {...}, "text": printed table}``.

Peers (plain PyTorch, the report's ADASYN loop, HF PEFT) live here, not in the package.
"""
