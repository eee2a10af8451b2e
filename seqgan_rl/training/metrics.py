"""The benchmark's metrics: NLL-oracle (quality, as the paper measures it) and NLL-test (coverage).

NLL-oracle rewards mode collapse (a greedy oracle decode scores 2.76, below the oracle's own 5.75), so
it is always reported next to NLL-test, the generator's per-token NLL on held-out oracle samples.
"""

from __future__ import annotations

import torch

from seqgan_rl import distributed
from seqgan_rl.models.generator import Generator
from seqgan_rl.models.oracle import OracleLSTM
from seqgan_rl.utils import eval_mode, valid_mask


@torch.no_grad()
def nll_oracle(
    generator: Generator, oracle: OracleLSTM, num_samples: int = 9984, rng: torch.Generator | None = None,
    temperature: float = 1.0,
) -> float:  # fmt: skip
    """E_{Y~G}[-log p_oracle(Y)] as a per-token mean in nats over ``num_samples`` generator samples
    (the reference: 9,984 = 156 x 64, mean over all tokens), with G sampled at ``temperature``."""
    return oracle.nll(sample_in_eval_mode(generator, num_samples, rng, temperature).to(oracle.device))


@torch.no_grad()
def sample_in_eval_mode(
    generator: Generator, num: int, rng: torch.Generator | None = None, temperature: float = 1.0
) -> torch.Tensor:
    """``generator.sample`` in eval mode, the generator's mode restored afterwards."""
    with eval_mode(generator):
        return generator.sample(num, rng, temperature=temperature)


@torch.no_grad()
def nll_test(generator: Generator, test_tokens: torch.Tensor, temperature: float = 1.0) -> float:
    """G's per-token NLL in nats on held-out oracle samples (lower = covers the data better)."""
    return generator.nll(test_tokens, temperature=temperature)


def evaluate(
    generator: Generator, oracle: OracleLSTM, test_tokens: torch.Tensor, num_samples: int = 9984,
    rng: torch.Generator | None = None, temperature: float = 1.0,
) -> dict[str, float]:  # fmt: skip
    """Both metrics under the ``eval/`` namespace. Under torchrun each rank samples its share of
    ``num_samples`` (from its own ``rng``) and scores its shard of the test set; the sums are reduced."""
    if distributed.enabled():
        samples = sample_in_eval_mode(generator, distributed.local_share(num_samples), rng, temperature)
        test = test_tokens[distributed.shard(test_tokens.shape[0])]
        return {
            "eval/nll_oracle": sharded_nll(oracle, samples.to(oracle.device)),
            "eval/nll_test": sharded_nll(generator, test, temperature),
        }
    return {
        "eval/nll_oracle": nll_oracle(generator, oracle, num_samples, rng, temperature),
        "eval/nll_test": nll_test(generator, test_tokens, temperature),
    }


@torch.no_grad()
def sharded_nll(model: Generator, tokens: torch.Tensor, temperature: float = 1.0) -> float:
    """``model.nll`` of the union of every rank's ``tokens`` (this rank's share): per-token NLL sums and
    token counts reduced over the ranks (``model.nll(tokens)`` itself in a plain process)."""
    if not distributed.enabled():
        return model.nll(tokens, temperature)
    per_seq = model.sequence_nll(tokens, temperature)  # (b,) per-token means
    eos = model.config.eos_token
    if eos is None:
        lengths = torch.full_like(per_seq, tokens.shape[1])
    else:
        lengths = valid_mask(tokens, eos).sum(dim=1).to(per_seq)
    return distributed.mean((per_seq * lengths).sum(), lengths.sum())
