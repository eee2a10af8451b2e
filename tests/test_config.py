"""Configs validate themselves and name the bad field."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from seqgan_rl.config import (
    AdversarialConfig,
    DiscriminatorConfig,
    DiscriminatorTrainConfig,
    GeneratorConfig,
    KLReinforceConfig,
    MLEConfig,
    OracleDataConfig,
    PPOConfig,
    PretrainConfig,
    ReinforceConfig,
    TrainConfig,
)
from seqgan_rl.presets import train_preset

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
    (MLEConfig, "eval_every", -1),
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


def test_saved_config_check_accepts_configs_from_before_optional_fields(tmp_path):
    from seqgan_rl.utils import check_saved_config, config_differences

    requested = dataclasses.asdict(train_preset("cpu", seed=3).pretrain)
    old = json.loads(json.dumps(requested))
    del old["generator"]["eos_token"], old["generator"]["pad_token"]  # a run folder written before text support
    del old["generator"]["num_layers"], old["generator"]["dropout"]  # ... and before stacked layers and dropout
    path = tmp_path / "config.json"
    path.write_text(json.dumps(old))
    check_saved_config(path, requested)  # absent optional (None) fields and neutral new ones: equal
    two_layers = json.loads(json.dumps(requested))
    two_layers["generator"]["num_layers"] = 2
    with pytest.raises(ValueError, match=r"generator\.num_layers: \(absent\) -> 2"):
        check_saved_config(path, two_layers)
    check_saved_config(tmp_path / "missing.json", requested)  # no saved config: nothing to check

    old["mle"]["epochs"] = 30
    path.write_text(json.dumps(old))
    with pytest.raises(ValueError, match=r"mle\.epochs: 30 -> 20"):
        check_saved_config(path, requested)
    with_eos = json.loads(json.dumps(requested))
    with_eos["generator"]["eos_token"] = 2
    assert config_differences(old | {"mle": requested["mle"]}, with_eos) == ["generator.eos_token: (absent) -> 2"]


def test_train_config_checks_the_agent_against_the_algorithm():
    with pytest.raises(ValueError, match="algo='ppo' needs a PPOConfig"):
        TrainConfig(algo="ppo")
    with pytest.raises(ValueError, match="choose one of"):
        TrainConfig(algo="trpo")
    ppo = train_preset("cpu", algo="ppo")
    assert isinstance(ppo.agent, PPOConfig) and ppo.agent.num_envs == ReinforceConfig().batch_size
    with pytest.raises(ValueError, match="PPO trains on the discriminator's reward"):
        dataclasses.replace(ppo, adversarial=dataclasses.replace(ppo.adversarial, reward="constant"))
    with pytest.raises(ValueError, match="rollout_update_rate"):
        dataclasses.replace(ppo, adversarial=dataclasses.replace(ppo.adversarial, rollout_update_rate=0.8))
    with pytest.raises(ValueError, match="use algo='reinforce' for text"):
        train_preset("text", algo="ppo", vocab_size=40, seq_len=12, start_token=1, eos_token=2, pad_token=0)


@pytest.mark.parametrize("tau", [0, -1.0, 1e-30, float("inf"), float("nan"), 1e6, True, "1"])
def test_temperatures_are_checked_in_one_place(tau):
    from seqgan_rl.utils import check_temperature

    with pytest.raises(ValueError, match="must be > 0, in"):
        check_temperature(tau)
    with pytest.raises(ValueError, match="ReinforceConfig.temperature"):
        ReinforceConfig(temperature=tau)
    with pytest.raises(ValueError, match="PPOConfig.temperature"):
        PPOConfig(temperature=tau)


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda x: MLEConfig(lr=x), "MLEConfig.lr"),
        (lambda x: KLReinforceConfig(kl_coef=x), "KLReinforceConfig.kl_coef"),
        (lambda x: DiscriminatorTrainConfig(weight_decay=x), "DiscriminatorTrainConfig.weight_decay"),
        (lambda x: AdversarialConfig(constant_reward=x), "AdversarialConfig.constant_reward"),
        (lambda x: PPOConfig(ent_coef=x), "PPOConfig.ent_coef"),
    ],
)
@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_configs_refuse_non_finite_floats(make, field, value):
    """An infinity passes 'must be > 0' and '>= 0' checks and would be saved as Infinity: refused by name."""
    with pytest.raises(ValueError, match=f"{field} must be a finite number"):
        make(value)
