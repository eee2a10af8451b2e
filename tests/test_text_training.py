"""Variable-length text: end tokens in the generator, MLE, rollouts, the env; the text scripts end to end."""

from __future__ import annotations

import json

import gymnasium as gym
import pytest
import torch
from tiny_runs import load_script
from torch.nn import functional as F

from seqgan_rl.config import DiscriminatorConfig, GeneratorConfig
from seqgan_rl.envs import TokenGenerationEnv, sample_prefix_completions
from seqgan_rl.models import Discriminator, Generator
from seqgan_rl.training.pretrain import mle_loss
from seqgan_rl.training.run_folder import PlainFolder, load_generator, save_generator
from seqgan_rl.utils import make_rng

V, T, EOS, PAD = 9, 7, 2, 0


def text_generator(seed: int = 0) -> Generator:
    cfg = GeneratorConfig(
        vocab_size=V, seq_len=T, embed_dim=8, hidden_dim=8, init_std=0.5, start_token=1, eos_token=EOS, pad_token=PAD
    )
    g = Generator(cfg)
    with torch.no_grad():
        g.reset_parameters(make_rng(seed))
        g.output.bias[EOS] += 1.5  # end early and often
    return g.eval()


def test_config_needs_eos_and_pad_together():
    with pytest.raises(ValueError, match="together"):
        GeneratorConfig(vocab_size=V, seq_len=T, eos_token=EOS)
    with pytest.raises(ValueError, match="distinct"):
        GeneratorConfig(vocab_size=V, seq_len=T, eos_token=2, pad_token=2)
    with pytest.raises(ValueError, match="distinct"):
        GeneratorConfig(vocab_size=V, seq_len=T, eos_token=V, pad_token=0)


def test_samples_are_padded_after_the_first_eos():
    g = text_generator()
    s = g.sample(200, make_rng(1))
    assert (s == EOS).any(dim=1).float().mean() > 0.5
    for row in s.tolist():
        if EOS in row:
            k = row.index(EOS)
            assert all(x == PAD for x in row[k + 1 :])


def test_nll_and_mle_loss_ignore_the_padding():
    g = text_generator()
    tokens = torch.tensor([[4, 5, EOS, PAD, PAD, PAD, PAD], [6, 7, 8, 3, 4, 5, EOS]])
    logp = torch.log_softmax(g(tokens), -1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)  # (2, T)
    counted = torch.tensor([[1, 1, 1, 0, 0, 0, 0], [1] * 7], dtype=torch.bool)
    expected = -logp[counted].mean().detach()
    assert g.nll(tokens) == pytest.approx(float(expected), rel=1e-5)
    assert float(mle_loss(g, tokens).detach()) == pytest.approx(float(expected), rel=1e-5)
    per_seq = g.sequence_nll(tokens)
    assert per_seq[0] == pytest.approx(float(-logp[0, :3].mean().detach()), rel=1e-5)
    # the oracle case (no end token) is unchanged: every position counts
    plain = Generator(GeneratorConfig(vocab_size=V, seq_len=T, embed_dim=8, hidden_dim=8))
    assert float(mle_loss(plain, tokens).detach()) == pytest.approx(
        float(F.cross_entropy(plain(tokens).detach().flatten(0, 1), tokens.flatten())), rel=1e-6
    )


def test_rollout_completions_pad_after_eos_and_keep_finished_prefixes():
    g = text_generator()
    seqs = g.sample(16, make_rng(3))
    comp = sample_prefix_completions(g, seqs, num_rollouts=4, rng=make_rng(4))  # (T-1, N, B, T)
    for t in range(1, T):
        for n in range(4):
            c = comp[t - 1, n]
            assert torch.equal(c[:, :t], seqs[:, :t])
            assert torch.equal(g.pad_after_eos(c), c)
            ended = (seqs[:, :t] == EOS).any(dim=1)
            assert torch.equal(c[ended], seqs[ended])  # a finished prefix completes to itself


def test_env_takes_the_end_token_from_a_text_generator_and_terminates_there():
    g = text_generator()
    d = Discriminator(DiscriminatorConfig(vocab_size=g.vocab_size, seq_len=T, embed_dim=4, filter_sizes=(1, 2),
                                          num_filters=(3, 3)))  # fmt: skip
    env = TokenGenerationEnv(generator=g, discriminator=d)
    assert (env.eos_token, env.pad_token) == (EOS, PAD)
    env.reset(seed=0)
    obs, _, term, _, _ = env.step(5)
    assert not term
    obs, _, term, _, info = env.step(EOS)
    assert term and info["length"] == 2 and obs.tolist() == [5, EOS] + [PAD] * (T - 2)
    with pytest.raises(gym.error.ResetNeeded):
        env.step(3)


# ------------------------------------------------------------------------------------------ scripts


@pytest.fixture
def text_files(tmp_path):
    words = ["a dog runs .", "a cat sits on a mat .", "the dog sits .", "a man rides a bike .", "the cat runs ."]
    (tmp_path / "train.txt").write_text("\n".join(words * 8) + "\n")
    (tmp_path / "test.txt").write_text("a dog sits .\nthe man runs on a mat .\n")
    return tmp_path / "train.txt", tmp_path / "test.txt"


def test_train_agent_on_a_text_file_then_sample(text_files, tmp_path, capsys):
    train_agent, sample = load_script("train_agent"), load_script("sample")
    out = tmp_path / "run"
    args = [
        "--dataset", str(text_files[0]), "--test-file", str(text_files[1]), "--device", "cpu", "--threads", "1",
        "--mle-epochs", "1", "--d-pretrain-rounds", "1", "--iterations", "2", "--num-rollouts", "2",
        "--eval-every", "1", "--bleu-samples", "8", "--out", str(out),
    ]  # fmt: skip
    assert train_agent.main(args) == 0
    printed = capsys.readouterr().out
    assert "dataset=train" in printed and "Self-BLEU-2" in printed and "BLEU-5" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["iterations"] == 2 and 0.0 <= summary["final"]["eval/bleu2"] <= 1.0
    assert {"generator_final.pt", "vocab.json", "metrics.csv", "config.json"} <= {p.name for p in out.iterdir()}
    assert sample.main([str(out / "generator_final.pt"), "-n", "5", "--seed", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 5
    vocab = set(json.loads((out / "vocab.json").read_text())["words"]) | {"<unk>"}
    assert all(set(line.split()) <= vocab for line in lines)
    assert sample.main([str(out / "generator_final.pt"), "-n", "3", "--out", str(tmp_path / "s.txt")]) == 0
    assert len((tmp_path / "s.txt").read_text().splitlines()) == 3


def test_text_scripts_refuse_bad_input(text_files, tmp_path, capsys):
    train_agent, sample = load_script("train_agent"), load_script("sample")
    (tmp_path / "empty.txt").write_bytes(b"")
    assert train_agent.main(["--dataset", str(tmp_path / "empty.txt")]) == 2
    assert "empty" in capsys.readouterr().err
    assert train_agent.main(["--dataset", str(text_files[0]), "--preset", "paper"]) == 2
    assert train_agent.main(["--dataset", str(text_files[0]), "--oracle-file", "x.npz"]) == 2
    assert train_agent.main(["--test-file", str(text_files[1])]) == 2
    assert sample.main([str(tmp_path / "missing.pt")]) == 2
    torch.save({"generator": {}}, tmp_path / "not_text.pt")
    assert sample.main([str(tmp_path / "not_text.pt")]) == 2
    assert "not a generator checkpoint" in capsys.readouterr().err
    save_generator(text_generator(), PlainFolder(tmp_path), "oracle_like.pt")  # a generator without a vocabulary
    assert sample.main([str(tmp_path / "oracle_like.pt")]) == 2
    assert "not a text generator checkpoint" in capsys.readouterr().err
    assert train_agent.main(["--dataset", str(text_files[0]), "--eval-samples", "1"]) == 2
    assert ">= 2 samples" in capsys.readouterr().err


def test_text_checkpoint_vocabulary_fits_the_env(text_files, tmp_path):
    """A text generator checkpoint carries every id's word, so its vocabulary renders in the env as is."""
    from seqgan_rl.data import load_text_dataset

    ds = load_text_dataset(text_files[0], text_files[1])
    g = Generator(
        GeneratorConfig(vocab_size=len(ds.vocab), seq_len=ds.seq_len, start_token=1, eos_token=2, pad_token=0)
    )
    save_generator(g, PlainFolder(tmp_path), "g.pt", ds.vocab)
    state = torch.load(tmp_path / "g.pt", weights_only=True)
    env = TokenGenerationEnv(generator=g, vocab=state["vocab"], render_mode="ansi")
    env.reset(seed=0)
    env.step(ds.vocab.stoi["dog"])
    assert env.render().endswith("dog")
    loaded, vocab = load_generator(tmp_path / "g.pt")
    assert vocab.itos == ds.vocab.itos and torch.equal(loaded.output.weight, g.output.weight)
