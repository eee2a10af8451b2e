"""Problem size from the command line: a random oracle of any vocabulary and the length-40 benchmark through
``train_agent.py`` and ``compare_algos.py``; the paper's figures only for the paper's benchmark; a
pre-training's data is never reused for another oracle."""

from __future__ import annotations

import json

import torch
from tiny_runs import load_script

TINY = ["--mle-epochs", "1", "--d-pretrain-rounds", "1", "--iterations", "2", "--eval-every", "1",
        "--eval-samples", "64", "--num-rollouts", "2", "--threads", "1"]  # fmt: skip
LONG = ["--oracle", "random:1", "--seq-len", "40", "--vocab-size", "12"]


def test_length_40_random_oracle_through_train_agent(tmp_path, capsys):
    script = load_script("train_agent")
    out = tmp_path / "long"
    assert script.main([*LONG, *TINY, "--preset", "cpu", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "random:1 oracle (V=12, T=40)" in printed and "final (update 2)" in printed
    assert "paper:" not in printed  # the paper's MLE 9.038 / floor 5.75 do not apply to this oracle
    summary = json.loads((out / "summary.json").read_text())
    assert summary["oracle"] == "random:1" and summary["paper_benchmark"] is False
    config = json.loads((out / "config.json").read_text())
    assert config["pretrain"]["generator"]["seq_len"] == 40 and config["pretrain"]["generator"]["vocab_size"] == 12
    data = torch.load(out / "pretrain" / "data.pt")
    assert data["train"].shape[1] == 40 and int(data["train"].max()) < 12
    identity = json.loads((out / "pretrain" / "oracle.json").read_text())
    assert (identity["source"], identity["seq_len"], identity["vocab_size"]) == ("random:1", 40, 12)

    # the same pre-training folder with another oracle of the same size: refused, not silently reused
    other = ["--oracle", "random:2", "--seq-len", "40", "--vocab-size", "12"]
    args = [*other, *TINY, "--preset", "cpu", "--pretrain-dir", str(out / "pretrain"), "--out", str(tmp_path / "x")]
    assert script.main(args) == 2
    assert "holds data drawn from the oracle 'random:1'" in capsys.readouterr().err


def test_paper_oracle_prints_the_paper_references_only_at_its_length(capsys):
    from seqgan_rl.models import OracleLSTM
    from seqgan_rl.training.tasks import OracleTask

    assert OracleTask().references.startswith("paper: MLE 9.038")
    assert OracleTask(OracleLSTM.paper()).references is not None and OracleTask(OracleLSTM.paper()).tag == ""
    long = OracleTask(OracleLSTM.paper(seq_len=40))
    assert long.references is None and long.tag == "paper-V5000-T40"
    assert OracleTask(OracleLSTM.random(12, 40, seed=0)).tag == "random0-V12-T40"


def test_length_40_random_oracle_through_compare_algos(tmp_path, capsys):
    script = load_script("compare_algos")
    runs, res = tmp_path / "runs", tmp_path / "res"
    args = [*LONG, *TINY, "--algos", "mle", "reinforce", "--seeds", "0", "--temperatures", "0.9", "1.0",
            "--sweep-samples", "64", "--out", str(runs), "--results-dir", str(res)]  # fmt: skip
    assert script.main(args) == 0
    printed = capsys.readouterr().out
    assert "reinforce" in printed and "MLE + temperature" in printed
    records = json.loads((runs / "results.json").read_text())
    assert {r["algo"] for r in records} == {"mle", "reinforce"}
    assert (res / "compare_cpu_random1-V12-T40.md").exists()  # the oracle names the outputs
    assert torch.load(runs / "pretrain-s0" / "data.pt")["test"].shape[1] == 40
