"""Guards: the conditions code runs under, judged on one kind of cache with the kernel's cache tests
(rules/vocabulary.toml cache_predicates) in three-valued logic: true, false, or not decided by the
kind of cache."""

from __future__ import annotations

import re

from armalias.source.cflow import LOOP, Guard

_TOKEN = re.compile(r"\s*(\|\||&&|!|\(|\)|[A-Za-z_]\w*\s*\(\s*\)|[^\s()!&|]+)")


def eval_guard(cond: str, predicates: dict[str, bool]) -> bool | None:
    """The value of a condition on one kind of cache (three-valued: None when it depends on more)."""
    tokens = [t.strip() for t in _TOKEN.findall(cond) if t.strip()]
    pos = 0

    def atom() -> bool | None:
        nonlocal pos
        if pos >= len(tokens):
            return None
        tok = tokens[pos]
        pos += 1
        if tok == "!":
            v = atom()
            return None if v is None else not v
        if tok == "(":
            v = disj()
            if pos < len(tokens) and tokens[pos] == ")":
                pos += 1
            return v
        m = re.match(r"([A-Za-z_]\w*)\s*\(\s*\)$", tok)
        if m and m.group(1) in predicates:
            return predicates[m.group(1)]
        # anything else (a comparison, a variable) is unknown; skip to the next && / || / )
        while pos < len(tokens) and tokens[pos] not in ("&&", "||", ")"):
            if tokens[pos] == "(":
                depth = 0
                while pos < len(tokens):
                    depth += tokens[pos] == "("
                    depth -= tokens[pos] == ")"
                    pos += 1
                    if depth == 0:
                        break
                continue
            pos += 1
        return None

    def chain(op: str, operand, absorbing: bool) -> bool | None:
        """`a op b op ...` in three-valued logic: `absorbing` (False for &&, True for ||) wins,
        then unknown, then the other value."""
        nonlocal pos
        v = operand()
        while pos < len(tokens) and tokens[pos] == op:
            pos += 1
            w = operand()
            v = absorbing if absorbing in (v, w) else (None if None in (v, w) else not absorbing)
        return v

    def conj() -> bool | None:
        return chain("&&", atom, False)

    def disj() -> bool | None:
        return chain("||", conj, True)

    return disj()


def guards_allow(guards: tuple[Guard, ...], predicates: dict[str, bool]) -> tuple[bool, str]:
    """(False, the guard) when a guard rules the code out on this kind of cache; else (True, "")."""
    for g in guards:
        if g.cond == LOOP:
            continue
        v = eval_guard(g.cond, predicates)
        if v is not None and v != g.holds:
            return False, g.cond if g.holds else f"!({g.cond})"
    return True, ""


def conditional(guards: tuple[Guard, ...]) -> bool:
    """Whether code under these guards may not run on a path that goes on past it (a loop body is
    taken as run; code after an early return runs on every path that reaches what follows)."""
    return any(g.cond != LOOP and not g.exit for g in guards)
