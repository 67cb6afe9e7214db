"""The git hooks: contrib/pre-commit-hook.sh refuses a commit that introduces a finding (also with
`git commit -a`, through the index git prepares), and .pre-commit-hooks.yaml runs `check --staged`."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from armalias.cli import build_parser
from conftest import POKE, REPO, UNCLEAN, edit, git, make_repo

HOOK = REPO / "contrib" / "pre-commit-hook.sh"


def armalias_command() -> str:
    beside = Path(sys.executable).parent / "armalias"
    found = str(beside) if beside.exists() else shutil.which("armalias")
    if not found:
        pytest.skip("the armalias command is not installed")
    return found


def try_commit(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(root), "-c", "user.name=A", "-c", "user.email=a@example.org",
                           "commit", "-q", "-m", "change", *args], capture_output=True, text=True)


def test_plain_hook_refuses_a_commit_that_adds_a_finding(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("ARMALIAS", armalias_command())
    root = make_repo(tmp_path)
    shutil.copy(HOOK, root / ".git" / "hooks" / "pre-commit")
    head = git(root, "rev-parse", "HEAD")
    (root / "NOTES").write_text("docs only\n")
    git(root, "add", "NOTES")
    assert try_commit(root).returncode == 0  # nothing analysable staged
    assert git(root, "rev-parse", "HEAD") != head
    head = git(root, "rev-parse", "HEAD")
    edit(root, POKE, *UNCLEAN)
    git(root, "add", POKE)
    refused = try_commit(root)
    assert refused.returncode != 0
    assert re.search(r"demo_poke\.c:11:\d+: error: .*\[AA001\]", refused.stdout + refused.stderr)
    assert "introduces" in refused.stderr
    assert git(root, "rev-parse", "HEAD") == head  # refused
    git(root, "reset", "-q")  # unstage: the working tree still has the bug
    assert try_commit(root, "-a").returncode != 0  # commit -a: the hook reads the index git prepared
    assert git(root, "rev-parse", "HEAD") == head
    assert try_commit(root, "-a", "--no-verify").returncode == 0
    # a warning (2 bytes cleaned, 4 written: AA003) passes when the threshold is error
    edit(root, POKE, "\tpoke_clean(waddr, len);\n", "\tpoke_clean(waddr, 2);\n")
    edit(root, POKE, "\tmemcpy(waddr, src, len);\n", "\t*(u32 *)waddr = *(u32 *)src;\n")
    assert try_commit(root, "-a").returncode != 0
    monkeypatch.setenv("ARMALIAS_FAIL_ON", "error")
    assert try_commit(root, "-a").returncode == 0


def test_pre_commit_framework_manifest():
    text = (REPO / ".pre-commit-hooks.yaml").read_text()
    entry = re.search(r"^\s*entry:\s*(.+)$", text, re.M).group(1).split()
    assert entry[0] == "armalias"
    args = build_parser().parse_args(entry[1:])
    assert args.command == "check" and args.staged and args.git_range is None and args.patch is None
    assert re.search(r"^\s*pass_filenames:\s*false\s*$", text, re.M)
    files = re.compile(re.search(r"^\s*files:\s*'(.+)'\s*$", text, re.M).group(1))
    assert all(files.search(p) for p in ("arch/arm/kernel/patch.c", "arch/arm/include/asm/x.h",
                                         "arch/arm/mm/cache-v4wb.S", ".armalias.toml"))
    assert not any(files.search(p) for p in ("README", "Documentation/x.rst", "arch/arm/Kconfig"))
