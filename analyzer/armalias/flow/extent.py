"""Addresses as symbolic extents: a base plus an offset in bytes that is a sum of monomials.

`addr + offset`, `&code[TMPL_END_IDX]` and `(unsigned long)buf + len` become (base, offset) with the
offset a polynomial over the symbols the text names (an index scaled by its array's element size is
the monomial `index * sizeof(*array)`).  Two offsets of one base compare when their difference is a
number: `addr + offset` and `addr + offset + 4` do, `addr + offset` and `addr + PAGE_SIZE` do not.
Locals assigned once are read through (the flow's `linear`); a variable assigned more than once
(`p++`) has no one value, and an expression naming one has no extent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from armalias.flow.expr import call_parts, is_ident, number, split_top, strip

Monomial = tuple[str, ...]  # sorted symbols; () is the constant term
_MAX_DEPTH = 4
_SUBSCRIPT = re.compile(r"^([A-Za-z_]\w*(?:\s*(?:->|\.)\s*[A-Za-z_]\w*)*)\s*\[(.*)\]$", re.S)


@dataclass(frozen=True)
class Poly:
    terms: tuple[tuple[Monomial, int], ...] = ()  # sorted, no zero coefficients

    @staticmethod
    def of(d: dict[Monomial, int]) -> "Poly":
        return Poly(tuple(sorted((m, c) for m, c in d.items() if c)))

    def add(self, other: "Poly", sign: int = 1) -> "Poly":
        d = dict(self.terms)
        for m, c in other.terms:
            d[m] = d.get(m, 0) + sign * c
        return Poly.of(d)

    def mul(self, other: "Poly") -> "Poly":
        d: dict[Monomial, int] = {}
        for m1, c1 in self.terms:
            for m2, c2 in other.terms:
                m = tuple(sorted(m1 + m2))
                d[m] = d.get(m, 0) + c1 * c2
        return Poly.of(d)

    def constant(self) -> int | None:
        """The value when no symbol is left, else None."""
        if all(m == () for m, _ in self.terms):
            return dict(self.terms).get((), 0)
        return None


def const(n: int) -> Poly:
    return Poly.of({(): n})


def symbol(text: str) -> Poly:
    return Poly.of({(re.sub(r"\s+", "", text),): 1})


@dataclass(frozen=True)
class Extent:
    base: str  # the root the address is computed from ("" when none is known)
    offset: Poly


class Reader:
    """Texts of one function to extents.  `linear`: locals assigned once (name -> value text);
    `mutated`: variables with no one value; `is_base`: whether a name is an address (a pointer the
    flow tracks); `constant`: the value of a name that is a constant (an object-like macro such as
    PAGE_SIZE), or None."""

    def __init__(self, linear: dict[str, str], mutated: set[str], is_base, constant=None,
                 at_least: dict[str, str] | None = None):
        self.linear = linear
        self.mutated = mutated
        self.is_base = is_base
        self.constant = constant or (lambda name: None)
        # calls whose value is at least a known size (folio_size() >= PAGE_SIZE): the bound plus a
        # symbol for the rest, which is never negative
        self.at_least = at_least or {}

    def address(self, text: str) -> Extent | None:
        found = self._sum(text, 0)
        if found is None:
            return None
        base, poly = found
        return Extent(base, poly) if base else None

    def span(self, start: str, end: str) -> Poly | None:
        """The bytes from `start` to `end`: their difference, when both are one base (or none, two
        integers) plus offsets."""
        a, b = self._sum(start, 0), self._sum(end, 0)
        if a is None or b is None or a[0] != b[0]:
            return None
        return b[1].add(a[1], -1)

    def length(self, text: str) -> Poly | None:
        found = self._sum(text, 0)
        if found is None or found[0]:
            return None
        return found[1]

    # a sum of terms: at most one of them an address
    def _sum(self, text: str, depth: int) -> tuple[str, Poly] | None:
        t = strip(text)
        if not t:
            return None
        base, total = "", Poly()
        for sign, operand in split_top(t):
            term = self._term(strip(operand), depth)
            if term is None:
                return None
            b, p = term
            if b:
                if base or sign == "-":
                    return None  # two addresses, or an address subtracted: a length, not an address
                base = b
            total = total.add(p, 1 if sign == "+" else -1)
        return base, total

    def _term(self, o: str, depth: int) -> tuple[str, Poly] | None:
        if o.startswith("&"):
            inner = strip(o[1:])
            sub = _SUBSCRIPT.match(inner)
            if sub:  # &arr[i]: the array plus i elements
                arr = re.sub(r"\s+", "", sub.group(1))
                index = self._sum(sub.group(2), depth + 1)
                if index is None or index[0]:
                    return None
                return arr, index[1].mul(symbol(f"sizeof(*{arr})"))
            if is_ident(inner) or re.fullmatch(r"[\w\s.>-]+", inner):
                return re.sub(r"\s+", "", inner), Poly()
            return None
        if len(split_top(o)) > 1:  # a parenthesized sum
            return self._sum(o, depth + 1) if depth < _MAX_DEPTH else None
        n = number(o)
        if n is not None:
            return "", const(n)
        factors = split_top(o, "*")
        if len(factors) > 1:
            if any(s not in "+*" for s, _ in factors):
                return None
            out = const(1)
            for _, fac in factors:
                term = self._term(strip(fac), depth)
                if term is None or term[0]:
                    return None
                out = out.mul(term[1])
            return "", out
        if is_ident(o):
            if o in self.mutated:
                return None
            if o in self.linear and depth < _MAX_DEPTH:
                value = self._sum(self.linear[o], depth + 1)
                if value is not None:
                    return value
                # assigned once, to a value with no extent of its own: one value, named by the local
                return (o, Poly()) if self.is_base(o) else ("", symbol(o))
            if self.is_base(o):
                return o, Poly()
            value = self.constant(o)
            return ("", const(value)) if value is not None else ("", symbol(o))
        if re.fullmatch(r"[A-Za-z_]\w*(?:\s*(?:->|\.)\s*[A-Za-z_]\w*)+", o):
            key = re.sub(r"\s+", "", o)
            return (key, Poly()) if self.is_base(key) else ("", symbol(key))
        if o.startswith("sizeof"):
            return "", symbol(o)
        call = call_parts(o) if "(" in o else None
        if call is not None and call[0] in self.at_least and depth < _MAX_DEPTH:
            bound = self._sum(self.at_least[call[0]], depth + 1)
            if bound is not None and not bound[0]:
                return "", bound[1].add(symbol(f"{o}-{self.at_least[call[0]]}"))
        if _SUBSCRIPT.match(o) or "(" in o or "/" in o or ">>" in o or "?" in o:
            return None  # a value read from memory, a call, a division: no extent
        return "", symbol(o)


def starts_at_or_past(write: Extent, end: Extent) -> bool:
    """Whether a write that starts at `write` lies wholly at or beyond the end of a range ending at
    `end`: the same base, and the difference of the offsets a number >= 0."""
    if write.base != end.base:
        return False
    diff = write.offset.add(end.offset, -1).constant()
    return diff is not None and diff >= 0
