"""The head side of a whole-tree check takes the base's prefilter rounds (armalias.selection.SelectionHints):
the same answer as listing and searching the whole tree again, for changes that keep the words, that
change them (a function starts reaching a root), that select a file or stop selecting one; and no
hints at all when the change adds a file."""

from __future__ import annotations

import difflib
import io
import json
from contextlib import redirect_stdout
from pathlib import Path

import pytest

import armalias.check.run as diff
import armalias.prefilter as prefilter
from armalias.cli import main
from conftest import make_tree
from conftest import age

EXTRA = {
    # generic code reaching a root: the first round chooses it, and its function is a word of the second
    "lib/sync.c": "void generic_sync(unsigned long a) { flush_icache_range(a, a + 4); }\n",
    # generic code calling that function: chosen by the second round
    "kernel/text.c": "void text_poke_all(unsigned long a) { generic_sync(a); }\nint quiet(void) { return 0; }\n",
    "drivers/misc/other.c": "int other(int x) { return x + 1; }\n",
    # a rule word in a comment only: chosen by the first round, no function of it reaches a root
    "drivers/misc/note.c": "/* no flush_icache_range here: nothing runs */\nint note(void) { return 0; }\n",
    "arch/mips/kernel/cache.c": "void mips_sync(unsigned long a) { flush_icache_range(a, a + 4); }\n",
    # calls mips_sync, which reaches a root only in mips' build: no round chooses it
    "arch/x86/kernel/user.c": "void x86_user(void) { mips_sync(0); }\n",
}


def _tree(tmp_path: Path) -> Path:
    root = make_tree(tmp_path / "linux")
    for rel, text in EXTRA.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def _patch(root: Path, tmp_path: Path, name: str, rel: str, new: str | None) -> Path:
    """A patch giving `rel` the text `new` (None: `rel` is a new file holding EXTRA's other.c)."""
    if new is None:
        old_lines: list[str] = []
        new_lines = EXTRA["drivers/misc/other.c"].splitlines(keepends=True)
        a = "/dev/null"
    else:
        old_lines = (root / rel).read_text().splitlines(keepends=True)
        new_lines = new.splitlines(keepends=True)
        a = f"a/{rel}"
    path = tmp_path / f"{name}.patch"
    path.write_text("".join(difflib.unified_diff(old_lines, new_lines, a, f"b/{rel}")))
    return path


def _check(root: Path, patch: Path) -> tuple[int, dict]:
    out = io.StringIO()
    with redirect_stdout(out):
        rc = main(["check", "--patch", str(patch), "--tree", str(root), "--whole-tree", "--format", "json", "--jobs", "1"])
    data = json.loads(out.getvalue())
    data["stats"].pop("seconds", None)
    return rc, data


def _edits(root: Path) -> dict[str, tuple[str, str | None]]:
    patch_c = (root / "arch/arm/kernel/patch.c").read_text()
    text_c = (root / "kernel/text.c").read_text()
    return {
        # a relevant change in a file the first round chose: the words stay, the hints serve
        "words kept": ("arch/arm/kernel/patch.c", patch_c.replace("flush_icache_range(", "flush_icache_range(0 + ", 1)),
        # a file of the second round edited, still naming its word
        "second round's file": ("kernel/text.c", text_c.replace("generic_sync(a);", "a += 4; generic_sync(a);")),
        # a file no round chose now names a rule word (in a comment): the first round chooses it
        "newly chosen": ("drivers/misc/other.c", "/* not flush_icache_range */\nint other(int x) { return x; }\n"),
        # the first round's file no longer names its word
        "no longer chosen": ("drivers/misc/note.c", "int note(void) { return 0; }\n"),
        # a file of the second round calls a watched name itself: its function reaches a root, so the
        # second round's words differ, and the tree is listed and searched from there
        "words changed": ("kernel/text.c", text_c.replace("int quiet(void) { return 0; }",
                                                          "int quiet(void) { flush_icache_range(0, 4); return 0; }")),
        "a file added": ("drivers/misc/added.c", None),
    }


@pytest.fixture
def tree(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("ARMALIAS_CACHE_DIR", str(tmp_path / "cache"))
    root = _tree(tmp_path)
    age(root)  # a tree unpacked a day ago: its state is remembered (fresh files are never trusted)
    assert main(["scan", str(root), "--whole-tree", "--format", "json", "--jobs", "1", "--output",
                 str(tmp_path / "base.json")]) in (0, 1)  # the base's state, with its rounds, remembered
    assert list((tmp_path / "cache" / "state").glob("*.marshal"))
    return root


@pytest.mark.parametrize("case", ["words kept", "second round's file", "newly chosen", "no longer chosen", "words changed",
                                  "a file added"])
def test_the_head_from_the_base_rounds_is_the_head_a_full_listing_gives(tree: Path, tmp_path: Path, monkeypatch,
                                                                         case: str):
    rel, new = _edits(tree)[case]
    patch = _patch(tree, tmp_path, case.replace(" ", "-").replace("'", ""), rel, new)
    searched: list[list[str]] = []
    real_select = prefilter.select_started  # every search: select starts one too
    monkeypatch.setattr(prefilter, "select_started", lambda source, rels, *a, **k: searched.append(list(rels)) or
                        real_select(source, rels, *a, **k))
    used = []
    real_hints = diff._selection_hints
    monkeypatch.setattr(diff, "_selection_hints", lambda change, state, holds=None: used.append(real_hints(change, state, holds)) or used[-1])
    hinted = _check(tree, patch)
    with_hints = searched[:]
    searched.clear()
    monkeypatch.setattr(diff, "_selection_hints", lambda change, state, holds=None: None)
    plain = _check(tree, patch)
    assert hinted == plain
    assert plain[1]["stats"]["head_from"] == "scan"
    listed = max(len(r) for r in searched)
    assert listed > len(EXTRA)  # without hints a round searches every file of the tree
    if case == "a file added":
        assert used == [None] and max(len(r) for r in with_hints) == listed
    elif case == "words changed":  # the first round from the hints, the second searched in full
        assert used[0] is not None and [len(r) for r in with_hints][0] == 1 and max(len(r) for r in with_hints) > 1
    else:  # only the changed file is searched
        assert used[0] is not None and all(r == [rel] for r in with_hints), with_hints


@pytest.mark.parametrize("jobs", [1, 2])
@pytest.mark.parametrize("case", ["words kept", "words changed"])
def test_a_base_state_that_no_longer_holds_is_not_taken(tree: Path, tmp_path: Path, monkeypatch, case: str,
                                                         jobs: int):
    """The base's state is checked while the head is scanned with its rounds (speculative_state).  A
    file changed since it was taken (here a new caller, in a file no patch touches): the head is
    scanned again without it, whether the hinted rounds ran to the end ("words kept") or gave out
    and asked for the base's stamps ("words changed"); the answer is that of a check with no state.
    With two jobs the searches run in worker processes (the stamps are asked for, and the state
    found not to hold, before any search is gone on without)."""
    import os

    if jobs > 1:
        monkeypatch.setattr(prefilter, "POOL_FILES", 0)

    rel, new = _edits(tree)[case]
    patch = _patch(tree, tmp_path, case.replace(" ", "-"), rel, new)
    other = tree / "drivers/misc/other.c"
    other.write_text("void other_sync(unsigned long a) { flush_icache_range(a, a + 8); }\n")
    stamp = other.stat().st_mtime_ns - 86_400 * 10**9 + 10**9  # old, but not the state's
    os.utime(other, ns=(stamp, stamp))
    stale = []
    real_hints = diff._selection_hints
    monkeypatch.setattr(diff, "_selection_hints", lambda change, state, holds=None:
                        stale.append(holds is not None) or real_hints(change, state, holds))
    rc, taken = _check_jobs(tree, patch, jobs)
    assert stale == [True]  # the hints were given before the state was known not to hold
    assert taken["stats"]["base_from"] == "scan" and taken["stats"]["head_from"] == "scan"
    assert any(c["caller"] == "other_sync" for c in taken["callsites"])  # the tree as it is now
    monkeypatch.setenv("ARMALIAS_CACHE_DIR", str(tmp_path / "fresh-cache"))
    assert (rc, taken) == _check_jobs(tree, patch, jobs)


@pytest.mark.parametrize("case", ["words grow", "words shrink", "a word's architectures widen"])
def test_a_round_whose_words_differ_searches_only_the_new_words_where_the_base_passed(
        tree: Path, tmp_path: Path, monkeypatch, case: str):
    """When a round's words or their architectures differ from the base's (armalias.selection.delta_round),
    the files the base's round passed over are searched for the words that apply where they did not
    (none when words only go), the base's choice is kept when every word still applies, and the
    answer is that of listing and searching the whole tree again."""
    sync = (tree / "lib/sync.c").read_text()
    rel, new = {
        "words grow": _edits(tree)["words changed"],  # quiet() reaches flush_icache_range now
        "words shrink": ("lib/sync.c", sync.replace("flush_icache_range(a, a + 4);", "")),  # generic_sync no more
        # a generic mips_sync: every build's now, so x86's caller is chosen
        "a word's architectures widen": ("lib/sync.c", sync + "void mips_sync(unsigned long a) { flush_icache_range(a, a); }\n"),
    }[case]
    patch = _patch(tree, tmp_path, case.replace(" ", "-").replace("'", ""), rel, new)
    searches: list[tuple[int, frozenset[str]]] = []
    real_select = prefilter.select_started  # every search: select starts one too
    monkeypatch.setattr(prefilter, "select_started", lambda source, rels, words, *a, **k: searches.append((len(rels), words))
                        or real_select(source, rels, words, *a, **k))
    hinted = _check(tree, patch)
    taken, searches[:] = searches[:], []
    monkeypatch.setattr(diff, "_selection_hints", lambda change, state, holds=None: None)
    assert hinted == _check(tree, patch)
    few = [words for n, words in taken if n and len(words) < 10]  # the searches for a few words
    assert max(n for n, _ in taken) < max(n for n, _ in searches)  # never as many files as a full search
    if case == "words grow":  # quiet() reaches a root now; text_poke_all(), a caller of a caller
        # (generic_sync, another file's), is a word of no round, though its file is a first round's now
        assert few == [frozenset({"quiet"})]
    elif case == "words shrink":
        assert few == []  # no word applies anywhere new: nothing passed over is read again
    else:
        assert few == [frozenset({"mips_sync"})]


@pytest.mark.parametrize("listing", [True, False])
def test_a_round_whose_words_differ_takes_the_base_listing_not_the_tree(tree: Path, tmp_path: Path, monkeypatch,
                                                                       listing: bool):
    """The state keeps the files the base's listing gave (ScanState.listing): a head round that
    searches the tree takes them, the state holding, instead of walking the tree again; a state
    without them (an older one) lists the tree.  The answer is the same either way."""
    import armalias.selection as selection
    from armalias.source.tree import DirectorySource

    rel, new = _edits(tree)["words changed"]
    patch = _patch(tree, tmp_path, "words-changed", rel, new)
    if not listing:
        real_from_state = selection.SelectionHints.from_state.__func__

        def without(cls, state, changed, holds=None, **kw):
            from dataclasses import replace as copy

            return real_from_state(cls, copy(state, listing=[]), changed, holds, **kw)

        monkeypatch.setattr(selection.SelectionHints, "from_state", classmethod(without))
    walks: list[str] = []
    real_discover = DirectorySource.discover
    monkeypatch.setattr(DirectorySource, "discover", lambda self, under="": walks.append(under) or
                        real_discover(self, under))
    hinted = _check(tree, patch)
    # arch/arm is listed for its assembly (the MMU-off readers of AA005); the tree is not listed again
    assert [w for w in walks if w != "arch/arm"] == ([] if listing else [""])
    monkeypatch.setattr(diff, "_selection_hints", lambda change, state, holds=None: None)
    before = len(walks)
    assert hinted == _check(tree, patch)
    assert "" in walks[before:]  # without hints the tree is listed


def _check_jobs(root: Path, patch: Path, jobs: int) -> tuple[int, dict]:
    out = io.StringIO()
    with redirect_stdout(out):
        rc = main(["check", "--patch", str(patch), "--tree", str(root), "--whole-tree", "--format", "json",
                   "--jobs", str(jobs)])
    data = json.loads(out.getvalue())
    data["stats"].pop("seconds", None)
    return rc, data


@pytest.mark.parametrize("case", ["named nowhere else", "named in a file passed over", "made to reach"])
def test_a_search_for_new_words_the_check_goes_on_without_gives_the_same_answer(
        tree: Path, tmp_path: Path, monkeypatch, case: str):
    """A round whose words grew, words the change brought in (diff._brought_in: the base's bytes of
    the changed files name none), searches the files the base passed over in worker processes while
    the head's scan goes on as if none named a new word (SelectionHints.speculate; on a real tree
    only past prefilter.POOL_FILES files, here past none).  When none does, that scan is the answer;
    when one does (drivers/misc/other.c names the new function), the scan is made again.  A
    function the change makes reach a watched call ("made to reach": quiet() in kernel/text.c) was
    named before: that search is waited for.  Every way, the answer is that of listing and
    searching the whole tree."""
    import armalias.selection as selection

    monkeypatch.setattr(prefilter, "POOL_FILES", 0)
    name = "fresh_sync" if case == "named nowhere else" else "other_hook"
    (tree / "drivers/misc/other.c").write_text(
        "int other(int x) { return x + 1; }\nvoid other_user(unsigned long a) { other_hook(a); }\n")
    age(tree)
    assert main(["scan", str(tree), "--whole-tree", "--format", "json", "--jobs", "1", "--output",
                 str(tmp_path / "base2.json")]) in (0, 1)  # the base's state, other.c as it is now
    if case == "made to reach":
        patch = _patch(tree, tmp_path, "made-to-reach", *_edits(tree)["words changed"])
    else:
        patch_c = (tree / "arch/arm/kernel/patch.c").read_text()
        new = patch_c + f"\nvoid {name}(unsigned long a)\n{{\n\tflush_icache_range(a, a + 4);\n}}\n"
        patch = _patch(tree, tmp_path, name, "arch/arm/kernel/patch.c", new)
    went_on: list[int] = []
    chosen: list[list[str]] = []
    missed: list[bool] = []
    real_delta, real_confirm = selection.delta_round, selection.confirm

    def delta(hint, source, words, restricted, jobs, cache_dir, stamps, hints, *rest):
        before = len(hints.pending)
        out = real_delta(hint, source, words, restricted, jobs, cache_dir, stamps, hints, *rest)
        went_on.append(len(hints.pending) - before)
        chosen.append(out[0])
        return out

    def confirm(hints):
        try:
            real_confirm(hints)
        except selection.SpeculationMissed:
            missed.append(True)
            raise
        if hints is not None:
            missed.append(False)

    monkeypatch.setattr(selection, "delta_round", delta)
    monkeypatch.setattr(selection, "confirm", confirm)
    hinted = _check_jobs(tree, patch, 2)
    if case == "made to reach":  # quiet and text_poke_all were named in text.c: searched, then on
        assert went_on == [0] and missed == [False]
    else:  # the first delta round went on without its search of the files passed over
        assert went_on[0] == 1
    assert missed[0] is (case == "named in a file passed over")
    if missed[0]:  # made again: the search's answer known, nothing left to go on without
        assert went_on[1:] and all(n == 0 for n in went_on[1:]) and missed[1:] == [False]
        assert "drivers/misc/other.c" not in chosen[0] and "drivers/misc/other.c" in chosen[1]
    monkeypatch.setattr(diff, "_selection_hints", lambda change, state, holds=None: None)
    assert hinted == _check_jobs(tree, patch, 2)


def test_the_workers_of_a_search_gone_on_without_end_when_the_scan_fails(tree: Path, tmp_path: Path, monkeypatch):
    """A scan that stops (an error, an interrupt) while a search it went on without still runs
    ends that search's worker processes (selection.end_pending)."""
    import armalias.pipeline as pipeline

    monkeypatch.setattr(prefilter, "POOL_FILES", 0)
    patch_c = (tree / "arch/arm/kernel/patch.c").read_text()
    new = patch_c + "\nvoid fresh_sync(unsigned long a)\n{\n\tflush_icache_range(a, a + 4);\n}\n"
    patch = _patch(tree, tmp_path, "fails", "arch/arm/kernel/patch.c", new)
    searches: list = []
    real_started = prefilter.select_started

    def started(*a, **k):
        finish = real_started(*a, **k)
        searches.append(finish.search)
        return finish

    def fail(result, vocab=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(prefilter, "select_started", started)
    monkeypatch.setattr(pipeline, "find_alias_bugs", fail)
    with redirect_stdout(io.StringIO()):
        rc = main(["check", "--patch", str(patch), "--tree", str(tree), "--whole-tree", "--jobs", "2"])
    assert rc == 130  # interrupted (cli)
    pooled = [s for s in searches if s.futures]
    assert pooled and all(s.pool is None for s in pooled)  # started in workers, and ended
