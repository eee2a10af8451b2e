"""The checks that matter, on every device: the CPU always, CUDA where the machine has one (the CUDA cases
skip elsewhere and say so). ``benchmarks/gpu_check.py`` runs this file on a GPU machine; on a CUDA device
each check also compares with the same computation on the CPU where the two must agree."""

from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import pytest
import tiny_runs
import torch
from env_helpers import T, V, tiny_discriminator, tiny_generator
from gymnasium.utils.env_checker import check_env
from test_sampling import P_MIN, N, chi_square_p

import seqgan_rl  # noqa: F401  (registers the environment)
from seqgan_rl.agents import ReinforceAgent
from seqgan_rl.agents.reinforce import reinforce_loss
from seqgan_rl.config import DiscriminatorConfig, ReinforceConfig
from seqgan_rl.envs import ENV_ID, SeqGANReward, TokenGenerationVectorEnv, mc_q_values, sample_prefix_completions
from seqgan_rl.models import Discriminator, sample_categorical
from seqgan_rl.training.pipeline import run_training
from seqgan_rl.training.pretrain import discriminator_step
from seqgan_rl.utils import make_rng


class FirstTokenD:
    """Q_t = D(Y) for every t whatever the rollouts sample: exact rewards to compare, on ``device``."""

    def __init__(self, device: torch.device) -> None:
        self.vocab_size, self.seq_len, self.device = V, T, device

    def prob_real(self, tokens: torch.Tensor) -> torch.Tensor:
        assert tokens.device.type == self.device.type, f"D got tokens on {tokens.device}, lives on {self.device}"
        return (tokens[:, 0].double() + 1.0) / (V + 1.0)


def test_sampler_draws_follow_softmax(device):
    logits = torch.randn(13, generator=make_rng(0)) * 2.0
    samples = sample_categorical(logits.to(device).expand(N, 13), make_rng(1, device))
    assert samples.device.type == device.type and chi_square_p(samples.cpu(), logits) > P_MIN


def test_rollouts_continue_from_the_cached_prefix_state(device):
    gen = tiny_generator(vocab_size=5, seq_len=5).to(device)
    seq = gen.sample(1, make_rng(0, device))
    t, n = 2, 20000
    comp = sample_prefix_completions(gen, seq, n, make_rng(1, device))[t - 1, :, 0]  # (N, T)
    with torch.no_grad():
        p_next = torch.softmax(gen(seq)[0, t], dim=-1).cpu()
    freq = torch.bincount(comp[:, t].cpu(), minlength=5).double() / n
    assert torch.allclose(freq, p_next.double(), atol=4 * (0.25 / n) ** 0.5)


def test_whole_sequence_q_and_the_vector_envs_q(device):
    """The whole-sequence Q of given completions equals the CPU's; the env's Q with an exact D is exact."""
    g, d = tiny_generator().to(device), tiny_discriminator().to(device)
    seqs = g.sample(4, make_rng(0, device))
    comp = sample_prefix_completions(g, seqs, 3, make_rng(1, device))
    assert comp.device.type == device.type
    q = mc_q_values(seqs, g, d, 3, completions=comp)  # (B, T)
    torch.testing.assert_close(q[:, -1].double(), d.prob_real(seqs).double(), rtol=0, atol=1e-6)  # Q_T = D(Y)
    cpu_q = mc_q_values(seqs.cpu(), copy.deepcopy(g).cpu(), copy.deepcopy(d).cpu(), 3, completions=comp.cpu())
    torch.testing.assert_close(q.cpu().double(), cpu_q.double(), rtol=1e-4, atol=1e-5)
    exact = FirstTokenD(device)
    want = exact.prob_real(seqs)[:, None].expand(-1, T)
    env = TokenGenerationVectorEnv(4, generator=g, discriminator=exact, num_rollouts=3, device=device)
    env.reset(seed=0)
    rewards = np.stack([env.step(seqs[:, i].cpu().numpy())[1] for i in range(T)], axis=1)
    np.testing.assert_allclose(rewards, want.cpu().numpy(), atol=1e-6)


def test_env_and_vector_env_on_the_device(device):
    g, d = tiny_generator().to(device), tiny_discriminator().to(device)
    env = gym.make(ENV_ID, generator=g, discriminator=d, reward_mode="q", num_rollouts=2)
    check_env(env.unwrapped, skip_render_check=True)
    env.reset(seed=0)
    assert 0 < env.step(1)[1] < 1  # the wrapper's MC Q, rollouts on the device
    venv = gym.make_vec(ENV_ID, num_envs=3, generator=g, discriminator=d, num_rollouts=2)
    assert venv.unwrapped.device.type == device.type
    obs, _ = venv.reset(seed=0)
    for _ in range(T):
        obs, r, *_ = venv.step(np.array([1, 2, 3]))
        assert isinstance(obs, np.ndarray) and isinstance(r, np.ndarray) and ((r > 0) & (r < 1)).all()


def test_reinforce_update(device):
    g, d = tiny_generator().to(device), tiny_discriminator().to(device)
    agent = ReinforceAgent(g, SeqGANReward(g, d, num_rollouts=2), ReinforceConfig(batch_size=8))
    before = copy.deepcopy(g.state_dict())
    batch = agent.collect(make_rng(0, device))
    assert batch.sequences.device.type == device.type == batch.rewards.device.type
    metrics = agent.update(batch)
    assert all(np.isfinite(v) for v in metrics.values())
    assert any(not torch.equal(before[k], v) for k, v in g.state_dict().items())
    # the same loss gradient as on the CPU for the same sequences and Q
    cpu_g = tiny_generator()
    cpu_g.load_state_dict({k: v.cpu() for k, v in before.items()})
    grads = []
    for model, dev in ((copy.deepcopy(cpu_g).to(device), device), (cpu_g, torch.device("cpu"))):
        seqs, q = batch.sequences.to(dev), batch.rewards.to(dev)
        loss = reinforce_loss(model.log_probs(seqs), q, torch.ones_like(q, dtype=torch.bool))
        loss.backward()
        grads.append(torch.cat([p.grad.flatten().cpu() for p in model.parameters()]))
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-5)


def test_discriminator_step_matches_the_cpu(device):
    cfg = DiscriminatorConfig(
        vocab_size=V, seq_len=T, embed_dim=8, filter_sizes=(2, 3), num_filters=(4, 4), dropout=0.0
    )
    cpu_d = Discriminator(cfg)
    cpu_d.reset_parameters(make_rng(0))
    dev_d = copy.deepcopy(cpu_d).to(device)
    tokens = torch.randint(0, V, (16, T), generator=make_rng(1))
    labels = torch.arange(16) % 2
    for d in (cpu_d, dev_d):
        optim = torch.optim.Adam(d.parameters(), lr=1e-3)
        for _ in range(3):
            discriminator_step(d, optim, tokens.to(d.device), labels.to(d.device))
    for (k, a), b in zip(cpu_d.state_dict().items(), dev_d.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b.cpu(), rtol=1e-4, atol=1e-5, msg=k)
    d_prob = dev_d.prob_real(tokens.to(device))
    torch.testing.assert_close(d_prob.cpu(), cpu_d.prob_real(tokens), rtol=1e-4, atol=1e-5)


def test_ppo_policy_probabilities_are_the_generators(device):
    sb3_ppo = pytest.importorskip("seqgan_rl.agents.sb3_ppo")
    g = tiny_generator().to(device)
    venv = TokenGenerationVectorEnv(4, generator=g, discriminator=tiny_discriminator().to(device), num_rollouts=2,
                                    autoreset_mode="SameStep", device=device)  # fmt: skip
    model = sb3_ppo.make_ppo(venv, g, sb3_ppo.PPOConfig(num_envs=4, batch_size=8, n_epochs=1), seed=0, device=device)
    seqs = g.sample(5, make_rng(0, device))
    with torch.no_grad():
        want = torch.softmax(g(seqs), dim=-1)  # (5, T, V)
        for t in range(T):
            obs = seqs.clone()
            obs[:, t:] = V
            got = model.policy.get_distribution(obs.float()).distribution.probs
            torch.testing.assert_close(got, want[:, t], rtol=0, atol=1e-6)
    model.learn(4 * T)  # one rollout and one update on the device


def test_tiny_run_and_its_resume(device, tmp_path, monkeypatch):
    task, cfg = tiny_runs.tiny_task(), tiny_runs.tiny_config(iterations=3, mle_epochs=1, every=1)
    straight = run_training(cfg, tmp_path / "a", device, task)
    assert straight.generator.device.type == device.type and straight.summary["iterations"] == 3
    with monkeypatch.context() as mp:
        tiny_runs.interrupt_update(mp, ReinforceAgent, call=3)
        with pytest.raises(KeyboardInterrupt):
            run_training(cfg, tmp_path / "b", device, task)
    resumed = run_training(cfg, tmp_path / "b", device, task, resume=True)
    for x, y in zip(straight.generator.state_dict().values(), resumed.generator.state_dict().values(), strict=True):
        assert torch.equal(x, y)
