"""What the base of a change says that the head can no longer say for itself.

An object the base cleans to the point of coherency (`sync_cache_w(&pen_release)`) is one the kernel
hands to a reader with the MMU or the caches off; a change that deletes that clean deletes the
evidence with it.  The head of a check is told the objects the base's version of the files the change
touches cleans so, and judges writes to them as the base would have.
"""

from __future__ import annotations

import re
from functools import lru_cache

from armalias.rules import D_CLEANS, load_vocabulary
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
