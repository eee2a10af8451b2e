"""``scripts/pretrain.py`` runs in-process on tiny settings and turns bad options into exit code 2."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest
import torch
from tiny_runs import load_script

from seqgan_rl.models import OracleLSTM
from seqgan_rl.training.logger import read_metrics


@pytest.fixture(scope="module")
def pretrain_script() -> ModuleType:
    return load_script("pretrain")


@pytest.fixture
def oracle_file(tmp_path) -> Path:
    path = tmp_path / "oracle.npz"
    OracleLSTM.random(vocab_size=8, seq_len=6, embed_dim=4, hidden_dim=8, seed=0).save_npz(path)
    return path


def tiny_args(oracle_file: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--oracle-file", str(oracle_file), "--device", "cpu", "--threads", "1",
        "--mle-epochs", "1", "--eval-every", "1", "--d-rounds", "1", "--out", str(out), *extra,
    ]  # fmt: skip


def test_pretrain_main_runs_in_process(pretrain_script, oracle_file, tmp_path, capsys):
    out = tmp_path / "run"
    assert pretrain_script.main(tiny_args(oracle_file, out)) == 0
    printed = capsys.readouterr().out
    assert "preset=cpu" in printed and "NLL-oracle" in printed
    assert {"config.json", "metrics.csv", "pretrained.pt", "data.pt"} <= {p.name for p in out.iterdir()}
    rows = read_metrics(out / "metrics.csv")
    assert [(r["phase"], r["epoch"]) for r in rows] == [("mle", "0"), ("mle", "1"), ("d_pretrain", "1")]

    # --resume on the finished run loads it and exits 0
    assert pretrain_script.main(tiny_args(oracle_file, out, "--resume")) == 0


def test_existing_out_dir_without_resume(pretrain_script, oracle_file, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "pretrain_checkpoint.pt").write_bytes(b"a killed run's checkpoint")
    assert pretrain_script.main(tiny_args(oracle_file, out)) == 2
    assert (out / "pretrain_checkpoint.pt").read_bytes() == b"a killed run's checkpoint"  # untouched
    err = capsys.readouterr().err
    assert "error:" in err and "holds no seqgan-rl run (pretrain_checkpoint.pt)" in err  # a foreign file: refused


def test_cuda_without_cuda(pretrain_script, oracle_file, tmp_path, capsys):
    args = tiny_args(oracle_file, tmp_path / "run")
    args[args.index("--device") + 1] = "cuda" if not torch.cuda.is_available() else "nonsense"
    assert pretrain_script.main(args) == 2
    err = capsys.readouterr().err
    assert "error:" in err and ("CUDA is not available" in err or "unknown device" in err)
    assert not (tmp_path / "run").exists()  # nothing written on a bad option


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("--device", "tpu"), "unknown device 'tpu'"),
        (("--d-rounds", "0"), "argument --d-rounds: must be in [1, 2147483647], got 0"),
        (("--oracle-file", "missing.npz"), "not found"),
    ],
)
def test_bad_option_returns_2(pretrain_script, oracle_file, tmp_path, capsys, change, message):
    args = tiny_args(oracle_file, tmp_path / "run")
    option, value = change
    args[args.index(option) + 1] = str(tmp_path / value) if option == "--oracle-file" else value
    assert pretrain_script.main(args) == 2
    assert message in capsys.readouterr().err


def test_unknown_preset_is_one_line_and_exit_code_2(pretrain_script, capsys):
    assert pretrain_script.main(["--preset", "huge"]) == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'huge'" in err and len(err.strip().splitlines()) == 1
