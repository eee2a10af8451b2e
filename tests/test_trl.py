"""SeqGAN's adversarial reward inside TRL (seqgan_rl.integrations.trl): the reward in TRL's form, D retrained
by a TrainerCallback during a GRPOTrainer run (its parameters change, the rewards follow it), checkpoints and
resume. Tiny sizes, offline: a BPE tokenizer trained here, a GPT-2 built from a config."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("trl")

from datasets import Dataset  # noqa: E402  (trl brings datasets)
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast, TrainerCallback  # noqa: E402
from trl import GRPOConfig, GRPOTrainer  # noqa: E402

from seqgan_rl.config import DiscriminatorConfig  # noqa: E402
from seqgan_rl.integrations.trl import CHECKPOINT_FILE, DiscriminatorCallback, DiscriminatorReward  # noqa: E402
from seqgan_rl.models import Discriminator  # noqa: E402

TEXTS = [
    "a man rides a horse on the beach", "two dogs play in the park", "a cat sleeps on a red couch",
    "a woman holds an umbrella in the rain", "a plate of food on a wooden table", "a bus parked on the street",
    "a boy throws a frisbee in the park", "a train stops at the station", "a bird sits on a branch",
    "people walk along the beach at sunset",
]  # fmt: skip
T = 12


@pytest.fixture(scope="module")
def tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    specials = ["<pad>", "<bos>", "<eos>", "<unk>"]
    tok.train_from_iterator(TEXTS, trainers.BpeTrainer(vocab_size=80, special_tokens=specials))
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )


def tiny_model(tokenizer) -> GPT2LMHeadModel:
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=T + 2, n_embd=16, n_layer=1, n_head=2,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    return GPT2LMHeadModel(config)


def tiny_discriminator(tokenizer) -> Discriminator:
    torch.manual_seed(1)
    return Discriminator(
        DiscriminatorConfig(vocab_size=len(tokenizer), seq_len=T, filter_sizes=(2, 3), num_filters=(8, 8))
    )


class StopAfter(TrainerCallback):
    """Stops the trainer after step ``n`` (a run killed right after its checkpoint)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.n:
            control.should_training_stop = True


def grpo(tokenizer, out, callback, reward, steps=4, save_steps=2, stop_after=None) -> GRPOTrainer:
    args = GRPOConfig(
        output_dir=str(out), per_device_train_batch_size=4, num_generations=4, max_completion_length=T,
        max_steps=steps, learning_rate=1e-2, logging_steps=1, save_steps=save_steps, report_to="none",
        use_cpu=True, seed=0, disable_tqdm=True, beta=0.0, temperature=1.0,
    )  # fmt: skip
    prompts = Dataset.from_dict({"prompt": [tokenizer.bos_token] * 64})
    return GRPOTrainer(
        model=tiny_model(tokenizer), reward_funcs=[reward], args=args, train_dataset=prompts,
        processing_class=tokenizer, callbacks=[callback] + ([StopAfter(stop_after)] if stop_after else []),
    )  # fmt: skip


def test_reward_encodes_completions_as_text_sequences(tokenizer):
    d = tiny_discriminator(tokenizer)
    reward = DiscriminatorReward.from_tokenizer(d, tokenizer, keep=3)
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    rows = reward.encode([[5, 6, eos, 7], [5] * 20, []])
    assert rows.tolist() == [[5, 6, eos] + [pad] * (T - 3), [5] * T, [pad] * T]
    real = reward.encode_texts(["two dogs play"], tokenizer)
    ids = tokenizer("two dogs play", add_special_tokens=False)["input_ids"]
    assert real[0].tolist() == ids + [eos] + [pad] * (T - len(ids) - 1)
    scores = reward(prompts=["<bos>"] * 2, completions=["", ""], completion_ids=[[5, eos], [6, 7]])
    assert torch.allclose(torch.tensor(scores), d.prob_real(reward.encode([[5, eos], [6, 7]])))
    reward(completion_ids=[[8], [9]])
    assert reward.recent.shape == (3, T) and reward.recent[-1, 0] == 9  # the last `keep`, oldest first


def test_reward_refuses_mismatched_vocabularies(tokenizer):
    small = Discriminator(DiscriminatorConfig(vocab_size=10, seq_len=T, filter_sizes=(2,), num_filters=(4,)))
    with pytest.raises(ValueError, match="build D with vocab_size=len"):
        DiscriminatorReward.from_tokenizer(small, tokenizer)
    reward = DiscriminatorReward(small, eos_token_id=2, pad_token_id=0)
    with pytest.raises(ValueError, match="outside the discriminator's vocabulary"):
        reward(completion_ids=[[3, 50]])
    with pytest.raises(ValueError, match="completion_ids"):
        reward(completions=["text only"])
    with pytest.raises(ValueError, match=r"real_tokens must be \(N >= 1"):
        DiscriminatorCallback(reward, torch.zeros(0, T, dtype=torch.long))


def test_grpo_trains_d_adversarially_and_resumes(tokenizer, tmp_path):
    """During a GRPOTrainer run D's parameters change at every step and the next rewards come from the new
    D; D, its optimizer, stream and remembered completions are saved in each checkpoint, and a trainer that
    resumes from one continues D from there, bit for bit (4 steps straight = 2 + resume + 2)."""
    reward = DiscriminatorReward.from_tokenizer(tiny_discriminator(tokenizer), tokenizer)
    real = reward.encode_texts(TEXTS, tokenizer)
    callback = DiscriminatorCallback(reward, real, every=1, lr=1e-2, seed=3)
    d0 = {k: v.clone() for k, v in reward.discriminator.state_dict().items()}
    trainer = grpo(tokenizer, tmp_path / "straight", callback, reward)
    fixed = reward.encode([[5, 6, 7]])
    before = float(reward.discriminator.prob_real(fixed))
    trainer.train()
    after = float(reward.discriminator.prob_real(fixed))
    assert [h["step"] for h in callback.history] == [1.0, 2.0, 3.0, 4.0]
    assert any(not torch.equal(d0[k], v) for k, v in reward.discriminator.state_dict().items())
    assert before != after  # the reward of a completion follows D's retraining
    logged = [e for e in trainer.state.log_history if "discriminator/loss" in e]
    assert logged and all(0.0 <= e["discriminator/accuracy"] <= 1.0 for e in logged)
    assert (tmp_path / "straight" / "checkpoint-2" / CHECKPOINT_FILE).is_file()
    straight = reward.discriminator.state_dict()

    # the same run, stopped after step 2 and resumed from its checkpoint by a new trainer
    reward2 = DiscriminatorReward.from_tokenizer(tiny_discriminator(tokenizer), tokenizer)
    callback2 = DiscriminatorCallback(reward2, real, every=1, lr=1e-2, seed=3)
    grpo(tokenizer, tmp_path / "split", callback2, reward2, stop_after=2).train()
    reward3 = DiscriminatorReward.from_tokenizer(tiny_discriminator(tokenizer), tokenizer)
    callback3 = DiscriminatorCallback(reward3, real, every=1, lr=1e-2, seed=3)
    resumed = grpo(tokenizer, tmp_path / "split", callback3, reward3)
    resumed.train(resume_from_checkpoint=str(tmp_path / "split" / "checkpoint-2"))
    assert [h["step"] for h in callback3.history] == [1.0, 2.0, 3.0, 4.0]
    for k, v in reward3.discriminator.state_dict().items():
        assert torch.equal(v, straight[k]), k


def test_resume_without_the_callbacks_file_is_refused(tokenizer, tmp_path):
    reward = DiscriminatorReward.from_tokenizer(tiny_discriminator(tokenizer), tokenizer)
    callback = DiscriminatorCallback(reward, reward.encode_texts(TEXTS, tokenizer))
    grpo(tokenizer, tmp_path, callback, reward, stop_after=2).train()
    (tmp_path / "checkpoint-2" / CHECKPOINT_FILE).unlink()
    fresh = DiscriminatorCallback(reward, reward.encode_texts(TEXTS, tokenizer))
    with pytest.raises(FileNotFoundError, match="resume_from"):
        grpo(tokenizer, tmp_path, fresh, reward, steps=4).train(resume_from_checkpoint=str(tmp_path / "checkpoint-2"))


def test_benchmark_word_tokenizer_has_the_vocabularys_ids():
    """bench_trl.py gives TRL a tokenizer with the project's word ids, so both sides share G and D."""
    from tiny_runs import load_script

    from seqgan_rl.data.text import Vocabulary

    vocab = Vocabulary(["a", "man", "rides", "horse"])
    tok = load_script("bench_trl", "benchmarks").word_tokenizer(vocab)
    assert tok("a man rides a zebra", add_special_tokens=False)["input_ids"] == [4, 5, 6, 4, vocab.unk_id]
    assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id) == (vocab.pad_id, vocab.bos_id, vocab.eos_id)


def test_a_transformer_classifier_as_trls_discriminator(tokenizer):
    """The reward and its retraining take a Hugging Face sequence classifier as D as well as the CNN."""
    from seqgan_rl.config import TransformerDiscriminatorConfig
    from seqgan_rl.models import build_discriminator

    torch.manual_seed(0)
    ids = {"eos_token": tokenizer.eos_token_id, "pad_token": tokenizer.pad_token_id}
    d = build_discriminator(
        TransformerDiscriminatorConfig(vocab_size=len(tokenizer), seq_len=T, hidden_dim=16, num_heads=2, **ids)
    )
    reward = DiscriminatorReward.from_tokenizer(d, tokenizer)
    before = reward(completion_ids=[[5, 6, tokenizer.eos_token_id], [7, 8, 9]])
    callback = DiscriminatorCallback(reward, reward.encode_texts(TEXTS, tokenizer), lr=1e-2)
    stats = callback.retrain(step=1)
    assert 0.0 <= stats["discriminator/accuracy"] <= 1.0
    assert reward(completion_ids=[[5, 6, tokenizer.eos_token_id], [7, 8, 9]]) != before
