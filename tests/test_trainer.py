"""The training loop and the pipeline: callbacks on schedule, end-to-end script, interrupt + resume = straight run."""

from __future__ import annotations

import csv
import dataclasses

import pytest
import torch
from env_helpers import tiny_generator
from tiny_runs import interrupt_update, load_script, tiny_config

from seqgan_rl.agents.reinforce import ReinforceAgent
from seqgan_rl.config import DiscriminatorTrainConfig, ReinforceConfig, TrainConfig
from seqgan_rl.models import OracleLSTM
from seqgan_rl.training.callbacks import CallbackList, DiscriminatorRetrainCallback
from seqgan_rl.training.pipeline import run_training
from seqgan_rl.training.tasks import OracleTask

V, T = 20, 6


@pytest.fixture(scope="module")
def oracle() -> OracleLSTM:
    return OracleLSTM.random(vocab_size=V, seq_len=T, embed_dim=8, hidden_dim=8, seed=3)


@pytest.fixture(scope="module")
def task(oracle) -> OracleTask:
    return OracleTask(oracle)


def tiny_train_config(seed=0, iterations=4, reward="mc") -> TrainConfig:
    return tiny_config(seed, iterations, reward, mle_epochs=2)


def rows_without_time(path):
    with open(path, newline="") as f:
        return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in csv.DictReader(f)]


def test_retrain_callback_fires_on_schedule_and_pushes_d():
    from types import SimpleNamespace

    from env_helpers import tiny_discriminator

    class FakeTrainer:
        def __init__(self):
            self.agent = SimpleNamespace(generator=tiny_generator(), temperature=1.0)
            self.seed, self.device = 0, torch.device("cpu")
            self.rng = torch.Generator().manual_seed(1)
            self.iteration, self.pending_metrics = 0, {}

    class RecordingEnv:
        def __init__(self):
            self.received = []

        def set_discriminator(self, d):
            self.received.append(d)

    tr, env, d = FakeTrainer(), RecordingEnv(), tiny_discriminator()
    real = tr.agent.generator.sample(32, torch.Generator().manual_seed(0))
    heldout = tr.agent.generator.sample(32, torch.Generator().manual_seed(2))
    schedule = DiscriminatorTrainConfig(rounds=2, epochs=1, num_negatives=16, lr=1e-3)
    cb = DiscriminatorRetrainCallback(d, real, heldout, schedule, every=3, envs=[env])
    cbs = CallbackList([cb])
    cbs.init_callback(tr)
    before = [p.clone() for p in d.parameters()]
    fired = []
    for it in range(1, 8):
        tr.iteration = it
        tr.pending_metrics = {}
        assert cbs.on_step()
        fired.append("d/loss" in tr.pending_metrics)
        if fired[-1]:
            fired_keys = set(tr.pending_metrics)
    assert fired == [False, False, True, False, False, True, False]
    assert {"d/p_real_train", "d/p_real_heldout", "d/p_fake"} <= fired_keys
    assert env.received == [d, d]
    assert any(not torch.equal(a, b) for a, b in zip(before, d.parameters(), strict=True))
    assert set(cbs.state_dict()) == {"0:DiscriminatorRetrainCallback"}  # its optimizer, for checkpoints


def test_run_training_writes_everything(tmp_path, task):
    res = run_training(tiny_train_config(), tmp_path / "run", torch.device("cpu"), task)
    out = tmp_path / "run"
    for name in (
        "config.json",
        "metrics.csv",
        "adversarial_checkpoint.pt",
        "generator_final.pt",
        "summary.json",
        "curves.png",
    ):
        assert (out / name).exists(), name
    s = res.summary
    assert s["iterations"] == 4 and s["best"]["eval/nll_oracle"] <= s["start"]["eval/nll_oracle"]
    steps = [int(r["step"]) for r in rows_without_time(out / "metrics.csv")]
    assert steps == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="already holds an adversarial run.*--resume"):
        run_training(tiny_train_config(), out, torch.device("cpu"), task)


def test_constant_reward_control_needs_no_discriminator_training(tmp_path, task):
    res = run_training(tiny_train_config(reward="constant"), tmp_path / "c", torch.device("cpu"), task)
    rows = rows_without_time(tmp_path / "c" / "metrics.csv")
    assert all("d/loss" not in r for r in rows)
    assert all(float(r["train/mean_q"]) == 1.0 for r in rows[1:])
    assert res.summary["reward"] == "constant"


@pytest.mark.parametrize("reward", ["maligan", "maligan_d", "rankgan"])
def test_maligan_and_rankgan_rewards_retrain_d_and_resume_exactly(tmp_path, task, monkeypatch, reward):
    # MaliGAN's sequence reward on the same loop: D is retrained (its weights are in the reward's checkpoint),
    # every token of a sequence gets its one reward, and an interrupted run resumes bit for bit
    cfg = tiny_train_config(iterations=4, reward=reward)
    straight = run_training(cfg, tmp_path / "a", torch.device("cpu"), task)
    rows = rows_without_time(tmp_path / "a" / "metrics.csv")
    assert all("d/loss" in r for r in rows[1:]) and straight.summary["reward"] == reward
    if reward != "rankgan":  # MaliGAN's rewards sum to 0 over the batch; RankGAN's are positive
        assert all(abs(float(r["train/mean_q"])) < 1e-6 for r in rows[1:])
    else:
        assert all(float(r["train/mean_q"]) > 0 for r in rows[1:])
    with monkeypatch.context() as mp:
        interrupt_update(mp, ReinforceAgent, call=4)
        with pytest.raises(KeyboardInterrupt):
            run_training(cfg, tmp_path / "b", torch.device("cpu"), task)
    resumed = run_training(cfg, tmp_path / "b", torch.device("cpu"), task, resume=True)
    assert rows == rows_without_time(tmp_path / "b" / "metrics.csv")
    for x, y in zip(straight.generator.state_dict().values(), resumed.generator.state_dict().values(), strict=True):
        assert torch.equal(x, y)


def test_interrupt_and_resume_equals_a_straight_run(tmp_path, task, monkeypatch):
    straight = run_training(tiny_train_config(iterations=5), tmp_path / "a", torch.device("cpu"), task)

    calls = {"n": 0}
    real_update = ReinforceAgent.update

    def dying_update(self, batch):
        calls["n"] += 1
        if calls["n"] == 4:  # killed during update 4, after the checkpoint of update 2 and the row of 3
            raise KeyboardInterrupt
        return real_update(self, batch)

    with monkeypatch.context() as mp:
        mp.setattr(ReinforceAgent, "update", dying_update)
        with pytest.raises(KeyboardInterrupt):
            run_training(tiny_train_config(iterations=5), tmp_path / "b", torch.device("cpu"), task)
    resumed = run_training(tiny_train_config(iterations=5), tmp_path / "b", torch.device("cpu"), task, resume=True)
    assert resumed.summary["iterations"] == straight.summary["iterations"] == 5
    assert rows_without_time(tmp_path / "a" / "metrics.csv") == rows_without_time(tmp_path / "b" / "metrics.csv")
    for x, y in zip(straight.generator.state_dict().values(), resumed.generator.state_dict().values(), strict=True):
        assert torch.equal(x, y)


def test_a_validated_pretraining_runs_the_adversarial_phase_from_its_selected_generator(tmp_path, task, monkeypatch):
    # a 2-layer G with dropout, a validation set held out of the training data: the adversarial phase starts
    # from the selected MLE generator, logs eval/nll_valid with every evaluation and resumes exactly
    base = tiny_train_config(iterations=4)
    pre = base.pretrain
    pre = dataclasses.replace(
        pre, generator=dataclasses.replace(pre.generator, num_layers=2, dropout=0.3),
        mle=dataclasses.replace(pre.mle, epochs=3, num_valid=64, patience=1),
    )  # fmt: skip
    config = dataclasses.replace(base, pretrain=pre)
    straight = run_training(config, tmp_path / "a", torch.device("cpu"), task)
    rows = rows_without_time(tmp_path / "a" / "metrics.csv")
    evals = [r for r in rows if r["eval/nll_oracle"]]
    assert evals and all(r["eval/nll_valid"] for r in evals)
    start = straight.summary["start"]
    assert start["eval/nll_valid"] == pytest.approx(straight.summary["mle"]["eval/nll_valid"], abs=1e-6)
    with monkeypatch.context() as mp:
        interrupt_update(mp, ReinforceAgent, 3)
        with pytest.raises(KeyboardInterrupt):
            run_training(config, tmp_path / "b", torch.device("cpu"), task)
    run_training(config, tmp_path / "b", torch.device("cpu"), task, resume=True)
    assert rows_without_time(tmp_path / "b" / "metrics.csv") == rows


def test_train_agent_main_runs_in_process(tmp_path, oracle, capsys):
    npz = tmp_path / "oracle.npz"
    oracle.save_npz(npz)
    script = load_script("train_agent")
    args = [
        "--algo", "reinforce", "--preset", "cpu", "--oracle-file", str(npz), "--out", str(tmp_path / "r"),
        "--iterations", "2", "--eval-every", "1", "--mle-epochs", "1", "--d-pretrain-rounds", "1",
        "--eval-samples", "64", "--num-rollouts", "2", "--threads", "1",
    ]  # fmt: skip
    assert script.main(args) == 0
    out = capsys.readouterr().out
    assert "after MLE" in out and "best (update" in out and "final (update 2)" in out and "NLL-oracle" in out
    assert (tmp_path / "r" / "curves.png").exists()
    # running again without --resume is refused, with the fix in the message
    assert script.main(args) == 2
    assert "--resume" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--reward", "constant", "--num-rollouts", "4"], "only applies to --reward mc"),
        (["--resume"], "--resume needs --out"),
        (["--resume", "--out", "/nonexistent/run"], "nothing to resume"),
        (["--device", "cuda:7"], "CUDA"),
        (["--iterations", "-1"], "iterations"),
        (["--threads", "0"], "threads"),
    ],
)
def test_train_agent_rejects_invalid_options_before_any_work(extra, message, capsys):
    if "cuda" in " ".join(extra) and torch.cuda.is_available():
        pytest.skip("CUDA present")
    script = load_script("train_agent")
    assert script.main(["--preset", "cpu", *extra]) == 2
    assert message in capsys.readouterr().err


def test_paper_preset_is_the_reference():
    from seqgan_rl.presets import train_preset

    cfg = train_preset("paper")
    adv = cfg.adversarial
    assert (adv.iterations, adv.num_rollouts, adv.d_every) == (200, 16, 1)
    assert (adv.d_train.rounds, adv.d_train.epochs, adv.d_train.lr, adv.d_train.num_negatives) == (5, 3, 1e-4, None)
    assert (cfg.agent.lr, cfg.agent.grad_clip, cfg.agent.batch_size, cfg.agent.baseline) == (0.01, 5.0, 64, "none")
    assert cfg.pretrain.discriminator.total_filters == 1720 and cfg.pretrain.mle.epochs == 120
    assert dataclasses.asdict(cfg)["agent"]["reduction"] == "sum"


def test_a_callback_returning_false_stops_training(tmp_path):
    from env_helpers import tiny_discriminator

    from seqgan_rl.envs import SeqGANReward
    from seqgan_rl.training.callbacks import Callback
    from seqgan_rl.training.trainer import Trainer

    class StopAfterTwo(Callback):
        metric_fields = ("train/seen",)

        def _on_step(self):
            self.trainer.pending_metrics["train/seen"] = self.trainer.iteration
            return self.trainer.iteration < 2

    g = tiny_generator()
    reward = SeqGANReward(g, tiny_discriminator(), num_rollouts=2)
    agent = ReinforceAgent(g, reward, ReinforceConfig(batch_size=4))
    trainer = Trainer(agent, reward, [StopAfterTwo()], iterations=10, out_dir=tmp_path)
    trainer.train()
    assert trainer.iteration == 2
    assert [r["train/seen"] for r in rows_without_time(tmp_path / "metrics.csv")] == ["1", "2"]


@pytest.mark.parametrize("algo", ["reinforce_kl", "grpo"])
def test_agents_with_a_reference_policy_run_and_resume_exactly(tmp_path, task, monkeypatch, algo):
    """A new agent is one class and its config on the same loop: its reference policy is checkpointed, so an
    interrupted run resumes bit for bit."""
    from seqgan_rl.agents.reinforce import GRPOAgent, KLReinforceAgent
    from seqgan_rl.config import GRPOConfig, KLReinforceConfig

    agent_cls, agent_cfg = {
        "reinforce_kl": (KLReinforceAgent, KLReinforceConfig(batch_size=8, kl_coef=0.2)),
        "grpo": (GRPOAgent, GRPOConfig(batch_size=8, group_size=4)),
    }[algo]
    base = tiny_train_config(iterations=4)
    cfg = dataclasses.replace(base, algo=algo, agent=agent_cfg)
    with pytest.raises(ValueError, match=f"needs a {type(agent_cfg).__name__}"):
        dataclasses.replace(base, algo=algo)
    straight = run_training(cfg, tmp_path / "a", torch.device("cpu"), task)
    assert "train/kl" in rows_without_time(tmp_path / "a" / "metrics.csv")[1]
    with monkeypatch.context() as mp:
        interrupt_update(mp, agent_cls, call=4)
        with pytest.raises(KeyboardInterrupt):
            run_training(cfg, tmp_path / "b", torch.device("cpu"), task)
    resumed = run_training(cfg, tmp_path / "b", torch.device("cpu"), task, resume=True)
    assert rows_without_time(tmp_path / "a" / "metrics.csv") == rows_without_time(tmp_path / "b" / "metrics.csv")
    for x, y in zip(straight.generator.state_dict().values(), resumed.generator.state_dict().values(), strict=True):
        assert torch.equal(x, y)
