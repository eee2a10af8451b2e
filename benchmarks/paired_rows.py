#!/usr/bin/env python
"""Rows of different comparisons against each other, paired by seed.

A comparison folder's ``results.json`` (``scripts/compare_algos.py``) holds its own MLE records. Each row's Δ (the
final model's NLL-oracle at τ 1 minus its seed's MLE cooled to the same NLL-test, as in the leaderboard) is taken
against the MLE records of its own file; then every row after the first is paired by seed with the first: the
difference of their Δs per seed, its mean ± std and 95% t-interval (< 0: the first row is the better one). For the
optimal discriminator's rows (oracle access) against the leaderboard's learned-D rows on the same seeds::

    python benchmarks/paired_rows.py \\
        --rows benchmarks/results/strong_optimal_seeds/results.json:rloo@reward=optimal_log,lr=0.001 \\
               benchmarks/results/compare_strong/results.json:rloo \\
               benchmarks/results/compare_strong/results.json:coldgan@lr=0.0003 \\
        --out benchmarks/results/strong_optimal_paired.md

Prints the markdown table (and writes it to ``--out``). Only seeds that every row has are used.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from seqgan_rl.training.compare import matched_rows, paired_interval, row_label
from seqgan_rl.training.run_folder import read_json_file


def parse_spec(spec: str) -> tuple[Path, str]:
    """``FILE:ROW`` -> (file, row); a ValueError names what is missing."""
    path, sep, row = spec.partition(":")
    if not sep or not path or not row:
        raise ValueError(f"{spec!r}: write FILE:ROW, e.g. runs/compare-strong/results.json:coldgan@lr=0.0003")
    return Path(path), row


def row_deltas(path: Path, row: str) -> dict[int, float]:
    """Δ (τ 1) of ``row`` per seed, against the MLE records of the same file."""
    if not path.is_file():
        raise ValueError(f"{path} does not exist: give a comparison's results.json")
    records = read_json_file(path)
    rows = sorted({r["algo"] for r in records})
    if row not in rows:
        raise ValueError(f"{path} has no row {row!r}; it has: {', '.join(rows)}")
    deltas = {m["seed"]: m["minus_mle_temp"] for m in matched_rows(records) if m["algo"] == row}
    if not deltas:
        raise ValueError(f"{path}: row {row!r} has no seed with an MLE record to compare against")
    return deltas


def shared_seeds(deltas: list[dict[int, float]]) -> list[int]:
    """The seeds every row has, in order."""
    return sorted(set.intersection(*(set(d) for d in deltas)))


def _signed(x: float) -> str:
    return f"{x:+.3f}"


def table(specs: list[tuple[Path, str]], deltas: list[dict[int, float]]) -> str:
    """The markdown table: per-seed Δ of every row, then each row's paired difference from the first."""
    seeds = shared_seeds(deltas)
    head = ["row (file)", *[f"seed {s}" for s in seeds], "Δ mean ± std", "this row minus the first, per seed", "mean ± std",
            "95% interval"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    first = deltas[0]
    for i, ((path, row), d) in enumerate(zip(specs, deltas, strict=True)):
        own = paired_interval([d[s] for s in seeds])
        cells = [
            f"{row_label(row)} (`{path}`)",
            *[_signed(d[s]) for s in seeds],
            f"{own['mean']:+.3f} ± {own['std']:.3f}",
        ]
        if i == 0:
            cells += ["–", "–", "–"]
        else:
            diff = [d[s] - first[s] for s in seeds]
            p = paired_interval(diff)
            cells += [" / ".join(_signed(x) for x in diff), f"{p['mean']:+.3f} ± {p['std']:.3f}",
                      f"[{p['lo']:+.3f}, {p['hi']:+.3f}]"]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--rows", nargs="+", required=True, metavar="FILE:ROW", help="the first is the reference of the pairs"
    )
    p.add_argument("--out", default=None, help="also write the table here (markdown)")
    args = p.parse_args(argv)
    if len(args.rows) < 2:
        p.error("--rows: give at least two FILE:ROW, the first paired with each of the others")
    try:
        specs = [parse_spec(s) for s in args.rows]
        deltas = [row_deltas(path, row) for path, row in specs]
    except ValueError as exc:
        p.error(f"--rows: {exc}")
    if len(shared_seeds(deltas)) < 2:
        p.error("--rows: the rows share fewer than two seeds; nothing to pair")
    text = table(specs, deltas)
    if args.out:
        Path(args.out).write_text(text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
