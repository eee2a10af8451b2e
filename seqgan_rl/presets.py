"""The presets: every named set of hyperparameters, in one place.

- ``paper``: the reference code's hyperparameters exactly (what a GPU user runs).
- ``cpu``: a schedule for 2 CPU cores found by experiment (``docs/reproducing.md``): the oracle benchmark's
  default on a CPU.
- ``strong``: a well-regularised generator (an LSTM of 128 with variational dropout) trained by MLE with a
  validation split and early stopping, the baseline a published frontier is judged against (REFERENCE.md
  section 10), then the adversarial phase from it (``docs/strong.md``).
- ``transformer``: the ``strong`` recipe with a GPT-2-style transformer generator (2 x 128, chosen on the validation
  split; ``docs/transformers.md``; the ``hf`` extra).
- ``text``: real text (COCO captions or a user's sentences) on 2 CPU cores.

A preset is filled in for the data it runs on through ``dims``: the vocabulary size, the sequence length and,
for text, the start, end and padding tokens (``seqgan_rl.training.tasks`` gives them for each dataset).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import Any

from seqgan_rl.cli import FRACTION, LEARNING_RATE, count
from seqgan_rl.config import (
    AGENT_CONFIGS,
    SB3_ALGOS,
    AdversarialConfig,
    DiscriminatorConfig,
    DiscriminatorTrainConfig,
    GeneratorConfig,
    MLEConfig,
    OracleDataConfig,
    PretrainConfig,
    TrainConfig,
    TransformerConfig,
    TransformerDiscriminatorConfig,
)
from seqgan_rl.utils import require_transformers

PRESETS = ("paper", "cpu", "strong", "transformer", "text")


def resolve_preset(name: str, device_type: str, text: bool = False) -> str:
    """``"auto"`` -> ``"text"`` for real text, else ``"paper"`` on CUDA and ``"cpu"`` otherwise; other names
    are checked against the data (text runs use the ``text`` preset, the oracle benchmark the others)."""
    if name == "auto":
        return "text" if text else ("paper" if device_type == "cuda" else "cpu")
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}: choose 'auto' or one of {PRESETS}")
    if text != (name == "text"):
        raise ValueError(
            f"preset {name!r} is for {'real text' if name == 'text' else 'the oracle benchmark'}: "
            f"use {'text' if text else 'paper, cpu, strong or transformer'} (or auto) for this data"
        )
    return name


def pretrain_preset(name: str, seed: int = 0, **dims: int | None) -> PretrainConfig:
    """Pre-training presets.

    - ``paper``: the reference code exactly: 120 MLE epochs; the paper CNN; 50 rounds x (9,984 fresh
      negatives, 3 epochs), Adam 1e-4 (about an hour of D training on a 2-core CPU).
    - ``cpu``: the same MLE recipe stopped at 20 epochs (where NLL-oracle is already at the paper's MLE
      level, REFERENCE.md section 9), the light CNN and 2,000 D steps at Adam 1e-3.
    - ``text``: Texygen's SeqGAN generator (embedding 32, hidden 32), 15 MLE epochs evaluated every 5, the
      light CNN with 5 x 200 D steps over 6,400 fresh negatives and as many real sentences at Adam 1e-3;
      BLEU from 1,000 samples.

    Args:
        dims: ``vocab_size``, ``seq_len`` (default: the paper's 5000 and 20) and, for text, ``start_token``,
            ``eos_token`` and ``pad_token``.
    """
    g = GeneratorConfig(**dims)
    v, t = g.vocab_size, g.seq_len
    if name == "paper":
        return PretrainConfig(seed=seed, generator=g, discriminator=DiscriminatorConfig.paper(v, t))
    if name == "cpu":
        return PretrainConfig(
            seed=seed,
            generator=g,
            discriminator=DiscriminatorConfig.light(v, t),
            mle=MLEConfig(epochs=20, eval_every=0),  # the final MLE generator alone: what the adversarial phase uses
            d_pretrain=DiscriminatorTrainConfig(
                rounds=10, epochs=1, lr=1e-3, num_negatives=6400, max_steps_per_round=200
            ),
        )
    if name == "strong":
        return PretrainConfig(
            seed=seed,
            generator=replace(g, **STRONG_GENERATOR),
            discriminator=DiscriminatorConfig.light(v, t),
            mle=MLEConfig(**STRONG_MLE),
            d_pretrain=DiscriminatorTrainConfig(
                rounds=10, epochs=1, lr=1e-3, num_negatives=6400, max_steps_per_round=200
            ),
        )
    if name == "transformer":
        return PretrainConfig(
            seed=seed,
            generator=TransformerConfig(**dims, **TRANSFORMER_GENERATOR),
            discriminator=DiscriminatorConfig.light(v, t),
            mle=MLEConfig(**TRANSFORMER_MLE),
            d_pretrain=DiscriminatorTrainConfig(
                rounds=10, epochs=1, lr=1e-3, num_negatives=6400, max_steps_per_round=200
            ),
        )
    if name == "text":
        if g.eos_token is None:
            raise ValueError("the text preset needs the dataset's eos_token and pad_token")
        return PretrainConfig(
            seed=seed,
            generator=g,
            discriminator=DiscriminatorConfig.light(v, t),
            data=OracleDataConfig(num_eval_samples=1000),
            mle=MLEConfig(epochs=15, eval_every=5),
            d_pretrain=DiscriminatorTrainConfig(
                rounds=5, epochs=1, lr=1e-3, num_negatives=6400, max_steps_per_round=200
            ),
        )
    raise ValueError(f"unknown preset {name!r}: choose one of {PRESETS}")


STRONG_GENERATOR = {"embed_dim": 128, "hidden_dim": 128, "num_layers": 1, "dropout": 0.6}
"""The ``strong`` preset's generator: one LSTM layer of 128 with variational dropout 0.6, the best validation NLL of
the screen (``benchmarks/results/strong_screen.md``; Caccia et al.'s 2 x 128 was worse here)."""
STRONG_MLE = {"epochs": 200, "batch_size": 64, "lr": 2e-3, "eval_every": 0, "num_valid": 500, "patience": 10}
"""The ``strong`` preset's MLE: Adam 2e-3 for up to 200 epochs, stopped 10 epochs after the best validation NLL (500
of the 9,984 training sequences held out), whose generator it keeps."""


TRANSFORMER_GENERATOR = {"architecture": "gpt2", "num_layers": 2, "hidden_dim": 128, "num_heads": 4, "dropout": 0.1}
"""The ``transformer`` preset's generator: GPT-2-style, 2 layers of width 128 with dropout 0.1 (1.04M parameters, the
embedding tied), the best validation NLL of the screen (``benchmarks/results/transformer_screen.md``; 4 layers, dropout
0.3 and 0.5 were not better within 12 epochs)."""
TRANSFORMER_MLE = {"epochs": 20, "batch_size": 64, "lr": 1e-3, "eval_every": 0, "num_valid": 500, "patience": 5}
"""The ``transformer`` preset's MLE: Adam 1e-3 for at most 20 epochs (the screen's candidates overfit after 6-9),
stopped 5 epochs after the best validation NLL (500 held out), whose generator it keeps."""

STRONG_AGENT_LR = 1e-4
"""The ``strong`` preset's learning rate for REINFORCE and its variants: the adversarial screen's choice on the
validation criterion (the paper's 0.01 wrecks the strong generator within 15 updates; ``docs/strong.md``)."""


def train_preset(name: str, seed: int = 0, algo: str = "reinforce", **dims: int | None) -> TrainConfig:
    """Whole-pipeline presets (pre-training as in ``pretrain_preset``, then the adversarial phase).

    - ``paper``: the reference hyperparameters exactly: 200 iterations, each one generator update (64 x N 16,
      Adam 0.01, summed un-baselined loss) then 5 x (9,984 fresh negatives, 3 D epochs) with the paper's CNN.
    - ``cpu``: 50 adversarial iterations each followed by one round of 50 light-CNN D steps (Adam 1e-4, the
      paper's D learning rate; 1,600 fresh negatives and as many real sequences).
    - ``text``: 20 updates of 64 sentences with N 16 (the paper's loss), each followed by 50 D steps (1,600
      negatives, Adam 3e-4), evaluated every 10 updates. About 15 minutes per seed on one CPU thread.

    Args:
        algo: the agent (``"reinforce"``, ``"reinforce_kl"``, ``"grpo"``, ``"ppo"`` or ``"a2c"``) with its default
            config; PPO and A2C generate as many sequences per update as REINFORCE (64).
        dims: as for ``pretrain_preset``.
    """
    if algo not in AGENT_CONFIGS:
        raise ValueError(f"unknown algorithm {algo!r}: choose one of {tuple(AGENT_CONFIGS)}")
    pre = pretrain_preset(name, seed, **dims)
    agent = AGENT_CONFIGS[algo]()
    if (
        name in ("strong", "transformer") and algo not in SB3_ALGOS
    ):  # the REINFORCE family's Adam (SB3's agents keep their own)
        agent = replace(agent, lr=STRONG_AGENT_LR)
    if name == "paper":
        adv = AdversarialConfig()
    elif name in ("cpu", "strong", "transformer"):
        adv = AdversarialConfig(
            iterations=50,
            d_train=DiscriminatorTrainConfig(rounds=1, epochs=1, lr=1e-4, num_negatives=1600, max_steps_per_round=50),
        )
    else:
        adv = AdversarialConfig(
            iterations=20,
            eval_every=10,
            d_train=DiscriminatorTrainConfig(rounds=1, epochs=1, lr=3e-4, num_negatives=1600, max_steps_per_round=50),
        )
    return TrainConfig(preset=name, seed=seed, pretrain=pre, algo=algo, agent=agent, adversarial=adv)


def with_seed(config: TrainConfig, seed: int) -> TrainConfig:
    """The same run for another seed."""
    return replace(config, seed=seed, pretrain=replace(config.pretrain, seed=seed))


def with_options(config: TrainConfig, **options: Any) -> TrainConfig:
    """``config`` with the command-line overrides that are not ``None`` (the CLIs' one way to build a config).

    Args:
        options: ``mle_epochs``, ``mle_eval_every``, ``d_pretrain_rounds``, ``eval_samples``, the generator's
            ``embed_dim``, ``hidden_dim``, ``num_layers``, ``dropout``, and MLE's ``mle_lr``, ``mle_batch_size``,
            ``num_valid``, ``patience``, ``use_best`` (pre-training);
            ``iterations``, ``num_rollouts``, ``eval_every``, ``reward``, ``real_data``, ``real_pool`` (the adversarial
            phase); ``baseline``
            (REINFORCE), ``kl_coef`` (REINFORCE with KL), ``reward_mode`` (PPO, A2C).

    Raises:
        ValueError: for an unknown option, or a value the configs refuse (naming the field).
    """
    o = {k: v for k, v in options.items() if v is not None}
    unknown = set(o) - {*_PRETRAIN_OPTIONS, *_ADVERSARIAL_OPTIONS, *_AGENT_OPTIONS, *_GENERATOR_KIND_OPTIONS}
    if unknown:
        raise ValueError(f"unknown options {sorted(unknown)}")
    pre = replace(config.pretrain, generator=_generator_kind(config.pretrain.generator, o))
    for key, (section, name) in _PRETRAIN_OPTIONS.items():
        if key in o:
            pre = replace(pre, **{section: replace(getattr(pre, section), **{name: o[key]})})
    adv = replace(config.adversarial, **{k: o[k] for k in _ADVERSARIAL_OPTIONS if k in o})
    agent_options = {k: o[k] for k in _AGENT_OPTIONS if k in o}
    try:
        agent = replace(config.agent, **agent_options)
    except TypeError as exc:
        raise ValueError(f"{type(config.agent).__name__} takes none of {sorted(agent_options)}") from exc
    return replace(config, pretrain=pre, adversarial=adv, agent=agent)


def _generator_kind(g: GeneratorConfig | TransformerConfig, o: dict[str, Any]) -> GeneratorConfig | TransformerConfig:
    """The generator config after ``--generator``, ``--generator-from``, ``--architecture`` and ``--num-heads``: an
    LSTM or a transformer over the same task (vocabulary, length, tokens); the size options apply afterwards."""
    kind = o.get("generator")
    if "generator_from" in o:
        if kind == "lstm":
            raise ValueError("--generator-from loads a transformers model: it does not go with --generator lstm")
        kind = "transformer"
        for option in ("architecture", "num_heads", "num_layers", "hidden_dim", "dropout", "init"):
            if option in o:
                raise ValueError(
                    f"--{option.replace('_', '-')} does not apply to --generator-from (the saved model's own)"
                )
    task = {k: getattr(g, k) for k in ("vocab_size", "seq_len", "start_token", "eos_token", "pad_token")}
    if kind == "transformer":
        require_transformers()
    if "generator_from" in o:
        return TransformerConfig.pretrained_from(o["generator_from"], **task)
    if kind == "transformer" and not isinstance(g, TransformerConfig):
        g = TransformerConfig(**task)
    elif kind == "lstm" and isinstance(g, TransformerConfig):
        g = GeneratorConfig(**task)
    if isinstance(g, TransformerConfig):
        if g.pretrained is None:
            require_transformers()
        if "embed_dim" in o or "init" in o:
            raise ValueError("--embed-dim and --init are the LSTM's: a transformer's embedding is its --hidden-dim")
        return replace(g, **{k: o[k] for k in ("architecture", "num_heads") if k in o})
    if "architecture" in o or "num_heads" in o:
        raise ValueError("--architecture and --num-heads are a transformer's: add --generator transformer")
    return g


_GENERATOR_KIND_OPTIONS = ("generator", "generator_from", "architecture", "num_heads")
_PRETRAIN_OPTIONS = {
    "mle_epochs": ("mle", "epochs"), "mle_eval_every": ("mle", "eval_every"),
    "d_pretrain_rounds": ("d_pretrain", "rounds"), "eval_samples": ("data", "num_eval_samples"),
    "embed_dim": ("generator", "embed_dim"), "hidden_dim": ("generator", "hidden_dim"),
    "num_layers": ("generator", "num_layers"), "dropout": ("generator", "dropout"), "init": ("generator", "init"),
    "mle_lr": ("mle", "lr"), "mle_batch_size": ("mle", "batch_size"), "num_valid": ("mle", "num_valid"),
    "patience": ("mle", "patience"), "use_best": ("mle", "use_best"),
}  # fmt: skip
_ADVERSARIAL_OPTIONS = ("iterations", "num_rollouts", "eval_every", "reward", "real_data", "real_pool")
_AGENT_OPTIONS = ("baseline", "reward_mode", "kl_coef")

MODEL_OPTIONS = (
    "embed_dim", "hidden_dim", "num_layers", "dropout", "init", "mle_lr", "mle_batch_size", "num_valid", "patience",
    "use_best", "generator", "generator_from", "architecture", "num_heads",
)  # fmt: skip
"""The generator's size and its MLE schedule: options of every preset (``add_model_arguments``)."""


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """``--embed-dim``, ``--hidden-dim``, ``--num-layers``, ``--dropout``, ``--init``, ``--mle-lr``,
    ``--mle-batch-size``, ``--num-valid``, ``--patience``, ``--mle-last``: overrides of the preset's generator and
    MLE (``MODEL_OPTIONS``)."""
    g = p.add_argument_group("generator and MLE (override the preset)")
    g.add_argument(
        "--generator", choices=["lstm", "transformer"], default=None,
        help="the generator: the paper's LSTM, or a Hugging Face transformer (the hf extra; preset transformer's)",
    )  # fmt: skip
    g.add_argument(
        "--generator-from", default=None, metavar="PATH",
        help="start from a transformers causal LM: a save_pretrained folder (or a hub id where the hub is reachable)",
    )  # fmt: skip
    g.add_argument("--architecture", choices=["gpt2", "llama"], default=None, help="a transformer's style (gpt2)")
    g.add_argument("--num-heads", type=count(), default=None, help="a transformer's attention heads (4)")
    g.add_argument("--embed-dim", type=count(), default=None, help="token embedding size (paper 32, strong 128)")
    g.add_argument(
        "--hidden-dim", type=count(), default=None, help="LSTM hidden size or transformer width (paper 32, strong 128)"
    )
    g.add_argument("--num-layers", type=count(), default=None, help="stacked LSTM or transformer layers (paper 1)")
    g.add_argument("--dropout", type=FRACTION, default=None, help="variational dropout in MLE (paper 0, strong 0.6)")
    g.add_argument("--init", choices=["normal", "torch"], default=None, help="G's initialisation (paper: normal)")
    g.add_argument(
        "--mle-lr", type=LEARNING_RATE, default=None, help="MLE Adam learning rate (paper 0.01, strong 2e-3)"
    )
    g.add_argument("--mle-batch-size", type=count(), default=None, help="MLE minibatch (64)")
    g.add_argument(
        "--num-valid",
        type=count(0),
        default=None,
        help="training sequences held out for validation (paper 0, strong 500)",
    )
    g.add_argument("--patience", type=count(), default=None, help="stop MLE this many epochs after the best validation")
    g.add_argument(
        "--mle-last", dest="use_best", action="store_const", const=False, default=None,
        help="with --num-valid: start from the last MLE epoch, not the best-validation one (the cpu preset's "
        "schedule with a held-out split, as tuning runs use)",
    )  # fmt: skip


EXPECTED = {
    "cpu": {
        "source": "benchmarks/results/repro_oracle_cpu.md: 10 seeds, AMD EPYC (flags 0469c2d3), torch 2.13.0+cpu",
        "mle": {"eval/nll_oracle": (9.045, 0.021), "eval/nll_test": (8.269, 0.014)},
        "best": {"eval/nll_oracle": (8.729, 0.042), "eval/nll_test": (8.450, 0.037)},
        "final": {"eval/nll_oracle": (8.782, 0.034), "eval/nll_test": (8.512, 0.023)},
    },
}
"""What the main command should give: the committed 10-seed mean and std (``benchmarks/repro_oracle.py``) of
each preset's SeqGAN run on the paper's oracle, which ``scripts/train_agent.py`` prints beside a user's numbers
(``tests/test_presets.py`` checks them against the committed table)."""


def expected_results(config: TrainConfig, paper_oracle: bool) -> dict[str, Any] | None:
    """The committed spread for ``config`` (``EXPECTED``), or ``None`` when the run is not the one it measured: the
    preset unchanged (any seed), REINFORCE on SeqGAN's reward, the paper's oracle."""
    if not paper_oracle or config.preset not in EXPECTED or config.algo != "reinforce":
        return None
    plain = train_preset(config.preset, seed=config.seed)
    return EXPECTED[config.preset] if config == plain else None


def with_discriminator(config: TrainConfig, kind: str | None = None, path: str | None = None) -> TrainConfig:
    """``config`` with the discriminator of ``--discriminator KIND`` (``paper``, ``light``: the CNNs; ``transformer``:
    a fresh Hugging Face classifier, ``TransformerDiscriminatorConfig``'s default size) or ``--discriminator-from
    PATH`` (a saved ``AutoModelForSequenceClassification``); the task's sizes and tokens are kept."""
    if kind is None and path is None:
        return config
    pre = config.pretrain
    g = pre.generator
    if path is not None or kind == "transformer":
        tokens = {"eos_token": g.eos_token, "pad_token": g.pad_token}
        d = TransformerDiscriminatorConfig(vocab_size=g.vocab_size, seq_len=g.seq_len, pretrained=path, **tokens)
        if config.adversarial.reward == "rankgan":
            raise ValueError("--reward rankgan ranks with the CNN's features: leave out --discriminator transformer")
    else:
        d = DiscriminatorConfig.preset(kind, g.vocab_size, g.seq_len)
    return replace(config, pretrain=replace(pre, discriminator=d))
