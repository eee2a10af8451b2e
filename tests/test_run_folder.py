"""Run folders never lose data: kills at every point resume exactly, one writer at a time, every corrupted
file is refused by name with nothing changed, NaN and divergence stop the run before anything non-finite
is written, and folders that are not this run's are never overwritten."""

from __future__ import annotations

import csv
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tiny_runs import KILL_POINTS, load_script, tiny_config, tiny_task

from seqgan_rl.training.pipeline import run_training
from seqgan_rl.training.run_folder import CorruptFileError, PlainFolder, RunFolder, RunFolderError
from seqgan_rl.utils import NonFiniteError

ROOT = Path(__file__).resolve().parents[1]
WORKER = ROOT / "tests" / "tiny_runs.py"
CPU = torch.device("cpu")


def data_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in csv.DictReader(f)]


def outcome(run: Path) -> dict:
    """What must be equal between two runs: the metrics (no timings) and the final weights."""
    weights = torch.load(run / "generator_final.pt", weights_only=True)["generator"]
    return {
        "metrics": data_rows(run / "metrics.csv"),
        "pretrain": data_rows(run / "pretrain" / "metrics.csv"),
        "weights": {k: v.tolist() for k, v in weights.items()},
    }


def snapshot(folder: Path) -> dict[str, str]:
    """Every file below ``folder`` (the lock file aside) and its hash."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def worker(out: Path, point: str, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "tests")}
    return subprocess.Popen(
        [sys.executable, str(WORKER), str(out), point, *extra], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("straight") / "run"
    run_training(tiny_config(), out, CPU, tiny_task())
    return out


@pytest.fixture(scope="module")
def straight(straight_run) -> dict:
    return outcome(straight_run)


# ---------------------------------------------------------------------------------------------- kill and resume
def test_sigkill_anywhere_then_resume_equals_the_straight_run(tmp_path, straight):
    procs = {p: worker(tmp_path / p, p) for p in KILL_POINTS}  # killed runs, two at a time at most
    survived = []
    for point, proc in procs.items():
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == -9, (
            f"{point}: the worker was not killed (rc {proc.returncode}): {err.decode()[-800:]}"
        )
        stale = list((tmp_path / point).glob(".*.tmp"))
        assert point != "checkpoint_write" or stale  # the half-written checkpoint is there...
        run_training(tiny_config(), tmp_path / point, CPU, tiny_task(), resume=True)
        assert not list((tmp_path / point).glob(".*.tmp"))  # ...and cleaned on resume
        assert outcome(tmp_path / point) == straight, point
        survived.append(point)
    assert survived == list(KILL_POINTS) and len(survived) >= 6


def test_a_run_that_loads_a_finished_pretraining_equals_one_that_ran_it(tmp_path, straight_run, straight):
    run_training(tiny_config(), tmp_path / "b", CPU, tiny_task(), pretrain_dir=straight_run / "pretrain")
    assert data_rows(tmp_path / "b" / "metrics.csv") == straight["metrics"]


# ---------------------------------------------------------------------------------------------- one writer
def test_a_second_process_on_the_same_folder_exits_2_naming_the_first(tmp_path, capsys):
    out = tmp_path / "run"
    first = worker(out, "slow")
    deadline = time.time() + 60
    while time.time() < deadline and not (out / ".lock").exists():
        time.sleep(0.05)
    time.sleep(0.5)
    script = load_script("train_agent")
    threads = torch.get_num_threads()
    try:
        for extra in ([], ["--resume"]):  # a fresh start and a resume are both refused while it runs
            assert script.main(["--out", str(out), "--preset", "cpu", "--threads", "1", *extra]) == 2
            err = capsys.readouterr().err
            assert f"in use by another process (pid {first.pid})" in err, err
    finally:
        torch.set_num_threads(threads)
    _, err = first.communicate(timeout=180)
    assert first.returncode == 0, err.decode()[-800:]
    steps = [r["step"] for r in data_rows(out / "metrics.csv")]
    assert steps == ["0", "1", "2", "3", "4", "5"]  # every row exactly once


def test_the_lock_is_per_folder_and_released_by_a_killed_process(tmp_path):
    folder = RunFolder.open(tmp_path / "a", "train", {"x": 1}, resume=False, markers=())
    with pytest.raises(RunFolderError, match=f"pid {os.getpid()}"):
        RunFolder.open(tmp_path / "a", "train", {"x": 1}, resume=True, markers=())
    RunFolder.open(tmp_path / "b", "train", {"x": 1}, resume=False, markers=()).close()  # another folder: free
    folder.close()
    RunFolder.open(tmp_path / "a", "train", {"x": 1}, resume=True, markers=()).close()  # released: free again


# ---------------------------------------------------------------------------------------------- integrity
def corrupt(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "emptied":
        path.write_bytes(b"")
    else:  # garbled: flip bytes in the middle
        mid = len(data) // 2
        path.write_bytes(data[:mid] + bytes(b ^ 0x5A for b in data[mid : mid + 8]) + data[mid + 8 :])


@pytest.fixture(scope="module")
def finished_text_run(tmp_path_factory) -> Path:
    """A finished tiny text run (every file kind: checkpoints, data, CSV, JSON, PNG, vocabulary)."""
    root = tmp_path_factory.mktemp("text")
    words = ["a dog runs .", "a cat sits on a mat .", "the dog sits .", "a man rides a bike ."]
    (root / "train.txt").write_text("\n".join(words * 8) + "\n")
    (root / "test.txt").write_text("a dog sits .\nthe man runs on a mat .\n")
    args = [
        "--dataset", str(root / "train.txt"), "--test-file", str(root / "test.txt"), "--mle-epochs", "1",
        "--d-pretrain-rounds", "1", "--iterations", "2", "--num-rollouts", "2", "--eval-every", "1",
        "--eval-samples", "8", "--threads", "1", "--out", str(root / "run"),
    ]  # fmt: skip
    script = load_script("train_agent")
    threads = torch.get_num_threads()
    try:
        assert script.main(args) == 0
    finally:
        torch.set_num_threads(threads)
    return root


def test_every_corrupted_file_is_refused_by_name_and_nothing_changes(finished_text_run, tmp_path, capsys):
    import shutil

    run = finished_text_run / "run"
    # every file the project reads back; trackers' output (TensorBoard's tb/, W&B's wandb/) is only written
    tracker_output = {"tb", "wandb"}
    files = sorted(
        p.relative_to(run)
        for p in run.rglob("*")
        if p.is_file() and p.name != ".lock" and not tracker_output & set(p.relative_to(run).parts)
    )
    assert {"run.json", "config.json", "metrics.csv", "adversarial_checkpoint.pt", "generator_final.pt",
            "summary.json", "curves.png", "vocab.json", "pretrain/data.pt", "pretrain/pretrained.pt",
            "pretrain/generator_mle.pt", "pretrain/metrics.csv", "pretrain/run.json"} - {str(f) for f in files} == {
        "pretrain/data.pt"  # text runs keep no data file: the sentences are the data
    }  # fmt: skip
    train_agent, sample = load_script("train_agent"), load_script("sample")
    final, mle = "generator_final.pt", "pretrain/generator_mle.pt"
    generators = {final: final, "run.json": final, mle: mle, "pretrain/run.json": mle}  # what sample.py reads
    refused = []
    threads = torch.get_num_threads()
    try:
        for name in files:
            for how in ("truncated", "emptied", "garbled"):
                work = tmp_path / f"{name}-{how}".replace("/", "_")
                shutil.copytree(finished_text_run, work)
                target = work / "run" / name
                corrupt(target, how)
                before = snapshot(work)
                cli = [
                    "--dataset", str(work / "train.txt"), "--test-file", str(work / "test.txt"), "--mle-epochs",
                    "1", "--d-pretrain-rounds", "1", "--iterations", "2", "--num-rollouts", "2", "--eval-every",
                    "1", "--eval-samples", "8", "--threads", "1", "--out", str(work / "run"), "--resume",
                ]  # fmt: skip
                assert train_agent.main(cli) == 2, (name, how)
                err = capsys.readouterr().err
                assert str(name).split("/")[-1] in err and "Traceback" not in err, (name, how, err)
                if str(name) in generators:  # sample.py reads the generator: it refuses it too
                    assert sample.main([str(work / "run" / generators[str(name)]), "-n", "2"]) == 2, (name, how)
                    assert str(name).split("/")[-1] in capsys.readouterr().err
                assert snapshot(work) == before, (name, how)
                refused.append((str(name), how))
    finally:
        torch.set_num_threads(threads)
    assert len(refused) == 3 * len(files)


def test_load_failures_name_the_file(tmp_path):
    from seqgan_rl.training.run_folder import load_generator, load_torch_file

    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all")
    (tmp_path / "dir.pt").mkdir()
    for path, error in (
        (tmp_path / "junk.pt", CorruptFileError), (tmp_path / "dir.pt", CorruptFileError),
        (tmp_path / "missing.pt", FileNotFoundError), (tmp_path / "junk.pt" / "x.pt", FileNotFoundError),
    ):  # fmt: skip
        with pytest.raises(error, match=path.name):
            load_torch_file(path)
    torch.save({"something": 1}, tmp_path / "other.pt")
    with pytest.raises(CorruptFileError, match="not a generator checkpoint"):
        load_generator(tmp_path / "other.pt")


def test_a_kill_between_the_manifest_and_the_file_leaves_a_folder_that_verifies(tmp_path, monkeypatch):
    import seqgan_rl.training.run_folder as rf

    folder = RunFolder.open(tmp_path / "r", "train", {"a": 1}, resume=False, markers=())
    folder.save_text("x.json", '"old"')

    class Killed(BaseException): ...

    def dying_write(data, path):
        raise Killed

    monkeypatch.setattr(rf, "atomic_write_bytes", dying_write)
    with pytest.raises(Killed):
        folder.save_text("x.json", '"new"')  # the manifest already accepts the new checksum: dies before the file
    with pytest.raises(Killed):
        folder.save_text("y.json", '"first"')  # a new file: listed, never written
    monkeypatch.undo()
    folder.close()
    again = RunFolder.open(tmp_path / "r", "train", {"a": 1}, resume=True, markers=())  # verifies: old x, no y
    assert (tmp_path / "r" / "x.json").read_text() == '"old"'
    again.close()


# ---------------------------------------------------------------------------------------------- faults
def nan_battery():
    """(name, what to break) pairs: each makes the run produce a NaN or diverge at some point."""
    import dataclasses

    from seqgan_rl.models import Discriminator, Generator

    def nan_d(mp):  # D's scores of the rollouts turn NaN from update 3 on (after the checkpoint of update 2)
        real, n = Discriminator.prob_real_rollouts, {"calls": 0}

        def prob_real_rollouts(self, *args, **kwargs):
            d_comp, d_full = real(self, *args, **kwargs)
            n["calls"] += 1
            return (d_comp * float("nan") if n["calls"] >= 3 else d_comp), d_full

        mp.setattr(Discriminator, "prob_real_rollouts", prob_real_rollouts)

    def nan_logits(mp):  # the rollouts' logits turn NaN from update 3 on
        real, n = Generator.sample_next, {"calls": 0}

        def sample_next(self, logits, *args, **kwargs):
            if kwargs.get("num_samples") is not None:
                n["calls"] += 1
                if n["calls"] >= 3:
                    logits = logits * float("nan")
            return real(self, logits, *args, **kwargs)

        mp.setattr(Generator, "sample_next", sample_next)

    def lr(section):
        def change(cfg):
            if section == "mle":
                return dataclasses.replace(cfg, pretrain=dataclasses.replace(
                    cfg.pretrain, mle=dataclasses.replace(cfg.pretrain.mle, lr=1e9)))  # fmt: skip
            if section == "d":
                d = dataclasses.replace(cfg.adversarial.d_train, lr=1e9)
                return dataclasses.replace(cfg, adversarial=dataclasses.replace(cfg.adversarial, d_train=d))
            return dataclasses.replace(cfg, agent=dataclasses.replace(cfg.agent, lr=1e9))

        return change

    return [
        ("NaN discriminator", nan_d, None), ("NaN logits", nan_logits, None), ("D lr 1e9", None, lr("d")),
        ("G lr 1e9", None, lr("g")), ("MLE lr 1e9", None, lr("mle")),
    ]  # fmt: skip


@pytest.mark.parametrize(("name", "patch", "change"), nan_battery(), ids=[n for n, _, _ in nan_battery()])
def test_nan_and_divergence_stop_the_run_and_it_resumes_from_the_last_good_checkpoint(
    name, patch, change, tmp_path, monkeypatch, straight
):
    from seqgan_rl.training.pretrain import CHECKPOINT as PRE_CKPT

    cfg = change(tiny_config()) if change else tiny_config()
    out = tmp_path / "run"
    with monkeypatch.context() as mp:
        if patch:
            patch(mp)
        with pytest.raises(NonFiniteError, match=r"(update|epoch|round|evaluation)") as info:
            run_training(cfg, out, CPU, tiny_task())
    message = str(info.value)
    assert any(q in message for q in ("loss", "gradient", "Q values", "score", "logits", "nll", "NLL")), message
    for ckpt in [out / "adversarial_checkpoint.pt", out / "pretrain" / PRE_CKPT]:
        if ckpt.exists():  # every checkpoint left is finite (the writer refuses anything else)
            state = torch.load(ckpt, weights_only=True)
            floats = [t for t in _tensors(state) if t.is_floating_point()]
            assert floats and all(bool(torch.isfinite(t).all()) for t in floats), ckpt
    for rows in (out / "metrics.csv", out / "pretrain" / "metrics.csv"):
        if rows.exists():
            assert "nan" not in rows.read_text().lower() and "inf" not in rows.read_text().lower()
    if patch:  # the cause was transient: the run resumes from its last good checkpoint and finishes as a straight run
        assert (out / "adversarial_checkpoint.pt").exists()
        run_training(cfg, out, CPU, tiny_task(), resume=True)
        assert outcome(out) == straight
    else:  # the cause is in the config: resuming from the last good checkpoint meets it again, at the same place
        with pytest.raises(NonFiniteError) as again:
            run_training(cfg, out, CPU, tiny_task(), resume=True)
        assert str(again.value) == message


def _tensors(state):
    if isinstance(state, torch.Tensor):
        yield state
    elif isinstance(state, dict):
        for v in state.values():
            yield from _tensors(v)
    elif isinstance(state, list | tuple):
        for v in state:
            yield from _tensors(v)


def test_the_env_refuses_a_non_finite_reward():
    import numpy as np
    from env_helpers import tiny_discriminator, tiny_generator

    from seqgan_rl.envs import TokenGenerationVectorEnv, make_token_generation_env

    class NanD:
        vocab_size, seq_len, device = 10, 6, torch.device("cpu")

        def prob_real(self, tokens):
            return torch.full((tokens.shape[0],), float("nan"))

    env = make_token_generation_env(generator=tiny_generator(), discriminator=NanD(), num_rollouts=2)
    env.reset(seed=0)
    with pytest.raises(NonFiniteError, match="discriminator"):
        env.step(1)
    venv = TokenGenerationVectorEnv(2, generator=tiny_generator(), discriminator=NanD(), num_rollouts=2)
    venv.reset(seed=0)
    with pytest.raises(NonFiniteError, match="discriminator"):
        venv.step(np.array([1, 2]))
    ok = TokenGenerationVectorEnv(2, generator=tiny_generator(), discriminator=tiny_discriminator(), num_rollouts=2)
    ok.reset(seed=0)
    assert np.isfinite(ok.step(np.array([1, 2]))[1]).all()


# ---------------------------------------------------------------------------------------------- overwrites
def test_folders_that_are_not_this_runs_are_refused_and_left_byte_identical(tmp_path, capsys):
    train_agent, pretrain = load_script("train_agent"), load_script("pretrain")
    oracle_file = tmp_path / "oracle.npz"
    tiny_task().oracle.save_npz(oracle_file)
    tiny = [
        "--oracle-file", str(oracle_file), "--preset", "cpu", "--mle-epochs", "1", "--d-pretrain-rounds", "1",
        "--iterations", "1", "--eval-samples", "16", "--num-rollouts", "2", "--threads", "1",
    ]  # fmt: skip
    pre_tiny = ["--oracle-file", str(oracle_file), "--mle-epochs", "1", "--d-rounds", "1", "--threads", "1"]
    threads = torch.get_num_threads()
    refused = []

    def refuse(label, main, args, folder, message):
        before = snapshot(folder) if folder.exists() else None
        assert main(args) == 2, label
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (label, err)
        assert (snapshot(folder) if folder.exists() else None) == before, label
        refused.append(label)

    try:
        users = tmp_path / "users"
        users.mkdir()
        for name in ("config.json", "metrics.csv", "curves.png"):
            (users / name).write_text(f"the user's own {name}")
        refuse(
            "a user's folder (train_agent)",
            train_agent.main,
            [*tiny, "--out", str(users)],
            users,
            "holds no seqgan-rl run",
        )
        refuse(
            "a user's folder (pretrain)",
            pretrain.main,
            [*pre_tiny, "--out", str(users)],
            users,
            "holds no seqgan-rl run",
        )
        trained = tmp_path / "trained"
        assert train_agent.main([*tiny, "--out", str(trained)]) == 0
        capsys.readouterr()
        refuse("pretrain.py on a finished train run", pretrain.main, [*pre_tiny, "--out", str(trained)], trained,
               "holds a train run, not a pre-training run")  # fmt: skip
        refuse("train_agent.py again without --resume", train_agent.main, [*tiny, "--out", str(trained)], trained,
               "already holds an adversarial run")  # fmt: skip
        refuse("resume with other threads", train_agent.main, [*tiny[:-1], "2", "--out", str(trained), "--resume"],
               trained, "runtime.threads: 1 -> 2")  # fmt: skip
        pre_only = tmp_path / "pre"
        assert pretrain.main([*pre_tiny, "--out", str(pre_only)]) == 0
        capsys.readouterr()
        refuse("train_agent.py on a pre-training folder", train_agent.main, [*tiny, "--out", str(pre_only)], pre_only,
               "holds a pretrain run, not an adversarial run")  # fmt: skip
        empty = tmp_path / "empty"
        empty.mkdir()
        refuse("--resume on an empty folder", train_agent.main, [*tiny, "--out", str(empty), "--resume"], empty,
               "holds no adversarial run to resume")  # fmt: skip
        a_file = tmp_path / "a_file"
        a_file.write_text("x")
        refuse("--out is a file", train_agent.main, [*tiny, "--out", str(a_file)], tmp_path / "users", "is a file")
        assert train_agent.main([*tiny, "--out", str(users), "--force"]) == 0  # told otherwise: it writes there
    finally:
        torch.set_num_threads(threads)
    assert len(refused) == 8


def test_compare_writes_under_runs_unless_asked(tmp_path, monkeypatch):
    script = load_script("compare_algos")
    written = []
    monkeypatch.setattr(
        script, "write_outputs", lambda records, out, name, published=False: written.append(Path(out)) or []
    )
    (tmp_path / "cmp").mkdir()
    (tmp_path / "cmp" / "results.json").write_text("[]")
    assert script.main(["--tables-only", "--out", str(tmp_path / "cmp")]) == 0
    assert script.main(["--tables-only", "--out", str(tmp_path / "cmp"), "--results-dir", str(tmp_path / "x")]) == 0
    assert written == [tmp_path / "cmp" / "tables", tmp_path / "x"]  # benchmarks/results only when asked


def test_plain_folder_refuses_non_finite_checkpoints(tmp_path):
    with pytest.raises(NonFiniteError, match=r"refusing to write .*bad\.pt: w: not finite"):
        PlainFolder(tmp_path).save_torch("bad.pt", {"w": torch.tensor([1.0, float("nan")])})
    assert not (tmp_path / "bad.pt").exists()
