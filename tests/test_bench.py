"""``benchmarks/bench_pretrain.py`` runs on shortened settings and prints every measurement it promises."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
import torch

from seqgan_rl.config import GeneratorConfig
from seqgan_rl.models import Generator
from seqgan_rl.utils import make_rng

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_pretrain.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_pretrain", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _keep_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_short_run_prints_all_measurements(bench, capsys):
    argv = ["--threads", "1", "--num-train", "128", "--mle-batches", "1", "--d-batches", "1", "--sample-num", "16"]
    assert bench.main([*argv, "--d-presets", "light"]) == 0
    out = capsys.readouterr().out
    assert "torch.get_num_threads() = 1" in out
    assert re.search(r"MLE epoch .* s/epoch +\(EXTRAPOLATED from 1 of 2 batches\)", out)
    assert re.search(r"D epoch +light D \(256 filters\), 128 real \+ 128 generated.*EXTRAPOLATED from 1 of 4", out)
    assert "paper D" not in out
    assert re.search(r"generator sampler +[\d,]+ seq/s", out)
    assert re.search(r"torch.multinomial +[\d,]+ seq/s", out)
    assert re.search(r"ratio +[\d.]+x", out)


def test_full_epoch_is_labelled_as_such(bench):
    assert bench.epoch_label(10, 10) == "full epoch of 10 batches"
    assert bench.epoch_label(3, 10) == "EXTRAPOLATED from 3 of 10 batches"


def test_multinomial_variant_samples_valid_sequences(bench):
    g = Generator(GeneratorConfig(vocab_size=9, seq_len=5, embed_dim=4, hidden_dim=8))
    a = bench.sample_multinomial(g, 70, make_rng(0), batch_size=32)
    assert a.shape == (70, 5) and a.dtype == torch.long
    assert int(a.min()) >= 0 and int(a.max()) < 9
    assert torch.equal(a, bench.sample_multinomial(g, 70, make_rng(0), batch_size=32))


@pytest.mark.parametrize("option", ["--d-batches", "--threads", "--sample-num"])
def test_bad_counts_are_refused(bench, option, capsys):
    with pytest.raises(SystemExit) as exc:
        bench.main([option, "0"])
    assert exc.value.code == 2
    assert f"{option} must be >= 1" in capsys.readouterr().err
