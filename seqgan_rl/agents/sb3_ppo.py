"""Stable-Baselines3 PPO on SeqGAN's environment (the ``sb3`` extra: ``pip install "seqgan-rl[sb3]"``).

Four pieces, each usable on its own:

- :class:`SB3VecEnvAdapter`: an SB3 ``VecEnv`` over the natively batched
  :class:`~seqgan_rl.envs.TokenGenerationVectorEnv` in ``SAME_STEP`` autoreset mode (SB3 cannot consume a
  gymnasium ``VectorEnv``: it wants a list of infos, the last observation in
  ``infos[i]["terminal_observation"]``).
- :class:`SeqGANPolicy`: an ``ActorCriticPolicy`` whose actor *is* the generator's architecture
  (embedding + LSTM over the prefix as the features extractor, the output layer as ``action_net``), so
  it starts from the MLE checkpoint (:meth:`SeqGANPolicy.load_generator`, called after construction:
  SB3's orthogonal init overwrites linear layers) and exposes itself as a live
  :class:`~seqgan_rl.models.Generator` (:meth:`SeqGANPolicy.generator_view`) for rollouts, D training
  and evaluation. The critic has its own embedding + LSTM (also started from G) and an MLP head.
- :func:`make_ppo`: an SB3 ``PPO`` on the batched env, its policy started from a generator.
- :class:`PPOAgent`: PPO as an agent of the training loop: ``collect`` is one SB3 rollout (one sequence per
  sub-env), ``update`` one ``PPO.train()``; the loop's callbacks (D retraining, evaluation, checkpoints)
  run between them, exactly where SB3's own ``learn()`` would start its next rollout.

Reward mode and discount go together (``PPOConfig`` refuses the other combinations):

- ``"q"`` with ``gamma=0`` (default): each reward is SeqGAN's Monte-Carlo Q_t, already an estimate of
  the return from step t; with gamma 0 PPO's return is that reward and its advantage is Q_t - V(s_t),
  i.e. the paper's per-token Q with a learned baseline.
- ``"shaped"`` (Q_t - Q_{t-1}) or ``"terminal"`` (D(Y) at the end) with ``gamma=1``: the rewards sum to
  D(Y), so PPO's returns re-sum them (``gae_lambda`` < 1 bootstraps from the critic).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from torch import nn

try:
    from stable_baselines3 import A2C, PPO
    from stable_baselines3.common.distributions import CategoricalDistribution
    from stable_baselines3.common.logger import configure
    from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
    from stable_baselines3.common.policies import ActorCriticPolicy
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
    from stable_baselines3.common.vec_env import VecEnv
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError('seqgan_rl.agents.sb3_ppo needs Stable-Baselines3: pip install "seqgan-rl[sb3]"') from exc
from gymnasium import spaces
from gymnasium.vector import AutoresetMode

from seqgan_rl import distributed
from seqgan_rl.agents.base import Agent
from seqgan_rl.config import GAMMA_FOR_MODE, A2CConfig, GeneratorConfig, PPOConfig, TransformerConfig
from seqgan_rl.envs.rollout import Reward
from seqgan_rl.envs.vector import TokenGenerationVectorEnv
from seqgan_rl.models import Generator, build_generator
from seqgan_rl.utils import check_finite, check_temperature

__all__ = [
    "GAMMA_FOR_MODE", "A2CAgent", "A2CConfig", "PPOAgent", "PPOConfig", "SB3VecEnvAdapter", "SeqGANPolicy",
    "make_a2c", "make_ppo",
]  # fmt: skip


# ---------------------------------------------------------------------------------------------- the env
class SB3VecEnvAdapter(VecEnv):
    """SB3's ``VecEnv`` interface over a :class:`TokenGenerationVectorEnv`.

    SB3 resets a finished sub-env in the same ``step``, as the vector env's ``SAME_STEP`` mode does; the
    adapter turns gymnasium's dict of batched infos (``final_obs``, ``final_info``) into SB3's list of
    per-env infos. The sub-envs share one model state, so ``get_attr`` / ``env_method`` read or call the
    vector env once and repeat the answer per sub-env, and ``set_attr`` sets it for all.

    Args:
        venv: the batched env, built with ``autoreset_mode="SameStep"`` (its ``reward_mode`` decides the
            rewards).
    """

    def __init__(self, venv: TokenGenerationVectorEnv) -> None:
        if not isinstance(venv, TokenGenerationVectorEnv):
            raise TypeError(f"SB3VecEnvAdapter wraps a TokenGenerationVectorEnv, got {type(venv).__name__}")
        if venv.autoreset_mode != AutoresetMode.SAME_STEP:
            raise ValueError(
                f"SB3 resets finished sub-envs in the same step: build the vector env with "
                f"autoreset_mode='SameStep' (got {venv.autoreset_mode.value!r})"
            )
        self.venv = venv
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)
        self._actions: np.ndarray | None = None

    def reset(self):
        seed = self._seeds[0]
        obs, _ = self.venv.reset(seed=seed)
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = [{} for _ in range(self.num_envs)]
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions).reshape(self.num_envs).astype(np.int64)

    def step_wait(self):
        if self._actions is None:
            raise RuntimeError("step_wait() without step_async(): call step(actions)")
        obs, rewards, terminated, truncated, infos = self.venv.step(self._actions)
        self._actions = None
        dones = terminated | truncated
        out_infos: list[dict[str, Any]] = []
        for i in range(self.num_envs):
            step = infos["final_info"] if dones[i] else infos
            info: dict[str, Any] = {"length": int(step["length"][i])}
            if step["_q"][i]:
                info["q"] = float(step["q"][i])
            if dones[i]:
                info["terminal_observation"] = infos["final_obs"][i].copy()
                info["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
            out_infos.append(info)
        return obs, rewards.astype(np.float32), dones, out_infos

    def close(self) -> None:
        self.venv.close()

    def set_discriminator(self, discriminator: Any) -> None:
        """Score with a new D from now on (what ``DiscriminatorRetrainCallback`` calls)."""
        self.venv.set_discriminator(discriminator)

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        return [getattr(self.venv, attr_name)] * len(list(self._get_indices(indices)))

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        setattr(self.venv, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list[Any]:
        result = getattr(self.venv, method_name)(*method_args, **method_kwargs)
        return [result] * len(list(self._get_indices(indices)))

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False] * len(list(self._get_indices(indices)))

    def get_images(self):
        return [None] * self.num_envs


# ---------------------------------------------------------------------------------------------- the policy
def _observed_prefix(tokens: torch.Tensor, pad_token: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """An observation's pad mask, each row's prefix length (tokens before its first pad, at most T-1: the last step
    reads T-1 tokens) and the steps a batched pass over the longest prefix needs."""
    is_pad = tokens == pad_token
    lengths = (~is_pad).long().cumprod(dim=1).sum(dim=1).clamp(max=tokens.shape[1] - 1)  # (B,)
    return is_pad, lengths, int(lengths.max()) + 1 if tokens.shape[0] else 1


class GeneratorFeaturesExtractor(BaseFeaturesExtractor):
    """The generator's embedding + LSTM run over the observed prefix: features = the (last layer's) LSTM output
    after the start token and the prefix, ``(B, H)``, i.e. what G's output layer turns into next-token logits.
    No dropout: the policy is the generator as it samples (``GeneratorConfig.dropout`` is for MLE only).

    The prefix length is the number of tokens before the first ``pad_token`` in the observation (exact
    for the oracle benchmark, whose pad id is V; with real text a generated pad id would end the prefix).
    Each call recomputes the LSTM over the prefix (T steps, batched; T = 20 and H = 32 make that cheap).
    """

    def __init__(self, observation_space: spaces.Box, config: GeneratorConfig, pad_token: int | None = None) -> None:
        super().__init__(observation_space, features_dim=config.hidden_dim)
        self.config = config
        self.pad_token = config.vocab_size if pad_token is None else int(pad_token)
        self.embedding = nn.Embedding(config.vocab_size, config.embed_dim)
        self.lstm = nn.LSTM(config.embed_dim, config.hidden_dim, num_layers=config.num_layers, batch_first=True)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        tokens = observations.long()  # (B, T); SB3 hands the Box observation over as floats
        is_pad, lengths, steps = _observed_prefix(tokens, self.pad_token)
        start = tokens.new_full((tokens.shape[0], 1), self.config.start_token)
        inputs = torch.cat([start, tokens[:, : steps - 1].masked_fill(is_pad[:, : steps - 1], 0)], dim=1)
        hidden, _ = self.lstm(self.embedding(inputs))  # (B, steps, H): index k has read start, y_1..y_k
        return hidden[torch.arange(tokens.shape[0], device=tokens.device), lengths]  # (B, H)


class TransformerFeaturesExtractor(BaseFeaturesExtractor):
    """A transformer generator run over the observed prefix: features = its next-token logits, ``(B, V)`` (the
    policy's ``action_net`` is then the identity: the actor's probabilities are the model's). The prefix is read as
    ``GeneratorFeaturesExtractor`` reads it; the model runs in eval mode (no dropout), recomputing the prefix."""

    def __init__(
        self, observation_space: spaces.Box, config: TransformerConfig, pad_token: int | None = None
    ) -> None:  # fmt: skip
        super().__init__(observation_space, features_dim=config.vocab_size)
        self.config = config
        self.pad_token = config.vocab_size if pad_token is None else int(pad_token)
        self.generator = build_generator(config)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        tokens = observations.long()  # (B, T)
        is_pad, lengths, steps = _observed_prefix(tokens, self.pad_token)
        prefix = tokens[:, :steps].masked_fill(is_pad[:, :steps], 0)  # (B, steps): y_1..y_steps, pads -> 0
        was = self.generator.training
        self.generator.eval()
        try:
            logits = self.generator(prefix)  # (B, steps, V): index k has read start, y_1..y_k
        finally:
            self.generator.train(was)
        return logits[torch.arange(tokens.shape[0], device=tokens.device), lengths]  # (B, V)


class SeqGANPolicy(ActorCriticPolicy):
    """Actor = the generator (embedding + LSTM features, ``action_net`` = its output layer); critic =
    its own embedding + LSTM and an MLP head. Build it through PPO (``policy_kwargs={"generator_config":
    ...}``), then call :meth:`load_generator` (after construction: SB3's orthogonal init would overwrite
    a linear layer loaded earlier).

    Args:
        generator_config: the generator's architecture.
        pad_token: the observation's pad id (default V, the env's default).
        value_net: hidden sizes of the critic's MLP head.
        temperature: sampling temperature (logits are divided by it).
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule,
        generator_config: GeneratorConfig,
        pad_token: int | None = None,
        value_net: tuple[int, ...] = (64,),
        temperature: float = 1.0,
        **kwargs: Any,
    ) -> None:
        if not isinstance(action_space, spaces.Discrete) or int(action_space.n) != generator_config.vocab_size:
            raise ValueError(f"action space {action_space} does not match V={generator_config.vocab_size}")
        self.generator_config, self.temperature = generator_config, check_temperature(temperature)
        self.transformer = isinstance(generator_config, TransformerConfig)
        kwargs.setdefault("net_arch", {"pi": [], "vf": list(value_net)})
        kwargs.setdefault("share_features_extractor", False)
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            features_extractor_class=TransformerFeaturesExtractor if self.transformer else GeneratorFeaturesExtractor,
            features_extractor_kwargs={"config": generator_config, "pad_token": pad_token},
            **kwargs,
        )
        if self.transformer:  # the features are the model's logits: no output layer of SB3's on top
            self.action_net = nn.Identity()
            self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)

    def _get_action_dist_from_latent(self, latent_pi: torch.Tensor):
        logits = self.action_net(latent_pi)  # (B, V)
        if self.temperature != 1.0:
            logits = logits / self.temperature
        assert isinstance(self.action_dist, CategoricalDistribution)
        return self.action_dist.proba_distribution(action_logits=logits)

    @torch.no_grad()
    def load_generator(self, generator: Generator, critic: bool = True) -> None:
        """Copy G's weights into the actor (embedding, LSTM, output layer) and, with ``critic``, its
        embedding + LSTM into the critic's features. Call after construction."""
        if dataclasses.asdict(generator.config) != dataclasses.asdict(self.generator_config):
            raise ValueError(f"generator config {generator.config} differs from the policy's {self.generator_config}")
        targets = [self.pi_features_extractor] + ([self.vf_features_extractor] if critic else [])
        if self.transformer:
            for fe in targets:
                fe.generator.load_state_dict(generator.state_dict())
            return
        for fe in targets:
            fe.embedding.load_state_dict(generator.embedding.state_dict())
            fe.lstm.load_state_dict(generator.lstm.state_dict())
        self.action_net.load_state_dict(generator.output.state_dict())

    def generator_view(self) -> Generator:
        """A :class:`Generator` whose modules *are* the actor's (shared parameters): sampling from it is
        sampling from the policy, at every point of training."""
        if self.transformer:
            return self.pi_features_extractor.generator
        g = Generator(self.generator_config)
        g.embedding = self.pi_features_extractor.embedding
        g.lstm = self.pi_features_extractor.lstm
        g.output = self.action_net
        return g.to(self.device)


def make_ppo(
    venv: TokenGenerationVectorEnv,
    generator: Generator,
    config: PPOConfig | None = None,
    seed: int | None = None,
    device: str | torch.device = "cpu",
    verbose: int = 0,
) -> PPO:
    """An SB3 ``PPO`` on ``venv`` whose policy starts from ``generator``'s weights.

    Args:
        venv: the batched env in ``SAME_STEP`` autoreset mode; its ``reward_mode`` must be
            ``config.reward_mode`` and ``num_envs`` ``config.num_envs``. ``n_steps`` is its ``seq_len`` (one
            sequence per sub-env per update).
        generator: the MLE checkpoint to start from (copied, not modified). The env's generator (its
            rollout policy) becomes the policy's actor (``SeqGANPolicy.generator_view``).
        config: PPO's settings.
        seed: SB3's seed (actions, minibatch order, the env's reset).
    """
    c = _checked_config(venv, config or PPOConfig(num_envs=venv.num_envs, reward_mode=venv.reward_mode))
    model = PPO(
        batch_size=min(c.batch_size, venv.seq_len * c.num_envs), n_epochs=c.n_epochs, clip_range=c.clip_range,
        target_kl=c.target_kl, **_common_arguments(venv, generator, c, seed, device, verbose),
    )  # fmt: skip
    return _started_from(model, venv, generator)


def make_a2c(
    venv: TokenGenerationVectorEnv,
    generator: Generator,
    config: A2CConfig | None = None,
    seed: int | None = None,
    device: str | torch.device = "cpu",
    verbose: int = 0,
) -> A2C:
    """An SB3 ``A2C`` on ``venv`` whose policy starts from ``generator``'s weights (arguments as for
    ``make_ppo``; one rollout of ``seq_len`` steps per sub-env, then one gradient step on all of it)."""
    c = _checked_config(venv, config or A2CConfig(num_envs=venv.num_envs, reward_mode=venv.reward_mode))
    model = A2C(use_rms_prop=c.use_rms_prop, **_common_arguments(venv, generator, c, seed, device, verbose))
    return _started_from(model, venv, generator)


def _checked_config(venv: TokenGenerationVectorEnv, c: PPOConfig | A2CConfig) -> PPOConfig | A2CConfig:
    if venv.reward_mode != c.reward_mode or venv.num_envs != c.num_envs:
        raise ValueError(
            f"the env (reward_mode={venv.reward_mode!r}, num_envs={venv.num_envs}) does not match the "
            f"{type(c).__name__.removesuffix('Config')} config (reward_mode={c.reward_mode!r}, num_envs={c.num_envs})"
        )
    return c


def _common_arguments(
    venv: TokenGenerationVectorEnv, generator: Generator, c: PPOConfig | A2CConfig, seed: int | None,
    device: str | torch.device, verbose: int,
) -> dict[str, Any]:  # fmt: skip
    """What SB3's PPO and A2C take alike: the policy, the env, one sequence per sub-env per rollout, the
    discount of the reward mode, the loss weights."""
    return {
        "policy": SeqGANPolicy, "env": SB3VecEnvAdapter(venv), "learning_rate": c.lr, "n_steps": venv.seq_len,
        "gamma": c.discount, "gae_lambda": c.gae_lambda, "ent_coef": c.ent_coef, "vf_coef": c.vf_coef,
        "max_grad_norm": c.max_grad_norm, "normalize_advantage": c.normalize_advantage,
        "policy_kwargs": {
            "generator_config": generator.config, "pad_token": venv.pad_token, "value_net": tuple(c.value_net),
            "temperature": c.temperature,
        },
        "seed": seed, "device": device, "verbose": verbose,
    }  # fmt: skip


def _started_from(model: OnPolicyAlgorithm, venv: TokenGenerationVectorEnv, generator: Generator):
    model.policy.load_generator(generator)  # after construction: SB3's init overwrote action_net
    model.set_logger(configure(None, []))  # metrics go through this package's logger (name_to_value)
    venv.set_generator(model.policy.generator_view())  # MC rollouts follow the policy as it trains
    return model


# ---------------------------------------------------------------------------------------------- the agent
SB3_METRICS = {
    "train/policy_gradient_loss": "train/pg_loss",
    "train/value_loss": "train/value_loss",
    "train/approx_kl": "train/approx_kl",
    "train/clip_fraction": "train/clip_fraction",
    "train/entropy_loss": "train/entropy_loss",
}
"""SB3's logged values -> this package's metric names."""


class PPOAgent(Agent):
    """SB3 PPO as an agent of the training loop, on the batched env with SeqGAN's reward.

    ``collect`` runs one SB3 rollout (``PPO.collect_rollouts``: ``num_envs`` sequences of T tokens, each
    token's reward from the env's MC rollouts scored by the reward's D); ``update`` runs one ``PPO.train()``.
    That is SB3's own ``learn()`` loop with the training loop's callbacks between an update and the next
    rollout. The agent's ``generator`` is the policy's actor (:meth:`SeqGANPolicy.generator_view`), so the
    env's rollouts, D's negatives, the evaluation and ``generator_final.pt`` all use the live policy.

    Args:
        generator: the MLE checkpoint to start from (copied into the policy, not modified).
        reward: its ``discriminator`` and ``num_rollouts`` make the env's reward; its rollout policy
            becomes the live policy.
        config: PPO's settings (``reward_mode`` picks the env's reward mode).
        seed: SB3's seed (action sampling and minibatch order through the global generators, the env's reset).
        device: where the policy and the env's state live.
        total_updates: the planned number of updates (SB3's progress, for schedules).

    Resuming restores the policy, its optimizer and the step count, but not the env's rollout stream or SB3's
    NumPy minibatch order: unlike REINFORCE, a resumed PPO run is not bit-identical to a straight one.
    """

    metric_fields = (
        "train/pg_loss", "train/mean_q", "train/sample_nll", "train/value_loss", "train/approx_kl",
        "train/clip_fraction", "train/entropy_loss",
    )  # fmt: skip
    config_class: type = PPOConfig
    sb3_metrics = SB3_METRICS
    make_model = staticmethod(make_ppo)

    def __init__(
        self,
        generator: Generator,
        reward: Reward,
        config: PPOConfig | None = None,
        *,
        seed: int = 0,
        device: str | torch.device = "cpu",
        total_updates: int | None = None,
    ) -> None:
        c = self.config = config or self.config_class()
        name = type(c).__name__.removesuffix("Config")
        if reward.discriminator is None:
            raise ValueError(f"{name} trains on the discriminator's reward: give it a SeqGANReward, not a constant one")
        self.venv = TokenGenerationVectorEnv(
            c.num_envs, generator=generator, discriminator=reward.discriminator, reward_mode=c.reward_mode,
            num_rollouts=reward.num_rollouts, temperature=c.temperature, device=device,
            autoreset_mode=AutoresetMode.SAME_STEP,
        )  # fmt: skip
        self.model = self.make_model(self.venv, generator, c, seed=seed % 2**31, device=device)
        self.generator = self.venv.generator  # the policy's actor (shared parameters)
        reward.set_generator(self.generator)
        self.temperature, self.sequences_per_update = c.temperature, c.num_envs
        steps = c.num_envs * self.venv.seq_len
        self.total_timesteps = (total_updates if total_updates is not None else 1) * steps
        self._sb3_callback = None
        self._resumed_timesteps = 0

    @classmethod
    def build(cls, generator, reward, config, *, seed=0, device="cpu", total_updates=None) -> PPOAgent:
        if distributed.enabled():
            name = cls.config_class.__name__.removesuffix("Config")
            raise ValueError(
                f"--algo {name.lower()} runs in one process (SB3 has no data-parallel {name}): start it without "
                "torchrun, or use --algo reinforce under torchrun"
            )
        return cls(generator, reward, config, seed=seed, device=device, total_updates=total_updates)

    def collect(self, rng: torch.Generator | None = None) -> dict[str, float]:
        """One SB3 rollout into the model's buffer (SB3 draws from its own seeded streams, not ``rng``);
        returns the rollout's ``train/mean_q`` and ``train/sample_nll``."""
        m = self.model
        if self._sb3_callback is None:  # what PPO.learn() does before its first rollout
            _, self._sb3_callback = m._setup_learn(max(self.total_timesteps, 1), callback=None)
            m.num_timesteps = self._resumed_timesteps
            self._sb3_callback.on_training_start(locals(), globals())
        m.collect_rollouts(m.env, self._sb3_callback, m.rollout_buffer, n_rollout_steps=m.n_steps)
        m._update_current_progress_remaining(m.num_timesteps, m._total_timesteps)
        buf = m.rollout_buffer
        return {"train/mean_q": float(np.mean(buf.rewards)), "train/sample_nll": float(-np.mean(buf.log_probs))}

    def update(self, batch: dict[str, float]) -> dict[str, float]:
        """One ``PPO.train()`` (``n_epochs`` passes of minibatches over the rollout)."""
        self.model.train()
        values = self.model.logger.name_to_value
        metrics = {**{ours: float(values[k]) for k, ours in self.sb3_metrics.items() if k in values}, **batch}
        for key, value in metrics.items():
            check_finite(f"{type(self.model).__name__}'s {key}", value)
        return metrics

    def state_dict(self) -> dict[str, Any]:
        policy = self.model.policy
        return {
            "policy": policy.state_dict(), "optimizer": policy.optimizer.state_dict(),
            "num_timesteps": self.model.num_timesteps,
        }  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.policy.load_state_dict(state["policy"])
        self.model.policy.optimizer.load_state_dict(state["optimizer"])
        self._resumed_timesteps = int(state["num_timesteps"])


class A2CAgent(PPOAgent):
    """SB3 A2C as an agent of the training loop: the same env, policy, rollouts and checkpoints as ``PPOAgent``;
    ``update`` is one ``A2C.train()``, a single gradient step on the whole rollout (policy gradient with the
    critic's advantage, value loss, entropy bonus), with RMSprop by default (``A2CConfig``)."""

    metric_fields = (
        "train/pg_loss", "train/mean_q", "train/sample_nll", "train/value_loss", "train/entropy_loss",
        "train/explained_variance",
    )  # fmt: skip
    config_class = A2CConfig
    sb3_metrics = {
        "train/policy_loss": "train/pg_loss",
        "train/value_loss": "train/value_loss",
        "train/entropy_loss": "train/entropy_loss",
        "train/explained_variance": "train/explained_variance",
    }
    make_model = staticmethod(make_a2c)
