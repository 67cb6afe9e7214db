"""The findings of two sides compared by fingerprint (rule, file, function, normalized expressions,
never a line number) as multisets; a renamed file's findings under its new name."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

from armalias.check.changes import Change
from armalias.findings import Finding


def compare(base: list[Finding], head: list[Finding], renames: dict[str, str] | None = None
            ) -> tuple[list[Finding], list[Finding], int]:
    """(new, fixed, unchanged count): fingerprints compared as multisets; a base finding in a renamed
    file counts under the file's new name."""
    renames = renames or {}
    by_base: dict[str, list[Finding]] = defaultdict(list)
    by_head: dict[str, list[Finding]] = defaultdict(list)
    for f in base:
        moved = replace(f, file=renames[f.file]) if f.file in renames else f
        by_base[moved.fingerprint].append(f)
    for f in head:
        by_head[f.fingerprint].append(f)
    new: list[Finding] = []
    fixed: list[Finding] = []
    unchanged = 0
    for fp in by_base.keys() | by_head.keys():
        b = sorted(by_base.get(fp, ()), key=Finding.sort_key)
        h = sorted(by_head.get(fp, ()), key=Finding.sort_key)
        common = min(len(b), len(h))
        unchanged += common
        new.extend(h[common:])
        fixed.extend(b[common:])
    return sorted(new, key=Finding.sort_key), sorted(fixed, key=Finding.sort_key), unchanged


def kept_in_changed(base: list[Finding], head: list[Finding], change: Change) -> list[tuple[Finding, Finding]]:
    """(base, head) pairs of one fingerprint, one of each side, in the files the change touches."""
    changed = set(change.changed)
    by_base: dict[str, list[Finding]] = defaultdict(list)
    for f in base:
        moved = replace(f, file=change.renames[f.file]) if f.file in change.renames else f
        if moved.file in changed:
            by_base[moved.fingerprint].append(f)
    out = []
    for f in head:
        if f.file in changed and by_base.get(f.fingerprint):
            out.append((by_base[f.fingerprint].pop(0), f))
    return out


# -- the findings of a whole tree, cached by its content ----------------------------------------
