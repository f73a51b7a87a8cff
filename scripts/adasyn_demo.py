"""ADASYN in two dimensions: where the synthetic points go, and why.

    python scripts/adasyn_demo.py                         # writes runs/adasyn_2d.png
    python scripts/adasyn_demo.py --out assets/adasyn_2d.png   # refresh the README's picture

A small imbalanced set (400 majority points, 30 minority: 22 in a cluster of their own, 8 inside
the majority cloud) goes through ``project.sampling.ADASYN``. The picture shows each minority
point's weight r_hat_i as marker size and colour: those surrounded by the majority get most of
the synthetic points.
"""

import argparse
from pathlib import Path

import numpy as np

from project.cli import Parser
from project.errors import InputError, run_cli
from project.io import atomic_path
from project.sampling import ADASYN

N_MAJORITY, N_CLUSTER, N_INSIDE = 400, 22, 8


def make_data(seed: int):
    """400 majority points N(0, 1); 22 minority in a cluster at (1.9, 1.9), 8 among the majority."""
    rng = np.random.default_rng(seed)
    X = np.vstack([rng.normal(0.0, 1.0, (N_MAJORITY, 2)), rng.normal(1.9, 0.5, (N_CLUSTER, 2)),
                   rng.uniform(-1.3, 1.3, (N_INSIDE, 2))])
    return X, np.array([0] * N_MAJORITY + [1] * (N_CLUSTER + N_INSIDE))


def draw(X, y, X_new, weights, path: Path, seed: int) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    minority = X[y == 1]
    fig, ax = plt.subplots(figsize=(7.5, 6.2), dpi=110)
    ax.scatter(*X[y == 0].T, s=10, c="#9e9e9e", alpha=0.6, label=f"majority ({(y == 0).sum()})")
    ax.scatter(*X_new.T, s=7, c="#ff7f0e", alpha=0.45, linewidths=0,
               label=f"synthetic ({len(X_new)})")
    points = ax.scatter(*minority.T, s=25 + 900 * weights, c=weights, cmap="viridis",
                        edgecolors="black", linewidths=0.8, zorder=3,
                        label=f"minority ({len(minority)}): size and colour = weight")
    fig.colorbar(points, ax=ax, label=r"weight $\hat r_i$ (share of the synthetic points)")
    ax.set_title("ADASYN (He et al. 2008), k = 5: synthetic points go where the\n"
                 f"minority is surrounded by the majority (seed {seed})", fontsize=11)
    ax.set(xlabel="feature 1", ylabel="feature 2")
    legend = ax.legend(loc="lower right", fontsize=9, framealpha=0.9)
    for handle in legend.legend_handles:
        handle.set_alpha(1.0)
    legend.legend_handles[2].set_sizes([60])
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def main(argv=None) -> int:
    p = Parser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/adasyn_2d.png"),
                   help="PNG to write (default runs/adasyn_2d.png)")
    p.add_argument("--seed", type=int, default=0, help="data and ADASYN seed")
    args = p.parse_args(argv)
    if args.out.suffix.lower() != ".png":
        raise InputError(f"--out must end in .png, got {args.out}")

    X, y = make_data(args.seed)
    sampler = ADASYN(n_neighbors=5, random_state=args.seed)
    X_res, _ = sampler.fit_resample(X, y)
    draw(X, y, X_res[len(X):], sampler.ratios_[1], args.out, args.seed)
    inside = sampler.n_synthetic_per_sample_[1][N_CLUSTER:].sum()
    print(f"wrote {args.out}: {len(X_res) - len(X)} synthetic points, {inside} of them from the "
          f"{N_INSIDE} minority points inside the majority")
    return 0


if __name__ == "__main__":
    run_cli(main)
