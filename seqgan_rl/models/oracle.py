"""The synthetic benchmark's oracle: an LSTM with fixed parameters that plays the real data.

``OracleLSTM.paper()`` loads the paper's parameters (``target_params.npz``, shipped with the package);
``OracleLSTM.random(...)`` builds an N(0, 1) oracle of any size (e.g. the LeakGAN length-40 setting);
``OracleLSTM.from_spec("paper" | "random:SEED" | "file.npz", seq_len=..., vocab_size=...)`` is what the
command lines take. ``source`` names where an oracle came from (``"paper"``, ``"random:SEED"`` or a path).
The recurrence is the one in the oracle README: a plain LSTM (gates i, f, o, candidate c~), zero
initial state, first input = embedding of token 0, logits = h W_o + b_o, sampling at temperature 1.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from seqgan_rl.config import GeneratorConfig
from seqgan_rl.models.generator import Generator

GATE_ARRAYS = ("Wi", "Ui", "bi", "Wf", "Uf", "bf", "Wog", "Uog", "bog", "Wc", "Uc", "bc")
ARRAY_NAMES = ("g_embeddings", *GATE_ARRAYS, "Wo", "bo")
"""The 15 arrays of ``target_params.npz``, in the reference code's order."""

PAPER_SEQ_LEN = 20
PAPER_VOCAB_SIZE = 5000


def expected_shapes(vocab_size: int, embed_dim: int, hidden_dim: int) -> dict[str, tuple[int, ...]]:
    v, e, h = vocab_size, embed_dim, hidden_dim
    shapes: dict[str, tuple[int, ...]] = {"g_embeddings": (v, e), "Wo": (h, v), "bo": (v,)}
    for gate in ("i", "f", "og", "c"):
        shapes[f"W{gate}"] = (e, h)
        shapes[f"U{gate}"] = (h, h)
        shapes[f"b{gate}"] = (h,)
    return shapes


class OracleLSTM(Generator):
    """A frozen LSTM language model with the oracle's recurrence; scores and samples sequences."""

    def __init__(self, config: GeneratorConfig, source: str = "arrays") -> None:
        super().__init__(config)
        self.source = source
        self.requires_grad_(False)
        self.eval()

    @property
    def is_paper(self) -> bool:
        """The paper's benchmark: its oracle at its length (what its published figures refer to)."""
        return self.source == "paper" and self.seq_len == PAPER_SEQ_LEN

    # ------------------------------------------------------------------ constructors
    @classmethod
    def paper(cls, device: str | torch.device = "cpu", seq_len: int = PAPER_SEQ_LEN) -> OracleLSTM:
        """The SeqGAN paper's oracle (V 5000, E 32, H 32, T 20), from the package's data; another ``seq_len``
        generates longer or shorter sequences from the same LSTM."""
        path = resources.files("seqgan_rl") / "assets" / "target_params.npz"
        with resources.as_file(path) as p:
            oracle = cls.from_npz(p, seq_len=seq_len, device=device)
        oracle.source = "paper"
        return oracle

    @classmethod
    def from_spec(
        cls,
        spec: str = "paper",
        seq_len: int | None = None,
        vocab_size: int | None = None,
        device: str | torch.device = "cpu",
    ) -> OracleLSTM:
        """The oracle a command line names: ``"paper"``, ``"random:SEED"`` (an N(0, 1) oracle with the paper's
        embedding and hidden sizes, as LeakGAN and RankGAN build theirs) or the path of an ``.npz``.

        Args:
            seq_len: the sequence length (default: the file's, else the paper's 20).
            vocab_size: ``random:SEED`` only (default 5000); the paper's and a file's come with them.

        Raises:
            ValueError: for a malformed spec or a size that does not apply. FileNotFoundError: no such file.
        """
        t = PAPER_SEQ_LEN if seq_len is None else seq_len  # a file's default is its own length
        if spec.startswith("random:"):
            try:
                seed = int(spec.split(":", 1)[1])
            except ValueError:
                raise ValueError(f"oracle {spec!r}: write random:SEED with an integer seed, e.g. random:0") from None
            v = PAPER_VOCAB_SIZE if vocab_size is None else vocab_size
            return cls.random(v, t, seed=seed, device=device)
        oracle = cls.paper(device, t) if spec == "paper" else cls.from_npz(spec, seq_len, device)
        if vocab_size is not None and vocab_size != oracle.vocab_size:
            raise ValueError(
                f"vocab size {vocab_size} does not apply to oracle {spec!r} (its vocabulary has {oracle.vocab_size} "
                "tokens): drop it, or use a random oracle (random:SEED) of that size"
            )
        return oracle

    @classmethod
    def from_npz(
        cls, path: str | os.PathLike, seq_len: int | None = None, device: str | torch.device = "cpu"
    ) -> OracleLSTM:
        """Load the 15 arrays of the reference ``target_params`` layout (see ``ARRAY_NAMES``); ``seq_len``
        defaults to the length the file stores (``save_npz``), else the paper's 20.

        Raises:
            FileNotFoundError: if ``path`` does not exist.
            ValueError: if an array is missing or mis-shaped, or the file is not a valid ``.npz``.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"oracle parameter file {str(path)!r} not found")
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except Exception as exc:  # zipfile/pickle/value errors: all mean "not a usable npz"
            raise ValueError(f"{str(path)!r} is not a readable .npz of oracle parameters: {exc}") from exc
        if seq_len is None:
            seq_len = int(arrays["seq_len"]) if "seq_len" in arrays else PAPER_SEQ_LEN
        return cls.from_arrays(arrays, seq_len=seq_len, source=str(path)).to(device)

    @classmethod
    def from_arrays(
        cls, arrays: dict[str, np.ndarray], seq_len: int = PAPER_SEQ_LEN, source: str = "arrays"
    ) -> OracleLSTM:
        """Build an oracle from the 15 named arrays; checks names and shapes."""
        missing = [k for k in ARRAY_NAMES if k not in arrays]
        if missing:
            raise ValueError(f"{source}: missing oracle arrays {missing}; expected all of {list(ARRAY_NAMES)}")
        emb = np.asarray(arrays["g_embeddings"])
        if emb.ndim != 2:
            raise ValueError(f"{source}: g_embeddings must be 2-D (V, E), got shape {emb.shape}")
        hidden = np.asarray(arrays["Ui"]).shape[0] if np.ndim(arrays["Ui"]) == 2 else -1
        want = expected_shapes(emb.shape[0], emb.shape[1], hidden)
        bad = {k: tuple(np.shape(arrays[k])) for k in ARRAY_NAMES if tuple(np.shape(arrays[k])) != want[k]}
        if hidden < 1 or bad:
            detail = ", ".join(f"{k}: got {s}, expected {want[k]}" for k, s in bad.items()) or "Ui must be (H, H)"
            raise ValueError(f"{source}: mis-shaped oracle arrays ({detail})")
        for k in ARRAY_NAMES:
            if not np.all(np.isfinite(arrays[k])):
                raise ValueError(f"{source}: array {k} contains NaN or inf")
        config = GeneratorConfig(
            vocab_size=emb.shape[0], seq_len=seq_len, embed_dim=emb.shape[1], hidden_dim=hidden, start_token=0
        )
        oracle = cls(config, source)
        oracle._load_arrays({k: torch.as_tensor(np.asarray(arrays[k], dtype=np.float32)) for k in ARRAY_NAMES})
        return oracle

    @classmethod
    def random(
        cls,
        vocab_size: int = 5000,
        seq_len: int = 20,
        embed_dim: int = 32,
        hidden_dim: int = 32,
        seed: int = 0,
        device: str | torch.device = "cpu",
    ) -> OracleLSTM:
        """An oracle with every array drawn from N(0, 1), like the paper's (for other sizes/lengths)."""
        config = GeneratorConfig(vocab_size, seq_len, embed_dim, hidden_dim, start_token=0)
        rng = np.random.default_rng(seed)
        shapes = expected_shapes(vocab_size, embed_dim, hidden_dim)
        arrays = {k: rng.standard_normal(shapes[k]).astype(np.float32) for k in ARRAY_NAMES}
        return cls.from_arrays(arrays, seq_len=config.seq_len, source=f"random:{seed}").to(device)

    # ------------------------------------------------------------------ parameter layout
    def _load_arrays(self, a: dict[str, torch.Tensor]) -> None:
        # torch's LSTM packs gates as (i, f, g, o) rows; the reference stores x @ W (columns = units).
        with torch.no_grad():
            self.embedding.weight.copy_(a["g_embeddings"])
            self.lstm.weight_ih_l0.copy_(torch.cat([a["Wi"].T, a["Wf"].T, a["Wc"].T, a["Wog"].T]))
            self.lstm.weight_hh_l0.copy_(torch.cat([a["Ui"].T, a["Uf"].T, a["Uc"].T, a["Uog"].T]))
            self.lstm.bias_ih_l0.copy_(torch.cat([a["bi"], a["bf"], a["bc"], a["bog"]]))
            self.lstm.bias_hh_l0.zero_()
            self.output.weight.copy_(a["Wo"].T)
            self.output.bias.copy_(a["bo"])

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The 15 arrays in the reference layout (inverse of ``from_arrays``)."""
        h = self.config.hidden_dim
        w_ih = self.lstm.weight_ih_l0.detach().cpu()
        w_hh = self.lstm.weight_hh_l0.detach().cpu()
        b = (self.lstm.bias_ih_l0 + self.lstm.bias_hh_l0).detach().cpu()
        out = {"g_embeddings": self.embedding.weight.detach().cpu()}
        for k, gate in enumerate(("i", "f", "c", "og")):
            out[f"W{gate}"] = w_ih[k * h : (k + 1) * h].T
            out[f"U{gate}"] = w_hh[k * h : (k + 1) * h].T
            out[f"b{gate}"] = b[k * h : (k + 1) * h]
        out["Wo"] = self.output.weight.detach().cpu().T
        out["bo"] = self.output.bias.detach().cpu()
        return {k: out[k].numpy().copy() for k in ARRAY_NAMES}

    def save_npz(self, path: str | os.PathLike) -> None:
        """The 15 arrays and the sequence length (``from_npz`` reads it back)."""
        np.savez(path, **self.to_arrays(), seq_len=np.int64(self.seq_len))

    def train(self, mode: bool = True) -> OracleLSTM:  # an oracle never trains
        return super().train(False)
