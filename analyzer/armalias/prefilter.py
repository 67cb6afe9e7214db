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

from armalias.rules import load_vocabulary, load_watched
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


def _mentions(args: tuple[str | None, list[str], tuple[bytes, ...]]) -> list[str]:
    root, rels, words = args
    out = []
    pattern = trie_pattern(words) if len(words) > 8 else None
    for rel in rels:
        try:
            with open(os.path.join(root, rel), "rb") as fh:
                data = fh.read()
        except OSError:
            continue
        if pattern is not None:
            if pattern.search(data):
                out.append(rel)
            continue
        for w in words:
            if w in data:
                out.append(rel)
                break
    return out


def select(source: TreeSource, rels: list[str], words: frozenset[str], jobs: int) -> list[str]:
    """The rels whose bytes contain any of the words (a substring test: a superset of the
    identifier matches, never a miss)."""
    if not rels or not words:
        return []
    bwords = tuple(sorted((w.encode() for w in words), key=len, reverse=True))
    local = source.local_path("")
    if local is None:
        out = []
        for rel in rels:
            try:
                data = source.read(rel)
            except Exception:
                continue
            if any(w in data for w in bwords):
                out.append(rel)
        return out
    if jobs <= 1 or len(rels) < 2000:
        return _mentions((str(local), rels, bwords))
    size = max(500, len(rels) // (jobs * 4))
    chunks = [(str(local), rels[i:i + size], bwords) for i in range(0, len(rels), size)]
    out: list[str] = []
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for part in pool.map(_mentions, chunks):
            out.extend(part)
    return sorted(out)


def local_root(source: TreeSource) -> Path | None:
    return source.local_path("")
