"""``--tokenizer``: text runs with a BPE tokenizer trained on the training file or a saved Hugging Face tokenizer;
BLEU on words whatever the tokenizer, checkpoints that carry the tokenizer, ``sample.py`` printing text, refusals.
Offline and tiny: tokenizers are trained or built in the test."""

from __future__ import annotations

import pytest
import torch
from tiny_runs import GOLDEN_TINY, WORDS, load_script

pytest.importorskip("tokenizers")
pytest.importorskip("transformers")

from seqgan_rl.data.subword import TokenizerVocabulary  # noqa: E402
from seqgan_rl.data.text import load_text_dataset, tokenize  # noqa: E402
from seqgan_rl.training.run_folder import load_generator  # noqa: E402

SENTENCES = [tokenize(s) for s in WORDS]


@pytest.fixture
def files(tmp_path):
    (tmp_path / "train.txt").write_text("\n".join(WORDS * 8) + "\n")
    (tmp_path / "test.txt").write_text("a dog sits .\nthe man runs on a mat .\n")
    return tmp_path / "train.txt", tmp_path / "test.txt"


def gpt2_style_tokenizer(folder):
    """A byte-level BPE with one special token that ends, starts and pads (as GPT-2's), saved to ``folder``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    tok.train_from_iterator(
        WORDS, trainers.BpeTrainer(vocab_size=300, special_tokens=["<|end|>"], initial_alphabet=alphabet)
    )
    PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|end|>", bos_token="<|end|>").save_pretrained(folder)
    return folder


def test_bpe_vocabulary_round_trips_words_and_state():
    vocab = TokenizerVocabulary.train_bpe(SENTENCES, 40)
    assert (vocab.pad_id, vocab.bos_id, vocab.eos_id, vocab.unk_id) == (0, 1, 2, 3) and len(vocab) <= 40
    ids = vocab.encode(SENTENCES[1], 30)
    assert ids[len(vocab.ids(SENTENCES[1]))] == vocab.eos_id and ids[-1] == vocab.pad_id
    assert vocab.decode(ids) == SENTENCES[1]  # words back, whatever the subword split
    assert TokenizerVocabulary.train_bpe(SENTENCES, 40).itos == vocab.itos  # the same ids on every run
    again = TokenizerVocabulary.from_dict(vocab.to_dict())
    assert again.itos == vocab.itos and again.encode(SENTENCES[1], 30) == ids
    with pytest.raises(ValueError, match="does not fit in seq_len=3"):
        vocab.encode(SENTENCES[1], 3)


def test_dataset_with_a_bpe_and_a_saved_tokenizer(files, tmp_path):
    train, test = files
    words = load_text_dataset(train, test)
    bpe = load_text_dataset(train, test, tokenizer="bpe:40")
    assert bpe.train_sentences == words.train_sentences and bpe.test_sentences == words.test_sentences
    longest = max(len(bpe.vocab.ids(s)) for s in bpe.train_sentences)
    assert bpe.seq_len == longest + 1 and bpe.train.shape == (40, longest + 1)
    assert bpe.vocab.decode_batch(bpe.train) == bpe.train_sentences  # BLEU sees the same words

    saved = load_text_dataset(train, test, tokenizer=str(gpt2_style_tokenizer(tmp_path / "tok")))
    v = saved.vocab
    assert v.eos_id == v.bos_id != v.pad_id and v.decode_batch(saved.train) == saved.train_sentences


def test_text_run_with_bpe_carries_its_tokenizer_to_sample(files, tmp_path, capsys):
    train, test = files
    argv = ["--dataset", str(train), "--test-file", str(test), "--tokenizer", "bpe:40", "--num-rollouts", "2"]
    out = tmp_path / "run"
    assert load_script("train_agent").main([*argv, "--bleu-samples", "8", *GOLDEN_TINY, "--out", str(out)]) == 0
    assert "BLEU-2" in capsys.readouterr().out
    generator, vocab = load_generator(out / "generator_final.pt")
    assert isinstance(vocab, TokenizerVocabulary) and vocab.source == "bpe:40" and generator.vocab_size == len(vocab)
    assert load_script("sample").main([str(out / "generator_final.pt"), "-n", "3"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.strip()]
    assert len(lines) == 3 and not any(t in " ".join(lines) for t in ("<pad>", "<bos>", "<eos>", "▁"))


@pytest.mark.parametrize(
    "spec, message",
    [
        ("bpe:abc", "bpe:SIZE with SIZE a whole number"),
        ("bpe:3", "at least 5"),
        ("no/such/tokenizer", "no tokenizer loads"),
    ],
)
def test_bad_tokenizers_exit_2_before_any_work(files, tmp_path, capsys, spec, message, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    train, test = files
    out = tmp_path / "run"
    argv = ["--dataset", str(train), "--test-file", str(test), "--tokenizer", spec, "--out", str(out)]
    assert load_script("train_agent").main(argv) == 2
    assert message in capsys.readouterr().err and not out.exists()


def test_tokenizer_needs_a_dataset_and_a_large_enough_model(files, tmp_path, capsys):
    from transformers import GPT2Config, GPT2LMHeadModel

    assert load_script("train_agent").main(["--tokenizer", "bpe:40"]) == 2
    assert "--tokenizer needs --dataset" in capsys.readouterr().err
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(vocab_size=20, n_positions=32, n_embd=8, n_layer=1, n_head=2)).save_pretrained(
        tmp_path / "small"
    )
    train, test = files
    argv = ["--dataset", str(train), "--test-file", str(test), "--tokenizer", "bpe:40"]
    assert (
        load_script("train_agent").main(
            [*argv, "--generator-from", str(tmp_path / "small"), "--out", str(tmp_path / "r")]
        )
        == 2
    )
    assert "smaller than the task's" in capsys.readouterr().err


def test_pretrained_model_with_its_own_tokenizer_on_text(files, tmp_path, capsys):
    """A causal LM saved with its tokenizer in one folder: --generator-from DIR --tokenizer DIR fine-tunes it by
    MLE on the text (validation split, best epoch kept), then trains it adversarially; sample.py prints text."""
    from transformers import GPT2Config, GPT2LMHeadModel

    folder = gpt2_style_tokenizer(tmp_path / "model")
    tok = TokenizerVocabulary.load(str(folder))
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tok), n_positions=64, n_embd=16, n_layer=1, n_head=2, eos_token_id=tok.eos_id)
    GPT2LMHeadModel(config).save_pretrained(folder)
    train, test = files
    argv = [
        "--dataset",
        str(train),
        "--test-file",
        str(test),
        "--tokenizer",
        str(folder),
        "--generator-from",
        str(folder),
    ]
    options = ["--num-valid", "8", "--patience", "1", "--num-rollouts", "2", "--bleu-samples", "8", *GOLDEN_TINY]
    out = tmp_path / "run"
    assert load_script("train_agent").main([*argv, *options, "--out", str(out)]) == 0
    rows = (out / "pretrain" / "metrics.csv").read_text().splitlines()
    assert any(",mle_selected," in r for r in rows)  # the best-validation epoch was kept
    generator, vocab = load_generator(out / "generator_final.pt")
    assert vocab.source == str(folder) and vocab.eos_id == vocab.bos_id != vocab.pad_id
    assert load_script("sample").main([str(out / "generator_final.pt"), "-n", "2"]) == 0
    assert len([ln for ln in capsys.readouterr().out.splitlines() if ln.strip()]) >= 2


def test_a_real_token_that_pads_is_still_decoded(tmp_path):
    """GPT-2-style: no pad token, so the lowest id that does not end (a real token) pads after the end token;
    before it, it is text."""
    vocab = TokenizerVocabulary.load(str(gpt2_style_tokenizer(tmp_path / "tok")))
    pad = vocab.pad_id
    assert vocab.tokenizer.pad_token_id is None and pad == (1 if vocab.eos_id == 0 else 0)
    text = vocab.tokenizer.convert_tokens_to_string(vocab.tokenizer.convert_ids_to_tokens([pad]))
    assert vocab.decode([pad, vocab.eos_id, pad, pad]) == text.split() != []
