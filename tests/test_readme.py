"""The README's Python snippets run as written: the environment at the paper's sizes, and the training
API on a tiny oracle with a shrunk preset (the code is the README's, only the data is smaller)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import seqgan_rl.presets
from seqgan_rl.config import DiscriminatorTrainConfig, OracleDataConfig
from seqgan_rl.models import OracleLSTM

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_the_readme_has_the_two_snippets_and_fits_on_a_front_page():
    blocks = python_blocks()
    assert len(blocks) == 2 and "gym.make(" in blocks[0] and "Trainer(" in blocks[1]
    assert len(README.read_text().splitlines()) <= 200


def test_environment_snippet_runs(capsys):
    namespace: dict = {}
    exec(compile(python_blocks()[0], "README.md", "exec"), namespace)
    assert 0.0 < namespace["reward"] < 1.0 and namespace["venv"].num_envs == 64
    assert type(namespace["env"].unwrapped.generator).__name__ == "TransformerGenerator"


def test_training_api_snippet_runs(tmp_path, monkeypatch, capsys):
    oracle = OracleLSTM.random(vocab_size=20, seq_len=6, embed_dim=8, hidden_dim=8, seed=3)
    real_preset = seqgan_rl.presets.train_preset

    def tiny_preset(*args, **kwargs):
        cfg = real_preset(*args, **kwargs)
        pre = dataclasses.replace(
            cfg.pretrain,
            data=OracleDataConfig(num_train=256, num_test=128, num_eval_samples=64),
            mle=dataclasses.replace(cfg.pretrain.mle, epochs=1, eval_every=1),
            d_pretrain=DiscriminatorTrainConfig(rounds=1, epochs=1, lr=1e-3, max_steps_per_round=3),
        )
        d_train = dataclasses.replace(cfg.adversarial.d_train, num_negatives=64, max_steps_per_round=2)
        adv = dataclasses.replace(cfg.adversarial, iterations=2, d_train=d_train)
        return dataclasses.replace(
            cfg, pretrain=pre, agent=dataclasses.replace(cfg.agent, batch_size=8), adversarial=adv
        )

    monkeypatch.setattr(seqgan_rl.presets, "train_preset", tiny_preset)
    monkeypatch.setattr(OracleLSTM, "paper", classmethod(lambda cls, device="cpu": oracle))
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(python_blocks()[1], "README.md", "exec"), namespace)
    assert "'eval/nll_oracle'" in capsys.readouterr().out
    assert namespace["trainer"].iteration == 2
    assert (tmp_path / "runs" / "api" / "metrics.csv").exists()
    assert (tmp_path / "runs" / "api" / "adversarial_checkpoint.pt").exists()
