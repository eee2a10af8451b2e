"""The algorithm comparison at tiny size, in process: every row, the sweeps, the tables, resume, the script's
--tables-only; and the frontier interpolation by hand."""

from __future__ import annotations

import csv
import json
import math

import pytest
import tiny_runs
import torch
from tiny_runs import load_script

from seqgan_rl.config import TrainConfig
from seqgan_rl.models import OracleLSTM
from seqgan_rl.training.compare import (
    ALGOS,
    FIXED_NLL_TEST,
    PUBLISHED,
    algo_run,
    fixed_rows,
    frontier_at,
    leaderboard,
    matched_rows,
    merge_results,
    paired_interval,
    parse_row,
    row_label,
    row_order,
    run_comparison,
    tuning_choices,
    validation_rows,
    write_outputs,
)  # fmt: skip

V, T = 20, 6


def test_frontier_reads_the_useful_branch_by_linear_interpolation():
    sweep = [
        {"tau": 0.8, "nll_oracle": 8.0, "nll_test": 9.0},
        {"tau": 0.9, "nll_oracle": 8.5, "nll_test": 8.6},
        {"tau": 1.0, "nll_oracle": 9.0, "nll_test": 8.4},
        {"tau": 1.2, "nll_oracle": 9.5, "nll_test": 8.5},  # past the lowest NLL-test: both worse, not read
    ]
    assert frontier_at(sweep, 8.5) == pytest.approx(8.75)  # halfway between tau 0.9 and 1.0
    assert frontier_at(sweep, 8.8) == pytest.approx(8.25)
    assert frontier_at(sweep, 8.4) == pytest.approx(9.0)
    assert math.isnan(frontier_at(sweep, 8.3)) and math.isnan(frontier_at(sweep, 9.1))


def test_matched_rows_compare_with_mle_plus_temperature_at_equal_nll_test():
    def pt(tau, oracle, test):
        return {"tau": tau, "nll_oracle": oracle, "nll_test": test}

    mle = {"algo": "mle", "seed": 0, "sweep": [pt(0.9, 8.5, 8.6), pt(1.0, 9.0, 8.4)]}
    algo = {"algo": "reinforce", "seed": 0, "sweep": [pt(0.9, 8.3, 8.8), pt(1.0, 8.6, 8.5)]}
    row = next(r for r in matched_rows([mle, algo]) if r["algo"] == "reinforce")
    assert row["mle_temp_nll_oracle"] == pytest.approx(8.75)  # MLE cooled to NLL-test 8.5
    assert row["minus_mle_temp"] == pytest.approx(8.6 - 8.75)
    assert row["oracle_at_mle_test+0.2"] == pytest.approx(8.5)  # its own curve at NLL-test 8.6: a third of the way
    assert math.isnan(row["oracle_at_mle_test+0.05"])  # its curve never gets that diverse


def test_paired_interval_by_hand():
    st = paired_interval([-0.1, -0.2, -0.3, math.nan])  # NaN: a seed whose Δ could not be read
    assert st["n"] == 3 and st["mean"] == pytest.approx(-0.2) and st["std"] == pytest.approx(0.1)
    half = 4.303 * 0.1 / math.sqrt(3)  # t(0.975, 2 df)
    assert (st["lo"], st["hi"]) == (pytest.approx(-0.2 - half), pytest.approx(-0.2 + half))
    assert st["max"] == pytest.approx(-0.1)
    one = paired_interval([0.5])
    assert one["mean"] == 0.5 and math.isnan(one["lo"]) and math.isnan(paired_interval([])["mean"])


def _record(algo, seed, tau1, cooled, wall=10.0):
    """A comparison record whose sweep is two points: (tau 1: ``tau1``) and (tau 0.9: ``cooled``), each
    (NLL-oracle, NLL-test)."""
    pts = [{"tau": 0.9, "nll_oracle": cooled[0], "nll_test": cooled[1]}, {"tau": 1.0, "nll_oracle": tau1[0],
           "nll_test": tau1[1]}]  # fmt: skip
    final = {"iteration": 2, "eval/nll_oracle": tau1[0], "eval/nll_test": tau1[1]}
    adv = algo != "mle"
    return {"algo": algo, "seed": seed, "sweep": pts, "final": final, "best": final, "mle": final,
            "sequences": 128 if adv else 0, "wall_s": wall if adv else 0.0, "threads": 1,
            "curve": [{"sequences": 0, "eval/nll_oracle": tau1[0], "eval/nll_test": tau1[1]}],
            "temperatures": [0.9, 1.0], "sweep_samples": 8}  # fmt: skip


def test_leaderboard_ranks_by_the_paired_delta_and_marks_the_noise(tmp_path):
    # MLE's curve: NLL-oracle 9.0 at NLL-test 8.4, 8.0 at 8.8 (a line: NLL-oracle = 9 - 2.5 (test - 8.4))
    recs = [_record("mle", s, (9.0, 8.4), (8.0, 8.8)) for s in (0, 1, 2)]
    # reinforce: below the curve on every seed (Δ -0.2, -0.3, -0.25); constant: on it up to noise (±0.1, 0)
    for s, d in enumerate((-0.2, -0.3, -0.25)):
        recs.append(_record("reinforce", s, (9.0 - 2.5 * 0.2 + d, 8.6), (8.0, 9.0), wall=20.0))
    for s, d in enumerate((0.1, -0.1, 0.03)):
        recs.append(_record("constant", s, (9.0 - 2.5 * 0.2 + d, 8.6), (8.0, 9.0)))
    board = leaderboard(recs)
    assert [r["algo"] for r in board] == ["reinforce", "mle", "constant"]
    rf, mle, const = board
    assert rf["delta_mean"] == pytest.approx(-0.25) and rf["delta_max"] == pytest.approx(-0.2)
    assert rf["distinguishable"] and rf["every_seed_below"] and rf["sequences_per_s"] == pytest.approx(128 / 20)
    assert mle["delta_mean"] == 0 and not mle["distinguishable"]
    assert const["delta_mean"] == pytest.approx(0.01) and not const["distinguishable"] and not const["every_seed_below"]
    write_outputs(recs, tmp_path, "lb")
    md = (tmp_path / "lb_leaderboard.md").read_text()
    assert "| 1 | REINFORCE as in the paper" in md and "**no**" in md and "reference" in md


def test_curves_read_at_the_published_nll_test_values_paired_with_mle(tmp_path):
    # MLE's curve: NLL-oracle = 9 - 2.5 (test - 8.4) between NLL-test 8.4 and 8.8; reinforce's lies 0.1 below it
    # at 8.5 (its own line from (8.75, 8.5)... to (8.0, 8.8)); neither reaches 7.8, 8.0 or 8.27
    recs = [_record("mle", 0, (9.0, 8.4), (8.0, 8.8)), _record("reinforce", 0, (8.65, 8.5), (7.9, 8.8))]
    rows = {(r["algo"], r["nll_test"]): r for r in fixed_rows(recs, levels=(8.27, 8.5, 8.6))}
    assert math.isnan(rows[("mle", 8.27)]["nll_oracle"]) and math.isnan(rows[("reinforce", 8.27)]["delta"])
    assert rows[("mle", 8.5)]["nll_oracle"] == pytest.approx(8.75) and rows[("mle", 8.5)]["delta"] == 0
    r = rows[("reinforce", 8.6)]  # a third of the way from (8.5, 8.65) to (8.8, 7.9)
    assert r["nll_oracle"] == pytest.approx(8.4) and r["mle_nll_oracle"] == pytest.approx(8.5)
    assert r["delta"] == pytest.approx(-0.1)
    write_outputs(recs, tmp_path, "fx", published=True)
    md = (tmp_path / "fx_frontier.md").read_text()
    assert "| *MLE, LSTM 2 x 128, dropout 0.6 (Caccia et al. 2020)* | *8.67* | *8.15* | *7.52* | *7.06* |" in md
    assert "NLL-test 8.27" in md and len(PUBLISHED) == 3 and FIXED_NLL_TEST == (7.8, 8.0, 8.27, 8.5)
    with (tmp_path / "fx_fixed.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 2 * len(FIXED_NLL_TEST)
    write_outputs(recs, tmp_path, "plain")  # another oracle: no published rows
    assert "Caccia" not in (tmp_path / "plain_frontier.md").read_text()


def test_merge_results_joins_folders_and_refuses_two_different_runs_of_a_row(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    (a / "results.json").write_text(json.dumps([_record("mle", 0, (9.0, 8.4), (8.0, 8.8))]))
    (b / "results.json").write_text(json.dumps([_record("reinforce", 0, (8.7, 8.5), (8.0, 9.0))]))
    assert {r["algo"] for r in merge_results([a, b])} == {"mle", "reinforce"}
    (b / "results.json").write_text(json.dumps([_record("mle", 0, (9.1, 8.4), (8.0, 8.8))]))
    with pytest.raises(ValueError, match="mle seed 0 is in two folders"):
        merge_results([a, b])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        merge_results([a, tmp_path / "none"])


def test_a_row_sets_fields_of_its_agent_and_bad_rows_name_the_fix():
    from seqgan_rl.presets import train_preset

    base = train_preset("cpu", 0)
    assert parse_row("rloo@lr=0.003,normalize=true") == ("rloo", {"lr": 0.003, "normalize": True})
    cfg = algo_run("reinforce_kl@kl_coef=0.2", base)
    assert (cfg.algo, cfg.agent.kl_coef, cfg.agent.lr) == ("reinforce_kl", 0.2, base.agent.lr)
    assert algo_run("ppo@lr=0.0003", base).agent.lr == 0.0003 and algo_run("ppo", base).agent.lr == 1e-3
    assert row_label("rloo@lr=0.003") == ALGOS["rloo"] + " [lr 0.003]" and row_label("rloo") == ALGOS["rloo"]
    assert row_order(["rloo@lr=0.003", "mle", "rloo", "reinforce", "rloo"]) == ["mle", "reinforce", "rloo",
                                                                                "rloo@lr=0.003"]  # fmt: skip
    for row, message in [("foo", "unknown algorithm 'foo'"), ("rloo@lr", "ALGO@FIELD=VALUE"),
                         ("mle@lr=1", "takes no settings"), ("constant@lr=1", "takes no settings")]:  # fmt: skip
        with pytest.raises(ValueError, match=message):
            parse_row(row)
    with pytest.raises(ValueError, match="ReinforceConfig has no such field.*its fields: lr"):
        algo_run("rloo@lrr=0.1", base)
    with pytest.raises(ValueError, match="lr, grad_clip and batch_size must be > 0"):
        algo_run("rloo@lr=-1", base)


def test_diagnostic_rows_set_the_adversarial_phase_and_say_they_use_the_oracle():
    """reinforce@reward=optimal (D*) and coldgan@real_data=oracle,real_pool=N (an oracle-fed D) set fields of the
    adversarial phase, are labelled as diagnostics, and are never chosen as their algorithm's tuned setting."""
    from seqgan_rl.presets import train_preset

    base = train_preset("cpu", 0)
    cfg = algo_run("reinforce_kl@reward=optimal,lr=0.0003", base)
    assert (cfg.algo, cfg.adversarial.reward, cfg.agent.lr) == ("reinforce_kl", "optimal", 0.0003)
    fed = algo_run("coldgan@real_data=oracle,real_pool=100000", base).adversarial
    assert (fed.real_data, fed.real_pool, fed.reward) == ("oracle", 100000, "mc")
    assert row_label("reinforce@reward=optimal").endswith("[reward optimal] (DIAGNOSTIC: oracle access)")
    assert "DIAGNOSTIC" not in row_label("reinforce@lr=0.003")
    recs = [_record("mle", s, (9.0, 8.4), (8.0, 8.8)) for s in (100, 101)]
    for s in (100, 101):
        recs.append(_record("reinforce", s, (8.85, 8.4), (8.0, 9.0)))
        recs.append(_record("reinforce@reward=optimal", s, (8.0, 8.4), (8.0, 9.0)))  # far better: oracle access
    for r in recs:
        for p, v in zip(r["sweep"], (8.0, 8.4), strict=False):
            p["nll_valid"] = v
    assert tuning_choices(recs) == {"reinforce": "reinforce", "reinforce@optimal": "reinforce@reward=optimal"}


def test_tuning_picks_each_algorithms_setting_on_the_validation_nll_never_the_test_set(tmp_path):
    def valid(record, at1, cooled):  # validation NLL of the (tau 0.9, tau 1) sweep points
        record["sweep"][0]["nll_valid"], record["sweep"][1]["nll_valid"] = cooled, at1
        return record

    # MLE's validation curve: NLL-oracle 9.0 at NLL-valid 8.0, 8.0 at 8.4 (NLL-oracle = 9 - 2.5 (valid - 8.0))
    recs = [valid(_record("mle", s, (9.0, 8.4), (8.0, 8.8)), 8.0, 8.4) for s in (100, 101)]
    # on the test set rloo sits far below MLE's curve (it would win there); on the validation NLL it is 0.1 above
    for s in (100, 101):
        recs.append(valid(_record("rloo", s, (8.75 + 0.1, 8.4), (8.0, 9.0)), 8.1, 8.5))
    for s, d in ((100, -0.05), (101, 0.01)):  # mean -0.02: the better setting
        recs.append(valid(_record("rloo@lr=0.003", s, (8.75 + d, 8.8), (8.0, 9.0)), 8.1, 8.5))
    recs.append(valid(_record("ppo", 100, (9.5, 8.4), (9.0, 8.5)), 7.5, 7.6))  # below MLE's curve: no Δ
    rows = {(v["algo"], v["seed"]): v for v in validation_rows(recs)}
    assert rows[("rloo", 100)]["delta_valid"] == pytest.approx(0.1)
    assert rows[("rloo@lr=0.003", 100)]["delta_valid"] == pytest.approx(-0.05)
    assert math.isnan(rows[("ppo", 100)]["delta_valid"]) and ("mle", 100) not in rows
    assert tuning_choices(recs) == {"rloo": "rloo@lr=0.003", "ppo": "ppo"}
    write_outputs(recs, tmp_path, "tune")
    md = (tmp_path / "tune_tuning.md").read_text().splitlines()
    assert md[-3].startswith(f"| {ALGOS['rloo']} | +0.100 | +0.100 | +0.100 |") and not md[-3].endswith("**chosen** |")
    assert md[-2].startswith(f"| {ALGOS['rloo']} [lr 0.003] | -0.050 | +0.010 | -0.020 |")
    assert md[-2].endswith("| **chosen** |") and md[-1].startswith(f"| {ALGOS['ppo']} | +nan | — | – |")
    write_outputs([r for r in recs if r["seed"] == 100 and "@" not in r["algo"]], tmp_path / "t", "x")
    assert (tmp_path / "t" / "x_tuning.md").exists()
    for r in recs:  # no validation split: no tuning table
        for p in r["sweep"]:
            p.pop("nll_valid")
    write_outputs(recs, tmp_path / "plain", "x")
    assert not (tmp_path / "plain" / "x_tuning.md").exists()


def test_tables_only_keeps_the_rows_asked_for(tmp_path, capsys):
    runs, res = tmp_path / "runs", tmp_path / "res"
    runs.mkdir()
    recs = [_record(a, s, (9.0 - 0.1 * i, 8.4 + 0.05 * i), (8.0, 8.8)) for s in (0, 1)
            for i, a in enumerate(("mle", "rloo", "rloo@lr=0.003"))]  # fmt: skip
    (runs / "results.json").write_text(json.dumps(recs))
    script = load_script("compare_algos")
    args = ["--tables-only", "--out", str(runs), "--results-dir", str(res), "--name", "lb"]
    assert script.main([*args, "--algos", "mle", "rloo@lr=0.003"]) == 0
    board = (res / "lb_leaderboard.md").read_text()
    assert "[lr 0.003]" in board and f"| {ALGOS['rloo']} |" not in board
    assert script.main(args) == 0 and f"| {ALGOS['rloo']} |" in (res / "lb_leaderboard.md").read_text()
    assert script.main([*args, "--algos", "grpo"]) == 2 and "no record of grpo" in capsys.readouterr().err
    assert script.main([*args, "--algos", "grpo@x"]) == 2 and "ALGO@FIELD=VALUE" in capsys.readouterr().err


def tiny_config(iterations: int = 2) -> TrainConfig:
    return tiny_runs.tiny_config(iterations=iterations, mle_epochs=1, every=1)


@pytest.mark.slow
def test_comparison_runs_every_row_resumes_and_rebuilds_tables(tmp_path, capsys):
    oracle = OracleLSTM.random(vocab_size=V, seq_len=T, embed_dim=8, hidden_dim=8, seed=3)
    runs, res = tmp_path / "runs", tmp_path / "results"
    cpu = torch.device("cpu")
    records = run_comparison(tiny_config(), [0], runs, cpu, oracle, temperatures=(0.7, 1.0, 1.4), sweep_samples=64)
    paths = write_outputs(records, res, "cmp")
    for f in ("cmp.md", "cmp.csv", "cmp_frontier.md", "cmp_frontier.csv", "cmp_curves.png", "cmp_frontier.png"):
        assert res / f in paths and (res / f).exists(), f
    with (res / "cmp.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {(r["algo"], r["seed"]) for r in rows} == {(a, "0") for a in ALGOS}
    assert all(r["sequences"] == ("0" if r["algo"] == "mle" else "16") for r in rows)  # 2 updates x 8 sequences
    mle = next(r for r in records if r["algo"] == "mle")
    assert [p["tau"] for p in mle["sweep"]] == [0.7, 1.0, 1.4]
    assert len({json.dumps(r["mle"]) for r in records}) == 1  # every row started from the same MLE checkpoint
    md = (res / "cmp_frontier.md").read_text()
    assert "MLE + temperature" in md and "SB3 PPO" in md

    with pytest.raises(ValueError, match="--resume"):  # finished rows are not silently overwritten
        run_comparison(tiny_config(), [0], runs, cpu, oracle, ["ppo"], (0.7, 1.0, 1.4), 64)
    before = (runs / "ppo-s0" / "summary.json").stat().st_mtime_ns
    again = run_comparison(tiny_config(), [0], runs, cpu, oracle, ["ppo", "mle"], (0.7, 1.0, 1.4), 64, resume=True)
    assert (runs / "ppo-s0" / "summary.json").stat().st_mtime_ns == before  # reused as is
    assert len(again) == len(json.loads((runs / "results.json").read_text())) == len(ALGOS)  # merged
    swept = run_comparison(tiny_config(), [0], runs, cpu, oracle, ["ppo"], (0.8, 1.0), 64, resume=True)
    assert (runs / "ppo-s0" / "summary.json").stat().st_mtime_ns == before  # a new sweep reuses the run
    assert next(r for r in swept if r["algo"] == "ppo")["temperatures"] == [0.8, 1.0]
    changed = tiny_config(iterations=3)  # a different schedule must not silently reuse the finished rows
    with pytest.raises(ValueError, match=r"iterations: 2 -> 3"):
        run_comparison(changed, [0], runs, cpu, oracle, ["reinforce"], (0.7, 1.0, 1.4), 64, resume=True)

    script = load_script("compare_algos")
    (res / "cmp.md").unlink()
    assert script.main(["--tables-only", "--out", str(runs), "--results-dir", str(res), "--name", "cmp"]) == 0
    assert (res / "cmp.md").read_text().count("| 1 |") == len(ALGOS)  # one row an algorithm, one seed each
    assert script.main(["--tables-only", "--out", str(tmp_path / "none")]) == 2
    assert script.main(["--threads", "0", "--out", str(tmp_path / "x")]) == 2
    assert "threads" in capsys.readouterr().err


def test_the_strong_preset_from_the_command_line_sweeps_both_sides_with_validation(tmp_path):
    # the strong preset's pipeline at toy sizes: a G with dropout and a validation split, the sweep's
    # default temperatures (0.45-1.2), the validation NLL in every sweep point, the fixed-NLL-test table
    npz = tmp_path / "oracle.npz"
    OracleLSTM.random(vocab_size=V, seq_len=T, embed_dim=8, hidden_dim=8, seed=3).save_npz(npz)
    out, res = tmp_path / "runs", tmp_path / "res"
    args = ["--preset", "strong", "--oracle", str(npz), "--algos", "mle", "reinforce", "reinforce@lr=3e-5",
            "--seeds", "0",
            "--mle-epochs", "2", "--d-pretrain-rounds", "1", "--iterations", "1", "--eval-samples", "32",
            "--num-rollouts", "2", "--eval-every", "1", "--embed-dim", "8", "--hidden-dim", "8", "--num-valid", "64",
            "--sweep-samples", "32", "--threads", "1", "--out", str(out), "--results-dir", str(res)]  # fmt: skip
    assert load_script("compare_algos").main(args) == 0
    records = json.loads((out / "results.json").read_text())
    assert {r["algo"] for r in records} == {"mle", "reinforce", "reinforce@lr=3e-5"}
    assert json.loads((out / "reinforce@lr=3e-5-s0" / "config.json").read_text())["agent"]["lr"] == 3e-5
    assert "**chosen**" in (res / "compare_strong_file-V20-T6_tuning.md").read_text()  # a validation split: tuned
    for r in records:
        assert [p["tau"] for p in r["sweep"]] == [0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0,
                                                  1.05, 1.1, 1.2]  # fmt: skip
        assert all(p["nll_valid"] > 0 for p in r["sweep"])
    config = json.loads((out / "pretrain-s0" / "config.json").read_text())
    assert (config["generator"]["dropout"], config["mle"]["num_valid"], config["mle"]["patience"]) == (0.6, 64, 10)
    assert (res / "compare_strong_file-V20-T6_fixed.csv").exists()
    assert "Caccia" not in (res / "compare_strong_file-V20-T6_frontier.md").read_text()  # not the paper's oracle
