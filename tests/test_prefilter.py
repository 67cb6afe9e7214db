"""The identifier prefilter's text test: the same answer as a regular expression for the words as whole
identifiers, whatever the number of words (a search of its own for each of a few, one Aho-Corasick
automaton for more, one Hyperscan database past 64, or the automaton where Hyperscan cannot be had), on
any bytes.  And the files no word applies to are not read."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from armalias.prefilter import matcher, rule_words, select
from armalias.rules import load_watched

IDENT = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{3,12}", fullmatch=True)


MEMBERS = ("coherent_kern_range", "flush_kern_all")  # rules/watched.toml [cache_fns] members


def _reference(words, data: bytes) -> bool:
    alts = b"|".join(re.escape(w.encode()) for w in sorted(words))
    if re.search(rb"(?<![A-Za-z0-9_])(?:" + alts + rb")(?![A-Za-z0-9_])", data):
        return True
    members = [w for w in words if w in load_watched().cache_fns_members]
    if not members:
        return False
    alts = b"|".join(re.escape(w.encode()) for w in sorted(members))
    return re.search(rb"(?:(?<![A-Za-z0-9_])|(?<=_))(?:" + alts + rb")(?![A-Za-z0-9_])", data) is not None


# filler made of identifier bytes and separators, so that planted words often touch longer names
FILLER = st.lists(st.sampled_from([b" ", b"_", b"a", b"Z", b"0", b"(", b"\n", b"\xff", b"x_y"]), max_size=80).map(b"".join)


@settings(max_examples=400, deadline=None)
@given(words=st.frozensets(st.one_of(IDENT, st.sampled_from(MEMBERS + ("v4wb_coh", "kern_range_x"))), min_size=1,
                           max_size=40), filler=st.one_of(st.binary(max_size=300), FILLER),
       picks=st.lists(st.tuples(st.integers(min_value=0), st.integers(min_value=0)), max_size=4))
def test_matcher_finds_whole_identifiers(words, filler, picks):
    data = filler
    ordered = sorted(words)
    for pick, where in picks:  # words planted anywhere: inside longer names, side by side, overlapping
        w = ordered[pick % len(ordered)].encode()
        i = where % (len(data) + 1)
        data = data[:i] + w + data[i:]
    assert matcher(words)(data) is _reference(words, data)


class _Engines:
    """prefilter._bytes_matcher with each of its engines for many words: Hyperscan (forced from 9
    words on, where it normally starts past PACKED_PATTERNS) and, as where it cannot be had, the
    automaton alone.  Counts the matchers Hyperscan built, so a test can tell it was used."""

    def __init__(self, hyperscan: bool):
        self.hyperscan = hyperscan
        self.built = 0

    def __enter__(self):
        from unittest import mock

        import armalias.prefilter as prefilter
        from armalias.source.text import any_occurrence

        def counted(patterns, tests):
            found = any_occurrence(patterns, tests) if self.hyperscan else None
            self.built += found is not None
            return found

        self._patches = [mock.patch.object(prefilter, "any_occurrence", counted),
                         mock.patch.object(prefilter, "PACKED_PATTERNS", 8 if self.hyperscan else prefilter.PACKED_PATTERNS)]
        for p in self._patches:
            p.start()
        return self

    def __exit__(self, *exc):
        for p in self._patches:
            p.stop()


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(words=st.frozensets(st.one_of(IDENT, st.sampled_from(MEMBERS + ("v4wb_coh", "kern_range_x"))), min_size=9,
                           max_size=80), filler=st.one_of(st.binary(max_size=300), FILLER),
       picks=st.lists(st.tuples(st.integers(min_value=0), st.integers(min_value=0)), max_size=4),
       hyperscan=st.booleans())
def test_each_engine_for_many_words_finds_whole_identifiers(words, filler, picks, hyperscan):
    """Hyperscan reports every occurrence (overlapping ones too) and each is tested, a member's
    `_member` end included; without Hyperscan the automaton answers the same."""
    data = filler
    ordered = sorted(words)
    for pick, where in picks:
        w = ordered[pick % len(ordered)].encode()
        i = where % (len(data) + 1)
        data = data[:i] + w + data[i:]
    with _Engines(hyperscan) as engines:
        assert matcher(words)(data) is _reference(words, data)
    assert engines.built == hyperscan


def test_past_the_packed_searchers_limit_hyperscan_answers():
    """More words than ahocorasick-rs's packed searcher takes (a whole-tree scan's second round):
    Hyperscan, a dependency, is used, and answers as the automaton does on kernel-shaped text."""
    import armalias.prefilter as prefilter

    words = frozenset(f"caller_{i:03d}_of_root" for i in range(prefilter.PACKED_PATTERNS + 1)) | {"coherent_kern_range"}
    texts = [b"void f(void)\n{\n\tcaller_007_of_root(a);\n}\n", b"x = local_caller_007_of_root;",
             b"caller_064_of_root_late();", b"ENTRY(v4wb_coherent_kern_range)\n", b"xcoherent_kern_range();",
             b"\xff" * 5000 + b"(caller_000_of_root)", b""]
    for hyperscan in (True, False):
        with _Engines(hyperscan) as engines:
            mentions = matcher(words)
            assert [mentions(t) for t in texts] == [True, False, False, True, False, True, False]
        assert engines.built == hyperscan


@given(words=st.frozensets(IDENT, min_size=9, max_size=30), pick=st.integers(min_value=0))
def test_a_word_inside_a_longer_name_is_not_a_mention(words, pick):
    w = sorted(words)[pick % len(words)]
    for data in (f"local_{w}(x);", f"{w}_late(x);", f"x{w}0"):
        assert matcher(words)(data.encode()) is _reference(words, data.encode())
    assert matcher(words)(f"a({w});".encode()) and matcher(frozenset({w}))(f"a({w});".encode())


def test_members_match_as_the_end_of_a_name():
    for words in (frozenset({"coherent_kern_range"}), rule_words()):  # the few-words path and the automaton
        mentions = matcher(words)
        assert mentions(b"ENTRY(v4wb_coherent_kern_range)\n")  # an implementation, named *_member
        assert mentions(b"\t.long\tcoherent_kern_range\n")
        assert not mentions(b"xcoherent_kern_range();")  # no `_` before it: another name
        assert not mentions(b"v4wb_coherent_kern_range_end:")  # not the end of the name
    # a match earlier in the same name (v4wb_coh, leftmost) must not hide the member's end
    words = frozenset({"v4wb_coh", "coherent_kern_range"} | {f"word{i:02d}" for i in range(10)})
    assert matcher(words)(b"ENTRY(v4wb_coherent_kern_range)\n")


def test_rule_words_in_kernel_shaped_text():
    words = rule_words()
    assert len(words) > 8  # the automaton, not the few-words path
    mentions = matcher(words)
    assert mentions(b"static void f(void)\n{\n\tflush_icache_range(a, b);\n}\n")
    assert mentions(b"x = __cpuc_coherent_kern_range;")  # an identifier: no call needed
    assert not mentions(b"local_flush_icache_range(a, b);")  # a longer name that contains one
    assert not mentions(b"my_patch_map_helper();")
    assert not mentions(b"static int g(int x)\n{\n\treturn x + 1;\n}\n")
    assert not mentions(b"")
    assert mentions(b"\x00\xff" * 1000 + b"patch_map" + b"\xfe" * 10)


@settings(max_examples=500, deadline=None)
@given(data=st.binary(max_size=60).map(lambda b: bytes(b"ab\\\n /*"[x % 7] for x in b)), a=st.integers(0, 60),
       b=st.integers(0, 60), keep=st.booleans())
def test_blank_keeps_offsets_newlines_and_continuations(data, a, b, keep):
    from armalias.source.text import blank

    start, end = min(a, b, len(data)), min(max(a, b), len(data))
    buf = bytearray(data)
    blank(buf, start, end, keep_backslash_newline=keep)
    assert len(buf) == len(data) and buf[:start] == data[:start] and buf[end:] == data[end:]
    for i in range(start, end):
        continuation = data[i:i + 2] == b"\\\n"
        if data[i] == 0x0A or (keep and continuation):
            assert buf[i] == data[i]
        else:
            assert buf[i] == 0x20


def test_the_memos_kept_are_the_last_written_or_used(tmp_path):
    """Each set of words searched leaves a memo (a check searches the tree for each new name that
    reaches a root); a cache directory keeps MAX_MEMOS of them, those written or found last."""
    import os

    import armalias.prefilter as prefilter
    from armalias.prefilter import SelectionMemo, select
    from armalias.source.tree import DirectorySource

    root = tmp_path / "linux"
    (root / "kernel").mkdir(parents=True)
    (root / "kernel/a.c").write_text("void used_0(void) { name_1(); }\n")
    source = DirectorySource(root)
    cache = tmp_path / "cache" / "facts"
    memos = cache.parent / "prefilter"

    def search(i: int) -> list[str]:
        chosen, _ = select(source, ["kernel/a.c"], frozenset({f"name_{i}"}), 1, cache)
        return chosen

    first = prefilter.MAX_MEMOS
    for i in range(first):
        search(i)
    assert len(list(memos.iterdir())) == first
    from armalias.cache import MarshalEntries

    name_0 = MarshalEntries(memos)._path((SelectionMemo.open(root, frozenset({"name_0"}), {}, memos).key,))[0]
    past = min(p.stat().st_mtime_ns for p in memos.iterdir()) - 10**9
    for p in memos.iterdir():  # all written in the past, name_0's memo the longest ago
        os.utime(p, ns=(past + (p != name_0),) * 2)
    assert SelectionMemo.open(root, frozenset({"name_0"}), {}, memos).entries  # found: now the last used
    assert name_0.stat().st_mtime_ns > past + 1
    assert search(1) == ["kernel/a.c"]  # a memo's answer, nothing written
    assert len(list(memos.iterdir())) == first
    search(first)  # one more word set: one of the memos used least recently goes, not name_0's
    left = set(memos.iterdir())
    assert len(left) == first and name_0 in left


def test_words_restricted_to_other_architectures_leave_a_file_unread(tmp_path):
    """When every word selects only some architectures' files (a later round's callers, or a check's
    new function), another architecture's file is not read: a binary one there is not even said to
    be no C text, while the same search with a word that applies everywhere reads it."""
    from armalias.source.tree import DirectorySource

    files = {"arch/x86/kernel/blob.c": b"mips_sync\0\1\2", "arch/x86/kernel/user.c": b"void u(void) { mips_sync(0); }\n",
             "arch/mips/kernel/user.c": b"void m(void) { mips_sync(0); }\n", "kernel/user.c": b"void g(void) { mips_sync(0); }\n"}
    for rel, data in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    rels = sorted(files)
    source = DirectorySource(tmp_path)
    chosen, bad = select(source, rels, frozenset({"mips_sync"}), 1, restricted={"mips_sync": frozenset({"mips"})})
    assert chosen == ["arch/mips/kernel/user.c", "kernel/user.c"] and bad == []
    chosen, bad = select(source, rels, frozenset({"mips_sync", "other"}), 1, restricted={"mips_sync": frozenset({"mips"})})
    assert chosen == ["arch/mips/kernel/user.c", "kernel/user.c"]
    assert [b.file for b in bad] == ["arch/x86/kernel/blob.c"]


def test_inline_assembly_that_maintains_selects_its_file():
    """A file whose only maintenance is an `asm("mcrr p15, 0, ...")` is read (rules/vocabulary.toml
    [inline_asm]); a cp15 accessor's `mcr` alone does not select one."""
    match = matcher(rule_words())
    assert match(b'static void d(void *k)\n{\n\t__asm__("mcrr\\tp15, 0, %1, %0, c6" : : "r" (k), "r" (k));\n}\n')
    assert not match(b'static u32 r(void)\n{\n\tu32 v;\n\tasm("mrc p15, 0, %0, c1, c0, 0" : "=r" (v));\n'
                     b'\tasm("mcr p15, 0, %0, c1, c0, 0" : : "r" (v));\n\treturn v;\n}\n')


SRAM_COPY = b"""static void board_standby(unsigned int mode)
{
	void *sram = gen_pool_alloc(pool, 256);
	void (*fn)(unsigned int) = sram;

	memcpy_toio(sram, standby_start, 256);
	fn(mode);
}
"""


def test_code_copied_and_called_selects_its_file_with_no_word_of_the_rules():
    """A copy into memory the file maps (SRAM, an ioremap) and a call through a pointer: the flow
    finds where the code runs from the call (AA004), so the file is read even though it names no
    maintenance call (rules/vocabulary.toml [copied_and_called])."""
    match = matcher(rule_words())
    assert match(SRAM_COPY)
    # nothing called through a pointer
    assert not match(SRAM_COPY.replace(b"void (*fn)(unsigned int) = sram;", b"").replace(b"fn(mode);", b"writel(mode, base);"))
    assert not match(SRAM_COPY.replace(b"gen_pool_alloc", b"kmalloc"))  # memory it does not map itself
    assert not match(SRAM_COPY.replace(b"memcpy_toio", b"copy_in"))  # no copy
