"""What runs once a change deletes a function: another definition of its name.

A change that deletes ARM's override of a __weak generic function (arch_uprobe_copy_ixol in
arch/arm/probes/uprobes/core.c) leaves the generic definition as the one ARM builds call.  The head of
the check is told that definition and the helpers of its file it calls (replaced_functions); the
analysis reads it as the head's version of the deleted one and says what it finds where the change
deletes the override (AliasChecks.check_replaced).  The generic file is read even when the scan
covers only arch/arm: the override's callers reach it still.
"""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass
from functools import lru_cache

from armalias.rules import IDENTIFIER, Vocabulary
from armalias.source.cflow import FunctionBody, function_bodies
from armalias.source.text import Unreadable
from armalias.source.tree import TreeSource


@dataclass(frozen=True)
class Replacement:
    deleted: FunctionBody  # the base's definition the change deletes
    at: int  # the line of the head's file where it was
    body: FunctionBody  # the definition that runs instead
    helpers: tuple[FunctionBody, ...]  # the functions of its file it calls, directly or through each other


def _external(rel: str, data: bytes, name: str) -> tuple[int, ...]:
    """The lines of the definitions of `name` in a file that have external linkage (not static)."""
    return _external_lines(rel, data).get(name, ())


@lru_cache(maxsize=16)
def _external_lines(rel: str, data: bytes) -> dict[str, tuple[int, ...]]:
    """Name -> the lines of a file's definitions with external linkage, the file read once for every
    name asked of it (several functions deleted from one file, the base and the head of another).
    A file nested too deep to read has none here (the scan says why of it)."""
    from armalias.source.extract import TooDeep, extract_bytes

    try:
        facts = extract_bytes(rel, data, hashlib.sha1(data).hexdigest())
    except (TooDeep, RecursionError):
        return {}
    out: dict[str, list[int]] = {}
    for d in facts.functions:
        if not d.static:
            out.setdefault(d.name, []).append(d.line)
    return {name: tuple(lines) for name, lines in out.items()}


def head_line(base: bytes, head: bytes, line: int) -> int:
    """The line of the head's text where the base's line `line` is, or where it was deleted."""
    a, b = base.splitlines(), head.splitlines()
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if i1 <= line - 1 < i2:
            return j1 + (line - 1 - i1) + 1 if tag == "equal" else min(j1 + 1, max(len(b), 1))
    return max(len(b), 1)


def _helpers(body: FunctionBody, bodies: list[FunctionBody]) -> tuple[FunctionBody, ...]:
    """The functions of `bodies` that `body` calls, directly or through each other."""
    by_name = {b.name: b for b in bodies if b.name != body.name}
    out: dict[str, FunctionBody] = {}
    todo = [body]
    while todo:
        b = todo.pop()
        text = "\0".join(part for ev in b.events for part in (ev.target, ev.expr, *ev.args))
        for n in set(IDENTIFIER.findall(text)):
            if n in by_name and n not in out:
                out[n] = by_name[n]
                todo.append(by_name[n])
    return tuple(sorted(out.values(), key=lambda b: b.line))


def replaced_functions(base: TreeSource, head: TreeSource, deleted: tuple[FunctionBody, ...], vocab: Vocabulary,
                       jobs: int, cache_dir=None) -> tuple[Replacement, ...]:
    """For each function of `deleted` (the base's definitions a change removes from their file)
    that had external linkage, the definition of the same name the head then runs: one of external
    linkage in another file that code of the deleted one's architecture sees (its own, or generic
    code).  The head's files are searched for the name (prefilter.select, with its memo)."""
    from armalias.prefilter import select

    todo: list[FunctionBody] = []
    for b in deleted:
        try:
            if b.line in _external(b.file, base.read(b.file), b.name):
                todo.append(b)
        except (Unreadable, OSError):
            continue
    if not todo:
        return ()
    rels = [r for r in head.discover("").files if r.endswith(".c")]
    out: list[Replacement] = []
    for b in todo:
        where = [r for r in rels if r != b.file and vocab.sees(b.file, r)]
        found, _ = select(head, where, frozenset({b.name}), jobs, cache_dir)
        runs: list[tuple[FunctionBody, tuple[FunctionBody, ...]]] = []
        moved = False
        for rel in found:
            try:
                data = head.read(rel)
            except (Unreadable, OSError):
                continue
            lines = _external(rel, data, b.name)
            if not lines:
                continue
            if not _had(base, rel, b.name):
                moved = True  # the change defines it elsewhere (moved, or renamed with its file)
                break
            try:
                bodies = function_bodies(rel, data, None)
            except RecursionError:
                continue  # nested too deep to read (the scan says so of the file)
            runs.extend((x, _helpers(x, bodies)) for x in bodies if x.name == b.name and x.line in lines)
        if moved or not runs:
            continue
        try:
            at = head_line(base.read(b.file), head.read(b.file), b.line)
        except (Unreadable, OSError):
            at = b.line
        out.extend(Replacement(b, at, x, helpers) for x, helpers in runs)
    return tuple(out)


def _had(base: TreeSource, rel: str, name: str) -> bool:
    """Whether the base defines `name` with external linkage in `rel` too: a definition that was
    there before the change (a __weak generic one the deleted override hid)."""
    try:
        return bool(_external(rel, base.read(rel), name))
    except (Unreadable, OSError):
        return False
