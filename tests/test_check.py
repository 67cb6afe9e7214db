"""`armalias check` on small git repositories built at run time from fixtures/tree + fixtures/check/tree:
new, fixed and unchanged findings by fingerprint, the index and the working tree, renames, deletions,
settings, output formats, exit codes; the user's tree and index are never touched."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from armalias.cli import main
from armalias.check.changes import change_for
from armalias.check.compare import compare
from armalias.check.run import CheckOptions, run_check
from armalias.config import Config, merge_vocabulary
from armalias.findings import Finding, WriteEvidence
from armalias.rules import load_vocabulary
from armalias.scan import ScanOptions
from conftest import (BASE_FINDINGS, CLEAN_HALF, FIXTURES, POKE, POKE_H, UNCLEAN, check_json, commit, edit, git,
                      make_repo, make_tree, snapshot, summary)

def test_new_fixed_and_unchanged_in_the_working_tree(tmp_path: Path, capsys):
    root = make_repo(tmp_path)
    rc, data = check_json(capsys, root)
    assert (rc, summary(data)) == (0, ([], [], BASE_FINDINGS))  # nothing changed: everything unchanged
    edit(root, POKE, *UNCLEAN)
    edit(root, POKE, *CLEAN_HALF)
    before = snapshot(root)
    rc, data = check_json(capsys, root)
    assert rc == 1
    new, fixed, unchanged = summary(data)
    assert new == [("AA001", POKE, "poke_insn")]
    assert fixed == [("AA001", POKE, "poke_half")]
    assert unchanged == BASE_FINDINGS - 1
    # the contract: the scan fields, plus base, head, new, fixed and unchanged
    assert {"tool", "version", "schema", "root", "stats", "callsites", "findings", "skipped",
            "base", "head", "new", "fixed", "unchanged"} <= set(data)
    assert data["root"] == str(root) and data["head"] == "working tree"
    assert data["base"] == git(root, "rev-parse", "HEAD").strip()
    assert data["findings"] == data["new"] and data["changed"] == [POKE]
    (f,) = data["new"]
    assert (root / POKE).read_text().splitlines()[f["line"] - 1].strip() == "*(u32 *)waddr = insn;"
    assert f["model"]["verdict"] in ("confirmed", "refuted")  # new findings are replayed on the model
    assert snapshot(root) == before  # neither the files nor .git (index, refs, objects) were touched


def test_change_above_a_finding_is_not_new(tmp_path: Path, capsys):
    root = make_repo(tmp_path)
    edit(root, POKE, "/* the written alias is cleaned through the header's macro */\n",
         "/* a helper added above every finding: every line below moves */\n"
         "static int poke_count;\n\nint poke_calls(void)\n{\n\treturn poke_count;\n}\n\n"
         "/* the written alias is cleaned through the header's macro */\n")
    _, change = change_for(root)
    result = run_check(change, CheckOptions(ScanOptions(use_cache=False)))
    change.close()
    assert result.base is not None and result.base_from == "scan"
    moved = [(b.line, h.line) for b in result.base.findings for h in result.head.findings
             if b.fingerprint == h.fingerprint and b.function == "poke_half"]
    assert moved and all(h == b + 8 for b, h in moved), "the finding did not move: the test proves nothing"
    assert (result.new, result.fixed, result.unchanged) == ([], [], BASE_FINDINGS)
    assert main(["check", "--tree", str(root)]) == 0


def test_header_macro_change_reaches_the_c_files_using_it(tmp_path: Path, capsys):
    root = make_repo(tmp_path)
    edit(root, POKE_H, "#define poke_clean(waddr, len)\tflush_kernel_vmap_range(waddr, len)",
         "#define poke_clean(waddr, len)\tdo { } while (0)\t/* cleaned on unmap */")
    commit(root, "ARM: demo: poke_clean is done on unmap")
    rc, data = check_json(capsys, root, "--git-range", "HEAD~1..HEAD")
    assert rc == 1
    assert data["changed"] == [POKE_H]
    assert summary(data)[0] == [("AA001", POKE, "poke_bytes"), ("AA001", POKE, "poke_insn")]
    assert summary(data)[1:] == ([], BASE_FINDINGS)
    # and the other way round: the revert fixes both
    rc, data = check_json(capsys, root, "--git-range", "HEAD..HEAD~1")
    assert rc == 0 and summary(data)[1] == [("AA001", POKE, "poke_bytes"), ("AA001", POKE, "poke_insn")]


def test_staged_sees_the_index_only(tmp_path: Path, capsys):
    root = make_repo(tmp_path)
    edit(root, POKE, *UNCLEAN)
    git(root, "add", POKE)
    edit(root, POKE, *CLEAN_HALF)  # only in the working tree
    before = snapshot(root)
    rc, data = check_json(capsys, root, "--staged")
    assert rc == 1 and data["head"] == "index"
    assert summary(data) == ([("AA001", POKE, "poke_insn")], [], BASE_FINDINGS)
    rc, data = check_json(capsys, root)  # the working tree has both changes
    assert summary(data) == ([("AA001", POKE, "poke_insn")], [("AA001", POKE, "poke_half")], BASE_FINDINGS - 1)
    assert snapshot(root) == before
    git(root, "reset", "-q")  # now nothing is staged
    rc, data = check_json(capsys, root, "--staged")
    assert (rc, summary(data)) == (0, ([], [], BASE_FINDINGS))


def test_staged_in_a_repository_without_commits(tmp_path: Path, capsys):
    root = make_tree(tmp_path / "linux")
    git(root, "init", "-q")
    git(root, "add", "-A")
    rc, data = check_json(capsys, root, "--staged")
    assert rc == 1 and len(data["new"]) == BASE_FINDINGS and data["unchanged"] == 0


def test_rename_is_not_new_and_a_bug_in_the_renamed_file_is(tmp_path: Path, capsys):
    root = make_repo(tmp_path)
    git(root, "mv", POKE, "arch/arm/kernel/text_poke.c")
    commit(root, "rename")
    rc, data = check_json(capsys, root, "--git-range", "HEAD~1..HEAD")
    assert (rc, summary(data)) == (0, ([], [], BASE_FINDINGS))
    assert data["renamed"] == {POKE: "arch/arm/kernel/text_poke.c"}
    # renamed and changed in one commit (git still pairs them by similarity)
    git(root, "mv", "arch/arm/kernel/text_poke.c", "arch/arm/kernel/poke.c")
    edit(root, "arch/arm/kernel/poke.c", *UNCLEAN)
    commit(root, "rename and break")
    rc, data = check_json(capsys, root, "--git-range", "HEAD~1..HEAD")
    assert rc == 1
    assert summary(data) == ([("AA001", "arch/arm/kernel/poke.c", "poke_insn")], [], BASE_FINDINGS)
    # an untracked copy of a deleted file in the working tree: an exact rename
    (root / "arch/arm/kernel/poke.c").rename(root / "arch/arm/kernel/poke2.c")
    rc, data = check_json(capsys, root)
    assert (rc, summary(data)) == (0, ([], [], BASE_FINDINGS + 1))
    assert data["renamed"] == {"arch/arm/kernel/poke.c": "arch/arm/kernel/poke2.c"}


def test_deleted_file_fixes_its_findings_and_new_file_adds(tmp_path: Path, capsys):
    root = make_repo(tmp_path)
    git(root, "rm", "-q", POKE)
    commit(root, "remove the poke helpers")
    rc, data = check_json(capsys, root, "--git-range", "HEAD~1..HEAD")
    gone = [("AA001", POKE, "poke_half")] + [("AA002", POKE, f) for f in ("poke_bytes", "poke_half", "poke_insn")]
    assert (rc, summary(data)) == (0, ([], gone, BASE_FINDINGS - 4))
    # an untracked new file in the working tree is part of it
    (root / "arch/arm/kernel/far.c").write_text((FIXTURES / "check/tree" / POKE).read_text())
    rc, data = check_json(capsys, root)
    assert rc == 1 and summary(data)[0] == [("AA001", "arch/arm/kernel/far.c", "poke_half")] + [
        ("AA002", "arch/arm/kernel/far.c", f) for f in ("poke_bytes", "poke_half", "poke_insn")]


def test_compare_is_a_multiset_of_fingerprints():
    def f(line: int, function: str = "poke", expr: str = "fixmap") -> Finding:
        return Finding("AA001", "alias-write", "error", "a.c", line, 2, function, "m",
                       WriteEvidence(line, "*w", "fixmap"), key_exprs=(expr,))

    base = [f(10), f(20)]
    head = [f(30), f(40), f(50), f(60, "other")]
    new, fixed, unchanged = compare(base, head)
    assert unchanged == 2 and fixed == []
    assert [(x.function, x.line) for x in new] == [("poke", 50), ("other", 60)]
    new, fixed, unchanged = compare(head, base)
    assert unchanged == 2 and new == [] and [(x.function, x.line) for x in fixed] == [("poke", 50), ("other", 60)]
    # a line-only difference is the same finding; a renamed file keeps its findings
    moved = [Finding("AA001", "alias-write", "error", "b.c", 99, 1, "poke", "m", key_exprs=("fixmap",))]
    assert compare(base[:1], moved, {"a.c": "b.c"}) == ([], [], 1)
    assert compare(base[:1], moved)[2] == 0


def test_suppressed_new_finding_is_not_reported(tmp_path: Path, capsys):
    root = make_repo(tmp_path)
    edit(root, POKE, *UNCLEAN)
    edit(root, POKE, "\t*(u32 *)waddr = insn;\n",
         "\t*(u32 *)waddr = insn; /* armalias: ignore[AA001] cleaned by the caller */\n")
    rc, data = check_json(capsys, root)
    assert (rc, summary(data)[0], data["stats"]["suppressed"]) == (0, [], 1)


def test_select_ignore_and_fail_on(tmp_path: Path, capsys):
    root = make_repo(tmp_path)
    edit(root, POKE, *UNCLEAN)
    assert check_json(capsys, root, "--ignore", "AA001")[0] == 0
    assert check_json(capsys, root, "--select", "AA002,AA003")[0] == 0
    rc, data = check_json(capsys, root, "--select", "aa001")
    assert rc == 1 and data["unchanged"] == 1  # only poke_half's AA001 is counted
    assert check_json(capsys, root, "--fail-on", "error")[0] == 1
    assert main(["check", "--tree", str(root), "--select", "AA999"]) == 2
    assert "AA999" in capsys.readouterr().err


def test_fail_on_threshold(tmp_path: Path, capsys):
    root = make_repo(tmp_path)
    edit(root, POKE, "\tpoke_clean(waddr, 4);\n", "\tpoke_clean(waddr, 2);\n")  # 2 bytes cleaned, 4 written
    rc, data = check_json(capsys, root)
    assert [(f["rule"], f["severity"]) for f in data["new"]] == [("AA003", "warning")]
    assert rc == 1  # the default threshold is warning
    assert check_json(capsys, root, "--fail-on", "error")[0] == 0
    assert check_json(capsys, root, "--fail-on", "note")[0] == 1
    (root / ".armalias.toml").write_text('fail-on = "error"\n')
    assert check_json(capsys, root)[0] == 0
    assert check_json(capsys, root, "--fail-on", "warning")[0] == 1  # the flag wins


def test_settings_file_codes_baseline_and_flags_win(tmp_path: Path, capsys):
    root = make_repo(tmp_path)
    edit(root, POKE, *UNCLEAN)
    (root / ".armalias.toml").write_text('ignore = ["AA001"]\n')
    assert check_json(capsys, root)[0] == 0
    assert check_json(capsys, root, "--ignore", "AA004")[0] == 1  # the flag replaces the file's list
    rc, data = check_json(capsys, root, "--fail-on", "note")
    assert (rc, data["new"], data["unchanged"]) == (0, [], BASE_FINDINGS - 1)  # AA001 is not counted at all
    # the fingerprint of the new finding in a baseline named by the file
    (root / ".armalias.toml").write_text("")
    _, data = check_json(capsys, root)
    (fingerprint,) = [f["fingerprint"] for f in data["new"]]
    (root / "known.json").write_text(json.dumps({"fingerprints": [fingerprint]}))
    (root / ".armalias.toml").write_text('baseline = "known.json"\nfail-on = "note"\n')
    rc, data = check_json(capsys, root)
    assert (rc, data["new"], data["stats"]["baselined"]) == (0, [], 1)
    for bad in ('selec = ["AA001"]\n', 'fail-on = "loud"\n', "select = [\n",
                '[[alias_source]]\nnames = ["x"]\nkind = "nowhere"\n'):
        (root / ".armalias.toml").write_text(bad)
        assert main(["check", "--tree", str(root)]) == 2
        assert ".armalias.toml" in capsys.readouterr().err


def test_settings_file_extends_the_vocabulary(tmp_path: Path, capsys):
    root = make_repo(tmp_path)
    (root / "arch/arm/kernel/own_poke.c").write_text(
        "// a tree-specific mapping helper the kernel vocabulary does not know\n"
        "#include <asm/cacheflush.h>\n\n"
        "void own_poke(void *addr, unsigned int insn)\n{\n"
        "\tvoid *waddr = own_text_map(addr);\n\n"
        "\t*(u32 *)waddr = insn;\n"
        "\town_text_unmap(waddr);\n"
        "\tflush_icache_range((uintptr_t)addr, (uintptr_t)addr + 4);\n}\n")
    rc, data = check_json(capsys, root)
    assert (rc, data["new"]) == (0, [])  # own_text_map is not known to return an alias
    (root / ".armalias.toml").write_text('[[alias_source]]\nnames = ["own_text_map"]\nkind = "fixmap"\norigin = 0\n')
    rc, data = check_json(capsys, root)
    assert rc == 1 and summary(data)[0] == [("AA001", "arch/arm/kernel/own_poke.c", "own_poke"),
                                            ("AA002", "arch/arm/kernel/own_poke.c", "own_poke")]


def test_default_output_is_gcc_lines_off_a_terminal(tmp_path: Path, capsys):
    root = make_repo(tmp_path)
    edit(root, POKE, *UNCLEAN)
    assert main(["check", "--tree", str(root)]) == 1
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == 1
    assert re.fullmatch(r"arch/arm/kernel/demo_poke\.c:11:\d+: error: .+ \[AA001\]", lines[0]), lines[0]
    assert f"1 new, 0 fixed, {BASE_FINDINGS} unchanged" in captured.err
    assert main(["check", "--tree", str(root), "--format", "text"]) == 1
    out = capsys.readouterr().out
    assert "New findings" in out and "poke_insn" in out and "1 new, 0 fixed" in out


def test_no_cache_gives_the_same_answer_and_writes_no_cache(tmp_path: Path, capsys, monkeypatch):
    root = make_repo(tmp_path)
    edit(root, POKE, *UNCLEAN)
    cache = tmp_path / "cache"
    monkeypatch.setenv("ARMALIAS_CACHE_DIR", str(cache))
    _, cold = check_json(capsys, root, "--no-cache")
    assert not cache.exists() or not any(cache.rglob("*.json"))
    _, warm = check_json(capsys, root)
    assert any(cache.rglob("*.json"))
    _, again = check_json(capsys, root)
    assert summary(cold) == summary(warm) == summary(again) == ([("AA001", POKE, "poke_insn")], [], BASE_FINDINGS)


def test_usage_errors_exit_2(tmp_path: Path, capsys):
    plain = make_tree(tmp_path / "plain")
    assert main(["check", "--tree", str(plain)]) == 2
    assert "not in a git repository" in capsys.readouterr().err
    root = make_repo(tmp_path)
    assert main(["check", "--tree", str(root), "--git-range", "nosuch..HEAD"]) == 2
    assert "nosuch" in capsys.readouterr().err
    assert main(["check", "--tree", str(tmp_path / "missing")]) == 2
    with pytest.raises(SystemExit) as exc:
        main(["check", "--staged", "--git-range", "HEAD~1..HEAD"])
    assert exc.value.code == 2


def test_check_in_a_subdirectory_of_a_repository(tmp_path: Path, capsys):
    outer = tmp_path / "work"
    make_tree(outer / "linux")
    (outer / "NOTES").write_text("not a kernel file\n")
    git(outer, "init", "-q")
    commit(outer, "base")
    root = outer / "linux"
    edit(root, POKE, *UNCLEAN)
    (outer / "NOTES").write_text("changed\n")
    rc, data = check_json(capsys, root)
    assert rc == 1 and data["changed"] == [POKE]
    assert summary(data)[0] == [("AA001", POKE, "poke_insn")]
    commit(outer, "break")
    rc, data = check_json(capsys, root, "--git-range", "HEAD~1..HEAD")
    assert rc == 1 and summary(data)[0] == [("AA001", POKE, "poke_insn")]


def test_the_side_checked_before_comes_from_the_findings_cache(tmp_path: Path):
    """The index checked before a commit is the next check's HEAD: its findings are not recomputed."""
    root = make_repo(tmp_path)

    def staged_check(options: CheckOptions = CheckOptions()):
        _, change = change_for(root, use_index=True)
        try:
            r = run_check(change, options)
        finally:
            change.close()
        return ([f.fingerprint for f in r.new], [f.fingerprint for f in r.fixed], r.unchanged), r.base_from

    edit(root, POKE, *CLEAN_HALF)
    git(root, "add", POKE)
    assert staged_check()[1] == "scan"
    commit(root, "clean the halfword alias")
    edit(root, POKE, *UNCLEAN)
    git(root, "add", POKE)
    cached, source = staged_check()
    assert source == "cache"
    fresh, source = staged_check(CheckOptions(ScanOptions(use_cache=False)))
    assert source == "scan" and cached == fresh and len(fresh[0]) == 1
    # another vocabulary is another key: never a stale answer
    vocab = merge_vocabulary(load_vocabulary(), Config(alias_sources={"own_text_map": ("fixmap", 0)}))
    assert staged_check(CheckOptions(vocab=vocab))[1] == "scan"
    assert staged_check(CheckOptions(vocab=vocab))[1] == "cache"
    # nothing analysable changed: the base is the head
    edit(root, POKE, *reversed(UNCLEAN))
    git(root, "add", POKE)
    (root / "NOTES").write_text("x\n")
    git(root, "add", "NOTES")
    assert staged_check() == (([], [], BASE_FINDINGS - 1), "head")
