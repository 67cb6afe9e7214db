"""What the base of a change says that the head can no longer say for itself.

An object the base cleans to the point of coherency (`sync_cache_w(&pen_release)`) is one the kernel
hands to a reader with the MMU or the caches off; a change that deletes that clean deletes the
evidence with it.  The head of a check is told the objects the base's version of the files the change
touches cleans so, and judges writes to them as the base would have.

Likewise an address the base's version of a function makes runnable (an I-cache invalidate there,
`patch_text(addr, ...)`, `fncpy(sram, ...)`) holds code: a change that writes it with a plain copy, or
deletes the invalidate, deletes that evidence too.  The head is given the base's versions of the
functions the change alters (changed_functions); the analysis reads what they make runnable.
"""

from __future__ import annotations

import re
from functools import lru_cache

from armalias.rules import D_CLEANS, load_vocabulary
from armalias.source.cflow import FunctionBody
from armalias.source.text import Unreadable, blank_comments


@lru_cache(maxsize=1)
def _poc_clean_call() -> re.Pattern[str]:
    names = sorted(n for n, spec in load_vocabulary().maintenance.items()
                   if not n.startswith(".") and not spec.whole and spec.d in D_CLEANS and spec.point == "poc"
                   and spec.start == 0)
    return re.compile(r"(?<![\w.>])(?:" + "|".join(map(re.escape, names)) + r")\s*\(\s*(?:\([^()]*\)\s*)?&?\s*([A-Za-z_]\w*)")


def cleaned_in(source, changed: list[str]) -> frozenset[str]:
    """The objects whose address starts a clean to the point of coherency in `source`'s version of
    the C files `changed` (a file it lacks or cannot read adds nothing)."""
    out: set[str] = set()
    pattern = _poc_clean_call()
    for rel in changed:
        if not rel.endswith((".c", ".h")):
            continue
        try:
            data = source.read(rel)
        except (Unreadable, OSError):
            continue
        out.update(pattern.findall(blank_comments(data).decode("utf-8", "replace")))
    return frozenset(out)


def _shape(body: FunctionBody) -> tuple:
    """A body as what it does, not where: its events without their lines and columns."""
    return body.params, tuple((e.kind, e.target, e.expr, e.args, e.guards, e.width) for e in body.events)


def changed_functions(base, head, changed: list[str], renames: dict[str, str] | None = None
                      ) -> tuple[tuple[FunctionBody, ...], tuple[FunctionBody, ...], tuple[FunctionBody, ...]]:
    """(the base's versions, the head's versions) of the functions of the C files `changed` that the
    change alters (named by the head's path of their file), and the base's of those it removes
    from their file (no definition of the name is left there), which have only the first.  The head's are analysed even when the prefilter passes their file over: a plain memcpy
    where patch_text() was may leave the file naming no word of the rules.  A side that lacks the
    file or cannot read it adds nothing."""
    from armalias.source.cflow import function_bodies

    back = {new: old for old, new in (renames or {}).items()}
    before_out: list[FunctionBody] = []
    after_out: list[FunctionBody] = []
    removed: list[FunctionBody] = []
    for rel in changed:
        if not rel.endswith(".c"):
            continue
        # (a file nested too deep for the walk of its bodies is a skip of the scans, with its reason)
        try:
            before = function_bodies(rel, base.read(back.get(rel, rel)), None)
        except (Unreadable, OSError, RecursionError):
            continue
        try:
            after = function_bodies(rel, head.read(rel), None)
        except (Unreadable, OSError, RecursionError):
            after = []
        shapes = {(b.name, _shape(b)) for b in after}
        altered = [b for b in before if (b.name, _shape(b)) not in shapes]
        names = {b.name for b in altered}
        before_out.extend(altered)
        left = {b.name for b in after}
        removed.extend(b for b in altered if b.name not in left)
        # of a name defined under several #ifdef branches, the definitions the change alters: each
        # pairs with the base's of the same rank (AliasChecks.base_of)
        was = {(b.name, _shape(b)) for b in before}
        after_out.extend(b for b in after if b.name in names and (b.name, _shape(b)) not in was)
    order = lambda b: (b.file, b.line)  # noqa: E731
    return (tuple(sorted(before_out, key=order)), tuple(sorted(after_out, key=order)),
            tuple(sorted(removed, key=order)))
