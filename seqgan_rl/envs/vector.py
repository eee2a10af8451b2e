"""A natively batched vector version of ``TokenGenerationEnv`` whose state lives in torch tensors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from gymnasium.error import ResetNeeded
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from seqgan_rl.envs.rollout import PrefixStateCache, model_device, prefix_q_values
from seqgan_rl.envs.token_generation import (
    NO_DISCRIMINATOR,
    TokenGenerationEnv,
    check_reward_settings,
    render_text,
    sequence_image,
)
from seqgan_rl.models.generator import Generator, State
from seqgan_rl.utils import check_finite


class TokenGenerationVectorEnv(VectorEnv):
    """``num_envs`` token-generation episodes stepped as one batch, with SeqGAN's reward modes.

    Observations, actions and rewards follow :class:`TokenGenerationEnv` (see it for the spaces) and
    the reward modes of :class:`MCRolloutReward` (``"q"``, ``"terminal"``, ``"shaped"``). Tokens,
    lengths and the generator's LSTM state of every prefix are torch tensors on ``device``. At each
    step the Monte-Carlo estimate runs all N rollouts of all sub-environments as one batch, each
    continuing from the cached state of its prefix (no prefix is recomputed; the cache is rebuilt only
    when the generator's weights change).

    Autoreset follows one of Gymnasium 1.x's modes, chosen at construction (``autoreset_mode``, also in
    ``metadata["autoreset_mode"]``), exactly as ``SyncVectorEnv`` does it:

    - ``NEXT_STEP`` (default): the step after a sub-environment terminates resets it, ignores its action and
      returns its first observation with reward 0.
    - ``SAME_STEP``: a terminating step resets the sub-environment at once and returns its first observation;
      the last one is in ``infos["final_obs"]`` and that step's infos in ``infos["final_info"]`` (masks
      ``infos["_final_obs"]``, ``infos["_final_info"]``). What SB3 and TorchRL's ``GymWrapper`` expect.
    - ``DISABLED``: no autoreset; reset finished sub-environments with
      ``reset(options={"reset_mask": mask})`` (stepping one first raises ``ResetNeeded``). TorchRL's
      preferred mode.

    ``infos["q"]`` (with mask ``infos["_q"]``) holds Q_t for the sub-environments that moved.

    Args:
        num_envs: number of sub-environments.
        generator, discriminator, vocab_size, seq_len, eos_token, pad_token, vocab, render_mode: as for
            :class:`TokenGenerationEnv`.
        reward_mode: ``"q"`` (default), ``"terminal"`` or ``"shaped"``.
        num_rollouts: N, rollouts per Q estimate.
        temperature: the rollout policy's sampling temperature.
        device: where the state lives (default: the generator's device, else CPU).
        autoreset_mode: an ``AutoresetMode`` or its value (``"NextStep"``, ``"SameStep"``, ``"Disabled"``).
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": ["ansi", "rgb_array"]}

    def __init__(
        self,
        num_envs: int = 1,
        vocab_size: int | None = None,
        seq_len: int | None = None,
        generator: Generator | None = None,
        discriminator: Any | None = None,
        reward_mode: str = "q",
        num_rollouts: int = 16,
        temperature: float = 1.0,
        eos_token: int | None = None,
        pad_token: int | None = None,
        vocab: Sequence[str] | None = None,
        render_mode: str | None = None,
        device: str | torch.device | None = None,
        autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        try:
            self.autoreset_mode = AutoresetMode(autoreset_mode)
        except ValueError:
            modes = [m.value for m in AutoresetMode]
            raise ValueError(f"autoreset_mode={autoreset_mode!r}: choose one of {modes}") from None
        self.metadata = {**self.metadata, "autoreset_mode": self.autoreset_mode}
        check_reward_settings(reward_mode, num_rollouts, temperature)
        # one single env holds the validated settings, spaces and model checks
        self.template = TokenGenerationEnv(
            vocab_size, seq_len, generator, discriminator, eos_token, pad_token, vocab, render_mode
        )
        t = self.template
        self.num_envs = int(num_envs)
        self.vocab_size, self.seq_len = t.vocab_size, t.seq_len
        self.eos_token, self.pad_token = t.eos_token, t.pad_token
        self.render_mode = render_mode
        self.reward_mode, self.num_rollouts, self.temperature = reward_mode, int(num_rollouts), float(temperature)
        self.single_action_space = t.action_space
        self.single_observation_space = t.observation_space
        self.action_space = batch_space(t.action_space, self.num_envs)
        self.observation_space = batch_space(t.observation_space, self.num_envs)
        if device is None:
            device = generator.device if generator is not None else model_device(discriminator)
        self.device = torch.device(device)

        n = self.num_envs
        self._tokens = torch.full((n, self.seq_len), self.pad_token, dtype=torch.long, device=self.device)
        self._lengths = torch.zeros(n, dtype=torch.long, device=self.device)
        self._needs_reset = torch.zeros(n, dtype=torch.bool, device=self.device)
        self._prev_q = torch.zeros(n, dtype=torch.float64, device=self.device)
        self._cache = PrefixStateCache()
        self._rng = torch.Generator(device=self.device)
        self._started = False

    # ------------------------------------------------------------------ models
    @property
    def generator(self) -> Generator | None:
        return self.template.generator

    @property
    def discriminator(self) -> Any | None:
        return self.template.discriminator

    def set_generator(self, generator: Generator | None) -> None:
        self.template.set_generator(generator)
        self._cache.clear()

    def set_discriminator(self, discriminator: Any | None) -> None:
        self.template.set_discriminator(discriminator)

    # ------------------------------------------------------------------ gymnasium API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        mask = None if options is None else options.get("reset_mask")
        if mask is None:
            mask = torch.ones(self.num_envs, dtype=torch.bool, device=self.device)
        else:
            mask = torch.as_tensor(np.asarray(mask, dtype=bool), device=self.device)
            if mask.shape != (self.num_envs,):
                raise ValueError(f"options['reset_mask'] must have shape ({self.num_envs},), got {tuple(mask.shape)}")
        if seed is not None or not self._started:
            self._rng.manual_seed(int(self.np_random.integers(2**62)))
        self._reset_rows(mask)
        self._started = True
        return _own(self._tokens), {}

    def step(self, actions):
        if not self._started:
            raise ResetNeeded("step() called before reset(): call reset() first")
        acts = self._check_actions(actions)  # (n,) on device
        if self.discriminator is None:  # before any change: set D and step again
            raise RuntimeError(NO_DISCRIMINATOR)
        resetting = self._needs_reset.clone()  # all False unless NEXT_STEP / DISABLED left rows finished
        if self.autoreset_mode == AutoresetMode.DISABLED and bool(resetting.any()):
            rows = resetting.nonzero().squeeze(1).tolist()
            raise ResetNeeded(
                f"sub-envs {rows} have ended: with autoreset_mode DISABLED call "
                "reset(options={'reset_mask': mask}) for them before the next step"
            )
        self._reset_rows(resetting)
        if self.reward_mode != "terminal":
            self._prefix_states()  # rollouts start from the state before this step's tokens
        moving = ~resetting
        rows = moving.nonzero().squeeze(1)
        self._tokens[rows, self._lengths[rows]] = acts[rows]
        self._lengths[rows] += 1
        terminated = moving & (self._lengths == self.seq_len)
        if self.eos_token is not None:
            terminated |= moving & (acts == self.eos_token)

        rewards = torch.zeros(self.num_envs, dtype=torch.float64, device=self.device)
        q = torch.zeros(self.num_envs, dtype=torch.float64, device=self.device)
        d = self.discriminator
        ended = terminated.nonzero().squeeze(1)
        if ended.numel():
            q[ended] = d.prob_real(self._tokens[ended].to(model_device(d))).to(self.device, torch.float64)
            check_finite("the discriminator's score D(Y)", q)
        if self.reward_mode == "terminal":
            rewards = q.clone()
        else:
            cont = (moving & ~terminated).nonzero().squeeze(1)
            if cont.numel():
                q[cont] = self._mc_q(cont, acts[cont])
            rewards = torch.where(moving, q if self.reward_mode == "q" else q - self._prev_q, rewards)
            self._prev_q = torch.where(moving, q, self._prev_q)
        # every array handed out is the caller's own: on the CPU ``.numpy()`` shares the tensor's memory, and
        # some of these tensors are state the next step or reset changes in place (``_needs_reset``)
        infos = {"length": _own(self._lengths), "q": _own(q)}
        step_masks = {"_length": np.ones(self.num_envs, dtype=bool), "_q": _own(moving)}
        done = _own(terminated)
        if self.autoreset_mode == AutoresetMode.SAME_STEP and done.any():
            # as SyncVectorEnv: the last observation and infos move to final_*, the row restarts now
            final_info = {**infos, **{k: m & done for k, m in step_masks.items()}}
            final_obs = np.full(self.num_envs, None, dtype=object)  # as gymnasium: one array per finished row
            for i in np.flatnonzero(done):
                final_obs[i] = _own(self._tokens[i])
            infos["final_obs"], infos["_final_obs"] = final_obs, done.copy()
            infos["final_info"], infos["_final_info"] = final_info, done.copy()
            step_masks = {k: m & ~done for k, m in step_masks.items()}
            step_masks["_length"] = np.ones(self.num_envs, dtype=bool)  # the reset's info has a length
            self._reset_rows(terminated)
            infos["length"] = _own(self._lengths)
        else:
            self._needs_reset = terminated
        infos.update(step_masks)
        return _own(self._tokens), _own(rewards), done, np.zeros(self.num_envs, dtype=bool), infos

    def render(self) -> tuple[str, ...] | tuple[np.ndarray, ...] | None:
        if self.render_mode not in ("ansi", "rgb_array"):
            return None
        rows = zip(self._tokens.cpu().numpy(), self._lengths.tolist(), strict=True)
        if self.render_mode == "rgb_array":
            return tuple(sequence_image(tokens, length, self.vocab_size) for tokens, length in rows)
        return tuple(render_text(tokens, length, self.template.vocab) for tokens, length in rows)

    # ------------------------------------------------------------------ internals
    def _check_actions(self, actions) -> torch.Tensor:
        a = actions.detach().cpu().numpy() if isinstance(actions, torch.Tensor) else np.asarray(actions)
        if a.shape != (self.num_envs,):
            raise ValueError(f"actions must have shape ({self.num_envs},), got {a.shape}")
        if not np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_:
            raise TypeError(f"actions must be integer token ids, got dtype {a.dtype}")
        bad = (a < 0) | (a >= self.vocab_size)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"action {int(a[i])} of sub-env {i} is not a token id: must be in [0, {self.vocab_size})")
        return torch.as_tensor(a, dtype=torch.long, device=self.device)

    def _reset_rows(self, mask: torch.Tensor) -> None:
        if not bool(mask.any()):
            return
        self._tokens[mask] = self.pad_token
        self._lengths[mask] = 0
        self._needs_reset[mask] = False
        self._prev_q[mask] = 0.0
        if self._cache.state is not None:
            self._cache.reset_rows(self._policy(), mask)

    def _policy(self) -> Generator:
        if self.generator is None:
            raise RuntimeError("reward_mode 'q'/'shaped' needs a generator for rollouts: pass generator=...")
        return self.generator

    def _prefix_states(self) -> State:
        """Every sub-env's state after the start token and its tokens so far (rebuilt if G changed)."""
        return self._cache.get(self._policy(), self._tokens, self._lengths)

    def _mc_q(self, rows: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Q for sub-envs ``rows`` that just took ``tokens`` and did not end; advances their cached state
        (built in ``step`` before the tokens were appended: it has read y_1..y_{t-1})."""
        g = self._policy()
        state = g.state_rows(self._cache.state, rows)
        q = prefix_q_values(
            g, self.discriminator, self._tokens[rows], self._lengths[rows], state, self.num_rollouts,
            self._rng, self.temperature, self.eos_token, self.pad_token,
        )  # fmt: skip
        self._cache.advance(g, rows, tokens)
        return q


def _own(tensor: torch.Tensor) -> np.ndarray:
    """A NumPy copy of ``tensor`` that nothing in the env changes later (``.numpy()`` of a CPU tensor is a view)."""
    return tensor.detach().cpu().numpy().copy()
