"""Where the bundled files are: the synthetic samples, the tiny RoBERTa config and its tokenizer.

In a source checkout they sit in the top-level ``assets/`` folder; in an installed wheel the same
files are package data under ``project/assets/`` (``pyproject.toml`` maps one onto the other).
:func:`asset` looks in both, so the code never guesses where it was installed.

Example:

>>> asset("qqp_tiny_config.json").name
'qqp_tiny_config.json'
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
#: Installed wheel first, then the source checkout.
ASSET_ROOTS = (_PACKAGE / "assets", _PACKAGE.parent / "assets")


def asset(name: str) -> Path:
    """The path of the bundled file ``name`` (e.g. ``"creditcard_sample.csv.gz"``).

    Raises:
        FileNotFoundError: the file is in neither place (a broken install).
    """
    for root in ASSET_ROOTS:
        path = root / name
        if path.exists():
            return path
    places = " or ".join(str(root) for root in ASSET_ROOTS)
    raise FileNotFoundError(f"bundled file {name!r} is missing from {places}: reinstall project")
