"""The commit message rule of .githooks/commit-msg (issue 22), which .ci/check-commits applies."""

from __future__ import annotations

import importlib.machinery
import importlib.util
from pathlib import Path

import pytest

HOOK = Path(__file__).parent.parent / ".githooks" / "commit-msg"


def hook():
    loader = importlib.machinery.SourceFileLoader("commit_msg_hook", str(HOOK))
    spec = importlib.util.spec_from_loader("commit_msg_hook", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


@pytest.mark.parametrize("message,bad", [
    ("checks: find where code runs\n\nBecause the bench showed it.\n", []),
    ("README: say where the reader lives\n\nSo it is found.\n", []),
    ("Merge branch 'x'\n", []),
    ("find where code runs\n\nwhy\n", ["is not `area: imperative summary`"]),
    ("checks: " + "x" * 70 + "\n\nwhy\n", ["over 72"]),
    ("checks: find it\nwhy on the second line\n", ["second line is not blank", "no body"]),
    ("checks: find it\n", ["no body"]),
    ("checks: find it\n\n# a comment git strips\n", ["no body"]),
    ("", ["empty"]),
])
def test_the_rule(message: str, bad: list[str]):
    found = hook().problems(message)
    assert len(found) == len(bad) and all(b in f for b, f in zip(bad, found))


def test_the_hook_exits_1_on_a_bad_message(tmp_path: Path, capsys):
    m = tmp_path / "MSG"
    m.write_text("no area here\n")
    assert hook().main(["commit-msg", str(m)]) == 1
    m.write_text("tests: add the rule\n\nIt is checked in CI.\n")
    assert hook().main(["commit-msg", str(m)]) == 0
