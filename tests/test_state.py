"""The remembered state of a scanned directory (armalias.state) and the head side of a check derived
from it (armalias.incremental): answered from the state exactly when nothing the result depends on
changed, or when a patch only moves code; the same output as a full scan in every case."""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path

import pytest

from armalias.cli import main
from armalias.check.changes import patch_change
from armalias.check.run import CheckOptions, run_check
from armalias.scan import DirectorySource, ScanOptions, scan
from conftest import POKE, age, make_tree


def rewrite(path: Path, text: str) -> None:
    """Change a file and give it an old, but different, modification time."""
    old = path.stat().st_mtime_ns
    path.write_text(text)
    os.utime(path, ns=(old + 1_000_000_000, old + 1_000_000_000))


def scan_json(capsys, root: Path, *args: str) -> dict:
    rc = main(["scan", str(root), "--format", "json", *args])
    assert rc in (0, 1)
    data = json.loads(capsys.readouterr().out)
    data["stats"].pop("seconds")
    return data


def options(tmp_path: Path) -> ScanOptions:
    return ScanOptions(jobs=1, cache_dir=tmp_path / "cache" / "facts", reuse=True)


def test_unchanged_directory_is_answered_from_its_state(tmp_path: Path, capsys):
    root = make_tree(tmp_path / "linux")
    age(root)
    first = scan([root], options(tmp_path))
    assert not first.reused and first.index is not None
    second = scan([root], options(tmp_path))
    assert second.reused and second.index is None
    assert second.callsites == first.callsites and second.findings == first.findings
    assert (second.files, second.parsed, second.functions) == (first.files, first.parsed, first.functions)
    # the command line gives the same JSON either way
    cold = scan_json(capsys, root, "--no-cache")
    warm = scan_json(capsys, root)
    assert warm == cold


def test_changed_added_and_removed_files_are_seen(tmp_path: Path):
    root = make_tree(tmp_path / "linux")
    age(root)
    base = scan([root], options(tmp_path))
    patch_c = root / "arch/arm/kernel/patch.c"
    rewrite(patch_c, patch_c.read_text() + "\nvoid extra_flush(void *p)\n{\n\tflush_icache_range((unsigned long)p, (unsigned long)p + 4);\n}\n")
    after = scan([root], options(tmp_path))
    assert not after.reused
    assert {c.caller for c in after.callsites} - {c.caller for c in base.callsites} == {"extra_flush"}
    assert scan([root], options(tmp_path)).reused
    new_file = root / "arch/arm/kernel/more.c"
    new_file.write_text("void more(void *p) { flush_icache_range((unsigned long)p, (unsigned long)p + 8); }\n")
    age(root)  # even with an old mtime, the new file shows in its directory's listing
    added = scan([root], options(tmp_path))
    assert not added.reused and any(c.caller == "more" for c in added.callsites)
    new_file.unlink()
    age(root)
    removed = scan([root], options(tmp_path))
    assert not removed.reused and not any(c.caller == "more" for c in removed.callsites)


def test_files_modified_around_the_scan_are_not_trusted(tmp_path: Path):
    root = make_tree(tmp_path / "linux")
    age(root, 0)  # every file just written
    assert not scan([root], options(tmp_path)).reused
    assert not scan([root], options(tmp_path)).reused  # no state was written for it


def test_state_needs_reuse_cache_and_same_options(tmp_path: Path):
    root = make_tree(tmp_path / "linux")
    age(root)
    scan([root], options(tmp_path))
    o = options(tmp_path)
    assert not scan([root], ScanOptions(jobs=1, cache_dir=o.cache_dir)).reused  # graph/index wanted
    assert not scan([root], ScanOptions(jobs=1, cache_dir=o.cache_dir, reuse=True, whole_tree=True)).reused
    assert not scan([root], ScanOptions(jobs=1, cache_dir=o.cache_dir, reuse=True, use_cache=False)).reused


def test_damaged_state_is_ignored(tmp_path: Path):
    root = make_tree(tmp_path / "linux")
    age(root)
    first = scan([root], options(tmp_path))
    states = list((tmp_path / "cache" / "state").rglob("*.marshal"))
    assert len(states) == 1
    states[0].write_text('{"key": "x", "state": [')
    again = scan([root], options(tmp_path))
    assert not again.reused and again.findings == first.findings
    assert scan([root], options(tmp_path)).reused  # rewritten


def _diff(rel: str, old: str, new: str) -> str:
    return "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True), f"a/{rel}", f"b/{rel}"))


def _check(root: Path, patch: Path, tmp_path: Path, use_cache: bool = True):
    change = patch_change(root, patch)
    o = CheckOptions(ScanOptions(jobs=1, cache_dir=tmp_path / "cache" / "facts", use_cache=use_cache))
    try:
        return run_check(change, o)
    finally:
        change.close()


def _same(a, b) -> None:
    """Two check results report the same: new, fixed, unchanged, and the head's call sites."""
    assert [(f.rule, f.file, f.line, f.column, f.fingerprint) for f in a.new] == \
        [(f.rule, f.file, f.line, f.column, f.fingerprint) for f in b.new]
    assert [(f.fingerprint, f.line) for f in a.fixed] == [(f.fingerprint, f.line) for f in b.fixed]
    assert a.unchanged == b.unchanged
    assert a.head.callsites == b.head.callsites
    assert (a.head.files, a.head.parsed, a.head.functions) == (b.head.files, b.head.parsed, b.head.functions)


@pytest.mark.parametrize("rel,what", [
    ("arch/arm/kernel/patch.c", "a comment line at the top"),  # parsed: everything below moves
    (POKE, "a comment line at the top"),  # parsed, with a finding that moves
    ("arch/arm/mach-demo/sram.c", "a blank line inside a function"),
    (POKE, "a stored value changed"),  # the flow follows pointers written through, not the values
])
def test_check_of_a_change_that_only_moves_code_is_derived_from_the_state(tmp_path: Path, rel: str, what: str):
    root = make_tree(tmp_path / "linux")
    age(root)
    scan([root], options(tmp_path))  # remembers the base
    old = (root / rel).read_text()
    if what == "a comment line at the top":
        new = "/* a comment */\n" + old
    elif what == "a stored value changed":
        new = old.replace("*(u32 *)waddr = insn;", "*(u32 *)waddr = insn + 1;")
        assert new != old
    else:
        i = old.index("{\n", old.index(")\n")) + 2
        new = old[:i] + "\n" + old[i:]
    patch = tmp_path / "p.diff"
    patch.write_text(_diff(rel, old, new))
    fast = _check(root, patch, tmp_path)
    assert (fast.base_from, fast.head_from) == ("state", "state")
    full = _check(root, patch, tmp_path, use_cache=False)
    assert (full.base_from, full.head_from) == ("scan", "scan")
    _same(fast, full)
    moved = [c for c in fast.head.callsites if c.file == rel]
    if rel != "arch/arm/mach-demo/sram.c":
        assert moved and all(c.line > 1 for c in moved)


@pytest.mark.parametrize("edit", [
    ("\tpoke_clean(waddr, 4);\n", ""),  # a maintenance call removed: a new finding
    ("*(u32 *)waddr = insn;", "*(u16 *)waddr = insn;"),  # a statement changed (the width written)
    ("\n", "\n/* armalias: ignore[AA001] */\n"),  # a suppression comment
])
def test_check_of_a_real_change_is_scanned_and_agrees(tmp_path: Path, edit):
    root = make_tree(tmp_path / "linux")
    age(root)
    scan([root], options(tmp_path))
    old = (root / POKE).read_text()
    assert edit[0] in old
    new = old.replace(edit[0], edit[1], 1)
    patch = tmp_path / "p.diff"
    patch.write_text(_diff(POKE, old, new))
    fast = _check(root, patch, tmp_path)
    assert (fast.base_from, fast.head_from) == ("state", "scan")
    full = _check(root, patch, tmp_path, use_cache=False)
    _same(fast, full)


def test_the_head_side_takes_no_stamp_the_base_state_took(tmp_path: Path, monkeypatch):
    """check stats the directory's files once: the base's state is checked against them, and the
    prefilter of the head side's scan takes their [size, mtime] from there."""
    import armalias.prefilter as prefilter

    root = make_tree(tmp_path / "linux")
    age(root)
    scan([root], options(tmp_path))
    old = (root / POKE).read_text()
    patch = tmp_path / "p.diff"
    patch.write_text(_diff(POKE, old, old.replace("\tpoke_clean(waddr, 4);\n", "", 1)))
    taken: list[str] = []
    real = prefilter.stamp
    monkeypatch.setattr(prefilter, "stamp", lambda path: taken.append(path) or real(path))
    fast = _check(root, patch, tmp_path)
    assert (fast.base_from, fast.head_from) == ("state", "scan")
    assert taken == []
    monkeypatch.undo()
    _same(fast, _check(root, patch, tmp_path, use_cache=False))


def test_change_to_a_file_the_prefilter_passes_over(tmp_path: Path):
    root = make_tree(tmp_path / "linux")
    age(root)
    quiet = root / "arch/arm/kernel/quiet.c"
    quiet.write_text("int quiet(int x)\n{\n\treturn x + 1;\n}\n")
    age(root)
    scan([root], options(tmp_path))
    old = quiet.read_text()
    patch = tmp_path / "p.diff"
    patch.write_text(_diff("arch/arm/kernel/quiet.c", old, old.replace("x + 1", "x + 2")))
    fast = _check(root, patch, tmp_path)
    assert fast.head_from == "state"
    _same(fast, _check(root, patch, tmp_path, use_cache=False))
    # once it names a watched function, it is parsed: scanned, not derived
    patch.write_text(_diff("arch/arm/kernel/quiet.c", old,
                           old.replace("return x + 1;", "flush_icache_range(x, x + 4);\n\treturn x;")))
    fast = _check(root, patch, tmp_path)
    assert fast.head_from == "scan"
    _same(fast, _check(root, patch, tmp_path, use_cache=False))
    # the head side reads the patched bytes, not the file on disk: the new call is there, as in a scan
    # of the tree with the patch applied
    assert ("flush_icache_range", "quiet") in [(c.callee, c.caller) for c in fast.head.callsites
                                               if c.file == "arch/arm/kernel/quiet.c"]
    applied = make_tree(tmp_path / "applied")
    (applied / "arch/arm/kernel/quiet.c").write_text(old.replace("return x + 1;", "flush_icache_range(x, x + 4);\n\treturn x;"))
    assert fast.head.callsites == scan([applied], ScanOptions(jobs=1, use_cache=False)).callsites


@pytest.mark.parametrize("edit,derived", [
    # a call of a function the analysis does not look at: only an edge to a name reaching nothing
    (("\tclear_fixmap(POKE_SLOT);\n\tflush_icache_range((uintptr_t)addr, (uintptr_t)addr + 2);",
      "\tclear_fixmap(POKE_SLOT);\n\tudelay(1);\n\tflush_icache_range((uintptr_t)addr, (uintptr_t)addr + 2);"), True),
    (("\tpoke_clean(waddr, len);\n", "\tpoke_clean(waddr, len);\n\tcpu_relax();\n"), True),
    # the same place, calls that matter: a maintenance wrapper of the tree, a watched function, an
    # alias global as an argument, a function that reaches a watched one passed as a callback
    (("\tclear_fixmap(POKE_SLOT);\n\tflush_icache_range((uintptr_t)addr, (uintptr_t)addr + 2);",
      "\tpoke_clean(waddr, 2);\n\tclear_fixmap(POKE_SLOT);\n\tflush_icache_range((uintptr_t)addr, (uintptr_t)addr + 2);"),
     False),
    (("\tpoke_clean(waddr, len);\n", "\tpoke_clean(waddr, len);\n\tflush_kernel_vmap_range(waddr, len);\n"), False),
    (("\tpoke_clean(waddr, len);\n", "\tpoke_clean(waddr, len);\n\tudelay((unsigned long)vectors_page);\n"), False),
    (("\tpoke_clean(waddr, len);\n", "\tpoke_clean(waddr, len);\n\tstop_machine(poke_insn, NULL, NULL);\n"), False),
])
def test_check_of_an_added_call(tmp_path: Path, edit, derived):
    """A call added to a parsed file: derived from the state when it cannot matter, scanned when it
    can, and the same answer as a scan of both sides either way."""
    root = make_tree(tmp_path / "linux")
    age(root)
    scan([root], options(tmp_path))
    old = (root / POKE).read_text()
    assert old.count(edit[0]) == 1
    patch = tmp_path / "p.diff"
    patch.write_text(_diff(POKE, old, old.replace(edit[0], edit[1])))
    fast = _check(root, patch, tmp_path)
    assert fast.head_from == ("state" if derived else "scan")
    full = _check(root, patch, tmp_path, use_cache=False)
    _same(fast, full)


def test_check_in_a_git_tree_derives_the_head_from_the_state_of_head(tmp_path: Path, capsys):
    """`armalias check` (the working tree against HEAD) in a git repository: the first check scans
    HEAD and remembers it under the digest of its blob ids; the next one, with another edit that only
    moves code, takes both sides from that state, with the same answer as a check without the cache."""
    from conftest import check_json, make_repo, snapshot

    root = make_repo(tmp_path)
    path = root / POKE
    original = path.read_text()
    path.write_text("/* one */\n" + original)
    rc, first = check_json(capsys, root)
    assert first["stats"]["base_from"] in ("scan", "cache")
    path.write_text("/* one */\n/* two */\n" + original)
    before = snapshot(root)
    rc, second = check_json(capsys, root)
    assert (second["stats"]["base_from"], second["stats"]["head_from"]) == ("state", "state")
    rc_full, full = check_json(capsys, root, "--no-cache")
    for d in (second, full):
        for k in ("seconds", "base_from", "head_from"):
            d["stats"].pop(k)
    assert second == full and rc == rc_full
    assert [c for c in second["callsites"] if c["file"] == POKE][0]["line"] > 2  # moved by the two comments
    assert snapshot(root) == before  # nothing written into the repository, its index or refs


def test_whole_tree_check_keeps_the_prefilter_s_architectures(tmp_path: Path):
    """--whole-tree: ARM's text_hook reaches flush_icache_range in ARM's code only, so it selects ARM's
    files and generic code's, not x86's (prefilter.Restricted, kept in the state).  A patch that makes
    an x86 file call a text_hook leaves the result as it was (derived); the same call added to a
    generic file selects it (scanned).  Both answer as a check without the state does."""
    root = tmp_path / "linux"
    files = {
        "include/linux/types.h": "typedef unsigned long ulong;\n",
        "arch/arm/kernel/hook.c": "void text_hook(unsigned long p)\n{\n\tflush_icache_range(p, p + 4);\n}\n",
        "arch/arm/kernel/user.c": "void arm_user(void)\n{\n\ttext_hook(0);\n}\n",
        "arch/x86/kernel/user.c": "void x86_user(void)\n{\n\tcpu_relax();\n}\n",
        "kernel/generic.c": "void generic_user(void)\n{\n\tcpu_relax();\n}\n",
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    age(root)
    whole = ScanOptions(jobs=1, cache_dir=tmp_path / "cache" / "facts", reuse=True, whole_tree=True)
    first = scan([root], whole)
    assert {f.file for f in first.facts} == {"arch/arm/kernel/hook.c", "arch/arm/kernel/user.c"}

    def check(rel: str, use_cache: bool = True):
        patch = tmp_path / "p.diff"
        old = files[rel]
        patch.write_text(_diff(rel, old, old.replace("cpu_relax();", "text_hook(0);")))
        change = patch_change(root, patch)
        o = CheckOptions(ScanOptions(jobs=1, cache_dir=tmp_path / "cache" / "facts", use_cache=use_cache,
                                     whole_tree=True))
        try:
            return run_check(change, o)
        finally:
            change.close()

    x86 = check("arch/x86/kernel/user.c")
    assert (x86.base_from, x86.head_from) == ("state", "state")
    _same(x86, check("arch/x86/kernel/user.c", use_cache=False))
    generic = check("kernel/generic.c")
    assert generic.head_from == "scan" and "kernel/generic.c" in {f.file for f in generic.head.facts}
    _same(generic, check("kernel/generic.c", use_cache=False))


def test_a_warm_scan_answers_without_parser_graph_library_or_process_pool(tmp_path: Path):
    """A scan answered from the state loads none of what a cold one needs: no tree-sitter, no
    networkx, no process pool (importing concurrent.futures.process took 17 ms of a 0.08 s warm
    arch/arm scan of 6.12)."""
    import subprocess
    import sys

    root = make_tree(tmp_path / "linux")
    age(root)
    env = dict(os.environ, ARMALIAS_CACHE_DIR=str(tmp_path / "cache"))
    probe = ("import sys; from armalias.cli import main; rc = main(['scan', sys.argv[1], '--format', 'json']); "
             "heavy = ('tree_sitter', 'networkx', 'concurrent.futures.process'); "
             "print([m for m in heavy if m in sys.modules], rc, file=sys.stderr)")
    runs = [subprocess.run([sys.executable, "-c", probe, str(root)], env=env, capture_output=True, text=True)
            for _ in range(2)]
    cold, warm = (r.stderr.strip().splitlines()[-1] for r in runs)
    assert cold.startswith("['tree_sitter'")  # the probe sees them (this small tree is extracted in-process)
    assert warm.startswith("[] ")
    assert json.loads(runs[0].stdout)["callsites"] == json.loads(runs[1].stdout)["callsites"]


def test_a_state_is_checked_in_a_forked_process_when_no_thread_runs(tmp_path: Path, monkeypatch):
    """ScanState.unchanged_later: the stats in a process forked for them (the check goes on with the
    state meanwhile), the same answer as unchanged(); with another thread running, nothing forked."""
    import threading

    import armalias.state as state_module
    from armalias.scan import speculative_state

    root = make_tree(tmp_path / "linux")
    age(root)
    scan([root], options(tmp_path))
    forks = []
    real_fork = os.fork
    monkeypatch.setattr(state_module.os, "fork", lambda: forks.append(1) or real_fork())
    state, holds = speculative_state(DirectorySource(root), options(tmp_path))
    assert forks == [1] and holds() is True and holds() is True and state.unchanged()
    rewrite(root / POKE, (root / POKE).read_text() + "\n")
    state, holds = speculative_state(DirectorySource(root), options(tmp_path))
    assert forks == [1, 1] and holds() is False and not state.unchanged()
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        state, holds = speculative_state(DirectorySource(root), options(tmp_path))
        assert forks == [1, 1] and holds() is False
    finally:
        stop.set()
        other.join()


def test_a_state_is_checked_by_joined_paths_where_stat_takes_no_directory(tmp_path: Path, monkeypatch):
    """ScanState.unchanged stats relative to the root's descriptor where os.stat supports dir_fd, by
    joined paths elsewhere: the same answers."""
    from armalias.scan import speculative_state

    root = make_tree(tmp_path / "linux")
    age(root)
    scan([root], options(tmp_path))
    state, holds = speculative_state(DirectorySource(root), options(tmp_path))
    assert holds()
    monkeypatch.setattr(os, "supports_dir_fd", set())
    seen: dict[str, list[int]] = {}
    assert state.unchanged(seen) and seen == state.deps  # the stamps handed on, as with dir_fd
    rewrite(root / POKE, (root / POKE).read_text() + "\n")
    assert not state.unchanged()
    monkeypatch.undo()
    assert not state.unchanged()


def test_a_state_inside_the_tree_is_never_read(tmp_path: Path):
    """A cache directory inside the scanned tree holds no state of armalias's (none is written
    there): one found there, however well formed, is the tree's and is not read."""
    from dataclasses import replace

    from armalias.cache import MarshalEntries
    from armalias.scan import memo_of
    from armalias.state import load_state, state_dir, state_key

    root = make_tree(tmp_path / "linux")
    age(root)
    inside = ScanOptions(jobs=1, cache_dir=root / ".cache" / "facts", reuse=True)
    real = scan([root], inside)
    assert not real.reused and real.findings
    outside = options(tmp_path)
    scan([root], outside)  # a true state, outside the tree, to plant a copy of
    memo = memo_of(DirectorySource(root))
    good = load_state(outside.cache_dir, memo.key, False, True)
    assert good is not None
    planted = replace(good, findings=[], modelled=[], callsites=[])
    key = state_key(memo.key, False, True)
    assert MarshalEntries(state_dir(inside.cache_dir)).write((key,), {"state": vars(planted)})
    assert load_state(inside.cache_dir, memo.key, False, True) is not None  # well formed, were it read
    assert load_state(inside.cache_dir, memo.key, False, True, root.resolve()) is None
    again = scan([root], inside)
    assert not again.reused and again.findings == real.findings


def test_a_same_size_edit_with_its_mtime_put_back_is_seen(tmp_path: Path):
    """`touch -r` after an edit of the same size leaves size and mtime as they were; the ctime (and,
    for a file replaced by a rename, the inode) says the file is not the one read."""
    root = make_tree(tmp_path / "linux")
    age(root)
    patch_c = root / "arch/arm/kernel/patch.c"
    text = patch_c.read_text()
    assert "flush_icache_range" in text
    base = scan([root], options(tmp_path))
    st = patch_c.stat()
    patch_c.write_text(text.replace("flush_icache_range", "flush_icache_rangX"))  # the same size
    os.utime(patch_c, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert patch_c.stat().st_size == st.st_size and patch_c.stat().st_mtime_ns == st.st_mtime_ns
    after = scan([root], options(tmp_path))
    assert not after.reused
    assert len(after.callsites) < len(base.callsites)
