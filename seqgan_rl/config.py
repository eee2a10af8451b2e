"""Frozen dataclass configs. Defaults are the SeqGAN reference values (REFERENCE.md §3).

Every config validates itself in ``__post_init__`` and raises ``ValueError`` naming the bad field and
the fix. Configs are plain data: ``dataclasses.asdict`` gives what is saved next to a run. The presets that fill
them in live in ``seqgan_rl.presets``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from seqgan_rl.utils import check_temperature, require_transformers


def _check_finite(obj: object) -> None:
    """Every float field of a config is a finite number (NaN fails every range check below, an infinity not)."""
    for f in fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{type(obj).__name__}.{f.name} must be a finite number, got {value!r}")


def _check_positive(obj: object, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if not (isinstance(value, int | float) and value > 0):
            raise ValueError(f"{type(obj).__name__}.{name} must be > 0, got {value!r}")


@dataclass(frozen=True)
class GeneratorConfig:
    """The LSTM generator (and oracle) architecture."""

    vocab_size: int = 5000
    """V: number of tokens (ids 0..V-1)."""
    seq_len: int = 20
    """T: length of every generated sequence."""
    embed_dim: int = 32
    """Token embedding size."""
    hidden_dim: int = 32
    """LSTM hidden size (of every layer)."""
    num_layers: int = 1
    """Stacked LSTM layers (the paper: 1). The output layer reads the last one."""
    dropout: float = 0.0
    """Variational dropout during maximum-likelihood training (Gal & Ghahramani 2016): the input of every LSTM
    layer and the last layer's output are multiplied by a mask drawn once per sequence and reused at every
    step. Off in evaluation, in sampling and in the policy-gradient phase (the policy that samples is the one
    whose gradient is taken). The paper: 0."""
    start_token: int = 0
    """Id whose embedding is fed as the first input. In the paper it is also an ordinary word."""
    init_std: float = 0.1
    """All parameters, biases included, are drawn from N(0, init_std) (the reference generator)."""
    init: str = "normal"
    """``"normal"``: every parameter N(0, init_std) (the reference code); ``"torch"``: PyTorch's defaults (embedding
    N(0, 1), LSTM and output layer U(-1/sqrt(H), 1/sqrt(H))), what the published strong MLE models start from."""
    eos_token: int | None = None
    """Real text: the end token. Samples are padded with ``pad_token`` after it, and NLL / MLE count the
    positions up to and including it. ``None`` (the oracle benchmark): fixed-length sequences."""
    pad_token: int | None = None
    """Real text: the padding id after the end token (set together with ``eos_token``)."""

    def __post_init__(self) -> None:
        _check_finite(self)
        _check_positive(self, "vocab_size", "seq_len", "embed_dim", "hidden_dim", "num_layers", "init_std")
        if self.init not in ("normal", "torch"):
            raise ValueError(f"GeneratorConfig.init={self.init!r}: choose 'normal' (the reference) or 'torch'")
        if not (isinstance(self.num_layers, int) and 0.0 <= self.dropout < 1.0):
            raise ValueError(
                f"GeneratorConfig: num_layers must be an integer >= 1 and dropout in [0, 1), got {self.num_layers!r} "
                f"and {self.dropout!r}"
            )
        if not 0 <= self.start_token < self.vocab_size:
            raise ValueError(
                f"GeneratorConfig.start_token={self.start_token} must be a token id in [0, {self.vocab_size})"
            )
        if (self.eos_token is None) != (self.pad_token is None):
            raise ValueError("GeneratorConfig: set eos_token and pad_token together (real text) or neither")
        if self.eos_token is not None and not (
            0 <= self.eos_token < self.vocab_size and 0 <= self.pad_token < self.vocab_size
            and self.eos_token != self.pad_token
        ):  # fmt: skip
            raise ValueError(
                f"GeneratorConfig: eos_token={self.eos_token} and pad_token={self.pad_token} must be distinct "
                f"token ids in [0, {self.vocab_size})"
            )


TRANSFORMER_ARCHITECTURES = ("gpt2", "llama")


@dataclass(frozen=True)
class TransformerConfig:
    """A Hugging Face ``transformers`` causal LM as the generator (``models.TransformerGenerator``; the ``hf`` extra).

    Built from its size (``architecture``, ``num_layers``, ``hidden_dim``, ``num_heads``; GPT-2- or Llama-style, input
    and output embeddings tied) or, with ``pretrained``, loaded from a folder written by ``save_pretrained`` (or a hub
    id where the hub is reachable), whose own architecture then applies. Token ids are the task's: token i is the
    model's id i, the first input of every sequence is ``start_token`` (the model's BOS), and a model whose vocabulary
    is larger than ``vocab_size`` has its logits beyond it dropped."""

    vocab_size: int = 5000
    seq_len: int = 20
    architecture: str = "gpt2"
    """``"gpt2"`` (learned absolute positions, GELU MLP, LayerNorm) or ``"llama"`` (rotary positions, SwiGLU,
    RMSNorm); with ``pretrained``, the loaded model's own ``model_type``."""
    num_layers: int = 2
    hidden_dim: int = 128
    """The model width (``n_embd`` / ``hidden_size``); the MLP is 4x as wide."""
    num_heads: int = 4
    dropout: float = 0.1
    """Dropout of the residual, embedding and attention paths during maximum-likelihood training (off when sampling
    and in the policy-gradient phase, as the LSTM's)."""
    start_token: int = 0
    eos_token: int | None = None
    pad_token: int | None = None
    pretrained: str | None = None
    """A ``save_pretrained`` folder or hub id to start from instead of a fresh model of the size above."""
    kind: str = "transformer"
    """Tells a saved config from the LSTM's ``GeneratorConfig`` (``models.generator_from_config``)."""

    def __post_init__(self) -> None:
        _check_finite(self)
        _check_transformer_sizes(self)
        GeneratorConfig(
            vocab_size=self.vocab_size,
            seq_len=self.seq_len,
            start_token=self.start_token,
            eos_token=self.eos_token,
            pad_token=self.pad_token,
        )  # the token checks, with their messages

    @classmethod
    def pretrained_from(cls, path_or_id: str, **fields: Any) -> TransformerConfig:
        """The config of a model saved with ``save_pretrained`` (or a hub id): its architecture and sizes read from
        its ``config.json``, the task's ``fields`` (``vocab_size``, ``seq_len``, tokens) given."""
        hf = load_hf_config(path_or_id, "--generator-from")
        if fields.get("vocab_size", 0) > hf.vocab_size:
            raise ValueError(
                f"--generator-from {path_or_id}: its vocabulary ({hf.vocab_size} ids) is smaller than the task's "
                f"({fields['vocab_size']})"
            )
        sizes = {
            "architecture": hf.model_type, "num_layers": hf.num_hidden_layers, "hidden_dim": hf.hidden_size,
            "num_heads": hf.num_attention_heads, "dropout": 0.0,
        }  # fmt: skip
        return cls(**{**sizes, **fields, "pretrained": str(path_or_id)})


def _check_transformer_sizes(config: Any) -> None:
    """The checks a transformer's config shares (``TransformerConfig``, ``TransformerDiscriminatorConfig``): positive
    sizes, its kind, a known architecture (unless loaded from ``pretrained``), heads that divide the width (with an
    even head size for llama's rotary positions) and a dropout in [0, 1)."""
    name = type(config).__name__
    _check_positive(config, "vocab_size", "seq_len", "num_layers", "hidden_dim", "num_heads")
    if config.kind != "transformer":
        raise ValueError(f"{name}.kind must be 'transformer', got {config.kind!r}")
    if config.pretrained is None and config.architecture not in TRANSFORMER_ARCHITECTURES:
        raise ValueError(f"{name}.architecture={config.architecture!r}: choose one of {TRANSFORMER_ARCHITECTURES}")
    head = config.hidden_dim // config.num_heads
    if config.hidden_dim % config.num_heads or (config.architecture == "llama" and head % 2):
        raise ValueError(
            f"{name}: hidden_dim={config.hidden_dim} must be a multiple of num_heads={config.num_heads} "
            "(with an even head size for llama's rotary positions)"
        )
    if not 0.0 <= config.dropout < 1.0:
        raise ValueError(f"{name}.dropout must be in [0, 1), got {config.dropout!r}")


def load_hf_config(path_or_id: str, option: str) -> Any:
    """The ``transformers`` config of a ``save_pretrained`` folder or hub id, or a ``ValueError`` that names
    ``option`` (``--generator-from``, ``--discriminator-from``) and what went wrong."""
    if not Path(path_or_id).expanduser().exists() and str(path_or_id).startswith((".", "/", "~")):
        raise ValueError(f"{option} {path_or_id}: no such folder (a save_pretrained folder or a hub id)")
    transformers = require_transformers()
    try:
        return transformers.AutoConfig.from_pretrained(path_or_id)
    except (OSError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"{option} {path_or_id}: not a transformers model ({first})") from exc


PAPER_FILTER_SIZES = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 20)
PAPER_NUM_FILTERS = (100, 200, 200, 200, 200, 100, 100, 100, 100, 100, 160, 160)


@dataclass(frozen=True)
class DiscriminatorConfig:
    """The CNN discriminator. ``DiscriminatorConfig.paper()`` is the reference model."""

    vocab_size: int = 5000
    seq_len: int = 20
    embed_dim: int = 64
    filter_sizes: tuple[int, ...] = PAPER_FILTER_SIZES
    """Convolution widths (in tokens). Widths longer than ``seq_len`` are an error."""
    num_filters: tuple[int, ...] = PAPER_NUM_FILTERS
    """Filters per width, same length as ``filter_sizes``."""
    dropout: float = 0.25
    """Dropout before the output layer during training (the reference keeps 0.75)."""
    l2_reg: float = 0.2
    """L2 penalty on the output layer only: ``l2_reg * (sum(W**2) + sum(b**2)) / 2``."""

    def __post_init__(self) -> None:
        _check_finite(self)
        _check_positive(self, "vocab_size", "seq_len", "embed_dim")
        if len(self.filter_sizes) == 0 or len(self.filter_sizes) != len(self.num_filters):
            raise ValueError(
                "DiscriminatorConfig: filter_sizes and num_filters must be non-empty and of equal length, "
                f"got {len(self.filter_sizes)} and {len(self.num_filters)}"
            )
        if any(w < 1 or w > self.seq_len for w in self.filter_sizes):
            raise ValueError(
                f"DiscriminatorConfig.filter_sizes={self.filter_sizes}: every width must be in 1..seq_len"
                f" ({self.seq_len}); drop the longer widths for short sequences"
            )
        if any(n < 1 for n in self.num_filters):
            raise ValueError(f"DiscriminatorConfig.num_filters={self.num_filters}: all must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"DiscriminatorConfig.dropout={self.dropout} must be in [0, 1)")
        if self.l2_reg < 0:
            raise ValueError(f"DiscriminatorConfig.l2_reg={self.l2_reg} must be >= 0")

    @property
    def total_filters(self) -> int:
        return sum(self.num_filters)

    @classmethod
    def paper(cls, vocab_size: int = 5000, seq_len: int = 20) -> DiscriminatorConfig:
        """The reference CNN: widths 1-10, 15, 20 with 1,720 filters (widths > seq_len are dropped)."""
        pairs = [(w, n) for w, n in zip(PAPER_FILTER_SIZES, PAPER_NUM_FILTERS, strict=True) if w <= seq_len]
        return cls(
            vocab_size=vocab_size,
            seq_len=seq_len,
            filter_sizes=tuple(w for w, _ in pairs),
            num_filters=tuple(n for _, n in pairs),
        )

    @classmethod
    def light(cls, vocab_size: int = 5000, seq_len: int = 20) -> DiscriminatorConfig:
        """A CPU-friendly CNN: widths 2-5 with 64 filters each, same embedding, highway and head, and
        dropout 0.5 (the paper CNN: 0.25). With 0.25 this CNN memorised the 9,984 training sequences
        within the cpu schedule (mean D 0.88 on them, 0.30 on held-out oracle samples, 0.15 on G's) and
        NLL-oracle stalled at 8.74-8.77; with 0.5 it reached 8.67 (benchmarks/results/cpu_schedule_experiments.md)."""
        widths = tuple(w for w in (2, 3, 4, 5) if w <= seq_len) or (seq_len,)
        return cls(
            vocab_size=vocab_size,
            seq_len=seq_len,
            filter_sizes=widths,
            num_filters=tuple(64 for _ in widths),
            dropout=0.5,
        )

    @classmethod
    def preset(cls, name: str, vocab_size: int = 5000, seq_len: int = 20) -> DiscriminatorConfig:
        """``"paper"`` or ``"light"``."""
        if name not in DISCRIMINATOR_PRESETS:
            raise ValueError(f"unknown discriminator preset {name!r}: choose one of {DISCRIMINATOR_PRESETS}")
        return getattr(cls, name)(vocab_size=vocab_size, seq_len=seq_len)


DISCRIMINATOR_PRESETS = ("paper", "light")


@dataclass(frozen=True)
class MLEConfig:
    """Maximum-likelihood pre-training of the generator (reference: Adam 0.01, clip 5, batch 64)."""

    epochs: int = 120
    """Passes over the training set (reference code 120; paper era 240)."""
    batch_size: int = 64
    lr: float = 0.01
    grad_clip: float = 5.0
    """Global gradient-norm clip."""
    eval_every: int = 5
    """Evaluate the generator every this many epochs, starting with the fresh one (epoch 0), and after the
    last; 0: the final MLE generator alone (the one the adversarial phase starts from)."""
    num_valid: int = 0
    """Sequences of the *training* data held out as a validation set (never the test set), drawn by the seed:
    G trains on the rest and its NLL on them is measured after every epoch (``eval/nll_valid``, also in every
    later evaluation). 0: no validation set, the paper's protocol (the ``paper`` and ``cpu`` presets)."""
    patience: int | None = None
    """With a validation set: stop once its NLL has not improved for this many epochs (``None``: run all
    ``epochs``)."""
    use_best: bool = True
    """With a validation set: the pre-training ends with the generator of the epoch of lowest validation NLL
    (what the adversarial phase starts from); False: with the last epoch's."""

    def __post_init__(self) -> None:
        _check_finite(self)
        _check_positive(self, "epochs", "batch_size", "lr", "grad_clip")
        if not (isinstance(self.eval_every, int) and self.eval_every >= 0):
            raise ValueError(f"MLEConfig.eval_every must be >= 0 (0: the final generator), got {self.eval_every!r}")
        if not (isinstance(self.num_valid, int) and self.num_valid >= 0):
            raise ValueError(f"MLEConfig.num_valid must be an integer >= 0 (0: no validation), got {self.num_valid!r}")
        if self.patience is not None and not (isinstance(self.patience, int) and self.patience >= 1):
            raise ValueError(f"MLEConfig.patience must be >= 1 or None, got {self.patience!r}")
        if self.patience is not None and self.num_valid == 0:
            raise ValueError("MLEConfig.patience needs a validation set: set num_valid > 0 (or patience=None)")


@dataclass(frozen=True)
class DiscriminatorTrainConfig:
    """A discriminator schedule: ``rounds`` x (draw fresh negatives; ``epochs`` passes over real + fake).

    Reference pre-training: 50 rounds x 3 epochs, batch 64, Adam 1e-4, negatives as many as positives.
    """

    rounds: int = 50
    epochs: int = 3
    batch_size: int = 64
    lr: float = 1e-4
    num_negatives: int | None = None
    """Fresh generator samples per round; ``None`` means as many as there are real sequences."""
    max_steps_per_round: int | None = None
    """Cap on optimizer steps per round (a cut-down CPU schedule); ``None`` means full epochs."""
    weight_decay: float = 0.0
    """L2 penalty on all of D's parameters through Adam's ``weight_decay`` (0 in the reference, whose
    only L2 is on the output layer)."""

    def __post_init__(self) -> None:
        _check_finite(self)
        _check_positive(self, "rounds", "epochs", "batch_size", "lr")
        if self.weight_decay < 0:
            raise ValueError(f"DiscriminatorTrainConfig.weight_decay={self.weight_decay} must be >= 0")
        if self.num_negatives is not None and self.num_negatives < 1:
            raise ValueError(f"DiscriminatorTrainConfig.num_negatives={self.num_negatives} must be >= 1 or None")
        if self.max_steps_per_round is not None and self.max_steps_per_round < 1:
            raise ValueError(
                f"DiscriminatorTrainConfig.max_steps_per_round={self.max_steps_per_round} must be >= 1 or None"
            )


@dataclass(frozen=True)
class OracleDataConfig:
    """The synthetic benchmark's data: sequences drawn from the oracle."""

    num_train: int = 9984
    """Training-set size (the reference code draws 156 x 64 = 9,984)."""
    num_test: int = 9984
    """Held-out oracle samples for NLL-test (never trained on)."""
    num_eval_samples: int = 9984
    """Generator samples scored by the oracle for NLL-oracle (the reference: 9,984)."""

    def __post_init__(self) -> None:
        _check_finite(self)
        _check_positive(self, "num_train", "num_test", "num_eval_samples")


@dataclass(frozen=True)
class TransformerDiscriminatorConfig:
    """A Hugging Face sequence classifier as D (``models.TransformerDiscriminator``; the ``hf`` extra): an
    ``AutoModelForSequenceClassification`` with two labels (index 1 = real), built from its size (GPT-2- or
    Llama-style) or, with ``pretrained``, loaded from a ``save_pretrained`` folder (its own architecture then
    applies). It reads the task's token ids (G's tokenizer or vocabulary); on real text the positions after the end
    token are masked out of its attention and it pools at the end token."""

    vocab_size: int = 5000
    seq_len: int = 20
    architecture: str = "gpt2"
    num_layers: int = 1
    hidden_dim: int = 64
    num_heads: int = 4
    dropout: float = 0.1
    eos_token: int | None = None
    """Real text: the end token (what follows it is padding). ``None``: the oracle benchmark (no padding)."""
    pad_token: int | None = None
    pretrained: str | None = None
    """A ``save_pretrained`` folder (or hub id) of a sequence classifier with two labels."""
    kind: str = "transformer"

    def __post_init__(self) -> None:
        _check_finite(self)
        _check_transformer_sizes(self)
        GeneratorConfig(
            vocab_size=self.vocab_size, seq_len=self.seq_len, eos_token=self.eos_token, pad_token=self.pad_token
        )  # the token checks, with their messages

    @property
    def embed_dim(self) -> int:
        """The width of its token embedding (what the memory check counts)."""
        return self.hidden_dim


@dataclass(frozen=True)
class PretrainConfig:
    """Everything ``scripts/pretrain.py`` runs: data, G, MLE, D and D pre-training."""

    seed: int = 0
    generator: GeneratorConfig | TransformerConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig | TransformerDiscriminatorConfig = field(
        default_factory=DiscriminatorConfig.paper
    )
    data: OracleDataConfig = field(default_factory=OracleDataConfig)
    mle: MLEConfig = field(default_factory=MLEConfig)
    d_pretrain: DiscriminatorTrainConfig = field(default_factory=DiscriminatorTrainConfig)

    def __post_init__(self) -> None:
        _check_finite(self)
        g, d = self.generator, self.discriminator
        if self.mle.num_valid and g.eos_token is None and self.mle.num_valid >= self.data.num_train:
            raise ValueError(
                f"MLEConfig.num_valid={self.mle.num_valid} holds out all of the {self.data.num_train} training "
                "sequences: hold out fewer (e.g. a tenth)"
            )
        if (g.vocab_size, g.seq_len) != (d.vocab_size, d.seq_len):
            raise ValueError(
                f"generator (V={g.vocab_size}, T={g.seq_len}) and discriminator (V={d.vocab_size}, "
                f"T={d.seq_len}) must share vocabulary size and sequence length"
            )


BASELINES = ("none", "batch_mean", "position_mean", "rollout_value", "rloo")


@dataclass(frozen=True)
class ReinforceConfig:
    """The generator's policy-gradient update (reference: Adam 0.01, clip 5, batch 64, sum, no baseline)."""

    lr: float = 0.01
    grad_clip: float = 5.0
    """Global gradient-norm clip."""
    batch_size: int = 64
    """Sequences per update."""
    baseline: str = "none"
    """``"none"`` (paper), ``"batch_mean"`` (subtract the mean Q of the batch), ``"position_mean"``
    (subtract the mean Q of each position over the batch), ``"rollout_value"`` (A_t = Q_t - Q_{t-1}: the
    rollouts of the prefix before y_t already estimate its value; Q_0 = the batch's mean Q_1) or ``"rloo"``
    (leave-one-out: subtract the mean Q of the same position over the *other* sequences of the batch, an
    unbiased baseline; RLOO with the batch as the group)."""
    normalize: bool = False
    """Divide advantages by their standard deviation over the batch."""
    entropy_coef: float = 0.0
    """Weight of an entropy bonus (0: none, as in the paper)."""
    reduction: str = "sum"
    """``"sum"`` over the B x T tokens (paper) or ``"mean"``."""
    temperature: float = 1.0
    """The policy's temperature: G's logits are divided by it when sampling, in the loss, in the rollouts
    and for D's negatives."""

    def __post_init__(self) -> None:
        _check_finite(self)
        if not (self.lr > 0 and self.grad_clip > 0 and self.batch_size >= 1):
            raise ValueError(
                f"ReinforceConfig: lr, grad_clip and batch_size must be > 0, got {self.lr}, {self.grad_clip}, "
                f"{self.batch_size}"
            )
        check_temperature(self.temperature, "ReinforceConfig.temperature")
        if self.baseline not in BASELINES:
            raise ValueError(f"ReinforceConfig.baseline={self.baseline!r}: choose one of {BASELINES}")
        if self.reduction not in ("sum", "mean"):
            raise ValueError(f"ReinforceConfig.reduction={self.reduction!r}: choose 'sum' or 'mean'")
        if self.entropy_coef < 0:
            raise ValueError(f"ReinforceConfig.entropy_coef={self.entropy_coef} must be >= 0")

    @property
    def sequences_per_update(self) -> int:
        return self.batch_size


GAMMA_FOR_MODE = {"q": 0.0, "shaped": 1.0, "terminal": 1.0}
"""The discount each reward mode of the environment needs (``seqgan_rl.envs.MCRolloutReward``)."""


class _SB3OnPolicy:
    """What the SB3 agents' configs share: the reward mode that fixes the discount, the sequences per update."""

    num_envs: int
    reward_mode: str
    gamma: float | None
    temperature: float

    def _check_sb3(self, name: str) -> None:
        if self.reward_mode not in GAMMA_FOR_MODE:
            raise ValueError(f"{name}.reward_mode={self.reward_mode!r}: choose one of {tuple(GAMMA_FOR_MODE)}")
        need = GAMMA_FOR_MODE[self.reward_mode]
        if self.gamma is not None and self.gamma != need:
            raise ValueError(
                f"{name}: reward_mode={self.reward_mode!r} needs gamma={need:g}, got {self.gamma}: 'q' rewards are "
                "already returns (gamma 0); 'shaped'/'terminal' rewards must be summed (gamma 1)"
            )
        check_temperature(self.temperature, f"{name}.temperature")
        if not 0.0 <= self.gae_lambda <= 1.0:
            raise ValueError(f"{name}.gae_lambda={self.gae_lambda} must be in [0, 1]")

    @property
    def discount(self) -> float:
        return GAMMA_FOR_MODE[self.reward_mode] if self.gamma is None else float(self.gamma)

    @property
    def sequences_per_update(self) -> int:
        return self.num_envs


@dataclass(frozen=True)
class PPOConfig(_SB3OnPolicy):
    """Stable-Baselines3 PPO's update for SeqGAN's generator (``seqgan_rl.agents.sb3_ppo``). One PPO iteration
    collects one sequence per sub-env (``num_envs`` sequences of T tokens: ``n_steps = T``), the same budget
    as one REINFORCE update.

    Reward mode and discount go together: ``"q"`` with gamma 0 (each reward is SeqGAN's Q_t, already a
    return estimate, so the advantage is Q_t - V(s_t)); ``"shaped"`` or ``"terminal"`` with gamma 1 (the
    rewards sum to D(Y)). Other pairs are refused.
    """

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
    """The policy's sampling temperature (its logits are divided by it; also in the rollouts)."""

    def __post_init__(self) -> None:
        _check_finite(self)
        self._check_sb3("PPOConfig")
        if not (self.num_envs >= 1 and self.n_epochs >= 1 and self.batch_size >= 1):
            raise ValueError("PPOConfig: num_envs, n_epochs and batch_size must be >= 1")
        if not (self.lr > 0 and self.clip_range > 0 and self.max_grad_norm > 0):
            raise ValueError("PPOConfig: lr, clip_range and max_grad_norm must be > 0")


@dataclass(frozen=True)
class A2CConfig(_SB3OnPolicy):
    """Stable-Baselines3 A2C's update for SeqGAN's generator (``seqgan_rl.agents.sb3_ppo.A2CAgent``; Mnih et
    al. 2016, synchronous): one rollout of ``num_envs`` sequences of T tokens, then a single gradient step on
    all of it (policy gradient with the critic's advantage, value loss, entropy bonus). SB3's defaults: RMSprop
    at 7e-4, no advantage normalisation. Reward modes and discounts as for ``PPOConfig``."""

    num_envs: int = 64
    """Sequences generated per update (REINFORCE's batch size)."""
    lr: float = 7e-4
    """Learning rate (actor and critic)."""
    gamma: float | None = None
    """Discount; ``None`` picks the one the reward mode needs (``q``: 0, ``shaped``/``terminal``: 1)."""
    gae_lambda: float = 1.0
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    normalize_advantage: bool = False
    use_rms_prop: bool = True
    """RMSprop (SB3's and the A3C paper's choice); False: Adam."""
    reward_mode: str = "q"
    """``"q"`` (SeqGAN's Q, gamma 0), ``"shaped"`` or ``"terminal"`` (gamma 1)."""
    value_net: tuple[int, ...] = (64,)
    """Hidden sizes of the critic's MLP head (on its own embedding + LSTM features)."""
    temperature: float = 1.0
    """The policy's sampling temperature (its logits are divided by it; also in the rollouts)."""

    def __post_init__(self) -> None:
        _check_finite(self)
        self._check_sb3("A2CConfig")
        if not (self.num_envs >= 1 and self.lr > 0 and self.max_grad_norm > 0):
            raise ValueError("A2CConfig: num_envs must be >= 1, lr and max_grad_norm > 0")


@dataclass(frozen=True)
class KLReinforceConfig(ReinforceConfig):
    """REINFORCE with a KL penalty towards the generator it started from (the MLE checkpoint), as TRL's PPO
    regularises: each token's return becomes ``Q_t - kl_coef * sum_{s >= t} (log pi(y_s) - log pi_MLE(y_s))``
    (the penalty of every later token is part of the return from t)."""

    kl_coef: float = 0.05
    """beta, the weight of the per-token log-ratio to the reference policy."""

    def __post_init__(self) -> None:
        super().__post_init__()  # its checks, _check_finite among them, cover these fields too
        if not self.kl_coef >= 0:
            raise ValueError(f"KLReinforceConfig.kl_coef={self.kl_coef} must be >= 0")


@dataclass(frozen=True)
class ColdGANConfig(ReinforceConfig):
    """ColdGAN-style REINFORCE (Scialom et al. 2020): sequences are sampled from a colder copy of the policy,
    pi_cold = softmax(logits / cold_temperature), and each token's return is multiplied by the truncated
    importance weight ``min(pi(y_t | y_<t) / pi_cold(y_t | y_<t), weight_clip)`` (no gradient through it)."""

    cold_temperature: float = 0.8
    """The behaviour policy's temperature (below the policy's ``temperature``: colder)."""
    weight_clip: float = 2.0
    """The importance weights' upper bound (truncated importance sampling)."""

    def __post_init__(self) -> None:
        super().__post_init__()  # its checks, _check_finite among them, cover these fields too
        check_temperature(self.cold_temperature, "ColdGANConfig.cold_temperature")
        if not self.weight_clip > 0:
            raise ValueError(f"ColdGANConfig.weight_clip={self.weight_clip} must be > 0")


@dataclass(frozen=True)
class GRPOConfig:
    """GRPO-style update (Shao et al. 2024, DeepSeekMath): group-normalised advantages, PPO's clipped ratio over
    a few passes on each batch, and a KL penalty towards the generator it started from (the MLE checkpoint)."""

    batch_size: int = 64
    """Sequences sampled per update (as REINFORCE's, the comparison's budget)."""
    group_size: int = 8
    """Sequences per group: each Q_t is normalised by the mean and std of its group's Q at the same position.
    ``batch_size`` must be a multiple of it."""
    lr: float = 0.01
    """Adam's learning rate (REINFORCE's)."""
    grad_clip: float = 5.0
    epochs: int = 4
    """Optimisation passes over each batch (the ratio to the sampling policy is clipped from the second on)."""
    clip_eps: float = 0.2
    """PPO's clip range: the ratio pi / pi_old is clipped to [1 - eps, 1 + eps]."""
    kl_coef: float = 0.04
    """beta, the weight of the KL estimate to the reference policy (GRPO's default)."""
    temperature: float = 1.0
    """Sampling temperature of the policy (the reference scores at 1)."""

    def __post_init__(self) -> None:
        _check_finite(self)
        _check_positive(self, "batch_size", "group_size", "lr", "grad_clip", "epochs", "clip_eps")
        if self.group_size < 2 or self.batch_size % self.group_size:
            raise ValueError(
                f"GRPOConfig: group_size={self.group_size} must be >= 2 and divide batch_size={self.batch_size}"
            )
        if not self.kl_coef >= 0:
            raise ValueError(f"GRPOConfig.kl_coef={self.kl_coef} must be >= 0")
        check_temperature(self.temperature, "GRPOConfig.temperature")

    @property
    def sequences_per_update(self) -> int:
        return self.batch_size


AGENT_CONFIGS: dict[str, type] = {
    "reinforce": ReinforceConfig, "reinforce_kl": KLReinforceConfig, "coldgan": ColdGANConfig, "grpo": GRPOConfig,
    "ppo": PPOConfig, "a2c": A2CConfig,
}  # fmt: skip
"""Each algorithm's config class, by the name ``TrainConfig.algo`` (and ``--algo``) uses; the agents
themselves are in ``seqgan_rl.agents.AGENTS``."""
SB3_ALGOS = ("ppo", "a2c")
"""The agents that run Stable-Baselines3 on the vector env (one process, fixed-length sequences, MC reward)."""

REWARDS = ("mc", "constant", "maligan", "maligan_d", "rankgan", "optimal", "optimal_log")
"""The adversarial phase's rewards (``AdversarialConfig.reward``); all but ``"constant"`` and the optimal ones retrain
D."""
OPTIMAL_REWARDS = ("optimal", "optimal_log")
"""The rewards of the Bayes-optimal D* (oracle access: diagnostics, never benchmark rows)."""
D_KINDS = ("pretrained", "lstm_from_g")
"""The discriminators the adversarial phase can retrain (``AdversarialConfig.d_kind``)."""
ROLLOUT_REWARDS = ("mc", "rankgan", *OPTIMAL_REWARDS)
"""The rewards computed through Monte-Carlo rollouts (``num_rollouts`` applies)."""


@dataclass(frozen=True)
class AdversarialConfig:
    """The adversarial phase. Defaults are the reference code's: 200 iterations of (one generator
    update from 64 sequences with N = 16 rollouts, then 5 x (fresh negatives, 3 D epochs))."""

    iterations: int = 200
    """Generator updates."""
    num_rollouts: int = 16
    """N: Monte-Carlo rollouts per Q estimate."""
    reward: str = "mc"
    """``"mc"``: SeqGAN's Q from D; ``"constant"``: every token gets ``constant_reward`` (a control:
    no D, no rollouts; what self-sharpening alone does); ``"maligan"`` / ``"maligan_d"``: MaliGAN's
    normalised importance weight of the whole sequence, from D's odds D/(1-D) or from D itself (Texygen's
    port; ``seqgan_rl.envs.MaliGANReward``): no rollouts; ``"rankgan"``: SeqGAN's MC-rollout Q with RankGAN's
    ranker in place of D (``seqgan_rl.models.Ranker``, started from the pre-trained D, retrained on its ranking
    loss by the same callback); ``"optimal"``: SeqGAN's MC-rollout Q of the Bayes-optimal discriminator
    D*(y) = p_oracle / (p_oracle + p_G) (``seqgan_rl.models.optimal``): a diagnostic with oracle access on the
    oracle benchmark, never a benchmark row; D is not used or retrained; ``"optimal_log"``: the same with log D*
    in place of D* (Goodfellow et al.'s non-saturating generator objective: D* of a G far from the oracle is
    exponentially small on nearly every sequence, its log is not)."""
    constant_reward: float = 1.0
    d_every: int = 1
    """Retrain D after every this many generator updates."""
    d_train: DiscriminatorTrainConfig = field(
        default_factory=lambda: DiscriminatorTrainConfig(rounds=5, epochs=3, lr=1e-4)
    )
    """The D retraining schedule each time it fires."""
    eval_every: int = 5
    """Evaluate every this many updates (and before the first)."""
    checkpoint_every: int = 5
    rollout_update_rate: float | None = None
    """``None``: rollouts use the current generator (what the reference code does). A float r keeps an
    EMA copy ``beta <- r beta + (1 - r) theta`` instead: a deviation, for study."""
    real_data: str = "train"
    """D's real class when it is retrained: ``"train"`` (the training sequences, as the paper) or ``"oracle"``:
    fresh oracle samples, none of them a training or test sequence (``seqgan_rl.data.oracle_data.OracleFedReal``;
    a diagnostic with oracle access on the oracle benchmark, never a benchmark row)."""
    real_pool: int | None = None
    """With ``real_data="oracle"``: ``None`` draws fresh sequences for every round; N draws a pool of N once."""
    d_kind: str = "pretrained"
    """The D the adversarial phase retrains: ``"pretrained"`` (the pre-training's, as the paper) or
    ``"lstm_from_g"``: a fresh LSTM classifier started from the pre-trained generator's embedding and first LSTM
    layer (``seqgan_rl.models.RecurrentDiscriminator``; the discriminator screen's best learner given enough real
    data)."""
    d_warmup_rounds: int = 0
    """Rounds of ``d_train`` run once before the first generator update (a D that starts fresh, or on another
    real class, learns first)."""

    def __post_init__(self) -> None:
        _check_finite(self)
        _check_positive(self, "num_rollouts", "d_every", "eval_every", "checkpoint_every")
        if self.real_data not in ("train", "oracle"):
            raise ValueError(f"AdversarialConfig.real_data={self.real_data!r}: choose 'train' or 'oracle'")
        if self.real_pool is not None and (self.real_data != "oracle" or self.real_pool < 1):
            raise ValueError(
                f"AdversarialConfig.real_pool={self.real_pool}: a pool of >= 1 oracle samples, with real_data='oracle'"
            )
        if self.iterations < 0:
            raise ValueError(f"AdversarialConfig.iterations={self.iterations} must be >= 0")
        if self.d_kind not in D_KINDS:
            raise ValueError(f"AdversarialConfig.d_kind={self.d_kind!r}: choose one of {D_KINDS}")
        if self.d_warmup_rounds < 0:
            raise ValueError(f"AdversarialConfig.d_warmup_rounds={self.d_warmup_rounds} must be >= 0")
        no_d = self.reward in ("constant", *OPTIMAL_REWARDS)
        if (self.d_kind != "pretrained" or self.d_warmup_rounds) and (no_d or self.reward == "rankgan"):
            raise ValueError(
                f"AdversarialConfig: d_kind={self.d_kind!r}, d_warmup_rounds={self.d_warmup_rounds} set the D that is "
                f"retrained; reward={self.reward!r} " + ("retrains no D" if no_d else "retrains its CNN ranker")
            )
        if self.reward not in REWARDS:
            raise ValueError(f"AdversarialConfig.reward={self.reward!r}: choose one of {REWARDS}")
        if self.rollout_update_rate is not None and not 0.0 <= self.rollout_update_rate < 1.0:
            raise ValueError(f"AdversarialConfig.rollout_update_rate={self.rollout_update_rate} must be in [0, 1)")


@dataclass(frozen=True)
class TrainConfig:
    """Everything ``scripts/train_agent.py`` runs: pre-training, then the adversarial phase with one agent."""

    preset: str = "paper"
    seed: int = 0
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    algo: str = "reinforce"
    """The agent: a key of ``AGENT_CONFIGS`` (``"reinforce"``, ``"reinforce_kl"``, ``"coldgan"``, ``"grpo"``, ``"ppo"``,
    ``"a2c"``);
    ``agent`` is its config."""
    agent: ReinforceConfig | GRPOConfig | PPOConfig | A2CConfig = field(default_factory=ReinforceConfig)
    adversarial: AdversarialConfig = field(default_factory=AdversarialConfig)

    def __post_init__(self) -> None:
        _check_finite(self)
        if self.pretrain.seed != self.seed:
            raise ValueError(f"TrainConfig.seed={self.seed} differs from pretrain.seed={self.pretrain.seed}")
        if self.algo not in AGENT_CONFIGS:
            raise ValueError(f"TrainConfig.algo={self.algo!r}: choose one of {tuple(AGENT_CONFIGS)}")
        if type(self.agent) is not AGENT_CONFIGS[self.algo]:  # exactly: KLReinforceConfig is a ReinforceConfig, ...
            raise ValueError(
                f"TrainConfig: algo={self.algo!r} needs a {AGENT_CONFIGS[self.algo].__name__}, "
                f"got a {type(self.agent).__name__}"
            )
        adv = self.adversarial
        if adv.d_kind == "lstm_from_g" and isinstance(self.pretrain.generator, TransformerConfig):
            raise ValueError(
                "AdversarialConfig.d_kind='lstm_from_g' starts D from the LSTM generator's weights; a transformer "
                "generator has none: use d_kind='pretrained'"
            )
        if self.algo in SB3_ALGOS:
            name = self.algo.upper()
            if adv.reward != "mc":
                raise ValueError(f"{name} trains on the discriminator's reward: reward={adv.reward!r} is for REINFORCE")
            if adv.rollout_update_rate is not None:
                raise ValueError(f"{name} uses the current generator for rollouts: rollout_update_rate must be None")
            if self.pretrain.generator.eos_token is not None:
                raise ValueError(
                    f"{name} runs on fixed-length sequences (the oracle benchmark): its policy finds the prefix by the "
                    "pad token, which real text can generate; use algo='reinforce' for text"
                )
