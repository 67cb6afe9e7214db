"""Issue acceptance on linux-source 6.12: in a git repository of the tree's arch/arm and include,
a commit removing the flush_kernel_vmap_range calls from arch/arm/kernel/patch.c is exactly one new
AA001 (exit 1); its revert fixes it (exit 0)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from armalias.cli import main
from realtree import kernel_tree
from conftest import git

pytestmark = pytest.mark.realtree
PATCH_C = "arch/arm/kernel/patch.c"


def kernel_repo(tree: Path, dest: Path) -> Path:
    """arch/arm and include in a new git repository.  Hard links where the filesystem allows (quick,
    no space); a file is only ever changed by replacing it, so the extracted tree is never written."""
    (dest / "arch").mkdir(parents=True)
    for part in ("arch/arm", "include"):
        linked = subprocess.run(["cp", "-al", str(tree / part), str(dest / part)], capture_output=True)
        if linked.returncode != 0:  # another filesystem, or no GNU cp: a plain copy
            shutil.rmtree(dest / part, ignore_errors=True)
            shutil.copytree(tree / part, dest / part, symlinks=True)
    git(dest, "init", "-q")
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", "linux-source arch/arm and include")
    return dest


def replace_file(path: Path, data: bytes) -> None:
    path.unlink()  # breaks the hard link: the extracted tree keeps its bytes
    path.write_bytes(data)


def check(capsys, root: Path, *args: str) -> tuple[int, dict]:
    rc = main(["check", "--tree", str(root), "--format", "json", *args])
    return rc, json.loads(capsys.readouterr().out)


def test_removing_the_vmap_clean_from_patch_c_is_one_new_aa001(tmp_path: Path, capsys):
    tree = kernel_tree("6.12")
    original = (tree / PATCH_C).read_bytes()
    root = kernel_repo(tree, tmp_path / "linux")
    lines = original.decode().splitlines(keepends=True)
    assert sum("flush_kernel_vmap_range(" in line for line in lines) >= 1
    replace_file(root / PATCH_C, "".join(line for line in lines if "flush_kernel_vmap_range(" not in line).encode())
    git(root, "commit", "-q", "-am", "ARM: patch: drop the clean of the written alias")

    rc, data = check(capsys, root, "--git-range", "HEAD~1..HEAD")
    assert rc == 1
    assert data["changed"] == [PATCH_C]
    # one AA001 per fixmap slot left dirty (FIX_TEXT_POKE0 through waddr, FIX_TEXT_POKE1 through addrh1)
    assert [(f["rule"], f["file"], f["function"]) for f in data["new"]] == [("AA001", PATCH_C, "__patch_text_real")] * 2
    f = min(data["new"], key=lambda x: x["line"])
    assert "waddr" in (root / PATCH_C).read_text().splitlines()[f["line"] - 1]

    git(root, "revert", "--no-edit", "HEAD")
    rc, back = check(capsys, root, "--git-range", "HEAD~1..HEAD")
    assert rc == 0
    assert [(f["rule"], f["function"]) for f in back["fixed"]] == [("AA001", "__patch_text_real")] * 2
    assert sorted(x["fingerprint"] for x in back["fixed"]) == sorted(x["fingerprint"] for x in data["new"])
    # restoring the clean brings back what the AA001 stood in for: at most a note, never a failure
    assert all(x["severity"] == "note" for x in back["new"])
    assert (root / PATCH_C).read_bytes() == original == (tree / PATCH_C).read_bytes()
