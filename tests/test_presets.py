"""The presets hold the documented values, for every dataset's dimensions."""

from __future__ import annotations

import pytest
import torch

from seqgan_rl.config import DiscriminatorConfig, GeneratorConfig, MLEConfig, PretrainConfig, ReinforceConfig
from seqgan_rl.presets import pretrain_preset, resolve_preset, train_preset, with_seed


def test_paper_preset():
    cfg = pretrain_preset("paper", seed=3)
    assert cfg == PretrainConfig(seed=3)
    assert cfg.mle.epochs == 120
    assert cfg.discriminator == DiscriminatorConfig.paper()
    assert cfg.discriminator.total_filters == 1720
    assert (cfg.d_pretrain.rounds, cfg.d_pretrain.epochs, cfg.d_pretrain.lr) == (50, 3, 1e-4)
    assert cfg.d_pretrain.max_steps_per_round is None


def test_cpu_preset():
    cfg = pretrain_preset("cpu", seed=4)
    assert cfg.seed == 4
    assert cfg.generator == GeneratorConfig()
    assert cfg.mle == MLEConfig(epochs=20, eval_every=0)
    assert cfg.discriminator == DiscriminatorConfig.light()
    d = cfg.d_pretrain
    assert (d.rounds, d.epochs, d.lr, d.max_steps_per_round, d.num_negatives) == (10, 1, 1e-3, 200, 6400)
    assert d.rounds * d.max_steps_per_round == 2000  # REFERENCE.md section 9: 2,000 D pre-training steps
    assert d.max_steps_per_round * d.batch_size == 2 * d.num_negatives  # one pass over balanced real + fake


def test_cpu_train_preset_schedule():
    cfg = train_preset("cpu", seed=2)
    assert cfg.agent == ReinforceConfig()  # the paper's generator update, unchanged
    adv = cfg.adversarial
    assert (adv.iterations, adv.num_rollouts, adv.d_every, adv.eval_every, adv.reward) == (50, 16, 1, 5, "mc")
    d = adv.d_train
    # one round of 50 D steps per update at the paper's D learning rate (1e-4; 3e-4 was 0.04 worse over 10 seeds)
    assert (d.rounds, d.epochs, d.lr, d.num_negatives, d.max_steps_per_round) == (1, 1, 1e-4, 1600, 50)
    assert d.max_steps_per_round * d.batch_size == 2 * d.num_negatives


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown preset 'fast'"):
        pretrain_preset("fast")
    with pytest.raises(ValueError, match="unknown preset"):
        pretrain_preset("auto")  # 'auto' must be resolved first


@pytest.mark.parametrize(
    ("name", "device_type", "text", "expected"),
    [
        ("auto", "cuda", False, "paper"), ("auto", "cpu", False, "cpu"), ("paper", "cpu", False, "paper"),
        ("cpu", "cuda", False, "cpu"), ("auto", "cuda", True, "text"), ("text", "cpu", True, "text"),
    ],
)  # fmt: skip
def test_resolve_preset(name, device_type, text, expected):
    assert resolve_preset(name, device_type, text) == expected


def test_resolve_unknown_or_mismatched_preset():
    with pytest.raises(ValueError, match="choose 'auto' or one of"):
        resolve_preset("gpu", "cuda")
    with pytest.raises(ValueError, match="preset 'paper' is for the oracle benchmark"):
        resolve_preset("paper", "cpu", text=True)
    with pytest.raises(ValueError, match="preset 'text' is for real text"):
        resolve_preset("text", "cpu", text=False)


def test_presets_take_the_data_dimensions():
    cfg = train_preset("paper", seed=5, vocab_size=300, seq_len=12)
    assert (cfg.pretrain.generator.vocab_size, cfg.pretrain.generator.seq_len) == (300, 12)
    assert cfg.pretrain.discriminator == DiscriminatorConfig.paper(300, 12)  # widths 15 and 20 dropped
    assert max(cfg.pretrain.discriminator.filter_sizes) == 10
    assert with_seed(cfg, 7).seed == with_seed(cfg, 7).pretrain.seed == 7


def test_text_preset():
    cfg = train_preset("text", seed=1, vocab_size=70, seq_len=38, start_token=1, eos_token=2, pad_token=0)
    g = cfg.pretrain.generator
    assert (g.vocab_size, g.seq_len, g.start_token, g.eos_token, g.pad_token) == (70, 38, 1, 2, 0)
    assert (g.embed_dim, g.hidden_dim) == (32, 32)  # Texygen's SeqGAN generator
    assert cfg.pretrain.discriminator == DiscriminatorConfig.light(70, 38)
    assert (cfg.pretrain.mle.epochs, cfg.pretrain.mle.eval_every, cfg.pretrain.data.num_eval_samples) == (15, 5, 1000)
    adv = cfg.adversarial
    assert (adv.iterations, adv.eval_every, adv.d_train.lr, adv.d_train.max_steps_per_round) == (20, 10, 3e-4, 50)
    assert cfg.agent == ReinforceConfig()
    with pytest.raises(ValueError, match="eos_token and pad_token"):
        pretrain_preset("text", vocab_size=70, seq_len=38)


def test_command_line_options_override_the_preset():
    from seqgan_rl.presets import with_options

    base = train_preset("cpu", seed=1)
    cfg = with_options(base, mle_epochs=3, d_pretrain_rounds=2, eval_samples=64, iterations=7, num_rollouts=4,
                       eval_every=1, reward="constant", baseline="position_mean", reward_mode=None)  # fmt: skip
    assert (cfg.pretrain.mle.epochs, cfg.pretrain.d_pretrain.rounds, cfg.pretrain.data.num_eval_samples) == (3, 2, 64)
    adv = cfg.adversarial
    assert (adv.iterations, adv.num_rollouts, adv.eval_every, adv.reward) == (7, 4, 1, "constant")
    assert cfg.agent.baseline == "position_mean" and cfg.pretrain.mle.lr == base.pretrain.mle.lr
    assert with_options(base) == base  # None means: the preset's value
    with pytest.raises(ValueError, match="unknown options"):
        with_options(base, epochs=3)
    with pytest.raises(ValueError, match="PPOConfig takes none of"):
        with_options(train_preset("cpu", algo="ppo"), baseline="batch_mean")
    with pytest.raises(ValueError, match="iterations"):
        with_options(base, iterations=-1)


def test_strong_preset_is_a_regularised_generator_with_validation():
    from seqgan_rl.presets import STRONG_GENERATOR, STRONG_MLE

    cfg = train_preset("strong", seed=3)
    g, mle = cfg.pretrain.generator, cfg.pretrain.mle
    assert {k: getattr(g, k) for k in STRONG_GENERATOR} == STRONG_GENERATOR and g.num_layers >= 1 and g.dropout > 0
    assert {k: getattr(mle, k) for k in STRONG_MLE} == STRONG_MLE
    assert mle.num_valid > 0 and mle.patience is not None and mle.use_best  # the best validation epoch is kept
    assert (g.vocab_size, g.seq_len) == (5000, 20) and cfg.pretrain.data == pretrain_preset("cpu").data
    # the paper's protocol stays where it was: no validation split, the 32-unit generator
    for name in ("paper", "cpu"):
        p = pretrain_preset(name)
        assert p.generator == GeneratorConfig() and p.mle.num_valid == 0 and p.mle.patience is None
    assert resolve_preset("strong", "cpu") == "strong"
    from seqgan_rl.presets import STRONG_AGENT_LR

    assert (
        cfg.agent == ReinforceConfig(lr=STRONG_AGENT_LR)
        and train_preset("strong", algo="reinforce_kl").agent.lr == 1e-4
    )
    assert train_preset("strong", algo="ppo").agent == train_preset("cpu", algo="ppo").agent  # PPO keeps its own
    assert train_preset("strong").adversarial == train_preset("cpu").adversarial


def test_generator_and_mle_options_override_any_preset():
    from seqgan_rl.presets import with_options

    cfg = with_options(
        train_preset("cpu"), embed_dim=16, hidden_dim=64, num_layers=2, dropout=0.3, mle_lr=2e-3, mle_batch_size=32,
        num_valid=100, patience=3,
    )  # fmt: skip
    g, mle = cfg.pretrain.generator, cfg.pretrain.mle
    assert (g.embed_dim, g.hidden_dim, g.num_layers, g.dropout) == (16, 64, 2, 0.3)
    assert (mle.lr, mle.batch_size, mle.num_valid, mle.patience) == (2e-3, 32, 100, 3)
    with pytest.raises(ValueError, match="patience needs a validation set"):
        with_options(train_preset("cpu"), patience=3)
    assert with_options(train_preset("cpu"), num_valid=100).pretrain.mle.use_best  # the best validation epoch
    assert not with_options(train_preset("cpu"), num_valid=100, use_best=False).pretrain.mle.use_best


def test_mle_last_keeps_the_last_epoch_on_the_command_line():
    import argparse

    from seqgan_rl.presets import add_model_arguments

    p = argparse.ArgumentParser()
    add_model_arguments(p)
    assert p.parse_args([]).use_best is None and p.parse_args(["--mle-last"]).use_best is False


def test_expected_results_are_the_committed_table():
    """``EXPECTED`` (what the main command prints beside a user's numbers) is the committed 10-seed table's mean
    and std."""
    import csv
    import statistics
    from pathlib import Path

    from seqgan_rl.presets import EXPECTED

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "repro_oracle_cpu.csv"
    rows = list(csv.DictReader(path.open()))
    columns = {"mle": "mle_nll_", "best": "seqgan_best_nll_", "final": "seqgan_final_nll_"}
    for key, prefix in columns.items():
        for metric in ("oracle", "test"):
            values = [float(r[prefix + metric]) for r in rows]
            want = (round(statistics.mean(values), 3), round(statistics.stdev(values), 3))
            assert EXPECTED["cpu"][key][f"eval/nll_{metric}"] == want, (key, metric)
    assert f"{len(rows)} seeds" in EXPECTED["cpu"]["source"]


def test_the_main_command_prints_the_expected_spread_for_its_own_config(monkeypatch, capsys):
    from types import SimpleNamespace

    from tiny_runs import load_script

    script = load_script("train_agent")
    m = {"eval/nll_oracle": 8.8, "eval/nll_test": 8.5}
    summary = {"mle": m, "best": {"iteration": 25, **m}, "final": {"iteration": 50, **m}}
    result = SimpleNamespace(summary=summary, evaluator=SimpleNamespace(report=["eval/nll_oracle", "eval/nll_test"]))
    monkeypatch.setattr(script, "run_training", lambda *a, **k: result)
    threads = torch.get_num_threads()
    try:
        assert script.main(["--preset", "cpu", "--threads", "1", "--seed", "7"]) == 0
        assert "expected (mean ± std of benchmarks/results/repro_oracle_cpu.md" in capsys.readouterr().out
        assert script.main(["--preset", "cpu", "--threads", "1", "--iterations", "10"]) == 0  # another run
        assert "expected" not in capsys.readouterr().out
    finally:
        torch.set_num_threads(threads)
