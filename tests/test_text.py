"""The word tokenizer (equal to nltk's), the vocabulary, and sentence files with every bad case."""

from __future__ import annotations

import logging

import pytest
import torch

from seqgan_rl.data.text import (
    COCO,
    Vocabulary,
    coco_files,
    load_text_dataset,
    pad_after_eos,
    read_sentences,
    tokenize,
    valid_mask,
)

TRICKY = [
    "He said \"hello\" (twice)... can't won't gonna",
    "'tis the «quote» — dash -- x; y: 3,4 a,b",
    "Mr. Smith's cat's 'toy'.",
    "what?! yes!  a [b] {c} <d> $5 @x #y %z &w *q",
    "“smart” ‘single’ „low” wanna go? gimme lemme gotta",
    "end.) a ''b'' c x... y.. ends with dot .",
]


def test_tokenizer_equals_nltk_on_every_coco_line_and_tricky_text():
    nltk = pytest.importorskip("nltk")
    lines = [*TRICKY]
    for path in coco_files():
        lines += path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 20_000 + len(TRICKY)
    different = [s for s in lines if tokenize(s) != nltk.word_tokenize(s.lower(), preserve_line=True)]
    assert different == []


def test_tokenize_examples():
    assert tokenize("A man riding a bike, down the street.") == [
        "a", "man", "riding", "a", "bike", ",", "down", "the", "street", ".",
    ]  # fmt: skip
    assert tokenize("It's a dog's toy") == ["it", "'s", "a", "dog", "'s", "toy"]
    assert tokenize("   ") == []


def test_vocabulary_is_deterministic_and_round_trips():
    sents = [["a", "dog", "runs"], ["a", "cat"], ["the", "dog"]]
    v = Vocabulary.build(sents)
    assert v.itos[:4] == ["<pad>", "<bos>", "<eos>", "<unk>"]
    assert v.words == ["a", "dog", "cat", "runs", "the"]  # by frequency, ties alphabetical
    ids = v.encode(["a", "dog", "runs"], seq_len=6)
    assert ids == [4, 5, 7, 2, 0, 0]
    assert v.decode(ids) == ["a", "dog", "runs"]
    assert v.decode(v.encode(["a", "zebra"], 4)) == ["a", "<unk>"]
    assert v.decode([1, 4, 0, 5, 2, 6]) == ["a", "dog"]  # <bos>/<pad> dropped, stops at <eos>
    batch = v.encode_batch(sents, 5)
    assert batch.shape == (3, 5) and v.decode_batch(batch) == sents
    assert Vocabulary(v.words).itos == v.itos
    with pytest.raises(ValueError, match="does not fit"):
        v.encode(["a"] * 5, seq_len=5)
    with pytest.raises(ValueError, match="special"):
        Vocabulary(["<eos>", "a"])


def test_pad_after_eos_and_valid_mask():
    t = torch.tensor([[5, 2, 7, 2], [5, 6, 7, 8], [2, 9, 9, 9]])
    assert pad_after_eos(t, 2, 0).tolist() == [[5, 2, 0, 0], [5, 6, 7, 8], [2, 0, 0, 0]]
    assert valid_mask(t, 2).tolist() == [[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]]
    assert valid_mask(t, None).all()


def test_coco_dataset_loads_from_the_package():
    ds = load_text_dataset(COCO)
    assert len(ds.train_sentences) == 10_000 and len(ds.test_sentences) == 10_000
    assert ds.seq_len == 38  # longest train caption (37 tokens) + <eos>
    assert len(ds.vocab) == 4659 + 4
    assert ds.train.shape == (10_000, 38) and ds.train.dtype == torch.long
    assert ds.vocab.decode_batch(ds.train[:3]) == ds.train_sentences[:3]
    assert (ds.train == ds.vocab.eos_id).sum(dim=1).eq(1).all()
    assert ds.stats["test_too_long_for_nll"] == 0 and ds.stats["test_unknown_tokens"] > 0


def write(tmp_path, name, data: bytes):
    p = tmp_path / name
    p.write_bytes(data)
    return p


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        read_sentences(tmp_path / "nope.txt")
    with pytest.raises(ValueError, match="empty"):
        read_sentences(write(tmp_path, "empty.txt", b""))


def test_file_with_no_usable_line(tmp_path):
    with pytest.raises(ValueError, match="no usable line"):
        read_sentences(write(tmp_path, "blank.txt", b"\n   \n\t\n"))
    with pytest.raises(ValueError, match="no usable line.*longer than 3"):
        read_sentences(write(tmp_path, "long.txt", b"a b c d e\n"), max_tokens=3)


def test_non_utf8_bytes_name_the_line(tmp_path):
    p = write(tmp_path, "latin1.txt", "a cat\nun caf\u00e9\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1.txt:2: byte 0xe9 .* not UTF-8"):
        read_sentences(p)


def test_blank_and_overlong_lines_are_counted_not_silent(tmp_path, caplog):
    p = write(tmp_path, "mixed.txt", "\ufeffA dog.\r\n\r\none two three four five\n  \nA cat\n".encode())
    with caplog.at_level(logging.WARNING):
        f = read_sentences(p, max_tokens=4)
    assert f.sentences == [["a", "dog", "."], ["a", "cat"]]
    assert (f.skipped_blank, f.skipped_long) == (2, 1)
    assert "skipped 2 blank line(s) (first: line 2, 4)" in caplog.text
    assert "skipped 1 line(s) longer than 4 tokens (first: line 3)" in caplog.text


def test_user_file_with_and_without_test_file(tmp_path, caplog):
    train = write(tmp_path, "train.txt", b"a b c\nb c\nc d e f\nd e\na a b\n")
    test = write(tmp_path, "test.txt", b"a b z\na b c d e f g h\n")
    ds = load_text_dataset(train, test)
    assert ds.name == "train" and ds.seq_len == 5 and ds.train.shape == (5, 5)
    assert ds.test.shape == (1, 5)  # the 8-token test line does not fit for NLL-test...
    assert len(ds.test_sentences) == 2  # ...but stays a BLEU reference
    assert ds.stats["test_too_long_for_nll"] == 1 and ds.stats["test_unknown_tokens"] == 1
    with caplog.at_level(logging.WARNING):
        held = load_text_dataset(train, test_fraction=0.2)
    assert held.train.shape[0] == 4 and held.test_sentences == [["a", "a", "b"]]
    assert "holding out the last 1" in caplog.text
    with pytest.raises(ValueError, match="too short"):
        load_text_dataset(train, test, seq_len=3)
    with pytest.raises(ValueError, match="too few"):
        load_text_dataset(write(tmp_path, "one.txt", b"a b\n"))
