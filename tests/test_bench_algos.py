"""``benchmarks/bench_algos.py``: every row's update timed from one pre-training, and its errors."""

from __future__ import annotations

import re

import pytest
from tiny_runs import load_script

SMALL = ["--oracle", "random:0", "--vocab-size", "12", "--seq-len", "6", "--mle-epochs", "1",
         "--d-pretrain-rounds", "1", "--eval-samples", "64", "--updates", "1", "--rounds", "1"]  # fmt: skip


@pytest.fixture(scope="module")
def bench():
    return load_script("bench_algos", "benchmarks")


@pytest.mark.slow
def test_every_row_is_timed_from_one_pretraining(bench, tmp_path, capsys):
    rows = ["reinforce", "constant", "rloo@lr=0.003", "rankgan", "ppo"]
    out = tmp_path / "table.txt"
    pre = tmp_path / "pretrain-s0"
    assert bench.main([*SMALL, "--pretrain", str(pre), "--rows", *rows, "--out", str(out)]) == 0
    assert (pre / "pretrained.pt").exists()  # made on the first call, loaded on later ones
    table = out.read_text()
    lines = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| row")]
    assert len(lines) == len(rows)
    cells = [line.strip("| ").split(" | ") for line in lines]
    assert cells[0][0].startswith("REINFORCE as in the paper") and cells[0][-1] == "1.00"
    assert "[lr 0.003]" in cells[2][0]
    for c in cells:  # the parts add up to the update (up to the rounding of four numbers)
        collect, update, d, total = map(float, c[1:5])
        assert abs(total - (collect + update + d)) <= 0.002, table
    assert float(cells[1][3]) == 0.0, table  # the constant control retrains no D
    assert all(float(cells[i][3]) > 0.0 for i in (0, 2, 3, 4)), table  # the others do
    assert re.search(r"1 thread\(s\), 1 rounds x 1 updates", table)
    capsys.readouterr()
    assert bench.main([*SMALL, "--pretrain", str(pre), "--rows", "reinforce"]) == 0  # reuses the pre-training
    assert "round 1 reinforce" in capsys.readouterr().out


def test_bad_input_exits_2(bench, tmp_path, capsys):
    assert bench.main([*SMALL, "--pretrain", str(tmp_path / "p"), "--rows", "nosuch"]) == 2
    assert "nosuch" in capsys.readouterr().err
    assert bench.main([*SMALL, "--pretrain", str(tmp_path / "p"), "--updates", "0"]) == 2
    assert "--updates" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()  # nothing was started
