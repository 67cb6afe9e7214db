"""What a call of a function does, stated on its parameters (`$i`): the aliases it returns, what it
writes through them, the maintenance it does on them (with the guards it does it under and the range
in its parameters' terms), and which of them are where code runs.  A caller puts its arguments in."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from armalias.flow.expr import is_ident, number, strip
from armalias.flow.sites import FunctionFlow, MaintSite
from armalias.rules import IDENTIFIER, MaintenanceSpec
from armalias.source.cflow import LOOP, Guard


@dataclass(frozen=True)
class Summary:
    """What a call of the function does, stated on its parameters."""

    returns: tuple[tuple[str, int], ...] = ()  # (alias kind, index of the parameter it maps, or -1)
    maintains: tuple[tuple[int, int, int, MaintenanceSpec, tuple[Guard, ...], str, str, str, str], ...] = ()
    # (start param, end param or -1, size param or -1, what the call amounts to, guards inside, call name,
    # offset from the start param and length over the parameters ($i), "" unknown, and the start as a
    # text over the parameters when it is a mapping of one: AT);
    # start -1 (WHOLE): a whole-cache operation; -2 (ELSEWHERE): at an address of the function's own;
    # -3 (AT): at a mapping of a parameter's page (`folio_address($1)`), the length as a text too
    # (parameter written through, size parameter or -1, the kind of alias of the parameter's page
    # the function writes through, "" the parameter itself)
    writes: tuple[tuple[int, int, str], ...] = ()
    # parameters that are where code runs: the function's execution parameter, an address it
    # invalidates in the I-cache over a range, or one it hands on as such to a callee
    runs: tuple[int, ...] = ()


PARAM_REF = re.compile(r"\$(\d+)")
WHOLE, ELSEWHERE, AT = -1, -2, -3  # Summary.maintains starts that are no parameter


def text_on_params(f: FunctionFlow, text: str) -> str | None:
    """A text of f's with its parameters written `$i` and its locals assigned once, under no
    condition, replaced by what they were assigned: what a caller can put its arguments in.  None
    when it reads anything else of f's (a local assigned more than once, a parameter f changes) or
    no parameter at all."""
    index = {p: i for i, p in enumerate(f.params)}
    t = strip(text)
    for _ in range(4):
        names = [n for n in IDENTIFIER.findall(t) if n in f.locals]
        if not names:
            break
        if any(n not in f.linear or n in f.mutated for n in names):
            return None
        t = IDENTIFIER.sub(lambda m: f"({f.linear[m.group(0)]})" if m.group(0) in f.locals else m.group(0), t)
    names = set(IDENTIFIER.findall(t))
    if not t or names & f.locals or not names & set(index) or names & f.mutated & set(index):
        return None
    return IDENTIFIER.sub(lambda m: f"${index[m.group(0)]}" if m.group(0) in index else m.group(0), t)


def on_params(guards: tuple[Guard, ...], params: tuple[str, ...]) -> tuple[Guard, ...]:
    """Guards with the function's parameters written `$i`, for a caller to put its arguments in."""
    if not params or not guards:
        return guards
    index = {p: i for i, p in enumerate(params)}
    sub = lambda m: f"${index[m.group(0)]}" if m.group(0) in index else m.group(0)  # noqa: E731
    return tuple(Guard(IDENTIFIER.sub(sub, g.cond), g.holds, g.exit) if g.cond != LOOP else g for g in guards)


def operand(text: str) -> str:
    """A text as an operand of `+` or `*`: parenthesized unless it is one name or number."""
    t = text.strip()
    return t if is_ident(t) or number(t) is not None else f"({t})"


def putter(args: tuple[str, ...], wrap: Callable[[str], str] = operand) -> Callable[[str], str]:
    """`$i` in a callee's text replaced by the caller's argument i, wrapped (left as it is when there is
    none)."""
    def put(text: str) -> str:
        return PARAM_REF.sub(lambda m: wrap(args[int(m.group(1))]) if int(m.group(1)) < len(args) else m.group(0),
                             text)
    return put


def range_on_params(f: FunctionFlow, m: MaintSite, start_param: str) -> tuple[str, str]:
    """(offset, length) of a ranged maintenance call as texts over the function's parameters (`$i`),
    when its start is a parameter plus an offset and its length is known that way:
    `flush_icache_range(vma + offset, vma + offset + size)` is ("$1", "$2").  ("", "") otherwise."""
    from armalias.flow.extent import Poly, Reader

    if start_param in f.mutated:
        return "", ""
    reader = Reader(f.linear, f.mutated, lambda n: n == start_param)
    start = reader.address(m.start)
    if start is None or start.base != start_param:
        return "", ""
    if m.end:
        end = reader.address(m.end)
        if end is None or end.base != start_param:
            return "", ""
        length = end.offset.add(start.offset, -1)
    elif m.size:
        length = reader.length(m.size)
        if length is None:
            return "", ""
    else:
        return "", ""
    index = {p: i for i, p in enumerate(f.params)}

    def text(poly: Poly) -> str | None:
        parts = []
        for mono, coef in poly.terms:
            names = []
            for sym in mono:
                if sym in index and sym not in f.mutated:
                    names.append(f"${index[sym]}")
                elif sym in f.locals or sym in f.params:
                    return None  # a local of the callee: nothing the caller can say
                else:
                    names.append(sym)  # a constant or a sizeof
            factor = " * ".join(names)
            term = (f"{abs(coef)} * {factor}" if abs(coef) != 1 else factor) if names else str(abs(coef))
            parts.append(("- " if coef < 0 else "+ ") + term)
        return " ".join(parts).removeprefix("+ ") if parts else ""

    offset, size = text(start.offset), text(length)
    if offset is None or not size:
        return "", ""
    return offset, size


def summary_from(returns, maintains, writes, runs) -> Summary | None:
    """A summary of these sets (None when they are all empty), in one order whatever came first."""
    if not (returns or maintains or writes or runs):
        return None
    # a total order: the same summary whatever order the flows came in
    order = lambda t: (t[0], t[1], t[2], t[3].name, t[5], tuple((g.cond, g.holds) for g in t[4]), t[6], t[7], t[8])  # noqa: E731
    return Summary(tuple(sorted(returns)), tuple(sorted(maintains, key=order)), tuple(sorted(writes)),
                   tuple(sorted(runs)))


def merged(summaries: list[Summary]) -> Summary | None:
    """One summary of several definitions: what any of them does."""
    return summary_from({x for s in summaries for x in s.returns}, {x for s in summaries for x in s.maintains},
                        {x for s in summaries for x in s.writes}, {x for s in summaries for x in s.runs})
