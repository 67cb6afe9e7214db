"""The head side of a check from the remembered state of its base (armalias.state), without a scan.

Exact or nothing: the head's result is derived from the base's only when the change provably cannot
alter it beyond moving positions, and None is returned (the caller then scans) in every other case.
A changed file leaves the result as it was when

- the prefilter passes over it before and after (it names none of the words that selected files),
  its `#include` lines are the same (they decide which headers are read) and it is not one of the
  files the cache model reads; or
- it is parsed on both sides and differs only in positions and in calls that cannot matter: the same
  functions, macros, initializers, symbols and includes, the same relevant calls (with their argument
  texts) and the same other statements in every function body (the events the flow analysis walks,
  with their guards), and no suppression comment on either side.  A call is relevant when it names,
  or passes as an argument, a name of ScanState.relevant (the vocabulary's calls, the watched names,
  the entry points, the summarized wrappers, the macros reaching any of those, every function found
  reaching a fixpoint root) or an alias global or constant.  Any other call adds or removes only an
  edge to a name that reaches nothing the rules look at: the words of the prefilter, the summaries,
  the functions analysed and every finding stay the same.  The base's call sites and findings in
  that file then move to the head's positions, matched call by call and statement by statement.

Anything else (a file added, deleted or renamed, a relevant call added or removed, a changed macro,
a statement edited, a suppression comment) is scanned.  On this path no finding appears or goes
away (the flows are the same), so the head's findings are the base's; their call chains (shortest
paths from an entry point) could differ from a scan's when an added edge makes a shorter path, but a
check shows chains only for new and fixed findings, of which there are none here.  It serves check
only, never a scan.
"""

from __future__ import annotations

from dataclasses import astuple, fields, replace

from armalias.facts import FileFacts
from armalias.findings import Finding
from armalias.rules import IDENTIFIER
from armalias.state import ScanState, finding_dicts, finding_from_dict
from armalias.source.text import Unreadable, check_text
from armalias.source.tree import SOURCE_SUFFIXES, OverlaySource, TreeSource

_POSITIONS = frozenset({"line", "column", "end_line"})


class Unsure(Exception):
    """The change may alter the result: scan instead."""


def _shape(obj) -> tuple:
    """A fact or event without its positions."""
    out = []
    names = obj._fields if isinstance(obj, tuple) else [f.name for f in fields(obj)]  # Call: a named tuple
    for name in names:
        if name in _POSITIONS:
            continue
        v = getattr(obj, name)
        out.append(tuple(_shape(x) if hasattr(x, "__dataclass_fields__") else x for x in v)
                   if isinstance(v, tuple) else v)
    return tuple(out)


def _facts_shape(f: FileFacts, calls: list) -> tuple:
    return (tuple(_shape(x) for x in f.functions), tuple(_shape(x) for x in calls),
            tuple(_shape(x) for x in f.macros), tuple(_shape(x) for x in f.initializers),
            tuple(_shape(x) for x in f.asm_symbols), f.includes, f.error_functions, f.has_error)


class Relevance:
    """Which calls can change a result: a call of a relevant name (ScanState.relevant), or one whose
    arguments name one (a callback) or name an alias global or constant of the vocabulary.  Every
    other call only adds an edge, out of a function, to a name that reaches nothing the analysis
    looks at: it can move the analysis' numbering of statements, never what it finds.  None: every
    call counts (a state that keeps no `relevant`)."""

    def __init__(self, names: list[str]):
        from armalias.rules import load_vocabulary

        vocab = load_vocabulary()
        self.names = frozenset(names)
        self.words = vocab.alias_words()

    def call(self, callee: str, args: tuple[str, ...]) -> bool:
        if callee in self.names:
            return True
        for a in args:
            if any(w in self.names or w in self.words for w in IDENTIFIER.findall(a)):
                return True
        return False

    def event(self, e) -> bool:
        return e.kind != "call" or self.call(e.target, e.args)


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


def _extract(source: TreeSource, rel: str, options) -> FileFacts:
    """One file's facts, through the scan's extractor and its content cache."""
    from armalias.extraction import Extractor

    extractor = Extractor(source, options)
    try:
        (facts,), _ = extractor.run([rel])
    except ValueError:  # skipped: no C text
        raise Unsure("a file that cannot be extracted") from None
    finally:
        extractor.close()
    return facts


def _moves(rel: str, base: TreeSource, head: TreeSource, old: bytes, new: bytes, options,
           relevance: Relevance | None) -> _Moves:
    """Old -> new positions in a file whose change is only moved code and irrelevant calls."""
    from armalias.source.cflow import function_bodies

    a, b = _extract(base, rel, options), _extract(head, rel, options)
    if a.notes or b.notes:
        raise Unsure("a suppression comment")
    keep_call = (lambda c: relevance.call(c.callee, c.args)) if relevance is not None else (lambda c: True)
    keep_event = relevance.event if relevance is not None else (lambda e: True)
    calls_a, calls_b = [c for c in a.calls if keep_call(c)], [c for c in b.calls if keep_call(c)]
    if _facts_shape(a, calls_a) != _facts_shape(b, calls_b):
        raise Unsure("the facts differ")
    moves = _Moves()
    for x, y in zip(a.functions, b.functions):
        moves.add(x.line, None, y.line, None)
        moves.add(x.end_line, None, y.end_line, None)
    for x, y in zip(calls_a, calls_b):
        moves.add(x.line, x.column, y.line, y.column)
    names = {fn.name for fn in a.functions}
    old_bodies = function_bodies(rel, old, names)
    new_bodies = function_bodies(rel, new, names)
    if len(old_bodies) != len(new_bodies):
        raise Unsure("the function bodies differ")
    for x, y in zip(old_bodies, new_bodies):
        events_x = [e for e in x.events if keep_event(e)]
        events_y = [e for e in y.events if keep_event(e)]
        if (x.name, x.params) != (y.name, y.params) or len(events_x) != len(events_y):
            raise Unsure("the function bodies differ")
        moves.add(x.line, None, y.line, None)
        for e, f in zip(events_x, events_y):
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
               renames: dict[str, str], options) -> ScanState | None:
    """The head's state when it follows from the base's (see the module's text), else None."""
    from armalias.prefilter import file_matcher, matcher
    from armalias.source.directives import read_includes

    if renames or not isinstance(head, OverlaySource):
        return None
    selected = set(state.selected)
    skipped = {s[0] for s in state.skipped}
    names_selected = (file_matcher(frozenset(state.words), {w: frozenset(a) for w, a in state.restricted.items()})
                      if state.words else None)
    header_test = matcher(frozenset(state.all_words)) if state.all_words else None
    names_header = (lambda rel, data: header_test(data)) if header_test is not None else None
    moved: dict[str, _Moves] = {}
    relevance = Relevance(state.relevant) if state.relevant else None
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
            if state.whole_tree or rel.startswith("arch/arm/"):
                in_scope, mentions = True, names_selected
            else:  # a header outside arch/arm matters only when arch/arm includes it
                in_scope, mentions = rel in state.deps, names_header
            if not in_scope:
                continue
            if mentions is None:
                raise Unsure("no prefilter")
            if not state.whole_tree and read_includes(old) != read_includes(new):
                raise Unsure("the #include lines differ")
            was, now = rel in selected, mentions(rel, new)
            if was != now:
                raise Unsure("the prefilter decides differently")
            if not was:
                continue
            moved[rel] = _moves(rel, base, head, old, new, options, relevance)
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
        c = CallSite.from_row(row)
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
