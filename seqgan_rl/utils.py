"""Device selection, seeding and atomic file writes: the small helpers every module shares."""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch


def get_device(device: str | torch.device = "auto") -> torch.device:
    """Resolve a device spec once, at program start.

    Args:
        device: ``"auto"`` (CUDA when available, else CPU), or anything ``torch.device`` accepts.

    Raises:
        ValueError: if the spec names a device that does not exist here.
    """
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"unknown device {device!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but CUDA is not available: use --device cpu or auto")
    return resolved


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch's global generators (library code uses explicit generators)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def global_rng_state() -> dict[str, Any]:
    """torch's global RNG states (CPU and CUDA): what dropout draws from. Saved in checkpoints so that a
    resumed run draws the same dropout masks as a straight one."""
    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_global_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def make_rng(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A seeded ``torch.Generator`` on ``device``: the form in which library code takes randomness."""
    rng = torch.Generator(device=device)
    rng.manual_seed(int(seed))
    return rng


def derive_seed(seed: int, *labels: int | str) -> int:
    """A child seed for an independent stream (data, evaluation, rollouts...) derived from ``seed``."""
    seq = np.random.SeedSequence([int(seed) % 2**63, *(_label_int(x) for x in labels)])
    return int(seq.generate_state(1, dtype=np.uint64)[0] % 2**63)


def _label_int(label: int | str) -> int:
    if isinstance(label, int):
        return label % 2**63
    return int.from_bytes(label.encode()[:8].ljust(8, b"\0"), "little")


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename: a killed write never leaves a
    corrupt file at ``path``."""
    _atomic_write(path, lambda f: torch.save(obj, f))


def atomic_write_text(text: str, path: str | os.PathLike) -> None:
    """Write text atomically (temporary file + rename)."""
    _atomic_write(path, lambda f: f.write(text.encode()))


def _atomic_write(path: str | os.PathLike, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be shared
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_token_batch(tokens: torch.Tensor, vocab_size: int, seq_len: int | None = None, name: str = "tokens") -> None:
    """Raise ``ValueError`` unless ``tokens`` is a ``(B, T)`` int64 tensor of ids in ``[0, vocab_size)``
    (and ``T == seq_len`` when given)."""
    if not isinstance(tokens, torch.Tensor) or tokens.dim() != 2 or tokens.dtype != torch.long:
        got = f"{tuple(tokens.shape)} {tokens.dtype}" if isinstance(tokens, torch.Tensor) else type(tokens).__name__
        raise ValueError(f"{name} must be a (B, T) int64 tensor, got {got}")
    if seq_len is not None and tokens.shape[1] != seq_len:
        raise ValueError(f"{name}: expected sequences of length {seq_len}, got {tokens.shape[1]}")
    if tokens.numel():
        lo, hi = int(tokens.min()), int(tokens.max())
        if lo < 0 or hi >= vocab_size:
            raise ValueError(f"{name}: token ids must be in [0, {vocab_size}), got range [{lo}, {hi}]")
