"""REINFORCE for SeqGAN's generator: collection, advantages and the loss as separate pieces.

The paper's update (the default) is

    loss = - sum_{b,t} log G(y_bt | Y_b,1:t-1) * Q_bt

summed over the batch's B x T tokens, with no baseline, no discount and no normalisation; Q comes from
the environment's reward code (``seqgan_rl.envs.SeqGANReward``, or the vector env step by step). Options: a
baseline (batch mean, per-position mean, the rollout value Q_{t-1}, leave-one-out), reward normalisation, an
entropy bonus, a mean instead of a sum, a temperature. ``KLReinforceAgent`` adds a KL penalty towards the
MLE policy it started from; ``ColdGANAgent`` samples from a colder policy with truncated importance weights;
``GRPOAgent`` is GRPO's group-normalised, clipped, KL-penalised update.
"""

from __future__ import annotations

import copy
from typing import Any, NamedTuple

import numpy as np
import torch

from seqgan_rl import distributed
from seqgan_rl.agents.base import Agent
from seqgan_rl.config import BASELINES, ColdGANConfig, GRPOConfig, KLReinforceConfig, ReinforceConfig
from seqgan_rl.envs.rollout import Reward
from seqgan_rl.envs.vector import TokenGenerationVectorEnv
from seqgan_rl.models.generator import Generator
from seqgan_rl.utils import check_finite, valid_mask


class RolloutBatch(NamedTuple):
    """What one collection returns."""

    sequences: torch.Tensor
    """``(B, T)`` sampled token ids."""
    rewards: torch.Tensor
    """``(B, T)`` per-token returns: SeqGAN's Q_t (or a control's constant)."""
    mask: torch.Tensor
    """``(B, T)`` bool: True for generated positions (False after an end token)."""


def compute_advantages(rewards: torch.Tensor, mask: torch.Tensor, baseline: str = "none", normalize: bool = False):
    """Advantages from per-token returns (pure function).

    Args:
        rewards: ``(B, T)`` Q values.
        mask: ``(B, T)`` valid positions.
        baseline: see ``ReinforceConfig.baseline``.
        normalize: divide by the standard deviation over valid positions.
    """
    m = mask.to(rewards.dtype)
    adv = rewards * m
    if baseline == "batch_mean":
        adv = (rewards - (adv.sum() / m.sum().clamp(min=1))) * m
    elif baseline == "position_mean":
        per_pos = adv.sum(dim=0) / m.sum(dim=0).clamp(min=1)  # (T,)
        adv = (rewards - per_pos) * m
    elif baseline == "rollout_value":  # A_t = Q_t - Q_{t-1}; V(empty prefix) ~ the batch's mean Q_1
        first = adv[:, :1].sum() / m[:, :1].sum().clamp(min=1)
        previous = torch.cat([first.expand(rewards.shape[0], 1), rewards[:, :-1]], dim=1)  # (B, T)
        adv = (rewards - previous) * m
    elif baseline == "rloo":  # the mean of the same position over the other valid sequences
        others = (adv.sum(dim=0) - adv) / (m.sum(dim=0) - m).clamp(min=1)  # (B, T)
        adv = (rewards - others) * m
    elif baseline != "none":
        raise ValueError(f"baseline={baseline!r}: choose one of {BASELINES}")
    if normalize:
        n = m.sum().clamp(min=2)
        mean = adv.sum() / n
        std = (((adv - mean) * m).square().sum() / (n - 1)).sqrt()
        adv = adv / (std + 1e-8)
    return adv


def reinforce_loss(
    log_probs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, entropy: torch.Tensor | None = None,
    entropy_coef: float = 0.0, reduction: str = "sum", count: torch.Tensor | None = None,
) -> torch.Tensor:  # fmt: skip
    """``-sum_{b,t} log pi(y_bt) * A_bt`` (pure function; ``reduction="mean"`` divides by the token count).

    Args:
        log_probs: ``(B, T)`` log-probabilities of the sampled tokens (with gradient).
        advantages: ``(B, T)`` (no gradient).
        mask: ``(B, T)`` valid positions.
        entropy: ``(B, T)`` policy entropy per position, for the bonus.
        entropy_coef: bonus weight.
        reduction: ``"sum"`` or ``"mean"``.
        count: the token count the mean divides by (default: this batch's valid positions; data-parallel:
            the whole batch's, over every rank).
    """
    m = mask.to(log_probs.dtype)
    objective = log_probs * advantages.detach() * m
    if entropy is not None and entropy_coef:
        objective = objective + entropy_coef * entropy * m
    total = -objective.sum()
    if reduction == "sum":
        return total
    return total / (m.sum() if count is None else count).clamp(min=1)


class ReinforceAgent(Agent):
    """Samples batches from the generator, gets their Q from the reward, updates the generator.

    Args:
        generator: the policy (trained in place). With real text (an end token in its config), positions
            after the end token are masked out of the loss.
        reward: scores a batch: ``reward.sequence_q(sequences, rng) -> (B, T)`` (``SeqGANReward``,
            ``ConstantReward``).
        config: the update's hyperparameters.

    Data-parallel under torchrun (``seqgan_rl.distributed``): each rank samples and scores its share of
    ``batch_size``; the advantages are computed over the whole batch (its returns gathered from every rank,
    so baselines and normalisation see all of it), each rank backpropagates its own rows and the gradients
    are summed before clipping: the update is the single-process update of the whole batch.
    """

    metric_fields = ("train/pg_loss", "train/grad_norm", "train/mean_q", "train/sample_nll")

    def __init__(self, generator: Generator, reward: Reward, config: ReinforceConfig | None = None) -> None:
        self.generator, self.reward = generator, reward
        self.config = config or ReinforceConfig()
        self.temperature = self.config.temperature
        self.sequences_per_update = self.config.batch_size
        self.optimizer = torch.optim.Adam(generator.parameters(), lr=self.config.lr, foreach=True)

    @property
    def sampling_temperature(self) -> float:
        """The temperature ``collect`` samples at: the policy's own."""
        return self.config.temperature

    @torch.no_grad()
    def collect(self, rng: torch.Generator | None = None) -> RolloutBatch:
        """Sample ``batch_size`` sequences (at ``sampling_temperature``) and score every token with the reward
        (one draw from ``rng`` after the other: the sequences, then their rollouts)."""
        self.generator.eval()
        seqs = self.generator.sample(
            distributed.local_share(self.config.batch_size), rng, temperature=self.sampling_temperature
        )
        rewards = self.reward.sequence_q(seqs, rng).to(seqs.device, torch.float32)
        if rewards.shape != seqs.shape:
            raise ValueError(f"the reward must return (B, T) = {tuple(seqs.shape)}, got {tuple(rewards.shape)}")
        return RolloutBatch(seqs, rewards, self._mask(seqs))

    @torch.no_grad()
    def collect_from_env(self, env: TokenGenerationVectorEnv, rng: torch.Generator | None = None) -> RolloutBatch:
        """Play one episode in each sub-env of a vector env, acting with the generator; the env's rewards
        (reward mode ``"q"``) are the Q values. Needs ``env.num_envs == batch_size``-style batches."""
        if env.reward_mode != "q":
            raise ValueError(f"REINFORCE consumes per-token Q: use reward_mode='q', not {env.reward_mode!r}")
        g, n, t_len = self.generator, env.num_envs, env.seq_len
        g.eval()
        env.reset(seed=None if rng is None else int(torch.randint(2**31, (1,), generator=rng, device=rng.device)))
        state, prev, bound = g.initial_state(n), g.start_tokens(n), g.logit_bound()
        seqs = torch.zeros(n, t_len, dtype=torch.long, device=g.device)
        rewards = torch.zeros(n, t_len)
        alive = np.ones(n, dtype=bool)
        for t in range(t_len):
            prev, state = g.sample_step(prev, state, rng, self.config.temperature, bound)
            seqs[:, t] = prev
            _, r, term, _, _ = env.step(prev.cpu().numpy())
            rewards[:, t] = torch.as_tensor(np.where(alive, r, 0.0))
            alive &= ~term
            if not alive.any():
                break
        return RolloutBatch(seqs, rewards.to(g.device), self._mask(seqs))

    def update(self, batch: RolloutBatch) -> dict[str, float]:
        """One Adam step on the REINFORCE loss; returns ``train/…`` metrics."""
        c, g = self.config, self.generator
        g.eval()  # the gradient of the policy that sampled: no dropout (GeneratorConfig.dropout is MLE's)
        logits = g(batch.sequences)  # (B, T, V)
        if c.temperature != 1.0:
            logits = logits / c.temperature
        logp_all = torch.log_softmax(logits, dim=-1)
        log_probs = logp_all.gather(-1, batch.sequences.unsqueeze(-1)).squeeze(-1)  # (B, T)
        entropy = -(logp_all.exp() * logp_all).sum(-1) if c.entropy_coef else None
        returns, extra = self.returns(batch, log_probs.detach())
        count = None
        if distributed.enabled():  # the advantages of the whole batch; this rank's rows of them
            all_mask, mine = distributed.gather_with_slice(batch.mask)
            adv = compute_advantages(distributed.gather_rows(returns), all_mask, c.baseline, c.normalize)
            adv, count = adv[mine], all_mask.sum()
        else:
            adv = compute_advantages(returns, batch.mask, c.baseline, c.normalize)
        loss = reinforce_loss(log_probs, adv, batch.mask, entropy, c.entropy_coef, c.reduction, count)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        loss = distributed.sum_gradients(g.parameters(), loss.detach().reshape(1)).squeeze(0)
        check_finite("the REINFORCE loss", loss)
        grad_norm = torch.nn.utils.clip_grad_norm_(g.parameters(), c.grad_clip)
        check_finite("the policy gradient's norm", grad_norm)
        self.optimizer.step()
        m = batch.mask
        return {
            "train/pg_loss": float(loss.detach()),
            "train/grad_norm": float(grad_norm),
            "train/mean_q": distributed.mean((batch.rewards * m).sum(), m.sum()),
            "train/sample_nll": distributed.mean(-(log_probs.detach() * m).sum(), m.sum()),
            **extra,
        }

    def returns(self, batch: RolloutBatch, log_probs: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """The per-token returns the advantages are computed from, and extra metrics: SeqGAN's Q as it is."""
        return batch.rewards, {}

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.load_state_dict(state["generator"])
        self.optimizer.load_state_dict(state["optimizer"])

    def _mask(self, seqs: torch.Tensor) -> torch.Tensor:
        """Positions up to and including each row's first end token (all of them without one)."""
        return valid_mask(seqs, self.generator.config.eos_token)


class KLReinforceAgent(ReinforceAgent):
    """REINFORCE with a KL penalty towards the reference policy pi_MLE (a frozen copy of the generator as it was
    given, i.e. the MLE checkpoint): the return of token t is

        Q_t - beta * sum_{s >= t} (log pi(y_s | y_<s) - log pi_MLE(y_s | y_<s)),

    the per-token KL reward of TRL's PPO (Ziegler et al. 2019) summed into SeqGAN's per-token returns. It keeps
    the policy near the MLE model, the usual guard against mode collapse. The reference scores at temperature 1.
    """

    metric_fields = (*ReinforceAgent.metric_fields, "train/kl")

    def __init__(self, generator: Generator, reward: Reward, config: KLReinforceConfig | None = None) -> None:
        super().__init__(generator, reward, config or KLReinforceConfig())
        self.reference = copy.deepcopy(generator).eval().requires_grad_(False)

    def returns(self, batch: RolloutBatch, log_probs: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        with torch.no_grad():
            ref = self.reference.log_probs(batch.sequences)  # (B, T)
        m = batch.mask.to(log_probs.dtype)
        log_ratio = (log_probs - ref) * m  # (B, T), per token
        to_go = log_ratio.flip(1).cumsum(1).flip(1)  # sum over s >= t
        kl = distributed.mean(log_ratio.sum(), m.sum())
        return batch.rewards - self.config.kl_coef * to_go, {"train/kl": kl}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "reference": self.reference.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.reference.load_state_dict(state["reference"])


class ColdGANAgent(ReinforceAgent):
    """REINFORCE from a colder behaviour policy (ColdGAN, Scialom et al. 2020): ``collect`` samples at
    ``cold_temperature``; the return of token t is

        w_t Q_t,    w_t = min(pi(y_t | y_<t) / pi_cold(y_t | y_<t), c),

    with pi the policy at its ``temperature`` (what the rollouts, D's negatives and the evaluation use) and c =
    ``weight_clip``: the truncated importance weight that corrects the cold samples towards pi's gradient.
    Cold samples are more often good ones, so D's reward is less noisy; the weights keep the update pi's.
    """

    metric_fields = (*ReinforceAgent.metric_fields, "train/weight_mean", "train/weight_clipped")

    def __init__(self, generator: Generator, reward: Reward, config: ColdGANConfig | None = None) -> None:
        super().__init__(generator, reward, config or ColdGANConfig())

    @property
    def sampling_temperature(self) -> float:
        """``collect`` samples from the cold policy."""
        return self.config.cold_temperature

    def collect_from_env(self, env: TokenGenerationVectorEnv, rng: torch.Generator | None = None) -> RolloutBatch:
        raise ValueError("ColdGANAgent samples from its cold policy: use collect(), not the vector env")

    def returns(self, batch: RolloutBatch, log_probs: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        with torch.no_grad():
            cold = self.generator.log_probs(batch.sequences, self.config.cold_temperature)  # (B, T)
        raw = (log_probs - cold).exp()
        weights = raw.clamp(max=self.config.weight_clip)
        m = batch.mask
        extra = {
            "train/weight_mean": distributed.mean((weights * m).sum(), m.sum()),
            "train/weight_clipped": distributed.mean(((raw > self.config.weight_clip) & m).sum(), m.sum()),
        }
        return batch.rewards * weights, extra


def group_advantages(rewards: torch.Tensor, mask: torch.Tensor, group_size: int) -> torch.Tensor:
    """GRPO's advantages for per-token returns (pure function): consecutive rows form groups of ``group_size``;
    each Q_bt becomes ``(Q_bt - mean) / (std + 1e-8)`` with the mean and (unbiased) standard deviation of the
    group's valid returns at position t; invalid positions are 0.

    Args:
        rewards: ``(B, T)`` Q values, B a multiple of ``group_size``.
        mask: ``(B, T)`` valid positions.
    """
    b, t = rewards.shape
    if b % group_size:
        raise ValueError(f"a batch of {b} sequences does not split into groups of {group_size}")
    m = mask.to(rewards.dtype).view(-1, group_size, t)  # (groups, G, T)
    q = rewards.view(-1, group_size, t) * m
    n = m.sum(dim=1, keepdim=True)  # (groups, 1, T)
    mean = q.sum(dim=1, keepdim=True) / n.clamp(min=1)
    var = ((q - mean) * m).square().sum(dim=1, keepdim=True) / (n - 1).clamp(min=1)
    return ((q - mean) / (var.sqrt() + 1e-8) * m).view(b, t)


def grpo_loss(
    log_probs: torch.Tensor, old_log_probs: torch.Tensor, ref_log_probs: torch.Tensor, advantages: torch.Tensor,
    mask: torch.Tensor, clip_eps: float, kl_coef: float, count: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """GRPO's loss (pure function), a mean over the valid tokens:

        - mean_{b,t} [ min(r A, clip(r, 1 - eps, 1 + eps) A) - beta * (exp(q) - q - 1) ],
        r = exp(log pi - log pi_old),  q = log pi_ref - log pi   (the k3 estimate of KL(pi || pi_ref), >= 0)

    Args:
        log_probs, old_log_probs, ref_log_probs: ``(B, T)`` log-probabilities of the sampled tokens under the
            policy (with gradient), the sampling policy and the reference.
        advantages: ``(B, T)``.
        mask: ``(B, T)`` valid positions.
        count: the token count the mean divides by (default: this batch's; data-parallel: the whole batch's).

    Returns:
        ``(loss, sum of the KL estimate, number of clipped tokens)`` over this batch's valid tokens.
    """
    m = mask.to(log_probs.dtype)
    ratio = (log_probs - old_log_probs.detach()).exp()
    adv = advantages.detach()
    surrogate = torch.minimum(ratio * adv, ratio.clamp(1 - clip_eps, 1 + clip_eps) * adv)
    q = ref_log_probs.detach() - log_probs
    kl = q.exp() - q - 1
    loss = -((surrogate - kl_coef * kl) * m).sum() / (m.sum() if count is None else count).clamp(min=1)
    clipped = ((ratio - 1).abs() > clip_eps).to(m.dtype) * m
    return loss, (kl.detach() * m).sum(), clipped.sum()


class GRPOAgent(ReinforceAgent):
    """GRPO-style policy optimisation on SeqGAN's Q (``GRPOConfig``): the batch is sampled and scored as
    REINFORCE's (``collect``); each token's Q is normalised within its group of ``group_size`` sequences at
    the same position (``group_advantages``); then ``epochs`` Adam steps on ``grpo_loss``, the ratio taken to
    the policy that sampled the batch and the KL to pi_MLE, a frozen copy of the generator as it was given.
    Source: Shao et al. 2024 (DeepSeekMath), with SeqGAN's per-token Q in place of one reward per sequence.
    Data-parallel as ``ReinforceAgent``: the advantages over the whole batch, gradients summed each step."""

    metric_fields = (*ReinforceAgent.metric_fields, "train/kl", "train/clip_frac")

    def __init__(self, generator: Generator, reward: Reward, config: GRPOConfig | None = None) -> None:
        super().__init__(generator, reward, config or GRPOConfig())  # batch size, temperature, Adam at lr
        self.reference = copy.deepcopy(generator).eval().requires_grad_(False)

    def update(self, batch: RolloutBatch) -> dict[str, float]:
        """``epochs`` Adam steps on the clipped, KL-penalised loss of one batch; metrics of the last step."""
        c, g = self.config, self.generator
        g.eval()  # the policy that sampled, without dropout (as in ``ReinforceAgent.update``)
        with torch.no_grad():
            old = g.log_probs(batch.sequences, c.temperature)  # (B, T): the policy that sampled the batch
            ref = self.reference.log_probs(batch.sequences)
        all_mask, mine = distributed.gather_with_slice(batch.mask)
        adv = group_advantages(distributed.gather_rows(batch.rewards), all_mask, c.group_size)[mine]
        count = all_mask.sum()
        for _ in range(c.epochs):
            log_probs = g.log_probs(batch.sequences, c.temperature)
            loss, kl, clipped = grpo_loss(log_probs, old, ref, adv, batch.mask, c.clip_eps, c.kl_coef, count)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            stats = distributed.sum_gradients(g.parameters(), torch.stack([loss.detach(), kl, clipped]))
            check_finite("the GRPO loss", stats[0])
            grad_norm = torch.nn.utils.clip_grad_norm_(g.parameters(), c.grad_clip)
            check_finite("the policy gradient's norm", grad_norm)
            self.optimizer.step()
        m, n = batch.mask, count.clamp(min=1)
        return {
            "train/pg_loss": float(stats[0]),
            "train/grad_norm": float(grad_norm),
            "train/mean_q": distributed.mean((batch.rewards * m).sum(), m.sum()),
            "train/sample_nll": distributed.mean(-(old * m).sum(), m.sum()),
            "train/kl": float(stats[1] / n),
            "train/clip_frac": float(stats[2] / n),
        }

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "reference": self.reference.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.reference.load_state_dict(state["reference"])
