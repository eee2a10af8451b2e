"""A refused command leaves the file system exactly as it was: every file (hidden ones included, the lock file
among them) byte for byte, and no folder created. One test for each kind of refusal of each script."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest
import torch
from tiny_runs import load_script

from seqgan_rl.config import GeneratorConfig
from seqgan_rl.data.text import Vocabulary
from seqgan_rl.models import Generator, OracleLSTM
from seqgan_rl.training.run_folder import PlainFolder, save_generator

TRAIN = ["--preset", "cpu", "--mle-epochs", "1", "--d-pretrain-rounds", "1", "--iterations", "1", "--eval-every", "1",
         "--eval-samples", "32", "--num-rollouts", "2", "--threads", "1"]  # fmt: skip
PRETRAIN = ["--mle-epochs", "1", "--eval-every", "1", "--d-rounds", "1", "--threads", "1"]


def run(name: str, argv: list[str]) -> int:
    threads = torch.get_num_threads()
    try:
        return load_script(name).main(argv)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    """A finished tiny adversarial run (``train/``), a finished pre-training (``pretrain/``) and their oracle."""
    root = tmp_path_factory.mktemp("made")
    OracleLSTM.random(vocab_size=12, seq_len=6, embed_dim=4, hidden_dim=8, seed=0).save_npz(root / "oracle.npz")
    oracle = ["--oracle-file", str(root / "oracle.npz")]
    assert run("train_agent", [*oracle, *TRAIN, "--out", str(root / "train")]) == 0
    assert run("pretrain", [*oracle, *PRETRAIN, "--out", str(root / "pretrain")]) == 0
    for lock in root.rglob(".lock"):  # as if another process had made them: a refusal must not sign them
        lock.write_text("1\n")
    g = Generator(GeneratorConfig(vocab_size=8, seq_len=6, embed_dim=4, hidden_dim=4, start_token=1, eos_token=2,
                                  pad_token=0))  # fmt: skip
    save_generator(g, PlainFolder(root), "text_generator.pt", Vocabulary(["a", "dog", "runs", "."]))
    return root


def tree(root: Path) -> dict[str, str]:
    """Every folder and file under ``root``, hidden ones included, with each file's SHA-256."""
    found = {}
    for folder, dirs, files in os.walk(root):
        for d in dirs:
            found[os.path.relpath(os.path.join(folder, d), root) + "/"] = "folder"
        for f in files:
            path = Path(folder, f)
            found[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def garble(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def setup(kind: str, made: Path, work: Path) -> tuple[str, list[str]]:
    """Lay out ``work`` for one refusal; the script and its options."""
    oracle = ["--oracle-file", str(made / "oracle.npz")]
    (work / "user").mkdir()
    (work / "user" / "notes.txt").write_text("a user's own file\n")
    (work / "user" / ".hidden").write_text("and a hidden one\n")
    shutil.copytree(made / "train", work / "train")
    shutil.copytree(made / "pretrain", work / "pretrain")
    (work / "a_file").write_text("not a folder\n")
    train = ["train_agent", [*oracle, *TRAIN]]
    pretrain = ["pretrain", [*oracle, *PRETRAIN]]
    if kind == "train: a folder of the user's":
        return train[0], [*train[1], "--out", str(work / "user")]
    if kind == "train: a folder that holds a run, without --resume":
        return train[0], [*train[1], "--out", str(work / "train")]
    if kind == "train: --resume on a run with a corrupted file":
        garble(work / "train" / "metrics.csv")
        return train[0], [*train[1], "--out", str(work / "train"), "--resume"]
    if kind == "train: --resume with another config":
        return train[0], [*oracle, *TRAIN[:-4], "--num-rollouts", "3", "--threads", "1", "--out", str(work / "train"),
                          "--resume"]  # fmt: skip
    if kind == "train: --resume on a corrupted pre-training":
        garble(work / "train" / "pretrain" / "pretrained.pt")
        return train[0], [*train[1], "--out", str(work / "train"), "--resume"]
    if kind == "train: --out is a file":
        return train[0], [*train[1], "--out", str(work / "a_file")]
    if kind == "train: --resume on a missing folder":
        return train[0], [*train[1], "--out", str(work / "missing" / "run"), "--resume"]
    if kind == "train: --pretrain-dir a folder of the user's":
        return train[0], [*train[1], "--out", str(work / "new" / "run"), "--pretrain-dir", str(work / "user")]
    if kind == "train: --pretrain-dir a corrupted pre-training":
        garble(work / "pretrain" / "pretrained.pt")
        return train[0], [*train[1], "--out", str(work / "new" / "run"), "--pretrain-dir", str(work / "pretrain")]
    if kind == "pretrain: --resume on a missing folder":
        return pretrain[0], [*pretrain[1], "--out", str(work / "missing" / "run"), "--resume"]
    if kind == "pretrain: a folder of the user's":
        return pretrain[0], [*pretrain[1], "--out", str(work / "user")]
    if kind == "pretrain: a folder that holds a pre-training, without --resume":
        return pretrain[0], [*pretrain[1], "--out", str(work / "pretrain")]
    if kind == "pretrain: --resume on a corrupted pre-training":
        garble(work / "pretrain" / "pretrained.pt")
        return pretrain[0], [*pretrain[1], "--out", str(work / "pretrain"), "--resume"]
    if kind == "pretrain: --resume with another config":
        return pretrain[0], [*oracle, "--mle-epochs", "2", *PRETRAIN[2:], "--out", str(work / "pretrain"), "--resume"]
    if kind == "compare: a folder of the user's":
        return "compare_algos", [
            *oracle,
            "--seeds",
            "0",
            "--algos",
            "mle",
            "--threads",
            "1",
            "--out",
            str(work / "user"),
        ]
    if kind == "sample: --out in a missing folder":
        return "sample", [str(made / "text_generator.pt"), "--out", str(work / "missing" / "x.txt")]
    if kind == "sample: --out is a folder":
        return "sample", [str(made / "text_generator.pt"), "--out", str(work / "user")]
    raise AssertionError(kind)


KINDS = [
    "train: a folder of the user's",
    "train: a folder that holds a run, without --resume",
    "train: --resume on a run with a corrupted file",
    "train: --resume with another config",
    "train: --resume on a corrupted pre-training",
    "train: --out is a file",
    "train: --resume on a missing folder",
    "train: --pretrain-dir a folder of the user's",
    "train: --pretrain-dir a corrupted pre-training",
    "pretrain: --resume on a missing folder",
    "pretrain: a folder of the user's",
    "pretrain: a folder that holds a pre-training, without --resume",
    "pretrain: --resume on a corrupted pre-training",
    "pretrain: --resume with another config",
    "compare: a folder of the user's",
    "sample: --out in a missing folder",
    "sample: --out is a folder",
]


@pytest.mark.parametrize("kind", KINDS)
def test_a_refusal_leaves_every_file_as_it_was(kind, made, tmp_path, capsys):
    name, argv = setup(kind, made, tmp_path)
    before = tree(tmp_path)
    capsys.readouterr()
    assert run(name, argv) == 2, kind
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("error:") and len(err.strip().splitlines()) == 1, err
    after = tree(tmp_path)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, f"{kind}: the refusal changed {changed}\n{err}"
    print(f"{kind}: {err.strip()}")  # the closing note's table: pytest -s shows them
