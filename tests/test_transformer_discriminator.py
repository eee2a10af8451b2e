"""A Hugging Face sequence classifier as D: the CNN's interface (scores, rollouts, training), the env, a run's
D retraining, checkpoints and resume bit for bit; a saved classifier by path; refusals before any work."""

from __future__ import annotations

import json

import gymnasium as gym
import pytest
import torch
from tiny_runs import GOLDEN_TINY, WORDS, data_rows, load_script

pytest.importorskip("transformers")

import seqgan_rl  # noqa: E402, F401
from seqgan_rl.config import TransformerDiscriminatorConfig  # noqa: E402
from seqgan_rl.models import Generator, TransformerDiscriminator, build_discriminator  # noqa: E402
from seqgan_rl.models.oracle import OracleLSTM  # noqa: E402


def tiny(arch="gpt2", **tokens) -> TransformerDiscriminator:
    torch.manual_seed(0)
    return build_discriminator(
        TransformerDiscriminatorConfig(
            vocab_size=20, seq_len=6, architecture=arch, hidden_dim=16, num_heads=2, **tokens
        )
    )


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_interface_scores_rollouts_and_training(arch):
    d = tiny(arch)
    x = torch.randint(0, 20, (5, 6))
    p = d.prob_real(x)
    assert p.shape == (5,) and torch.allclose(p, torch.softmax(d.eval()(x), dim=1)[:, 1])
    comp = torch.randint(0, 20, (5, 3, 5, 6))
    d_comp, d_full = d.prob_real_rollouts(x, comp)
    assert torch.allclose(d_comp[2, 1], d.prob_real(comp[2, 1])) and torch.allclose(d_full, p)
    opt = torch.optim.Adam(d.parameters(), lr=1e-2)
    labels = torch.tensor([0, 1, 0, 1, 1])
    before = float(d.train_loss(x, labels)[0])
    for _ in range(20):
        loss, _ = d.train_loss(x, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(d.train_loss(x, labels)[0]) < before


def test_text_reads_up_to_the_end_token():
    d = tiny(eos_token=2, pad_token=0)
    same = d.prob_real(torch.tensor([[5, 6, 2, 0, 0, 0], [5, 6, 2, 7, 8, 9]]))
    assert same[0] == same[1]  # what follows the end token is padding to D


def test_env_with_a_transformer_d():
    oracle = OracleLSTM.random(vocab_size=20, seq_len=6, embed_dim=8, hidden_dim=8, seed=3)  # noqa: F841
    from seqgan_rl.config import GeneratorConfig

    g = Generator(GeneratorConfig(vocab_size=20, seq_len=6, embed_dim=8, hidden_dim=8))
    env = gym.make("seqgan_rl/TokenGeneration-v0", generator=g, discriminator=tiny(), reward_mode="q", num_rollouts=3)
    env.reset(seed=0)
    rewards = [env.step(a)[1] for a in (1, 2, 3, 4, 5, 6)]
    assert all(0.0 < r < 1.0 for r in rewards)


@pytest.fixture(scope="module")
def oracle_args(tmp_path_factory):
    npz = tmp_path_factory.mktemp("oracle") / "oracle.npz"
    OracleLSTM.random(vocab_size=20, seq_len=6, embed_dim=8, hidden_dim=8, seed=3).save_npz(npz)
    return ["--preset", "cpu", "--oracle-file", str(npz), "--eval-samples", "64", "--num-rollouts", "2", *GOLDEN_TINY]


def test_run_with_a_transformer_d_resumes_bit_for_bit(tmp_path, monkeypatch):
    """D pre-training, D retraining every update and the MC reward with a transformer D; a run stopped in its
    third update (after the checkpoint of the second) resumes to the straight run's metrics and weights."""
    import dataclasses

    from tiny_runs import stopped_and_resumed, tiny_config, tiny_task

    from seqgan_rl.training.pipeline import run_training

    config = tiny_config()
    g = config.pretrain.generator
    d = TransformerDiscriminatorConfig(vocab_size=g.vocab_size, seq_len=g.seq_len, hidden_dim=8, num_heads=2)
    config = dataclasses.replace(config, pretrain=dataclasses.replace(config.pretrain, discriminator=d))
    cpu = torch.device("cpu")
    run_training(config, tmp_path / "straight", cpu, tiny_task())
    saved = json.loads((tmp_path / "straight" / "config.json").read_text())
    assert saved["pretrain"]["discriminator"]["kind"] == "transformer"
    rows = data_rows(tmp_path / "straight" / "metrics.csv")
    assert len(rows) == 6 and all("d/loss" in r for r in rows[1:])

    stopped_and_resumed(config, tmp_path / "split", monkeypatch)  # in update 3, after the checkpoint of update 2
    assert data_rows(tmp_path / "split" / "metrics.csv") == rows
    a = torch.load(tmp_path / "straight" / "generator_final.pt", weights_only=False)["generator"]
    b = torch.load(tmp_path / "split" / "generator_final.pt", weights_only=False)["generator"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_cli_transformer_d(tmp_path, oracle_args):
    script = load_script("train_agent")
    assert script.main([*oracle_args, "--discriminator", "transformer", "--out", str(tmp_path / "r")]) == 0
    saved = json.loads((tmp_path / "r" / "config.json").read_text())["pretrain"]["discriminator"]
    assert saved["kind"] == "transformer" and saved["hidden_dim"] == 64


def test_saved_classifier_by_path_and_refusals(tmp_path, oracle_args, capsys):
    from transformers import GPT2Config, GPT2ForSequenceClassification

    script = load_script("train_agent")
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=20, n_positions=8, n_embd=16, n_layer=1, n_head=2, num_labels=2)
    GPT2ForSequenceClassification(cfg).save_pretrained(tmp_path / "d")
    assert script.main([*oracle_args, "--discriminator-from", str(tmp_path / "d"), "--out", str(tmp_path / "r")]) == 0

    GPT2ForSequenceClassification(
        GPT2Config(vocab_size=10, n_positions=8, n_embd=16, n_layer=1, n_head=2, num_labels=2)
    ).save_pretrained(tmp_path / "small")
    GPT2ForSequenceClassification(
        GPT2Config(vocab_size=20, n_positions=8, n_embd=16, n_layer=1, n_head=2, num_labels=3)
    ).save_pretrained(tmp_path / "three")
    for folder, message in (
        ("small", "smaller than the task's (20)"),
        ("three", "3 labels; D needs 2"),
        ("nowhere", "no such folder"),
    ):
        out = tmp_path / f"bad-{folder}"
        assert script.main([*oracle_args, "--discriminator-from", str(tmp_path / folder), "--out", str(out)]) == 2
        assert message in capsys.readouterr().err and not out.exists()
    argv = [*oracle_args, "--discriminator", "light", "--discriminator-from", str(tmp_path / "d")]
    assert script.main(argv) == 2 and "does not go with --discriminator light" in capsys.readouterr().err
    assert script.main([*oracle_args, "--discriminator", "transformer", "--reward", "rankgan"]) == 2
    assert "CNN's features" in capsys.readouterr().err


def test_d_saved_with_another_tokenizer_is_refused(tmp_path, capsys):
    """A classifier folder that holds a tokenizer must hold the run's (D and G read the same ids)."""
    from test_subword import gpt2_style_tokenizer
    from transformers import GPT2Config, GPT2ForSequenceClassification

    (tmp_path / "train.txt").write_text("\n".join(WORDS * 8) + "\n")
    (tmp_path / "test.txt").write_text("a dog sits .\n")
    folder = gpt2_style_tokenizer(tmp_path / "d")
    GPT2ForSequenceClassification(
        GPT2Config(vocab_size=400, n_positions=64, n_embd=16, n_layer=1, n_head=2, num_labels=2)
    ).save_pretrained(folder)
    text = ["--dataset", str(tmp_path / "train.txt"), "--test-file", str(tmp_path / "test.txt")]
    script = load_script("train_agent")
    assert script.main([*text, "--discriminator-from", str(folder), "--out", str(tmp_path / "r1")]) == 2
    assert "saved with a tokenizer, but this run's ids are the word vocabulary" in capsys.readouterr().err
    argv = [*text, "--tokenizer", "bpe:40", "--discriminator-from", str(folder), "--out", str(tmp_path / "r2")]
    assert script.main(argv) == 2
    assert "its tokenizer differs from this run's (--tokenizer bpe:40)" in capsys.readouterr().err
