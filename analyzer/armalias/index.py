"""A symbol index over the scanned tree: functions, macros, struct initializer tables, asm symbols,
and the resolution of a call through #define aliases and wrappers."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable

from armalias.facts import AsmSymbol, Call, FileFacts, FunctionDef, Initializer, MacroDef
from armalias.rules import IDENTIFIER

_MEMBER_REF = re.compile(r"^\(?\s*[A-Za-z_]\w*\s*(?:\.|->)\s*([A-Za-z_]\w*)\s*\)?$")
_GLUE = re.compile(r"^__glue\s*\(\s*\w+\s*,\s*_(\w+)\s*\)$")

MAX_EXPANSION_DEPTH = 12


@dataclass(frozen=True)
class Expansion:
    """A name reached from a call in code by expanding macros: ``via`` are the macros crossed."""

    name: str
    via: tuple[str, ...]
    args: tuple[str, ...]


class SymbolIndex:
    def __init__(self, facts: list[FileFacts], cache_fns_members: tuple[str, ...] = ()):
        self.facts = facts
        self.functions: dict[str, list[FunctionDef]] = defaultdict(list)
        self.macros: dict[str, list[MacroDef]] = defaultdict(list)
        self.macro_calls: dict[str, list[Call]] = defaultdict(list)
        self.code_calls: list[Call] = []
        self.initializers: list[Initializer] = []
        self.asm_symbols: dict[str, list[AsmSymbol]] = defaultdict(list)
        self.members = frozenset(cache_fns_members)
        self._reach: dict[str, frozenset[str]] = {}
        self._named: dict[str, list[tuple[str, str]]] | None = None  # member -> symbols named *_member
        self._inits: dict[str, list[Initializer]] | None = None  # member -> its designated initializers
        for f in facts:
            for fn in f.functions:
                self.functions[fn.name].append(fn)
            for m in f.macros:
                self.macros[m.name].append(m)
            for c in f.calls:
                (self.macro_calls[c.caller] if c.in_macro else self.code_calls).append(c)
            self.initializers.extend(f.initializers)
            for s in f.asm_symbols:
                self.asm_symbols[s.name].append(s)

    # -- macros -----------------------------------------------------------------------------
    def alias_targets(self, name: str, visible: Callable[[str], bool] | None = None) -> list[str]:
        """What an object-like macro stands for when it is called: an identifier, a struct member
        (``cpu_cache.coherent_kern_range`` gives ``.coherent_kern_range``) or a glue name."""
        out = []
        for m in self.macros.get(name, ()):
            if m.params is not None or (visible is not None and not visible(m.file)):
                continue
            body = m.body.strip()
            if IDENTIFIER.fullmatch(body):
                out.append(body)
                continue
            mm = _MEMBER_REF.match(body)
            if mm:
                out.append("." + mm.group(1))
                continue
            g = _GLUE.match(body)
            if g and g.group(1) in self.members:
                out.append("." + g.group(1))
        return out

    def reachable_names(self, name: str) -> frozenset[str]:
        """Every name a call of ``name`` reaches through macro bodies and aliases, within
        MAX_EXPANSION_DEPTH macros as expand() follows them (memoized).  The bound keeps a chain of
        thousands of `#define`s from costing the square of its length."""
        hit = self._reach.get(name)
        if hit is not None:
            return hit
        seen: set[str] = set()
        level = [name]
        for _ in range(MAX_EXPANSION_DEPTH):
            nxt_level = []
            for cur in level:
                if cur not in self.macros:
                    continue
                for n in (*self.alias_targets(cur), *(c.callee for c in self.macro_calls.get(cur, ()))):
                    if n not in seen:
                        seen.add(n)
                        nxt_level.append(n)
            if not nxt_level:
                break
            level = nxt_level
        result = frozenset(seen)
        self._reach[name] = result
        return result

    def expand(self, name: str, args: tuple[str, ...] = (),
               choose: Callable[[list[MacroDef]], list[MacroDef]] | None = None) -> list[Expansion]:
        """Every name a call of ``name`` reaches through macro bodies and aliases, with the path;
        `choose(definitions)`: those of a macro's definitions that hold (None: all do)."""
        out: list[Expansion] = []
        seen: set[tuple[str, tuple[str, ...]]] = set()
        stack: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = [(name, (), args)]
        while stack:
            cur, via, cur_args = stack.pop()
            if len(via) > MAX_EXPANSION_DEPTH or cur in via:
                continue
            if (cur, via) in seen:
                continue
            seen.add((cur, via))
            if via:
                out.append(Expansion(cur, via, cur_args))
            if cur not in self.macros:
                continue
            visible = None
            if choose is not None:
                files = frozenset(m.file for m in choose(self.macros[cur]))
                if not files:
                    continue
                visible = files.__contains__
            nvia = via + (cur,)
            for target in self.alias_targets(cur, visible):
                stack.append((target, nvia, cur_args))
            bindings = self._bindings(cur, cur_args, visible)
            for c in self.macro_calls.get(cur, ()):
                if visible is None or visible(c.file):
                    stack.append((c.callee, nvia, tuple(substitute(a, bindings) for a in c.args)))
        out.sort(key=lambda e: (len(e.via), e.via, e.name))
        return out

    def _bindings(self, macro: str, args: tuple[str, ...], visible: Callable[[str], bool] | None = None
                  ) -> dict[str, str]:
        for m in self.macros.get(macro, ()):
            if m.params and (visible is None or visible(m.file)):
                return {p: a for p, a in zip(m.params, args) if p != "..."}
        return {}

    # -- struct cpu_cache_fns --------------------------------------------------------------
    def member_implementations(self, member: str, struct: str) -> list[tuple[str, str]]:
        """(implementation symbol, where) for a cache_fns member: C designated initializers of the
        struct, and symbols named ``*_member`` (the glue and define_cache_functions convention)."""
        found: dict[str, str] = {}
        known = member in self.members
        for init in self._initializers_of()[member] if known else self.initializers:
            if init.member == member and (init.struct == struct or not init.struct) and IDENTIFIER.fullmatch(init.value):
                found.setdefault(init.value, f"{init.file}:{init.line}")
        if known:
            named = self._named_after_members()[member]
        else:
            suffix = "_" + member
            named = [(sym, f"{defs[0].file}:{defs[0].line}") for table in (self.asm_symbols, self.functions)
                     for sym, defs in table.items() if defs and sym.endswith(suffix)]
        for sym, where in named:
            found.setdefault(sym, where)
        return sorted(found.items())

    def _initializers_of(self) -> dict[str, list[Initializer]]:
        """The designated initializers of each member, in order."""
        if self._inits is None:
            inits: dict[str, list[Initializer]] = {m: [] for m in self.members}
            for init in self.initializers:
                hit = inits.get(init.member)
                if hit is not None:
                    hit.append(init)
            self._inits = inits
        return self._inits

    def _named_after_members(self) -> dict[str, list[tuple[str, str]]]:
        """For each member, the assembly symbols and then the functions named ``*_member``, with where
        each is first defined: one pass over the names for all the members, not one per member (whole
        tree: 24,000 functions, and every call graph built asks for this)."""
        if self._named is None:
            named: dict[str, list[tuple[str, str]]] = {m: [] for m in self.members}
            for table in (self.asm_symbols, self.functions):
                for sym, defs in table.items():
                    if not defs:
                        continue
                    at = sym.find("_")
                    while at != -1:  # every `_` that could start the `_member` end of the name
                        hit = named.get(sym[at + 1:])
                        if hit is not None:
                            hit.append((sym, f"{defs[0].file}:{defs[0].line}"))
                        at = sym.find("_", at + 1)
            self._named = named
        return self._named


def substitute(text: str, bindings: dict[str, str]) -> str:
    """Replace macro parameters in text with the argument texts (no rescanning)."""
    if not bindings:
        return text
    return IDENTIFIER.sub(lambda m: bindings.get(m.group(0), m.group(0)), text)
