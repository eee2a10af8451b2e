"""Real text: the benchmarks' word tokenizer, a vocabulary, and sentence files (COCO captions built in).

The text-GAN benchmarks (Texygen, RelGAN, TextGAN-PyTorch) tokenize with ``nltk.word_tokenize(line.lower())``.
``word_tokenize`` here is NLTK's word tokenizer (``NLTKWordTokenizer``, what ``word_tokenize`` runs on each
sentence) re-implemented with the same regular expressions, so the package needs no nltk at run time. It
equals ``nltk.word_tokenize(text, preserve_line=True)``: nltk's Punkt sentence splitter (whose model cannot
be downloaded here) is not run first. That only matters for a line holding several sentences, where Punkt
would detach the period of a sentence inside the line ("... at 11:59. there is ..."): 8 of the 20,000
COCO lines have such an inner sentence end. ``tests/test_text.py`` checks the equality on every COCO line.

Sentences come from a UTF-8 file of one sentence per line, or from a named column of a JSON lines, CSV or parquet
file (read with Hugging Face ``datasets``, the ``hf`` extra; ``TABLE_SUFFIXES``).

A sentence of n words is encoded as ``w_1 .. w_n <eos>`` right-padded with ``<pad>`` to the dataset's
length T (the longest training sentence + 1); the generator's start token is ``<bos>``.
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import torch

from seqgan_rl.data.subword import TokenizerVocabulary
from seqgan_rl.utils import HF_EXTRA, pad_after_eos, valid_mask

log = logging.getLogger(__name__)

__all__ = [
    "COCO", "SPECIALS", "TABLE_SUFFIXES", "SentenceFile", "TextDataset", "Vocabulary", "coco_files",
    "load_text_dataset", "pad_after_eos", "read_sentences", "tokenize", "valid_mask", "word_tokenize",
]  # fmt: skip

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIALS = (PAD, BOS, EOS, UNK)
"""Ids 0..3 of every vocabulary, in this order."""

DEFAULT_MAX_TOKENS = 100
"""Lines with more tokens are skipped (with a counted warning) unless ``max_tokens`` says otherwise."""

# --------------------------------------------------------------------------------------------- tokenizer
# The rules of nltk.tokenize.destructive.NLTKWordTokenizer (nltk 3.10), in its order. One difference in
# form: nltk's first final-period rule uses a possessive ``*+`` (Python >= 3.11); the class holds the space
# that ``\s*$`` could take back, and the maximal run is the only split that ever matches, so ``*`` is equal.
_STARTING_QUOTES = [
    (re.compile("([«“‘„]|[`]+)"), r" \1 "),
    (re.compile(r"^\""), r"``"),
    (re.compile(r"(``)"), r" \1 "),
    (re.compile(r"([ \(\[{<])(\"|\'{2})"), r"\1 `` "),
    (re.compile(r"(?i)(?<!\w)(\')(?!(?:re|ve|ll|m|t|s|d|n)\b)(?=\w)"), r"\1 "),
]
_ENDING_QUOTES = [
    (re.compile("([»”’])"), r" \1 "),
    (re.compile(r"''"), " '' "),
    (re.compile(r'"'), " '' "),
    (re.compile(r"\s+"), " "),
    (re.compile(r"([^' ])('[sS]|'[mM]|'[dD]|') "), r"\1 \2 "),
    (re.compile(r"([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) "), r"\1 \2 "),
]
_PUNCTUATION = [
    (re.compile(r'([^\.])(\.)([\]\)}>"\'' "»”’ " r"]*)\s*$"), r"\1 \2 \3 "),
    (re.compile(r"([:,])([^\d])"), r" \1 \2"),
    (re.compile(r"([:,])$"), r" \1 "),
    (re.compile(r"\.{2,}"), r" \g<0> "),
    (re.compile(r"[;@#$%&]"), r" \g<0> "),
    (re.compile(r"[\u2012-\u2015]"), r" \g<0> "),
    (re.compile(r'([^\.])(\.)([\]\)}>"\']*)\s*$'), r"\1 \2\3 "),
    (re.compile(r"[?!]"), r" \g<0> "),
    (re.compile(r"([^'])' "), r"\1 ' "),
    (re.compile(r"[*]"), r" \g<0> "),
]
_PARENS_BRACKETS = (re.compile(r"[\]\[\(\)\{\}\<\>]"), r" \g<0> ")
_DOUBLE_DASHES = (re.compile(r"--"), r" -- ")
_CONTRACTIONS = [
    re.compile(p)
    for p in (
        r"(?i)\b(can)(?#X)(not)\b",
        r"(?i)\b(d)(?#X)('ye)\b",
        r"(?i)\b(gim)(?#X)(me)\b",
        r"(?i)\b(gon)(?#X)(na)\b",
        r"(?i)\b(got)(?#X)(ta)\b",
        r"(?i)\b(lem)(?#X)(me)\b",
        r"(?i)\b(more)(?#X)('n)\b",
        r"(?i)\b(wan)(?#X)(na)(?=\s)",
        r"(?i) ('t)(?#X)(is)\b",
        r"(?i) ('t)(?#X)(was)\b",
    )
]


def word_tokenize(text: str) -> list[str]:
    """NLTK's word tokenizer without sentence splitting: ``nltk.word_tokenize(text, preserve_line=True)``."""
    for regexp, sub in _STARTING_QUOTES:
        text = regexp.sub(sub, text)
    for regexp, sub in _PUNCTUATION:
        text = regexp.sub(sub, text)
    text = _PARENS_BRACKETS[0].sub(_PARENS_BRACKETS[1], text)
    text = _DOUBLE_DASHES[0].sub(_DOUBLE_DASHES[1], text)
    text = " " + text + " "
    for regexp, sub in _ENDING_QUOTES:
        text = regexp.sub(sub, text)
    for regexp in _CONTRACTIONS:
        text = regexp.sub(r" \1 \2 ", text)
    return text.split()


def tokenize(line: str) -> list[str]:
    """The benchmarks' tokenization of one sentence: ``word_tokenize(line.lower())``."""
    return word_tokenize(line.lower())


# --------------------------------------------------------------------------------------------- vocabulary
class Vocabulary:
    """Word <-> id maps: ``<pad>`` 0, ``<bos>`` 1, ``<eos>`` 2, ``<unk>`` 3, then the words.

    Args:
        words: the words after the special tokens, in id order (no duplicates, no special tokens).
    """

    def __init__(self, words: Sequence[str]) -> None:
        clash = set(words) & set(SPECIALS)
        if clash:
            raise ValueError(f"the special tokens {sorted(clash)} cannot be vocabulary words")
        self.itos: list[str] = [*SPECIALS, *words]
        self.stoi: dict[str, int] = {w: i for i, w in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise ValueError("vocabulary words must be unique")

    pad_id, bos_id, eos_id, unk_id = 0, 1, 2, 3

    @classmethod
    def build(cls, sentences: Iterable[Sequence[str]], min_count: int = 1) -> Vocabulary:
        """Every word seen at least ``min_count`` times, most frequent first (ties alphabetical), so the
        ids are the same on every run (Texygen's come from a ``set`` and change with hash seeds)."""
        counts = Counter(w for s in sentences for w in s)
        words = sorted(
            (w for w, c in counts.items() if c >= min_count and w not in SPECIALS), key=lambda w: (-counts[w], w)
        )
        return cls(words)

    def __len__(self) -> int:
        return len(self.itos)

    @property
    def words(self) -> list[str]:
        """The words after the special tokens (what ``Vocabulary(words)`` rebuilds this from)."""
        return self.itos[len(SPECIALS) :]

    def encode(self, tokens: Sequence[str], seq_len: int) -> list[int]:
        """``tokens`` -> ids + ``<eos>``, right-padded with ``<pad>`` to ``seq_len`` (unknown words -> ``<unk>``).

        Raises:
            ValueError: if the sentence and its end token do not fit in ``seq_len``.
        """
        if len(tokens) + 1 > seq_len:
            raise ValueError(f"a sentence of {len(tokens)} tokens plus <eos> does not fit in seq_len={seq_len}")
        ids = [self.stoi.get(w, self.unk_id) for w in tokens] + [self.eos_id]
        return ids + [self.pad_id] * (seq_len - len(ids))

    def encode_batch(self, sentences: Sequence[Sequence[str]], seq_len: int) -> torch.Tensor:
        """``(N, seq_len)`` int64 of encoded sentences."""
        return torch.tensor([self.encode(s, seq_len) for s in sentences], dtype=torch.long).view(-1, seq_len)

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Words up to the first ``<eos>`` (excluded); ``<pad>`` and ``<bos>`` are dropped, ``<unk>`` kept."""
        out = []
        for i in ids:
            i = int(i)
            if i == self.eos_id:
                break
            if i in (self.pad_id, self.bos_id):
                continue
            out.append(self.itos[i])
        return out

    def decode_batch(self, ids: torch.Tensor) -> list[list[str]]:
        return [self.decode(row) for row in ids.tolist()]


# --------------------------------------------------------------------------------------------- files
class SentenceFile(NamedTuple):
    sentences: list[list[str]]
    """Tokenized sentences, in file order."""
    skipped_blank: int
    """Blank lines skipped."""
    skipped_long: int
    """Lines over ``max_tokens`` skipped."""


TABLE_SUFFIXES = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
"""Data files read with ``datasets`` (the builder of each suffix), one sentence per row in a named text column."""


def read_sentences(
    path: str | os.PathLike, max_tokens: int | None = DEFAULT_MAX_TOKENS, text_column: str | None = None
) -> SentenceFile:
    """Read and tokenize a UTF-8 file of one sentence per line, or the ``text_column`` of a JSON lines, CSV or
    parquet file (``TABLE_SUFFIXES``; a row's number counts as its line number below).

    Blank lines (rows with an empty or null text) and lines with more than ``max_tokens`` tokens are skipped
    and counted (a warning is logged with the counts and the first line numbers); nothing is dropped silently.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: for an empty file, bytes that are not UTF-8 (naming the line and byte), a file with no
            usable line, a data file without ``text_column`` (or unreadable by ``datasets``), a text column
            holding something other than strings, or ``text_column`` given for a plain text file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"sentence file {str(path)!r} not found")
    if max_tokens is not None and max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    if path.suffix.lower() in TABLE_SUFFIXES:
        if path.stat().st_size == 0:
            raise ValueError(f"{path}: the file is empty (expected rows with a {text_column or 'text'!r} column)")
        return _tokenized(path, _read_column(path, text_column), max_tokens)
    if text_column is not None:
        raise ValueError(
            f"{path}: a text column applies to {', '.join(TABLE_SUFFIXES)} files; a plain text file holds one "
            "sentence per line (leave out --text-column)"
        )
    raw = path.read_bytes()
    if not raw:
        raise ValueError(f"{path}: the file is empty (expected one sentence per line)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ValueError(
            f"{path}:{line}: byte {raw[exc.start]:#04x} at offset {exc.start} is not UTF-8; "
            "convert the file to UTF-8 (e.g. iconv -f latin1 -t utf-8)"
        ) from exc
    return _tokenized(path, text.removeprefix("\ufeff").splitlines(), max_tokens)


HUB_PREFIX = "hf:"
"""``--dataset hf:ID``: a Hugging Face hub dataset (where the hub is reachable), its ``train`` split."""


def read_hub_sentences(
    hub_id: str, split: str, text_column: str | None, max_tokens: int | None = DEFAULT_MAX_TOKENS,
    missing_ok: bool = False,
) -> SentenceFile | None:  # fmt: skip
    """The ``text_column`` of split ``split`` of hub dataset ``hub_id``, tokenized as a sentence file's lines.

    Returns:
        ``None`` when ``missing_ok`` and the dataset has no such split.

    Raises:
        ValueError: the dataset cannot be loaded (no network, no such id: the error names it), the split or the
            column is missing (naming those it has), or no column is named.
    """
    try:
        import datasets
    except ImportError as exc:
        raise ValueError(f"--dataset {HUB_PREFIX}{hub_id} needs Hugging Face datasets: {HF_EXTRA}") from exc
    if text_column is None:
        raise ValueError(f"--dataset {HUB_PREFIX}{hub_id}: name its text column with --text-column NAME")
    try:
        splits = datasets.get_dataset_split_names(hub_id)
    except Exception as exc:  # offline, unknown id, gated: datasets raises many kinds
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"--dataset {HUB_PREFIX}{hub_id}: cannot load it from the hub ({first})") from exc
    if split not in splits:
        if missing_ok:
            return None
        raise ValueError(f"--dataset {HUB_PREFIX}{hub_id} has no {split!r} split (its splits: {', '.join(splits)})")
    table = datasets.load_dataset(hub_id, split=split)
    if text_column not in table.column_names:
        raise ValueError(
            f"--dataset {HUB_PREFIX}{hub_id}: no column {text_column!r}: pass --text-column NAME (its columns: "
            f"{', '.join(table.column_names)})"
        )
    lines = [v if isinstance(v, str) else "" for v in table[text_column]]
    return _tokenized(Path(f"{hub_id}[{split}]"), lines, max_tokens)


def _read_column(path: Path, column: str | None) -> list[str]:
    """The strings of ``column`` of a JSON lines / CSV / parquet file, read with ``datasets`` (rows in order;
    a null is an empty line)."""
    try:
        import datasets
    except ImportError as exc:
        raise ValueError(f"{path}: reading {path.suffix} files needs Hugging Face datasets: {HF_EXTRA}") from exc
    import tempfile

    with tempfile.TemporaryDirectory() as cache:  # nothing is left in the user's datasets cache
        try:
            table = datasets.load_dataset(
                TABLE_SUFFIXES[path.suffix.lower()], data_files=str(path), split="train", cache_dir=cache,
                keep_in_memory=True,
            )  # fmt: skip
        except Exception as exc:  # datasets raises many kinds for a malformed file
            raise ValueError(f"{path}: not a readable {path.suffix} file ({type(exc).__name__}: {exc})") from exc
        columns = list(table.column_names)
        if column is None or column not in columns:
            what = "name its text column" if column is None else f"it has no column {column!r}"
            raise ValueError(f"{path}: {what}: pass --text-column NAME (its columns: {', '.join(columns)})")
        values = table[column]
    lines = []
    for row, value in enumerate(values, 1):
        if value is not None and not isinstance(value, str):
            raise ValueError(
                f"{path}: row {row} of column {column!r} holds {type(value).__name__} {value!r}, not text: "
                "name the column that holds the sentences"
            )
        lines.append(value or "")
    return lines


def _tokenized(path: Path, lines: Iterable[str], max_tokens: int | None) -> SentenceFile:
    """Tokenize ``lines`` (the skipping, counting and warnings of ``read_sentences``)."""
    sentences: list[list[str]] = []
    blank: list[int] = []
    long: list[int] = []
    for lineno, line in enumerate(lines, 1):
        tokens = tokenize(line)
        if not tokens:
            blank.append(lineno)
        elif max_tokens is not None and len(tokens) > max_tokens:
            long.append(lineno)
        else:
            sentences.append(tokens)
    if blank:
        log.warning("%s: skipped %d blank line(s) (first: line %s)", path, len(blank), _first(blank))
    if long:
        log.warning(
            "%s: skipped %d line(s) longer than %d tokens (first: line %s)", path, len(long), max_tokens, _first(long)
        )
    if not sentences:
        raise ValueError(
            f"{path}: no usable line ({len(blank)} blank, {len(long)} longer than {max_tokens} tokens); "
            "expected one sentence per line (or row)"
        )
    return SentenceFile(sentences, len(blank), len(long))


def _first(linenos: list[int], k: int = 5) -> str:
    return ", ".join(map(str, linenos[:k])) + (", ..." if len(linenos) > k else "")


class TextDataset(NamedTuple):
    """A training file and a test file, tokenized and encoded."""

    name: str
    vocab: Vocabulary | TokenizerVocabulary
    """Ids <-> sentences: the word vocabulary, or a Hugging Face tokenizer (``--tokenizer``)."""
    seq_len: int
    """T: the longest training sentence + 1 (its end token), or the ``seq_len`` asked for."""
    train: torch.Tensor
    """``(N, T)`` encoded training sentences (``w.. <eos> <pad>..``)."""
    test: torch.Tensor
    """``(M, T)`` encoded test sentences that fit in T (for NLL-test; unknown words are ``<unk>``)."""
    train_sentences: list[list[str]]
    test_sentences: list[list[str]]
    """Every test sentence as tokens: the BLEU references (whatever their length or words)."""
    stats: dict[str, int]
    """Counts of what was skipped or replaced (reported next to results)."""


COCO = "coco"
"""The built-in dataset: Image COCO captions, 10,000 train + 10,000 test (Texygen's split)."""


def coco_files() -> tuple[Path, Path]:
    """Paths of the shipped COCO train and test files."""
    root = resources.files("seqgan_rl") / "assets"
    return Path(str(root / "coco_train.txt")), Path(str(root / "coco_test.txt"))


def load_text_dataset(
    train: str | os.PathLike,
    test: str | os.PathLike | None = None,
    seq_len: int | None = None,
    max_tokens: int | None = DEFAULT_MAX_TOKENS,
    test_fraction: float = 0.1,
    text_column: str | None = None,
    tokenizer: str | None = None,
) -> TextDataset:
    """Load ``"coco"`` (the built-in captions) or a sentence file (and its test file).

    Args:
        train: ``"coco"``, the path of a UTF-8 file of one sentence per line, a JSON lines / CSV / parquet
            file with ``text_column``, or ``"hf:ID"``: a hub dataset's ``train`` split (where the hub is reachable;
            its ``test`` split is the test set unless ``test`` is given).
        test: the test file; ``None`` uses COCO's for ``"coco"``, else the last ``test_fraction`` of the
            training file's sentences (a warning says so).
        seq_len: T; ``None`` = the longest training sentence + 1. Training sentences that do not fit are an
            error; test sentences that do not fit are left out of NLL-test (counted; still BLEU references).
        max_tokens: lines with more tokens are skipped with a counted warning.
        test_fraction: the held-out share when there is no test file.
        text_column: the column of the sentences in JSON lines / CSV / parquet files (training and test).
        tokenizer: ``None``: the word vocabulary of the training sentences (the benchmarks'); ``"bpe:SIZE"``: a
            byte-pair tokenizer trained on them; else a tokenizer's ``save_pretrained`` folder or hub id
            (``seqgan_rl.data.subword.TokenizerVocabulary``; T then counts its tokens).

    Raises:
        FileNotFoundError, ValueError: see ``read_sentences``; also for a ``seq_len`` too short for the
            training sentences, or a file too small to hold out a test split.
    """
    stats: dict[str, int] = {}
    hub_test = None
    if str(train) == COCO:
        name = COCO
        train_path, coco_test = coco_files()
        test = coco_test if test is None else test
    elif str(train).startswith(HUB_PREFIX):
        hub_id = str(train)[len(HUB_PREFIX) :]
        name, train_path = hub_id.replace("/", "-"), Path(hub_id)
    else:
        train_path = Path(train)
        name = train_path.stem
    if name == COCO and text_column is not None:
        raise ValueError("a text column does not apply to the built-in COCO captions")
    if str(train).startswith(HUB_PREFIX):
        tr = read_hub_sentences(hub_id, "train", text_column, max_tokens)
        if test is None:  # its test split, else a held-out share of train
            hub_test = read_hub_sentences(hub_id, "test", text_column, max_tokens, missing_ok=True)
    else:
        tr = read_sentences(train_path, max_tokens, text_column)
    stats.update(train_skipped_blank=tr.skipped_blank, train_skipped_long=tr.skipped_long)
    train_sents = tr.sentences
    if hub_test is not None:
        stats.update(test_skipped_blank=hub_test.skipped_blank, test_skipped_long=hub_test.skipped_long)
        test_sents = hub_test.sentences
    elif test is None:
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
        n_test = int(len(train_sents) * test_fraction)
        if n_test < 1 or n_test >= len(train_sents):
            raise ValueError(
                f"{train_path}: {len(train_sents)} sentences are too few to hold out a test split: pass a test file"
            )
        log.warning("no test file: holding out the last %d of %d training sentences", n_test, len(train_sents))
        train_sents, test_sents = train_sents[:-n_test], train_sents[-n_test:]
    else:
        te = read_sentences(test, max_tokens, text_column if Path(test).suffix.lower() in TABLE_SUFFIXES else None)
        stats.update(test_skipped_blank=te.skipped_blank, test_skipped_long=te.skipped_long)
        test_sents = te.sentences
    if tokenizer is None:
        vocab: Vocabulary | TokenizerVocabulary = Vocabulary.build(train_sents)
        length = len
    else:
        vocab = TokenizerVocabulary.from_spec(tokenizer, train_sents)
        length = lambda s: len(vocab.ids(s))  # noqa: E731
    longest = max(length(s) for s in train_sents)
    if seq_len is None:
        seq_len = longest + 1
    elif longest + 1 > seq_len:
        raise ValueError(f"seq_len={seq_len} is too short: the longest training sentence needs {longest + 1}")
    fitting = [s for s in test_sents if length(s) + 1 <= seq_len]
    stats["test_too_long_for_nll"] = len(test_sents) - len(fitting)
    if tokenizer is None:
        stats["test_unknown_tokens"] = sum(w not in vocab.stoi for s in fitting for w in s)
    else:
        stats["test_unknown_tokens"] = (
            sum(vocab.ids(s).count(vocab.unk_id) for s in fitting) if vocab.unk_id is not None else 0
        )
    if stats["test_too_long_for_nll"]:
        log.warning(
            "%d test sentence(s) longer than seq_len - 1 = %d are left out of NLL-test (kept as BLEU references)",
            stats["test_too_long_for_nll"],
            seq_len - 1,
        )
    return TextDataset(
        name=name,
        vocab=vocab,
        seq_len=seq_len,
        train=vocab.encode_batch(train_sents, seq_len),
        test=vocab.encode_batch(fitting, seq_len),
        train_sentences=train_sents,
        test_sentences=test_sents,
        stats=stats,
    )
