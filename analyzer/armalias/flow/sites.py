"""What the flow analysis finds in a function: the alias values it tracks, the writes, maintenance
calls, physical-address uses and execution addresses handed on, in statement order."""

from __future__ import annotations

from dataclasses import dataclass, field

from armalias.rules import IDENTIFIER, MaintenanceSpec
from armalias.source.cflow import Guard

# Alias kinds that are a second virtual mapping of memory that runs elsewhere.
DISTINCT_KINDS = frozenset({"fixmap", "vectors", "lowmem", "kmap", "vmalloc", "sram"})


@dataclass(frozen=True, order=True)
class AliasVal:
    kind: str  # fixmap | vectors | lowmem | kmap | vmalloc | sram | phys | exec | param
    origin: str  # what the alias maps: a parameter, a global, a constant

    def __str__(self) -> str:
        return f"{self.kind}({self.origin})"


Aliases = frozenset[AliasVal]


@dataclass(frozen=True)
class WriteSite:
    order: int
    line: int
    column: int
    expr: str
    pointer: str
    aliases: Aliases
    size: str  # bytes written, as text ("" unknown)
    guards: tuple[Guard, ...]
    via: tuple[str, ...] = ()
    data: bool = False  # a store to a struct member or a variable: data, never code


@dataclass(frozen=True)
class MaintSite:
    order: int
    line: int
    column: int
    call: str
    spec: MaintenanceSpec
    start: str
    end: str  # the end address text ("" when the call takes a size or is whole-cache)
    size: str
    aliases: Aliases
    guards: tuple[Guard, ...]
    via: tuple[str, ...] = ()  # macros or summarized wrappers crossed
    # the caller's text that decides where a callee maintains an address of its own (the `vaddr` of
    # flush_pfn_alias(pfn, vaddr), whose colour slot it flushes): "" when the start says it
    aim: str = ""
    # the aliases it reaches: its own, and those at the same address (Vocabulary.same_place); the
    # flow sets it with the aliases (FlowAnalysis._maint)
    reaches: Aliases = frozenset()

    @property
    def aimed_at(self) -> str:
        """The text that says where the call maintains: its start, or what decides a callee's own address."""
        return self.start or self.aim


@dataclass(frozen=True)
class PhysUse:
    order: int
    line: int
    column: int
    call: str
    arg: str
    aliases: Aliases


@dataclass(frozen=True)
class ExecUse:
    """An address handed to a callee as the place code runs (its summary's `runs`): `patch_text(addr,
    ...)` says addr holds code, whether or not this function writes it."""

    order: int
    line: int
    call: str
    arg: str
    aliases: Aliases


@dataclass
class FunctionFlow:
    name: str
    file: str
    line: int
    params: tuple[str, ...]
    exec_param: str | None
    writes: list[WriteSite] = field(default_factory=list)
    maintenance: list[MaintSite] = field(default_factory=list)
    phys_uses: list[PhysUse] = field(default_factory=list)
    exec_uses: list[ExecUse] = field(default_factory=list)
    stores: list[WriteSite] = field(default_factory=list)  # assignments to variables of file scope
    locals: set[str] = field(default_factory=set)  # variables the function declares
    returns: set[AliasVal] = field(default_factory=set)
    linear: dict[str, str] = field(default_factory=dict)  # locals assigned once: name -> value text
    # every variable assigned once, under whatever condition (`if (n) { start = ...; flush(start); }`)
    once: dict[str, str] = field(default_factory=dict)
    mutated: set[str] = field(default_factory=set)  # assigned more than once, or parameters assigned
    env: dict[str, Aliases] = field(default_factory=dict)
    callees: set[str] = field(default_factory=set)  # the names its code calls


def params_of(text: str, f: FunctionFlow, values: dict[str, str]) -> set[str]:
    """The parameters of f an expression is computed from, its locals read through `values`
    (f.linear: assigned once, under no condition; f.once: assigned once, under any); a local
    assigned more than once ends the walk there."""
    seen: set[str] = set()
    todo = IDENTIFIER.findall(text)
    out = set()
    while todo and len(seen) < 64:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in f.params:
            out.add(name)
        elif name in values and name in f.locals and name not in f.mutated:
            todo.extend(IDENTIFIER.findall(values[name]))
    return out
