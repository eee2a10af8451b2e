"""Plots of training curves (matplotlib, imported lazily; the Agg backend, no display needed)."""

from __future__ import annotations

import os

from seqgan_rl.training.logger import read_metrics

PAPER_SEQGAN = 8.736
"""The paper's SeqGAN NLL-oracle (Table 1)."""


def plot_training_curves(
    metrics_csv: str | os.PathLike, png: str | os.PathLike, mle: dict[str, float] | None = None, title: str = ""
) -> None:
    """NLL-oracle and NLL-test against the generator update, from a metrics CSV, to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in read_metrics(metrics_csv) if r.get("eval/nll_oracle")]
    steps = [int(r["step"]) for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(steps, [float(r["eval/nll_oracle"]) for r in rows], "o-", label="SeqGAN run")
    ax1.axhline(PAPER_SEQGAN, color="gray", ls="--", label=f"paper SeqGAN {PAPER_SEQGAN}")
    ax2.plot(steps, [float(r["eval/nll_test"]) for r in rows], "o-", color="C1", label="SeqGAN run")
    if mle:
        ax1.axhline(mle["eval/nll_oracle"], color="C2", ls=":", label="after MLE")
        ax2.axhline(mle["eval/nll_test"], color="C2", ls=":", label="after MLE")
    ax1.set(xlabel="generator update", ylabel="NLL-oracle (nats/token, lower = better quality)")
    ax2.set(xlabel="generator update", ylabel="NLL-test (nats/token, lower = better coverage)")
    for ax in (ax1, ax2):
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
