#!/usr/bin/env python
"""Write N sentences sampled from a trained text generator, one per line.

    python scripts/sample.py runs/coco-text-seed0/generator_final.pt -n 20           # to stdout
    python scripts/sample.py runs/x/generator_final.pt -n 1000 --out samples.txt --seed 1 --temperature 0.8

The checkpoint is a text run's ``generator_final.pt`` (or ``pretrain/generator_mle.pt``): weights, config and
vocabulary (an oracle run's checkpoints have no words to print). Sentences are decoded up to their end token
and joined with spaces (tokenized text, as BLEU sees it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from seqgan_rl.training.evaluators import generate_sentences
from seqgan_rl.training.run_folder import load_generator
from seqgan_rl.utils import check_temperature, get_device, make_rng


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("checkpoint", help="a text generator checkpoint (generator_final.pt)")
    p.add_argument("-n", "--num", type=int, default=10, help="sentences to write (default 10)")
    p.add_argument("--out", default=None, help="output file (default: stdout)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--device", default="cpu", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = p.parse_args(argv)
    try:
        if args.num < 0:
            raise ValueError(f"--num must be >= 0, got {args.num}")
        check_temperature(args.temperature, "--temperature")
        device = get_device(args.device)
        generator, vocab = load_generator(args.checkpoint, device)
        if vocab is None:
            raise ValueError(f"{args.checkpoint} is not a text generator checkpoint (it has no vocabulary)")
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    sents = generate_sentences(generator, vocab, args.num, make_rng(args.seed, device), args.temperature)
    text = "".join(" ".join(s) + "\n" for s in sents)
    if args.out is None:
        sys.stdout.write(text)
    else:
        Path(args.out).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
