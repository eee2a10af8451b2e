"""BLEU and Self-BLEU equal nltk's sentence_bleu (method1, uniform weights) float for float."""

from __future__ import annotations

import random

import pytest

from seqgan_rl.data.text import coco_files, read_sentences
from seqgan_rl.training.bleu import BleuReferences, bleu, bleu_from_counts, self_bleu, self_bleu_scores


def nltk_bleu(refs, hyp, n):
    bleu_score = pytest.importorskip("nltk.translate.bleu_score")
    weights = tuple(1.0 / n for _ in range(n))
    return bleu_score.sentence_bleu(refs, hyp, weights, smoothing_function=bleu_score.SmoothingFunction().method1)


@pytest.fixture(scope="module")
def coco():
    train, test = coco_files()
    return read_sentences(train).sentences, read_sentences(test).sentences


def test_bleu_equals_nltk_on_coco_sample(coco):
    pytest.importorskip("nltk")
    train, test = coco
    rng = random.Random(0)
    refs = rng.sample(test, 2000)  # a sample keeps nltk's side fast
    hyps = rng.sample(train, 6) + [[], ["a"], ["zzz", "qqq"], train[0][:3], refs[0], refs[1] + refs[1]]
    scorer = BleuReferences(refs)
    for hyp in hyps:
        for n in (2, 3, 4, 5):
            assert scorer.sentence_bleu(hyp, n) == nltk_bleu(refs, hyp, n), (hyp, n)


def test_self_bleu_equals_nltk_leave_one_out(coco):
    pytest.importorskip("nltk")
    rng = random.Random(1)
    sents = rng.sample(coco[0], 40) + [coco[0][7], coco[0][7], ["a"], ["a", "a", "a"]]
    scores = self_bleu_scores(sents, (2, 3, 4, 5))
    for i, s in enumerate(sents):
        others = sents[:i] + sents[i + 1 :]
        for n in (2, 3, 4, 5):
            assert scores[i][n] == nltk_bleu(others, s, n), (i, n)


def test_hand_computed_values():
    # one reference; hypothesis = reference: every precision 1, no brevity penalty
    assert bleu([["a", "b", "c"]], [["a", "b", "c"]], (2, 3)) == {2: 1.0, 3: 1.0}
    # "a b" vs "a b c": p1 = p2 = 1, bp = exp(1 - 3/2)
    assert bleu_from_counts([2, 2], [2, 2], 2, 3) == pytest.approx(0.6065306597)
    # no bigram match -> method1: p2 = 0.1 / 1; BLEU-2 = sqrt(1 * 0.1)
    assert BleuReferences([["a", "b"]]).sentence_bleu(["b", "a"], 2) == pytest.approx(0.1**0.5)
    assert BleuReferences([["a", "b"]]).sentence_bleu(["x", "y"], 2) == 0.0  # no unigram match


def test_duplicates_make_self_bleu_one_and_distinct_sentences_lower():
    same = [["a", "b", "c", "d"]] * 3
    assert self_bleu(same, (2, 3, 4)) == {2: 1.0, 3: 1.0, 4: 1.0}
    varied = [["a", "b", "c", "d"], ["e", "f", "g", "h"], ["a", "f", "c", "h"]]
    assert self_bleu(varied, (2,))[2] < 0.5


def test_bad_input():
    with pytest.raises(ValueError, match="at least one reference"):
        BleuReferences([])
    with pytest.raises(ValueError, match="at least 2"):
        self_bleu([["a"]])
    with pytest.raises(ValueError, match="orders"):
        BleuReferences([["a"]], max_n=3).sentence_bleus(["a"], (4,))
