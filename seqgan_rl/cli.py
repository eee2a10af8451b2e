"""What the command-line scripts share: a parser whose errors are one line, option types that refuse a bad value
by the option's name before any work starts, and the check that a run fits in memory.

Every numeric option of ``scripts/*.py`` takes one of these types, so a value of the wrong type, NaN, an
infinity, a value out of its range or an absurdly large one exits with code 2 and one line
(``tests/test_cli_options.py`` tries every option of every script with such values).
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from seqgan_rl.config import ROLLOUT_REWARDS, PretrainConfig, TrainConfig
from seqgan_rl.utils import TEMPERATURE_RANGE

INT_MAX = 2**31 - 1
"""The largest count an option takes: no size, count or number of steps of this package is larger (a larger one
is a typo, and some would overflow the int32 indices of torch's kernels)."""
SEED_MAX = 2**63 - 1
"""Seeds are 63-bit (``utils.derive_seed`` draws its child seeds in ``[0, 2**63)``; torch takes at most 64 bits)."""


class Parser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors are one line on stderr (``prog: error: ...``) and exit code 2,
    without the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (--help lists the options)\n")


@dataclass(frozen=True)
class Number:
    """An option type: an ``int`` or a finite ``float`` in ``[low, high]`` (``low_open``: ``low`` itself
    excluded; ``high_open`` likewise). argparse reports its ``ArgumentTypeError`` as
    ``argument --name: <message>``."""

    kind: type = int
    low: float = 1
    high: float = INT_MAX
    low_open: bool = False
    high_open: bool = False

    @property
    def __name__(self) -> str:  # argparse names the type in some messages
        return self.kind.__name__

    def __call__(self, text: str) -> int | float:
        try:
            value = self.kind(text)
        except (TypeError, ValueError):
            what = "an integer" if self.kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if self.kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        below = value <= self.low if self.low_open else value < self.low
        above = value >= self.high if self.high_open else value > self.high
        if below or above:
            raise argparse.ArgumentTypeError(f"must be in {self.interval()}, got {text}")
        return value

    def interval(self) -> str:
        low, high = (f"{x:g}" if self.kind is float else str(x) for x in (self.low, self.high))
        return f"{'(' if self.low_open else '['}{low}, {high}{')' if self.high_open else ']'}"


def count(low: int = 1) -> Number:
    """An integer in ``[low, INT_MAX]``: sizes, counts, epochs, steps."""
    return Number(int, low, INT_MAX)


SEED = Number(int, 0, SEED_MAX)
LEARNING_RATE = Number(float, 0.0, 10.0, low_open=True)
"""An Adam learning rate: > 0, at most 10 (Adam moves every weight by about lr a step: 10 is already far past
divergence, and a larger value is a typo)."""
WEIGHT = Number(float, 0.0, 1e6)
"""A penalty weight (the KL coefficient): >= 0, at most 1e6 (beyond it the penalty is all the loss)."""
FRACTION = Number(float, 0.0, 1.0, high_open=True)
"""A dropout probability: in [0, 1)."""
TEMPERATURE = Number(float, *TEMPERATURE_RANGE)


def max_threads() -> int:
    """The most torch threads ``--threads`` takes: 4 per CPU of this machine, at least 64 (torch's OpenMP pool
    crashes the process far above any useful count)."""
    return max(64, 4 * (os.cpu_count() or 1))


def threads() -> Number:
    return Number(int, 1, max_threads())


# ---------------------------------------------------------------------------------------------- memory
TYPICAL = {
    "--vocab-size": 5000, "--seq-len": 20, "--embed-dim": 128, "--hidden-dim": 128, "--num-layers": 1,
    "--num-rollouts": 16, "--mle-batch-size": 64, "--eval-samples": 9984, "--num": 10_000,
}  # fmt: skip
"""Ordinary values of the options a memory estimate depends on: a refusal names the option furthest above its
own (the one to lower)."""


class TooLargeError(ValueError):
    """A run whose tensors cannot fit in this machine's memory (the message names the option to lower)."""


def available_memory() -> int | None:
    """Bytes of memory this process can still take on the CPU (``MemAvailable``), or ``None`` when unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


def device_memory(device_type: str) -> int | None:
    """The memory a run on ``device_type`` can use: the GPU's total on CUDA, else the CPU's available memory."""
    if device_type == "cuda":
        import torch

        return torch.cuda.mem_get_info()[1] if torch.cuda.is_available() else None
    return available_memory()


def memory_terms(config: TrainConfig | PretrainConfig) -> list[tuple[int, str, dict[str, int]]]:
    """The largest tensors a run of ``config`` holds at once, as ``(bytes, what, {option: value})``: lower
    bounds, enough to refuse what cannot fit before any work (the run needs more than their largest)."""
    pre = config.pretrain if isinstance(config, TrainConfig) else config
    g, d, data, mle = pre.generator, pre.discriminator, pre.data, pre.mle
    v, t, h, layers = g.vocab_size, g.seq_len, g.hidden_dim, g.num_layers
    if getattr(g, "kind", "lstm") == "transformer":  # tied embeddings; per layer attention 4 H^2, MLP 8 H^2
        dims = {"--vocab-size": v, "--hidden-dim": h, "--num-layers": layers}
        params = v * h + layers * 12 * h * (h + 1)
    else:
        e = g.embed_dim
        dims = {"--vocab-size": v, "--embed-dim": e, "--hidden-dim": h, "--num-layers": layers}
        params = v * e + h * v + v + layers * 4 * h * (max(e, h) + h + 2)
    terms = [
        (16 * params, "the generator's weights, gradients and Adam moments", dims),
        (16 * v * d.embed_dim, "the discriminator's embedding, its gradient and Adam moments", {"--vocab-size": v}),
        (
            12 * mle.batch_size * t * v,
            "an MLE minibatch's logits, log-probabilities and gradient",
            {"--mle-batch-size": mle.batch_size, "--seq-len": t, "--vocab-size": v},
        ),
        (
            8 * t * (data.num_train + data.num_test + data.num_eval_samples),
            "the data and an evaluation's samples",
            {"--eval-samples": data.num_eval_samples, "--seq-len": t},
        ),
    ]
    if isinstance(config, TrainConfig) and config.adversarial.reward in ROLLOUT_REWARDS:
        n, b = config.adversarial.num_rollouts, config.agent.sequences_per_update
        terms.append(
            (
                8 * b * n * t * t,
                "the Monte-Carlo completions of one batch's prefixes",
                {"--num-rollouts": n, "--seq-len": t},
            )
        )
        terms.append((4 * b * n * v, "one step's logits over all rollouts", {"--num-rollouts": n, "--vocab-size": v}))
    return terms


def check_fits(config: TrainConfig | PretrainConfig, device_type: str = "cpu", memory: int | None = None) -> None:
    """Raise ``TooLargeError`` naming the option to lower when ``config``'s largest tensors cannot fit in
    ``memory`` bytes (default: what ``device_type`` has now); nothing is checked when that is unknown."""
    size, what, options = max(memory_terms(config), key=lambda term: term[0])
    refuse_if_too_large(size, what, options, device_type, memory)


def refuse_if_too_large(
    size: int, what: str, options: dict[str, int], device_type: str = "cpu", memory: int | None = None
) -> None:
    """Raise ``TooLargeError`` when ``size`` bytes (``what``, set by ``options``) exceed ``memory`` (default: what
    ``device_type`` has now), naming the option furthest above its ordinary value."""
    memory = device_memory(device_type) if memory is None else memory
    if memory is None or size <= memory:
        return
    culprit = max(options, key=lambda o: options[o] / TYPICAL.get(o, 1))
    given = ", ".join(f"{o} {value:,}" for o, value in options.items())
    raise TooLargeError(
        f"{culprit} {options[culprit]:,} is too large: {what} alone would take {size / 2**30:,.1f} GiB ({given}), "
        f"more than the {memory / 2**30:,.1f} GiB of {device_type.upper()} memory free here; lower {culprit}"
    )


def check_sample_fits(num: int, seq_len: int, memory: int | None = None) -> None:
    """``scripts/sample.py``: ``num`` sentences of up to ``seq_len`` words are held as tokens and strings at once
    (about 40 bytes a word)."""
    refuse_if_too_large(
        40 * num * seq_len, f"{num:,} sentences of up to {seq_len} words", {"--num": num}, memory=memory
    )


# ---------------------------------------------------------------------------------------------- stops
class Bars:
    """The ``progress`` factory a script hands the library (e.g. ``Bars(tqdm)``): it remembers the bars it made,
    so that an error can close them first and print on a line of its own."""

    def __init__(self, factory: Callable[..., Any]) -> None:
        self.factory, self.made = factory, []

    def __call__(self, **kwargs: Any) -> Any:
        bar = self.factory(**kwargs)
        self.made.append(bar)
        return bar

    def close(self) -> None:
        for bar in self.made:
            bar.close()
        self.made.clear()


def resume_hint(checkpoints: list[Path]) -> str:
    """What ``--resume`` does after a stopped run, given its checkpoint files, newest kind first."""
    found = [p for p in checkpoints if p.is_file()]
    if found:
        return f"The last checkpoint ({found[0]}) is intact: --resume continues from it."
    return "No checkpoint had been written yet: --resume starts the run again from the beginning."
