"""Which configs a line of C is built under: the `#ifdef CONFIG_X` / `#ifndef` / `#if IS_ENABLED(...)`
blocks around it.

Only what is certain is kept: a condition that is one config (`CONFIG_X`, `defined(CONFIG_X)`,
`IS_ENABLED(CONFIG_X)`, `IS_BUILTIN`, `IS_REACHABLE`), its negation, or a conjunction of those.
Anything else (`||`, a comparison, an `#elif` chain) says nothing; `#else` turns what its `#if`
said around.  Config names are kept without the `CONFIG_` prefix, as Kconfig writes them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from armalias.source.text import blank_comments

_DIRECTIVE = re.compile(rb"^[ \t]*#[ \t]*(if|ifdef|ifndef|elif|else|endif)\b(.*)$")
_ATOM = re.compile(r"^(!?)\s*(?:(?:defined|IS_ENABLED|IS_BUILTIN|IS_REACHABLE)\s*\(\s*CONFIG_(\w+)\s*\)|"
                   r"defined\s+CONFIG_(\w+)|CONFIG_(\w+))$")


@dataclass(frozen=True)
class BuiltUnder:
    required: frozenset[str] = frozenset()  # configs that must be set
    excluded: frozenset[str] = frozenset()  # configs that must not be


def _strip(text: str) -> str:
    text = text.strip()
    while text.startswith("(") and text.endswith(")") and _balanced(text[1:-1]):
        text = text[1:-1].strip()
    return text


def _balanced(text: str) -> bool:
    depth = 0
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if depth < 0:
            return False
    return depth == 0


def _condition(text: str) -> tuple[set[str], set[str]] | None:
    """(required, excluded) when the condition is a conjunction of configs and negated configs."""
    text = _strip(text)
    if "||" in text:
        return None
    req: set[str] = set()
    exc: set[str] = set()
    for part in text.split("&&"):
        m = _ATOM.match(_strip(part))
        if not m:
            return None
        name = m.group(2) or m.group(3) or m.group(4)
        (exc if m.group(1) else req).add(name)
    return req, exc


def built_under(data: bytes, line: int) -> BuiltUnder:
    """The configs the code at `line` (1-based) is built under, from the blocks that enclose it."""
    # each open block: (required, excluded) of the branch the line is in, or None when unknown
    stack: list[list] = []
    text = blank_comments(data)
    pending = b""
    for number, raw in enumerate(text.split(b"\n"), 1):
        if number >= line:
            break
        if pending:
            raw = pending + raw
            pending = b""
        if raw.rstrip().endswith(b"\\"):
            pending = raw.rstrip()[:-1] + b" "
            continue
        m = _DIRECTIVE.match(raw)
        if not m:
            continue
        kind, rest = m.group(1).decode(), m.group(2).decode("utf-8", "replace").strip()
        if kind in ("if", "ifdef", "ifndef"):
            if kind == "ifdef":
                cond = ({rest.removeprefix("CONFIG_")}, set()) if rest.startswith("CONFIG_") else None
            elif kind == "ifndef":
                cond = (set(), {rest.removeprefix("CONFIG_")}) if rest.startswith("CONFIG_") else None
            else:
                cond = _condition(rest)
            stack.append([cond, cond])  # [the #if's own condition, the branch's]
        elif kind == "elif" and stack:
            stack[-1][1] = None
        elif kind == "else" and stack:
            own = stack[-1][0]
            # `#else` of a single config is its negation; of a conjunction, nothing certain
            if own is not None and len(own[0]) + len(own[1]) == 1:
                stack[-1][1] = (set(own[1]), set(own[0]))
            else:
                stack[-1][1] = None
        elif kind == "endif" and stack:
            stack.pop()
    req: set[str] = set()
    exc: set[str] = set()
    for _, branch in stack:
        if branch is not None:
            req |= branch[0]
            exc |= branch[1]
    return BuiltUnder(frozenset(req), frozenset(exc))
