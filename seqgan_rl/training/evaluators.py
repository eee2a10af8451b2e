"""Evaluators: what a dataset's generator is scored by, for the pre-training and the training loop alike.

- ``OracleEvaluator``: the synthetic benchmark's NLL-oracle (quality, the paper's measure) and NLL-test
  (coverage of held-out oracle samples); the best model is the one with the lowest NLL-oracle.
- ``TextEvaluator``: the text benchmarks' BLEU-2..5 against the whole test set, Self-BLEU-2..4 of the
  generated sentences (leave-one-out) and NLL-test; no model selection on the test set.

Each evaluation draws its samples from a stream derived from the run seed, the phase and the step
(``streams``), so evaluating never changes the training's random numbers and a resumed run evaluates on
the same samples as a straight one.
"""

from __future__ import annotations

import torch

from seqgan_rl import distributed
from seqgan_rl.data.text import Vocabulary
from seqgan_rl.models.generator import Generator
from seqgan_rl.models.oracle import OracleLSTM
from seqgan_rl.training.bleu import BleuReferences, self_bleu
from seqgan_rl.training.metrics import evaluate, sample_in_eval_mode, sharded_nll
from seqgan_rl.utils import check_finite, check_nll

BLEU_ORDERS = (2, 3, 4, 5)
SELF_BLEU_ORDERS = (2, 3, 4)
_BLEU_KEYS = (*(f"eval/bleu{n}" for n in BLEU_ORDERS), *(f"eval/self_bleu{n}" for n in SELF_BLEU_ORDERS))


class Evaluator:
    """Scores a generator. Subclasses set the class attributes and implement ``evaluate``.

    Attributes:
        fields: the ``eval/...`` keys ``evaluate`` returns (columns of ``metrics.csv``).
        report: the keys a summary table shows.
        select_key: lower is better on this key, and the best model is kept by it; ``None``: no model
            selection (the latest evaluation is the result).
        streams: the seed label of each phase's evaluation stream (``"mle"``, ``"adversarial"``).
        curves: the two keys ``curves.png`` plots.
    """

    fields: tuple[str, ...] = ()
    report: tuple[str, ...] = ()
    curves: tuple[str, str] = ("eval/nll_oracle", "eval/nll_test")
    select_key: str | None = None
    streams: dict[str, str] = {}

    def evaluate(
        self, generator: Generator, rng: torch.Generator | None = None, temperature: float = 1.0
    ) -> dict[str, float]:
        raise NotImplementedError

    def checked(
        self, generator: Generator, rng: torch.Generator | None = None, temperature: float = 1.0
    ) -> dict[str, float]:
        """``evaluate``, every metric checked: finite, and no NLL beyond ``DIVERGED_NLL`` (``NonFiniteError``)."""
        metrics = self.evaluate(generator, rng, temperature)
        for key, value in metrics.items():
            (check_nll if "nll" in key else check_finite)(key, value)
        return metrics

    def postfix(self, metrics: dict[str, float], best: dict[str, float] | None = None) -> dict[str, str]:
        """A few values for a progress bar."""
        out = {k.split("/")[-1]: f"{metrics[k]:.3f}" for k in self.report[:2] if k in metrics}
        if best is not None and self.select_key is not None:
            out["best"] = f"{best[self.select_key]:.3f}"
        return out


class OracleEvaluator(Evaluator):
    """NLL-oracle of ``num_samples`` generator samples and NLL-test on held-out oracle samples."""

    fields = ("eval/nll_oracle", "eval/nll_test")
    report = fields
    select_key = "eval/nll_oracle"
    streams = {"mle": "eval", "adversarial": "adv-eval"}  # the labels every committed result was drawn with

    def __init__(self, oracle: OracleLSTM, test_tokens: torch.Tensor, num_samples: int = 9984) -> None:
        self.oracle, self.test_tokens, self.num_samples = oracle, test_tokens, num_samples

    def evaluate(
        self, generator: Generator, rng: torch.Generator | None = None, temperature: float = 1.0
    ) -> dict[str, float]:
        return evaluate(generator, self.oracle, self.test_tokens, self.num_samples, rng, temperature)


class WithValidation(Evaluator):
    """Another evaluator's metrics plus ``eval/nll_valid``: G's NLL on the validation sequences held out of the
    training data (``MLEConfig.num_valid``), a criterion for choosing models that never looks at the test set."""

    def __init__(self, evaluator: Evaluator, valid_tokens: torch.Tensor) -> None:
        self.inner, self.valid_tokens = evaluator, valid_tokens
        self.fields = (*evaluator.fields, "eval/nll_valid")
        self.report, self.curves, self.select_key = evaluator.report, evaluator.curves, evaluator.select_key
        self.streams = evaluator.streams

    def validation_nll(self, generator: Generator, temperature: float = 1.0) -> float:
        valid = self.valid_tokens[distributed.shard(self.valid_tokens.shape[0])]
        return sharded_nll(generator, valid, temperature)

    def evaluate(
        self, generator: Generator, rng: torch.Generator | None = None, temperature: float = 1.0
    ) -> dict[str, float]:
        return {
            **self.inner.evaluate(generator, rng, temperature),
            "eval/nll_valid": self.validation_nll(generator, temperature),
        }

    def postfix(self, metrics: dict[str, float], best: dict[str, float] | None = None) -> dict[str, str]:
        return self.inner.postfix(metrics, best)


class TextEvaluator(Evaluator):
    """BLEU-2..5 and Self-BLEU-2..4 of ``num_samples`` generated sentences, NLL-test, mean length."""

    fields = ("eval/nll_test", *_BLEU_KEYS, "eval/mean_len")
    report = (*_BLEU_KEYS, "eval/nll_test")
    streams = {"mle": "text-eval-mle", "adversarial": "text-eval"}
    curves = ("eval/bleu3", "eval/nll_test")

    def __init__(
        self, vocab: Vocabulary, references: BleuReferences, test_tokens: torch.Tensor, num_samples: int = 1000
    ) -> None:
        self.check_samples(num_samples)
        self.vocab, self.references, self.test_tokens, self.num_samples = vocab, references, test_tokens, num_samples

    @staticmethod
    def check_samples(num_samples: int) -> None:
        if num_samples < 2:
            raise ValueError(f"text evaluation needs >= 2 samples (Self-BLEU compares them), got {num_samples}")

    def evaluate(
        self, generator: Generator, rng: torch.Generator | None = None, temperature: float = 1.0
    ) -> dict[str, float]:
        if not distributed.enabled():
            sents = generate_sentences(generator, self.vocab, self.num_samples, rng, temperature)
            return {"eval/nll_test": generator.nll(self.test_tokens, temperature), **self._scores(sents)}
        # under torchrun: each rank samples its share, rank 0 scores them all, NLL-test is sharded
        local = sample_in_eval_mode(generator, distributed.local_share(self.num_samples), rng, temperature)
        tokens = distributed.gather_rows(local).cpu()
        scores = distributed.on_main(lambda: self._scores(self.vocab.decode_batch(tokens)))
        test = self.test_tokens[distributed.shard(self.test_tokens.shape[0])]
        return {"eval/nll_test": sharded_nll(generator, test, temperature), **scores}

    def _scores(self, sents: list[list[str]]) -> dict[str, float]:
        bleu = self.references.corpus_scores(sents, BLEU_ORDERS)
        sb = self_bleu(sents, SELF_BLEU_ORDERS)
        return {
            **{f"eval/bleu{n}": s for n, s in bleu.items()},
            **{f"eval/self_bleu{n}": s for n, s in sb.items()},
            "eval/mean_len": sum(map(len, sents)) / len(sents),
        }

    def postfix(self, metrics: dict[str, float], best: dict[str, float] | None = None) -> dict[str, str]:
        return {"bleu3": f"{metrics['eval/bleu3']:.3f}", "nll_test": f"{metrics['eval/nll_test']:.3f}"}


def generate_sentences(
    generator: Generator, vocab: Vocabulary, num: int, rng: torch.Generator | None = None, temperature: float = 1.0
) -> list[list[str]]:
    """``num`` sampled sentences, decoded to words (up to their end token)."""
    return vocab.decode_batch(sample_in_eval_mode(generator, num, rng, temperature).cpu())
