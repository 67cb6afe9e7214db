"""The head side of a check from the remembered state of its base (armalias.state), without a scan.

Exact or nothing: the head's result is derived from the base's only when the change provably cannot
alter it beyond moving positions, and None is returned (the caller then scans) in every other case.
A changed file leaves the result as it was when

- the prefilter passes over it before and after (it names none of the words that selected files),
  its `#include` lines are the same (they decide which headers are read) and it is not one of the
  files the cache model reads; or
- it is parsed on both sides and differs only in positions: the same functions, calls (with their
  argument texts), macros, initializers, symbols and includes, the same statements in every function
  body (the events the flow analysis walks, with their guards), and no suppression comment on either
  side.  The base's call sites and findings in that file then move to the head's positions, matched
  statement by statement.

Anything else (a file added, deleted or renamed, a new call, a changed macro, a statement edited, a
suppression comment) is scanned.
"""

from __future__ import annotations

from dataclasses import astuple, fields, replace

from armalias.facts import FileFacts
from armalias.findings import Finding
from armalias.state import ScanState, finding_dicts, finding_from_dict
from armalias.source.text import Unreadable, check_text
from armalias.source.tree import SOURCE_SUFFIXES, OverlaySource, TreeSource, blob_id

_POSITIONS = frozenset({"line", "column", "end_line"})


class Unsure(Exception):
    """The change may alter the result: scan instead."""


def _shape(obj) -> tuple:
    """A fact or event without its positions."""
    out = []
    for f in fields(obj):
        if f.name in _POSITIONS:
            continue
        v = getattr(obj, f.name)
        out.append(tuple(_shape(x) if hasattr(x, "__dataclass_fields__") else x for x in v)
                   if isinstance(v, tuple) else v)
    return tuple(out)


def _facts_shape(f: FileFacts) -> tuple:
    return (tuple(_shape(x) for x in f.functions), tuple(_shape(x) for x in f.calls),
            tuple(_shape(x) for x in f.macros), tuple(_shape(x) for x in f.initializers),
            tuple(_shape(x) for x in f.asm_symbols), f.includes, f.error_functions, f.has_error)


class _Moves:
    """Old position -> new position in one file, from facts and statements matched in order."""

    def __init__(self) -> None:
        self.points: dict[tuple[int, int], tuple[int, int]] = {}
        self.lines: dict[int, int] = {}

    def add(self, old_line: int, old_col: int | None, new_line: int, new_col: int | None) -> None:
        if self.lines.setdefault(old_line, new_line) != new_line:
            raise Unsure("one line moved to two places")
        if old_col is not None:
            if self.points.setdefault((old_line, old_col), (new_line, new_col)) != (new_line, new_col):
                raise Unsure("one position moved to two places")

    def point(self, line: int, col: int) -> tuple[int, int]:
        hit = self.points.get((line, col))
        if hit is None:
            raise Unsure("a position with no counterpart")
        return hit

    def line(self, line: int) -> int:
        hit = self.lines.get(line)
        if hit is None:
            raise Unsure("a line with no counterpart")
        return hit


def _extract(rel: str, data: bytes, cache) -> FileFacts:
    from armalias.source.extract import extract_bytes

    digest = blob_id(data)
    hit = cache.get(rel, digest) if cache is not None else None
    if hit is not None:
        return hit
    facts = extract_bytes(rel, data, digest)
    if cache is not None:
        cache.put(facts)
    return facts


def _moves(rel: str, old: bytes, new: bytes, cache) -> _Moves:
    from armalias.source.cflow import function_bodies

    a, b = _extract(rel, old, cache), _extract(rel, new, cache)
    if a.notes or b.notes:
        raise Unsure("a suppression comment")
    if _facts_shape(a) != _facts_shape(b):
        raise Unsure("the facts differ")
    moves = _Moves()
    for x, y in zip(a.functions, b.functions):
        moves.add(x.line, None, y.line, None)
        moves.add(x.end_line, None, y.end_line, None)
    for x, y in zip(a.calls, b.calls):
        moves.add(x.line, x.column, y.line, y.column)
    names = {fn.name for fn in a.functions}
    old_bodies = function_bodies(rel, old, names)
    new_bodies = function_bodies(rel, new, names)
    if len(old_bodies) != len(new_bodies):
        raise Unsure("the function bodies differ")
    for x, y in zip(old_bodies, new_bodies):
        if (x.name, x.params) != (y.name, y.params) or len(x.events) != len(y.events):
            raise Unsure("the function bodies differ")
        moves.add(x.line, None, y.line, None)
        for e, f in zip(x.events, y.events):
            if _shape(e) != _shape(f):
                raise Unsure("a statement differs")
            moves.add(e.line, e.column, f.line, f.column)
    return moves


def _move_finding(f: Finding, m: _Moves) -> Finding:
    line, column = m.point(f.line, f.column)
    write = replace(f.write, line=m.line(f.write.line)) if f.write is not None else None
    maint = tuple(replace(x, line=m.line(x.line)) for x in f.maintenance)
    return replace(f, line=line, column=column, write=write, maintenance=maint)


def head_state(state: ScanState, base: TreeSource, head: TreeSource, changed: list[str],
               renames: dict[str, str], cache=None) -> ScanState | None:
    """The head's state when it follows from the base's (see the module's text), else None."""
    from armalias.prefilter import matcher
    from armalias.source.directives import read_includes

    if renames or not isinstance(head, OverlaySource):
        return None
    selected = set(state.selected)
    skipped = {s[0] for s in state.skipped}
    names_selected = matcher(frozenset(state.words)) if state.words else None
    names_header = matcher(frozenset(state.all_words)) if state.all_words else None
    moved: dict[str, _Moves] = {}
    try:
        for rel in changed:
            if not rel.endswith(SOURCE_SUFFIXES):
                continue
            new = head.changes.get(rel) if rel in head.changes else head.read(rel)
            if new is None or not base.is_file(rel):
                raise Unsure("a file added or deleted")
            if rel in skipped or rel.startswith("arch/arm/mm/"):
                raise Unsure("a file the scan skipped, or one the cache model reads")
            try:
                old = base.read(rel)
                check_text(new)
            except Unreadable as exc:
                raise Unsure(str(exc)) from None
            if state.whole_tree:
                in_scope, mentions = True, names_selected
            elif rel.startswith("arch/arm/"):
                in_scope, mentions = True, names_selected
            else:  # a header outside arch/arm matters only when arch/arm includes it
                in_scope, mentions = rel in state.deps, names_header
            if not in_scope:
                continue
            if mentions is None:
                raise Unsure("no prefilter")
            if not state.whole_tree and read_includes(old) != read_includes(new):
                raise Unsure("the #include lines differ")
            was, now = rel in selected, mentions(new)
            if was != now:
                raise Unsure("the prefilter decides differently")
            if not was:
                continue
            moved[rel] = _moves(rel, old, new, cache)
        return _moved_state(state, moved)
    except Unsure:
        return None


def _moved_state(state: ScanState, moved: dict[str, _Moves]) -> ScanState:
    from armalias.scan import CallSite

    out = replace(state, deps={}, dirs={})
    if not moved:
        return out
    callsites = []
    for row in state.callsites:
        c = CallSite(row[0], row[1], row[2], row[3], row[4], tuple(row[5]), tuple(row[6]))
        m = moved.get(c.file)
        if m is not None:
            line, col = m.point(c.line, c.column)
            c = replace(c, line=line, column=col)
        callsites.append(c)
    callsites.sort(key=lambda s: (s.file, s.line, s.column, s.callee, s.via))
    out.callsites = [list(astuple(c)) for c in callsites]

    def move_all(rows: list[dict] | None) -> list[dict] | None:
        if rows is None:
            return None
        found = []
        for f in (finding_from_dict(d) for d in rows):
            m = moved.get(f.file)
            found.append(_move_finding(f, m) if m is not None else f)
        return finding_dicts(sorted(found, key=Finding.sort_key))

    out.findings = move_all(state.findings)
    out.modelled = move_all(state.modelled)
    out.spans = {rel: ([[n, moved[rel].line(a), moved[rel].line(b)] for n, a, b in spans] if rel in moved else spans)
                 for rel, spans in state.spans.items()}
    return out
