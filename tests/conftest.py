"""What the tests share: a private extraction cache and git with no user configuration for every test,
the fixture trees, and the helpers that build repositories, edit them and run `armalias check`."""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import time
import shutil
import subprocess
from pathlib import Path

import pytest

from armalias.cli import main

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fixtures"
POKE = "arch/arm/kernel/demo_poke.c"
POKE_H = "arch/arm/include/asm/demo_poke.h"
# What the fixture tree already has: poke_half's AA001, and the residual AA002 note of every function that
# writes through another alias and only cleans where the bytes run (the three pokes, fiq.c, patch.c).
BASE_FINDINGS = 6


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own extraction cache: tests never share or touch the user's cache."""
    monkeypatch.setenv("ARMALIAS_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(autouse=True)
def _quiet_git(monkeypatch, tmp_path_factory):
    """No user or system git configuration (hooks, signing, templates) reaches the repositories tests
    build."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / "gitconfig"))
    for var in ("GIT_DIR", "GIT_INDEX_FILE", "GIT_WORK_TREE"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def demo_tree() -> Path:
    return FIXTURES / "tree"


def git(root: Path, *args: str, input: bytes | None = None) -> str:
    res = subprocess.run(["git", "-C", str(root), "-c", "user.name=A. Developer", "-c", "user.email=ada@example.org",
                          "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main", *args],
                         input=input, capture_output=True, check=True)
    return res.stdout.decode()


def make_tree(dest: Path) -> Path:
    shutil.copytree(FIXTURES / "tree", dest)
    shutil.copytree(FIXTURES / "check" / "tree", dest, dirs_exist_ok=True)
    return dest


def make_repo(tmp_path: Path) -> Path:
    root = make_tree(tmp_path / "linux")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "base")
    return root


def edit(root: Path, rel: str, old: str, new: str) -> None:
    path = root / rel
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} is not once in {rel}"
    path.write_text(text.replace(old, new))


def commit(root: Path, message: str) -> None:
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)


def snapshot(root: Path) -> dict[str, tuple[str, int]]:
    """Every file under root, .git included (index, refs, objects): content hash and mtime."""
    out = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            p = Path(dirpath) / name
            st = p.lstat()
            out[str(p.relative_to(root))] = (hashlib.sha256(p.read_bytes()).hexdigest(), st.st_mtime_ns)
    return out


def check_json(capsys, root: Path, *args: str) -> tuple[int, dict]:
    rc = main(["check", "--tree", str(root), "--format", "json", *args])
    out = capsys.readouterr().out
    return rc, json.loads(out) if out else {}


def summary(data: dict) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]], int]:
    pick = lambda fs: sorted((f["rule"], f["file"], f["function"]) for f in fs)  # noqa: E731
    return pick(data["new"]), pick(data["fixed"]), data["unchanged"]


# a change that introduces one finding (poke_insn loses its clean) and fixes another (poke_half)
UNCLEAN = ("\t*(u32 *)waddr = insn;\n\tpoke_clean(waddr, 4);\n", "\t*(u32 *)waddr = insn;\n")
CLEAN_HALF = ("\t*(u16 *)waddr = half;\n", "\t*(u16 *)waddr = half;\n\tpoke_clean(waddr, 2);\n")


def check_edit(tmp_path: Path, capsys, rel: str, before: str, after: str) -> tuple[int, list[tuple[str, str]]]:
    """`armalias check` of the patch from `before` to `after` of one file, in a tree of that file alone:
    the exit status and the new findings as (rule, function)."""
    root = tmp_path / "linux"
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / "Makefile").write_text("")
    (root / rel).write_text(before)
    patch = tmp_path / "edit.patch"
    patch.write_text("".join(difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                                  f"a/{rel}", f"b/{rel}")))
    rc = main(["check", "--tree", str(root), "--patch", str(patch), "--format", "json", "--no-cache"])
    return rc, [(f["rule"], f["function"]) for f in json.loads(capsys.readouterr().out)["new"]]


DAY_NS = 86_400 * 1_000_000_000


def age(root: Path, ns_ago: int = DAY_NS) -> None:
    """Files and directories a day old, as in an unpacked kernel tree (fresh ones are never trusted)."""
    t = time.time_ns() - ns_ago
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + dirnames:
            os.utime(os.path.join(dirpath, name), ns=(t, t))
    os.utime(root, ns=(t, t))


_TAG = re.compile(r"\b(expect|ok|todo-expect|todo-ok):\s*((?:AA\d{3}(?:@[+-]\d+)?[\s,]*)+)")


def expectations(path: Path) -> dict[str, set[tuple[int, str]]]:
    """The expectations a fixture states in C comments: `/* expect: AA001 */`, `/* ok: AA001@+1 */` and
    their `todo-` forms, as (line, code) per kind."""
    out: dict[str, set[tuple[int, str]]] = {"expect": set(), "ok": set(), "todo-expect": set(), "todo-ok": set()}
    for lineno, text in enumerate(path.read_text().splitlines(), 1):
        for kind, codes in _TAG.findall(text):
            for item in re.findall(r"AA\d{3}(?:@[+-]\d+)?", codes):
                code, _, off = item.partition("@")
                out[kind].add((lineno + (int(off) if off else 0), code))
    return out
