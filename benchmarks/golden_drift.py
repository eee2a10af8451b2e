#!/usr/bin/env python
"""How far the golden runs drift across machine types, against how far a real change of the method moves them:
the two numbers the tolerance of ``tests/test_golden.py``'s machine-independent check is chosen between.

1. Across machine types: every pair of recorded fixture sets (``tests/data/golden/<type>/``), per golden run.
2. A change of the method: the golden runs made here with one extra random draw in ``ReinforceAgent.collect``
   (before the batch is sampled: every later draw shifts by one), against every recorded set. One variant each
   for the paths REINFORCE does not run: an extra draw in SB3 PPO's collection (``ppo``).
3. The golden runs made here unchanged, against every recorded set (0 against this machine type's own).

    python benchmarks/golden_drift.py --out benchmarks/results/golden_drift.txt
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from tiny_runs import GOLDEN_PATHS, TOLERANCE, drift, golden_runs, load_fixture, load_run  # noqa: E402

GOLDEN_ROOT = ROOT / "tests" / "data" / "golden"


def extra_draw(owner: type, method: str) -> None:
    """Make ``owner.method(self, rng=...)`` draw one extra number from its generator first."""
    real = getattr(owner, method)

    def changed(self, rng=None, *args, **kwargs):
        if rng is not None:
            torch.rand(1, generator=rng)
        return real(self, rng, *args, **kwargs)

    setattr(owner, method, changed)


def fmt(d: dict[str, float]) -> str:
    ok = d["weights"] <= TOLERANCE["weights"] and d["metrics"] <= TOLERANCE["metrics"]
    return f"weights {d['weights']:9.2e}  metrics {d['metrics']:9.2e}  {'within' if ok else 'OUTSIDE'}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=None, help="also write the report to this file")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    sets = sorted(p.parent for p in GOLDEN_ROOT.glob("*/fingerprint.json"))
    lines = [f"tolerance: weights {TOLERANCE['weights']:.1e}, metrics {TOLERANCE['metrics']:.1e} (tests/tiny_runs.py)"]
    lines.append("\n1. across machine types (recorded fixture sets, pairwise)")
    for name in GOLDEN_PATHS:
        for a, b in itertools.combinations(sets, 2):
            lines.append(
                f"  {name:9s} {a.name:22s} vs {b.name:22s} {fmt(drift(load_fixture(a, name), load_fixture(b, name)))}"
            )

    from seqgan_rl.agents.reinforce import ReinforceAgent
    from seqgan_rl.agents.sb3_ppo import PPOAgent

    with tempfile.TemporaryDirectory() as tmp:
        plain, changed = Path(tmp, "plain"), Path(tmp, "changed")
        plain.mkdir()
        changed.mkdir()
        golden_runs(plain)
        extra_draw(ReinforceAgent, "collect")
        extra_draw(PPOAgent, "collect")
        golden_runs(changed)
        for title, root in (("2. one extra random draw in collect (REINFORCE; PPO)", changed),
                            ("3. unchanged, made here", plain)):  # fmt: skip
            lines.append(f"\n{title}, against every recorded set")
            for name in GOLDEN_PATHS:
                for golden in sets:
                    d = drift(load_run(root / name, name, golden), load_fixture(golden, name))
                    lines.append(f"  {name:9s} vs {golden.name:22s} {fmt(d)}")
    report = "\n".join(lines) + "\n"
    print(report, end="")
    if args.out:
        Path(args.out).write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
