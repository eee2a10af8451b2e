"""``--report-to``: metrics and the run's config to TensorBoard, W&B (offline) and Trackio (a local folder), with
the run's results unchanged; refusals before any work."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

import pytest
from tiny_runs import GOLDEN_TINY, ROOT, data_rows, load_script

from seqgan_rl.models.oracle import OracleLSTM
from seqgan_rl.training import tracking
from seqgan_rl.training.tracking import check_report_to


@pytest.fixture(scope="module")
def oracle(tmp_path_factory):
    npz = tmp_path_factory.mktemp("oracle") / "oracle.npz"
    OracleLSTM.random(vocab_size=20, seq_len=6, embed_dim=8, hidden_dim=8, seed=3).save_npz(npz)
    return ["--preset", "cpu", "--oracle-file", str(npz), "--eval-samples", "64", "--num-rollouts", "2", *GOLDEN_TINY]


def run(argv, out) -> None:
    assert load_script("train_agent").main([*argv, "--out", str(out)]) == 0


def test_check_report_to_refusals(monkeypatch):
    assert check_report_to(["none"]) == []
    with pytest.raises(ValueError, match="'mlflow' is not a tracker: choose from tensorboard, wandb, trackio, none"):
        check_report_to(["mlflow"])
    with pytest.raises(ValueError, match="none cannot be combined"):
        check_report_to(["none", "wandb"])
    monkeypatch.setitem(tracking._MODULES, "wandb", "a_module_that_is_not_installed")
    with pytest.raises(ValueError, match="--report-to wandb needs wandb: pip install wandb"):
        check_report_to(["wandb"])


def test_bad_report_to_exits_2_before_any_work(tmp_path, capsys, oracle):
    assert load_script("train_agent").main([*oracle, "--report-to", "mlflow", "--out", str(tmp_path / "r")]) == 2
    assert "not a tracker" in capsys.readouterr().err and not (tmp_path / "r").exists()
    assert load_script("pretrain").main(["--report-to", "none", "wandb", "--out", str(tmp_path / "p")]) == 2
    assert "cannot be combined" in capsys.readouterr().err and not (tmp_path / "p").exists()


def test_wandb_offline_and_trackio_get_metrics_and_config_and_change_nothing(tmp_path, oracle):
    pytest.importorskip("wandb")
    pytest.importorskip("trackio")
    run(oracle, tmp_path / "plain")
    # a process of its own: trackio reads its folder from the environment when it is first imported
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "TRACKIO_DIR": str(tmp_path / "trackio")}
    cmd = [sys.executable, str(ROOT / "scripts" / "train_agent.py"), *oracle, "--report-to", "wandb", "trackio"]
    subprocess.run([*cmd, "--out", str(tmp_path / "tracked")], env=env, check=True, capture_output=True)
    for name in ("metrics.csv", "pretrain/metrics.csv"):  # the trackers draw no random numbers
        assert data_rows(tmp_path / "tracked" / name) == data_rows(tmp_path / "plain" / name)

    records = list((tmp_path / "tracked" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(records) == 1  # W&B's offline record (what `wandb sync` uploads): the history and the config
    raw = records[0].read_bytes()
    for key in (b"adversarial/eval/nll_oracle", b"pretrain/train/loss", b"adversarial/step", b"runtime", b"d_train"):
        assert key in raw, key

    dbs = list((tmp_path / "trackio").rglob("*.db"))
    assert dbs, "trackio wrote no database"
    with sqlite3.connect(dbs[0]) as db:
        text = " ".join(str(row) for table in ("metrics", "configs") for row in db.execute(f"SELECT * FROM {table}"))
    assert "adversarial/eval/nll_oracle" in text and "pretrain/train/loss" in text and "adversarial/step" in text


def test_tensorboard_events_of_both_phases(tmp_path, oracle):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run([*oracle, "--report-to", "tensorboard"], tmp_path / "tb-run")
    events = EventAccumulator(str(tmp_path / "tb-run" / "tb"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"pretrain/train/loss", "adversarial/eval/nll_oracle", "adversarial/train/pg_loss"} <= tags
    assert [e.step for e in events.Scalars("adversarial/train/pg_loss")] == [1, 2, 3]


def test_compare_algos_reports_each_run(tmp_path, monkeypatch):
    """run_comparison's report_to reaches every pre-training and row it makes (W&B offline: one run each)."""
    pytest.importorskip("wandb")
    import torch
    from tiny_runs import V, tiny_config

    from seqgan_rl.training.compare import run_comparison

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    oracle = OracleLSTM.random(vocab_size=V, seq_len=tiny_config().pretrain.generator.seq_len, embed_dim=8,
                               hidden_dim=8, seed=3)  # fmt: skip
    runs = tmp_path / "runs"
    run_comparison(tiny_config(iterations=2), [0], runs, torch.device("cpu"), oracle, ["mle", "constant"],
                   (1.0,), 64, report_to=["wandb"])  # fmt: skip
    for folder in ("pretrain-s0", "constant-s0"):
        assert list((runs / folder / "wandb").glob("offline-run-*/run-*.wandb")), folder
