"""Datasets: oracle samples, token files, batching; real text (tokenizer, vocabulary, sentence files)."""

from seqgan_rl.data.oracle_data import OracleData, iterate_minibatches, load_token_file, make_oracle_data
from seqgan_rl.data.text import TextDataset, Vocabulary, load_text_dataset, read_sentences, tokenize

__all__ = [
    "OracleData", "TextDataset", "Vocabulary", "iterate_minibatches", "load_text_dataset", "load_token_file",
    "make_oracle_data", "read_sentences", "tokenize",
]  # fmt: skip
