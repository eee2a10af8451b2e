"""Pre-training: MLE lowers the loss, a D round trains D, a whole run writes its folder, and a killed and
resumed run ends exactly where a straight run does."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import pytest
import torch

import seqgan_rl.training.pretrain as pretrain
from seqgan_rl.config import (
    DiscriminatorConfig,
    DiscriminatorTrainConfig,
    GeneratorConfig,
    MLEConfig,
    OracleDataConfig,
    PretrainConfig,
)
from seqgan_rl.models import Discriminator, Generator, OracleLSTM
from seqgan_rl.training.logger import MetricsLogger, read_metrics
from seqgan_rl.training.pretrain import (
    discriminator_round,
    make_discriminator_optimizer,
    make_generator_optimizer,
    mle_epoch,
    mle_loss,
    mle_step,
    run_pretraining,
)
from seqgan_rl.training.tasks import OracleTask
from seqgan_rl.utils import make_rng

V, T = 12, 8
CPU = torch.device("cpu")


class Killed(BaseException):
    """Stands for the process being killed (not an Exception: nothing may catch it)."""


def tiny_config(seed: int = 1, dropout: float = 0.25) -> PretrainConfig:
    light = DiscriminatorConfig.light(V, T)
    return PretrainConfig(
        seed=seed,
        generator=GeneratorConfig(vocab_size=V, seq_len=T, embed_dim=8, hidden_dim=16),
        discriminator=dataclasses.replace(light, embed_dim=8, num_filters=(8,) * 4, dropout=dropout),
        data=OracleDataConfig(num_train=128, num_test=64, num_eval_samples=64),
        mle=MLEConfig(epochs=3, batch_size=32, eval_every=1),
        d_pretrain=DiscriminatorTrainConfig(rounds=2, epochs=1, batch_size=32, lr=1e-3),
    )


@pytest.fixture
def oracle() -> OracleLSTM:
    return OracleLSTM.random(vocab_size=V, seq_len=T, embed_dim=8, hidden_dim=16, seed=5)


def rows_without_time(path: Path) -> list[dict[str, str]]:
    return [{k: v for k, v in row.items() if k != "time/elapsed_s"} for row in read_metrics(path)]


def assert_same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def run(config: PretrainConfig, out: Path, oracle: OracleLSTM, resume: bool = False):
    torch.manual_seed(0)  # what scripts/pretrain.py's seed_everything does at program start
    return run_pretraining(config, out, CPU, OracleTask(oracle), resume=resume)


# ---------------------------------------------------------------------------------------------- MLE
def test_mle_loss_is_mean_token_nll(oracle):
    g = Generator(tiny_config().generator)
    tokens = oracle.sample(16, make_rng(0))
    expected = -g.log_probs(tokens).mean()
    torch.testing.assert_close(mle_loss(g, tokens), expected)


def test_mle_steps_lower_the_training_loss(oracle):
    cfg = tiny_config()
    g = Generator(cfg.generator)
    g.reset_parameters(make_rng(0))
    train = oracle.sample(256, make_rng(1))
    opt = make_generator_optimizer(g, cfg.mle.lr)
    with torch.no_grad():
        before = float(mle_loss(g, train))
    first = [p.detach().clone() for p in g.parameters()]
    losses = [mle_epoch(g, opt, train, cfg.mle, make_rng(2)) for _ in range(4)]
    with torch.no_grad():
        after = float(mle_loss(g, train))
    assert after < before - 0.1
    assert losses[-1] < losses[0]
    assert all(not torch.equal(p, q) for p, q in zip(first, g.parameters(), strict=True))


def test_mle_step_returns_the_pre_update_loss(oracle):
    g = Generator(tiny_config().generator)
    tokens = oracle.sample(32, make_rng(0))
    with torch.no_grad():
        expected = float(mle_loss(g, tokens))
    assert mle_step(g, make_generator_optimizer(g, 0.01), tokens, grad_clip=5.0) == pytest.approx(expected, abs=1e-6)


# ---------------------------------------------------------------------------------------------- discriminator rounds
def held_out_accuracy(d: Discriminator, real: torch.Tensor, fake: torch.Tensor) -> float:
    p_real, p_fake = d.prob_real(real), d.prob_real(fake)
    return float(torch.cat([p_real > 0.5, p_fake <= 0.5]).float().mean())


def test_discriminator_round_trains_d_on_easy_data():
    cfg = tiny_config()
    g = Generator(cfg.generator)  # near-uniform tokens
    g.reset_parameters(make_rng(0))
    real = torch.arange(V).repeat_interleave(T).view(V, T).repeat(20, 1)  # (240, T) constant sequences
    d = Discriminator(cfg.discriminator)
    d.reset_parameters(make_rng(1))
    opt = make_discriminator_optimizer(d, 1e-2)
    train_cfg = DiscriminatorTrainConfig(rounds=1, epochs=2, batch_size=32, lr=1e-2)
    fake_eval = g.sample(240, make_rng(99))
    before = held_out_accuracy(d, real, fake_eval)
    g.train()
    stats = [discriminator_round(d, opt, real, g, train_cfg, make_rng(10 + i)) for i in range(3)]
    assert g.training  # the generator's mode is restored
    assert set(stats[0]) == {"d/loss", "d/accuracy", "d/steps"}
    assert stats[0]["d/steps"] == 2 * 15  # 2 epochs over 240 real + 240 fake in batches of 32
    assert stats[-1]["d/accuracy"] > stats[0]["d/accuracy"]
    assert stats[-1]["d/loss"] < stats[0]["d/loss"]
    after = held_out_accuracy(d, real, fake_eval)
    assert before < 0.8 and after > 0.95


def test_discriminator_round_caps_and_negatives(oracle):
    cfg = tiny_config()
    g, d = Generator(cfg.generator), Discriminator(cfg.discriminator)
    real = oracle.sample(100, make_rng(0))
    opt = make_discriminator_optimizer(d, 1e-3)
    capped = DiscriminatorTrainConfig(rounds=1, epochs=3, batch_size=16, max_steps_per_round=5)
    assert discriminator_round(d, opt, real, g, capped, make_rng(1))["d/steps"] == 5
    more = DiscriminatorTrainConfig(rounds=1, epochs=1, batch_size=16, num_negatives=150)
    assert discriminator_round(d, opt, real, g, more, make_rng(1))["d/steps"] == 16  # ceil((100 + 150) / 16)
    fewer = DiscriminatorTrainConfig(rounds=1, epochs=1, batch_size=16, num_negatives=12)
    assert discriminator_round(d, opt, real, g, fewer, make_rng(1))["d/steps"] == 2  # 12 real + 12 fake: balanced


def test_discriminator_round_is_seeded(oracle):
    cfg = tiny_config(dropout=0.0)
    real = oracle.sample(64, make_rng(0))
    out = []
    for _ in range(2):
        g, d = Generator(cfg.generator), Discriminator(cfg.discriminator)
        g.reset_parameters(make_rng(0))
        d.reset_parameters(make_rng(1))
        stats = discriminator_round(d, make_discriminator_optimizer(d, 1e-3), real, g, cfg.d_pretrain, make_rng(2))
        out.append((stats, d.state_dict()))
    assert out[0][0] == out[1][0]
    assert all(torch.equal(out[0][1][k], out[1][1][k]) for k in out[0][1])


# ---------------------------------------------------------------------------------------------- a whole run
def test_run_writes_the_run_folder(tmp_path, oracle):
    cfg = tiny_config()
    result = run(cfg, tmp_path / "run", oracle)
    out = tmp_path / "run"
    assert {"config.json", "metrics.csv", "pretrained.pt", "data.pt", "pretrain_checkpoint.pt", "generator_mle.pt"} <= {
        p.name for p in out.iterdir()
    }
    saved = json.loads((out / "config.json").read_text())
    assert saved == json.loads(json.dumps({**dataclasses.asdict(cfg), "runtime": {"threads": 1, "device": "cpu"}}))
    assert json.loads((out / "run.json").read_text())["kind"] == "pretrain"

    with (out / "metrics.csv").open(newline="") as f:
        assert next(csv.reader(f)) == [
            "step", "phase", "epoch", "train/loss", "eval/nll_oracle", "eval/nll_test", "d/loss", "d/accuracy",
            "time/elapsed_s",
        ]  # fmt: skip
    rows = read_metrics(out / "metrics.csv")
    assert [(r["step"], r["phase"], r["epoch"]) for r in rows] == [
        ("0", "mle", "0"), ("1", "mle", "1"), ("2", "mle", "2"), ("3", "mle", "3"),
        ("4", "d_pretrain", "1"), ("5", "d_pretrain", "2"),
    ]  # fmt: skip
    assert rows[0]["train/loss"] == "" and all(rows[i]["train/loss"] for i in (1, 2, 3))
    assert all(rows[i]["d/accuracy"] for i in (4, 5))
    assert float(rows[3]["eval/nll_test"]) < float(rows[0]["eval/nll_test"])  # MLE learns

    saved = torch.load(out / "pretrained.pt", weights_only=True)
    assert set(saved) == {
        "generator",
        "discriminator",
        "generator_config",
        "discriminator_config",
        "mle_metrics",
        "mle_epoch",
        "global_rng",
    }  # global_rng: a run that loads it continues as a straight run does
    assert saved["mle_epoch"] == 3
    g = Generator(GeneratorConfig(**saved["generator_config"]))
    g.load_state_dict(saved["generator"])
    assert_same_state(g, result.generator)
    d_cfg = saved["discriminator_config"]
    d = Discriminator(DiscriminatorConfig(**{**d_cfg, **{k: tuple(d_cfg[k]) for k in ("filter_sizes", "num_filters")}}))
    d.load_state_dict(saved["discriminator"])
    assert_same_state(d, result.discriminator)
    assert saved["mle_metrics"] == result.mle_metrics
    assert result.mle_metrics["eval/nll_oracle"] == pytest.approx(float(rows[3]["eval/nll_oracle"]))

    data = torch.load(out / "data.pt", weights_only=True)
    assert data["train"].shape == (128, T) and data["test"].shape == (64, T)
    assert torch.equal(data["train"], result.data.train)


def test_run_is_reproducible_per_seed(tmp_path, oracle):
    a = run(tiny_config(seed=1), tmp_path / "a", oracle)
    b = run(tiny_config(seed=1), tmp_path / "b", oracle)
    c = run(tiny_config(seed=2), tmp_path / "c", oracle)
    assert_same_state(a.generator, b.generator)
    assert_same_state(a.discriminator, b.discriminator)
    assert rows_without_time(tmp_path / "a/metrics.csv") == rows_without_time(tmp_path / "b/metrics.csv")
    assert not torch.equal(a.data.train, c.data.train)


def test_existing_folder_is_refused_without_resume(tmp_path, oracle):
    run(tiny_config(), tmp_path / "run", oracle)
    with pytest.raises(ValueError, match="already holds a pre-training run.*--resume"):
        run(tiny_config(), tmp_path / "run", oracle)


def test_resume_with_another_config_is_refused(tmp_path, oracle):
    run(tiny_config(), tmp_path / "run", oracle)
    with pytest.raises(ValueError, match="differs"):
        run(tiny_config(seed=9), tmp_path / "run", oracle, resume=True)


def test_resume_of_a_finished_run_loads_it(tmp_path, oracle, monkeypatch):
    first = run(tiny_config(), tmp_path / "run", oracle)

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run must not train again")

    monkeypatch.setattr(pretrain, "mle_epoch", no_training)
    monkeypatch.setattr(pretrain, "discriminator_round", no_training)
    again = run(tiny_config(), tmp_path / "run", oracle, resume=True)
    assert_same_state(first.generator, again.generator)
    assert_same_state(first.discriminator, again.discriminator)
    assert again.mle_metrics == first.mle_metrics


def test_mismatched_oracle_is_refused(tmp_path):
    other = OracleLSTM.random(vocab_size=V + 1, seq_len=T, embed_dim=8, hidden_dim=16, seed=0)
    with pytest.raises(ValueError, match="does not match"):
        run(tiny_config(), tmp_path / "run", other)


# ---------------------------------------------------------------------------------------------- kill and resume
def kill_on_call(monkeypatch, name: str, call: int) -> None:
    """Make ``pretrain.<name>`` raise ``Killed`` on its ``call``-th call (1-based)."""
    original = getattr(pretrain, name)
    calls = {"n": 0}

    def wrapper(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == call:
            raise Killed
        return original(*args, **kwargs)

    monkeypatch.setattr(pretrain, name, wrapper)


def check_resume_equals_straight(tmp_path, monkeypatch, oracle, config, kill) -> None:
    straight = run(config, tmp_path / "straight", oracle)
    kill(monkeypatch)
    with pytest.raises(Killed):
        run(config, tmp_path / "killed", oracle)
    monkeypatch.undo()
    assert not (tmp_path / "killed/pretrained.pt").exists()
    resumed = run(config, tmp_path / "killed", oracle, resume=True)
    assert_same_state(straight.generator, resumed.generator)
    assert_same_state(straight.discriminator, resumed.discriminator)
    assert rows_without_time(tmp_path / "straight/metrics.csv") == rows_without_time(tmp_path / "killed/metrics.csv")
    assert resumed.mle_metrics == straight.mle_metrics


def test_kill_during_mle_then_resume_equals_straight_run(tmp_path, monkeypatch, oracle):
    # killed while training epoch 3, after the checkpoint of epoch 2
    check_resume_equals_straight(
        tmp_path, monkeypatch, oracle, tiny_config(), lambda mp: kill_on_call(mp, "mle_epoch", 3)
    )


def test_final_evaluation_only_still_checkpoints_every_epoch(tmp_path, monkeypatch, oracle):
    # eval_every=0 (the cpu preset): one evaluation, after the last epoch; a run killed in epoch 3 resumes
    # from epoch 2's checkpoint (one epoch left to train) and ends where a straight run does
    config = dataclasses.replace(tiny_config(), mle=dataclasses.replace(tiny_config().mle, eval_every=0))
    straight = run(config, tmp_path / "straight", oracle)
    rows = read_metrics(tmp_path / "straight/metrics.csv")
    assert [(r["phase"], r["epoch"]) for r in rows] == [("mle", "3"), ("d_pretrain", "1"), ("d_pretrain", "2")]
    kill_on_call(monkeypatch, "mle_epoch", 3)
    with pytest.raises(Killed):
        run(config, tmp_path / "killed", oracle)
    monkeypatch.undo()
    epochs, original = [], pretrain.mle_epoch
    monkeypatch.setattr(pretrain, "mle_epoch", lambda *a, **k: epochs.append(1) or original(*a, **k))
    resumed = run(config, tmp_path / "killed", oracle, resume=True)
    assert len(epochs) == 1
    assert_same_state(straight.generator, resumed.generator)
    assert rows_without_time(tmp_path / "straight/metrics.csv") == rows_without_time(tmp_path / "killed/metrics.csv")


def test_kill_between_metrics_row_and_checkpoint(tmp_path, monkeypatch, oracle):
    # epoch 3's metrics row is written, then the process dies before its checkpoint: the resumed run drops
    # that row and writes it again, once
    from seqgan_rl.training.run_folder import RunFolder

    real_save = RunFolder.save_torch

    def kill(mp):
        def save(self, name, obj):
            if name == pretrain.CHECKPOINT and obj["step"] == 3:
                raise Killed
            real_save(self, name, obj)

        mp.setattr(RunFolder, "save_torch", save)

    check_resume_equals_straight(tmp_path, monkeypatch, oracle, tiny_config(), kill)


@pytest.mark.parametrize("dropout", [0.0, 0.25])  # dropout draws from the global RNG, saved in checkpoints
def test_kill_during_d_pretraining_then_resume_equals_straight_run(tmp_path, monkeypatch, oracle, dropout):
    # killed in the second D round, after the checkpoint of the first
    config = tiny_config(dropout=dropout)
    check_resume_equals_straight(
        tmp_path, monkeypatch, oracle, config, lambda mp: kill_on_call(mp, "discriminator_round", 2)
    )


# ---------------------------------------------------------------------------------------------- validation split
def validated_config(epochs: int = 10, patience: int | None = 2, use_best: bool = True, lr: float = 0.05):
    """Few training sequences and a high learning rate: the validation NLL turns up within a few epochs."""
    c = tiny_config()
    mle = MLEConfig(epochs=epochs, batch_size=16, lr=lr, eval_every=3, num_valid=32, patience=patience,
                    use_best=use_best)  # fmt: skip
    return dataclasses.replace(c, generator=dataclasses.replace(c.generator, dropout=0.3), mle=mle)


def test_validation_split_is_disjoint_from_training_and_test_and_seeded():
    from seqgan_rl.data.oracle_data import split_validation

    data = torch.arange(100 * 3).view(100, 3)  # rows identified by their first entry
    train, valid = split_validation(data, 20, seed=4)
    ids = lambda x: set((x[:, 0] // 3).tolist())  # noqa: E731
    assert len(ids(valid)) == 20 and len(ids(train)) == 80 and not ids(train) & ids(valid)
    assert ids(train) | ids(valid) == set(range(100))
    assert torch.equal(split_validation(data, 20, seed=4)[1], valid)  # the same split whenever reused
    assert not torch.equal(split_validation(data, 20, seed=5)[1], valid)
    assert split_validation(data, 0, seed=4) == (data, None)
    with pytest.raises(ValueError, match="hold out fewer"):
        split_validation(data, 100, seed=4)


def test_mle_with_validation_keeps_the_best_epoch_and_stops_with_patience(tmp_path, oracle):
    config = validated_config()
    result = run(config, tmp_path / "run", oracle)
    rows = read_metrics(tmp_path / "run/metrics.csv")
    mle = [r for r in rows if r["phase"] == "mle" and r["epoch"] != "0"]  # epoch 0: the fresh generator
    valid = {int(r["epoch"]): float(r["eval/nll_valid"]) for r in mle}  # every epoch, before early stopping
    best = min(valid, key=valid.get)
    assert sorted(valid) == list(range(1, len(valid) + 1)) and len(valid) == best + 2  # stopped after 2 epochs
    assert len(valid) < config.mle.epochs  # ... before the last (the lr makes it overfit: see validated_config)
    selected = [r for r in rows if r["phase"] == "mle_selected"]
    assert len(selected) == 1 and int(selected[0]["epoch"]) == best and selected[0]["step"] == "11"  # epochs + 1
    assert result.generator.nll(result.evaluator.valid_tokens) == pytest.approx(valid[best], abs=1e-6)
    assert result.mle_metrics["eval/nll_valid"] == pytest.approx(valid[best], abs=1e-6)
    assert torch.load(tmp_path / "run/pretrained.pt", weights_only=True)["mle_epoch"] == best
    # the validation sequences come out of the training data: G and D train on the other 96, never the test set
    data = torch.load(tmp_path / "run/data.pt", weights_only=True)
    held_out = {tuple(x) for x in result.evaluator.valid_tokens.tolist()}
    assert result.data.train.shape[0] == 96 and not held_out & {tuple(x) for x in result.data.train.tolist()}
    assert held_out <= {tuple(x) for x in data["train"].tolist()}
    assert torch.equal(result.data.test, data["test"])
    d_rows = [r for r in rows if r["phase"] == "d_pretrain"]
    assert [r["step"] for r in d_rows] == ["12", "13"]  # after the selected generator's row


def test_mle_with_validation_without_use_best_ends_with_the_last_epoch(tmp_path, oracle):
    keep_last = run(validated_config(epochs=4, patience=None, use_best=False), tmp_path / "last", oracle)
    rows = read_metrics(tmp_path / "last/metrics.csv")
    assert [r["epoch"] for r in rows if r["phase"] == "mle_selected"] == ["4"]
    last_valid = float(next(r["eval/nll_valid"] for r in rows if r["phase"] == "mle" and r["epoch"] == "4"))
    assert keep_last.mle_metrics["eval/nll_valid"] == pytest.approx(last_valid, abs=1e-6)


@pytest.mark.parametrize("call", [2, 5])  # before the best epoch, and after it (waiting out the patience)
def test_kill_during_validated_mle_then_resume_equals_straight_run(tmp_path, monkeypatch, oracle, call):
    check_resume_equals_straight(
        tmp_path, monkeypatch, oracle, validated_config(), lambda mp: kill_on_call(mp, "mle_epoch", call)
    )


def test_kill_after_the_selected_generator_then_resume_equals_straight_run(tmp_path, monkeypatch, oracle):
    check_resume_equals_straight(
        tmp_path, monkeypatch, oracle, validated_config(), lambda mp: kill_on_call(mp, "discriminator_round", 1)
    )


def test_validation_config_errors():
    with pytest.raises(ValueError, match="patience needs a validation set"):
        MLEConfig(patience=3)
    with pytest.raises(ValueError, match="num_valid"):
        MLEConfig(num_valid=-1)
    with pytest.raises(ValueError, match="holds out all"):
        dataclasses.replace(tiny_config(), mle=MLEConfig(num_valid=128))


# ---------------------------------------------------------------------------------------------- metrics logger
def test_metrics_logger_resume_drops_later_rows(tmp_path):
    path = tmp_path / "m.csv"
    log = MetricsLogger(path, ["train/loss", "eval/x"])
    for step in range(5):
        log.log(step, {"train/loss": step / 10})
    log.log(5, {"eval/x": 1.5})
    log.close()
    assert [r["step"] for r in read_metrics(path)] == ["0", "1", "2", "3", "4", "5"]

    resumed = MetricsLogger(path, ["train/loss", "eval/x"], resume_step=2)
    assert [r["step"] for r in read_metrics(path)] == ["0", "1", "2"]
    assert [r["step"] for r in resumed.rows] == ["0", "1", "2"]
    resumed.log(3, {"eval/x": 7})
    rows = read_metrics(path)
    assert [r["step"] for r in rows] == ["0", "1", "2", "3"]
    assert rows[1] == {"step": "1", "train/loss": "0.1", "eval/x": ""}
    assert rows[3] == {"step": "3", "train/loss": "", "eval/x": "7"}


def test_metrics_logger_fresh_start_truncates(tmp_path):
    path = tmp_path / "m.csv"
    MetricsLogger(path, ["a"]).log(0, {"a": 1})
    MetricsLogger(path, ["a"])
    assert path.read_text().splitlines() == ["step,a"]


def test_metrics_logger_rejects_unknown_keys(tmp_path):
    log = MetricsLogger(tmp_path / "m.csv", ["train/loss"])
    with pytest.raises(KeyError, match="train/lsos"):
        log.log(0, {"train/lsos": 1.0})
    assert read_metrics(tmp_path / "m.csv") == []  # nothing half-written
