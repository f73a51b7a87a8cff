"""Where the bundled files (samples, the tiny RoBERTa config and tokenizer) are: the top-level
``assets/`` of a checkout, or ``project/assets/`` in an installed wheel (``pyproject.toml``).

>>> asset("qqp_tiny_config.json").name
'qqp_tiny_config.json'
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
#: Installed wheel first, then the source checkout.
ASSET_ROOTS = (_PACKAGE / "assets", _PACKAGE.parent / "assets")


def asset(name: str) -> Path:
    """The path of the bundled file ``name`` (e.g. ``"creditcard_sample.csv.gz"``);
    FileNotFoundError if it is in neither place (a broken install)."""
    for root in ASSET_ROOTS:
        path = root / name
        if path.exists():
            return path
    places = " or ".join(str(root) for root in ASSET_ROOTS)
    raise FileNotFoundError(f"bundled file {name!r} is missing from {places}: reinstall project")
