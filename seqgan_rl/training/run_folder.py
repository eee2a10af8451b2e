"""The run-folder protocol, in one place: how a run claims its folder, records its config, and writes and
reads its generator checkpoints.

A folder that already holds a run is refused unless the run is resumed; a resumed run must ask for the
config it was started with (the differing fields are named); ``config.json`` is written atomically.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import torch

from seqgan_rl.config import GeneratorConfig
from seqgan_rl.data.text import SPECIALS, Vocabulary
from seqgan_rl.models.generator import Generator
from seqgan_rl.utils import atomic_torch_save, atomic_write_text, check_saved_config

CONFIG = "config.json"


def prepare_run_folder(
    out: str | os.PathLike, config: dict[str, Any], resume: bool, markers: tuple[str, ...], what: str = "run"
) -> Path:
    """Claim ``out`` for a run: refuse it when it holds one of ``markers`` (a run's files) and ``resume`` is
    off, check a resumed run's saved config against ``config``, then write ``config.json``.

    Raises:
        FileExistsError: the folder holds a run and ``resume`` is off.
        ValueError: a resumed run's ``config.json`` differs from ``config`` (the fields are named).
    """
    out = Path(out)
    if not resume and any((out / m).exists() for m in markers):
        raise FileExistsError(
            f"{out} already holds a {what}: pass --resume (resume=True) to continue it, or choose another output folder"
        )
    out.mkdir(parents=True, exist_ok=True)
    if resume:
        check_saved_config(out / CONFIG, config)
    atomic_write_text(json.dumps(config, indent=2), out / CONFIG)
    return out


def save_generator(generator: Generator, path: str | os.PathLike, vocab: Vocabulary | None = None) -> None:
    """A self-contained generator checkpoint: weights, config and, for text, the vocabulary (every id's
    word, special tokens included: what ``TokenGenerationEnv(vocab=...)`` takes)."""
    state = {"generator": generator.state_dict(), "generator_config": dataclasses.asdict(generator.config)}
    if vocab is not None:
        state["vocab"] = list(vocab.itos)
    atomic_torch_save(state, path)


def load_generator(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[Generator, Vocabulary | None]:
    """Load what ``save_generator`` wrote: the generator (in eval mode) and its vocabulary (``None`` for the
    oracle benchmark).

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if the file is not a generator checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} not found")
    state = torch.load(path, map_location=device, weights_only=True)
    if not isinstance(state, dict) or "generator" not in state or "generator_config" not in state:
        raise ValueError(f"{path} is not a generator checkpoint (expected generator, generator_config)")
    generator = Generator(GeneratorConfig(**state["generator_config"])).to(device)
    generator.load_state_dict(state["generator"])
    words = state.get("vocab")
    if words is not None and list(words[: len(SPECIALS)]) == list(SPECIALS):
        words = words[len(SPECIALS) :]  # written with its special tokens
    return generator.eval(), (Vocabulary(words) if words is not None else None)
