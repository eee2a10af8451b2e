"""SeqGAN's Monte-Carlo Q estimate, batched: the one home of the reward.

    Q(Y_{1:t-1}, y_t) = mean_n D(Y^n_{1:T}),  Y^n ~ MC^{G_beta}(Y_{1:t}; N)   for t < T
    Q(Y_{1:T-1}, y_T) = D(Y_{1:T})

Every rollout continues from the cached LSTM state of its prefix (no prefix is recomputed), all
rollouts of all rows and positions advance together as one batch, and D(Y) is evaluated once per
sequence. Rows are ordered by the number of tokens they still need, so the rows still sampling at each
step form one contiguous slice: no row is computed for nothing.

Two entry points share ``rollout_completions``: ``mc_q_values`` scores every prefix of whole sequences at
once (what the REINFORCE agent uses, through ``SeqGANReward``), and ``prefix_q_values`` scores the current
prefixes of episodes in progress from a ``PrefixStateCache`` (what the environment and the vector
environment use at every step).
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from seqgan_rl.models.discriminator import Discriminator
from seqgan_rl.models.generator import Generator, State
from seqgan_rl.utils import check_finite, check_temperature, check_token_batch, worker_threads


@torch.no_grad()
def rollout_completions(
    policy: Generator,
    tokens: torch.Tensor,
    prefix_len: torch.Tensor,
    state: State,
    rng: torch.Generator | None = None,
    temperature: float = 1.0,
    eos_token: int | None = None,
    pad_token: int | None = None,
) -> torch.Tensor:
    """Complete each row's prefix to the full length by sampling from ``policy``.

    Args:
        tokens: ``(R, T)``; row r's first ``prefix_len[r]`` tokens are its prefix (the rest is ignored).
        prefix_len: ``(R,)`` prefix lengths in ``1..T``.
        state: ``(h, c)``, each ``(R, H)``: the policy's state after reading the start token and the
            first ``prefix_len - 1`` tokens (``state_t`` of ``Generator``); the last prefix token is fed next.
        rng: generator on the policy's device.
        temperature: the policy's sampling temperature.
        eos_token: if set, a row that has sampled it (or whose prefix holds it) gets ``pad_token`` afterwards
            and is no longer computed (``Generator.sample_until_end``).
        pad_token: filler after an end token (required with ``eos_token``).

    Returns:
        ``(R, T)`` completed sequences.
    """
    r, t_len = tokens.shape
    if eos_token is not None and pad_token is None:
        raise ValueError("pad_token is required when eos_token is set")
    complete = getattr(policy, "complete", None)  # a generator that batches its own rollouts (a transformer's cache)
    if complete is not None:
        return complete(tokens, prefix_len, state, rng, temperature, eos_token, pad_token)
    out = tokens.clone()
    if r == 0:
        return out
    if eos_token is not None:
        in_prefix = torch.arange(t_len, device=tokens.device) < prefix_len.unsqueeze(1)  # (R, T)
        out[~in_prefix] = pad_token
        going = ~((tokens == eos_token) & in_prefix).any(dim=1) & (prefix_len < t_len)
        rows = going.nonzero().squeeze(1)
        return policy.sample_until_end(
            out, rows, prefix_len[rows].clone(), tokens[rows, prefix_len[rows] - 1], (state[0][rows], state[1][rows]),
            rng, temperature, eos_token,
        )  # fmt: skip
    remaining = t_len - prefix_len
    order = torch.argsort(remaining, descending=True, stable=True)  # longest rollouts first
    rem_sorted = remaining[order]
    pos = prefix_len[order].clone()  # next position to fill, per sorted row
    prev = tokens[order, prefix_len[order] - 1]
    h, c = state[0][order], state[1][order]
    bound = policy.logit_bound()
    steps = int(rem_sorted[0])
    # rows with remaining > k, for each step k: a prefix of the sorted order
    active_counts = (rem_sorted.unsqueeze(0) > torch.arange(steps, device=rem_sorted.device).unsqueeze(1)).sum(1)
    with worker_threads():  # the chunks of every step side by side (Generator.sample_step)
        for a in active_counts.tolist():  # one host read, not one per step
            # the rows beyond `a` have finished and are never read again
            tok, (h, c) = policy.sample_step(prev[:a], (h[:a], c[:a]), rng, temperature, bound)
            prev = tok
            out[order[:a], pos[:a]] = tok
            pos[:a] += 1
    return out


@torch.no_grad()
def sample_prefix_completions(
    policy: Generator,
    sequences: torch.Tensor,
    num_rollouts: int,
    rng: torch.Generator | None = None,
    temperature: float = 1.0,
) -> torch.Tensor:
    """N completions of every proper prefix of every sequence: ``(T-1, N, B, T)``.

    ``out[t-1, n, b]`` equals ``sequences[b]`` on its first ``t`` tokens; the rest is sampled from
    ``policy`` continuing from the cached state of that prefix.
    """
    check_token_batch(sequences, policy.vocab_size, name="sequences")
    if num_rollouts < 1:
        raise ValueError(f"num_rollouts must be >= 1, got {num_rollouts}")
    b, t_len = sequences.shape
    n = num_rollouts
    states = policy.prefix_states(sequences)  # index t-1 holds state_t
    # The first rollout step after a prefix is the same computation for its N rollouts: do it once per
    # (prefix, sequence) pair and draw N tokens from that one distribution.
    pairs_t = torch.arange(1, t_len, device=sequences.device).repeat_interleave(b)  # (P,) prefix lengths
    pairs_b = torch.arange(b, device=sequences.device).repeat(t_len - 1)  # (P,) P = (T-1) * B
    logits, state1 = policy.step(
        sequences[pairs_b, pairs_t - 1], policy.prefix_state_rows(states, pairs_b, pairs_t - 1)
    )
    first = policy.sample_next(logits, rng, temperature, policy.logit_bound(), num_samples=n)  # (P, N)
    del logits
    # rows ordered (t, n, b): the t-th block of N*B rows continues the prefixes of length t
    row_pair = (
        (
            torch.arange(t_len - 1, device=sequences.device).view(-1, 1, 1) * b
            + torch.arange(b, device=sequences.device).view(1, 1, -1)
        )
        .expand(t_len - 1, n, b)
        .reshape(-1)
    )
    row_n = torch.arange(n, device=sequences.device).view(1, -1, 1).expand(t_len - 1, n, b).reshape(-1)
    tokens = sequences[pairs_b[row_pair]].clone()  # (R, T)
    lens = pairs_t[row_pair] + 1  # the prefix now includes the first sampled token
    tokens[torch.arange(tokens.shape[0], device=tokens.device), lens - 1] = first[row_pair, row_n]
    eos, pad = policy.config.eos_token, policy.config.pad_token  # real text: a finished row is not sampled on
    comp = rollout_completions(policy, tokens, lens, policy.state_rows(state1, row_pair), rng, temperature, eos, pad)
    # real text: whatever follows an end token (in the prefix or sampled) becomes padding, so D sees padded
    # sequences and the completion of an already finished prefix is the finished sequence itself
    comp = policy.pad_after_eos(comp)
    return comp.view(t_len - 1, n, b, t_len)


@torch.no_grad()
def mc_q_values(
    sequences: torch.Tensor,
    policy: Generator,
    discriminator: Discriminator,
    num_rollouts: int = 16,
    rng: torch.Generator | None = None,
    temperature: float = 1.0,
    completions: torch.Tensor | None = None,
) -> torch.Tensor:
    """SeqGAN's Q matrix for a batch of sampled sequences, in one batched computation.

    Args:
        sequences: ``(B, T)`` sampled sequences.
        policy: the rollout policy (SeqGAN: the current generator).
        discriminator: D; ``D(Y)`` is P(real).
        num_rollouts: N.
        rng: generator on the policy's device (same seed, same Q).
        temperature: the rollout policy's sampling temperature.
        completions: ``(T-1, N, B, T)`` completions to use instead of sampling them (tests, analysis).

    Returns:
        ``(B, T)``: ``Q[b, t-1]`` = mean over N rollouts of D(completion of Y_{1:t}) for t < T, and
        ``Q[b, T-1]`` = D(Y).
    """
    if (policy.vocab_size, discriminator.vocab_size) != (discriminator.vocab_size, policy.vocab_size) or (
        discriminator.seq_len != sequences.shape[1]
    ):
        raise ValueError(
            f"policy (V={policy.vocab_size}), discriminator (V={discriminator.vocab_size}, "
            f"T={discriminator.seq_len}) and sequences (T={sequences.shape[1]}) must agree"
        )
    if completions is None:
        completions = sample_prefix_completions(policy, sequences, num_rollouts, rng, temperature)
    d_comp, d_full = discriminator.prob_real_rollouts(sequences, completions)  # (T-1, N, B), (B,)
    return torch.cat([d_comp.mean(dim=1).T, d_full.unsqueeze(1)], dim=1)  # (B, T)


@torch.no_grad()
def prefix_q_values(
    policy: Generator,
    discriminator: Any,
    tokens: torch.Tensor,
    prefix_len: torch.Tensor,
    state: State,
    num_rollouts: int,
    rng: torch.Generator | None = None,
    temperature: float = 1.0,
    eos_token: int | None = None,
    pad_token: int | None = None,
) -> torch.Tensor:
    """Q of each row's prefix: the mean of D over ``num_rollouts`` completions sampled from ``policy``.

    Args:
        tokens: ``(R, T)``; row r's first ``prefix_len[r]`` tokens are its prefix Y_{1:t}.
        prefix_len: ``(R,)`` prefix lengths t in ``1..T-1``.
        state: ``(h, c)``, each ``(R, H)``: the policy's state having read the start token and y_1..y_{t-1}
            (a ``PrefixStateCache``'s); y_t is fed next.
        rng, temperature, eos_token, pad_token: as for ``rollout_completions``.

    Returns:
        ``(R,)`` float64 on ``tokens.device``.
    """
    r, n = tokens.shape[0], num_rollouts
    rep = torch.arange(r, device=tokens.device).repeat(n)  # rows ordered (n, r)
    comp = rollout_completions(
        policy, tokens[rep], prefix_len[rep], policy.state_rows(state, rep), rng, temperature, eos_token, pad_token
    )
    scores = discriminator.prob_real(comp.to(model_device(discriminator)))  # (N * R,)
    check_finite("the discriminator's scores of the rollouts", scores)
    return scores.to(tokens.device, torch.float64).view(n, r).mean(dim=0)


class PrefixStateCache:
    """The rollout policy's prefix state (the LSTM's ``(h, c)``, a transformer's KV cache) after each row's prefix:
    where every rollout from it starts.

    Row r's state has read the start token and the first ``lengths[r]`` tokens of the row. It is advanced
    one token per step (``advance``), reset per row (``reset_rows``), and rebuilt from the tokens in one
    batched pass only when the policy's weights have changed or the lengths asked for are not the ones it
    holds.
    """

    def __init__(self) -> None:
        self.state: State | None = None
        self.lengths: torch.Tensor | None = None
        self._key: tuple[int, int] | None = None

    def clear(self) -> None:
        self.state, self.lengths, self._key = None, None, None

    @torch.no_grad()
    def get(self, policy: Generator, tokens: torch.Tensor, lengths: torch.Tensor) -> State:
        """The states after ``lengths`` tokens of each row of ``tokens`` ``(R, T)``; ``(h, c)`` each ``(R, H)``."""
        key = (id(policy), param_version(policy))
        if self.state is None or self._key != key or not torch.equal(self.lengths, lengths):
            t = tokens.clone()
            beyond = torch.arange(t.shape[1], device=t.device) >= lengths.unsqueeze(1)
            t[beyond] = 0  # not read by the states asked for: any id will do
            states = policy.prefix_states(torch.cat([t, t[:, -1:]], dim=1))  # index k: read start, y_1..y_k
            ar = torch.arange(t.shape[0], device=t.device)
            self.state, self.lengths, self._key = policy.prefix_state_rows(states, ar, lengths), lengths.clone(), key
        return self.state

    @torch.no_grad()
    def advance(self, policy: Generator, rows: torch.Tensor, tokens: torch.Tensor) -> None:
        """Feed ``tokens`` ``(len(rows),)`` to the states of ``rows``."""
        advanced = policy.advance(tokens, policy.state_rows(self.state, rows))
        self.state = policy.set_state_rows(self.state, rows, advanced)
        self.lengths[rows] += 1
        self._key = (id(policy), param_version(policy))

    @torch.no_grad()
    def reset_rows(self, policy: Generator, mask: torch.Tensor) -> None:
        """Rows in ``mask`` start a new sequence: their state is the one after the start token."""
        if self.state is None or not bool(mask.any()):
            return
        n = int(mask.sum())
        started = policy.advance(policy.start_tokens(n), policy.initial_state(n))
        self.state = policy.set_state_rows(self.state, mask, started)
        self.lengths[mask] = 0


def param_version(module: torch.nn.Module) -> int:
    """Changes whenever a parameter is modified in place (optimizer steps, load_state_dict)."""
    return sum(p._version for p in module.parameters())


def model_device(model: Any) -> torch.device:
    """Where a model takes its inputs: its ``device`` attribute, else its first parameter's, else the CPU."""
    device = getattr(model, "device", None)
    if device is not None:
        return torch.device(device)
    params = getattr(model, "parameters", None)
    first = next(iter(params()), None) if callable(params) else None
    return first.device if first is not None else torch.device("cpu")


# ---------------------------------------------------------------------------------------------- rewards
class Reward:
    """What an agent's collection asks of a reward: per-token returns for a batch of whole sequences.

    ``sequence_q(sequences, rng) -> (B, T)``; ``after_update()`` runs after every generator update (the EMA
    rollout policy moves then); ``state_dict`` / ``load_state_dict`` hold what a checkpoint needs.
    """

    discriminator: Any = None
    num_rollouts: int = 0
    temperature: float = 1.0

    def sequence_q(self, sequences: torch.Tensor, rng: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def set_generator(self, generator: Generator) -> None:
        """The policy whose samples are scored changed (an agent that wraps the generator, e.g. PPO)."""

    def after_update(self) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class SeqGANReward(Reward):
    """SeqGAN's reward: the Monte-Carlo Q of every token of a batch of sequences (``mc_q_values``).

    Args:
        generator: the policy being trained; the rollout policy is this generator (what the reference code
            does), or, with ``rollout_update_rate``, an EMA copy of it (a deviation, for study).
        discriminator: D, trained in place by the discriminator callback.
        num_rollouts: N.
        temperature: the rollout policy's sampling temperature (the agent's).
        rollout_update_rate: ``None`` or r in [0, 1) for the EMA copy ``beta <- r beta + (1 - r) theta``.
    """

    def __init__(
        self,
        generator: Generator,
        discriminator: Any,
        num_rollouts: int = 16,
        temperature: float = 1.0,
        rollout_update_rate: float | None = None,
    ) -> None:
        if num_rollouts < 1:
            raise ValueError(f"num_rollouts must be >= 1, got {num_rollouts}")
        self.generator, self.discriminator = generator, discriminator
        self.num_rollouts, self.temperature = int(num_rollouts), check_temperature(temperature)
        self.ema = EMARolloutPolicy(generator, rollout_update_rate) if rollout_update_rate is not None else None

    @property
    def policy(self) -> Generator:
        """The rollout policy."""
        return self.ema.policy if self.ema is not None else self.generator

    def set_generator(self, generator: Generator) -> None:
        self.generator = generator

    def sequence_q(self, sequences: torch.Tensor, rng: torch.Generator | None = None) -> torch.Tensor:
        q = mc_q_values(sequences, self.policy, self.discriminator, self.num_rollouts, rng, self.temperature)
        check_finite("the Q values (the discriminator's scores of the rollouts)", q)
        return q

    def after_update(self) -> None:
        if self.ema is not None:
            self.ema.update(self.generator)

    def state_dict(self) -> dict[str, Any]:
        return {
            "discriminator": self.discriminator.state_dict(),
            "ema": self.ema.policy.state_dict() if self.ema is not None else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.discriminator.load_state_dict(state["discriminator"])
        if self.ema is not None and state["ema"] is not None:
            self.ema.policy.load_state_dict(state["ema"])


class ConstantReward(Reward):
    """A control: every token gets ``value`` (no discriminator, no rollouts): what self-sharpening alone does."""

    def __init__(self, value: float = 1.0) -> None:
        self.value = float(value)

    def sequence_q(self, sequences: torch.Tensor, rng: torch.Generator | None = None) -> torch.Tensor:
        return torch.full(sequences.shape, self.value, device=sequences.device)


class MaliGANReward(Reward):
    """MaliGAN's sequence-level reward (Che et al. 2017): every token of sequence i of a batch of B gets

        r_i = w_i / sum_j w_j - 1/B,

    with w_i = D(y_i) / (1 - D(y_i)) (``variant="odds"``: the paper's derivation, TextGAN-PyTorch's
    ``get_mali_reward``) or w_i = D(y_i) (``variant="d"``: Texygen's port). With an optimal D the odds are
    p_data / p_G, so sum_i r_i grad log G(y_i) estimates the gradient of the data's log-likelihood; the -1/B is
    the baseline. No rollouts: one D pass per sequence. The weights sum to 1 and the rewards to 0 over the
    batch. D's probabilities are kept below 1 - 2**-24 (float32 rounds D to 1 beyond a logit gap of ~17)."""

    VARIANTS = ("odds", "d")

    def __init__(self, discriminator: Any, variant: str = "odds") -> None:
        if variant not in self.VARIANTS:
            raise ValueError(f"MaliGAN variant {variant!r}: choose one of {self.VARIANTS}")
        self.discriminator, self.variant = discriminator, variant

    def weights(self, sequences: torch.Tensor) -> torch.Tensor:
        """The normalised weights w_i / sum_j w_j, ``(B,)`` float64 (they sum to 1)."""
        d = self.discriminator.prob_real(sequences.to(model_device(self.discriminator))).double()
        check_finite("the discriminator's scores", d)
        w = d / (1.0 - d.clamp(max=1.0 - 2.0**-24)) if self.variant == "odds" else d
        return w / w.sum()

    def sequence_q(self, sequences: torch.Tensor, rng: torch.Generator | None = None) -> torch.Tensor:
        b, t = sequences.shape
        r = (self.weights(sequences) - 1.0 / b).to(sequences.device, torch.float32)
        return r.unsqueeze(1).expand(b, t).contiguous()

    def state_dict(self) -> dict[str, Any]:
        return {"discriminator": self.discriminator.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.discriminator.load_state_dict(state["discriminator"])


class EMARolloutPolicy:
    """A delayed copy of the generator for rollouts: ``beta <- r * beta + (1 - r) * theta``.

    **A deviation from the published behaviour**: the reference code's ``update_rate = 0.8`` rollout
    network reads the live generator weights, so its rollout policy is always the current G. Use this
    only to study a genuinely delayed rollout policy.
    """

    def __init__(self, generator: Generator, update_rate: float = 0.8) -> None:
        if not 0.0 <= update_rate < 1.0:
            raise ValueError(f"update_rate must be in [0, 1), got {update_rate}")
        self.update_rate = update_rate
        self.policy = copy.deepcopy(generator).requires_grad_(False)

    @torch.no_grad()
    def update(self, generator: Generator) -> None:
        for beta, theta in zip(self.policy.parameters(), generator.parameters(), strict=True):
            beta.mul_(self.update_rate).add_(theta.detach(), alpha=1.0 - self.update_rate)
