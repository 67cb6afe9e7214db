"""The identifier prefilter: which files can matter, decided before any parsing.

Like Coccinelle's token selection: a file is parsed only if it mentions a word the rules need (the
watched functions, the maintenance calls, the alias globals, the execution entry points, the
cpu_cache_fns members), or, in later rounds, a function or macro that reaches one of those (callers of
callers), until nothing new is selected.  The words come from rules/, never from code.
"""

from __future__ import annotations

import os
import re
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from armalias.facts import Skipped
from armalias.rules import load_vocabulary, load_watched
from armalias.source.text import Unreadable, check_text
from armalias.source.tree import TreeSource


def rule_words() -> frozenset[str]:
    v = load_vocabulary()
    w = load_watched()
    words = set(w.names) | {m.lstrip(".") for m in v.maintenance} | set(v.alias_globals) | set(v.exec_entries)
    words |= set(w.cache_fns_members) | {w.cache_fns_struct}
    return frozenset(x for x in words if len(x) >= 4)


def trie_pattern(words: tuple[bytes, ...]) -> re.Pattern[bytes]:
    """One regular expression for many literal words, shaped as a prefix trie (no backtracking
    across alternatives that share a prefix)."""
    trie: dict = {}
    for w in words:
        node = trie
        for b in w:
            node = node.setdefault(bytes([b]), {})
        node[b""] = {}

    def build(node: dict) -> bytes:
        ends = b"" in node
        alts = [re.escape(k) + build(v) for k, v in sorted(node.items()) if k]
        if not alts:
            return b""
        body = alts[0] if len(alts) == 1 else b"(?:" + b"|".join(alts) + b")"
        return b"(?:" + body + b")?" if ends else body

    return re.compile(build(trie))


def matcher(words: frozenset[str]):
    """A test `data -> bool`: does the text mention any of the words (substring semantics)."""
    bwords = tuple(sorted((w.encode() for w in words), key=len, reverse=True))
    if len(bwords) > 8:
        search = trie_pattern(bwords).search
        return lambda data: search(data) is not None
    return lambda data: any(w in data for w in bwords)


def _mentions(args: tuple[str | None, list[str], tuple[bytes, ...]]) -> tuple[list[str], list[tuple[str, str]]]:
    root, rels, words = args
    out: list[str] = []
    bad: list[tuple[str, str]] = []
    pattern = trie_pattern(words) if len(words) > 8 else None
    for rel in rels:
        try:
            with open(os.path.join(root, rel), "rb") as fh:
                data = fh.read()
            check_text(data)
        except OSError as exc:
            bad.append((rel, f"cannot read: {exc.strerror or exc}"))
            continue
        except Unreadable as exc:  # said once here, whether or not the file would have been parsed
            bad.append((rel, str(exc)))
            continue
        if pattern is not None:
            if pattern.search(data):
                out.append(rel)
            continue
        for w in words:
            if w in data:
                out.append(rel)
                break
    return out, bad


def select(source: TreeSource, rels: list[str], words: frozenset[str], jobs: int
           ) -> tuple[list[str], list[Skipped]]:
    """The rels whose bytes contain any of the words (a substring test: a superset of the
    identifier matches, never a miss), and the files that are no C text at all, with the reason."""
    if not rels or not words:
        return [], []
    bwords = tuple(sorted((w.encode() for w in words), key=len, reverse=True))
    local = source.local_path("")
    if local is None:
        mentions = matcher(words)
        out, bad = [], []
        for rel in rels:
            try:
                data = source.read(rel)
                check_text(data)
            except Unreadable as exc:
                bad.append(Skipped(rel, str(exc)))
                continue
            if mentions(data):
                out.append(rel)
        return out, bad
    if jobs <= 1 or len(rels) < 2000:
        out, raw_bad = _mentions((str(local), rels, bwords))
        return out, [Skipped(r, why) for r, why in raw_bad]
    size = max(500, len(rels) // (jobs * 4))
    chunks = [(str(local), rels[i:i + size], bwords) for i in range(0, len(rels), size)]
    out, bad = [], []
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for part, part_bad in pool.map(_mentions, chunks):
            out.extend(part)
            bad.extend(Skipped(r, why) for r, why in part_bad)
    return sorted(out), bad


def local_root(source: TreeSource) -> Path | None:
    return source.local_path("")
