"""The identifier prefilter: which files can matter, decided before any parsing.

Like Coccinelle's token selection: a file is parsed only if it mentions a word the rules need (the
watched functions, the maintenance calls, the alias globals, the execution entry points, the
cpu_cache_fns members), or, in later rounds, a function or macro that reaches one of those (callers of
callers), until nothing new is selected.  The words come from rules/, never from code.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Callable

from armalias.cache import MarshalEntries
from armalias.facts import Skipped
from armalias.rules import load_vocabulary, load_watched
from armalias.source.text import IDENTIFIER_BYTES, Unreadable, any_occurrence, check_text, multi_find, whole_identifier
from armalias.source.tree import TreeSource, read_file
from armalias.state import in_tree, stamp


# A shape no word names, in the words as a token of its own (so the selection memo's key has it):
# code copied (a write sink) into memory the file maps itself (an alias source) and called through a
# pointer (`((void (*)(void))p)()`, a `(*fn)(...)` variable).  Such a function needs no maintenance
# call to matter, and its file may name no other word of the rules.
COPIED_AND_CALLED = "\0copied-and-called"
_POINTER_CALL = re.compile(rb"\(\s*\*\s*[A-Za-z_]\w*\s*\)\s*\(|\)\s*\)\s*\(")


def rule_words() -> frozenset[str]:
    v = load_vocabulary()
    w = load_watched()
    # (inline assembly's `asm:<operation>` calls are no words of the text: extraction names them)
    words = set(w.names) | {m.lstrip(".") for m in v.maintenance if ":" not in m} | set(v.alias_globals)
    words |= set(v.exec_entries)
    words |= set(w.cache_fns_members) | {w.cache_fns_struct}
    # the mnemonics of inline assembly that maintains the cache are short, and only in asm() strings
    return frozenset(x for x in words if len(x) >= 4) | frozenset(v.asm_words) | {COPIED_AND_CALLED}


@lru_cache(maxsize=1)
def _copied_and_called() -> Callable[[bytes], bool]:
    """The test of COPIED_AND_CALLED: `memcpy` as a substring first (bytes.find, quick over every
    file), then a mapping's whole name (one Hyperscan database when it can be had), then a call
    through a pointer."""
    v = load_vocabulary()
    sources = sorted(n.encode() for n, (kind, _) in v.alias_sources.items() if kind in v.copied_kinds)
    # one Hyperscan database when it can be had, even for fewer names than _bytes_matcher hands it:
    # it runs over every file that names memcpy, where the automaton was the slower search
    maps = _bytes_matcher(tuple(sources)) if len(sources) <= 8 else (
        any_occurrence(sources, [whole_identifier] * len(sources)) or _bytes_matcher(tuple(sources)))

    def test(data: bytes) -> bool:
        # every copy of the shape is a memcpy of some flavour (memcpy_toio ...): a substring first
        if data.find(b"memcpy") < 0 or not maps(data):
            return False
        return _POINTER_CALL.search(data) is not None

    return test


def _with_shapes(words, test: Callable[[bytes], bool]) -> Callable[[bytes], bool]:
    if COPIED_AND_CALLED not in words:
        return test
    shape = _copied_and_called()
    return lambda data: test(data) or shape(data)


def matcher(words: frozenset[str]):
    """A test `data -> bool`: does the text mention any of the words as a whole identifier (not
    preceded or followed by a letter, digit or underscore).  `do_tr` does not select a file for its
    `do_trap`, nor `flush_icache_range` one for its `local_flush_icache_range`: on the whole 6.12 tree
    a substring test selected 392 of 1,797 files for such coincidences alone.  The cpu_cache_fns
    members (rules/watched.toml [cache_fns]) also match as the `_member` end of a name: their
    implementations are the symbols so named (v4wb_coherent_kern_range)."""
    return _with_shapes(words, _bytes_matcher(_encode(words)))


def _name_end(data: bytes, start: int, end: int) -> bool:
    """The match ends a name and starts it or follows its `_`."""
    return ((start == 0 or data[start - 1] not in IDENTIFIER_BYTES or data[start - 1] == 0x5F)
            and (end == len(data) or data[end] not in IDENTIFIER_BYTES))


# ahocorasick-rs hands at most this many patterns to its packed (Teddy) searcher; past them it falls
# back to its DFA, a much slower search (text.any_occurrence)
PACKED_PATTERNS = 64


def _bytes_matcher(bwords: tuple[bytes, ...]):
    """Few words: a search of its own for each.  More: one Aho-Corasick automaton over the bytes
    (text.multi_find), far quicker than one regular expression of all the words.  A member's
    `_member` end can be hidden by a match starting earlier in the same name; but then some match
    was reported, so the members are searched for again, overlapping, in the (few) texts with a
    match that is no name.
    Few words are searched for one by one: ahocorasick-rs hands a single pattern to a vectorized
    substring search, quicker than bytes.find and than an automaton of a few function names.  Past
    PACKED_PATTERNS words, one Hyperscan database (text.any_occurrence) when it can be had: its
    matcher for many literals stays quick where the automaton leaves its packed searcher."""
    members = frozenset(m.encode() for m in load_watched().cache_fns_members)
    if len(bwords) > PACKED_PATTERNS:
        found = any_occurrence(list(bwords), [_name_end if w in members else whole_identifier for w in bwords])
        if found is not None:
            return found
    if len(bwords) > 8:
        suffixes = [w for w in bwords if w in members]
        find = multi_find(list(bwords))
        find_suffix = multi_find(suffixes, overlapping=True) if suffixes else None

        def mentions(data: bytes) -> bool:
            found = find(data)
            if not found:
                return False
            if any(whole_identifier(data, s, e) for _, s, e in found):
                return True
            return find_suffix is not None and any(_name_end(data, s, e) for _, s, e in find_suffix(data))

        return mentions

    # every occurrence of a member (overlapping), which a name's _member end may share with another
    finders = [(multi_find([w], overlapping=w in members), _name_end if w in members else whole_identifier)
               for w in bwords]

    def mentions_few(data: bytes) -> bool:
        for find, test in finders:
            for _, start, end in find(data):
                if test(data, start, end):
                    return True
        return False

    return mentions_few


# word -> the architectures whose files it selects (with generic code's); a word not in it selects
# every file.  A function found reaching a root only through architecture X's code (X's own
# paging_init) is called by X's code and generic code, never by another architecture's.
Restricted = dict[str, frozenset[str]]


def _encode(words) -> tuple[bytes, ...]:
    """The words to search for as bytes (a shape's token is no word of the text)."""
    return tuple(sorted((w.encode() for w in words if w != COPIED_AND_CALLED), key=len, reverse=True))


def file_matcher(words: frozenset[str], restricted: Restricted | None = None) -> Callable[[str, bytes], bool]:
    """A test `(rel, data) -> bool`: does the file at rel name a word that selects it (matcher's
    test, over the words not restricted to other architectures than rel's)."""
    everywhere = _with_shapes(words, _bytes_matcher(_encode(words)))
    if not restricted:
        return lambda rel, data: everywhere(data)
    arch_of = load_vocabulary().arch_of
    per_arch: dict[str, Callable[[bytes], bool]] = {}

    def mentions(rel: str, data: bytes) -> bool:
        arch = arch_of(rel)
        if arch is None:
            return everywhere(data)
        test = per_arch.get(arch)
        if test is None:
            test = per_arch[arch] = _with_shapes(words, _bytes_matcher(_encode(
                w for w in words if arch in restricted.get(w, (arch,)))))
        return test(data)

    return mentions


def _decide(rels: list[str], read: Callable[[str], bytes], mentions: Callable[[str, bytes], bool],
            includes: dict[str, tuple[str, ...]] | None = None) -> tuple[list[str], list[tuple[str, str]]]:
    """The rels that mention a word, and those that are no C text, with the reason.  `read` raises
    OSError or Unreadable.  `includes`, when given, receives the #include names of each file read."""
    from armalias.source.directives import read_includes

    out: list[str] = []
    bad: list[tuple[str, str]] = []
    for rel in rels:
        try:
            data = read(rel)
            check_text(data)
        except OSError as exc:
            bad.append((rel, f"cannot read: {exc.strerror or exc}"))
            continue
        except Unreadable as exc:  # said once here, whether or not the file would have been parsed
            bad.append((rel, str(exc)))
            continue
        if mentions(rel, data):
            out.append(rel)
        if includes is not None:
            includes[rel] = read_includes(data)
    return out, bad


def _mentions(args: tuple[str, list[str], frozenset[str], Restricted, bool]
              ) -> tuple[list[str], list[tuple[str, str]], dict[str, list[int]], dict[str, tuple[str, ...]] | None]:
    """_decide on files of a directory (run in worker processes), with the stamps (state.stamp_of) of
    each file read, taken from the open file (the memo and the state need them, and so the main
    process does not stat the tree's 61,000 files again), and their #include names if asked."""
    root, rels, words, restricted, want_includes = args
    stamps: dict[str, list[int]] = {}
    includes: dict[str, tuple[str, ...]] | None = {} if want_includes else None

    def read(rel: str) -> bytes:
        # a file over MAX_FILE_BYTES is said to be so, not read (11 files of 6.12)
        data, stamps[rel] = read_file(os.path.join(root, rel), root)
        return data

    key = frozenset((w, frozenset(a)) for w, a in restricted.items())
    out, bad = _decide(rels, read, _worker_matcher(words, key), includes)
    return out, bad, stamps, includes


@lru_cache(maxsize=2)
def _worker_matcher(words: frozenset[str], restricted: frozenset[tuple[str, frozenset[str]]]):
    """file_matcher, built once per worker process for all the chunks it is given, not once per
    chunk (a whole-tree scan's second round has 274 words, with their architectures' automata)."""
    return file_matcher(words, dict(restricted))


def select(source: TreeSource, rels: list[str], words: frozenset[str], jobs: int,
           cache_dir: Path | None = None, stamps: dict | None = None, restricted: Restricted | None = None,
           includes: dict[str, tuple[str, ...]] | None = None) -> tuple[list[str], list[Skipped]]:
    """The rels whose bytes name any of the words as an identifier (anywhere: in code, a macro, a
    comment or a string, so never a miss of a call), and the files that are no C text at all, with the reason.
    `stamps` receives the stamps (state.stamp_of) of the files of the directory the memo stat'ed.
    `restricted`: the words that select only some architectures' files (file_matcher).  `includes`,
    when given, receives the #include names of the files read (those the memo knows are not)."""
    return select_started(source, rels, words, jobs, cache_dir, stamps, restricted, includes)()


def select_started(source: TreeSource, rels: list[str], words: frozenset[str], jobs: int,
                   cache_dir: Path | None = None, stamps: dict | None = None, restricted: Restricted | None = None,
                   includes: dict[str, tuple[str, ...]] | None = None) -> Selection:
    """select, begun: the memo is asked now and the search handed to worker processes, which work
    while the caller goes on; the callable returned waits for them and gives select's answer (it
    fills `stamps` and `includes` and records the memo then).  Called once; until it is, the
    workers run (`_Search.close` ends them on an error path)."""
    if not rels or not words:
        return _answered([], [])
    restricted = {w: a for w, a in (restricted or {}).items() if w in words}
    rels = _applicable(rels, words, restricted)
    if not rels:
        return _answered([], [])
    local = source.local_path("")
    # files with no copy on disk (a git revision, a patch's changes held in memory) are read from the
    # source; the rest straight from the directory, in worker processes
    held = source.held_in_memory()
    in_memory = rels if local is None else [r for r in rels if r in held]
    out: list[str] = []
    bad: list[Skipped] = []
    if in_memory:
        out, raw_bad = _decide(in_memory, source.read, file_matcher(words, restricted), includes)
        bad = [Skipped(r, why) for r, why in raw_bad]
        if local is None:
            return _answered(sorted(out), sorted(bad, key=lambda b: b.file))
        rels = [r for r in rels if r not in held]
    known_stamps = stamps if stamps is not None else {}
    memo = (SelectionMemo.open(local, words, restricted, cache_dir.parent / "prefilter", known_stamps)
            if cache_dir is not None else None)
    todo = rels
    if memo is not None:
        todo = []
        for rel in rels:
            known = memo.lookup(rel)
            if known is None:
                todo.append(rel)
            elif known is True:
                out.append(rel)
            elif known is not False:
                bad.append(Skipped(rel, known))
    search = _Search(str(local), todo, words, restricted, jobs, includes is not None)

    def finish() -> tuple[list[str], list[Skipped]]:
        found, raw_bad, read_stamps, found_includes = search.result()
        known_stamps.update(read_stamps)
        if includes is not None and found_includes:
            includes.update(found_includes)
        out.extend(found)
        bad.extend(Skipped(r, why) for r, why in raw_bad)
        if memo is not None:
            memo.record(todo, set(found), dict(raw_bad))
            memo.save()
        return sorted(out), sorted(bad, key=lambda b: b.file)

    return Selection(search, finish)


def _applicable(rels: list[str], words: frozenset[str], restricted: Restricted) -> list[str]:
    """The rels some word applies to (file_matcher): when every word is restricted, the files of
    the other architectures are left out unread, as none of them can be chosen.  Such a file is
    then not said to be no C text; every caller restricts words only after a first round, whose
    words apply everywhere, read every file.  A check whose new function in arch/arm reaches a
    root searches the files the base passed over for its name: 52,000 of 61,000 on 6.12."""
    if not restricted or len(restricted) < len(words):
        return rels
    arches = frozenset().union(*restricted.values())
    arch_of = load_vocabulary().arch_of
    return [r for r in rels if (a := arch_of(r)) is None or a in arches]


def _answered(out: list[str], bad: list[Skipped]) -> Selection:
    """select_started's answer when it is known at once."""
    return Selection(_Search.done_with(([], [], {}, None)), lambda: (out, bad))


class Selection:
    """select's answer, begun (select_started): called, it waits for the search and gives the answer."""

    def __init__(self, search: _Search, finish: Callable[[], tuple[list[str], list[Skipped]]]):
        self.search = search
        self._finish = finish

    def __call__(self) -> tuple[list[str], list[Skipped]]:
        return self._finish()

    @property
    def done(self) -> bool:
        """The search is over (no worker processes, or waited for): calling waits for nothing."""
        return self.search.answer is not None

    def close(self) -> None:
        """The search's workers ended, when it is not waited for (an error path)."""
        self.search.close()


POOL_FILES = 2000  # fewer files are searched in this process (starting workers costs more)


class _Search:
    """_mentions over the rels: in this process, now, when they are few or one job is asked;
    else in worker processes, started here and waited for by `result`."""

    def __init__(self, root: str, rels: list[str], words: frozenset[str], restricted: Restricted, jobs: int,
                 want_includes: bool = False):
        self.want_includes = want_includes
        self.pool = None
        self.futures: list = []
        self.answer = None
        if jobs <= 1 or len(rels) < POOL_FILES:
            self.answer = _mentions((root, rels, words, restricted, want_includes))
            return
        from concurrent.futures import ProcessPoolExecutor  # here: a check that searches only its changed files loads no pool

        from armalias.workers import frozen_gc

        # small chunks: with large ones, the last ones left to a single worker (a directory of big
        # generated headers) keep the other CPUs idle at the end of each whole-tree search
        size = max(250, len(rels) // (jobs * 16))
        try:
            with frozen_gc():  # the workers are forked while the chunks are handed out
                self.pool = ProcessPoolExecutor(max_workers=jobs)
                self.futures = [self.pool.submit(_mentions, (root, rels[i:i + size], words, restricted, want_includes))
                                for i in range(0, len(rels), size)]
        except BaseException:
            self.close()
            raise

    @classmethod
    def done_with(cls, answer) -> "_Search":
        """A search whose answer is known."""
        search = cls.__new__(cls)
        search.want_includes, search.pool, search.futures, search.answer = False, None, [], answer
        return search

    def result(self) -> tuple[list[str], list[tuple[str, str]], dict[str, list[int]], dict[str, tuple[str, ...]] | None]:
        if self.answer is not None:
            return self.answer
        out: list[str] = []
        bad: list[tuple[str, str]] = []
        stamps: dict[str, list[int]] = {}
        includes: dict[str, tuple[str, ...]] | None = {} if self.want_includes else None
        try:
            for future in self.futures:
                part, part_bad, part_stamps, part_includes = future.result()
                out.extend(part)
                bad.extend(part_bad)
                stamps.update(part_stamps)
                if includes is not None and part_includes:
                    includes.update(part_includes)
        finally:
            self.close()
        self.answer = (out, bad, stamps, includes)
        return self.answer

    def close(self) -> None:
        """The workers ended (what they still had to do dropped); again, nothing."""
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None


MAX_MEMOS = 16  # the word sets whose memos a cache directory keeps (a whole tree's: an answer per file)


class SelectionMemo:
    """What the prefilter decided for each file of a directory tree, for one set of words, keyed by
    the file's size and modification time: a warm run stats files instead of reading them.  Stored
    as one entry in the cache directory (MarshalEntries); a damaged one is ignored and rewritten.
    Only the MAX_MEMOS last written or found are kept: a check whose change makes a new name reach
    a root searches the tree for that name and remembers it, and each name checked would otherwise
    leave a whole tree's memo behind."""

    def __init__(self, key: str, root: Path, entries: dict[str, list], directory: Path,
                 stamps: dict[str, list[int] | None] | None = None):
        self.key = key
        self.root = root
        self.directory = directory  # beside the facts cache
        self.entries = entries
        self.dirty = False
        # each file stat'ed once per run, shared by the rounds (and the scan's state reuses them)
        self.stamps: dict[str, list[int] | None] = stamps if stamps is not None else {}

    @classmethod
    def open(cls, root: Path, words: frozenset[str], restricted: Restricted, directory: Path,
             stamps: dict[str, list[int] | None] | None = None) -> "SelectionMemo":
        import hashlib

        h = hashlib.sha256(str(root.resolve()).encode() + b"\0identifiers, members as name ends\0")  # the test's semantics
        for w in sorted(words):
            h.update(w.encode() + b"\0" + ",".join(sorted(restricted.get(w, ()))).encode() + b"\0")
        key = h.hexdigest()[:32]

        def decode(raw: dict) -> dict[str, list]:
            if not isinstance(raw["entries"], dict):
                raise ValueError("no entries")
            return raw["entries"]

        store = MarshalEntries(directory)
        entries = store.read((key,), decode)
        if entries:
            store.touch((key,))  # used: the last to go (_evict)
        return cls(key, root, entries or {}, directory, stamps)

    def _stamp(self, rel: str) -> list | None:
        if rel not in self.stamps:
            self.stamps[rel] = stamp(os.path.join(self.root, rel))
        return self.stamps[rel]

    def lookup(self, rel: str):
        """True (mentions a word), False (does not), a reason string (no C text), None (unknown)."""
        entry = self.entries.get(rel)
        if entry is None:
            return None
        stamp = self._stamp(rel)
        if stamp is None or list(entry[:-1]) != stamp:  # the file's stamp (state.stamp_of), then the answer
            return None
        return entry[-1]

    def record(self, rels: list[str], found: set[str], bad: dict[str, str]) -> None:
        for rel in rels:
            stamp = self._stamp(rel)
            if stamp is not None:
                self.entries[rel] = stamp + [bad.get(rel, rel in found)]
                self.dirty = True

    def save(self) -> None:
        if not self.dirty:
            return
        if in_tree(self.directory, self.root.resolve()):
            return  # never write into the scanned tree
        if MarshalEntries(self.directory).write((self.key,), {"entries": self.entries}):
            _evict(self.directory, MAX_MEMOS)


def _evict(directory: Path, keep: int) -> None:
    """Delete all but the `keep` entries of the directory last written or used (modification time)."""
    try:
        found = []
        for e in os.scandir(directory):
            if e.name.startswith(".tmp-"):  # another writer's, not yet in place
                continue
            try:
                found.append((e.stat(follow_symlinks=False).st_mtime_ns, e.path))
            except OSError:  # gone meanwhile
                pass
    except OSError:
        return
    if len(found) <= keep:
        return
    found.sort(reverse=True)
    for _, path in found[keep:]:
        try:
            os.unlink(path)
        except OSError:
            pass
