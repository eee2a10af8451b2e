"""The oracle: the paper's numbers, an independent numpy implementation of its recurrence, file handling."""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch

from seqgan_rl.data import load_token_file
from seqgan_rl.models import OracleLSTM
from seqgan_rl.models.oracle import ARRAY_NAMES
from seqgan_rl.utils import make_rng

REAL_DATA = Path(__file__).parent / "data" / "real_data.txt"
"""The 9,984 oracle samples of the reference repository (156 x 64, length 20)."""
PAPER_NPZ_SHA256 = "73efebc06a9310d4f3a65500145cae16e63bd357114389c80fa54bee0b4b6572"
"""From the oracle README: the .npz made from the reference ``target_params.pkl``."""


def reference_log_probs(arrays: dict[str, np.ndarray], tokens: np.ndarray) -> np.ndarray:
    """The oracle README's recurrence, written out in float64: log p(y_t | y_<t), shape (B, T)."""
    a = {k: np.asarray(v, dtype=np.float64) for k, v in arrays.items()}
    emb = a["g_embeddings"]
    b, t = tokens.shape
    hdim = a["Ui"].shape[0]
    h, c = np.zeros((b, hdim)), np.zeros((b, hdim))
    x = np.repeat(emb[0:1], b, axis=0)  # start token = id 0

    def sigmoid(z: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-z))

    out = np.empty((b, t))
    for step in range(t):
        i = sigmoid(x @ a["Wi"] + h @ a["Ui"] + a["bi"])
        f = sigmoid(x @ a["Wf"] + h @ a["Uf"] + a["bf"])
        o = sigmoid(x @ a["Wog"] + h @ a["Uog"] + a["bog"])
        c_tilde = np.tanh(x @ a["Wc"] + h @ a["Uc"] + a["bc"])
        c = f * c + i * c_tilde
        h = o * np.tanh(c)
        logits = h @ a["Wo"] + a["bo"]  # (B, V)
        m = logits.max(axis=1, keepdims=True)
        log_z = m[:, 0] + np.log(np.exp(logits - m).sum(axis=1))
        y = tokens[:, step]
        out[:, step] = logits[np.arange(b), y] - log_z
        x = emb[y]  # teacher forcing: the next input is the token just scored
    return out


def paper_arrays() -> dict[str, np.ndarray]:
    with resources.as_file(resources.files("seqgan_rl") / "assets" / "target_params.npz") as p, np.load(p) as npz:
        return {k: npz[k] for k in npz.files}


# ---------------------------------------------------------------------------------------------- the paper's oracle
def test_shipped_parameters_are_the_reference_file():
    with resources.as_file(resources.files("seqgan_rl") / "assets" / "target_params.npz") as p:
        assert hashlib.sha256(Path(p).read_bytes()).hexdigest() == PAPER_NPZ_SHA256


def test_paper_oracle_size_and_frozen(paper_oracle):
    c = paper_oracle.config
    assert (c.vocab_size, c.seq_len, c.embed_dim, c.hidden_dim, c.start_token) == (5000, 20, 32, 32, 0)
    assert not any(p.requires_grad for p in paper_oracle.parameters())
    paper_oracle.train()
    assert not paper_oracle.training  # an oracle never trains (no mode where it could change)


def test_paper_oracle_scores_reference_samples(paper_oracle):
    tokens = load_token_file(REAL_DATA, vocab_size=5000, seq_len=20)
    assert tokens.shape == (9984, 20)
    nll = paper_oracle.nll(tokens, batch_size=32)
    assert nll == pytest.approx(5.761, abs=0.01)


def test_paper_oracle_entropy_rate_on_own_samples(paper_oracle):
    samples = paper_oracle.sample(4000, make_rng(2024))
    assert samples.shape == (4000, 20) and samples.dtype == torch.long
    assert int(samples.min()) >= 0 and int(samples.max()) < 5000
    assert paper_oracle.nll(samples, batch_size=32) == pytest.approx(5.75, abs=0.03)


def test_paper_oracle_matches_numpy_recurrence(paper_oracle):
    real = load_token_file(REAL_DATA, vocab_size=5000, seq_len=20)[:4]
    fresh = paper_oracle.sample(3, make_rng(5))
    tokens = torch.cat([real, fresh, torch.zeros(1, 20, dtype=torch.long)])  # incl. start token as a word
    expected = reference_log_probs(paper_arrays(), tokens.numpy())
    got = paper_oracle.log_probs(tokens).double().numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-5)


def test_paper_oracle_parameters_map_into_lstm_layout(paper_oracle):
    arrays = paper_arrays()
    for name, value in paper_oracle.to_arrays().items():
        np.testing.assert_array_equal(value, arrays[name], err_msg=name)
    assert torch.count_nonzero(paper_oracle.lstm.bias_hh_l0) == 0


# ---------------------------------------------------------------------------------------------- other sizes
def test_random_oracle_of_another_size_round_trips(tmp_path):
    oracle = OracleLSTM.random(vocab_size=13, seq_len=7, embed_dim=5, hidden_dim=6, seed=3)
    c = oracle.config
    assert (c.vocab_size, c.seq_len, c.embed_dim, c.hidden_dim) == (13, 7, 5, 6)
    samples = oracle.sample(50, make_rng(0))
    assert samples.shape == (50, 7)

    path = tmp_path / "oracle.npz"
    oracle.save_npz(path)
    with np.load(path) as npz:
        assert sorted(npz.files) == sorted([*ARRAY_NAMES, "seq_len"]) and int(npz["seq_len"]) == 7
        assert all(npz[k].dtype == np.float32 for k in ARRAY_NAMES)
    loaded = OracleLSTM.from_npz(path)  # the file stores its length
    assert loaded.seq_len == 7 and OracleLSTM.from_npz(path, seq_len=40).seq_len == 40
    for k, v in oracle.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    assert torch.equal(loaded.log_probs(samples), oracle.log_probs(samples))
    assert torch.equal(loaded.sample(50, make_rng(0)), samples)


def test_random_oracle_matches_numpy_recurrence():
    oracle = OracleLSTM.random(vocab_size=13, seq_len=9, embed_dim=5, hidden_dim=6, seed=11)
    tokens = torch.randint(0, 13, (6, 9), generator=make_rng(1))
    expected = reference_log_probs(oracle.to_arrays(), tokens.numpy())
    np.testing.assert_allclose(oracle.log_probs(tokens).double().numpy(), expected, rtol=0, atol=1e-5)


def test_random_oracle_is_seeded():
    a = OracleLSTM.random(vocab_size=9, seq_len=6, embed_dim=4, hidden_dim=5, seed=1).to_arrays()
    b = OracleLSTM.random(vocab_size=9, seq_len=6, embed_dim=4, hidden_dim=5, seed=1).to_arrays()
    c = OracleLSTM.random(vocab_size=9, seq_len=6, embed_dim=4, hidden_dim=5, seed=2).to_arrays()
    assert all(np.array_equal(a[k], b[k]) for k in ARRAY_NAMES)
    assert not np.array_equal(a["Wo"], c["Wo"])


# ---------------------------------------------------------------------------------------------- bad files
@pytest.fixture
def small_arrays() -> dict[str, np.ndarray]:
    return OracleLSTM.random(vocab_size=11, seq_len=6, embed_dim=4, hidden_dim=5, seed=0).to_arrays()


def test_missing_array_is_named(tmp_path, small_arrays):
    del small_arrays["bo"]
    np.savez(tmp_path / "o.npz", **small_arrays)
    with pytest.raises(ValueError, match=r"missing oracle arrays \['bo'\]"):
        OracleLSTM.from_npz(tmp_path / "o.npz")


def test_misshaped_array_is_named(tmp_path, small_arrays):
    small_arrays["Wo"] = small_arrays["Wo"][:, :-1]  # (H, V-1)
    np.savez(tmp_path / "o.npz", **small_arrays)
    with pytest.raises(ValueError, match=r"mis-shaped.*Wo: got \(5, 10\), expected \(5, 11\)"):
        OracleLSTM.from_npz(tmp_path / "o.npz")


def test_misshaped_recurrent_matrix(tmp_path, small_arrays):
    small_arrays["Ui"] = np.zeros(5, dtype=np.float32)
    np.savez(tmp_path / "o.npz", **small_arrays)
    with pytest.raises(ValueError, match="mis-shaped"):
        OracleLSTM.from_npz(tmp_path / "o.npz")


def test_non_finite_array_is_named(tmp_path, small_arrays):
    small_arrays["bf"][2] = np.nan
    np.savez(tmp_path / "o.npz", **small_arrays)
    with pytest.raises(ValueError, match="bf contains NaN"):
        OracleLSTM.from_npz(tmp_path / "o.npz")


def test_non_npz_file(tmp_path):
    path = tmp_path / "params.npz"
    path.write_text("this is not a zip archive\n")
    with pytest.raises(ValueError, match="not a readable .npz"):
        OracleLSTM.from_npz(path)


def test_npz_with_pickled_objects_is_refused(tmp_path, small_arrays):
    small_arrays["bo"] = np.array([{"x": 1}], dtype=object)
    np.savez(tmp_path / "o.npz", **small_arrays)
    with pytest.raises(ValueError, match="not a readable .npz"):
        OracleLSTM.from_npz(tmp_path / "o.npz")


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        OracleLSTM.from_npz(tmp_path / "nope.npz")


def test_oracle_specs_of_the_command_lines(tmp_path):
    paper = OracleLSTM.from_spec("paper")
    assert paper.is_paper and (paper.vocab_size, paper.seq_len) == (5000, 20)
    long = OracleLSTM.from_spec("paper", seq_len=40)
    assert not long.is_paper and long.source == "paper" and long.seq_len == 40  # not the paper's benchmark
    assert torch.equal(long.output.weight, paper.output.weight)
    r = OracleLSTM.from_spec("random:4", seq_len=40, vocab_size=50)
    assert (r.vocab_size, r.seq_len, r.source, r.is_paper) == (50, 40, "random:4", False)
    assert torch.equal(r.output.weight, OracleLSTM.random(50, 40, seed=4).output.weight)
    assert not torch.equal(r.output.weight, OracleLSTM.from_spec("random:5", vocab_size=50).output.weight)
    r.save_npz(tmp_path / "r.npz")
    f = OracleLSTM.from_spec(str(tmp_path / "r.npz"))
    assert (f.vocab_size, f.seq_len, f.source) == (50, 40, str(tmp_path / "r.npz"))
    with pytest.raises(ValueError, match="random:SEED"):
        OracleLSTM.from_spec("random:x")
    with pytest.raises(ValueError, match="seq_len must be > 0"):
        OracleLSTM.from_spec("random:0", seq_len=0)
    with pytest.raises(ValueError, match="vocab size 100 does not apply"):
        OracleLSTM.from_spec("paper", vocab_size=100)
    with pytest.raises(FileNotFoundError):
        OracleLSTM.from_spec("nope.npz")
