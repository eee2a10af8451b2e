#!/usr/bin/env python
"""MLE vs. SeqGAN on Image COCO captions: BLEU-2..5, Self-BLEU-2..4, NLL-test, several seeds.

    python benchmarks/coco_results.py --seeds 0 1 2 --threads 1
    python benchmarks/coco_results.py --seeds 0 1 2 --threads 1 --generator transformer --tokenizer bpe:2000

``--generator transformer`` (with ``--num-layers``, ``--hidden-dim``, ``--num-heads``; the ``hf`` extra) trains a
GPT-2-style G from scratch instead of the LSTM; ``--tokenizer bpe:SIZE`` tokenizes with a BPE tokenizer trained on
the training captions (BLEU stays on words; NLL-test is then per subword token, not comparable with the word rows).
Their run folders are ``runs/coco-<tag>-seed<seed>``, the tag naming the generator and tokenizer.
``--algos ROW ...`` adds leaderboard rows (``scripts/compare_algos.py``'s names, e.g. ``coldgan@lr=0.0003``): each
runs its adversarial phase from the same seed's pre-training, in ``runs/coco-<tag>-<ROW>-seed<seed>``.

For each seed it runs the ``text`` preset (``seqgan_rl.presets.train_preset("text", ...)``: MLE, D
pre-training, SeqGAN updates) in ``runs/coco-text-seed<seed>`` (a finished seed is reused), and scores the
MLE generator (after pre-training) and the SeqGAN generator (after the last update) on the same protocol:
1,000 sampled sentences, BLEU-n against all 10,000 test captions (nltk sentence_bleu, method1, uniform
weights, averaged), Self-BLEU-n leave-one-out among the 1,000, NLL-test per token (``<eos>`` included).
Writes ``<out>.md`` and ``.csv`` (rewritten after every seed; default ``runs/coco_seqgan``, the committed
tables: ``--out benchmarks/results/coco_seqgan``) next to Texygen's published table.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from pathlib import Path

import torch

from seqgan_rl.data.text import COCO, load_text_dataset
from seqgan_rl.presets import train_preset, with_options
from seqgan_rl.training.bleu import BleuReferences
from seqgan_rl.training.compare import algo_run
from seqgan_rl.training.evaluators import TextEvaluator
from seqgan_rl.training.pipeline import run_training
from seqgan_rl.training.run_folder import load_generator, read_json_file
from seqgan_rl.training.tasks import TextTask
from seqgan_rl.utils import derive_seed, keep_freed_memory, make_rng

KEYS = ["eval/bleu2", "eval/bleu3", "eval/bleu4", "eval/bleu5", "eval/self_bleu2", "eval/self_bleu3",
        "eval/self_bleu4", "eval/nll_test", "eval/mean_len"]  # fmt: skip
LABELS = [
    "BLEU-2",
    "BLEU-3",
    "BLEU-4",
    "BLEU-5",
    "Self-BLEU-2",
    "Self-BLEU-3",
    "Self-BLEU-4",
    "NLL-test",
    "mean length",
]
TEXYGEN = {  # REFERENCE.md section 6 (Texygen's published COCO table)
    "SeqGAN": [0.745, 0.498, 0.294, 0.180, 0.950, 0.840, 0.670, None, None],
    "MLE": [0.731, 0.497, 0.305, 0.189, 0.916, 0.769, 0.583, None, None],
}
TARGETS = {"eval/bleu2": (">=", 0.745), "eval/bleu3": (">=", 0.498), "eval/self_bleu2": ("<=", 0.95)}


def fmt(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def write_results(rows: list[dict], out: Path, command: str, generator: str = "the LSTM") -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.with_suffix(".csv").open("w", newline="") as f:
        w = csv.DictWriter(f, ["seed", "model", *KEYS, "wall_s"])
        w.writeheader()
        w.writerows(rows)
    seeds = sorted({r["seed"] for r in rows})
    models = list(dict.fromkeys(r["model"] for r in rows))  # in first-seen order
    by = {m: [r for r in rows if r["model"] == m] for m in models}
    lines = [
        f"# MLE vs. SeqGAN on Image COCO captions (this package, `text` preset, {generator}, CPU)",
        "",
        f"Command: `{command}` (one thread per seed; wall times depend on what else ran on the machine).",
        f"Seeds: {', '.join(map(str, seeds))}. Each metric: mean ± std over seeds. 1,000 sampled sentences per model;",
        "BLEU-n against all 10,000 test captions (nltk `sentence_bleu`, method1, uniform weights, averaged; computed",
        "by `seqgan_rl.training.bleu`, equal to nltk float for float); Self-BLEU-n leave-one-out among the 1,000",
        "(Texygen's published protocol differs, so its Self-BLEU is not directly comparable); NLL-test in nats per",
        'token with `<eos>` counted. MLE = the generator after pre-training (15 epochs); "MLE, resampled" = the',
        "same generator scored again on another 1,000 samples (the adversarial phase's evaluation before its first",
        "update: how much the figures move with the sample alone); SeqGAN = after the last of 20 updates (no model",
        'selection on the test set). "MLE τ=x": the MLE generator sampled at temperature x (the control every',
        "quality gain must beat: sharpening alone; NLL-test is then computed at that temperature too).",
        "",
        "| metric | " + " | ".join(models) + " | Texygen MLE | Texygen SeqGAN |",
        "|---" * (len(models) + 3) + "|",
    ]
    for i, (key, label) in enumerate(zip(KEYS, LABELS, strict=True)):
        cells = [fmt([float(r[key]) for r in by[m]]) for m in models]
        tex = [TEXYGEN[m][i] for m in ("MLE", "SeqGAN")]
        lines.append(
            f"| {label} | "
            + " | ".join(cells)
            + " | "
            + " | ".join("–" if v is None else f"{v:.3f}" for v in tex)
            + " |"
        )
    lines += [
        "",
        "Per seed:",
        "",
        "| seed | model | " + " | ".join(LABELS) + " | wall s |",
        "|---" * (len(LABELS) + 3) + "|",
    ]
    for r in rows:
        lines.append(
            f"| {r['seed']} | {r['model']} | " + " | ".join(f"{float(r[k]):.3f}" for k in KEYS) + f" | {r['wall_s']} |"
        )
    lines += [
        "",
        "wall s: MLE = pre-training (MLE, its evaluations, D pre-training); SeqGAN = that + the adversarial phase.",
    ]
    others = [m for m in models if m not in ("MLE", "MLE, resampled", "SeqGAN") and not m.startswith("MLE τ")]
    if others:
        lines.append(
            f"Other rows ({', '.join(others)}; `scripts/compare_algos.py`'s names): the adversarial phase of that"
            " algorithm from the same seed's pre-training, as many updates as SeqGAN; wall s as SeqGAN's."
        )
    if by["SeqGAN"]:
        lines += [
            "",
            "Targets (the issue: Texygen's SeqGAN BLEU-2/3 with Self-BLEU-2 <= 0.95), SeqGAN mean over seeds:",
            "",
        ]
        for key, (op, target) in TARGETS.items():
            mean = statistics.mean(float(r[key]) for r in by["SeqGAN"])
            ok = mean >= target if op == ">=" else mean <= target
            gap = "" if ok else f" (short by {abs(mean - target):.3f})"
            lines.append(f"- {LABELS[KEYS.index(key)]} {op} {target}: {mean:.3f}, {'met' if ok else 'not met'}{gap}")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", default="runs", help="folder of the per-seed run folders")
    p.add_argument("--out", default="runs/coco_seqgan", help="results path without extension")
    p.add_argument(
        "--temperatures", type=float, nargs="+", default=[0.9, 0.8], help="MLE temperature controls (default 0.9 0.8)"
    )
    p.add_argument("--no-temperatures", action="store_true", help="leave the MLE temperature controls out")
    p.add_argument("--generator", choices=["lstm", "transformer"], default="lstm")
    p.add_argument("--num-layers", type=int, default=2, help="--generator transformer: layers")
    p.add_argument("--hidden-dim", type=int, default=128, help="--generator transformer: width")
    p.add_argument("--num-heads", type=int, default=4, help="--generator transformer: attention heads")
    p.add_argument("--tokenizer", default=None, metavar="bpe:SIZE", help="default: the word vocabulary")
    p.add_argument(
        "--algos", nargs="*", default=[], metavar="ROW",
        help="more rows beside SeqGAN (compare_algos.py's names, e.g. coldgan@lr=0.0003), from the same pre-training",
    )  # fmt: skip
    args = p.parse_args(argv)
    keep_freed_memory()
    torch.set_num_threads(args.threads)
    command = "python benchmarks/coco_results.py " + " ".join(argv if argv is not None else sys.argv[1:])
    ds = load_text_dataset(COCO, tokenizer=args.tokenizer)
    task = TextTask(ds)
    for row in args.algos:
        try:
            algo_run(row, train_preset("text", **task.dims()))  # a bad row fails here, before any training
        except ValueError as exc:
            p.error(f"--algos: {exc}")
    tag, options = "text", {}
    if args.generator == "transformer":
        options = {"generator": "transformer", "num_layers": args.num_layers, "hidden_dim": args.hidden_dim,
                   "num_heads": args.num_heads}  # fmt: skip
        tag = f"transformer-l{args.num_layers}-w{args.hidden_dim}"
    if args.tokenizer is not None:
        tag += "-" + args.tokenizer.replace(":", "")
    described = "the LSTM" if args.generator == "lstm" else f"a GPT-2 of {args.num_layers} x {args.hidden_dim}"
    described += f", tokenizer {args.tokenizer}" if args.tokenizer else ", the word vocabulary"
    rows: list[dict] = []
    for seed in args.seeds:
        run = Path(args.runs) / f"coco-{tag}-seed{seed}"
        t0 = time.perf_counter()
        config = with_options(train_preset("text", seed=seed, **task.dims()), **options)
        if (run / "summary.json").exists():
            summary = read_json_file(run / "summary.json")
        else:
            summary = run_training(config, run, torch.device("cpu"), task, resume=run.exists()).summary
        print(f"seed {seed}: {time.perf_counter() - t0:.0f} s", flush=True)
        wall = round(summary["pretrain_wall_s"] + summary["adversarial_wall_s"])
        rows.append(
            {"seed": seed, "model": "MLE", **{k: summary["mle"][k] for k in KEYS}, "wall_s": summary["pretrain_wall_s"]}
        )
        rows.append({"seed": seed, "model": "MLE, resampled", **{k: summary["start"][k] for k in KEYS}, "wall_s": ""})
        rows.append({"seed": seed, "model": "SeqGAN", **{k: summary["final"][k] for k in KEYS}, "wall_s": wall})
        for row in args.algos:
            other = Path(args.runs) / f"coco-{tag}-{row}-seed{seed}"
            if (other / "summary.json").exists():
                result = read_json_file(other / "summary.json")
            else:
                result = run_training(
                    algo_run(row, config), other, torch.device("cpu"), task, resume=other.exists(),
                    pretrain_dir=run / "pretrain",
                ).summary  # fmt: skip
            wall = round(summary["pretrain_wall_s"] + result["adversarial_wall_s"])
            rows.append({"seed": seed, "model": row, **{k: result["final"][k] for k in KEYS}, "wall_s": wall})
        write_results(rows, Path(args.out), command, described)
    if not args.no_temperatures:
        evaluator = TextEvaluator(ds.vocab, BleuReferences(ds.test_sentences), ds.test, 1000)
        for seed in args.seeds:
            gen, _ = load_generator(Path(args.runs) / f"coco-{tag}-seed{seed}" / "pretrain" / "generator_mle.pt")
            for tau in args.temperatures:
                rng = make_rng(derive_seed(seed, "temperature-control", int(round(tau * 1000))))
                m = evaluator.evaluate(gen, rng, temperature=tau)
                rows.append({"seed": seed, "model": f"MLE τ={tau}", **{k: m[k] for k in KEYS}, "wall_s": ""})
        rows.sort(key=lambda r: r["seed"])
        write_results(rows, Path(args.out), command, described)
    print(Path(args.out).with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
