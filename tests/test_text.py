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


# ----------------------------------------------------------------------------- JSON lines / CSV / parquet files
SENTENCES = ["A man rides a horse.", "Two dogs play in the park.", None, "A cat sleeps on a red couch."]


def table_files(tmp_path):
    """The same four rows (one null text) as JSON lines, CSV and parquet, with an id column beside the text."""
    import json

    pytest.importorskip("datasets")
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"id": i, "caption": s} for i, s in enumerate(SENTENCES)]
    jsonl = tmp_path / "captions.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    csv_file = tmp_path / "captions.csv"
    csv_file.write_text("id,caption\n" + "".join(f'{r["id"]},"{r["caption"] or ""}"\n' for r in rows))
    parquet = tmp_path / "captions.parquet"
    pq.write_table(pa.Table.from_pylist(rows), parquet)
    return jsonl, csv_file, parquet


def test_table_files_read_their_text_column_like_a_sentence_file(tmp_path):
    expected = read_sentences(write(tmp_path, "same.txt", "\n".join(s or "" for s in SENTENCES).encode()))
    for path in table_files(tmp_path):
        got = read_sentences(path, text_column="caption")
        assert got == expected, path.suffix  # same sentences, the null/empty row counted as blank
        assert got.skipped_blank == 1


def test_table_files_refuse_a_missing_column_and_bad_input(tmp_path):
    jsonl, csv_file, _ = table_files(tmp_path)
    with pytest.raises(ValueError, match=r"no column 'text': pass --text-column NAME \(its columns: id, caption\)"):
        read_sentences(jsonl, text_column="text")
    with pytest.raises(ValueError, match="name its text column: pass --text-column"):
        read_sentences(csv_file)
    with pytest.raises(ValueError, match="row 1 of column 'id' holds int"):
        read_sentences(jsonl, text_column="id")
    with pytest.raises(ValueError, match="the file is empty"):
        read_sentences(write(tmp_path, "empty.jsonl", b""), text_column="caption")
    with pytest.raises(ValueError, match="not a readable .jsonl file"):
        read_sentences(write(tmp_path, "bad.jsonl", b'{"caption": "a b"}\n{not json\n'), text_column="caption")
    with pytest.raises(ValueError, match="leave out --text-column"):
        read_sentences(write(tmp_path, "plain.txt", b"a b\n"), text_column="caption")
    with pytest.raises(ValueError, match="does not apply to the built-in COCO"):
        load_text_dataset(COCO, text_column="caption")


def test_text_column_option_of_train_agent(tmp_path, capsys):
    """A JSON lines dataset through the CLI's data step; a wrong column exits 2 naming the columns."""
    from tiny_runs import load_script

    jsonl, csv_file, _ = table_files(tmp_path)
    script = load_script("train_agent")
    argv = ["--dataset", str(jsonl), "--test-file", str(csv_file), "--text-column", "caption"]
    data = script.make_task(script.parse_args(argv)).dataset
    assert data.name == "captions" and data.train.shape[0] == 3 and len(data.test_sentences) == 3
    assert script.main(["--dataset", str(jsonl), "--text-column", "text", "--out", str(tmp_path / "run")]) == 2
    assert "its columns: id, caption" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    assert script.main(["--text-column", "caption"]) == 2
    assert "--text-column needs --dataset" in capsys.readouterr().err


def test_hub_dataset_by_id_reads_its_splits_and_refuses_offline(tmp_path, monkeypatch):
    """--dataset hf:ID: its train split, and its test split as the test set. Offline the test uses what `datasets`
    loads the same way as a hub id: a local dataset folder (train.jsonl, test.jsonl); an unreachable id names it."""
    pytest.importorskip("datasets")
    import json

    folder = tmp_path / "captions"
    folder.mkdir()
    for split, lines in (("train", WORDS_TRAIN), ("test", ["a dog sits ."])):
        (folder / f"{split}.jsonl").write_text("".join(json.dumps({"text": s, "n": 1}) + "\n" for s in lines))
    data = load_text_dataset(f"hf:{folder}", text_column="text")
    assert data.train.shape[0] == len(WORDS_TRAIN) and data.test_sentences == [["a", "dog", "sits", "."]]
    with pytest.raises(ValueError, match="no column 'caption'.*its columns: text, n"):
        load_text_dataset(f"hf:{folder}", text_column="caption")
    with pytest.raises(ValueError, match="name its text column"):
        load_text_dataset(f"hf:{folder}")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError, match="hf:nobody/no-such-dataset: cannot load it from the hub"):
        load_text_dataset("hf:nobody/no-such-dataset", text_column="text")


WORDS_TRAIN = ["a man rides a horse .", "two dogs play .", "a cat sleeps .", "a bus on the street ."] * 3
