"""Every option of every script, tried with bad values: a value of the wrong type, NaN, +-inf, zero, a negative
one and an absurdly large one. Each ends either accepted (the run is reached; stubbed here) or with exit code 2
and one line on stderr naming the option, never a traceback. The options come from the scripts' parsers, so a
new option is tried as soon as it is added."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch
from tiny_runs import load_script

from seqgan_rl.cli import Number

SCRIPTS = ("train_agent", "pretrain", "compare_algos", "sample")
BAD = ("x1", "nan", "inf", "-inf", "0", "-1", str(10**30), "1e300")
"""The values tried; "0" alone may be accepted (by an option whose range starts at 0)."""
STUB = {"train_agent": "run_training", "pretrain": "run_pretraining", "compare_algos": "run_comparison",
        "sample": "generate_sentences"}  # fmt: skip
"""The call that starts each script's work: reaching it means the options were accepted."""


class Reached(Exception):
    """Raised by the stubbed work: the script accepted its options."""


def _reach(*args, **kwargs):
    raise Reached


@pytest.fixture(scope="module")
def scripts():
    return {name: load_script(name) for name in SCRIPTS}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A text generator checkpoint for ``sample.py``."""
    from seqgan_rl.config import GeneratorConfig
    from seqgan_rl.data.text import Vocabulary
    from seqgan_rl.models import Generator
    from seqgan_rl.training.run_folder import PlainFolder, save_generator

    vocab = Vocabulary(["a", "dog", "runs", "."])
    g = Generator(GeneratorConfig(vocab_size=8, seq_len=6, embed_dim=4, hidden_dim=4, start_token=1, eos_token=2,
                                  pad_token=0))  # fmt: skip
    folder = tmp_path_factory.mktemp("checkpoint")
    save_generator(g, PlainFolder(folder), "g.pt", vocab)
    return folder / "g.pt"


def base_argv(name: str, tmp_path: Path, checkpoint: Path) -> list[str]:
    """Valid options of a tiny run of ``name`` (its work stubbed)."""
    if name == "sample":
        return [str(checkpoint), "--out", str(tmp_path / "s.txt")]
    oracle = ["--oracle", "random:0", "--vocab-size", "12", "--seq-len", "6", "--threads", "1"]
    return [*oracle, "--out", str(tmp_path / "run")]


def options(name: str) -> list[argparse.Action]:
    parser = load_script(name).build_parser()
    return [a for a in parser._actions if a.nargs != 0 and not isinstance(a, argparse._HelpAction)]


def with_value(argv: list[str], action: argparse.Action, value: str) -> list[str]:
    """``argv`` with ``action`` set to ``value`` (``--opt=value``, so that "-1" and "-inf" stay values)."""
    if not action.option_strings:  # the positional (sample.py's checkpoint)
        return [value, *argv[1:]]
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in action.option_strings:
            skip = True
        else:
            out.append(arg)
    return [*out, f"{action.option_strings[-1]}={value}"]


def outcome(script, name: str, argv: list[str], monkeypatch, capsys) -> tuple[str, str]:
    monkeypatch.setattr(script, STUB[name], _reach)
    capsys.readouterr()
    threads = torch.get_num_threads()
    try:
        code = script.main(argv)
        result = f"exit {code}"
    except Reached:
        result = "accepted"
    finally:
        torch.set_num_threads(threads)
    return result, capsys.readouterr().err


CASES = [(name, i) for name in SCRIPTS for i in range(len(options(name)))]


@pytest.mark.parametrize(("name", "index"), CASES, ids=[f"{n}-{options(n)[i].dest}" for n, i in CASES])
def test_every_option_refuses_bad_values_by_name(name, index, scripts, checkpoint, tmp_path, monkeypatch, capsys):
    action = options(name)[index]
    script = scripts[name]
    numeric = isinstance(action.type, Number) or action.type in (int, float)
    ok, err = outcome(script, name, base_argv(name, tmp_path, checkpoint), monkeypatch, capsys)
    assert ok == "accepted", f"{name}: the base options are refused: {err}"
    for value in BAD:
        result, err = outcome(script, name, with_value(base_argv(name, tmp_path, checkpoint), action, value),
                              monkeypatch, capsys)  # fmt: skip
        where = f"{name} {action.option_strings or action.dest}={value!r}"
        assert "Traceback" not in err, where
        if result == "accepted":
            refusable = numeric and value != "0" or action.choices is not None
            assert not refusable, f"{where} was accepted"
            if numeric and value == "0":  # zero accepted: the option's own range says so
                assert isinstance(action.type, Number) and action.type.low == 0 and not action.type.low_open, where
            continue
        assert result == "exit 2", f"{where}: {result}: {err}"
        lines = err.strip().splitlines()
        assert len(lines) == 1, f"{where}: more than one line on stderr:\n{err}"
        named = [*action.option_strings, action.dest] if action.option_strings else [action.dest, value]
        assert any(n in lines[0] for n in named), f"{where}: the message does not name the option: {lines[0]}"
    assert not any(tmp_path.iterdir()), (
        f"{name} {action.dest}: a refused or stubbed command wrote {list(tmp_path.iterdir())}"
    )


BATTERY = [
    ("train_agent", ["--mle-lr", "inf"], "--mle-lr"),
    ("train_agent", ["--algo", "reinforce_kl", "--kl-coef", "inf"], "--kl-coef"),
    ("train_agent", ["--mle-lr", "1e300"], "--mle-lr"),
    ("train_agent", ["--seed", "1208925819614629174706176"], "--seed"),
    ("train_agent", ["--threads", "1000000"], "--threads"),
    ("train_agent", ["--num-rollouts", "1000000000000"], "--num-rollouts"),
    ("train_agent", ["--seq-len", "1000000000"], "--seq-len"),
    ("train_agent", ["--hidden-dim", "1000000000"], "--hidden-dim"),
    ("train_agent", ["--vocab-size", "1000000000000"], "--vocab-size"),
    # in their options' ranges, but too large for the memory (16 GiB here): the estimate refuses them by name
    ("train_agent", ["--num-rollouts", "100000000"], "--num-rollouts"),
    ("train_agent", ["--seq-len", "100000000"], "--seq-len"),
    ("train_agent", ["--hidden-dim", "10000000"], "--hidden-dim"),
    ("train_agent", ["--vocab-size", "100000000"], "--vocab-size"),
    ("train_agent", ["--mle-batch-size", "100000000"], "--mle-batch-size"),
    ("train_agent", ["--eval-samples", "1000000000"], "--eval-samples"),
    ("pretrain", ["--hidden-dim", "10000000"], "--hidden-dim"),
    ("compare_algos", ["--num-rollouts", "100000000"], "--num-rollouts"),
    ("sample", ["--threads", "0"], "--threads"),
    ("sample", ["--threads", "-1"], "--threads"),
    ("sample", ["-n", "2000000000"], "--num"),
]
"""The independent battery's inputs that escaped as tracebacks, a segfault or late failures (issue 32)."""


@pytest.mark.parametrize(("name", "extra", "option"), BATTERY, ids=[f"{n}{' '.join(e)}" for n, e, _ in BATTERY])
def test_the_battery_cases_exit_2_naming_the_option(name, extra, option, scripts, checkpoint, tmp_path, monkeypatch,
                                                    capsys):  # fmt: skip
    import seqgan_rl.cli

    monkeypatch.setattr(seqgan_rl.cli, "available_memory", lambda: 16 * 2**30)
    argv = base_argv(name, tmp_path, checkpoint)
    for i in range(0, len(extra), 2):
        action = next(a for a in options(name) if extra[i] in a.option_strings)
        argv = with_value(argv, action, extra[i + 1])
    result, err = outcome(scripts[name], name, argv, monkeypatch, capsys)
    assert result == "exit 2", err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and option in lines[0], err
    assert not any(tmp_path.iterdir())
