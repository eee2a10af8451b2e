"""Every committed result has its provenance: ``benchmarks/results/README.md`` lists each file of
``benchmarks/results/`` (exactly once) with the command that makes it, and every such command parses with its
script's parser today (parsed only: the work after the parsing is never started)."""

from __future__ import annotations

import argparse
import inspect
import re
import shlex
import sys
from pathlib import Path

import pytest
from tiny_runs import ROOT, load_script

RESULTS = ROOT / "benchmarks" / "results"
README = RESULTS / "README.md"
HEADER = "| files | command | commit | machine | wall time | notes |"


def table() -> list[tuple[list[str], str]]:
    """``(file patterns, command)`` of every row of the README's table."""
    lines = README.read_text().splitlines()
    start = lines.index(HEADER) + 2
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        commands = re.findall(r"`([^`]+)`", cells[1])
        assert len(commands) == 1, f"one command per row: {line}"
        rows.append((re.findall(r"`([^`]+)`", cells[0]), commands[0]))
    return rows


def committed() -> set[str]:
    return {str(p.relative_to(RESULTS)) for p in RESULTS.rglob("*") if p.is_file() and p != README}


def test_every_committed_result_is_listed_once():
    seen: dict[str, str] = {}
    for patterns, _ in table():
        for pattern in patterns:
            matched = {str(p.relative_to(RESULTS)) for p in RESULTS.glob(pattern) if p.is_file()}
            assert matched, f"{pattern} (benchmarks/results/README.md) matches no file"
            for name in matched:
                assert name not in seen, f"{name} is listed twice ({seen[name]} and {pattern})"
                seen[name] = pattern
    missing = sorted(committed() - set(seen))
    assert not missing, f"not in benchmarks/results/README.md: {missing}"


class Parsed(Exception):
    """Raised in place of the work: the command's options parsed."""


def script_and_argv(command: str) -> tuple[Path, list[str]]:
    """The script a command runs and its options (``VAR=value`` settings and a ``torchrun ...`` launcher
    before the script are dropped)."""
    words = shlex.split(command)
    at = next(i for i, w in enumerate(words) if w.endswith(".py"))
    return ROOT / words[at], words[at + 1 :]


COMMANDS = sorted({command for _, command in table()})


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_parses(command, monkeypatch, capsys):
    script, argv = script_and_argv(command)
    assert script.is_file(), f"{command}: no such script"
    module = load_script(script.stem, script.parent.name)
    real = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        raise Parsed(real(self, args, namespace))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    monkeypatch.setattr(sys, "argv", [str(script), *argv])
    takes_argv = bool(inspect.signature(module.main).parameters)
    try:
        code = module.main(argv) if takes_argv else module.main()
    except Parsed:
        return
    except SystemExit as exc:
        code = exc.code
    pytest.fail(f"{command}: exit code {code} before its options parsed: {capsys.readouterr().err.strip()}")
