#!/usr/bin/env python
"""Speed of BLEU-2..5 and Self-BLEU-2..4 on COCO: 1,000 hypotheses against the 10,000 test captions.

    python benchmarks/bench_bleu.py                 # ours, plus nltk on --nltk-hyps hypotheses, extrapolated
    python benchmarks/bench_bleu.py --nltk-hyps 0   # ours only

The hypotheses are 1,000 training captions drawn with a fixed seed (stand-ins for generated text; the cost
does not depend on where they come from). Scores are checked equal to nltk's on the hypotheses nltk scored.
"""

from __future__ import annotations

import argparse
import random
import sys
import time

from seqgan_rl.data.text import coco_files, read_sentences
from seqgan_rl.training.bleu import BleuReferences, self_bleu

ORDERS = (2, 3, 4, 5)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hyps", type=int, default=1000)
    p.add_argument("--nltk-hyps", type=int, default=5, help="hypotheses nltk scores (extrapolated to --hyps)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    train_path, test_path = coco_files()
    train, refs = read_sentences(train_path).sentences, read_sentences(test_path).sentences
    hyps = random.Random(args.seed).sample(train, args.hyps)

    t0 = time.perf_counter()
    scorer = BleuReferences(refs, max(ORDERS))
    t1 = time.perf_counter()
    scores = scorer.corpus_scores(hyps, ORDERS)
    t2 = time.perf_counter()
    sb = self_bleu(hyps, (2, 3, 4))
    t3 = time.perf_counter()
    print(f"{len(hyps)} hypotheses x {len(refs)} references, BLEU-{ORDERS[0]}..{ORDERS[-1]}")
    print(f"  ours: prepare references {t1 - t0:.3f} s + score {t2 - t1:.3f} s = {t2 - t0:.3f} s")
    print("  BLEU  " + "  ".join(f"{n}: {s:.4f}" for n, s in scores.items()))
    print(
        f"  Self-BLEU-2..4 of the {len(hyps)} (leave-one-out): {t3 - t2:.3f} s; "
        + "  ".join(f"{n}: {s:.4f}" for n, s in sb.items())
    )
    if args.nltk_hyps:
        from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

        sm = SmoothingFunction().method1
        sample = hyps[: args.nltk_hyps]
        t4 = time.perf_counter()
        equal = all(
            sentence_bleu(refs, h, tuple(1.0 / n for _ in range(n)), smoothing_function=sm)
            == scorer.sentence_bleu(h, n)
            for h in sample
            for n in ORDERS
        )
        t5 = time.perf_counter()
        est = (t5 - t4) / len(sample) * len(hyps)
        print(
            f"  nltk sentence_bleu: {t5 - t4:.2f} s for {len(sample)} hypotheses x 4 orders -> "
            f"~{est:.0f} s for {len(hyps)} (x{est / (t2 - t0):.0f}); equal to ours: {equal}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
