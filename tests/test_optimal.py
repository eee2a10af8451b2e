"""The Bayes-optimal discriminator D* (a diagnostic with oracle access): 1/2 when G is the oracle, the closed form
on every enumerated sequence, and SeqGAN's Q of D* through rollouts equal to the exact conditional expectation."""

from __future__ import annotations

import itertools

import pytest
import torch

from seqgan_rl.config import GeneratorConfig
from seqgan_rl.envs import mc_q_values
from seqgan_rl.models import Generator
from seqgan_rl.models.optimal import OptimalDiscriminator
from seqgan_rl.models.oracle import OracleLSTM

V, T = 3, 3


@pytest.fixture(scope="module")
def oracle():
    return OracleLSTM.random(vocab_size=V, seq_len=T, embed_dim=4, hidden_dim=4, seed=5)


@pytest.fixture(scope="module")
def generator():
    torch.manual_seed(1)
    return Generator(GeneratorConfig(vocab_size=V, seq_len=T, embed_dim=4, hidden_dim=4, init_std=1.0)).eval()


def every_sequence() -> torch.Tensor:
    return torch.tensor(list(itertools.product(range(V), repeat=T)))


def probabilities(model, tokens) -> torch.Tensor:
    return model.log_probs(tokens).double().sum(dim=1).exp()


def test_d_star_is_one_half_when_g_is_the_oracle(oracle):
    d = OptimalDiscriminator(oracle, oracle)
    assert torch.equal(d.prob_real(every_sequence()), torch.full((V**T,), 0.5))


def test_d_star_is_the_closed_form_on_every_sequence(oracle, generator):
    tokens = every_sequence()
    p_o, p_g = probabilities(oracle, tokens), probabilities(generator, tokens)
    assert torch.isclose(p_o.sum(), torch.tensor(1.0, dtype=torch.float64)) and torch.isclose(p_g.sum(), p_o.sum())
    d = OptimalDiscriminator(oracle, generator)
    assert torch.allclose(d.prob_real(tokens).double(), p_o / (p_o + p_g), atol=1e-6)
    hot = OptimalDiscriminator(oracle, generator, temperature=2.0)  # p_G is what G samples: at its temperature
    p_hot = generator.log_probs(tokens, 2.0).double().sum(dim=1).exp()
    assert torch.allclose(hot.prob_real(tokens).double(), p_o / (p_o + p_hot), atol=1e-6)


def test_q_of_d_star_through_rollouts_is_the_exact_expectation(oracle, generator):
    tokens = every_sequence()
    d = OptimalDiscriminator(oracle, generator)
    p_g, d_all = probabilities(generator, tokens), d.prob_real(tokens).double()
    sequences = tokens[[5, 13, 22]]
    rng = torch.Generator().manual_seed(0)
    q = mc_q_values(sequences, generator, d, num_rollouts=40_000, rng=rng).double()
    for b, y in enumerate(sequences):
        for t in range(1, T + 1):
            same = (tokens[:, :t] == y[:t]).all(dim=1)
            exact = (p_g[same] * d_all[same]).sum() / p_g[same].sum()  # E over G's completions of y_1..t
            assert abs(float(q[b, t - 1] - exact)) < 0.01, (b, t)


def test_log_d_star_is_the_log_of_d_star_and_its_q_the_exact_expectation(oracle, generator):
    tokens = every_sequence()
    d, log_d = OptimalDiscriminator(oracle, generator), OptimalDiscriminator(oracle, generator, log=True)
    torch.testing.assert_close(log_d.prob_real(tokens).double(), d.prob_real(tokens).double().log(), atol=1e-5, rtol=0)
    p_g, log_all = probabilities(generator, tokens), log_d.prob_real(tokens).double()
    sequences = tokens[[5, 13]]
    q = mc_q_values(sequences, generator, log_d, num_rollouts=40_000, rng=torch.Generator().manual_seed(0)).double()
    for b, y in enumerate(sequences):
        for t in range(1, T + 1):
            same = (tokens[:, :t] == y[:t]).all(dim=1)
            exact = (p_g[same] * log_all[same]).sum() / p_g[same].sum()  # E[log D*(Y) | y_1..t]
            assert abs(float(q[b, t - 1] - exact)) < 0.02, (b, t)


@pytest.mark.parametrize(("log", "kind"), [(False, "lstm"), (True, "lstm"), (True, "transformer")])
def test_rollout_scoring_from_the_sequences_prefixes_equals_scoring_each_completion_whole(log, kind):
    """prob_real_rollouts takes the shared prefix's terms from the sequences and scores only the completed positions
    (in pieces smaller than a row): the values of prob_real on every completion, at G's temperature too; a
    transformer G is scored whole with its own log_probs."""
    from seqgan_rl.envs.rollout import sample_prefix_completions

    oracle = OracleLSTM.random(vocab_size=11, seq_len=7, embed_dim=4, hidden_dim=5, seed=2)
    torch.manual_seed(3)
    if kind == "lstm":
        g = Generator(GeneratorConfig(vocab_size=11, seq_len=7, embed_dim=4, hidden_dim=6, num_layers=2, init_std=0.5))
    else:
        from seqgan_rl.config import TransformerConfig
        from seqgan_rl.models.transformer import TransformerGenerator

        pytest.importorskip("transformers")
        cfg = TransformerConfig(vocab_size=11, seq_len=7, num_layers=1, hidden_dim=8, num_heads=2, dropout=0.0)
        g = TransformerGenerator.from_config(cfg).eval()
    rng = torch.Generator().manual_seed(4)
    sequences = g.sample(5, rng)
    completions = sample_prefix_completions(g, sequences, 3, rng)  # (T-1, N, B, T)
    d = OptimalDiscriminator(oracle, g, temperature=1.3, batch_size=4, log=log)
    d_comp, d_seq = d.prob_real_rollouts(sequences, completions)
    whole = d.prob_real(completions.reshape(-1, 7)).view(completions.shape[:3])
    torch.testing.assert_close(d_comp, whole, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(d_seq, d.prob_real(sequences), atol=0, rtol=0)
    with pytest.raises(ValueError, match="starting with sequences"):
        d.prob_real_rollouts(sequences.flip(0), completions)  # completions of other sequences
    ratio = oracle.log_probs(sequences).double().sum(1) - g.log_probs(sequences, 1.3).double().sum(1)
    torch.testing.assert_close(d.log_ratio(sequences), ratio, atol=1e-5, rtol=0)


def test_refusals(oracle):
    other = Generator(GeneratorConfig(vocab_size=V + 1, seq_len=T, embed_dim=4, hidden_dim=4))
    with pytest.raises(ValueError, match="on the same sequences"):
        OptimalDiscriminator(oracle, other)
    text = Generator(GeneratorConfig(vocab_size=V, seq_len=T, embed_dim=4, hidden_dim=4, eos_token=2, pad_token=0))
    with pytest.raises(ValueError, match="no end token"):
        OptimalDiscriminator(oracle, text)


def test_reward_optimal_trains_without_d_and_is_refused_on_text(tmp_path, capsys):
    from tiny_runs import GOLDEN_TINY, WORDS, data_rows, load_script

    npz = tmp_path / "oracle.npz"
    OracleLSTM.random(vocab_size=20, seq_len=6, embed_dim=8, hidden_dim=8, seed=3).save_npz(npz)
    script = load_script("train_agent")
    argv = ["--preset", "cpu", "--oracle-file", str(npz), "--eval-samples", "64", "--num-rollouts", "4", *GOLDEN_TINY]
    assert script.main([*argv, "--reward", "optimal", "--out", str(tmp_path / "run")]) == 0
    rows = data_rows(tmp_path / "run" / "metrics.csv")
    assert len(rows) == 4 and not any(k.startswith("d/") for r in rows for k in r)  # D is neither used nor trained
    assert all(0.0 < float(r["train/mean_q"]) < 1.0 for r in rows[1:])
    assert script.main([*argv, "--reward", "optimal_log", "--out", str(tmp_path / "log")]) == 0
    rows = data_rows(tmp_path / "log" / "metrics.csv")
    assert not any(k.startswith("d/") for r in rows for k in r) and all(float(r["train/mean_q"]) < 0 for r in rows[1:])
    (tmp_path / "train.txt").write_text("\n".join(WORDS * 8) + "\n")
    text = ["--dataset", str(tmp_path / "train.txt"), "--reward", "optimal", "--out", str(tmp_path / "text")]
    assert script.main(text) == 2
    assert "oracle access" in capsys.readouterr().err and not (tmp_path / "text").exists()
    assert script.main([*text[:2], "--reward", "optimal_log", "--out", str(tmp_path / "text")]) == 2
    assert "--reward optimal_log" in capsys.readouterr().err and not (tmp_path / "text").exists()


# ----------------------------------------------------------------------------- the oracle-fed discriminator
def test_oracle_fed_real_data_never_returns_a_training_or_test_sequence(oracle):
    """V 3, T 3: 27 sequences, so the oracle's draws hit the excluded ones often; none is ever returned."""
    from seqgan_rl.data.oracle_data import OracleFedReal

    rng = torch.Generator().manual_seed(9)
    train, test = oracle.sample(6, rng), oracle.sample(4, rng)
    excluded = {tuple(r.tolist()) for r in torch.cat([train, test])}
    fresh = OracleFedReal(oracle, [train, test], seed=1)
    draws = torch.cat([fresh.sample(500) for _ in range(4)])
    assert draws.shape == (2000, T) and not {tuple(r.tolist()) for r in draws} & excluded
    assert fresh.drawn == 2000 and len({tuple(r.tolist()) for r in draws}) > 1
    pooled = OracleFedReal(oracle, [train, test], pool_size=50, seed=1)
    a, b = pooled.sample(20), pooled.sample(20)
    pool = {tuple(r.tolist()) for r in pooled.pool}
    assert {tuple(r.tolist()) for r in torch.cat([a, b])} <= pool and not pool & excluded and not torch.equal(a, b)
    assert pooled.sample(80).shape == (50, T) and pooled.drawn == 50  # all of a smaller pool; drawn once
    again = OracleFedReal(oracle, [train, test], pool_size=50, seed=1)
    assert torch.equal(again.pool, pooled.pool)  # the seed's own stream
    state = pooled.state_dict()
    nxt = pooled.sample(10)
    again.load_state_dict(state)
    assert torch.equal(again.sample(10), nxt)


def test_oracle_fed_d_runs_and_the_default_is_unchanged(tmp_path, capsys):
    from tiny_runs import GOLDEN_TINY, data_rows, load_script

    npz = tmp_path / "oracle.npz"
    OracleLSTM.random(vocab_size=20, seq_len=6, embed_dim=8, hidden_dim=8, seed=3).save_npz(npz)
    script = load_script("train_agent")
    argv = ["--preset", "cpu", "--oracle-file", str(npz), "--eval-samples", "64", "--num-rollouts", "2", *GOLDEN_TINY]
    assert script.main([*argv, "--out", str(tmp_path / "train")]) == 0
    assert script.main([*argv, "--real-data", "train", "--out", str(tmp_path / "explicit")]) == 0
    assert data_rows(tmp_path / "explicit" / "metrics.csv") == data_rows(tmp_path / "train" / "metrics.csv")
    assert script.main([*argv, "--real-data", "oracle", "--real-pool", "300", "--out", str(tmp_path / "fed")]) == 0
    fed = data_rows(tmp_path / "fed" / "metrics.csv")
    assert fed != data_rows(tmp_path / "train" / "metrics.csv") and all("d/loss" in r for r in fed[1:])
    assert script.main([*argv, "--real-pool", "300", "--out", str(tmp_path / "bad")]) == 2
    assert "add --real-data oracle" in capsys.readouterr().err


def test_oracle_fed_run_stopped_mid_phase_resumes_bit_for_bit(tmp_path, monkeypatch):
    import dataclasses

    from tiny_runs import data_rows, stopped_and_resumed, tiny_config, tiny_task

    from seqgan_rl.training.pipeline import run_training

    config = tiny_config()
    adv = dataclasses.replace(config.adversarial, real_data="oracle")  # fresh draws every round
    config = dataclasses.replace(config, adversarial=adv)
    cpu = torch.device("cpu")
    run_training(config, tmp_path / "straight", cpu, tiny_task())
    stopped_and_resumed(config, tmp_path / "split", monkeypatch)  # in update 3, after the checkpoint of update 2
    assert data_rows(tmp_path / "split" / "metrics.csv") == data_rows(tmp_path / "straight" / "metrics.csv")
