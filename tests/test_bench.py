"""``benchmarks/bench_pretrain.py`` runs on shortened settings and prints every measurement it promises."""

from __future__ import annotations

import json
import re

import pytest
import torch
from tiny_runs import load_script

from seqgan_rl.config import GeneratorConfig
from seqgan_rl.models import Generator
from seqgan_rl.utils import make_rng


@pytest.fixture(scope="module")
def bench():
    return load_script("bench_pretrain", "benchmarks")


def test_short_run_prints_all_measurements(bench, capsys):
    argv = ["--threads", "1", "--num-train", "128", "--mle-batches", "1", "--d-batches", "1", "--sample-num", "16"]
    assert bench.main([*argv, "--d-presets", "light"]) == 0
    out = capsys.readouterr().out
    assert "torch.get_num_threads() = 1" in out
    assert re.search(r"MLE epoch .* s/epoch +\(EXTRAPOLATED from 1 of 2 batches\)", out)
    assert re.search(r"D epoch +light D \(256 filters\), 128 real \+ 128 generated.*EXTRAPOLATED from 1 of 4", out)
    assert "paper D" not in out
    assert re.search(r"generator sampler +[\d,]+ seq/s", out)
    assert re.search(r"torch.multinomial +[\d,]+ seq/s", out)
    assert re.search(r"ratio +[\d.]+x", out)


def test_full_epoch_is_labelled_as_such(bench):
    assert bench.epoch_label(10, 10) == "full epoch of 10 batches"
    assert bench.epoch_label(3, 10) == "EXTRAPOLATED from 3 of 10 batches"


def test_multinomial_variant_samples_valid_sequences(bench):
    g = Generator(GeneratorConfig(vocab_size=9, seq_len=5, embed_dim=4, hidden_dim=8))
    a = bench.sample_multinomial(g, 70, make_rng(0), batch_size=32)
    assert a.shape == (70, 5) and a.dtype == torch.long
    assert int(a.min()) >= 0 and int(a.max()) < 9
    assert torch.equal(a, bench.sample_multinomial(g, 70, make_rng(0), batch_size=32))


@pytest.mark.parametrize("option", ["--d-batches", "--threads", "--sample-num"])
def test_bad_counts_are_refused(bench, option, capsys):
    with pytest.raises(SystemExit) as exc:
        bench.main([option, "0"])
    assert exc.value.code == 2
    assert f"{option} must be >= 1" in capsys.readouterr().err


@pytest.fixture(scope="module")
def screen():
    return load_script("schedule_screen", "benchmarks")


def test_schedule_screen_overrides(screen):
    from seqgan_rl.presets import train_preset

    base = train_preset("cpu", 0)
    cfg = screen.apply_overrides(base, {"d_train.lr": 5e-5, "adversarial.iterations": 7, "agent.batch_size": 32})
    assert (cfg.adversarial.d_train.lr, cfg.adversarial.iterations, cfg.agent.batch_size) == (5e-5, 7, 32)
    assert cfg.adversarial.d_train.max_steps_per_round == base.adversarial.d_train.max_steps_per_round
    with pytest.raises(ValueError, match="d_train.FIELD"):
        screen.apply_overrides(base, {"lr": 1e-4})
    with pytest.raises(TypeError, match="lrr"):
        screen.apply_overrides(base, {"d_train.lrr": 1e-4})


def test_schedule_screen_bad_variant_is_refused_before_work(screen, capsys):
    with pytest.raises(SystemExit) as e:
        screen.main(["--variant", 'x={"foo": 1}', "--pre-root", "/nonexistent"])
    assert e.value.code == 2
    assert "adversarial.FIELD" in capsys.readouterr().err


def test_schedule_screen_table_pairs_seeds(screen):
    results = [
        {"name": "a", "seed": 0, "evals": [(0, 9.0, 8.2), (5, 8.8, 8.3), (10, 8.9, 8.4)]},
        {"name": "a", "seed": 1, "evals": [(0, 9.0, 8.2), (5, 8.7, 8.3)]},
        {"name": "b", "seed": 0, "evals": [(0, 9.0, 8.2), (5, 8.6, 8.5), (10, 8.5, 8.6)]},
        {"name": "b", "seed": 1, "evals": [(0, 9.0, 8.2), (5, 8.75, 8.3)]},
    ]
    table = screen.summary_table(results, ["a", "b"], [0, 1], limit=5)
    row_b = table.splitlines()[-1]
    # within 5 updates b's best on seed 0 is 8.6 (the 8.5 at update 10 is outside); paired Δ = (-0.2 + 0.05) / 2
    assert row_b.startswith("| b | 8.600 | 8.750 | 8.675 ± 0.106 | 8.400 | -0.075 (1/2) |")


def test_schedule_screen_validation_table_reads_the_final_models(screen):
    results = [
        {"name": "a", "seed": 0, "final": {"nll_oracle": 8.0, "nll_valid": 7.6, "delta_valid": -0.1}},
        {"name": "a", "seed": 1, "final": {"nll_oracle": 8.2, "nll_valid": 7.7, "delta_valid": 0.3}},
        {"name": "b", "seed": 0, "final": {"nll_oracle": 9.0, "nll_valid": 7.5, "delta_valid": float("nan")}},
        {"name": "c", "seed": 0, "evals": []},  # no validation split: not in the table
    ]
    lines = screen.validation_table(results, ["a", "b", "c"], [0, 1]).splitlines()
    assert lines[2] == "| a | -0.100 | +0.300 | +0.100 | 8.100 / 7.650 |"
    assert lines[3].startswith("| b | +nan | — | — |") and len(lines) == 4
    assert screen.validation_table([{"name": "a", "seed": 0, "evals": []}], ["a"], [0]) == ""


def test_strong_screen_ranks_candidates_by_validation_nll():
    strong = load_script("strong_screen", "benchmarks")
    row = {"epochs": 20, "best_epoch": 10, "nll_oracle": 9.1, "nll_test": 7.4, "at_8.27": float("nan"),
           "at_8.0": 7.2, "wall_s": 200.0, "s_per_epoch": 10.0}  # fmt: skip
    results = [
        {"name": "wide", "seed": 0, "overrides": {"hidden_dim": 512}, "best_valid": 7.49, **row},
        {"name": "narrow", "seed": 0, "overrides": {"hidden_dim": 128}, "best_valid": 7.38, **row},
        {"name": "narrow", "seed": 1, "overrides": {"hidden_dim": 128}, "best_valid": 7.40, **row},
    ]
    lines = strong.table(results)
    assert lines[2].startswith('| 1 | narrow | `{"hidden_dim": 128}` | 7.390 | 20 (10) | 9.100 / 7.400 | – | 7.200 |')
    assert lines[3].startswith("| 2 | wide |") and lines[2].endswith("| 2 |")


@pytest.fixture(scope="module")
def dscreen():
    return load_script("d_screen", "benchmarks")


def test_d_screen_auc_by_hand(dscreen):
    # pairs (real, fake): 0.9>0.5, 0.9>0.1, 0.5=0.5 (half), 0.5>0.1: 3.5 of 4
    assert dscreen.auc(torch.tensor([0.9, 0.5]), torch.tensor([0.5, 0.1])) == 0.875
    assert dscreen.auc(torch.tensor([0.1]), torch.tensor([0.9])) == 0.0


@pytest.mark.parametrize(
    "spec, message",
    [
        ("nosettings", "write NAME="),
        ("a={oops", "not JSON"),
        ('a={"lr": 1e-3}', '"d": one of light, paper, lstm'),
        ('a={"d": "lstm", "filters": 3}', "unknown fields ['filters']"),
        ('a={"d": "light", "hidden": 3}', "light candidate:"),
    ],
)
def test_d_screen_bad_candidates_are_refused(dscreen, spec, message, capsys):
    with pytest.raises(ValueError, match=message[:20].replace("[", r"\[").replace("]", r"\]")):
        dscreen.parse_candidate(spec)
    with pytest.raises(SystemExit) as exc:
        dscreen.main(["--candidate", spec])
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_d_screen_lstm_probe_can_start_from_the_generator(dscreen):
    g = Generator(GeneratorConfig(vocab_size=20, seq_len=6, embed_dim=8, hidden_dim=12))
    probe = dscreen.build_discriminator({"d": "lstm", "from_generator": True}, g, 20, 6)
    assert torch.equal(probe.embedding.weight, g.embedding.weight)
    assert torch.equal(probe.lstm.weight_hh_l0, g.lstm.weight_hh_l0) and probe.lstm.hidden_size == 12
    probs = probe.prob_real(torch.randint(0, 20, (5, 6)))
    assert probs.shape == (5,) and bool(((probs > 0) & (probs < 1)).all()) and probe.training


def test_d_screen_finds_signal_where_there_is_some_and_repeats(dscreen):
    """Real sequences use tokens 0-9 only, G draws from all 20: every candidate learns to rank them (held-out AUC
    well above 0.5); the same call gives the same records (seeded)."""
    torch.manual_seed(0)
    g = Generator(GeneratorConfig(vocab_size=20, seq_len=6, embed_dim=8, hidden_dim=8))
    real = torch.randint(0, 10, (400, 6), generator=make_rng(1))
    candidates = {"light": {"d": "light", "lr": 1e-2}, "lstm": {"d": "lstm", "lr": 1e-2, "hidden_dim": 16}}
    scores = {"low tokens": lambda tokens: -tokens.float().mean(dim=1)}  # real sequences use the low half

    def run():
        return dscreen.screen(g, real[:300], real[300:], candidates, 3, rounds=2, steps=4, negatives=200, scores=scores)

    records = run()
    assert [(r["candidate"], r["round"], r["steps"]) for r in records] == [
        ("low tokens", 0, 0), ("light", 2, 8), ("lstm", 2, 8)
    ]  # fmt: skip
    assert records[0]["auc"] > 0.95 and all(r["auc"] > 0.8 for r in records[1:]), records
    strip = lambda rs: [{k: v for k, v in r.items() if k != "seconds"} for r in rs]  # noqa: E731
    assert strip(run()) == strip(records)
    lines = dscreen.table(records, [3]).splitlines()
    assert "| s3: held-out AUC" in lines[0] and lines[3].startswith("| light | ") and len(lines) == 5
    assert lines[2] == f"| low tokens | {records[0]['auc']:.3f} | {records[0]['auc']:.3f} | – | – | – |"


def test_d_screen_oracle_fed_real_data(dscreen, capsys):
    """--real oracle-pool:N: each round's real class comes from the oracle, never G's training data; records count
    the real sequences drawn; a malformed --real is refused."""
    from seqgan_rl.data.oracle_data import OracleFedReal
    from seqgan_rl.models.oracle import OracleLSTM

    oracle = OracleLSTM.random(vocab_size=20, seq_len=6, embed_dim=8, hidden_dim=8, seed=3)
    g = Generator(GeneratorConfig(vocab_size=20, seq_len=6, embed_dim=8, hidden_dim=8))
    train, valid = oracle.sample(300, make_rng(1)), oracle.sample(100, make_rng(2))
    for pool, seen in ((None, [200, 400]), (250, [250, 250])):
        source = OracleFedReal(oracle, [train, valid], pool, seed=4)
        records = dscreen.screen(g, train, valid, {"light": {"d": "light"}}, 3, rounds=2, steps=2, negatives=200,
                                 every=1, real_source=source)  # fmt: skip
        assert [r["real_seen"] for r in records] == seen
    with pytest.raises(SystemExit) as exit_info:
        dscreen.main(["--real", "oracle-pool:x"])
    assert exit_info.value.code == 2 and "write train, oracle or oracle-pool:N" in capsys.readouterr().err


def test_d_screen_table_from_runs_prints_every_round_and_merges(dscreen, tmp_path, capsys):
    """--table-from: one row per candidate, real class and seed with the AUC per evaluated round, the scores once
    per seed; --json-out holds the runs as read; a folder without results.json is refused."""

    def run(real: str, aucs: list[float]) -> dict:
        records = [{"candidate": "score: D*", "seed": 7, "round": 0, "steps": 0, "auc": 1.0}]
        records += [
            {"candidate": "lstm", "seed": 7, "round": k, "auc": a, "accuracy": 0.6, "train_accuracy": 0.7 + k / 100,
             "seconds": 3.0}
            for k, a in zip((2, 4), aucs, strict=True)
        ]  # fmt: skip
        return {"candidates": {}, "settings": {"real": real, "seeds": [7], "negatives": 500}, "records": records}

    for name, real, aucs in (("a", "train", [0.51, 0.52]), ("b", "oracle-pool:100", [0.6, 0.7])):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps(run(real, aucs)))
    merged = tmp_path / "merged.json"
    assert dscreen.main(["--table-from", str(tmp_path / "a"), str(tmp_path / "b"), "--json-out", str(merged)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "| 2 rounds (1k reals) | 4 rounds (2k reals) | training-batch accuracy (last) |" in lines[0]
    assert lines[2:] == [
        "| lstm | train | 7 | 0.510 | 0.520 | 0.740 | 3 |",
        "| lstm | oracle-pool:100 | 7 | 0.600 | 0.700 | 0.740 | 3 |",
        "| score: D* | – | 7 | 1.000 | | | |",
    ]
    assert json.loads(merged.read_text())["runs"][1] == run("oracle-pool:100", [0.6, 0.7])
    with pytest.raises(SystemExit) as exit_info:
        dscreen.main(["--table-from", str(tmp_path / "missing")])
    assert exit_info.value.code == 2 and "no readable results.json" in capsys.readouterr().err


@pytest.mark.parametrize(
    "row, message",
    [("bogus", "unknown algorithm 'bogus'"), ("mle", "no adversarial phase"), ("rankgan@foo=1", "no such field")],
)
def test_coco_results_bad_rows_are_refused_before_training(row, message, tmp_path, capsys):
    coco = load_script("coco_results", "benchmarks")
    with pytest.raises(SystemExit) as exc:
        coco.main(["--algos", row, "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "table")])
    assert exc.value.code == 2 and message in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing trained, nothing written


def test_coco_results_bare_temperatures_flag_is_refused(tmp_path, capsys):
    """A bare --temperatures once meant "no controls" silently; now it is an error, and --no-temperatures says so."""
    coco = load_script("coco_results", "benchmarks")
    with pytest.raises(SystemExit) as exc:
        coco.main(["--temperatures", "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "table")])
    assert exc.value.code == 2 and "--temperatures: expected at least one argument" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_dstar_diagnostic_statistics_by_hand():
    diag = load_script("dstar_diagnostic", "benchmarks")
    log_o = torch.tensor([-3.0, -2.0, -1.0, 0.0], dtype=torch.float64)
    log_g = torch.tensor([0.0, -1.0, -2.0, -3.0], dtype=torch.float64)
    stats = diag.reward_stats({"r": log_o.exp()}, log_o, log_g)["r"]
    assert stats["corr_log_oracle"] > 0.9 and stats["corr_log_g"] < -0.9  # rewards what the oracle likes, G does not
    assert stats["top10_log_oracle"] == 0.0 and stats["top10_log_g"] == -3.0  # top 10% of 4 samples: the best one
    assert stats["above_half"] == 0.25  # exp(0) = 1 is the only reward above 1/2
    r = torch.tensor([1.0] * 64 + [0.0] * 63 + [5.0], dtype=torch.float64)
    assert diag.top1_share(r) == pytest.approx((1 / 64 + 1.0) / 2)  # equal rewards: 1/64; one nonzero: all of it
    assert diag.reward_stats({"neg": -r}, r, r)["neg"]["top1_share_64"] is None  # undefined for negative rewards


def test_bench_optimal_prints_the_three_ways_and_refuses_bad_counts(capsys):
    """``benchmarks/bench_optimal.py`` at a tiny size: a line per way of scoring D*, each equal to the first (log D*,
    float32)."""
    script = load_script("bench_optimal", "benchmarks")
    assert script.main(["--generator", "paper", "--batch", "2", "--rollouts", "1", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    for way in ("log_probs", "whole", "rollouts"):
        found = re.search(rf"{way} +[\d.]+ s +[\d.]+x +max \|log D\* - log_probs'\| ([\d.e+-]+)", out)
        assert found and float(found[1]) < 1e-3, out
    with pytest.raises(SystemExit) as exit_info:
        script.main(["--rollouts", "0"])
    assert exit_info.value.code == 2 and "must be >= 1" in capsys.readouterr().err


def _sweep(points: list[tuple[float, float, float]]) -> list[dict[str, float]]:
    return [{"tau": t, "nll_test": test, "nll_oracle": oracle} for t, test, oracle in points]


def test_paired_rows_pairs_deltas_by_seed_against_each_files_own_mle(tmp_path, capsys):
    """``benchmarks/paired_rows.py``: Δ of each row against its own file's MLE curve, then paired by seed."""
    script = load_script("paired_rows", "benchmarks")
    mle = _sweep([(0.8, 7.6, 8.6), (0.9, 7.5, 8.8), (1.0, 7.4, 9.0)])  # MLE cooled to NLL-test 7.5: 8.8

    def rec(algo, seed, test, oracle):
        return {"algo": algo, "seed": seed, "sweep": mle if algo == "mle" else _sweep([(1.0, test, oracle)])}

    cold = "coldgan@lr=0.0003"
    a = [rec("mle", s, 0, 0) for s in (0, 1, 2)] + [rec("reinforce", 0, 7.5, 8.7), rec("reinforce", 1, 7.5, 8.6)]
    b = [rec("mle", s, 0, 0) for s in (0, 1)] + [rec(cold, 0, 7.5, 8.8), rec(cold, 1, 7.5, 8.9)]
    (tmp_path / "a.json").write_text(json.dumps(a))
    (tmp_path / "b.json").write_text(json.dumps(b))
    out = tmp_path / "t.md"
    assert script.main(["--rows", f"{tmp_path}/a.json:reinforce", f"{tmp_path}/b.json:{cold}", "--out", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert "seed 0 | seed 1 |" in lines[0] and "seed 2" not in lines[0]  # only the seeds both rows have
    assert "| -0.100 | -0.200 | -0.150 ± 0.071 | – |" in lines[2]  # reinforce: 8.7 - 8.8, 8.6 - 8.8
    # coldgan minus reinforce, per seed: 0.0 - (-0.1), 0.1 - (-0.2)
    assert "| +0.000 | +0.100 | +0.050 ± 0.071 | +0.100 / +0.300 | +0.200 ± 0.141 |" in lines[3]
    assert capsys.readouterr().out == out.read_text()
    for rows, message in [
        ([f"{tmp_path}/a.json:reinforce"], "at least two"),
        ([f"{tmp_path}/a.json:reinforce", f"{tmp_path}/b.json:z"], "has no row 'z'; it has: coldgan@lr=0.0003, mle"),
        ([f"{tmp_path}/a.json:reinforce", f"{tmp_path}/nope.json:reinforce"], "nope.json does not exist"),
        ([f"{tmp_path}/a.json:reinforce", "b.json"], "write FILE:ROW"),
    ]:
        with pytest.raises(SystemExit) as exc:
            script.main(["--rows", *rows])
        assert exc.value.code == 2 and message in capsys.readouterr().err
