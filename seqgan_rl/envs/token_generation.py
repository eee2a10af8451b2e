"""SeqGAN's token generation as a Gymnasium environment, and the MC-rollout Q reward wrapper."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.error import ResetNeeded

from seqgan_rl.config import GAMMA_FOR_MODE
from seqgan_rl.envs.rollout import EMARolloutPolicy, PrefixStateCache, model_device, prefix_q_values
from seqgan_rl.models.generator import Generator, State
from seqgan_rl.utils import HOME_PID, check_finite, check_temperature

REWARD_MODES = ("q", "terminal", "shaped")
NO_DISCRIMINATOR = (
    "no discriminator set, so this step has no reward (SeqGAN's reward is D's score): pass discriminator=D to "
    "the env (gym.make(..., discriminator=D)) or call set_discriminator(D) before stepping"
)


class TokenGenerationEnv(gym.Env[np.ndarray, np.int64]):
    """Generate a sequence one token at a time; a discriminator scores the finished sequence.

    ## Description

    SeqGAN (Yu et al., AAAI 2017) casts sequence generation as reinforcement learning: the state is the
    prefix Y_{1:t-1} generated so far, the action is the next token y_t, and the reward comes from a
    discriminator D(Y) = P(Y is real). This base environment gives D(Y) at the end of the episode; wrap
    it in :class:`MCRolloutReward` for SeqGAN's per-token Monte-Carlo Q reward.

    ## Action Space

    ``Discrete(vocab_size)``: the id of the next token.

    ## Observation Space

    ``Box(0, high, (seq_len,), int64)``: the prefix, padded with ``pad_token`` after its end. The pad
    token defaults to ``vocab_size`` (one past the last word, so ``high = vocab_size``), because in the
    paper's benchmark every id 0..V-1 is a word; a text vocabulary passes its own pad id.

    ## Rewards

    0 at every step but the last; at the last step D(Y) in (0, 1). Without a discriminator the episode's last
    step raises ``RuntimeError`` (a reward of 0 would train on nothing, silently): the env can be built and
    checked without one, and D set later with ``set_discriminator``.

    ## Starting State

    The empty prefix (all padding).

    ## Episode End

    Terminates when the sequence has ``seq_len`` tokens, or when ``eos_token`` (if configured) is
    generated. ``truncated`` is always False. ``step`` after the end (or before ``reset``) raises
    ``gymnasium.error.ResetNeeded``.

    ## Arguments

    ```python
    import gymnasium as gym
    import seqgan_rl  # registers the environment
    env = gym.make("seqgan_rl/TokenGeneration-v0", generator=G, discriminator=D, reward_mode="terminal")
    ```

    - ``vocab_size``, ``seq_len``: taken from the generator or discriminator when not given (else 5000, 20).
    - ``generator``: the policy's network, used by reward wrappers for rollouts (optional here).
    - ``discriminator``: D, anything with ``vocab_size``, ``seq_len`` and ``prob_real(tokens) -> (B,)``;
      settable later with ``set_discriminator`` (D keeps changing during SeqGAN training).
    - ``eos_token``, ``pad_token``: end-of-sequence and padding ids (real text); with ``eos_token`` the
      pad token must be a vocabulary id, since D sees padded sequences. Default: the generator's
      (``GeneratorConfig.eos_token`` / ``pad_token``), so a text generator's env ends at its end token.
    - ``vocab``: every id's word for ``render_mode="ansi"``: a list, or the ``Vocabulary`` that
      ``seqgan_rl.training.run_folder.load_generator`` returns with a text generator.
    - ``render_mode``: ``"ansi"`` (the prefix as text) or ``"rgb_array"`` (one colour cell per token, what
      video recorders and SB3's ``make_vec_env`` ask for).

    G and D are live objects the training loop keeps changing, so the env must run in their process: one
    copied into a worker process (``AsyncVectorEnv``, SB3's ``SubprocVecEnv``, TorchRL's ``ParallelEnv`` or
    ``GymEnv(num_envs=N)``) raises ``RuntimeError`` instead of scoring with a stale copy of D. Batch with the
    native vector env (``gym.make_vec``), ``SyncVectorEnv``, SB3's ``DummyVecEnv`` or TorchRL's ``SerialEnv``.

    ## Version History

    - v0: initial release. Since 0.1.0 (2026-12) a step that needs D without one raises instead of returning
      0, ``render_mode="rgb_array"`` exists, and models copied into a worker process are refused.
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}

    def __init__(
        self,
        vocab_size: int | None = None,
        seq_len: int | None = None,
        generator: Generator | None = None,
        discriminator: Any | None = None,
        eos_token: int | None = None,
        pad_token: int | None = None,
        vocab: Sequence[str] | None = None,
        render_mode: str | None = None,
    ) -> None:
        ref = generator if generator is not None else discriminator
        g_cfg = getattr(generator, "config", None)
        if eos_token is None and pad_token is None and getattr(g_cfg, "eos_token", None) is not None:
            eos_token, pad_token = g_cfg.eos_token, g_cfg.pad_token  # a text generator brings its own
        self.vocab_size = int(vocab_size if vocab_size is not None else getattr(ref, "vocab_size", 5000))
        self.seq_len = int(seq_len if seq_len is not None else getattr(ref, "seq_len", 20))
        if self.vocab_size < 2 or self.seq_len < 1:
            raise ValueError(f"need vocab_size >= 2 and seq_len >= 1, got {self.vocab_size}, {self.seq_len}")
        self.pad_token = self.vocab_size if pad_token is None else int(pad_token)
        if eos_token is not None:
            if not 0 <= eos_token < self.vocab_size:
                raise ValueError(f"eos_token={eos_token} must be a token id in [0, {self.vocab_size})")
            if not 0 <= self.pad_token < self.vocab_size:
                raise ValueError(
                    f"with eos_token set, pad_token must be a vocabulary id in [0, {self.vocab_size}) "
                    f"(D sees padded sequences), got {self.pad_token}"
                )
        elif not 0 <= self.pad_token <= self.vocab_size:
            raise ValueError(f"pad_token={self.pad_token} must be in [0, {self.vocab_size}]")
        self.eos_token = eos_token
        vocab = getattr(vocab, "itos", vocab)  # a Vocabulary: every id's word, special tokens included
        if vocab is not None and len(vocab) < self.vocab_size:
            raise ValueError(f"vocab has {len(vocab)} words, fewer than vocab_size={self.vocab_size}")
        self.vocab = list(vocab) if vocab is not None else None
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode={render_mode!r} is not supported: use None, 'ansi' or 'rgb_array'")
        self.render_mode = render_mode

        self.action_space = spaces.Discrete(self.vocab_size)
        high = max(self.pad_token, self.vocab_size - 1)
        self.observation_space = spaces.Box(0, high, shape=(self.seq_len,), dtype=np.int64)

        self.generator: Generator | None = None
        self.discriminator: Any | None = None
        self.set_generator(generator)
        self.set_discriminator(discriminator)
        self._tokens = np.full(self.seq_len, self.pad_token, dtype=np.int64)
        self._length = 0
        self._needs_reset = True

    # ------------------------------------------------------------------ models
    def set_generator(self, generator: Generator | None) -> None:
        """Set (or clear) the generator used by reward wrappers; checks its vocabulary and length."""
        if generator is not None:
            _check_model("generator", generator, self.vocab_size, self.seq_len)
            check_home_process("generator", generator)
        self.generator = generator

    def set_discriminator(self, discriminator: Any | None) -> None:
        """Set (or clear) D; checks its vocabulary and length."""
        if discriminator is not None:
            _check_model("discriminator", discriminator, self.vocab_size, self.seq_len)
            if not callable(getattr(discriminator, "prob_real", None)):
                raise TypeError("discriminator must have a prob_real(tokens) -> (B,) method")
            check_home_process("discriminator", discriminator)
        self.discriminator = discriminator

    def __setstate__(self, state: dict[str, Any]) -> None:  # an env pickled into another process
        self.__dict__.update(state)
        for name in ("generator", "discriminator"):
            if state.get(name) is not None:
                check_home_process(name, state[name])

    # ------------------------------------------------------------------ gymnasium API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._tokens.fill(self.pad_token)
        self._length = 0
        self._needs_reset = False
        return self._get_obs(), self._get_info()

    def step(self, action):
        if self._needs_reset:
            raise ResetNeeded("step() called before reset() or after the episode ended: call reset() first")
        token = as_token(action, self.vocab_size)
        terminated = self._length + 1 == self.seq_len or (self.eos_token is not None and token == self.eos_token)
        if terminated and self.discriminator is None:  # before any change: set D and step again
            raise RuntimeError(NO_DISCRIMINATOR)
        self._tokens[self._length] = token
        self._length += 1
        info = self._get_info()
        reward = 0.0
        if terminated:
            self._needs_reset = True
            reward = self.score(self.sequence[None])[0]
            info["d_terminal"] = reward
        return self._get_obs(), float(reward), bool(terminated), False, info

    def render(self) -> str | np.ndarray | None:
        if self.render_mode == "rgb_array":
            return sequence_image(self._tokens, self._length, self.vocab_size)
        if self.render_mode != "ansi":
            return None
        return render_text(self._tokens, self._length, self.vocab)

    # ------------------------------------------------------------------ helpers
    @property
    def length(self) -> int:
        """Tokens generated so far in this episode."""
        return self._length

    @property
    def sequence(self) -> np.ndarray:
        """The sequence so far, padded to ``seq_len`` (what D sees at the end)."""
        return self._tokens.copy()

    def score(self, tokens: np.ndarray) -> list[float]:
        """D(Y) for a ``(B, T)`` array of sequences."""
        if self.discriminator is None:
            raise RuntimeError(NO_DISCRIMINATOR)
        tokens = torch.as_tensor(tokens, dtype=torch.long, device=model_device(self.discriminator))
        scores = self.discriminator.prob_real(tokens)
        check_finite("the discriminator's score D(Y)", scores)
        return scores.tolist()

    def _get_obs(self) -> np.ndarray:
        return self._tokens.copy()

    def _get_info(self) -> dict[str, Any]:
        return {"length": self._length}


class MCRolloutReward(gym.Wrapper):
    """SeqGAN's reward: the Monte-Carlo Q estimate of the token just taken.

    After action y_t, the rollout policy completes the prefix Y_{1:t} ``num_rollouts`` times and the
    reward is the mean of D over the completions; at the last position it is D(Y) itself:

        Q(Y_{1:t-1}, y_t) = mean_n D(Y^n_{1:T}),  Y^n ~ MC(Y_{1:t}; N)  for t < T;   Q = D(Y) at t = T.

    Reward modes (which one is correct depends on how the learner turns rewards into returns):

    - ``"q"`` (default, the paper's): the reward of step t *is* Q_t, already an estimate of the return
      from that step. Right for REINFORCE as in the paper, or any learner that uses each reward as the
      return on its own: PPO/A2C with ``gamma=0`` (and no bootstrapping across steps).
    - ``"terminal"``: D(Y) at the last step, 0 before (no rollouts). Right for any return-based learner
      with ``gamma=1``; it has the highest variance.
    - ``"shaped"``: Q_t - Q_{t-1} with Q_0 = 0, which telescopes to D(Y) over the episode (potential-
      based shaping: the optimal policy is unchanged). Right for discounting / bootstrapping learners
      (PPO, A2C with ``gamma=1`` and GAE), which re-sum the rewards into returns.

    The rollout policy is the environment's generator (what the reference code actually does), read at
    every step, so it follows training. ``rollout_update_rate`` instead keeps an exponential moving
    average copy (``beta <- r beta + (1 - r) theta``, refreshed by ``update_rollout_policy()``): a
    **deviation** from the published behaviour, offered for study.

    The rollouts draw from a torch generator reseeded from the environment's ``np_random`` at every
    ``reset``: same seed, same rewards. The generator's LSTM state of the current prefix is cached and
    advanced one token per step; it is recomputed only when the generator's weights changed.

    ``info`` carries ``"q"`` (Q_t) and, at the end, ``"d_terminal"`` (D(Y)).
    """

    def __init__(
        self,
        env: gym.Env,
        num_rollouts: int = 16,
        reward_mode: str = "q",
        temperature: float = 1.0,
        rollout_update_rate: float | None = None,
    ) -> None:
        super().__init__(env)
        if not isinstance(env.unwrapped, TokenGenerationEnv):
            raise TypeError(f"MCRolloutReward wraps a TokenGenerationEnv, got {type(env.unwrapped).__name__}")
        check_reward_settings(reward_mode, num_rollouts, temperature)
        self.num_rollouts = int(num_rollouts)
        self.reward_mode = reward_mode
        self.temperature = float(temperature)
        self._ema: EMARolloutPolicy | None = None
        self._ema_rate = rollout_update_rate
        self._rng: torch.Generator | None = None
        self._cache = PrefixStateCache()
        self._prev_q = 0.0

    @property
    def base(self) -> TokenGenerationEnv:
        return self.env.unwrapped  # type: ignore[return-value]

    def rollout_policy(self) -> Generator:
        gen = self.base.generator
        if gen is None:
            raise RuntimeError("MCRolloutReward needs a generator for rollouts: pass generator=... to the env")
        if self._ema_rate is None:
            return gen
        if self._ema is None:
            self._ema = EMARolloutPolicy(gen, self._ema_rate)
        return self._ema.policy

    def update_rollout_policy(self) -> None:
        """Move the EMA rollout copy towards the current generator (no-op without ``rollout_update_rate``)."""
        if self._ema_rate is not None and self.base.generator is not None:
            if self._ema is None:
                self._ema = EMARolloutPolicy(self.base.generator, self._ema_rate)
            else:
                self._ema.update(self.base.generator)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        device = self.base.generator.device if self.base.generator is not None else torch.device("cpu")
        self._rng = torch.Generator(device=device)
        self._rng.manual_seed(int(self.base.np_random.integers(2**62)))
        self._cache.clear()
        self._prev_q = 0.0
        return obs, info

    def step(self, action):
        base = self.base
        if base.discriminator is None and not base._needs_reset:
            raise RuntimeError(NO_DISCRIMINATOR)
        length_before = base.length
        if self.reward_mode != "terminal" and not base._needs_reset:
            state_t = self._prefix_state(length_before)  # state having read start, y_1..y_{t-1}
        obs, reward, terminated, truncated, info = self.env.step(action)
        if self.reward_mode == "terminal":
            return obs, reward, terminated, truncated, info
        q = float(info["d_terminal"]) if terminated else self._mc_q(base.length, state_t)
        info["q"] = q
        reward = q if self.reward_mode == "q" else q - self._prev_q
        self._prev_q = q
        return obs, float(reward), terminated, truncated, info

    # ------------------------------------------------------------------ internals
    def _prefix_state(self, length: int) -> State:
        """The rollout policy's state after the start token and the first ``length`` tokens (cached)."""
        policy = self.rollout_policy()
        tokens = torch.as_tensor(self.base.sequence[None], device=policy.device)  # (1, T)
        return self._cache.get(policy, tokens, torch.tensor([length], device=policy.device))

    def _mc_q(self, length: int, state_t: State) -> float:
        """Mean D over N completions of the current prefix (length ``length`` >= 1, < T); advances the
        cached state by the token just taken (the next step's state)."""
        base, policy = self.base, self.rollout_policy()
        tokens = torch.as_tensor(base.sequence[None], device=policy.device)  # (1, T)
        prefix_len = torch.tensor([length], device=policy.device)
        q = prefix_q_values(
            policy, base.discriminator, tokens, prefix_len, state_t, self.num_rollouts, self._rng, self.temperature,
            base.eos_token, base.pad_token,
        )  # fmt: skip
        self._cache.advance(policy, torch.tensor([0], device=policy.device), tokens[:, length - 1])
        return float(q[0])


def check_reward_settings(reward_mode: str, num_rollouts: int, temperature: float) -> None:
    """Raise ``ValueError`` for an unknown reward mode, fewer than one rollout or a temperature <= 0."""
    if reward_mode not in REWARD_MODES:
        raise ValueError(f"reward_mode={reward_mode!r}: choose one of {REWARD_MODES}")
    if num_rollouts < 1:
        raise ValueError(f"num_rollouts must be >= 1, got {num_rollouts}")
    check_temperature(temperature)


def check_reward_gamma(reward_mode: str | Any, gamma: float) -> None:
    """Check that a learner's discount ``gamma`` turns this reward mode into SeqGAN's objective.

    ``"q"`` rewards are already returns (Q_t), so a learner must not sum them again: ``gamma=0``. The
    ``"terminal"`` and ``"shaped"`` rewards sum to D(Y) over an episode: ``gamma=1``. Call it before
    training with any library's discount, e.g. ``check_reward_gamma(env, PPO(...).gamma)``.

    Args:
        reward_mode: a mode of ``REWARD_MODES``, or an env (single, wrapped or vector) that has one (a bare
            ``TokenGenerationEnv`` has ``"terminal"``).

    Raises:
        ValueError: naming the discount that fits, if ``gamma`` does not.
    """
    if not isinstance(reward_mode, str):
        reward_mode = _reward_mode_of(reward_mode)
    if reward_mode not in GAMMA_FOR_MODE:
        raise ValueError(f"reward_mode={reward_mode!r}: choose one of {tuple(GAMMA_FOR_MODE)}")
    want = GAMMA_FOR_MODE[reward_mode]
    if float(gamma) != want:
        why = "each reward is already Q_t, a return" if reward_mode == "q" else "the rewards sum to D(Y)"
        raise ValueError(f"reward_mode {reward_mode!r} needs gamma={want:g} ({why}), got gamma={gamma}")


def _reward_mode_of(env: Any) -> str:
    """The reward mode of a Gymnasium env or vector env, however wrapped, or of an SB3 ``VecEnv``."""
    try:
        if hasattr(env, "get_attr"):  # SB3 VecEnv
            return env.get_attr("reward_mode")[0]
        if hasattr(env, "get_wrapper_attr"):  # Gymnasium wrappers do not forward attributes
            return env.get_wrapper_attr("reward_mode")
        return env.reward_mode
    except AttributeError:
        return "terminal"  # a bare TokenGenerationEnv: D(Y) at the end


def check_home_process(name: str, model: Any) -> None:
    """Refuse a model that is a copy, in a worker process, of one that a live process is training.

    Models record the process that built them (``seqgan_rl.utils.HOME_PID``; other objects are marked on
    first use). A model whose home is another process that is still running was copied here by pickling
    (``AsyncVectorEnv``, SB3's ``SubprocVecEnv``, TorchRL's ``ParallelEnv``): the original's updates never
    reach the copy, so its rewards would silently go stale.

    Raises:
        RuntimeError: saying which vectorization to use instead.
    """
    home = getattr(model, HOME_PID, None)
    if home is None:
        with contextlib.suppress(AttributeError, TypeError):  # an object that takes no attributes: no check
            setattr(model, HOME_PID, os.getpid())
    elif home != os.getpid() and _process_is_running(home):
        raise RuntimeError(
            f"this env's {name} is a copy in process {os.getpid()} of the one in running process {home} "
            "(AsyncVectorEnv, SB3 SubprocVecEnv, TorchRL ParallelEnv or GymEnv(num_envs=N)): the original's "
            "updates would never reach it. Keep the env in the training process: gym.make_vec(ID, num_envs=N, "
            "...) (the native vector env), SyncVectorEnv, SB3 DummyVecEnv or TorchRL SerialEnv. (If this "
            "process trains the copy itself, call seqgan_rl.utils.mark_home_process(model) first.)"
        )


def _process_is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: existence check only
    except ProcessLookupError:
        return False
    except PermissionError:  # running, under another user
        return True
    return True


def render_text(tokens: np.ndarray, length: int, vocab: Sequence[str] | None) -> str:
    """``[t/T] w_1 ... w_t``: the prefix's words (or ids without a vocabulary)."""
    ids = tokens[:length].tolist()
    return f"[{length}/{len(tokens)}] " + " ".join(vocab[i] if vocab is not None else str(i) for i in ids)


def sequence_image(tokens: np.ndarray, length: int, vocab_size: int, cell: int = 8) -> np.ndarray:
    """An ``(cell, cell * T, 3)`` uint8 image of a prefix: one cell per position, its colour a fixed function of
    the token id, black after the prefix's end."""
    ids = np.asarray(tokens[:length], dtype=np.int64)
    hue = (ids * 0.618033988749895) % 1.0  # golden-ratio steps: neighbouring ids get distant colours
    shade = 0.55 + 0.45 * (ids / max(vocab_size - 1, 1))
    rgb = np.stack([np.abs(hue * 6 - 3) - 1, 2 - np.abs(hue * 6 - 2), 2 - np.abs(hue * 6 - 4)], axis=-1)
    row = np.zeros((len(tokens), 3), dtype=np.uint8)
    row[:length] = (np.clip(rgb, 0, 1) * shade[:, None] * 255).astype(np.uint8)
    return np.repeat(np.repeat(row[None], cell, axis=0), cell, axis=1)


def as_token(action: Any, vocab_size: int) -> int:
    """Validate an action and return it as an int token id.

    Accepts Python ints, NumPy integer scalars and 0-d or 1-element integer arrays / tensors.

    Raises:
        TypeError: for a non-integer action (float, bool, string...).
        ValueError: for an id outside ``[0, vocab_size)`` or an array with more than one element.
    """
    value = action
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        if value.size != 1:
            raise ValueError(f"action must be a single token id, got an array of shape {value.shape}")
        if not np.issubdtype(value.dtype, np.integer):
            raise TypeError(f"action must be an integer token id, got dtype {value.dtype}")
        value = value.reshape(()).item()
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
        raise TypeError(f"action must be an integer token id, got {type(action).__name__} {action!r}")
    if not 0 <= value < vocab_size:
        raise ValueError(f"action {int(value)} is not a token id: must be in [0, {vocab_size})")
    return int(value)


def _check_model(name: str, model: Any, vocab_size: int, seq_len: int) -> None:
    v, t = getattr(model, "vocab_size", None), getattr(model, "seq_len", None)
    if v != vocab_size:
        raise ValueError(f"{name} has vocab_size={v}, but the environment's is {vocab_size}")
    if name == "discriminator" and t != seq_len:
        raise ValueError(f"{name} scores sequences of length {t}, but the environment's seq_len is {seq_len}")


def make_token_generation_env(
    reward_mode: str = "q",
    num_rollouts: int = 16,
    temperature: float = 1.0,
    rollout_update_rate: float | None = None,
    **kwargs: Any,
) -> gym.Env:
    """Entry point of ``seqgan_rl/TokenGeneration-v0``: the env, wrapped in :class:`MCRolloutReward`
    unless ``reward_mode="terminal"``. Other keyword arguments go to :class:`TokenGenerationEnv`."""
    if reward_mode not in REWARD_MODES:
        raise ValueError(f"reward_mode={reward_mode!r}: choose one of {REWARD_MODES}")
    env = TokenGenerationEnv(**kwargs)
    if reward_mode == "terminal":
        return env
    return MCRolloutReward(env, num_rollouts, reward_mode, temperature, rollout_update_rate)
