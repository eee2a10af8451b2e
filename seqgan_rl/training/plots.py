"""Plots of training curves (matplotlib, imported lazily; the Agg backend, no display needed)."""

from __future__ import annotations

import io
import os

from seqgan_rl.training.logger import read_metrics

PAPER_SEQGAN = 8.736
"""The paper's SeqGAN NLL-oracle (Table 1)."""

LABELS = {
    "eval/nll_oracle": "NLL-oracle (nats/token, lower = better quality)",
    "eval/nll_test": "NLL-test (nats/token, lower = better coverage)",
    "eval/bleu3": "BLEU-3 (higher = closer to the test set)",
}


def plot_training_curves(
    metrics_csv: str | os.PathLike, mle: dict[str, float] | None = None, title: str = "",
    keys: tuple[str, str] = ("eval/nll_oracle", "eval/nll_test"), paper_line: bool = True,
) -> bytes:  # fmt: skip
    """Two evaluation metrics against the generator update, from a metrics CSV: the PNG's bytes.

    Args:
        mle: the MLE generator's metrics, drawn as horizontal lines.
        keys: the two metrics (NLL-oracle and NLL-test for the oracle benchmark).
        paper_line: draw the paper's SeqGAN NLL-oracle on the NLL-oracle panel.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in read_metrics(metrics_csv) if r.get(keys[0])]
    steps = [int(r["step"]) for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, color in zip(axes, keys, ("C0", "C1"), strict=True):
        ax.plot(steps, [float(r[key]) for r in rows], "o-", color=color, label="adversarial run")
        if key == "eval/nll_oracle" and paper_line:
            ax.axhline(PAPER_SEQGAN, color="gray", ls="--", label=f"paper SeqGAN {PAPER_SEQGAN}")
        if mle and key in mle:
            ax.axhline(mle[key], color="C2", ls=":", label="after MLE")
        ax.set(xlabel="generator update", ylabel=LABELS.get(key, key))
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()
