"""Hostile trees and repositories: armalias runs nothing from the scanned repository (git included)
and never blocks on, or reads without bound from, a file that is not a regular file.

Each command runs in a child process with a time limit, so a hang fails the test instead of the run."""

from __future__ import annotations

import difflib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import POKE, UNCLEAN, commit, edit, git, make_repo, make_tree

LIMIT = 120  # seconds a command may take before it counts as hung
FIXTURE_TREE = Path(__file__).resolve().parent.parent / "fixtures" / "tree"


def armalias(*args: str, cwd: Path | None = None, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "armalias", *args], capture_output=True, timeout=LIMIT, cwd=cwd,
                          input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL)


def _program(path: Path, marker: Path) -> str:
    """A program that leaves `marker` behind when it runs, and otherwise behaves (cat)."""
    path.write_text(f"#!/bin/sh\necho ran >> '{marker}'\nexec cat\n")
    path.chmod(0o755)
    return str(path)


# Every key git would run a program for while armalias reads a repository.
def _hostile_config(root: Path, tmp: Path) -> Path:
    marker = tmp / "ran"
    prog = _program(tmp / "evil.sh", marker)
    for key, value in (("core.fsmonitor", prog), ("core.pager", prog), ("diff.external", prog),
                       ("filter.evil.clean", prog), ("filter.evil.smudge", prog), ("filter.evil.required", "true"),
                       ("filter.proc.process", prog), ("diff.evil.textconv", prog), ("diff.evil.command", prog),
                       ("core.hooksPath", str(tmp / "hooks")), ("core.sshCommand", prog)):
        git(root, "config", key, value)
    hooks = tmp / "hooks"
    hooks.mkdir()
    for hook in ("post-index-change", "pre-auto-gc", "reference-transaction", "post-checkout"):
        _program(hooks / hook, marker)
    (root / ".gitattributes").write_text("*.c filter=evil diff=evil\n*.h filter=proc\n")
    return marker


MODES = {
    "working tree": (),
    "staged": ("--staged",),
    "git range": ("--git-range", "HEAD~1..HEAD"),
    "patch": ("--patch", "PATCH"),
}


@pytest.mark.parametrize("mode", sorted(MODES))
def test_git_runs_nothing_the_repository_configures(tmp_path: Path, mode: str):
    root = make_repo(tmp_path)
    edit(root, POKE, *UNCLEAN)
    commit(root, "lose the clean")
    patch = tmp_path / "change.patch"
    patch.write_bytes(subprocess.run(["git", "-C", str(root), "format-patch", "-1", "--stdout"],
                                     capture_output=True, check=True).stdout)
    git(root, "reset", "-q", "--hard", "HEAD~1")
    if mode != "patch":
        edit(root, POKE, *UNCLEAN)
    if mode == "staged":
        git(root, "add", POKE)
    elif mode == "git range":
        commit(root, "lose the clean")
    marker = _hostile_config(root, tmp_path)
    # make every tracked file's stat information stale, so git has to look at the working tree's bytes
    for p in root.rglob("*.c"):
        os.utime(p, (1, 1))
    args = [a if a != "PATCH" else str(patch) for a in MODES[mode]]
    res = armalias("check", "--tree", str(root), "--format", "json", *args)
    assert not marker.exists(), f"{mode}: git ran a program of the repository's config:\n{res.stderr.decode()}"
    assert res.returncode == 1, res.stderr.decode()
    data = json.loads(res.stdout)
    assert [(f["rule"], f["file"]) for f in data["new"]] == [("AA001", POKE)]


def test_the_user_environment_cannot_smuggle_git_settings(tmp_path: Path, monkeypatch):
    from armalias.check.git import git_environment

    monkeypatch.setenv("GIT_EXTERNAL_DIFF", "/bin/false")
    monkeypatch.setenv("GIT_CONFIG_PARAMETERS", "'core.fsmonitor'='/bin/false'")
    monkeypatch.setenv("GIT_INDEX_FILE", "/tmp/index")
    env = git_environment()
    assert "GIT_EXTERNAL_DIFF" not in env and "GIT_CONFIG_PARAMETERS" not in env
    assert env["GIT_INDEX_FILE"] == "/tmp/index"  # a commit hook's index is still the one read
    assert env["GIT_CONFIG_NOSYSTEM"] == "1" and env["GIT_OPTIONAL_LOCKS"] == "0"


# -- files that are not regular files ---------------------------------------------------------------------------
def _special(kind: str, path: Path) -> None:
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
    elif kind == "dev-null":
        path.symlink_to("/dev/null")
    elif kind == "outside":
        path.symlink_to("/etc/passwd")
    else:
        raise AssertionError(kind)


SPECIAL_REASONS = {"fifo": "not a regular file (a FIFO)", "dev-zero": "symlink pointing outside the scanned tree",
                   "dev-null": "symlink pointing outside the scanned tree",
                   "outside": "symlink pointing outside the scanned tree"}


@pytest.mark.parametrize("kind", sorted(SPECIAL_REASONS))
@pytest.mark.parametrize("name", ["arch/arm/kernel/evil.c", "arch/arm/include/asm/evil.h", "arch/arm/kernel/evil.S"])
def test_scan_skips_what_is_no_regular_file(tmp_path: Path, kind: str, name: str):
    root = make_tree(tmp_path / "linux")
    _special(kind, root / name)
    res = armalias("scan", str(root), "--format", "json", "--no-cache")
    assert res.returncode in (0, 1), res.stderr.decode()
    data = json.loads(res.stdout)
    reasons = {s["file"]: s["reason"] for s in data["skipped"]}
    assert name in reasons and reasons[name].startswith(SPECIAL_REASONS[kind]), reasons


def test_reader_refuses_without_blocking(tmp_path: Path):
    from armalias.source.files import FileTooLarge, NotRegular, read_input, read_regular

    fifo = tmp_path / "pipe.c"
    os.mkfifo(fifo)
    with pytest.raises(NotRegular, match="FIFO"):
        read_regular(fifo, 100)
    link = tmp_path / "zero.c"
    link.symlink_to("/dev/zero")
    with pytest.raises(NotRegular, match="symbolic link"):
        read_regular(link, 100)
    with pytest.raises(NotRegular, match="outside"):
        read_regular(link, 100, root=tmp_path)
    with pytest.raises(NotRegular, match="character device"):
        read_input("/dev/zero", 100)
    inside = tmp_path / "real.c"
    inside.write_bytes(b"x" * 101)
    (tmp_path / "alias.c").symlink_to(inside)
    with pytest.raises(FileTooLarge):
        read_regular(tmp_path / "alias.c", 100, root=tmp_path)
    assert read_regular(tmp_path / "alias.c", 101, root=tmp_path)[0] == b"x" * 101
    assert stat.S_ISREG(read_regular(inside, 101)[1].st_mode)


def test_audit_skips_a_fifo_in_arch_arm_mm(tmp_path: Path):
    root = make_tree(tmp_path / "linux")
    os.mkfifo(root / "arch/arm/mm/proc-evil.S")
    (root / "arch/arm/mm/cache-evil.S").symlink_to("/dev/zero")
    res = armalias("audit", str(root), "--format", "json", "--no-cache")
    assert res.returncode == 0, res.stderr.decode()
    data = json.loads(res.stdout)
    skipped = {s["file"]: s["reason"] for s in data.get("skipped", [])}
    assert "FIFO" in skipped.get("arch/arm/mm/proc-evil.S", ""), skipped
    assert "symbolic link" in skipped.get("arch/arm/mm/cache-evil.S", ""), skipped


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_a_baseline_that_is_no_regular_file_is_an_input_error(tmp_path: Path, kind: str):
    root = make_tree(tmp_path / "linux")
    baseline = tmp_path / "baseline.json"
    _special(kind, baseline)
    res = armalias("scan", str(root), "--baseline", str(baseline), "--no-cache")
    assert res.returncode == 2, (res.returncode, res.stderr.decode())
    assert "baseline" in res.stderr.decode() and "regular file" in res.stderr.decode()


def test_a_baseline_of_the_wrong_shape_is_refused(tmp_path: Path):
    root = make_tree(tmp_path / "linux")
    baseline = tmp_path / "baseline.json"
    baseline.write_text('{"fingerprints": "abc"}')
    res = armalias("scan", str(root), "--baseline", str(baseline), "--no-cache")
    assert res.returncode == 2 and "not an armalias baseline" in res.stderr.decode()


def test_a_patch_from_a_pipe_is_read_and_a_device_is_refused(tmp_path: Path):
    root = make_tree(tmp_path / "linux")
    diff = (Path(__file__).resolve().parent.parent / "fixtures/check/patches/poke-unclean.diff").read_bytes()
    res = armalias("check", "--tree", str(root), "--patch", "-", "--format", "json", stdin=diff)
    assert res.returncode == 1, res.stderr.decode()
    res = armalias("check", "--tree", str(root), "--patch", "/dev/zero")
    assert res.returncode == 2 and "character device" in res.stderr.decode()


def test_a_fifo_in_the_cache_directory_is_not_waited_for(tmp_path: Path, monkeypatch):
    root = make_tree(tmp_path / "linux")
    cache = tmp_path / "cache"
    monkeypatch.setenv("ARMALIAS_CACHE_DIR", str(cache))
    first = armalias("scan", str(root), "--format", "json")
    assert first.returncode in (0, 1)
    entries = [p for p in cache.rglob("*") if p.is_file()]
    assert entries
    for p in entries:  # every entry of the store becomes a FIFO
        p.unlink()
        os.mkfifo(p)
    again = armalias("scan", str(root), "--format", "json")
    assert again.returncode == first.returncode, again.stderr.decode()
    assert json.loads(again.stdout)["findings"] == json.loads(first.stdout)["findings"]


def test_assembly_includes_stay_inside_the_tree(tmp_path: Path, monkeypatch):
    from armalias.source.asmtree import read_mm

    root = tmp_path / "linux"
    mm = root / "arch/arm/mm"
    mm.mkdir(parents=True)
    secret = tmp_path / "outside.S"
    secret.write_text("\tmcr\tp15, 0, r0, c7, c10, 4\n")
    (mm / "proc-hostile.S").write_text('#include "/etc/passwd"\n#include "../../../../outside.S"\n'
                                       '#include "inside.S"\n')
    (mm / "inside.S").write_text("\tmov\tr0, #0\n")
    opened: list[str] = []
    monkeypatch.setattr("armalias.source.asm.read_regular",
                        lambda path, limit, root=None: (opened.append(str(path)), (Path(path).read_bytes(), None))[1])
    tree = read_mm(root, mm)
    notes = [n for f in tree.files for n in f.notes]
    assert "included /etc/passwd lies outside the tree: not read" in notes
    assert "included ../../../../outside.S lies outside the tree: not read" in notes
    assert not any(p in ("/etc/passwd", str(secret)) or p.endswith("outside.S") for p in opened), opened
    assert any(p.endswith("inside.S") for p in opened)


@pytest.mark.parametrize("jobs", ["-1", "x"])
def test_jobs_must_be_a_count(tmp_path: Path, jobs: str):
    res = armalias("scan", str(FIXTURE_TREE), "--jobs", jobs, "--no-cache")
    assert res.returncode == 2 and "jobs" in res.stderr.decode()


def test_jobs_are_capped_at_the_cpus():
    from armalias.cli import build_parser

    cpus = len(os.sched_getaffinity(0))
    assert build_parser().parse_args(["scan", "x", "--jobs", "200"]).jobs == cpus
    assert build_parser().parse_args(["scan", "x", "--jobs", "0"]).jobs == 0


def test_an_internal_error_exits_3_with_one_line(monkeypatch, capsys):
    """A bug in armalias is never exit 1 (findings): one line saying so, exit 3; --debug adds the traceback."""
    import armalias.cli as cli

    def broken(args):
        raise RuntimeError("a bug")

    monkeypatch.setitem(cli.COMMANDS, "scan", broken)
    assert cli.main(["scan", str(FIXTURE_TREE)]) == 3
    err = capsys.readouterr().err
    assert err.strip().splitlines() == ["armalias: internal error: RuntimeError: a bug (run again with --debug for the traceback)"]
    assert cli.main(["scan", str(FIXTURE_TREE), "--debug"]) == 3
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().endswith("armalias: internal error: RuntimeError: a bug")


def test_a_path_with_brackets_is_printed_as_it_is(tmp_path: Path, capsys):
    """`[red]` in a file name is data, not rich markup: the text report shows the name whole."""
    from armalias.cli import main

    d = tmp_path / "t/arch/arm/kernel"
    d.mkdir(parents=True)
    (d / "pa[red]tch.c").write_text((Path(__file__).parent.parent / "fixtures/tree/arch/arm/kernel/patch.c").read_text())
    main(["scan", str(tmp_path / "t"), "--no-cache"])
    out = capsys.readouterr().out
    assert "pa[red]tch.c:" in out and "kernel/patch.c" not in out


def test_a_cache_directory_others_can_write_is_not_used(tmp_path: Path, capsys, monkeypatch):
    """Anyone who can write the cache directory could forge a remembered result: one that is writable
    by others is refused with a note, and the scan runs without a cache; one armalias makes is 0700."""
    from armalias.cli import main

    tree = tmp_path / "t/arch/arm/kernel"
    tree.mkdir(parents=True)
    (tree / "patch.c").write_text((Path(__file__).parent.parent / "fixtures/tree/arch/arm/kernel/patch.c").read_text())
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setenv("ARMALIAS_CACHE_DIR", str(shared))
    assert main(["scan", str(tmp_path / "t"), "--format", "json"]) in (0, 1)
    captured = capsys.readouterr()
    assert "is writable by other users; running without a cache" in captured.err
    assert json.loads(captured.out)["findings"] and list(shared.iterdir()) == []
    mine = tmp_path / "mine"
    monkeypatch.setenv("ARMALIAS_CACHE_DIR", str(mine))
    assert main(["scan", str(tmp_path / "t"), "--format", "json"]) in (0, 1)
    capsys.readouterr()
    assert stat.S_IMODE(mine.stat().st_mode) == 0o700 and any(mine.iterdir())


def test_a_stray_byte_does_not_hide_a_new_finding(tmp_path: Path, capsys):
    """A patch deleting a write-back, with a non-UTF-8 byte added in a comment: the file is read as it
    is (as the kernel's tools read it), and the deleted clean is new, exit 1."""
    from conftest import check_json, make_repo, summary

    root = make_repo(tmp_path)
    path = root / POKE
    data = path.read_bytes().replace(b"\tpoke_clean(waddr, 4);\n", b"", 1)
    path.write_bytes(data.replace(b"/* the written alias", b"/* \xff the written alias", 1))
    rc, out = check_json(capsys, root)
    assert rc == 1 and ("AA001", POKE, "poke_insn") in summary(out)[0]
    assert summary(out)[1] == [] and out["skipped"] == {"base": [], "head": []}  # nothing skipped, nothing "fixed"


def test_a_file_skipped_on_one_side_is_no_fix(tmp_path: Path, capsys):
    """The head's version of a file cannot be analysed (a NUL byte: no C text): its base findings are
    `unknown`, not fixed, the skip is listed under the head, and the exit is 2."""
    from conftest import check_json, make_repo, summary

    root = make_repo(tmp_path)
    path = root / POKE
    path.write_bytes(b"\0" + path.read_bytes())
    rc, out = check_json(capsys, root)
    assert rc == 2
    assert summary(out)[1] == [] and out["unknown"] and {f["file"] for f in out["unknown"]} == {POKE}
    assert [s["file"] for s in out["skipped"]["head"]] == [POKE] and out["skipped"]["base"] == []


@pytest.mark.parametrize("second", ["@@ -6,2 +5,2 @@", "@@ -6,2 +5,x @@", "@@ garbage"])
def test_a_malformed_hunk_header_is_an_error(tmp_path: Path, capsys, second: str):
    """A second hunk whose `@@` line cannot be read is an input error (exit 2), never dropped while the
    first applies; a well-formed one applies."""
    from armalias.cli import main

    root = tmp_path / "linux/arch/arm/kernel"
    root.mkdir(parents=True)
    (root / "f.c").write_text("void f(void)\n{\n\tint a;\n\tint b;\n\tint c;\n\tint d;\n\tint e;\n}\n")
    patch = tmp_path / "p.patch"
    patch.write_text("--- a/arch/arm/kernel/f.c\n+++ b/arch/arm/kernel/f.c\n@@ -3,3 +3,2 @@\n \tint a;\n-\tint b;\n"
                     " \tint c;\n" + second + "\n \tint d;\n-\tint e;\n+\tint f;\n")
    rc = main(["check", "--tree", str(tmp_path / "linux"), "--patch", str(patch), "--no-cache"])
    err = capsys.readouterr().err
    if second == "@@ -6,2 +5,2 @@":
        assert rc == 0, err
    else:
        assert rc == 2 and "malformed hunk header" in err


def test_a_directory_linked_out_of_the_tree_is_not_read(tmp_path: Path):
    """`include/linux` a symbolic link to a directory outside the tree: a header found through it is
    not read (O_NOFOLLOW guards only the last component of a path), so nothing from outside reaches
    the call sites or the findings."""
    import json as _json

    from armalias.cli import main as _main
    from armalias.source.files import NotRegular, read_regular

    outside = tmp_path / "outside" / "linux"
    outside.mkdir(parents=True)
    (outside / "secret.h").write_text(
        "static inline void outside_fn(void *p) { flush_icache_range((unsigned long)p, (unsigned long)p + 4); }\n")
    root = tmp_path / "linux"
    (root / "include").mkdir(parents=True)
    (root / "include" / "linux").symlink_to(outside, target_is_directory=True)
    (root / "arch/arm/kernel").mkdir(parents=True)
    (root / "arch/arm/kernel/a.c").write_text(
        "#include <linux/secret.h>\nvoid f(void *p) { *(int *)p = 1; flush_icache_range((unsigned long)p, 4); }\n")
    with pytest.raises(NotRegular, match="leads outside the tree"):
        read_regular(root / "include/linux/secret.h", 1 << 20, root)
    assert read_regular(root / "arch/arm/kernel/a.c", 1 << 20, root)[0].startswith(b"#include")
    out = tmp_path / "out.json"
    assert _main(["scan", str(root), "--format", "json", "--no-cache", "-o", str(out)]) in (0, 1)
    data = _json.loads(out.read_text())
    assert {c["file"] for c in data["callsites"]} == {"arch/arm/kernel/a.c"}
    # the header the include reached is a skip with its reason, not a silence
    assert [(s["file"], "outside the tree" in s["reason"]) for s in data["skipped"]] == [("include/linux/secret.h", True)]


def test_a_chain_of_thousands_of_defines_costs_its_length_not_its_square():
    """`#define M1(x) M0(x)` ... 5,000 links: each macro's reach is followed as far as an expansion
    goes (MAX_EXPANSION_DEPTH), so the index holds a few names per link, where the full closures held
    12.5 million (617 MB); a short chain still reaches the maintenance call at its end."""
    from armalias.index import MAX_EXPANSION_DEPTH, SymbolIndex
    from armalias.source.extract import extract_bytes

    lines = ["#define M0(x) flush_icache_range(x, x + 4)"]
    lines += [f"#define M{i}(x) M{i - 1}(x)" for i in range(1, 5000)]
    lines.append("void f(void *p) { *(int *)p = 1; M4999((unsigned long)p); }")
    index = SymbolIndex([extract_bytes("arch/arm/kernel/chain.c", "\n".join(lines).encode(), "x")])
    assert "flush_icache_range" in index.reachable_names("M5")
    assert "flush_icache_range" not in index.reachable_names("M4999")
    assert max(len(index.reachable_names(f"M{i}")) for i in range(5000)) == MAX_EXPANSION_DEPTH


def _nested(depth: int, kind: str) -> str:
    """A function whose code for the vectors page sits `depth` braces or parentheses deep."""
    if kind == "braces":
        body = "{" * depth + "memcpy(vectors_page, src, 4);" + "}" * depth
    else:
        body = "{\n\tmemcpy(" + "(" * depth + "vectors_page" + ")" * depth + ", src, 4);\n}"
    return "extern char src[];\nextern void *vectors_page;\nvoid deep(void)\n" + body + "\n"


@pytest.mark.parametrize("depth, kind, reason", [
    (1000, "braces", "braces nested 1000 deep (more than 256): its functions are not read"),
    (65536, "braces", "braces nested 65536 deep (more than 256): its functions are not read"),
    (3000, "parentheses", "expressions nested too deep: its functions' bodies are not read"),
])
def test_code_nested_past_what_is_read_is_a_skip_with_its_reason(tmp_path: Path, depth: int, kind: str, reason: str):
    """Deep nesting once crashed the scan (a RecursionError, exit 3) or, deeper, hid the calls inside
    with no reason given; a file nested past what is read is now a skip that says why, and the scan
    goes on with the rest (the same code shallowly nested is a finding)."""
    root = tmp_path / "linux"
    (root / "arch/arm/kernel").mkdir(parents=True)
    (root / "Makefile").write_text("")
    (root / "arch/arm/kernel/deep.c").write_text(_nested(depth, kind))
    (root / "arch/arm/kernel/shallow.c").write_text(_nested(2, kind).replace("deep", "shallow"))
    res = armalias("scan", str(root), "--format", "json", "--no-cache")
    assert res.returncode == 1, res.stderr.decode()[-300:]  # findings: the shallow file's
    out = json.loads(res.stdout)
    assert out["skipped"] == [{"file": "arch/arm/kernel/deep.c", "reason": reason}]
    assert {f["file"] for f in out["findings"]} == {"arch/arm/kernel/shallow.c"}


def test_deleting_a_function_from_a_file_nested_too_deep_is_a_skip(tmp_path: Path):
    """A check whose change deletes a function looks for the definition that then runs; in a file
    nested past what is read, that look finds nothing rather than failing, and the file is a skip."""
    root = tmp_path / "linux"
    (root / "arch/arm/kernel").mkdir(parents=True)
    (root / "Makefile").write_text("")
    rel = "arch/arm/kernel/deep.c"
    gone = "void poke(void)\n{\n}\n"
    (root / rel).write_text(gone + _nested(300, "braces"))  # read by the body walk, past what extraction reads
    patch = tmp_path / "edit.patch"
    before = (root / rel).read_text().splitlines(keepends=True)
    patch.write_text("".join(difflib.unified_diff(before, before[3:], f"a/{rel}", f"b/{rel}")))
    res = armalias("check", "--tree", str(root), "--patch", str(patch), "--format", "json", "--no-cache")
    assert res.returncode == 0, res.stderr.decode()[-300:]  # no finding either side, no internal error
    out = json.loads(res.stdout)
    for side in ("base", "head"):
        assert [s["file"] for s in out["skipped"][side]] == [rel] and "nested" in out["skipped"][side][0]["reason"]
