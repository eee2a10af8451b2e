"""Datasets: oracle samples, token files, batching."""

from seqgan_rl.data.oracle_data import OracleData, iterate_minibatches, load_token_file, make_oracle_data

__all__ = ["OracleData", "iterate_minibatches", "load_token_file", "make_oracle_data"]
