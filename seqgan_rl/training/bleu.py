"""BLEU and Self-BLEU as the text-GAN benchmarks compute them, exactly and fast.

The benchmarks (Texygen, RelGAN, TextGAN-PyTorch) score each generated sentence with nltk's

    sentence_bleu(references, hypothesis, weights=(1/n,) * n, smoothing_function=SmoothingFunction().method1)

against the *whole* test set and average. nltk recomputes every reference's n-gram counts for every
hypothesis (hours for 1,000 hypotheses x 10,000 references). The score only needs, per n-gram, its largest
count over all references (clipping) and the reference lengths (the brevity penalty takes the closest
one, the shorter on a tie), so ``BleuReferences`` computes those once; each hypothesis then costs a few
dictionary look-ups. The arithmetic is nltk's, in its order (unnormalised precisions n/d, method1's
``0.1 / d`` for a zero count, ``bp * exp(fsum(w_i * log p_i))``, 0 when no unigram matches), so the
scores are equal to nltk's float for float (``tests/test_bleu.py``).

**Self-BLEU** (diversity; lower = more diverse): each of the N generated sentences is scored against the
other N - 1 (leave-one-out; what Texygen's ``SelfBleu`` intends; TextGAN-PyTorch instead scores 200 fresh
samples against 10,000 others, and published numbers differ by protocol). Exclusion is exact: per n-gram
the largest and second-largest counts over sentences (and how many sentences hold the largest) give the
largest count over the others.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence

EPSILON = 0.1
"""``SmoothingFunction().method1``'s epsilon: a zero n-gram count becomes ``0.1 / denominator``."""

Sentence = Sequence[str]


def ngram_counts(tokens: Sentence, n: int) -> Counter:
    """Counts of the n-grams (tuples) of ``tokens``; empty when shorter than ``n``."""
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def bleu_from_counts(matches: Sequence[int], totals: Sequence[int], hyp_len: int, ref_len: int) -> float:
    """BLEU-n (n = ``len(matches)``) of one hypothesis from its clipped n-gram matches and n-gram totals,
    with nltk's uniform weights, method1 smoothing and brevity penalty against ``ref_len``."""
    if matches[0] == 0:
        return 0.0
    weight = 1.0 / len(matches)
    bp = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    logs = [weight * math.log((m or EPSILON) / max(1, t)) for m, t in zip(matches, totals, strict=True)]
    return bp * math.exp(math.fsum(logs))


def closest_length(lengths: Iterable[int], hyp_len: int) -> int:
    """The reference length closest to ``hyp_len``, the shorter one on a tie (nltk's ``closest_ref_length``)."""
    return min(lengths, key=lambda r: (abs(r - hyp_len), r))


class BleuReferences:
    """A reference set prepared once: per n-gram order, each n-gram's largest count over all references.

    Args:
        references: tokenized reference sentences (the test set); at least one.
        max_n: the highest n-gram order that will be asked for.
    """

    def __init__(self, references: Sequence[Sentence], max_n: int = 5) -> None:
        if not references:
            raise ValueError("BLEU needs at least one reference sentence")
        if max_n < 1:
            raise ValueError(f"max_n must be >= 1, got {max_n}")
        self.max_n = max_n
        self.max_counts: list[dict[tuple[str, ...], int]] = []
        for n in range(1, max_n + 1):
            best: dict[tuple[str, ...], int] = {}
            for ref in references:
                for g, c in ngram_counts(ref, n).items():
                    if c > best.get(g, 0):
                        best[g] = c
            self.max_counts.append(best)
        self.lengths = sorted(set(len(r) for r in references))
        self.num_references = len(references)

    def sentence_bleu(self, hypothesis: Sentence, n: int) -> float:
        """Equal to nltk ``sentence_bleu(references, hypothesis, (1/n,)*n, smoothing_function=method1)``."""
        return self.sentence_bleus(hypothesis, (n,))[n]

    def sentence_bleus(self, hypothesis: Sentence, orders: Sequence[int]) -> dict[int, float]:
        """BLEU-n of one hypothesis for every n in ``orders`` (the precisions are computed once)."""
        top = max(orders)
        if top > self.max_n or min(orders) < 1:
            raise ValueError(f"orders must be in 1..{self.max_n} (max_n of these references), got {tuple(orders)}")
        matches, totals = [], []
        for n in range(1, top + 1):
            counts = ngram_counts(hypothesis, n)
            best = self.max_counts[n - 1]
            matches.append(sum(min(c, best.get(g, 0)) for g, c in counts.items()))
            totals.append(sum(counts.values()))
        ref_len = closest_length(self.lengths, len(hypothesis))
        return {n: bleu_from_counts(matches[:n], totals[:n], len(hypothesis), ref_len) for n in orders}

    def corpus_scores(self, hypotheses: Sequence[Sentence], orders: Sequence[int] = (2, 3, 4, 5)) -> dict[int, float]:
        """The benchmarks' BLEU: the mean over ``hypotheses`` of each one's sentence BLEU-n."""
        if not hypotheses:
            raise ValueError("BLEU needs at least one hypothesis")
        sums = dict.fromkeys(orders, 0.0)
        for hyp in hypotheses:
            for n, s in self.sentence_bleus(hyp, orders).items():
                sums[n] += s
        return {n: sums[n] / len(hypotheses) for n in orders}


def bleu(
    hypotheses: Sequence[Sentence], references: Sequence[Sentence], orders: Sequence[int] = (2, 3, 4, 5)
) -> dict[int, float]:
    """Mean sentence BLEU-n of ``hypotheses``, each against all of ``references`` (see the module doc)."""
    return BleuReferences(references, max(orders)).corpus_scores(hypotheses, orders)


def self_bleu_scores(sentences: Sequence[Sentence], orders: Sequence[int] = (2, 3, 4)) -> list[dict[int, float]]:
    """Per sentence, its BLEU-n against the other sentences (leave-one-out); equal to nltk's
    ``sentence_bleu(sentences[:i] + sentences[i+1:], sentences[i], ...)`` for each i."""
    if len(sentences) < 2:
        raise ValueError(f"Self-BLEU needs at least 2 sentences, got {len(sentences)}")
    top = max(orders)
    per_sentence = [[ngram_counts(s, n) for n in range(1, top + 1)] for s in sentences]  # [i][n-1]
    # per order: n-gram -> (largest count, how many sentences hold it, second-largest count)
    stats: list[dict[tuple[str, ...], list[int]]] = []
    for k in range(top):
        table: dict[tuple[str, ...], list[int]] = {}
        for counts in per_sentence:
            for g, c in counts[k].items():
                e = table.get(g)
                if e is None:
                    table[g] = [c, 1, 0]
                elif c > e[0]:
                    e[2], e[0], e[1] = e[0], c, 1
                elif c == e[0]:
                    e[1] += 1
                elif c > e[2]:
                    e[2] = c
        stats.append(table)
    length_counts = Counter(len(s) for s in sentences)
    out = []
    for s, counts in zip(sentences, per_sentence, strict=True):
        matches, totals = [], []
        for k in range(top):
            table = stats[k]
            m = 0
            for g, c in counts[k].items():
                big, holders, second = table[g]
                other = second if (c == big and holders == 1) else big
                m += min(c, other)
            matches.append(m)
            totals.append(sum(counts[k].values()))
        own = len(s)
        others = [length for length, k in length_counts.items() if k > (1 if length == own else 0)]
        ref_len = closest_length(others, own)
        out.append({n: bleu_from_counts(matches[:n], totals[:n], own, ref_len) for n in orders})
    return out


def self_bleu(sentences: Sequence[Sentence], orders: Sequence[int] = (2, 3, 4)) -> dict[int, float]:
    """Mean leave-one-out Self-BLEU-n over ``sentences`` (lower = more diverse)."""
    scores = self_bleu_scores(sentences, orders)
    return {n: sum(s[n] for s in scores) / len(scores) for n in orders}
