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


class OracleFedReal:
    """Real sequences for D's retraining drawn from the oracle instead of taken from the training set: a
    diagnostic with oracle access (``AdversarialConfig.real_data="oracle"``), never a benchmark row.

    Either a fresh draw for every round (``pool_size=None``: D never sees a real sequence twice) or a pool of
    ``pool_size`` sequences drawn once (10k, 100k, 1M: how much real data D learns from), from which each round
    takes a random subset. No sequence of ``exclude`` (the training and test sets) is ever returned: rows equal to
    one of them are dropped from the draws and drawn again.

    Args:
        oracle: the benchmark's oracle.
        exclude: ``(N_i, T)`` sequences never to return (G's training data, the test set).
        pool_size: ``None`` (fresh draws) or the pool's size.
        seed: the stream of the pool and the draws (independent of every other stream of the run).
    """

    CHUNK = 16_384

    def __init__(
        self, oracle: OracleLSTM, exclude: list[torch.Tensor], pool_size: int | None = None, seed: int = 0
    ) -> None:
        if pool_size is not None and pool_size < 1:
            raise ValueError(f"pool_size must be >= 1 or None (fresh draws), got {pool_size}")
        self.oracle, self.pool_size = oracle, pool_size
        self._excluded = {row.numpy().tobytes() for t in exclude for row in t.cpu().long()}
        self.rng = make_rng(seed, oracle.device)
        self.drawn = 0
        """Real sequences returned so far (the pool counts once)."""
        self.pool = self._draw(pool_size) if pool_size is not None else None
        if self.pool is not None:
            self.drawn = pool_size

    def _draw(self, n: int) -> torch.Tensor:
        """``n`` fresh oracle samples, none of them excluded, ``(n, T)`` on the CPU."""
        parts, have = [], 0
        while have < n:
            rows = self.oracle.sample(min(self.CHUNK, n - have), self.rng).cpu()
            keep = torch.tensor([r.numpy().tobytes() not in self._excluded for r in rows], dtype=torch.bool)
            parts.append(rows[keep])
            have += int(keep.sum())
        return torch.cat(parts)[:n] if parts else torch.zeros(0, self.oracle.seq_len, dtype=torch.long)

    def sample(self, n: int) -> torch.Tensor:
        """``n`` real sequences ``(n, T)``: fresh ones, or a random subset of the pool (all of it when smaller)."""
        if self.pool is None:
            self.drawn += n
            return self._draw(n)
        order = torch.randperm(len(self.pool), generator=self.rng, device=self.rng.device).cpu()
        return self.pool[order[:n]]

    def state_dict(self) -> dict[str, object]:
        return {"rng": self.rng.get_state(), "drawn": self.drawn}

    def load_state_dict(self, state: dict[str, object]) -> None:
        self.rng.set_state(state["rng"])
        self.drawn = int(state["drawn"])
