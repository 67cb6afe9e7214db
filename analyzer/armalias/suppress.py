"""Inline suppressions (`armalias: ignore[CODE] reason` on the finding's line or on its function's
first line) and baselines (a JSON file of fingerprints).  An unused suppression is reported."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from armalias.errors import InputError
from armalias.facts import FileFacts
from armalias.findings import Finding
from armalias.source.files import read_named

MAX_BASELINE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Suppression:
    file: str
    line: int
    codes: tuple[str, ...]
    reason: str


def suppressions(facts: list[FileFacts]) -> list[Suppression]:
    out = []
    for f in facts:
        for note in f.notes:
            line, codes, reason = note.split(":", 2)
            out.append(Suppression(f.file, int(line), tuple(c for c in codes.split(",") if c), reason))
    return out


def apply_suppressions(findings: list[Finding], facts: list[FileFacts]
                       ) -> tuple[list[Finding], list[Finding], list[Suppression]]:
    """(kept, suppressed, unused suppressions)."""
    sups = suppressions(facts)
    if not sups:
        return list(findings), [], []
    with_notes = {s.file for s in sups}  # only a function of a file with a suppression comment can match
    fn_lines = {(fn.file, fn.name): (fn.line, fn.end_line) for f in facts if f.file in with_notes for fn in f.functions}
    used: set[Suppression] = set()
    kept, suppressed = [], []
    for finding in findings:
        span = fn_lines.get((finding.file, finding.function))
        hit = None
        for s in sups:
            if s.file != finding.file or finding.rule not in s.codes:
                continue
            on_line = s.line == finding.line
            on_function = span is not None and s.line in (span[0], span[0] - 1)
            if on_line or on_function:
                hit = s
                break
        if hit is None:
            kept.append(finding)
        else:
            used.add(hit)
            suppressed.append(finding)
    return kept, suppressed, [s for s in sups if s not in used]


def load_baseline(path: Path) -> set[str]:
    """The fingerprints of a baseline file named by the user (a link is followed: the user named it),
    which must be a regular file of the shape write_baseline writes."""
    data = read_named(path, MAX_BASELINE_BYTES, "baseline file")
    try:
        raw = json.loads(data.decode("utf-8"))
        fingerprints = raw["fingerprints"]
        if not isinstance(fingerprints, list) or not all(isinstance(x, str) for x in fingerprints):
            raise ValueError("`fingerprints` is not a list of strings")
        return set(fingerprints)
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: not an armalias baseline ({exc})") from None


def write_baseline(path: Path, findings: list[Finding]) -> None:
    data = {"tool": "armalias", "schema": 1, "fingerprints": sorted({f.fingerprint for f in findings})}
    try:
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot write: {exc.strerror}") from None
