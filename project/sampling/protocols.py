"""The three fraud protocols: where (if anywhere) ADASYN runs relative to the split.

* ``none``: split 60/20/20, scale; no oversampling.
* ``adasyn-all`` (**LEAKY**, the paper's protocol): ADASYN over the whole data, then split and
  scale: synthetic points cross the split both ways, so held-out scores are inflated.
* ``adasyn-train`` (the correct one): split and scale, then ADASYN on the scaled training split
  only; validation and test rows are untouched.

Example:

>>> from project.data.creditcard import load_creditcard, BUNDLED_SAMPLE
>>> split = protocol_split(load_creditcard(BUNDLED_SAMPLE), "adasyn-train", seed=0)
>>> bool((split.val_rows >= 0).all())          # no synthetic row outside training
True
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from project.data.creditcard import FraudSplit, features_and_labels, split_and_scale
from project.sampling.adasyn import ADASYN
from project.settings import ADASYN_VARIANTS, FRAUD_SPLIT_SEED, PROTOCOLS, choice


def protocol_split(df: pd.DataFrame, protocol: str, *, seed: int = 0, stratify: bool = False,
                   n_neighbors: int = 5, beta: float = 1.0, variant: str = "he2008",
                   split_seed: int = FRAUD_SPLIT_SEED) -> FraudSplit:
    """Train/validation/test arrays of ``df`` (from ``load_creditcard``) for one of
    :data:`PROTOCOLS`: a :class:`~project.data.creditcard.FraudSplit` whose synthetic rows have
    row id -1. ``seed``, ``n_neighbors``, ``beta`` and ``variant`` (``"he2008"``: He et al.;
    ``"report"``: the course report's function, which its published numbers used) are
    ADASYN's; ``split_seed`` is the split's ``random_state`` (the report's is 50;
    ``--resplit`` draws one per seed)."""
    choice("protocol", protocol, PROTOCOLS)
    choice("adasyn_variant", variant, ADASYN_VARIANTS)
    sampler = ADASYN(n_neighbors=n_neighbors, beta=beta, random_state=seed, variant=variant)
    if protocol == "none":
        return split_and_scale(df, stratify=stratify, seed=split_seed)
    if protocol == "adasyn-all":
        x, y = features_and_labels(df)
        x_res, y_res = sampler.fit_resample(x, y)
        row_ids = np.concatenate([np.arange(len(y)), np.full(len(y_res) - len(y), -1)])
        return split_and_scale(x=x_res, y=y_res, row_ids=row_ids, stratify=stratify,
                               seed=split_seed)

    split = split_and_scale(df, stratify=stratify, seed=split_seed)
    x_res, y_res = sampler.fit_resample(split.x_train, split.y_train)
    n_new = len(y_res) - len(split.y_train)
    return dataclasses.replace(split, x_train=x_res, y_train=y_res,
                               train_rows=np.concatenate([split.train_rows, np.full(n_new, -1)]))
