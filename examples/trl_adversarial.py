#!/usr/bin/env python
"""SeqGAN's adversarial reward inside TRL: GRPOTrainer and RLOOTrainer train a causal LM against a discriminator
that a callback retrains on the trainer's own completions.

    python examples/trl_adversarial.py                 # COCO captions, a BPE tokenizer, a GPT-2 of 2 x 64
    python examples/trl_adversarial.py --tiny          # 300 captions, a 1 x 16 model, 3 steps (the tests run it)
    python examples/trl_adversarial.py --from DIR      # a causal LM and its tokenizer saved with save_pretrained

Needs the ``trl`` extra (``pip install -e ".[trl]"``). The reward is D's P(real) of each whole completion
(TRL's rewards are sequence-level); SeqGAN's per-token Q from Monte-Carlo rollouts needs the project's own loop
(``docs/huggingface.md``).
"""

from __future__ import annotations

import argparse
import tempfile

import torch
from datasets import Dataset
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2Config, PreTrainedTokenizerFast
from transformers.trainer_callback import PrinterCallback
from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer

from seqgan_rl.config import DiscriminatorConfig
from seqgan_rl.data.text import coco_files
from seqgan_rl.integrations.trl import DiscriminatorCallback, DiscriminatorReward
from seqgan_rl.models import Discriminator

SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>"]


def bpe_tokenizer(texts: list[str], size: int) -> PreTrainedTokenizerFast:
    """A byte-pair tokenizer trained on ``texts`` (seconds, offline), wrapped for ``transformers``."""
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer, tok.decoder = pre_tokenizers.Metaspace(), decoders.Metaspace()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=size, special_tokens=SPECIALS))
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tiny", action="store_true", help="300 captions, a 1 x 16 model, 3 steps per trainer (tests)")
    p.add_argument("--from", dest="path", default=None, help="a save_pretrained folder with the model's tokenizer")
    p.add_argument("--steps", type=int, default=None, help="updates per trainer (default 3 tiny, 30 otherwise)")
    p.add_argument("--trainers", nargs="+", choices=["grpo", "rloo"], default=["grpo", "rloo"])
    p.add_argument("--seq-len", type=int, default=None, help="tokens per completion and D's length (16 / 24)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    steps = args.steps or (3 if args.tiny else 30)
    seq_len = args.seq_len or (16 if args.tiny else 24)
    torch.manual_seed(args.seed)
    captions = coco_files()[0].read_text().lower().splitlines()[: 300 if args.tiny else None]

    if args.path is not None:  # the user's model with its own tokenizer
        tokenizer = AutoTokenizer.from_pretrained(args.path)
        make_model = lambda: AutoModelForCausalLM.from_pretrained(args.path)  # noqa: E731
    else:
        tokenizer = bpe_tokenizer(captions, 200 if args.tiny else 2000)
        size = {"n_embd": 16, "n_layer": 1, "n_head": 2} if args.tiny else {"n_embd": 64, "n_layer": 2, "n_head": 4}
        config = GPT2Config(
            vocab_size=len(tokenizer), n_positions=seq_len + 8, bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, **size,
        )  # fmt: skip
        make_model = lambda: AutoModelForCausalLM.from_config(config)  # noqa: E731
    widths = {"filter_sizes": (2, 3, 4, 5), "num_filters": (16,) * 4}
    discriminator = Discriminator(DiscriminatorConfig(vocab_size=len(tokenizer), seq_len=seq_len, **widths))
    reward = DiscriminatorReward.from_tokenizer(discriminator, tokenizer, keep=256)
    real = reward.encode_texts(captions, tokenizer)
    prompt = tokenizer.bos_token or tokenizer.eos_token  # unconditional generation: every completion starts here
    prompts = Dataset.from_dict({"prompt": [prompt] * (8 * steps)})
    common = dict(
        per_device_train_batch_size=8, num_generations=8, max_completion_length=seq_len, max_steps=steps,
        learning_rate=1e-3, logging_steps=1, save_strategy="no", report_to="none", use_cpu=True, seed=args.seed,
        disable_tqdm=True, beta=0.0,
    )  # fmt: skip
    kinds = {"grpo": (GRPOConfig, GRPOTrainer), "rloo": (RLOOConfig, RLOOTrainer)}
    model = make_model()
    for name in args.trainers:
        config_class, trainer_class = kinds[name]
        callback = DiscriminatorCallback(reward, real, every=1, lr=1e-3, seed=args.seed)
        with tempfile.TemporaryDirectory() as out:
            trainer = trainer_class(
                model=model, reward_funcs=[reward], args=config_class(output_dir=out, **common), train_dataset=prompts,
                processing_class=tokenizer, callbacks=[callback],
            )  # fmt: skip
            trainer.remove_callback(PrinterCallback)  # the lines below say what matters
            trainer.train()
        for entry in trainer.state.log_history:
            if "discriminator/loss" in entry:
                print(
                    f"{name} step {entry['step']}: mean D(completion) {entry['rewards/discriminator/mean']:.3f}; "
                    f"D's last retraining: loss {entry['discriminator/loss']:.3f}, "
                    f"accuracy {entry['discriminator/accuracy']:.3f}"
                )
        model = trainer.model  # the next trainer goes on from this one's model and D
        print(f"{name}: {steps} updates of a {type(model).__name__}, D retrained {len(callback.history)} times")
    with torch.no_grad():
        start = torch.tensor([[tokenizer.convert_tokens_to_ids(prompt)]] * 3)
        out = model.generate(start, do_sample=True, max_new_tokens=seq_len, pad_token_id=tokenizer.pad_token_id)
    for text in tokenizer.batch_decode(out[:, 1:], skip_special_tokens=True):
        print("sample:", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
