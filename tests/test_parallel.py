"""``utils.parallel_map``: row chunks side by side on torch's threads, and every computation that uses it (sampling,
Monte-Carlo Q, D of completions, NLL) equal bit for bit to its serial loop."""

from __future__ import annotations

import contextlib
import threading

import pytest
import torch
from tiny_runs import load_script

from seqgan_rl.config import DiscriminatorConfig, GeneratorConfig
from seqgan_rl.envs.rollout import mc_q_values, sample_prefix_completions
from seqgan_rl.models.discriminator import Discriminator
from seqgan_rl.models.generator import Generator
from seqgan_rl.utils import parallel_map, worker_threads

V, T = 300, 8


@pytest.fixture
def two_threads():
    torch.set_num_threads(2)  # the autouse fixture restores the suite's count


@pytest.fixture
def serial():
    """``serial()``: from then on every chunk loop runs in order, each op on torch's threads (the code before
    ``parallel_map``; the serial side of ``benchmarks/bench_parallel.py``)."""
    serial_chunks = load_script("bench_parallel", "benchmarks").serial_chunks
    with contextlib.ExitStack() as stack:
        yield lambda: stack.enter_context(serial_chunks())


def test_parallel_map_runs_items_on_worker_threads_in_order(two_threads):
    main = threading.get_ident()
    seen = parallel_map(lambda x: (x * x, threading.get_ident(), torch.get_num_threads()), range(40))
    assert [r for r, _, _ in seen] == [x * x for x in range(40)]
    assert all(ident != main for _, ident, _ in seen)
    assert {n for _, _, n in seen} == {1}  # each worker's ops on one thread
    assert torch.get_num_threads() == 2  # restored


def test_parallel_map_is_serial_with_one_thread_one_item_or_nested(two_threads):
    main = threading.get_ident()
    assert parallel_map(lambda x: threading.get_ident(), [0]) == [main]
    inner = parallel_map(lambda x: parallel_map(lambda y: threading.get_ident(), range(3)), range(2))
    assert all(len(set(idents)) == 1 for idents in inner)  # a worker's own call runs in that worker
    torch.set_num_threads(1)
    assert parallel_map(lambda x: threading.get_ident(), range(5)) == [main] * 5


def test_a_worker_threads_region_spans_several_calls(two_threads):
    with worker_threads():
        assert torch.get_num_threads() == 1  # between the calls too
        first = parallel_map(lambda x: threading.get_ident(), range(6))
        with worker_threads():  # re-entered: the same region
            second = parallel_map(lambda x: threading.get_ident(), range(6))
        assert threading.get_ident() not in first + second
    assert torch.get_num_threads() == 2


def test_parallel_map_raises_the_items_error_and_restores_threads(two_threads):
    def fail(x):
        if x == 3:
            raise ValueError("item 3")
        return x

    with pytest.raises(ValueError, match="item 3"):
        parallel_map(fail, range(8))
    assert torch.get_num_threads() == 2
    assert parallel_map(lambda x: x + 1, range(4)) == [1, 2, 3, 4]  # the region is free again


def test_parallel_map_keeps_the_callers_grad_mode(two_threads):
    w = torch.ones(3, requires_grad=True)
    with torch.no_grad():
        assert not any(parallel_map(lambda x: (w * x).requires_grad, range(4)))
    assert all(parallel_map(lambda x: (w * x).requires_grad, range(4)))


def generator(**overrides) -> Generator:
    torch.manual_seed(0)
    config = dict(vocab_size=V, seq_len=T, embed_dim=16, hidden_dim=16) | overrides
    return Generator(GeneratorConfig(**config)).eval()


def test_sampling_equals_the_serial_loop_bit_for_bit(two_threads, serial):
    g = generator()
    tokens = g.sample(2000, torch.Generator().manual_seed(1))  # 4 batches, side by side
    logits = torch.randn(1500, V, generator=torch.Generator().manual_seed(2))
    draws = g.sample_next(logits, torch.Generator().manual_seed(3), 0.7, num_samples=4)  # 3 chunks
    step, _ = g.sample_step(tokens[:, 0], g.initial_state(2000), torch.Generator().manual_seed(4))
    serial()
    assert torch.equal(tokens, g.sample(2000, torch.Generator().manual_seed(1)))
    assert torch.equal(draws, g.sample_next(logits, torch.Generator().manual_seed(3), 0.7, num_samples=4))
    assert torch.equal(step, g.sample_step(tokens[:, 0], g.initial_state(2000), torch.Generator().manual_seed(4))[0])


def test_text_sampling_equals_the_serial_loop(two_threads, serial):
    g = generator(eos_token=1, pad_token=0)
    tokens = g.sample(1200, torch.Generator().manual_seed(5), batch_size=1200)  # rows leave as they end
    serial()
    assert torch.equal(tokens, g.sample(1200, torch.Generator().manual_seed(5), batch_size=1200))


def test_q_values_and_nll_equal_the_serial_loop_bit_for_bit(two_threads, serial):
    g = generator()
    torch.manual_seed(1)
    d = Discriminator(
        DiscriminatorConfig(vocab_size=V, seq_len=T, embed_dim=8, filter_sizes=(2, 3), num_filters=(8, 8))
    )
    seqs = g.sample(64, torch.Generator().manual_seed(6))
    q = mc_q_values(seqs, g, d, 16, torch.Generator().manual_seed(7))  # 7 x 16 x 64 rollouts: 14 chunks per step
    completions = sample_prefix_completions(g, seqs, 16, torch.Generator().manual_seed(8))
    d_comp = d.prob_real_rollouts(seqs, completions, batch_size=256)[0]  # 7 x 4 chunks
    nll = g.sequence_nll(g.sample(1000, torch.Generator().manual_seed(9)))
    serial()
    assert torch.equal(q, mc_q_values(seqs, g, d, 16, torch.Generator().manual_seed(7)))
    assert torch.equal(d_comp, d.prob_real_rollouts(seqs, completions, batch_size=256)[0])
    assert torch.equal(nll, g.sequence_nll(g.sample(1000, torch.Generator().manual_seed(9))))
