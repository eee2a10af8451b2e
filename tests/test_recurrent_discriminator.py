"""The LSTM discriminator started from G (``AdversarialConfig.d_kind="lstm_from_g"``) and D's warm-up rounds: the
model's interface, rollout scores equal to scoring every completion whole, the config's refusals, a run that uses
both and resumes bit for bit, and the default path unchanged."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from env_helpers import tiny_generator
from tiny_runs import data_rows, stopped_and_resumed, tiny_config, tiny_task

from seqgan_rl.config import AdversarialConfig, TransformerConfig
from seqgan_rl.envs import mc_q_values
from seqgan_rl.models import RecurrentDiscriminator
from seqgan_rl.training.compare import algo_run
from seqgan_rl.training.pipeline import run_training
from seqgan_rl.utils import config_differences, make_rng


def test_from_generator_copies_g_embedding_and_first_lstm_layer():
    g = tiny_generator(num_layers=2)
    d = RecurrentDiscriminator.from_generator(g)
    assert torch.equal(d.embedding.weight, g.embedding.weight)
    assert torch.equal(d.lstm.weight_hh_l0, g.lstm.weight_hh_l0) and torch.equal(d.lstm.bias_ih_l0, g.lstm.bias_ih_l0)
    assert (d.vocab_size, d.seq_len, d.lstm.hidden_size) == (g.vocab_size, g.seq_len, g.config.hidden_dim)
    d.embedding.weight.data.add_(1.0)  # a copy: training D leaves G alone
    assert not torch.equal(d.embedding.weight, g.embedding.weight)
    with pytest.raises(ValueError, match="has no LSTM"):
        RecurrentDiscriminator.from_generator(object())
    with pytest.raises(ValueError, match="dropout"):
        RecurrentDiscriminator(10, 6, dropout=1.0)


def test_scores_are_probabilities_and_training_reduces_the_loss():
    torch.manual_seed(0)
    d = RecurrentDiscriminator(10, 6, embed_dim=8, hidden_dim=8)
    tokens = torch.randint(0, 10, (32, 6), generator=make_rng(1))
    labels = (tokens[:, 0] < 5).long()  # a rule the LSTM can learn
    p = d.prob_real(tokens)
    assert p.shape == (32,) and bool(((p > 0) & (p < 1)).all())
    assert torch.allclose(p, torch.softmax(d.eval()(tokens), dim=1)[:, 1])
    opt = torch.optim.Adam(d.parameters(), lr=0.05)
    first = float(d.loss(tokens, labels).detach())
    for _ in range(30):
        opt.zero_grad()
        d.train()
        d.loss(tokens, labels).backward()
        opt.step()
    assert float(d.eval().loss(tokens, labels).detach()) < first / 2 and float(d.l2_penalty()) == 0.0
    with pytest.raises(ValueError, match="token ids must be in"):
        d.prob_real(torch.full((2, 6), 10))
    with pytest.raises(ValueError, match=r"\(B, 6\)"):
        d(torch.zeros(2, 5, dtype=torch.long))


def test_rollout_scores_equal_scoring_each_completion_whole():
    """``prob_real_rollouts`` reads each prefix once from the sequence; the Q matrix equals D of every completion."""
    g = tiny_generator()
    torch.manual_seed(3)
    d = RecurrentDiscriminator.from_generator(g).eval()
    sequences = g.sample(5, make_rng(2))
    from seqgan_rl.envs.rollout import sample_prefix_completions

    comp = sample_prefix_completions(g, sequences, 4, make_rng(4))  # (T-1, N, B, T)
    d_comp, d_full = d.prob_real_rollouts(sequences, comp, batch_size=7)  # chunks that split the rows
    whole = d.prob_real(comp.reshape(-1, comp.shape[-1])).view(comp.shape[:3])
    torch.testing.assert_close(d_comp, whole, atol=1e-6, rtol=0)
    torch.testing.assert_close(d_full, d.prob_real(sequences), atol=1e-6, rtol=0)
    q = mc_q_values(sequences, g, d, 4, completions=comp)
    torch.testing.assert_close(q[:, -1].float(), d_full, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="completions must be"):
        d.prob_real_rollouts(sequences, comp[1:])


def test_config_refuses_a_d_option_where_no_d_is_retrained():
    assert AdversarialConfig(d_kind="lstm_from_g", d_warmup_rounds=3).d_warmup_rounds == 3
    with pytest.raises(ValueError, match="d_kind='cnn'"):
        AdversarialConfig(d_kind="cnn")
    with pytest.raises(ValueError, match="must be >= 0"):
        AdversarialConfig(d_warmup_rounds=-1)
    for reward, why in (("optimal", "retrains no D"), ("constant", "retrains no D"), ("rankgan", "ranker")):
        with pytest.raises(ValueError, match=why):
            AdversarialConfig(reward=reward, d_kind="lstm_from_g")
    with pytest.raises(ValueError, match="retrains no D"):
        AdversarialConfig(reward="constant", d_warmup_rounds=2)
    config = tiny_config()
    transformer = TransformerConfig(vocab_size=20, seq_len=6, num_layers=1, hidden_dim=8, num_heads=2)
    with pytest.raises(ValueError, match="transformer generator has none"):
        dataclasses.replace(
            config,
            pretrain=dataclasses.replace(config.pretrain, generator=transformer),
            adversarial=dataclasses.replace(config.adversarial, d_kind="lstm_from_g"),
        )


def test_comparison_rows_set_the_d_options():
    cfg = algo_run("coldgan@d_kind=lstm_from_g,d_warmup_rounds=4,d_lr=0.002,lr=0.001", tiny_config())
    adv = cfg.adversarial
    assert (adv.d_kind, adv.d_warmup_rounds, adv.d_train.lr, cfg.agent.lr) == ("lstm_from_g", 4, 0.002, 0.001)
    assert adv.d_train.num_negatives == tiny_config().adversarial.d_train.num_negatives  # the rest of the schedule


def test_old_run_folders_resume_with_the_new_fields_at_their_defaults():
    saved = dataclasses.asdict(tiny_config())
    for key in ("d_kind", "d_warmup_rounds"):
        del saved["adversarial"][key]
    assert config_differences(saved, dataclasses.asdict(tiny_config())) == []
    warm = tiny_config()
    warm = dataclasses.replace(warm, adversarial=dataclasses.replace(warm.adversarial, d_warmup_rounds=2))
    assert config_differences(saved, dataclasses.asdict(warm)) == ["adversarial.d_warmup_rounds: (absent) -> 2"]


def lstm_config(warmup: int = 3):
    config = tiny_config()
    adv = dataclasses.replace(config.adversarial, d_kind="lstm_from_g", d_warmup_rounds=warmup, real_data="oracle")
    return dataclasses.replace(config, adversarial=adv)


def test_warmed_up_lstm_d_run_logs_the_warm_up_and_resumes_bit_for_bit(tmp_path, monkeypatch):
    cpu = torch.device("cpu")
    plain = run_training(tiny_config(), tmp_path / "plain", cpu, tiny_task())
    result = run_training(lstm_config(), tmp_path / "straight", cpu, tiny_task())
    assert isinstance(result.discriminator, RecurrentDiscriminator)
    assert not isinstance(plain.discriminator, RecurrentDiscriminator)
    rows = data_rows(tmp_path / "straight" / "metrics.csv")
    assert "d/loss" in rows[0] and "d/p_real_heldout" in rows[0]  # the warm-up, in the row before the first update
    assert "d/loss" not in data_rows(tmp_path / "plain" / "metrics.csv")[0]
    cold = run_training(lstm_config(warmup=0), tmp_path / "cold", cpu, tiny_task())
    assert cold.summary["final"] != result.summary["final"]  # the warm-up's draws and D move the run
    stopped_and_resumed(lstm_config(), tmp_path / "split", monkeypatch)  # in update 3, after update 2's checkpoint
    assert data_rows(tmp_path / "split" / "metrics.csv") == rows
