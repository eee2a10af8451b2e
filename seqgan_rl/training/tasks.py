"""Tasks: a dataset to train on and the evaluator that scores it. One pipeline runs them all.

- ``OracleTask``: the paper's synthetic benchmark (or any oracle LSTM): training and test sequences drawn
  from the oracle (saved in the pre-training folder's ``data.pt``, with ``oracle.json`` naming the oracle,
  checked whenever the data is reused), NLL-oracle and NLL-test.
- ``TextTask``: real text (COCO captions or a user's sentence files): encoded sentences, BLEU/Self-BLEU
  and NLL-test; the run folder also gets ``vocab.json`` and the generator checkpoints carry the vocabulary.

A new dataset is a new task (a data source and an evaluator), not a new loop.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from typing import Any

import torch

from seqgan_rl.cli import count, refuse_if_too_large
from seqgan_rl.config import PretrainConfig
from seqgan_rl.data.oracle_data import OracleData, make_oracle_data
from seqgan_rl.data.text import COCO, TextDataset, Vocabulary
from seqgan_rl.models.oracle import OracleLSTM
from seqgan_rl.training.bleu import BleuReferences
from seqgan_rl.training.evaluators import BLEU_ORDERS, Evaluator, OracleEvaluator, TextEvaluator
from seqgan_rl.training.run_folder import RunFolder, read_json_file

ORACLE_FILE = "oracle.json"


class Task:
    """A dataset and its evaluator. Subclasses implement the methods below."""

    name: str = ""
    vocab: Vocabulary | None = None
    """The words of the token ids (text), or ``None``."""
    references: str | None = None
    """A line of published figures this task's results compare with (printed by the CLI), or ``None``."""

    def dims(self) -> dict[str, int | None]:
        """The generator's data dimensions: ``vocab_size``, ``seq_len`` and, for text, the special tokens
        (what the presets take, ``seqgan_rl.presets.train_preset(name, **task.dims())``)."""
        raise NotImplementedError

    def check(self, config: PretrainConfig) -> None:
        """Raise ``ValueError`` when ``config`` does not fit this data."""
        g, want = config.generator, self.dims()
        got = {k: getattr(g, k) for k in want}
        if got != want:
            raise ValueError(
                f"the config's generator ({_fmt(got)}) does not match the {self.describe()} ({_fmt(want)}): "
                "build the config with seqgan_rl.presets.train_preset(name, **task.dims())"
            )

    def describe(self) -> str:
        return self.name

    def load_data(self, config: PretrainConfig, folder: RunFolder, device: torch.device) -> Any:
        """The training and test tokens (``.train``, ``.test``; ``(N, T)`` int64 on the CPU); a task whose data
        is drawn keeps it in the pre-training's run folder."""
        raise NotImplementedError

    def evaluator(self, config: PretrainConfig, data: Any, device: torch.device) -> Evaluator:
        raise NotImplementedError

    def write_files(self, folder: RunFolder) -> None:
        """Files a run folder of this task holds besides the common ones."""

    def summary(self) -> dict[str, Any]:
        """What ``summary.json`` records about the data."""
        return {"task": self.name}


class OracleTask(Task):
    """The synthetic benchmark: an oracle LSTM plays the real data.

    Args:
        oracle: the oracle (``OracleLSTM.from_spec`` builds the command lines' ones); ``None`` loads the
            paper's (V 5000, T 20). Only the paper's benchmark has ``references``: the published figures
            of other oracles (RankGAN's and LeakGAN's are random too) are not comparable.
    """

    name = "oracle"

    def __init__(self, oracle: OracleLSTM | None = None) -> None:
        self.oracle = OracleLSTM.paper() if oracle is None else oracle
        self.paper = self.oracle.is_paper
        self.references = (
            "paper: MLE 9.038, SeqGAN 8.736; oracle floor 5.75. Lower NLL-test = more diverse (covers the data)."
            if self.paper
            else None
        )

    def dims(self) -> dict[str, int | None]:
        return {"vocab_size": self.oracle.vocab_size, "seq_len": self.oracle.seq_len}

    @property
    def tag(self) -> str:
        """A name part for default run folders: ``""`` for the paper's benchmark, else e.g. ``random0-V5000-T40``."""
        if self.paper:
            return ""
        source = self.oracle.source
        label = source.replace(":", "") if source == "paper" or source.startswith("random:") else "file"
        return f"{label}-V{self.oracle.vocab_size}-T{self.oracle.seq_len}"

    def describe(self) -> str:
        o = self.oracle
        return f"{'paper' if self.paper else o.source} oracle (V={o.vocab_size}, T={o.seq_len})"

    def identity(self) -> dict[str, Any]:
        """What ``oracle.json`` records: the oracle's source, sizes and a SHA-256 of its parameters."""
        digest = hashlib.sha256()
        for name, array in sorted(self.oracle.to_arrays().items()):
            digest.update(name.encode() + array.tobytes())
        o = self.oracle
        return {"source": o.source, "vocab_size": o.vocab_size, "seq_len": o.seq_len, "sha256": digest.hexdigest()}

    def load_data(self, config: PretrainConfig, folder: RunFolder, device: torch.device) -> OracleData:
        """Oracle samples drawn from streams derived from the seed, saved as ``data.pt`` (reused) beside
        ``oracle.json``.

        Raises:
            ValueError: if the folder's data was drawn from another oracle.
        """
        identity = self.identity()
        if folder.has("data.pt"):
            if folder.has(ORACLE_FILE):
                saved = read_json_file(folder.path / ORACLE_FILE)
                if saved["sha256"] != identity["sha256"] or saved["seq_len"] != identity["seq_len"]:
                    raise ValueError(
                        f"{folder.path} holds data drawn from the oracle {saved['source']!r} (V={saved['vocab_size']}, "
                        f"T={saved['seq_len']}), not from {self.describe()}: pass the same oracle, or another folder"
                    )
            return OracleData(**folder.load_torch("data.pt"))
        data = make_oracle_data(self.oracle.to(device), config.data, config.seed)
        folder.save_text(ORACLE_FILE, json.dumps(identity, indent=2))
        folder.save_torch("data.pt", {"train": data.train, "test": data.test})
        return data

    def evaluator(self, config: PretrainConfig, data: Any, device: torch.device) -> OracleEvaluator:
        return OracleEvaluator(self.oracle.to(device), data.test, config.data.num_eval_samples)

    def summary(self) -> dict[str, Any]:
        return {"task": self.name, "oracle": self.oracle.source, "paper_benchmark": self.paper}


class TextTask(Task):
    """Real text: the sentences of a ``TextDataset`` (``seqgan_rl.data.load_text_dataset``)."""

    def __init__(self, dataset: TextDataset) -> None:
        self.dataset, self.name, self.vocab = dataset, dataset.name, dataset.vocab
        if dataset.name == COCO:
            self.references = "Texygen (COCO): MLE BLEU-2/3 0.731/0.497, SeqGAN 0.745/0.498."
        self._references: BleuReferences | None = None

    def dims(self) -> dict[str, int | None]:
        v = self.vocab
        return {
            "vocab_size": len(v), "seq_len": self.dataset.seq_len, "start_token": v.bos_id, "eos_token": v.eos_id,
            "pad_token": v.pad_id,
        }  # fmt: skip

    def describe(self) -> str:
        d = self.dataset
        return (
            f"dataset={d.name} ({d.train.shape[0]} train / {len(d.test_sentences)} test sentences, "
            f"V={len(d.vocab)}, T={d.seq_len})"
        )

    def load_data(self, config: PretrainConfig, folder: RunFolder, device: torch.device) -> TextDataset:
        return self.dataset

    def evaluator(self, config: PretrainConfig, data: Any, device: torch.device) -> TextEvaluator:
        if self._references is None:  # built once (0.4 s for COCO's 10,000 references)
            self._references = BleuReferences(self.dataset.test_sentences, max(BLEU_ORDERS))
        return TextEvaluator(self.vocab, self._references, self.dataset.test, config.data.num_eval_samples)

    def check(self, config: PretrainConfig) -> None:
        super().check(config)
        TextEvaluator.check_samples(config.data.num_eval_samples)

    def write_files(self, folder: RunFolder) -> None:
        d = self.dataset
        if isinstance(d.vocab, Vocabulary):
            folder.save_text("vocab.json", json.dumps({"dataset": d.name, "words": d.vocab.words, "stats": d.stats}))
        else:  # a Hugging Face tokenizer: itself, as its checkpoints carry it
            folder.save_text(
                "vocab.json", json.dumps({"dataset": d.name, "tokenizer": d.vocab.to_dict(), "stats": d.stats})
            )

    def summary(self) -> dict[str, Any]:
        out = {"task": "text", "dataset": self.dataset.name, "data_stats": self.dataset.stats}
        if not isinstance(self.vocab, Vocabulary):
            out["tokenizer"] = self.vocab.source
        return out


def add_oracle_arguments(p: argparse.ArgumentParser) -> None:
    """The oracle benchmark's command-line options (``train_agent.py``, ``compare_algos.py``, ``pretrain.py``):
    ``--oracle``, ``--seq-len``, ``--vocab-size``; ``oracle_from_args`` builds the oracle they name."""
    p.add_argument(
        "--oracle", "--oracle-file", dest="oracle", default=None,
        help="paper (default) | random:SEED (an N(0,1) oracle, LeakGAN/RankGAN style) | FILE.npz",
    )  # fmt: skip
    p.add_argument("--seq-len", type=count(), default=None, help="sequence length (default: the oracle's; paper 20)")
    p.add_argument(
        "--vocab-size", type=count(2), default=None, help="vocabulary of a random:SEED oracle (default 5000)"
    )


PAPER_HIDDEN_DIM = 32
"""The embedding and hidden size of a ``random:SEED`` oracle (the paper's)."""


def oracle_from_args(args: argparse.Namespace) -> OracleLSTM:
    """The oracle of ``--oracle``, ``--seq-len`` and ``--vocab-size`` (raises ValueError with the fix)."""
    if args.seq_len is not None and args.seq_len < 1:
        raise ValueError(f"--seq-len must be >= 1, got {args.seq_len}")
    if args.vocab_size is not None and args.vocab_size < 2:
        raise ValueError(f"--vocab-size must be >= 2, got {args.vocab_size}")
    if args.vocab_size is not None:  # a random oracle's weights are drawn (in float64) before anything is checked
        size = 16 * args.vocab_size * (2 * PAPER_HIDDEN_DIM + 1)
        refuse_if_too_large(size, "the random oracle's weights", {"--vocab-size": args.vocab_size})
    return OracleLSTM.from_spec(args.oracle or "paper", args.seq_len, args.vocab_size)


def _fmt(dims: dict[str, Any]) -> str:
    short = {"vocab_size": "V", "seq_len": "T", "start_token": "start", "eos_token": "eos", "pad_token": "pad"}
    return ", ".join(f"{short[k]}={v}" for k, v in dims.items())
