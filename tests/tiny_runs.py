"""Tiny whole runs for the tests (``tiny_config``: V 20, T 6, a few epochs and updates), and a worker that a
test starts as a process and kills with SIGKILL at a named point, then resumes.

    python tests/tiny_runs.py OUT_DIR POINT [--resume] [--transformer]
    torchrun --nproc_per_node 2 tests/tiny_runs.py OUT_DIR POINT [--resume]   # the same run, data-parallel

POINT is one of ``KILL_POINTS`` (or ``none``; ``slow`` sleeps in every update, for the concurrency test).
"""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import os
import signal
import sys
import time
from pathlib import Path
from types import ModuleType

import torch

from seqgan_rl.config import (
    AdversarialConfig,
    DiscriminatorConfig,
    DiscriminatorTrainConfig,
    GeneratorConfig,
    MLEConfig,
    OracleDataConfig,
    PretrainConfig,
    ReinforceConfig,
    TrainConfig,
    TransformerConfig,
)
from seqgan_rl.models import OracleLSTM
from seqgan_rl.training.tasks import OracleTask

V, T = 20, 6
ROOT = Path(__file__).resolve().parents[1]


def load_script(name: str, folder: str = "scripts") -> ModuleType:
    """Import ``<folder>/<name>.py`` of the repository by its path (``scripts/`` and ``benchmarks/`` are not
    packages); a fresh module at every call."""
    spec = importlib.util.spec_from_file_location(f"{folder}_{name}", ROOT / folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_config(
    seed: int = 0, iterations: int = 5, reward: str = "mc", mle_epochs: int = 3, every: int = 2,
    transformer: bool = False,
) -> TrainConfig:  # fmt: skip
    """Pre-training (``mle_epochs`` epochs, 2 D rounds) then ``iterations`` updates of 8 sequences, evaluated
    and checkpointed ``every`` updates; the generator an LSTM of 8, or a one-layer GPT-2 of width 8."""
    g = GeneratorConfig(vocab_size=V, seq_len=T, embed_dim=8, hidden_dim=8)
    if transformer:
        g = TransformerConfig(vocab_size=V, seq_len=T, num_layers=1, hidden_dim=8, num_heads=2, dropout=0.1)
    pre = PretrainConfig(
        seed=seed,
        generator=g,
        discriminator=DiscriminatorConfig(
            vocab_size=V, seq_len=T, embed_dim=8, filter_sizes=(2, 3), num_filters=(4, 4), dropout=0.5
        ),
        data=OracleDataConfig(num_train=256, num_test=128, num_eval_samples=64),
        mle=MLEConfig(epochs=mle_epochs, eval_every=1),
        d_pretrain=DiscriminatorTrainConfig(rounds=2, epochs=1, lr=1e-3, max_steps_per_round=3),
    )
    adv = AdversarialConfig(
        iterations=iterations, num_rollouts=2, reward=reward, eval_every=every, checkpoint_every=every,
        d_train=DiscriminatorTrainConfig(rounds=1, epochs=1, lr=1e-3, num_negatives=64, max_steps_per_round=3),
    )  # fmt: skip
    return TrainConfig(preset="cpu", seed=seed, pretrain=pre, agent=ReinforceConfig(batch_size=8), adversarial=adv)


WORDS = ["a dog runs .", "a cat sits on a mat .", "the dog sits .", "a man rides a bike .", "the cat runs ."]
GOLDEN_TINY = [
    "--mle-epochs",
    "1",
    "--d-pretrain-rounds",
    "1",
    "--iterations",
    "3",
    "--eval-every",
    "1",
    "--threads",
    "1",
]
GOLDEN_PATHS = ("reinforce", "constant", "ppo", "text")
"""The golden runs (``tests/test_golden.py``): REINFORCE from a fresh pre-training, the constant-reward control
and SB3 PPO (both loading that pre-training), and SeqGAN on a tiny text file."""


def golden_runs(root: Path) -> None:
    """Make the golden runs under ``root/<path>`` through ``scripts/train_agent.py``, in this process."""
    npz = root / "oracle.npz"
    OracleLSTM.random(vocab_size=20, seq_len=6, embed_dim=8, hidden_dim=8, seed=3).save_npz(npz)
    (root / "train.txt").write_text("\n".join(WORDS * 8) + "\n")
    (root / "test.txt").write_text("a dog sits .\nthe man runs on a mat .\n")
    # --seq-len 20: the length these runs were recorded with (oracle files did not store theirs then)
    oracle = ["--preset", "cpu", "--oracle-file", str(npz), "--seq-len", "20", "--eval-samples", "64", *GOLDEN_TINY]
    pre = ["--pretrain-dir", str(root / "reinforce" / "pretrain")]
    script = load_script("train_agent")
    threads = torch.get_num_threads()
    try:
        for name, args in (
            ("reinforce", ["--algo", "reinforce", "--num-rollouts", "2", *oracle]),
            ("constant", ["--algo", "reinforce", "--reward", "constant", *pre, *oracle]),
            ("ppo", ["--algo", "ppo", "--num-rollouts", "2", *pre, *oracle]),
            ("text", ["--dataset", str(root / "train.txt"), "--test-file", str(root / "test.txt"),
                      "--num-rollouts", "2", "--bleu-samples", "8", *GOLDEN_TINY]),
        ):  # fmt: skip
            assert script.main([*args, "--out", str(root / name)]) == 0, name
    finally:
        torch.set_num_threads(threads)


def data_rows(path: Path) -> list[dict[str, str]]:
    """CSV rows without ``time/`` columns and without empty cells (a column nobody wrote holds no data)."""
    with path.open(newline="") as f:
        return [{k: v for k, v in r.items() if v != "" and not k.startswith("time/")} for r in csv.DictReader(f)]


TOLERANCE = {"weights": 1.5e-3, "metrics": 4e-3}
"""How far a golden run may lie from a recorded fixture set of another machine type (``drift``), chosen between
the two measured by ``benchmarks/golden_drift.py`` (``benchmarks/results/golden_drift.txt``): across the three
recorded machine types the runs drift by at most 5.1e-4 (weights) and 7.9e-4 (metrics); one extra random draw
in the agents' collection moves them by at least 4.4e-3 and 1.9e-2 (PPO; REINFORCE 5.1e-2 and 6.2e-2). Each
tolerance is about the geometric mean of its pair: 3-5x above the drift, 3-5x below the smallest change."""

GoldenRun = tuple[list[list[dict[str, str]]], dict[str, torch.Tensor]]
"""A golden run as compared: its metrics rows (and its pre-training's, where recorded), its final weights."""


def load_run(run: Path, name: str, golden: Path) -> GoldenRun:
    """The rows and weights of the run folder ``run``, with the pre-training rows ``golden`` records."""
    rows = [data_rows(run / "metrics.csv")]
    if (golden / name / "pretrain_metrics.json").exists():
        rows.append(data_rows(run / "pretrain" / "metrics.csv"))
    return rows, torch.load(run / "generator_final.pt", weights_only=True)["generator"]


def load_fixture(golden: Path, name: str) -> GoldenRun:
    """The rows and weights the fixture set ``golden`` recorded for the golden run ``name``."""
    files = [golden / name / "metrics.json", golden / name / "pretrain_metrics.json"]
    rows = [json.loads(f.read_text()) for f in files if f.exists()]
    return rows, torch.load(golden / name / "generator_final.pt", weights_only=True)


def drift(got: GoldenRun, want: GoldenRun) -> dict[str, float]:
    """How far a golden run lies from another: ``weights``, the largest absolute difference of a final generator
    weight; ``metrics``, the largest difference of a logged number, relative to the number where it is above 1
    (``inf`` when the rows or parameters do not line up)."""
    apart = {"weights": math.inf, "metrics": math.inf}
    worst = 0.0
    if len(got[0]) != len(want[0]):
        return apart
    for got_rows, want_rows in zip(got[0], want[0], strict=True):
        if len(got_rows) != len(want_rows):
            return apart
        for a, b in zip(got_rows, want_rows, strict=True):
            if a.keys() != b.keys():
                return apart
            for k in a:
                try:
                    x, y = float(a[k]), float(b[k])
                except ValueError:
                    if a[k] != b[k]:
                        return apart
                    continue
                worst = max(worst, abs(x - y) / max(abs(y), 1.0))
    g, w = got[1], want[1]
    if set(g) != set(w) or any(g[k].shape != w[k].shape for k in w):
        return {"weights": math.inf, "metrics": worst}
    return {"weights": max(float((g[k] - w[k]).abs().max()) for k in w), "metrics": worst}


def tiny_task() -> OracleTask:
    return OracleTask(OracleLSTM.random(vocab_size=V, seq_len=T, embed_dim=8, hidden_dim=8, seed=3))


def interrupt_update(monkeypatch, agent_cls, call: int) -> None:
    """Make ``agent_cls.update`` raise ``KeyboardInterrupt`` at its ``call``-th call (1-based), in process."""
    real, n = agent_cls.update, {"calls": 0}

    def update(self, batch):
        n["calls"] += 1
        if n["calls"] == call:
            raise KeyboardInterrupt
        return real(self, batch)

    monkeypatch.setattr(agent_cls, "update", update)


def stopped_and_resumed(config, out: Path, monkeypatch, call: int = 3) -> None:
    """Run ``config`` (the tiny oracle task) into ``out``, stopped in process at the ``call``-th REINFORCE update
    (update 3: after the checkpoint of update 2), then resumed to its end."""
    from seqgan_rl.agents.reinforce import ReinforceAgent
    from seqgan_rl.training.pipeline import run_training

    real = ReinforceAgent.update
    interrupt_update(monkeypatch, ReinforceAgent, call)
    try:
        run_training(config, out, torch.device("cpu"), tiny_task())
    except KeyboardInterrupt:
        pass
    else:
        raise AssertionError(f"the run was not stopped in update {call}")
    monkeypatch.setattr(ReinforceAgent, "update", real)
    run_training(config, out, torch.device("cpu"), tiny_task(), resume=True)


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def on_call(owner, name: str, call: int, before=die, match=lambda *a, **k: True) -> None:
    """Run ``before`` at the ``call``-th matching call of ``owner.name`` (1-based), then call it."""
    real, n = getattr(owner, name), {"calls": 0}

    def wrapper(*args, **kwargs):
        if match(*args, **kwargs):
            n["calls"] += 1
            if n["calls"] == call:
                before()
        return real(*args, **kwargs)

    setattr(owner, name, wrapper)


def half_written_checkpoint(data, path):
    """Die while the second adversarial checkpoint is being written: half its bytes in a temporary file."""
    tmp = path.parent / f".{path.name}.killed.tmp"
    tmp.write_bytes(data[: len(data) // 2])
    die()


def install(point: str) -> None:
    import seqgan_rl.training.pretrain as pretrain
    import seqgan_rl.training.run_folder as run_folder
    from seqgan_rl.agents.reinforce import ReinforceAgent

    if point == "mle":  # during the second MLE epoch
        on_call(pretrain, "mle_epoch", 2)
    elif point == "d_pretrain":  # during the second D pre-training round
        on_call(pretrain, "discriminator_round", 2)
    elif point == "pretrain_final":  # while pretrained.pt is written (its manifest entry already updated)
        on_call(run_folder, "atomic_write_bytes", 1, match=lambda data, path: path.name == "pretrained.pt")
    elif point == "before_first_checkpoint":  # during update 1 (the first checkpoint comes after update 2)
        on_call(ReinforceAgent, "update", 1)
    elif point == "checkpoint_write":  # in the middle of the second adversarial checkpoint's write
        real = run_folder.atomic_write_bytes
        n = {"calls": 0}

        def write(data, path):
            if path.name == "adversarial_checkpoint.pt":
                n["calls"] += 1
                if n["calls"] == 2:
                    half_written_checkpoint(data, path)
            real(data, path)

        run_folder.atomic_write_bytes = write
    elif point == "mid_adversarial":  # during update 3, after the checkpoint of update 2
        on_call(ReinforceAgent, "update", 3)
    elif point == "metrics_row":  # after update 4's row is appended, before the manifest records it
        on_call(
            run_folder.RunFolder, "record_append", 1, match=lambda self, name: self.kind == "train" and _rows(self) == 5
        )
    elif point == "after_final_generator":  # generator_final.pt written, summary.json not yet
        on_call(run_folder.RunFolder, "save_text", 1, match=lambda self, name, text: name == "summary.json")
    elif point == "slow":
        real_update = ReinforceAgent.update

        def slow(self, batch):
            time.sleep(0.5)
            return real_update(self, batch)

        ReinforceAgent.update = slow
    elif point == "record_writes":  # each process lists what it writes, in OUT_DIR/../writes-<pid>.json
        record_writes()
    elif point != "none":
        raise SystemExit(f"unknown point {point!r}")


def record_writes() -> None:
    """Record every file this process creates, replaces or appends to (atomic writes end in ``os.replace``;
    ``metrics.csv`` grows by ``Path.open("a")``; the lock is ``os.open`` with ``O_CREAT``), and at exit write the
    list, with the process's torchrun rank, to ``writes-<pid>.json`` beside the run folder."""
    import atexit
    import json
    import pathlib

    out = pathlib.Path(sys.argv[1]).resolve()
    written: list[str] = []
    real_replace, real_open, real_path_open = os.replace, os.open, pathlib.Path.open

    def replace(src, dst, *args, **kwargs):
        written.append(str(dst))
        return real_replace(src, dst, *args, **kwargs)

    def os_open(path, flags, *args, **kwargs):
        if flags & os.O_CREAT:
            written.append(str(path))
        return real_open(path, flags, *args, **kwargs)

    def path_open(self, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax+"):
            written.append(str(self))
        return real_path_open(self, mode, *args, **kwargs)

    def report():
        record = {"rank": int(os.environ.get("RANK", "0")), "written": written}
        with real_path_open(out.parent / f"writes-{os.getpid()}.json", "w") as f:
            json.dump(record, f)

    os.replace, os.open, pathlib.Path.open = replace, os_open, path_open
    atexit.register(report)


def _rows(folder) -> int:
    """Data rows of the folder's metrics.csv, header excluded."""
    return len((folder.path / "metrics.csv").read_text().splitlines()) - 1


KILL_POINTS = (
    "mle", "d_pretrain", "pretrain_final", "before_first_checkpoint", "checkpoint_write", "mid_adversarial",
    "metrics_row", "after_final_generator",
)  # fmt: skip


def main(argv: list[str]) -> int:
    from seqgan_rl import distributed
    from seqgan_rl.training.pipeline import run_training

    out, point, resume = argv[0], argv[1], "--resume" in argv
    config = tiny_config(transformer="--transformer" in argv)
    torch.set_num_threads(1)
    install(point)
    device = distributed.init_from_env(torch.device("cpu"))  # started by torchrun: one rank of a data-parallel run
    run_training(config, out, device, tiny_task(), resume=resume)
    distributed.shutdown(wait=True)
    return 0


if __name__ == "__main__":
    from seqgan_rl import distributed

    distributed.exit_process(main(sys.argv[1:]))
