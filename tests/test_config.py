"""Configs validate themselves and name the bad field; presets hold the documented values."""

from __future__ import annotations

import dataclasses
import json

import pytest

from seqgan_rl.config import (
    DiscriminatorConfig,
    DiscriminatorTrainConfig,
    GeneratorConfig,
    MLEConfig,
    OracleDataConfig,
    PretrainConfig,
    ReinforceConfig,
    pretrain_preset,
    resolve_preset,
    train_preset,
)

BAD_FIELDS = [
    (GeneratorConfig, "vocab_size", 0),
    (GeneratorConfig, "seq_len", -1),
    (GeneratorConfig, "embed_dim", 0),
    (GeneratorConfig, "hidden_dim", 0),
    (GeneratorConfig, "init_std", 0.0),
    (GeneratorConfig, "start_token", 5000),
    (GeneratorConfig, "start_token", -1),
    (DiscriminatorConfig, "vocab_size", 0),
    (DiscriminatorConfig, "seq_len", 0),
    (DiscriminatorConfig, "embed_dim", -3),
    (DiscriminatorConfig, "dropout", 1.0),
    (DiscriminatorConfig, "l2_reg", -0.1),
    (DiscriminatorConfig, "num_filters", (100, 200, 200, 200, 200, 100, 100, 100, 100, 100, 160, 0)),
    (MLEConfig, "epochs", 0),
    (MLEConfig, "batch_size", 0),
    (MLEConfig, "lr", 0.0),
    (MLEConfig, "grad_clip", -1.0),
    (MLEConfig, "eval_every", 0),
    (DiscriminatorTrainConfig, "rounds", 0),
    (DiscriminatorTrainConfig, "epochs", 0),
    (DiscriminatorTrainConfig, "batch_size", 0),
    (DiscriminatorTrainConfig, "lr", -1e-4),
    (DiscriminatorTrainConfig, "num_negatives", 0),
    (DiscriminatorTrainConfig, "max_steps_per_round", 0),
    (OracleDataConfig, "num_train", 0),
    (OracleDataConfig, "num_test", 0),
    (OracleDataConfig, "num_eval_samples", 0),
]


@pytest.mark.parametrize(("cls", "name", "value"), BAD_FIELDS, ids=[f"{c.__name__}.{n}" for c, n, _ in BAD_FIELDS])
def test_validation_names_the_field(cls, name, value):
    with pytest.raises(ValueError, match=name):
        cls(**{name: value})


@pytest.mark.parametrize("cls", [GeneratorConfig, MLEConfig, OracleDataConfig, DiscriminatorTrainConfig])
def test_non_numbers_are_rejected(cls):
    name = dataclasses.fields(cls)[0].name
    with pytest.raises(ValueError, match=name):
        cls(**{name: "5"})


def test_width_longer_than_sequence_is_rejected():
    with pytest.raises(ValueError, match="filter_sizes"):
        DiscriminatorConfig(seq_len=10)  # paper widths 15 and 20 do not fit


def test_pretrain_config_rejects_mismatched_models():
    with pytest.raises(ValueError, match="vocabulary size and sequence length"):
        PretrainConfig(generator=GeneratorConfig(vocab_size=100))
    with pytest.raises(ValueError, match="vocabulary size and sequence length"):
        PretrainConfig(
            generator=GeneratorConfig(seq_len=10), discriminator=DiscriminatorConfig.paper(vocab_size=5000, seq_len=12)
        )


def test_configs_are_frozen_and_serialisable():
    cfg = PretrainConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.seed = 1  # type: ignore[misc]
    text = json.dumps(dataclasses.asdict(cfg))
    assert json.loads(text)["discriminator"]["num_filters"] == list(cfg.discriminator.num_filters)


def test_defaults_are_the_reference_values():
    g, m, d = GeneratorConfig(), MLEConfig(), DiscriminatorTrainConfig()
    assert (g.vocab_size, g.seq_len, g.embed_dim, g.hidden_dim, g.start_token, g.init_std) == (5000, 20, 32, 32, 0, 0.1)
    assert (m.epochs, m.batch_size, m.lr, m.grad_clip, m.eval_every) == (120, 64, 0.01, 5.0, 5)
    assert (d.rounds, d.epochs, d.batch_size, d.lr, d.num_negatives) == (50, 3, 64, 1e-4, None)
    data = OracleDataConfig()
    assert (data.num_train, data.num_test, data.num_eval_samples) == (9984, 9984, 9984)


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
    assert cfg.mle == MLEConfig(epochs=20)
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
    ("name", "device_type", "expected"),
    [("auto", "cuda", "paper"), ("auto", "cpu", "cpu"), ("paper", "cpu", "paper"), ("cpu", "cuda", "cpu")],
)
def test_resolve_preset(name, device_type, expected):
    assert resolve_preset(name, device_type) == expected


def test_resolve_unknown_preset():
    with pytest.raises(ValueError, match="choose 'auto' or one of"):
        resolve_preset("gpu", "cuda")


def test_saved_config_check_accepts_configs_from_before_optional_fields(tmp_path):
    from seqgan_rl.config import train_preset
    from seqgan_rl.utils import check_saved_config, config_differences

    requested = dataclasses.asdict(train_preset("cpu", seed=3).pretrain)
    old = json.loads(json.dumps(requested))
    del old["generator"]["eos_token"], old["generator"]["pad_token"]  # a run folder written before text support
    path = tmp_path / "config.json"
    path.write_text(json.dumps(old))
    check_saved_config(path, requested)  # absent optional (None) fields: equal
    check_saved_config(tmp_path / "missing.json", requested)  # no saved config: nothing to check

    old["mle"]["epochs"] = 30
    path.write_text(json.dumps(old))
    with pytest.raises(ValueError, match=r"mle\.epochs: 30 -> 20"):
        check_saved_config(path, requested)
    with_eos = json.loads(json.dumps(requested))
    with_eos["generator"]["eos_token"] = 2
    assert config_differences(old | {"mle": requested["mle"]}, with_eos) == ["generator.eos_token: (absent) -> 2"]
