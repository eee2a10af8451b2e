"""The examples run as written (tiny sizes): a plain Gymnasium loop, a CleanRL-style PPO on the
Gymnasium vector API, Stable-Baselines3 PPO and A2C (skipped without the sb3 extra), TorchRL's collector
(skipped without the torchrl extra), a Hugging Face transformer as the generator (the hf extra), TRL's trainers
against a retrained D (the trl extra)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name: str, *argv: str) -> None:
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
        assert module.main(list(argv)) == 0
    finally:
        sys.modules.pop(name, None)


def test_plain_gymnasium_loop(capsys):
    run_example("gymnasium_loop", "--tiny", "--episodes", "2", "--num-rollouts", "2")
    out = capsys.readouterr().out
    assert out.count("episode") == 2 and "D(Y)" in out


def test_cleanrl_style_ppo_on_the_vector_api(capsys):
    run_example("cleanrl_style_ppo", "--tiny", "--num-updates", "2", "--num-envs", "4")
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("update")]
    # T = 8 tokens per sequence, 4 sequences: the NEXT_STEP autoreset steps are not counted as transitions
    assert len(lines) == 2 and all("32 transitions" in ln for ln in lines)


def test_sb3_ppo_example(capsys):
    pytest.importorskip("stable_baselines3")
    run_example("sb3_ppo", "--tiny", "--updates", "2")
    assert "2 PPO updates" in capsys.readouterr().out


def test_torchrl_collector_example(capsys):
    """GymEnv on the single env and GymWrapper on the native vector env pass TorchRL's spec checks; a
    collector runs over both halves of a D update and the rewards follow D."""
    pytest.importorskip("torchrl")
    run_example("torchrl_collector", "--tiny", "--frames", "384")  # 16 batches of 4 sequences x 6 tokens
    out = capsys.readouterr().out
    assert "GymEnv: specs check" in out and "GymWrapper(gym.make_vec(..., num_envs=4)): specs check" in out
    q = [float(ln.rsplit(" ", 1)[1]) for ln in out.splitlines() if ln.startswith("batch ")]
    assert len(q) == 16 and "D retrained" in out
    assert max(q[8:]) < min(q[:8])  # the update taught D that G's sequences are fake: Q falls at once


def test_sb3_a2c_example(capsys):
    pytest.importorskip("stable_baselines3")
    run_example("sb3_a2c", "--tiny", "--updates", "2")
    out = capsys.readouterr().out
    assert "2 A2C updates of 4 sequences" in out and "rgb_array" in out


def test_transformer_generator_example(capsys):
    pytest.importorskip("transformers")
    run_example("transformer_generator", "--tiny", "--updates", "2")
    out = capsys.readouterr().out
    assert "Q per token" in out and "2 REINFORCE updates of a GPT2LMHeadModel" in out


def test_trl_adversarial_example(capsys):
    """TRL's GRPOTrainer, then RLOOTrainer, train a tiny GPT-2 against D's P(real) while D is retrained on their
    completions at every step."""
    pytest.importorskip("trl")
    run_example("trl_adversarial", "--tiny")
    out = capsys.readouterr().out
    assert "grpo: 3 updates of a GPT2LMHeadModel, D retrained 3 times" in out
    assert "rloo: 3 updates of a GPT2LMHeadModel, D retrained 3 times" in out
    assert out.count("sample:") == 3
