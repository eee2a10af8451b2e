"""Data-parallel training on torch.distributed (gloo, 2 processes on 127.0.0.1, one thread each).

Two kinds of check: the pieces (``torch.multiprocessing.spawn``: each rank's share of a fixed batch gives, once
summed, the single-process gradient of the whole batch; the ranks' weights stay identical; sharded evaluation
equals the single-process one on the same samples), and whole runs under ``torchrun --nproc_per_node 2``
(rank 0 alone writes, a second run reproduces the first, runs killed in pre-training and in the adversarial
phase and resumed equal the straight run).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from test_run_folder import outcome
from tiny_runs import tiny_config, tiny_task

from seqgan_rl import distributed
from seqgan_rl.agents import ReinforceAgent, RolloutBatch, make_agent
from seqgan_rl.agents.reinforce import GRPOAgent
from seqgan_rl.config import DiscriminatorConfig, GeneratorConfig, GRPOConfig, PPOConfig, ReinforceConfig
from seqgan_rl.envs.rollout import ConstantReward
from seqgan_rl.models import Discriminator, Generator
from seqgan_rl.training.metrics import sharded_nll
from seqgan_rl.training.pipeline import run_training
from seqgan_rl.training.pretrain import discriminator_step, mle_step, sharded_discriminator_step
from seqgan_rl.training.run_folder import RunFolderError
from seqgan_rl.training.trainer import Trainer
from seqgan_rl.utils import make_rng

ROOT = Path(__file__).resolve().parents[1]
B, V, T = 5, 12, 6  # an odd batch: the ranks hold 3 and 2 rows


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------- the pieces
def policy(eos: int | None = None) -> Generator:
    g = Generator(
        GeneratorConfig(
            vocab_size=V, seq_len=T, embed_dim=8, hidden_dim=8, eos_token=eos, pad_token=None if eos is None else 2
        )
    )
    g.reset_parameters(make_rng(1))
    return g


def fixed_batch() -> RolloutBatch:
    """Sequences with an end token (id 1) in some rows, and fixed Q values."""
    rng = make_rng(2)
    seqs = torch.randint(3, V, (B, T), generator=rng)
    seqs[1, 3], seqs[4, 1] = 1, 1
    q = torch.rand(B, T, generator=rng)
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[1, 4:], mask[4, 2:] = False, False
    return RolloutBatch(seqs, q, mask)


def reinforce_update(rows: slice) -> tuple[ReinforceAgent, dict]:
    """One REINFORCE update on ``rows`` of the fixed batch: a leave-one-out baseline, normalised advantages,
    an entropy bonus and a mean (every statistic that needs the whole batch); no clipping."""
    cfg = ReinforceConfig(
        batch_size=B, baseline="rloo", normalize=True, entropy_coef=0.05, reduction="mean", grad_clip=1e9
    )
    agent = ReinforceAgent(policy(eos=1), ConstantReward(), cfg)
    metrics = agent.update(RolloutBatch(*(x[rows] for x in fixed_batch())))
    return agent, metrics


def grpo_update(rows: slice) -> tuple[GRPOAgent, dict]:
    """Two GRPO steps on ``rows`` of 8 sequences in groups of 4 (whole groups per rank: the advantages of a
    group need all of it, which the gather gives)."""
    rng = make_rng(6)
    seqs, q = torch.randint(3, V, (8, T), generator=rng), torch.rand(8, T, generator=rng)
    batch = RolloutBatch(seqs, q, torch.ones(8, T, dtype=torch.bool))
    agent = GRPOAgent(policy(), ConstantReward(), GRPOConfig(batch_size=8, group_size=4, epochs=2, grad_clip=1e9))
    with torch.no_grad():  # start away from the reference, so that the KL term has a gradient
        agent.generator.output.bias.add_(0.3)
    metrics = agent.update(RolloutBatch(*(x[rows] for x in batch)))
    return agent, metrics


def grads(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.grad.clone() for p in module.parameters()]


def params(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def critic() -> Discriminator:
    d = Discriminator(
        DiscriminatorConfig(vocab_size=V, seq_len=T, embed_dim=8, filter_sizes=(2, 3), num_filters=(4, 4), dropout=0.0)
    )
    d.reset_parameters(make_rng(3))
    return d


def d_batch() -> tuple[torch.Tensor, torch.Tensor]:
    rng = make_rng(4)
    return torch.randint(0, V, (7, T), generator=rng), torch.randint(0, 2, (7,), generator=rng)


def eval_tokens() -> torch.Tensor:
    tokens = torch.randint(3, V, (9, T), generator=make_rng(5))
    tokens[2, 2], tokens[7, 0] = 1, 1
    return tokens


def rank_checks(rank: int, port: int, out: str) -> None:
    """What one rank of 2 computes on its share of the fixed inputs (saved to ``out/rank<r>.pt``)."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        res: dict = {"enabled": distributed.enabled(), "rank": distributed.rank(), "share": distributed.shard(B)}
        agent, res["reinforce_metrics"] = reinforce_update(distributed.shard(B))
        res["reinforce_grads"], res["reinforce_params"] = grads(agent.generator), params(agent.generator)
        agent, res["grpo_metrics"] = grpo_update(distributed.shard(8))
        res["grpo_grads"], res["grpo_params"] = grads(agent.generator), params(agent.generator)
        trainer = Trainer(agent, ConstantReward(), iterations=0, out_dir=Path(out) / "by-hand")  # a path: rank 0's
        res["trainer_writes"] = trainer.folder.writes

        g = policy(eos=1)
        res["mle_loss"] = mle_step(g, torch.optim.Adam(g.parameters(), lr=0.01), fixed_batch().sequences, 1e9)
        res["mle_grads"], res["mle_params"] = grads(g), params(g)

        d, (tokens, labels) = critic(), d_batch()
        rows = distributed.shard(len(tokens))
        opt = torch.optim.Adam(d.parameters(), lr=0.01)
        res["d_stats"] = sharded_discriminator_step(d, opt, tokens[rows], labels[rows], len(tokens))
        res["d_grads"], res["d_params"] = grads(d), params(d)

        gen, tokens = policy(eos=1), eval_tokens()
        res["nll"] = sharded_nll(gen, tokens[distributed.shard(len(tokens))])
        res["nll_oracle_style"] = sharded_nll(policy(), tokens[distributed.shard(len(tokens))], temperature=1.5)
        res["gathered"] = distributed.gather_rows(torch.arange(rank * 10, rank * 10 + 3 - rank))
        try:
            make_agent("ppo", PPOConfig(), policy(), ConstantReward())
        except ValueError as exc:
            res["ppo_refused"] = str(exc)
        torch.save(res, Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("ranks")
    mp.spawn(rank_checks, args=(free_port(), str(out)), nprocs=2, join=True)
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(2)]


def assert_close(a: list[torch.Tensor], b: list[torch.Tensor]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6)


def assert_equal(a: list[torch.Tensor], b: list[torch.Tensor]) -> None:
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_the_ranks_split_the_batch(ranks):
    assert [r["enabled"] for r in ranks] == [True, True] and [r["rank"] for r in ranks] == [0, 1]
    assert [r["share"] for r in ranks] == [slice(0, 3), slice(3, 5)]
    assert [r["trainer_writes"] for r in ranks] == [True, False]  # a Trainer made by hand writes on rank 0 only
    assert not distributed.enabled() and distributed.shard(B) == slice(0, B)  # a plain process: everything


def test_the_summed_policy_gradient_is_the_whole_batch_gradient(ranks):
    agent, metrics = reinforce_update(slice(None))
    for r in ranks:
        assert_close(r["reinforce_grads"], grads(agent.generator))
        assert_close(r["reinforce_params"], params(agent.generator))
        assert r["reinforce_metrics"] == pytest.approx(metrics, rel=1e-5)
    assert_equal(ranks[0]["reinforce_params"], ranks[1]["reinforce_params"])  # bit-identical on both ranks
    assert ranks[0]["reinforce_metrics"] == ranks[1]["reinforce_metrics"]


def test_grpo_updates_data_parallel_as_in_one_process(ranks):
    agent, metrics = grpo_update(slice(None))
    for r in ranks:
        assert_close(r["grpo_grads"], grads(agent.generator))
        assert_close(r["grpo_params"], params(agent.generator))
        assert r["grpo_metrics"] == pytest.approx(metrics, rel=1e-5, abs=1e-7)
    assert_equal(ranks[0]["grpo_params"], ranks[1]["grpo_params"])


def test_mle_and_discriminator_steps_sum_to_the_whole_minibatch(ranks):
    g = policy(eos=1)
    loss = mle_step(g, torch.optim.Adam(g.parameters(), lr=0.01), fixed_batch().sequences, 1e9)
    d, (tokens, labels) = critic(), d_batch()
    d_loss, d_acc = discriminator_step(d, torch.optim.Adam(d.parameters(), lr=0.01), tokens, labels)
    for r in ranks:
        assert r["mle_loss"] == pytest.approx(loss, rel=1e-6)
        assert_close(r["mle_grads"], grads(g))
        assert_close(r["mle_params"], params(g))
        assert r["d_stats"] == pytest.approx((d_loss, d_acc), rel=1e-6)
        assert_close(r["d_grads"], grads(d))
        assert_close(r["d_params"], params(d))
    for key in ("mle_params", "d_params"):
        assert_equal(ranks[0][key], ranks[1][key])


def test_sharded_evaluation_equals_the_single_process_one(ranks):
    tokens = eval_tokens()
    for r in ranks:
        assert r["nll"] == pytest.approx(policy(eos=1).nll(tokens), rel=1e-6)
        assert r["nll_oracle_style"] == pytest.approx(policy().nll(tokens, temperature=1.5), rel=1e-6)
        assert r["gathered"].tolist() == [0, 1, 2, 10, 11]  # 3 rows and 2, in rank order


def test_ppo_is_refused_data_parallel(ranks, monkeypatch):
    assert all("runs in one process" in r["ppo_refused"] for r in ranks)
    monkeypatch.setenv("WORLD_SIZE", "2")  # what torchrun sets: refused before any work
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import train_agent
    finally:
        sys.path.pop(0)
    args = train_agent.parse_args(["--algo", "ppo"])
    with pytest.raises(ValueError, match="without torchrun"):
        train_agent.build_config(args, tiny_task(), torch.device("cpu"))


# ---------------------------------------------------------------------------------------------- whole runs
def torchrun(out: Path, point: str, *extra: str) -> subprocess.CompletedProcess:
    """``tests/tiny_runs.py`` under ``torchrun --nproc_per_node 2`` on 127.0.0.1 (a free port)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "tests")}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
        "--master_port", str(free_port()), str(ROOT / "tests" / "tiny_runs.py"), str(out), point, *extra,
    ]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    (out.parent / f"torchrun-{point}.log").write_text(done.stdout + done.stderr)
    return done


@pytest.fixture(scope="module")
def dp_runs(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("dp")
    runs = {name: base / name / "run" for name in ("first", "second", "killed")}
    first = torchrun(runs["first"], "record_writes")
    assert first.returncode == 0, first.stderr[-3000:]
    second = torchrun(runs["second"], "none")
    assert second.returncode == 0, second.stderr[-3000:]
    # SIGKILL in the second D pre-training round (after the first round's checkpoint), resumed and killed again
    # in update 3 (after update 2's checkpoint), resumed to the end: both checkpoints hold every rank's streams
    for point, extra in (("d_pretrain", ()), ("mid_adversarial", ("--resume",))):
        killed = torchrun(runs["killed"], point, *extra)
        assert killed.returncode != 0 and not (runs["killed"] / "summary.json").exists()
        assert "SIGKILL" in killed.stderr or f"Signal {int(signal.SIGKILL)}" in killed.stderr
    assert (runs["killed"] / "adversarial_checkpoint.pt").exists()
    resumed = torchrun(runs["killed"], "none", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    return runs


def test_a_torchrun_run_is_reproducible_and_resumes_exactly(dp_runs):
    first = outcome(dp_runs["first"])
    assert first == outcome(dp_runs["second"])
    assert first == outcome(dp_runs["killed"])
    summary = json.loads((dp_runs["first"] / "summary.json").read_text())
    config = json.loads((dp_runs["first"] / "config.json").read_text())
    assert summary["world_size"] == 2 and config["runtime"]["world_size"] == 2


def test_rank_0_alone_writes(dp_runs):
    records = [json.loads(p.read_text()) for p in dp_runs["first"].parent.glob("writes-*.json")]
    base = str(dp_runs["first"].parent.resolve())  # (torch and tempfile write elsewhere: /tmp probes)
    by_rank = {r["rank"]: [w for w in r["written"] if w.startswith(base)] for r in records}
    assert sorted(by_rank) == [0, 1]
    assert by_rank[1] == []
    run = str(dp_runs["first"].resolve())
    assert any(w.endswith("metrics.csv") for w in by_rank[0]) and all(w.startswith(run) for w in by_rank[0])


def test_a_data_parallel_run_differs_from_the_plain_one_and_resumes_only_with_its_world_size(dp_runs, tmp_path):
    with pytest.raises(RunFolderError, match="world_size"):  # the plain process would continue other streams
        run_training(tiny_config(), dp_runs["first"], torch.device("cpu"), tiny_task(), resume=True)
    plain = tmp_path / "plain"
    run_training(tiny_config(), plain, torch.device("cpu"), tiny_task())
    assert outcome(plain)["metrics"] != outcome(dp_runs["first"])["metrics"]
