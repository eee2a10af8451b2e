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

from seqgan_rl.cli import SEED, TEMPERATURE, Parser, check_sample_fits, count, threads
from seqgan_rl.training.evaluators import generate_sentences
from seqgan_rl.training.run_folder import load_generator
from seqgan_rl.utils import atomic_write_text, get_device, make_rng


def build_parser() -> Parser:
    """Every option of this script (the tests try each with bad values)."""
    p = Parser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("checkpoint", help="a text generator checkpoint (generator_final.pt)")
    p.add_argument("-n", "--num", type=count(0), default=10, help="sentences to write (default 10)")
    p.add_argument("--out", default=None, help="output file (default: stdout); its folder must exist")
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--temperature", type=TEMPERATURE, default=1.0)
    p.add_argument("--device", default="cpu", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--threads", type=threads(), default=None, help="torch CPU threads")
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help (0), or a bad option: argparse printed one line (2)
        return int(exc.code or 0)
    try:
        out = None if args.out is None else check_output_file(args.out)
        device = get_device(args.device)
        generator, vocab = load_generator(args.checkpoint, device)
        if vocab is None:
            raise ValueError(f"{args.checkpoint} is not a text generator checkpoint (it has no vocabulary)")
        check_sample_fits(args.num, generator.seq_len)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    sents = generate_sentences(generator, vocab, args.num, make_rng(args.seed, device), args.temperature)
    text = "".join(" ".join(s) + "\n" for s in sents)
    if out is None:
        sys.stdout.write(text)
        return 0
    try:
        atomic_write_text(text, out)
    except OSError as exc:  # the folder vanished or turned read-only meanwhile
        print(f"error: cannot write --out {out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    return 0


def check_output_file(path: str) -> Path:
    """``--out`` as a path to write, refused (``ValueError``) when it is a folder or its folder does not exist."""
    out = Path(path)
    if out.is_dir():
        raise ValueError(f"--out {path} is a folder: give a file name in it, e.g. {out / 'samples.txt'}")
    if not out.parent.is_dir():
        raise ValueError(f"--out {path}: the folder {out.parent} does not exist (create it first, or choose another)")
    return out


if __name__ == "__main__":
    sys.exit(main())
