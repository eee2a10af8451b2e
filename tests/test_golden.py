"""Golden runs: tiny runs of every training path through ``scripts/train_agent.py`` must reproduce the
committed fixture bit for bit (metrics without ``time/`` columns, the final generator's weights).

The fixture was recorded before the one-loop refactor; any change that moves these numbers moves the
committed results too. Re-record only on purpose (and re-run the committed tables it touches):

    SEQGAN_WRITE_GOLDEN=1 python -m pytest -q tests/test_golden.py

Float results are reproducible per machine type only, so there is one fixture set per machine type
(``tests/data/golden/<cpu>-<flags>/``, each with its ``fingerprint.json``: torch version, CPU capability, model
and flags). A machine with a set of its own must match it exactly; on a machine with none, the exact check
skips and says how to record one (the command above, run on the code before a change).

A second check never skips: on every machine each golden run must lie within ``tiny_runs.TOLERANCE`` of at least
one recorded set. Machine types drift apart by less than it, and a change of the method (one extra random draw)
moves a run further than it from all of them (``benchmarks/golden_drift.py`` measures both), so a refactor that
changes results fails CI on a machine type with no exact set too.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from tiny_runs import GOLDEN_PATHS, TOLERANCE, data_rows, drift, golden_runs, load_fixture, load_run

from seqgan_rl.utils import machine_fingerprint

ROOT = Path(__file__).resolve().parents[1]
GOLDEN_ROOT = ROOT / "tests" / "data" / "golden"
WRITE = os.environ.get("SEQGAN_WRITE_GOLDEN") == "1"


def fingerprint() -> dict[str, str]:
    """What float rounding depends on: torch's build, the CPU's vector unit, its model and flags."""
    return machine_fingerprint()


def machine_dir(fp: dict[str, str]) -> Path:
    """This machine type's fixture folder, e.g. ``golden/amd-epyc-08328ec5``."""
    words = [w for w in "".join(c if c.isalnum() else " " for c in fp["cpu"].lower()).split() if w not in {"r", "tm"}]
    return GOLDEN_ROOT / f"{'-'.join(words[:2]) or 'cpu'}-{fp['flags'][:8]}"


def fixture_sets() -> list[Path]:
    """Every recorded fixture set, this machine type's first."""
    sets = sorted(p.parent for p in GOLDEN_ROOT.glob("*/fingerprint.json"))
    own = machine_dir(fingerprint())
    return sorted(sets, key=lambda p: p != own)


def write_rows(rows: list[dict[str, str]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, indent=1) + "\n")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """The golden runs, once per session (``tiny_runs.golden_runs``)."""
    pytest.importorskip("stable_baselines3")
    root = tmp_path_factory.mktemp("golden")
    golden_runs(root)
    if WRITE:
        golden = machine_dir(fingerprint())
        for name in GOLDEN_PATHS:
            write_rows(data_rows(root / name / "metrics.csv"), golden / name / "metrics.json")
            state = torch.load(root / name / "generator_final.pt", weights_only=True)["generator"]
            torch.save(state, golden / name / "generator_final.pt")
        for name in ("reinforce", "text"):
            write_rows(data_rows(root / name / "pretrain" / "metrics.csv"), golden / name / "pretrain_metrics.json")
        (golden / "fingerprint.json").write_text(json.dumps(fingerprint(), indent=1) + "\n")
    return root


def differs(run: Path, name: str, golden: Path) -> str | None:
    """What differs between a run and its copy in the fixture set ``golden`` (``None``: bit-identical)."""
    want = json.loads((golden / name / "metrics.json").read_text())
    got = data_rows(run / "metrics.csv")
    if got != want:
        bad = next((i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b), min(len(got), len(want)))
        return f"metrics.csv differs from row {bad} on (got {len(got)} rows, want {len(want)})"
    pre = golden / name / "pretrain_metrics.json"
    if pre.exists() and data_rows(run / "pretrain" / "metrics.csv") != json.loads(pre.read_text()):
        return "pretrain/metrics.csv differs"
    want_g = torch.load(golden / name / "generator_final.pt", weights_only=True)
    got_g = torch.load(run / "generator_final.pt", weights_only=True)["generator"]
    if set(got_g) != set(want_g):
        return f"generator_final.pt has parameters {sorted(got_g)}, want {sorted(want_g)}"
    worst = max(float((got_g[k] - want_g[k]).abs().max()) for k in want_g)
    return None if worst == 0.0 else f"generator_final.pt differs (max |difference| {worst:.3g})"


@pytest.mark.parametrize("name", GOLDEN_PATHS)
def test_golden_run_is_bit_identical(runs, name):
    sets = fixture_sets()
    assert sets, f"no golden fixture set in {GOLDEN_ROOT}"
    problems = {}
    for golden in sets:
        problems[golden.name] = differs(runs / name, name, golden)
        if problems[golden.name] is None:
            return
    own = machine_dir(fingerprint())
    if own in sets and json.loads((own / "fingerprint.json").read_text()) == fingerprint():
        pytest.fail(f"{name}: {problems[own.name]} (this machine type's own fixture set: a change moved the results)")
    pytest.skip(
        f"{name}: no exact fixture set for this machine type {fingerprint()} (the tolerance check below still ran): "
        f"record one with SEQGAN_WRITE_GOLDEN=1 python -m pytest -q tests/test_golden.py on the code before your "
        f"change; against the others: {problems}"
    )


@pytest.mark.parametrize("name", GOLDEN_PATHS)
def test_golden_run_is_within_tolerance_of_a_recorded_machine_type(runs, name):
    """The guard that never skips: on any machine, a golden run lies within ``TOLERANCE`` of at least one recorded
    fixture set (machine types drift apart by less; a change of the method moves a run further from all of them)."""
    sets = fixture_sets()
    assert sets, f"no golden fixture set in {GOLDEN_ROOT}"
    distances = {g.name: drift(load_run(runs / name, name, g), load_fixture(g, name)) for g in sets}
    within = [g for g, d in distances.items() if all(d[k] <= TOLERANCE[k] for k in TOLERANCE)]
    assert within, (
        f"{name}: the run lies outside the tolerance {TOLERANCE} of every recorded machine type {distances}: a "
        "change moved the results (re-record every fixture set on purpose only, and re-run the tables it touches)"
    )
