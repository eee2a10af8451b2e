"""Hugging Face tokenizers for the text path: a BPE tokenizer trained on the training sentences (``bpe:SIZE``),
or any tokenizer saved with ``save_pretrained`` (a path, or a hub id where the hub is reachable).

``TokenizerVocabulary`` is what ``Vocabulary`` is to the word path: ids <-> sentences, with the same encoding
(``ids .. <eos>`` right-padded to T) and the same decoding to *words* (the detokenised text split on spaces), so
BLEU and Self-BLEU compare words whatever the tokenizer. The sentences it encodes are the benchmarks' tokenized
words joined by spaces: a subword tokenizer then only splits words further, and decoding gives the words back.
Needs the ``hf`` extra (``tokenizers``, ``transformers``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch

from seqgan_rl.utils import HF_EXTRA

SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<unk>")
"""The special tokens of a BPE tokenizer trained here: ids 0..3, as the word vocabulary's."""


def _require() -> tuple[Any, Any]:
    try:
        import tokenizers
        import transformers
    except ImportError as exc:
        raise ValueError(f"--tokenizer needs Hugging Face tokenizers and transformers: {HF_EXTRA}") from exc
    return tokenizers, transformers


class TokenizerVocabulary:
    """A Hugging Face tokenizer with ``Vocabulary``'s interface (``encode``, ``encode_batch``, ``decode``,
    ``decode_batch``, ``itos``, the special ids, ``len``).

    Args:
        tokenizer: a ``transformers`` fast tokenizer with an end token. Its BOS token (else the end token) starts
            every sequence; its pad token pads after the end token, else its unknown token, else the lowest id
            that is not the end token (GPT-2 has neither): what follows the end token is never scored for G and
            is the same in real and generated sequences for D.
        source: how it was made (``"bpe:SIZE"``, a path or hub id), recorded with the run.

    Raises:
        ValueError: a tokenizer without an end token.
    """

    def __init__(self, tokenizer: Any, source: str) -> None:
        if tokenizer.eos_token_id is None:
            raise ValueError(f"--tokenizer {source}: it has no end token (eos_token): set one, or choose another")
        self.tokenizer, self.source = tokenizer, source
        self.eos_id = tokenizer.eos_token_id
        candidates = (tokenizer.pad_token_id, tokenizer.unk_token_id, 0, 1)
        self.pad_id = next(i for i in candidates if i is not None and i != self.eos_id)
        self.bos_id = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else self.eos_id
        self.unk_id = tokenizer.unk_token_id
        self._dropped = {tokenizer.pad_token_id, tokenizer.bos_token_id} - {None}  # special tokens, never words
        self.itos: list[str] = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        """Every id's token (what ``TokenGenerationEnv(vocab=...)`` renders)."""

    # ------------------------------------------------------------------------------------------ making
    @classmethod
    def train_bpe(cls, sentences: Iterable[Sequence[str]], size: int) -> TokenizerVocabulary:
        """A byte-pair tokenizer of at most ``size`` ids (the 4 special tokens included) trained on ``sentences``
        (word lists, joined by spaces): seconds, offline, the same ids on every run."""
        if size < len(SPECIAL_TOKENS) + 1:
            raise ValueError(f"--tokenizer bpe:{size}: the size must be at least {len(SPECIAL_TOKENS) + 1}")
        tokenizers, transformers = _require()
        tok = tokenizers.Tokenizer(tokenizers.models.BPE(unk_token="<unk>"))
        tok.pre_tokenizer = tokenizers.pre_tokenizers.Metaspace()
        tok.decoder = tokenizers.decoders.Metaspace()
        trainer = tokenizers.trainers.BpeTrainer(vocab_size=size, special_tokens=list(SPECIAL_TOKENS))
        tok.train_from_iterator((" ".join(s) for s in sentences), trainer)
        fast = transformers.PreTrainedTokenizerFast(
            tokenizer_object=tok, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>", unk_token="<unk>"
        )
        return cls(fast, f"bpe:{size}")

    @classmethod
    def load(cls, path_or_id: str) -> TokenizerVocabulary:
        """A tokenizer saved with ``save_pretrained`` (e.g. beside a pretrained model), or a hub id.

        Raises:
            ValueError: if nothing loads from ``path_or_id`` (naming it), or the tokenizer has no end token.
        """
        _, transformers = _require()
        try:
            tok = transformers.AutoTokenizer.from_pretrained(path_or_id)
        except (OSError, ValueError) as exc:
            raise ValueError(
                f"--tokenizer {path_or_id}: no tokenizer loads from it (a save_pretrained folder with "
                f"tokenizer.json, or a hub id where the hub is reachable): {exc}"
            ) from exc
        return cls(tok, path_or_id)

    @classmethod
    def from_spec(cls, spec: str, sentences: Iterable[Sequence[str]]) -> TokenizerVocabulary:
        """``bpe:SIZE`` (trained on ``sentences``) or a path / hub id (``--tokenizer``)."""
        if spec.startswith("bpe:"):
            size = spec[4:]
            if not size.isdigit():
                raise ValueError(f"--tokenizer {spec}: write bpe:SIZE with SIZE a whole number of ids, e.g. bpe:8000")
            return cls.train_bpe(sentences, int(size))
        return cls.load(spec)

    # ------------------------------------------------------------------------------------------ state
    def to_dict(self) -> dict[str, Any]:
        """What a checkpoint carries: the tokenizer itself (its JSON), its special tokens and its source."""
        t = self.tokenizer
        specials = {k: getattr(t, k) for k in ("pad_token", "bos_token", "eos_token", "unk_token")}
        return {"source": self.source, "tokenizer_json": t.backend_tokenizer.to_str(), "special_tokens": specials}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> TokenizerVocabulary:
        tokenizers, transformers = _require()
        tok = tokenizers.Tokenizer.from_str(state["tokenizer_json"])
        specials = {k: v for k, v in state["special_tokens"].items() if v is not None}
        return cls(transformers.PreTrainedTokenizerFast(tokenizer_object=tok, **specials), state["source"])

    # ------------------------------------------------------------------------------------------ ids
    def __len__(self) -> int:
        return len(self.itos)

    def ids(self, words: Sequence[str]) -> list[int]:
        """The tokenizer's ids of a sentence given as words (no special tokens)."""
        return self.tokenizer(" ".join(words), add_special_tokens=False)["input_ids"]

    def encode(self, tokens: Sequence[str], seq_len: int) -> list[int]:
        """A sentence's words -> ids + end token, right-padded to ``seq_len``.

        Raises:
            ValueError: if the sentence and its end token do not fit in ``seq_len``.
        """
        ids = self.ids(tokens)
        if len(ids) + 1 > seq_len:
            raise ValueError(f"a sentence of {len(ids)} tokens plus its end token does not fit in seq_len={seq_len}")
        return ids + [self.eos_id] + [self.pad_id] * (seq_len - len(ids) - 1)

    def encode_batch(self, sentences: Sequence[Sequence[str]], seq_len: int) -> torch.Tensor:
        return torch.tensor([self.encode(s, seq_len) for s in sentences], dtype=torch.long).view(-1, seq_len)

    def decode(self, ids: Iterable[int]) -> list[str]:
        """The words of ids up to the first end token (excluded), the tokenizer's pad and BOS tokens dropped
        (not a real token that pads for a tokenizer without one): the detokenised text split on spaces (what
        BLEU compares)."""
        kept = []
        for i in ids:
            i = int(i)
            if i == self.eos_id:
                break
            if i not in self._dropped:
                kept.append(i)
        return self.tokenizer.decode(kept).split()

    def decode_batch(self, ids: torch.Tensor) -> list[list[str]]:
        return [self.decode(row) for row in ids.tolist()]


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json")
"""Files a ``save_pretrained`` folder holds when a tokenizer was saved with the model."""


def check_same_tokenizer(path: str, vocab: Any, what: str = "--discriminator-from") -> None:
    """Refuse a model folder whose saved tokenizer is not the run's (``vocab``: the run's ``TokenizerVocabulary``,
    its word ``Vocabulary``, or ``None`` for the oracle's ids). A folder without a tokenizer is not checked here
    (its vocabulary size is, where the model is built).

    Raises:
        ValueError: naming the fix (the same ``--tokenizer``, or a model made for the run's ids).
    """
    from pathlib import Path

    folder = Path(path)
    if not folder.is_dir() or not any((folder / name).exists() for name in TOKENIZER_FILES):
        return
    if not isinstance(vocab, TokenizerVocabulary):
        ids = "the oracle's token ids" if vocab is None else "the word vocabulary"
        raise ValueError(
            f"{what} {path}: it was saved with a tokenizer, but this run's ids are {ids}: pass --tokenizer {path} "
            "(a text run), or a model made for this run's ids"
        )
    theirs = TokenizerVocabulary.load(str(folder))
    if theirs.tokenizer.get_vocab() != vocab.tokenizer.get_vocab():
        raise ValueError(
            f"{what} {path}: its tokenizer differs from this run's (--tokenizer {vocab.source}): D and G must read "
            "the same ids; pass the tokenizer saved with it"
        )
