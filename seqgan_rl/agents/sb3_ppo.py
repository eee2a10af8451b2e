"""Stable-Baselines3 PPO on SeqGAN's environment (the ``sb3`` extra: ``pip install "seqgan-rl[sb3]"``).

Four pieces, each usable on its own:

- :class:`SB3VecEnvAdapter`: an SB3 ``VecEnv`` over the natively batched
  :class:`~seqgan_rl.envs.TokenGenerationVectorEnv` (SB3 cannot consume a gymnasium ``VectorEnv``: it
  expects same-step autoreset with ``infos[i]["terminal_observation"]``, where gymnasium 1.x resets on the
  next step).
- :class:`SeqGANPolicy`: an ``ActorCriticPolicy`` whose actor *is* the generator's architecture
  (embedding + LSTM over the prefix as the features extractor, the output layer as ``action_net``), so
  it starts from the MLE checkpoint (:meth:`SeqGANPolicy.load_generator`, called after construction:
  SB3's orthogonal init overwrites linear layers) and exposes itself as a live
  :class:`~seqgan_rl.models.Generator` (:meth:`SeqGANPolicy.generator_view`) for rollouts, D training
  and evaluation. The critic has its own embedding + LSTM (also started from G) and an MLP head.
- :class:`SB3CallbackAdapter`: an SB3 ``BaseCallback`` that drives this package's callbacks
  (``DiscriminatorRetrainCallback``, ``EvalCallback``, ``CheckpointCallback``) once per PPO update.
- :class:`PPOTrainer`: the adversarial phase with PPO in place of REINFORCE, for ``run_training``.

Reward mode and discount go together (``PPOConfig`` refuses the other combinations):

- ``"q"`` with ``gamma=0`` (default): each reward is SeqGAN's Monte-Carlo Q_t, already an estimate of
  the return from step t; with gamma 0 PPO's return is that reward and its advantage is Q_t - V(s_t),
  i.e. the paper's per-token Q with a learned baseline.
- ``"shaped"`` (Q_t - Q_{t-1}) or ``"terminal"`` (D(Y) at the end) with ``gamma=1``: the rewards sum to
  D(Y), so PPO's returns re-sum them (``gae_lambda`` < 1 bootstraps from the critic).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

try:
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.distributions import CategoricalDistribution
    from stable_baselines3.common.logger import configure
    from stable_baselines3.common.policies import ActorCriticPolicy
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
    from stable_baselines3.common.vec_env import VecEnv
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError('seqgan_rl.agents.sb3_ppo needs Stable-Baselines3: pip install "seqgan-rl[sb3]"') from exc
from gymnasium import spaces

from seqgan_rl.config import GeneratorConfig, TrainConfig
from seqgan_rl.data.oracle_data import OracleData
from seqgan_rl.envs.vector import TokenGenerationVectorEnv
from seqgan_rl.models.discriminator import Discriminator
from seqgan_rl.models.generator import Generator
from seqgan_rl.models.oracle import OracleLSTM
from seqgan_rl.training.adversarial import METRIC_FIELDS, AdversarialTrainer
from seqgan_rl.training.callbacks import Callback, CallbackList, DiscriminatorRetrainCallback
from seqgan_rl.training.logger import MetricsLogger
from seqgan_rl.training.pretrain import _bar
from seqgan_rl.utils import derive_seed

GAMMA_FOR_MODE = {"q": 0.0, "shaped": 1.0, "terminal": 1.0}
"""The discount each reward mode needs (module docstring)."""


@dataclass(frozen=True)
class PPOConfig:
    """PPO's update for SeqGAN's generator. One PPO iteration collects one sequence per sub-env
    (``num_envs`` sequences of T tokens: ``n_steps = T``), the same budget as one REINFORCE update."""

    num_envs: int = 64
    """Sequences generated per update (REINFORCE's batch size)."""
    lr: float = 1e-3
    """Adam learning rate (actor and critic)."""
    n_epochs: int = 4
    """Passes over each rollout."""
    batch_size: int = 320
    """Minibatch size in transitions (a rollout holds ``num_envs * T``)."""
    clip_range: float = 0.2
    gamma: float | None = None
    """Discount; ``None`` picks the one the reward mode needs (``q``: 0, ``shaped``/``terminal``: 1)."""
    gae_lambda: float = 1.0
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    normalize_advantage: bool = True
    reward_mode: str = "q"
    """``"q"`` (SeqGAN's Q, gamma 0), ``"shaped"`` or ``"terminal"`` (gamma 1)."""
    value_net: tuple[int, ...] = (64,)
    """Hidden sizes of the critic's MLP head (on its own embedding + LSTM features)."""
    target_kl: float | None = None
    temperature: float = 1.0
    """The policy's sampling temperature (its logits are divided by it)."""

    def __post_init__(self) -> None:
        if self.reward_mode not in GAMMA_FOR_MODE:
            raise ValueError(f"PPOConfig.reward_mode={self.reward_mode!r}: choose one of {tuple(GAMMA_FOR_MODE)}")
        need = GAMMA_FOR_MODE[self.reward_mode]
        if self.gamma is not None and self.gamma != need:
            raise ValueError(
                f"PPOConfig: reward_mode={self.reward_mode!r} needs gamma={need:g}, got {self.gamma}: 'q' rewards are "
                "already returns (gamma 0); 'shaped'/'terminal' rewards must be summed (gamma 1)"
            )
        if not (self.num_envs >= 1 and self.n_epochs >= 1 and self.batch_size >= 1):
            raise ValueError("PPOConfig: num_envs, n_epochs and batch_size must be >= 1")
        if not (self.lr > 0 and self.clip_range > 0 and self.max_grad_norm > 0 and self.temperature > 0):
            raise ValueError("PPOConfig: lr, clip_range, max_grad_norm and temperature must be > 0")
        if not 0.0 <= self.gae_lambda <= 1.0:
            raise ValueError(f"PPOConfig.gae_lambda={self.gae_lambda} must be in [0, 1]")

    @property
    def discount(self) -> float:
        return GAMMA_FOR_MODE[self.reward_mode] if self.gamma is None else float(self.gamma)


# ---------------------------------------------------------------------------------------------- the env
class SB3VecEnvAdapter(VecEnv):
    """SB3's ``VecEnv`` interface over a :class:`TokenGenerationVectorEnv`.

    SB3 resets a finished sub-env in the same ``step`` and reports the last observation in
    ``infos[i]["terminal_observation"]``; the gymnasium vector env resets on the next step. The adapter
    resets finished rows at once (``reset_mask``). The sub-envs share one model state, so ``get_attr`` /
    ``env_method`` read or call the vector env once and repeat the answer per sub-env, and ``set_attr``
    sets it for all.

    Args:
        venv: the batched env (its ``reward_mode`` decides the rewards).
    """

    def __init__(self, venv: TokenGenerationVectorEnv) -> None:
        if not isinstance(venv, TokenGenerationVectorEnv):
            raise TypeError(f"SB3VecEnvAdapter wraps a TokenGenerationVectorEnv, got {type(venv).__name__}")
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
            info: dict[str, Any] = {"length": int(infos["length"][i])}
            if "q" in infos and infos["_q"][i]:
                info["q"] = float(infos["q"][i])
            if dones[i]:
                info["terminal_observation"] = obs[i].copy()
                info["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
            out_infos.append(info)
        if dones.any():
            obs, _ = self.venv.reset(options={"reset_mask": dones})
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
class GeneratorFeaturesExtractor(BaseFeaturesExtractor):
    """The generator's embedding + LSTM run over the observed prefix: features = the LSTM output after
    the start token and the prefix, ``(B, H)``, i.e. what G's output layer turns into next-token logits.

    The prefix length is the number of tokens before the first ``pad_token`` in the observation (exact
    for the oracle benchmark, whose pad id is V; with real text a generated pad id would end the prefix).
    Each call recomputes the LSTM over the prefix (T steps, batched; T = 20 and H = 32 make that cheap).
    """

    def __init__(self, observation_space: spaces.Box, config: GeneratorConfig, pad_token: int | None = None) -> None:
        super().__init__(observation_space, features_dim=config.hidden_dim)
        self.config = config
        self.pad_token = config.vocab_size if pad_token is None else int(pad_token)
        self.embedding = nn.Embedding(config.vocab_size, config.embed_dim)
        self.lstm = nn.LSTM(config.embed_dim, config.hidden_dim, batch_first=True)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        tokens = observations.long()  # (B, T); SB3 hands the Box observation over as floats
        is_pad = tokens == self.pad_token
        lengths = (~is_pad).long().cumprod(dim=1).sum(dim=1).clamp(max=tokens.shape[1] - 1)  # (B,)
        steps = int(lengths.max()) + 1 if tokens.shape[0] else 1
        start = tokens.new_full((tokens.shape[0], 1), self.config.start_token)
        inputs = torch.cat([start, tokens[:, : steps - 1].masked_fill(is_pad[:, : steps - 1], 0)], dim=1)
        hidden, _ = self.lstm(self.embedding(inputs))  # (B, steps, H): index k has read start, y_1..y_k
        return hidden[torch.arange(tokens.shape[0], device=tokens.device), lengths]  # (B, H)


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
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.generator_config, self.temperature = generator_config, float(temperature)
        kwargs.setdefault("net_arch", {"pi": [], "vf": list(value_net)})
        kwargs.setdefault("share_features_extractor", False)
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            features_extractor_class=GeneratorFeaturesExtractor,
            features_extractor_kwargs={"config": generator_config, "pad_token": pad_token},
            **kwargs,
        )

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
        for fe in targets:
            fe.embedding.load_state_dict(generator.embedding.state_dict())
            fe.lstm.load_state_dict(generator.lstm.state_dict())
        self.action_net.load_state_dict(generator.output.state_dict())

    def generator_view(self) -> Generator:
        """A :class:`Generator` whose modules *are* the actor's (shared parameters): sampling from it is
        sampling from the policy, at every point of training."""
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
        venv: the batched env; its ``reward_mode`` must be ``config.reward_mode`` and ``num_envs``
            ``config.num_envs``. ``n_steps`` is its ``seq_len`` (one sequence per sub-env per update).
        generator: the MLE checkpoint to start from (copied, not modified). The env's generator (its
            rollout policy) becomes the policy's actor (``SeqGANPolicy.generator_view``).
        config: PPO's settings.
        seed: SB3's seed (actions, minibatch order, the env's reset).
    """
    c = config or PPOConfig(num_envs=venv.num_envs, reward_mode=venv.reward_mode)
    if venv.reward_mode != c.reward_mode or venv.num_envs != c.num_envs:
        raise ValueError(
            f"the env (reward_mode={venv.reward_mode!r}, num_envs={venv.num_envs}) does not match the PPO config "
            f"(reward_mode={c.reward_mode!r}, num_envs={c.num_envs})"
        )
    model = PPO(
        SeqGANPolicy,
        SB3VecEnvAdapter(venv),
        learning_rate=c.lr,
        n_steps=venv.seq_len,
        batch_size=min(c.batch_size, venv.seq_len * c.num_envs),
        n_epochs=c.n_epochs,
        gamma=c.discount,
        gae_lambda=c.gae_lambda,
        clip_range=c.clip_range,
        ent_coef=c.ent_coef,
        vf_coef=c.vf_coef,
        max_grad_norm=c.max_grad_norm,
        normalize_advantage=c.normalize_advantage,
        target_kl=c.target_kl,
        policy_kwargs={
            "generator_config": generator.config,
            "pad_token": venv.pad_token,
            "value_net": tuple(c.value_net),
            "temperature": c.temperature,
        },
        seed=seed,
        device=device,
        verbose=verbose,
    )
    model.policy.load_generator(generator)  # after construction: SB3's init overwrote action_net
    model.set_logger(configure(None, []))  # metrics go through this package's logger (name_to_value)
    venv.set_generator(model.policy.generator_view())  # MC rollouts follow the policy as it trains
    return model


# ---------------------------------------------------------------------------------------------- callbacks
SB3_METRICS = {
    "train/policy_gradient_loss": "train/pg_loss",
    "train/value_loss": "train/value_loss",
    "train/approx_kl": "train/approx_kl",
    "train/clip_fraction": "train/clip_fraction",
    "train/entropy_loss": "train/entropy_loss",
}


class SB3CallbackAdapter(BaseCallback):
    """Runs this package's callbacks under SB3: once per PPO update it advances ``trainer.iteration``,
    puts the update's metrics in ``trainer.pending_metrics`` and calls ``callback.on_step()`` (False
    stops training), then ``trainer.log_iteration()`` if the trainer has one and
    ``callback.on_iteration_logged()``.

    SB3 has no hook right after an update: the update of iteration k is detected at the start of
    rollout k+1 (and at the end of training), through the model's update counter.

    Args:
        callback: e.g. ``CallbackList([DiscriminatorRetrainCallback(...), EvalCallback(...)])``; it is
            initialised with ``trainer`` unless ``init=False``.
        trainer: what the callbacks read: ``generator``, ``discriminator``, ``d_optimizer``, ``real_data``,
            ``test_data``, ``rng``, ``seed``, ``device``, ``iteration``, ``pending_metrics`` (an
            ``AdversarialTrainer``, or any object with those).
    """

    def __init__(self, callback: Callback, trainer: Any, init: bool = True) -> None:
        super().__init__()
        self.callback, self.trainer = callback, trainer
        if init:
            callback.init_callback(trainer)
        self._seen_updates = 0
        self._rollout_metrics: dict[str, float] = {}
        self._continue = True

    def _init_callback(self) -> None:
        self._seen_updates = self.model._n_updates

    def _on_step(self) -> bool:
        return self._continue

    def _on_rollout_start(self) -> None:
        self._after_update()

    def _on_rollout_end(self) -> None:
        buf = self.model.rollout_buffer
        self._rollout_metrics = {
            "train/mean_q": float(np.mean(buf.rewards)),
            "train/sample_nll": float(-np.mean(buf.log_probs)),
        }

    def _on_training_end(self) -> None:
        self._after_update()

    def _after_update(self) -> None:
        if self.model._n_updates == self._seen_updates:
            return
        self._seen_updates = self.model._n_updates
        tr = self.trainer
        tr.iteration += 1
        values = self.model.logger.name_to_value
        tr.pending_metrics.update({ours: float(values[k]) for k, ours in SB3_METRICS.items() if k in values})
        tr.pending_metrics.update(self._rollout_metrics)
        self._continue = bool(self.callback.on_step())
        if hasattr(tr, "log_iteration"):
            tr.log_iteration()
        self.callback.on_iteration_logged()


# ---------------------------------------------------------------------------------------------- the trainer
class PPOTrainer(AdversarialTrainer):
    """The adversarial phase with SB3 PPO on the batched env instead of REINFORCE.

    The trainer's ``generator`` is the policy's actor (:meth:`SeqGANPolicy.generator_view`), so the
    env's rollouts, D's negatives, the evaluation and ``generator_final.pt`` all use the live policy.
    Pass it to ``run_training`` as ``trainer_factory=functools.partial(PPOTrainer, ppo_config=...)``.

    Resuming restores the weights, both optimizers, D and torch's global RNG (SB3's action sampling), but
    not the env's rollout stream or SB3's NumPy minibatch order: unlike REINFORCE, a resumed PPO run is
    not bit-identical to a straight one.
    """

    metric_fields = METRIC_FIELDS + ["train/value_loss", "train/approx_kl", "train/clip_fraction", "train/entropy_loss"]

    def __init__(
        self,
        generator: Generator,
        discriminator: Discriminator,
        oracle: OracleLSTM,
        data: OracleData,
        config: TrainConfig,
        device: torch.device,
        out_dir,
        ppo_config: PPOConfig | None = None,
    ) -> None:
        super().__init__(generator, discriminator, oracle, data, config, device, out_dir)
        adv = config.adversarial
        if adv.reward != "mc":
            raise ValueError(f"PPO trains on the discriminator's reward: reward={adv.reward!r} is for REINFORCE")
        if adv.rollout_update_rate is not None:
            raise ValueError("PPO uses the current generator for rollouts: rollout_update_rate must be None")
        self.ppo_config = ppo_config or PPOConfig()
        c = self.ppo_config
        self.venv = TokenGenerationVectorEnv(
            c.num_envs, generator=generator, discriminator=discriminator, reward_mode=c.reward_mode,
            num_rollouts=adv.num_rollouts, temperature=c.temperature, device=device,
        )  # fmt: skip
        self.model = make_ppo(self.venv, generator, c, seed=derive_seed(config.seed, "ppo") % 2**31, device=device)
        self.generator = self.venv.generator  # the policy's actor (shared parameters)
        self._bar = None
        self._t_update = time.perf_counter()
        self._started = time.perf_counter()

    def train(self, callback: Callback | None = None, progress=None) -> None:
        callback = callback or CallbackList([])
        for cb in callback.callbacks if isinstance(callback, CallbackList) else [callback]:
            if isinstance(cb, DiscriminatorRetrainCallback) and self.venv not in cb.envs:
                cb.envs.append(self.venv)
        callback.init_callback(self)
        if self.logger is None:
            self.logger = MetricsLogger(
                self.out_dir / "metrics.csv", self.metric_fields, tensorboard_dir=self.out_dir / "tb"
            )
        self._started = time.perf_counter() - self.elapsed
        callback.on_training_start()
        if self.pending_metrics:  # the evaluation before the first update
            self.logger.log(self.iteration, {**self.pending_metrics, "time/elapsed_s": 0.0})
            self.pending_metrics = {}
        self._bar = _bar(progress, self.total_iterations, "adversarial (PPO)", self.iteration)
        remaining = self.total_iterations - self.iteration
        if remaining > 0:
            self._t_update = time.perf_counter()
            steps = remaining * self.ppo_config.num_envs * self.venv.seq_len
            self.model.learn(total_timesteps=steps, callback=SB3CallbackAdapter(callback, self, init=False))
        self._bar.close()
        callback.on_training_end()
        self.logger.close()

    def log_iteration(self) -> None:
        """Write the iteration's metrics row (called by the adapter after the callbacks' ``on_step``)."""
        now = time.perf_counter()
        self.elapsed = now - self._started
        self.pending_metrics["time/update_s"] = round(now - self._t_update, 3)
        self.pending_metrics["time/elapsed_s"] = round(self.elapsed, 2)
        self.logger.log(self.iteration, self.pending_metrics)
        self.pending_metrics = {}
        self._t_update = now
        if self._bar is not None:
            self._bar.update(1)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["ppo_policy"] = self.model.policy.state_dict()
        state["ppo_optim"] = self.model.policy.optimizer.state_dict()
        return state

    def load_checkpoint(self, path) -> None:
        super().load_checkpoint(path)
        state = torch.load(path, map_location=self.device, weights_only=True)
        self.model.policy.load_state_dict(state["ppo_policy"])
        self.model.policy.optimizer.load_state_dict(state["ppo_optim"])
