"""Transformer generators (``hf`` extra): the KV-cached rollouts against recomputing every prefix, the sampler against
the model's softmax, teacher-forced log-probabilities against a step-by-step pass, the envs, the agents, SB3 PPO,
checkpoints with exact resume, ``save_pretrained`` folders through a run and ``sample.py``."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from test_run_folder import outcome  # noqa: E402  (metrics without timings, final weights)
from tiny_runs import ROOT, WORDS, load_script, tiny_config, tiny_task  # noqa: E402

import seqgan_rl  # noqa: E402,F401  (registers the env)
from seqgan_rl.config import DiscriminatorConfig, TransformerConfig  # noqa: E402
from seqgan_rl.envs.rollout import PrefixStateCache, mc_q_values, prefix_q_values, sample_prefix_completions  # noqa: E402
from seqgan_rl.envs.vector import TokenGenerationVectorEnv  # noqa: E402
from seqgan_rl.models import Discriminator, TransformerGenerator, build_generator  # noqa: E402
from seqgan_rl.training.pipeline import run_training  # noqa: E402
from seqgan_rl.training.run_folder import load_generator  # noqa: E402

CPU = torch.device("cpu")
ARCHS = ("gpt2", "llama")


def tiny(arch: str, vocab: int = 30, seq_len: int = 8, scale: float = 20.0, seed: int = 1) -> TransformerGenerator:
    """A two-layer model of width 16 with weights scaled up (peaked distributions: different draws show)."""
    cfg = TransformerConfig(
        vocab_size=vocab, seq_len=seq_len, architecture=arch, num_layers=2, hidden_dim=16, num_heads=2, dropout=0.0
    )
    g = TransformerGenerator.from_config(cfg)
    g.reset_parameters(torch.Generator().manual_seed(seed))
    with torch.no_grad():
        for p in g.parameters():
            p.mul_(scale)
    return g.eval()


def discriminator(vocab: int = 30, seq_len: int = 8) -> Discriminator:
    torch.manual_seed(0)
    return Discriminator(DiscriminatorConfig(vocab, seq_len, 8, (1, 2, 3), (4, 4, 4), 0.0)).eval()


def rng(seed: int = 7) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("arch", ARCHS)
def test_cached_rollouts_equal_rollouts_that_recompute_every_prefix(arch):
    g, d = tiny(arch), discriminator()
    seqs = g.sample(6, rng(3))
    cached = sample_prefix_completions(g, seqs, 5, rng())
    q_cached = mc_q_values(seqs, g, d, 5, rng())
    g.use_cache = False
    recomputed = sample_prefix_completions(g, seqs, 5, rng())
    q_recomputed = mc_q_values(seqs, g, d, 5, rng())
    assert torch.equal(cached, recomputed)  # the same draws give the same tokens
    torch.testing.assert_close(q_cached, q_recomputed)
    assert len(set(cached[:, :, 0].flatten().tolist())) > 1  # the completions differ: the test has teeth


@pytest.mark.parametrize("arch", ARCHS)
def test_prefixes_of_different_lengths_roll_out_in_one_batch(arch):
    """``prefix_q_values`` from a ``PrefixStateCache`` whose rows have read different numbers of tokens (advanced,
    reset), cached vs recomputed, and each row's next-token logits equal a teacher-forced pass over its prefix."""
    g, d = tiny(arch), discriminator()
    tokens = g.sample(4, rng(4))
    cache = PrefixStateCache()
    lengths = torch.tensor([0, 2, 5, 3])
    state = cache.get(g, tokens, lengths)  # read start, y_1..y_len
    cache.advance(g, torch.tensor([1, 3]), tokens[[1, 3], lengths[[1, 3]]])
    cache.reset_rows(g, torch.tensor([False, False, True, False]))
    state, lengths = cache.state, cache.lengths
    assert lengths.tolist() == [0, 3, 0, 4]
    nxt = tokens[torch.arange(4), lengths]  # y_{len+1}: fed next
    logits, _ = g.step(nxt, state)
    full = g(tokens)  # (B, T, V): position k scores y_{k+1} after start, y_1..y_k
    torch.testing.assert_close(logits, full[torch.arange(4), lengths + 1], rtol=1e-4, atol=1e-4)
    prefix_len = lengths + 1
    q = prefix_q_values(g, d, tokens, prefix_len, state, 4, rng())
    g.use_cache = False
    q_ref = prefix_q_values(g, d, tokens, prefix_len, cache.get(g, tokens, lengths), 4, rng())
    torch.testing.assert_close(q, q_ref)


@pytest.mark.parametrize("arch", ARCHS)
def test_log_probs_of_a_batch_equal_a_step_by_step_pass(arch):
    g = tiny(arch, scale=3.0)
    seqs = g.sample(5, rng(5))
    state, prev, steps = g.initial_state(5), g.start_tokens(5), []
    for k in range(g.seq_len):
        logits, state = g.step(prev, state)
        steps.append(torch.log_softmax(logits, -1).gather(1, seqs[:, k : k + 1]))
        prev = seqs[:, k]
    torch.testing.assert_close(g.log_probs(seqs), torch.cat(steps, 1), rtol=1e-5, atol=1e-5)
    nll = g.nll(seqs)
    assert nll == pytest.approx(float(-g.log_probs(seqs).detach().mean()), rel=1e-5)


@pytest.mark.parametrize("arch", ARCHS)
def test_the_sampler_draws_from_the_models_softmax(arch):
    """Chi-square of 20,000 second tokens after a fixed first token against the model's probabilities."""
    g = tiny(arch, vocab=12, scale=4.0)
    n = 20000
    seqs = g.sample(n, rng(11))
    first = seqs[:, 0]
    top = int(torch.mode(first).values)
    rows = seqs[first == top]
    logits, _ = g.step(torch.full((1,), top), g.advance(g.start_tokens(1), g.initial_state(1)))
    p = torch.softmax(logits[0].double(), -1).numpy()
    counts = np.bincount(rows[:, 1].numpy(), minlength=12)
    keep = p * len(rows) >= 5
    expected = p[keep] * len(rows)
    chi2 = float((((counts[keep] - expected) ** 2) / expected).sum())
    dof = int(keep.sum()) - 1
    assert chi2 < dof + 5 * np.sqrt(2 * dof), (chi2, dof)  # ~5 sigma above the mean of chi2(dof)
    p0 = torch.softmax(g.step(g.start_tokens(1), g.initial_state(1))[0][0].double(), -1).numpy()
    freq0 = np.bincount(first.numpy(), minlength=12) / n
    assert np.abs(freq0 - p0).max() < 0.015


def test_the_env_and_the_vector_env_take_a_transformer():
    g, d = tiny("gpt2"), discriminator()
    env = gym.make("seqgan_rl/TokenGeneration-v0", generator=g, discriminator=d, num_rollouts=3)
    obs, _ = env.reset(seed=0)
    rewards, done = [], False
    while not done:
        obs, r, term, trunc, _ = env.step(env.action_space.sample())
        rewards.append(r)
        done = term or trunc
    assert len(rewards) == g.seq_len and all(0.0 <= r <= 1.0 for r in rewards)
    venv = TokenGenerationVectorEnv(4, generator=g, discriminator=d, num_rollouts=3, reward_mode="q")
    venv.reset(seed=1)
    for _ in range(2 * g.seq_len + 3):  # over two episode ends (autoreset: the cache resets its rows)
        _, r, _, _, _ = venv.step(np.random.default_rng(0).integers(0, 30, 4))
        assert np.all((r >= 0) & (r <= 1))


def test_sb3_ppo_policy_probabilities_are_the_models():
    pytest.importorskip("stable_baselines3")
    from seqgan_rl.agents.sb3_ppo import make_ppo
    from seqgan_rl.config import PPOConfig

    g, d = tiny("gpt2", scale=2.0), discriminator()
    venv = TokenGenerationVectorEnv(
        4, generator=g, discriminator=d, num_rollouts=2, reward_mode="q", autoreset_mode="SameStep"
    )
    model = make_ppo(venv, g, PPOConfig(num_envs=4, reward_mode="q"), seed=0)
    seqs = g.sample(3, rng(2))
    obs = torch.full((3, g.seq_len), venv.pad_token, dtype=torch.float32)
    obs[:, :3] = seqs[:, :3].float()
    dist = model.policy.get_distribution(obs)
    want = torch.softmax(g(seqs)[:, 3], -1)
    torch.testing.assert_close(dist.distribution.probs, want, rtol=1e-5, atol=1e-6)
    model.learn(total_timesteps=4 * g.seq_len)  # one PPO iteration runs on the transformer policy


# ---------------------------------------------------------------------------------------------- runs
def worker(out: Path, point: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "tests")}
    cmd = [sys.executable, str(ROOT / "tests" / "tiny_runs.py"), str(out), point, "--transformer"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.slow
def test_a_killed_transformer_run_resumes_bit_for_bit(tmp_path):
    config = tiny_config(transformer=True)
    procs = {p: worker(tmp_path / p, p) for p in ("mle", "mid_adversarial")}
    run_training(config, tmp_path / "straight", CPU, tiny_task())
    straight = outcome(tmp_path / "straight")
    for point, proc in procs.items():
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == -9, f"{point}: not killed (rc {proc.returncode}): {err.decode()[-800:]}"
        run_training(config, tmp_path / point, CPU, tiny_task(), resume=True)
        assert outcome(tmp_path / point) == straight, point
    g, _ = load_generator(tmp_path / "straight" / "generator_final.pt")
    assert isinstance(g, TransformerGenerator) and g.model.config.n_embd == 8


@pytest.mark.slow
def test_a_save_pretrained_folder_runs_as_the_generator_and_samples(tmp_path, capsys):
    """A ``save_pretrained`` folder as G of a short text run (its vocabulary larger than the text's: the extra ids'
    logits are dropped), then ``sample.py`` from the run's checkpoint."""
    cfg = TransformerConfig(vocab_size=64, seq_len=12, num_layers=1, hidden_dim=16, num_heads=2)
    build_generator(cfg).save_pretrained(str(tmp_path / "hf"))
    (tmp_path / "train.txt").write_text("\n".join(WORDS * 8) + "\n")
    out = tmp_path / "run"
    args = ["--dataset", str(tmp_path / "train.txt"), "--generator-from", str(tmp_path / "hf"), "--mle-epochs", "1",
            "--d-pretrain-rounds", "1", "--iterations", "2", "--eval-every", "1", "--eval-samples", "16",
            "--threads", "1", "--out", str(out)]  # fmt: skip
    assert load_script("train_agent").main(args) == 0
    saved = (out / "config.json").read_text()
    assert '"pretrained": "' in saved and '"kind": "transformer"' in saved
    capsys.readouterr()
    assert load_script("sample").main([str(out / "generator_final.pt"), "-n", "3", "--seed", "1"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(lines) == 3 and all(set(line.split()) <= set(" ".join(WORDS).split()) | {"<unk>"} for line in lines)


def test_without_the_extra_the_cli_names_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "transformers", None)  # import fails as if not installed
    code = load_script("train_agent").main(["--generator", "transformer", "--iterations", "1", "--threads", "1"])
    assert code == 2
    assert 'pip install -e ".[hf]"' in capsys.readouterr().err


@pytest.mark.slow
def test_a_torchrun_transformer_run_resumes_exactly(tmp_path):
    """Data parallel over 2 processes: killed in update 3 and resumed, the same as a straight torchrun run."""
    import test_distributed as dist  # its torchrun helper (a module attribute: pytest collects no test from it here)

    straight, killed = tmp_path / "straight" / "run", tmp_path / "killed" / "run"
    done = dist.torchrun(straight, "none", "--transformer")
    assert done.returncode == 0, done.stderr[-3000:]
    assert dist.torchrun(killed, "mid_adversarial", "--transformer").returncode != 0
    resumed = dist.torchrun(killed, "none", "--resume", "--transformer")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert outcome(killed) == outcome(straight)
    assert json.loads((straight / "summary.json").read_text())["world_size"] == 2


AGENT_ROWS = [("reinforce_kl", "mc"), ("grpo", "mc"), ("coldgan", "mc"), ("reinforce", "maligan"),
              ("reinforce", "rankgan"), ("reinforce", "constant"), ("ppo", "mc")]  # fmt: skip


@pytest.mark.parametrize(("algo", "reward"), AGENT_ROWS)
def test_every_agent_of_the_leaderboard_trains_a_transformer(tmp_path, algo, reward):
    """Each row of the leaderboard runs on a transformer G from one shared pre-training, and changes it."""
    from seqgan_rl.config import AGENT_CONFIGS, SB3_ALGOS

    if algo in SB3_ALGOS:
        pytest.importorskip("stable_baselines3")
    pre_dir = tmp_path / "pre"
    base = tiny_config(iterations=2, mle_epochs=1, reward=reward, transformer=True)
    agent = AGENT_CONFIGS[algo]()
    agent = dataclasses.replace(agent, **({"num_envs": 8} if algo in SB3_ALGOS else {"batch_size": 8}))
    cfg = dataclasses.replace(base, algo=algo, agent=agent)
    result = run_training(cfg, tmp_path / "run", CPU, tiny_task(), pretrain_dir=pre_dir)
    start = torch.load(pre_dir / "pretrained.pt", weights_only=True)["generator"]
    final = result.generator.state_dict()
    assert isinstance(result.generator, TransformerGenerator)
    assert any(not torch.equal(start[k], final[k]) for k in start)


def test_the_speed_benchmark_runs_its_baselines_on_a_tiny_model(monkeypatch):
    bench = load_script("bench_transformer", "benchmarks")
    monkeypatch.setattr(bench, "N", 2)
    g, d = tiny("gpt2", scale=1.0), discriminator()
    seqs = g.sample(3, rng(1))
    spent = bench.where_the_time_goes(g, d, seqs)
    assert spent["total"] >= sum(v for k, v in spent.items() if k not in ("total",) and not k.startswith("the rest"))
    for q in (bench.generate_q_per_prefix(g, d, seqs, 2), bench.generate_q_batched(g, d, seqs, 2)):
        assert q.shape == seqs.shape and bool(((q >= 0) & (q <= 1)).all())
