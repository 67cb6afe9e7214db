"""Small, text-level reading of C expressions: casts, parentheses, top-level + and -, roots.

The flow works on expression texts the front end already squashed; these helpers never need the tree.
"""

from __future__ import annotations

import re

_CAST = re.compile(
    r"^\(\s*(?:(?:const|volatile|unsigned|signed|struct|union|enum|long|short|int|char|void|__force|__iomem|"
    r"__user)\s+)*[A-Za-z_]\w*(?:\s+[A-Za-z_]\w*)*\s*\**\s*\)\s*"
)
_IDENT = re.compile(r"^[A-Za-z_]\w*$")
_NUMBER = re.compile(r"^(0[xX][0-9a-fA-F]+|\d+)[uUlL]*$")
_CALL = re.compile(r"^([A-Za-z_]\w*)\s*\((.*)\)$", re.S)


def _wrapped(text: str) -> bool:
    if not (text.startswith("(") and text.endswith(")")):
        return False
    depth = 0
    for i, c in enumerate(text):
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0 and i != len(text) - 1:
                return False
    return True


def strip(text: str) -> str:
    """Remove outer parentheses and casts: `(unsigned long)(addr)` -> `addr`."""
    text = text.strip()
    while True:
        if _wrapped(text):
            text = text[1:-1].strip()
            continue
        m = _CAST.match(text)
        if m and m.end() < len(text):
            rest = text[m.end():].strip()
            # `(x) + y` is not a cast of `+ y`
            if rest and rest[0] not in "+-*/%&|^<>=?,;)]":
                text = rest
                continue
        return text


def split_top(text: str, ops: str = "+-") -> list[tuple[str, str]]:
    """[(sign, operand)] of the top-level + / - chain (or the ops given)."""
    out: list[tuple[str, str]] = []
    depth = 0
    start = 0
    sign = "+"
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0 and c in ops and i > start:
            prev = text[:i].rstrip()
            nxt = text[i + 1:i + 2]
            if prev and prev[-1] not in "+-*/%&|^<>=?(,!~" and nxt not in ("=", c) and not (c == "-" and nxt == ">"):
                out.append((sign, text[start:i].strip()))
                sign = c
                start = i + 1
        i += 1
    out.append((sign, text[start:].strip()))
    return [(s, o) for s, o in out if o]


def call_parts(text: str) -> tuple[str, list[str]] | None:
    m = _CALL.match(text.strip())
    if not m:
        return None
    inner = m.group(2)
    args, depth, start = [], 0, 0
    for i, c in enumerate(inner):
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth < 0:
                return None
        elif c == "," and depth == 0:
            args.append(inner[start:i].strip())
            start = i + 1
    if depth != 0:
        return None
    if inner.strip():
        args.append(inner[start:].strip())
    return m.group(1), args


def is_ident(text: str) -> bool:
    return bool(_IDENT.match(text))


def is_number(text: str) -> bool:
    return bool(_NUMBER.match(text))


def number(text: str) -> int | None:
    m = _NUMBER.match(text)
    return int(m.group(1), 0) if m else None


def root(text: str) -> str:
    """The base a pointer expression is computed from: `(void *)(base + off)` -> `base`."""
    t = strip(text)
    if t.startswith("&"):
        t = strip(t[1:])
    sub = re.match(r"^([A-Za-z_]\w*)\s*\[", t)
    if sub:
        return sub.group(1)
    parts = split_top(t)
    if len(parts) > 1:
        t = strip(parts[0][1])
        if t.startswith("&"):
            t = strip(t[1:])
    m = re.match(r"^[A-Za-z_]\w*(?:\s*(?:->|\.)\s*[A-Za-z_]\w*)*", t)
    if m:
        return re.sub(r"\s+", "", m.group(0))
    m = _NUMBER.match(t)
    return m.group(1).lower() if m else t
