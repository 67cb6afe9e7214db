"""Findings as plain data: what every check produces and every reporter, the model and the
differential checker consume."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

SEVERITIES = ("note", "warning", "error")
CATEGORIES = ("alias-write", "stale-exec-alias", "range", "missing-sync", "poc")


def severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity)


@dataclass(frozen=True)
class WriteEvidence:
    line: int
    expr: str
    alias: str
    file: str = ""  # the file of `line`, when it is not the finding's (a generic definition judged at an override)


@dataclass(frozen=True)
class MaintenanceEvidence:
    call: str
    line: int
    target: str
    alias: str
    guard: str = ""  # the condition the call runs under, when it matters
    member: str = ""  # the cpu_cache_fns member the call amounts to (what the model replays)
    covers: str = ""  # what of the finding's write it reaches: "written" (the alias written), "exec" (where
    #                   the bytes run), "written+exec" (one alias is both), "all" (whole cache), "" (neither)
    file: str = ""  # the file of `line`, when it is not the finding's


@dataclass(frozen=True)
class ModelResult:
    verdict: str = "not-run"  # confirmed | refuted | not-run
    implementations: tuple[tuple[str, str], ...] = ()  # (implementation, verdict)
    witness: tuple[str, ...] = ()
    configs: tuple[str, ...] = ()  # the CPU configs selecting an implementation that confirms it
    # the configs the code is built under, when they leave some implementations out ("!X": not set)
    built_under: tuple[str, ...] = ()
    defconfigs: tuple[str, ...] = ()  # arch/arm/configs/*_defconfig that build a confirming implementation

    def confirming(self) -> list[str]:
        """The implementations the model confirms the finding on, in the order they were replayed."""
        return [name for name, verdict in self.implementations if verdict == "confirmed"]


@dataclass(frozen=True)
class Finding:
    rule: str
    category: str
    severity: str
    file: str
    line: int
    column: int
    function: str
    message: str
    write: WriteEvidence | None = None
    maintenance: tuple[MaintenanceEvidence, ...] = ()
    chain: tuple[str, ...] = ()
    guard: str = ""
    model: ModelResult = field(default_factory=ModelResult)
    key_exprs: tuple[str, ...] = ()  # normalized expressions that identify the finding

    @property
    def fingerprint(self) -> str:
        """Stable across line shifts: rule, file, function and normalized expressions."""
        h = hashlib.sha256()
        for part in (self.rule, self.file, self.function, *self.key_exprs):
            h.update(normalize_expr(part).encode())
            h.update(b"\0")
        return h.hexdigest()[:20]

    def sort_key(self) -> tuple:
        return (self.file, self.line, self.column, self.rule)


_SPACE = re.compile(r"\s+")


def normalize_expr(text: str) -> str:
    return _SPACE.sub("", text)
