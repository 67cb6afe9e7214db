"""`armalias check --patch`: unified diffs, format-patch files and mbox series applied in memory over a
git work tree or a plain directory — renames, deletions, new files, binary hunks, CRLF line ends,
patches that do not apply — and the tree (files, index, refs) left exactly as it was."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from armalias.cli import main
from armalias.check.patch import Hunk, PatchError, apply_hunks, apply_patches, parse_patch
from armalias.source.tree import DirectorySource
from conftest import (BASE_FINDINGS, FIXTURES, POKE, POKE_H, UNCLEAN, check_json, commit, edit, git,  # noqa: F401
                      make_repo, make_tree, snapshot, summary)

PATCHES = FIXTURES / "check" / "patches"
SERIES_RESULT = ([("AA001", "arch/arm/kernel/demo_poke_far.c", "poke_far"), ("AA002", "arch/arm/kernel/demo_poke_far.c", "poke_far")],
                 [("AA001", POKE, "poke_half")], BASE_FINDINGS - 1)


def test_plain_unified_diff_on_a_directory(tmp_path: Path, capsys):
    root = make_tree(tmp_path / "plain")  # not a git repository
    before = snapshot(root)
    rc, data = check_json(capsys, root, "--patch", str(PATCHES / "poke-unclean.diff"))
    assert rc == 1
    assert summary(data) == ([("AA001", POKE, "poke_insn")], [], BASE_FINDINGS)
    assert data["base"] == str(root) and data["changed"] == [POKE]
    (f,) = data["new"]
    assert f["line"] == 11  # a line of the patched file (it has no copy on disk)
    assert snapshot(root) == before


def test_mbox_series_applies_in_order(tmp_path: Path, capsys):
    """1/3 renames demo_poke.c, 2/3 fixes poke_half in the renamed file, 3/3 adds a buggy file."""
    root = make_repo(tmp_path)
    before = snapshot(root)
    rc, data = check_json(capsys, root, "--patch", str(PATCHES / "series.mbox"))
    assert rc == 1
    new, fixed, unchanged = summary(data)
    # poke_half was fixed in the file's new home: under its old name it counts as fixed
    assert new == SERIES_RESULT[0] and unchanged == BASE_FINDINGS - 1
    assert fixed == [("AA001", POKE, "poke_half")]
    assert data["renamed"] == {POKE: "arch/arm/kernel/demo_text_poke.c"}
    assert snapshot(root) == before


def test_patch_with_crlf_line_ends(tmp_path: Path, capsys):
    root = make_repo(tmp_path)
    crlf = tmp_path / "series-crlf.mbox"
    crlf.write_bytes((PATCHES / "series.mbox").read_bytes().replace(b"\n", b"\r\n"))
    assert b"\r\n" in crlf.read_bytes()
    rc, data = check_json(capsys, root, "--patch", str(crlf))
    assert (rc, summary(data)) == (1, SERIES_RESULT)
    diff = tmp_path / "unclean-crlf.diff"
    diff.write_bytes((PATCHES / "poke-unclean.diff").read_bytes().replace(b"\n", b"\r\n"))
    rc, data = check_json(capsys, root, "--patch", str(diff))
    assert (rc, summary(data)) == (1, ([("AA001", POKE, "poke_insn")], [], BASE_FINDINGS))


def test_format_patch_from_git_renames_deletes_and_binary(tmp_path: Path, capsys):
    """A series git writes itself (-M, --binary): a rename with an edit, a deletion, a new file, a
    binary file changed, then the check of that series over the original tree."""
    root = make_repo(tmp_path)
    (root / "firmware.bin").write_bytes(bytes(range(256)) * 4)
    commit(root, "firmware")
    base = git(root, "rev-parse", "HEAD").strip()
    git(root, "mv", POKE, "arch/arm/kernel/text_poke.c")
    edit(root, "arch/arm/kernel/text_poke.c", *UNCLEAN)
    commit(root, "rename and break poke_insn")
    git(root, "rm", "-q", "arch/arm/kernel/fiq.c")
    (root / "firmware.bin").write_bytes(bytes(range(255, -1, -1)) * 4)
    commit(root, "drop fiq.c, new firmware")
    series = tmp_path / "series.mbox"
    series.write_bytes(git(root, "format-patch", "-M", "--binary", "--stdout", f"{base}..HEAD").encode())
    text = series.read_text()
    assert "rename from" in text and "deleted file mode" in text and "GIT binary patch" in text
    git(root, "reset", "-q", "--hard", base)
    before = snapshot(root)
    rc = main(["check", "--tree", str(root), "--patch", str(series), "--format", "json"])
    captured = capsys.readouterr()
    assert rc == 1
    data = json.loads(captured.out)
    assert summary(data) == ([("AA001", "arch/arm/kernel/text_poke.c", "poke_insn")],
                             [("AA002", "arch/arm/kernel/fiq.c", "set_fiq_handler")], BASE_FINDINGS - 1)
    assert any("firmware.bin: binary change skipped" in n for n in data["notes"])
    assert "firmware.bin: binary change skipped" in captured.err
    assert snapshot(root) == before
    # without --binary git only says the files differ: skipped the same way
    plain = git(root, "diff", base, "ORIG_HEAD").encode()
    assert b"Binary files" in plain
    p = tmp_path / "plain.diff"
    p.write_bytes(plain)
    rc, data = check_json(capsys, root, "--patch", str(p))
    assert rc == 1 and any("binary change skipped" in n for n in data["notes"])


def test_patch_that_does_not_apply_exits_2_naming_the_hunk(tmp_path: Path, capsys):
    root = make_repo(tmp_path)
    before = snapshot(root)
    rc = main(["check", "--tree", str(root), "--patch", str(PATCHES / "does-not-apply.patch")])
    err = capsys.readouterr().err
    assert rc == 2
    assert "patch does not apply" in err and POKE in err
    assert "@@ -9,7 +9,7 @@ void poke_insn(void *addr, unsigned int insn)" in err
    assert snapshot(root) == before
    # a file the tree lacks, a file that exists already, a patch with no diff, a missing patch
    bad = tmp_path / "bad.diff"
    for text, words in (
        ("--- a/arch/arm/kernel/nosuch.c\n+++ b/arch/arm/kernel/nosuch.c\n@@ -1 +1 @@\n-x\n+y\n", "no such file"),
        (f"diff --git a/{POKE} b/{POKE}\nnew file mode 100644\n--- /dev/null\n+++ b/{POKE}\n@@ -0,0 +1 @@\n+x\n",
         "already exists"),
        ("just a mail, no diff\n", "no diff found"),
        (f"--- a/{POKE}\n+++ b/{POKE}\n@@ -1,3 +1,3 @@\n-x\n", "cut short"),
    ):
        bad.write_text(text)
        assert main(["check", "--tree", str(root), "--patch", str(bad)]) == 2
        assert words in capsys.readouterr().err
    assert main(["check", "--tree", str(root), "--patch", str(tmp_path / "missing.diff")]) == 2
    assert "cannot read the patch" in capsys.readouterr().err
    assert snapshot(root) == before


def test_patch_over_a_dirty_work_tree_and_from_stdin(tmp_path: Path, capsys, monkeypatch):
    """--patch in a git repository applies over the working tree as it is (local edits included)."""
    import io

    root = make_repo(tmp_path)
    edit(root, POKE_H, "#define poke_clean(waddr, len)\tflush_kernel_vmap_range(waddr, len)",
         "#define poke_clean(waddr, len)\tflush_kernel_vmap_range(waddr, len) /* local edit */")
    before = snapshot(root)
    data = (PATCHES / "poke-unclean.diff").read_bytes()
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data)))
    rc, out = check_json(capsys, root, "--patch", "-")
    assert rc == 1 and out["base"] == "working tree"
    assert summary(out) == ([("AA001", POKE, "poke_insn")], [], BASE_FINDINGS)
    assert snapshot(root) == before


def test_parse_reads_every_shape():
    patches = parse_patch((PATCHES / "series.mbox").read_bytes(), "series.mbox")
    assert [(p.old, p.new, p.renamed, len(p.hunks)) for p in patches] == [
        (POKE, "arch/arm/kernel/demo_text_poke.c", True, 0),
        ("arch/arm/kernel/demo_text_poke.c", "arch/arm/kernel/demo_text_poke.c", False, 1),
        (None, "arch/arm/kernel/demo_poke_far.c", False, 1)]
    assert patches[1].subject == "[PATCH 2/3] ARM: demo: clean the halfword poke alias"
    (plain,) = parse_patch((PATCHES / "poke-unclean.diff").read_bytes())
    assert (plain.old, plain.new) == (POKE, POKE)
    (stripped,) = parse_patch((PATCHES / "poke-unclean.diff").read_bytes(), strip=2)
    assert stripped.old == POKE.split("/", 1)[1]
    quoted = parse_patch(b'diff --git "a/dir/sp ace\\303\\251.c" "b/dir/sp ace\\303\\251.c"\n'
                         b'--- "a/dir/sp ace\\303\\251.c"\n+++ "b/dir/sp ace\\303\\251.c"\n@@ -1 +1 @@\n-a\n+b\n')
    assert quoted[0].new == "dir/sp ace\u00e9.c"
    # quoted-printable mail bodies are decoded
    qp = (b"From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\nSubject: [PATCH] qp\n"
          b"Content-Transfer-Encoding: quoted-printable\n\n---\n--- a/x.c\n+++ b/x.c\n@@ -1 +1 @@\n-a =3D 1;\n+a =3D=\n 2;\n")
    (p,) = parse_patch(qp)
    assert p.hunks[0].lines == (b"-a = 1;", b"+a = 2;")


def test_apply_hunks_offsets_eof_and_crlf(tmp_path: Path):
    text = b"".join(b"line %d\n" % i for i in range(1, 21))
    h = Hunk(5, 3, 5, 3, "@@ -5,3 +5,3 @@", (b" line 5", b"-line 6", b"+LINE 6", b" line 7"))
    assert apply_hunks(text, (h,), "f").split(b"\n")[5] == b"LINE 6"
    shifted = Hunk(2, 3, 2, 3, "@@ -2,3 +2,3 @@", h.lines)  # written against an older file: found 3 lines on
    assert apply_hunks(text, (shifted,), "f") == apply_hunks(text, (h,), "f")
    with pytest.raises(PatchError, match=r"f: hunk `@@ -5,3 \+5,3 @@`"):
        apply_hunks(text.replace(b"line 6\n", b"line six\n"), (h,), "f")
    # "\ No newline at end of file" on either side
    noeol = Hunk(1, 1, 1, 1, "@@ -1 +1 @@", (b"-a", b"+b"), old_no_eol=True, new_no_eol=False)
    assert apply_hunks(b"a", (noeol,), "f") == b"b\n"
    assert apply_hunks(b"a\n", (Hunk(1, 1, 1, 1, "@@ -1 +1 @@", (b"-a", b"+b"), new_no_eol=True),), "f") == b"b"
    # a CRLF file keeps CRLF on the lines a LF patch adds
    assert apply_hunks(b"x\r\ny\r\nz\r\n", (Hunk(2, 1, 2, 1, "@@ -2 +2 @@", (b"-y", b"+Y")),), "f") == b"x\r\nY\r\nz\r\n"
    # applying never writes: the DirectorySource's files stay as they were
    (tmp_path / "f.c").write_bytes(text)
    applied = apply_patches(DirectorySource(tmp_path), [parse_patch(
        b"--- a/f.c\n+++ b/f.c\n@@ -5,3 +5,3 @@\n line 5\n-line 6\n+LINE 6\n line 7\n")[0]])
    assert b"LINE 6" in applied.changes["f.c"] and (tmp_path / "f.c").read_bytes() == text
