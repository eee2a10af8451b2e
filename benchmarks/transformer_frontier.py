#!/usr/bin/env python
"""The transformer preset's temperature curves on the strong LSTM's frontier plot.

Reads two committed ``*_frontier.csv`` files of ``scripts/compare_algos.py`` (``algo, seed, tau, nll_oracle,
nll_test``) and draws each row's curve, the mean over seeds, beside the published MLE and CoT curves::

    python benchmarks/transformer_frontier.py --out benchmarks/results/transformer_frontier.png
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from seqgan_rl.training.compare import FIXED_NLL_TEST, PUBLISHED  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
CURVES = {
    "strong LSTM (1 x 128, dropout 0.6)": (RESULTS / "compare_strong_frontier.csv", ("mle",)),
    "transformer preset (GPT-2 2 x 128, dropout 0.1)": (
        RESULTS / "compare_transformer_frontier.csv", ("mle", "reinforce", "constant"),
    ),
}  # fmt: skip


def mean_curve(path: Path, algo: str) -> tuple[np.ndarray, np.ndarray, int]:
    """The curve of ``algo`` in a frontier csv: mean NLL-test and NLL-oracle over seeds at each temperature."""
    points: dict[float, list[tuple[float, float]]] = defaultdict(list)
    seeds = set()
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            if row["algo"] == algo:
                points[float(row["tau"])].append((float(row["nll_test"]), float(row["nll_oracle"])))
                seeds.add(row["seed"])
    taus = sorted(points)
    means = np.array([np.mean(points[t], axis=0) for t in taus])
    return means[:, 0], means[:, 1], len(seeds)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="transformer_frontier.png")
    args = p.parse_args(argv)
    fig, ax = plt.subplots(figsize=(9, 5.5))
    for (model, (path, algos)), style in zip(CURVES.items(), ("-", "--"), strict=True):
        for algo in algos:
            xs, ys, seeds = mean_curve(path, algo)
            ax.plot(xs, ys, "o" + style, ms=3, label=f"{model}: {algo} ({seeds} seeds)")
    for (label, pts), marker in zip(PUBLISHED.items(), ("s", "D", "^"), strict=True):
        ax.plot(FIXED_NLL_TEST, [pts[x] for x in FIXED_NLL_TEST], marker + ":", ms=5, color="0.3", mfc="none",
                lw=0.8, label=f"published: {label}")  # fmt: skip
    ax.set(xlabel="NLL-test (lower = better coverage)", ylabel="NLL-oracle (lower = better quality)", xlim=(7.2, 9.2))
    ax.set_title("Temperature sweeps of the final models, the paper's oracle (mean over seeds)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
