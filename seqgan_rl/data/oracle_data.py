"""The synthetic benchmark's data: oracle samples for training and a held-out test set, token files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import torch

from seqgan_rl.config import OracleDataConfig
from seqgan_rl.models.oracle import OracleLSTM
from seqgan_rl.utils import derive_seed, make_rng


class OracleData(NamedTuple):
    train: torch.Tensor
    """``(num_train, T)`` oracle samples the generator trains on."""
    test: torch.Tensor
    """``(num_test, T)`` held-out oracle samples, drawn independently, for NLL-test."""


def make_oracle_data(oracle: OracleLSTM, config: OracleDataConfig, seed: int) -> OracleData:
    """Draw the training and test sets from ``oracle`` with independent streams derived from ``seed``."""
    train = oracle.sample(config.num_train, make_rng(derive_seed(seed, "train-data"), oracle.device))
    test = oracle.sample(config.num_test, make_rng(derive_seed(seed, "test-data"), oracle.device))
    return OracleData(train.cpu(), test.cpu())


def split_validation(train: torch.Tensor, num_valid: int, seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Hold out ``num_valid`` sequences of the training data, chosen by a permutation from the seed's own stream
    (the same split whenever the data is reused): ``(train without them, validation)``; ``(train, None)`` for 0.

    Raises:
        ValueError: when nothing would be left to train on.
    """
    if num_valid == 0:
        return train, None
    if num_valid >= train.shape[0]:
        raise ValueError(f"cannot hold out {num_valid} of {train.shape[0]} training sequences: hold out fewer")
    order = random_permutation(train.shape[0], make_rng(derive_seed(seed, "valid-split")))
    return train[order[num_valid:].sort().values], train[order[:num_valid].sort().values]


def load_token_file(path: str | os.PathLike, vocab_size: int | None = None, seq_len: int | None = None) -> torch.Tensor:
    """Read a file of space-separated token ids, one sequence per line (the reference ``real_data.txt``).

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: naming the line, for a non-integer token, a line of the wrong length, an id outside
            ``[0, vocab_size)``, or a file with no sequences.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"token file {str(path)!r} not found")
    rows: list[list[int]] = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = [int(x) for x in line.split()]
            except ValueError as exc:
                raise ValueError(f"{path}:{lineno}: not a list of integer token ids ({exc})") from exc
            expected = seq_len if seq_len is not None else (len(rows[0]) if rows else len(row))
            if len(row) != expected:
                raise ValueError(
                    f"{path}:{lineno}: {len(row)} tokens, expected {expected} (all sequences equal length)"
                )
            if vocab_size is not None and any(not 0 <= x < vocab_size for x in row):
                raise ValueError(f"{path}:{lineno}: token id outside [0, {vocab_size})")
            if any(x < 0 for x in row):
                raise ValueError(f"{path}:{lineno}: negative token id")
            rows.append(row)
    if not rows:
        raise ValueError(f"{path}: no sequences found (empty file?)")
    return torch.tensor(rows, dtype=torch.long)


def iterate_minibatches(data: torch.Tensor, batch_size: int, rng: torch.Generator | None = None, shuffle: bool = True):
    """Yield ``(b, ...)`` slices of ``data`` in a random order drawn from ``rng`` (the last may be short)."""
    n = data.shape[0]
    order = random_permutation(n, rng) if shuffle else torch.arange(n)
    for i in range(0, n, batch_size):
        yield data[order[i : i + batch_size]]


def random_permutation(n: int, rng: torch.Generator | None = None) -> torch.Tensor:
    """``torch.randperm`` drawn from ``rng`` on the generator's own device, returned on the CPU."""
    device = rng.device if rng is not None else "cpu"
    return torch.randperm(n, generator=rng, device=device).cpu()
