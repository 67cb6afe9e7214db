"""Register flow: what range each maintenance instruction covers.

Every ranged cpu_cache_fns member takes the start address in r0 and the end address or the size in
r1 (cacheflush.h: flush_user_range, coherent_*_range and dma_flush_range take (start, end);
flush_kern_dcache_area and dma_*_area take (start, size)).  A forward data flow over the code a
member runs (the walk's control flow, calls followed with their return address) gives each
register the set of places its value may come from:

  start   r0 on entry            page    an immediate naming the page size (PAGE_SZ, PAGE_SIZE, 4096)
  extent  r1 on entry            const   any other immediate
  other   a load, a coprocessor or status read, a callee outside the assembly, anything not decoded

A Feroceon range operation (c15) covers [its start write, its top write]: its extent is where the
top register comes from.  A by-line operation inside a loop covers what the loop's compare bounds:
where the compared registers come from.  `extent` among them: the range given ("range"); only
start, page and constants, with a page: one page from the start, whatever the size ("page"); only
start and constants: a fixed length ("fixed"); `other`: not known, read as the range given.  A
by-line operation outside any loop covers one line ("line"), a whole-cache operation "whole".

`coverage_at` runs the flow from one symbol of an `AsmTree` and gives the `Coverage` of its steps.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING

from armalias.cacheimpl import CacheOp
from armalias.source.asm import MCR_RE, Item, comma_split
from armalias.source.asmflow import COND, SUFFIX_RE, block_successors, control_flow

if TYPE_CHECKING:  # the flow runs over a tree; source/asmtree.py imports this module
    from armalias.source.asmtree import AsmTree

_REG_RE = re.compile(r"\b(r1[0-5]|r[0-9]|ip|fp|sl|sb|sp|lr|pc)\b", re.I)
_REG_ALIASES = {"ip": "r12", "fp": "r11", "sl": "r10", "sb": "r9", "sp": "r13", "lr": "r14", "pc": "r15"}
# an immediate that names the page: the kernel's macros, or the 4 KiB of every ARM page spelled out
_PAGE_RE = re.compile(r"\bPAGE_(?:SZ|SIZE|SHIFT|MASK)\b|(?<![\w.])(?:4096|0x1000)(?![\w.])")
_ARITH_RE = re.compile(
    r"^(?P<base>movw|movt|mov|mvn|neg|add|adc|sub|sbc|rsb|rsc|and|orr|orn|eor|bic|lsl|lsr|asr|ror|rrx|mul|mla|mls|"
    r"ubfx|sbfx|bfc|bfi|clz|rbit|rev16|rev|uxtb|uxth|sxtb|sxth|ldrex|ldr|ldm|pop|push|stm|mrc|mrs)(?P<rest>[a-z]*)"
    r"(?:\.w|\.n)?$")
_COMPARE_RE = re.compile(rf"^(?:cmp|cmn|tst|teq)(?:{COND})?(?:\.w|\.n)?$")
_FLAG_SETTING_RE = re.compile(rf"^(?:adds|subs|ands|orrs|movs|bics|eors|rsbs)(?:{COND})?(?:\.w|\.n)?$"
                              rf"|^(?:add|sub|and|orr|mov|bic|eor|rsb)(?:{COND})s(?:\.w|\.n)?$")
_RANGE_OPS_SUFFIX = "-range"
_ENTRY_ORIGINS = {"r0": frozenset({"start"}), "r1": frozenset({"extent"})}
_OTHER = frozenset({"other"})
_KEEP = object()  # _RegState.set: the stack as it was
_EXTENT_RANK = {"range": 4, "page": 3, "fixed": 2, "line": 1}
_MAX_CALL_DEPTH = 8
_MAX_VISITS = 200_000


def _register(name: str) -> str:
    name = name.lower()
    return _REG_ALIASES.get(name, name)


@lru_cache(maxsize=4096)
def _operands(text: str) -> tuple[str, ...]:
    """Top-level comma-separated operands (``[r0, #4]`` and ``{r0, r1}`` stay whole)."""
    if "[" not in text and "{" not in text and "(" not in text:
        return tuple(piece.strip() for piece in text.split(",") if piece.strip())
    pieces = [piece.strip() for piece in comma_split(text, "[{(", "]})")]
    return tuple(pieces[:-1] + [pieces[-1]] if pieces[-1] else pieces[:-1])


def _register_list(text: str) -> list[str]:
    """``{r0 - r3, lr}`` -> ["r0", "r1", "r2", "r3", "r14"] (ascending, as ldm/stm order them)."""
    regs: set[int] = set()
    for piece in text.strip().strip("{}").split(","):
        ends = [_register(r) for r in _REG_RE.findall(piece)]
        numbers = [int(r[1:]) for r in ends if r[1:].isdigit()]
        if len(numbers) == 2 and "-" in piece:
            regs.update(range(min(numbers), max(numbers) + 1))
        else:
            regs.update(numbers)
    return [f"r{n}" for n in sorted(regs)]


@dataclass(frozen=True)
class _RegState:
    """Origins of each register (absent: `other`), and the origins pushed on the stack (None: unknown)."""

    regs: tuple[tuple[str, frozenset[str]], ...]
    stack: tuple[tuple[frozenset[str], ...], ...] | None = ()
    by_name: dict[str, frozenset[str]] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", dict(self.regs))

    def get(self, reg: str) -> frozenset[str]:
        return self.by_name.get(reg, _OTHER)

    def set(self, values: dict[str, frozenset[str]], conditional: bool = False, stack: object = _KEEP) -> "_RegState":
        """Registers written (joined with their old origins when the instruction is conditional),
        and the stack after it (`_KEEP`: unchanged; a conditional push or pop leaves it unknown)."""
        if not values and stack is _KEEP:
            return self
        regs = dict(self.by_name)
        for reg, origins in values.items():
            regs[reg] = origins | regs.get(reg, _OTHER) if conditional else origins
        if stack is _KEEP:
            stack = self.stack
        elif conditional and stack != self.stack:
            stack = None
        return _RegState(tuple(sorted(regs.items())), stack)  # type: ignore[arg-type]

    def join(self, other: "_RegState") -> "_RegState":
        if self == other:
            return self
        regs = dict(self.by_name)
        for reg, origins in other.regs:
            regs[reg] = regs.get(reg, _OTHER) | origins
        for reg in set(regs) - {r for r, _ in other.regs}:
            regs[reg] = regs[reg] | _OTHER
        if self.stack == other.stack:
            stack = self.stack
        elif self.stack is not None and other.stack is not None and len(self.stack) == len(other.stack):
            stack = tuple(tuple(a | b for a, b in zip(x, y)) if len(x) == len(y) else (_OTHER,) * len(x)
                          for x, y in zip(self.stack, other.stack))
        else:
            stack = None
        return _RegState(tuple(sorted(regs.items())), stack)


def _origins(operands: tuple[str, ...] | list[str], state: _RegState) -> frozenset[str]:
    """Where a value computed from these operands may come from."""
    out: set[str] = set()
    for operand in operands:
        for reg in _REG_RE.findall(operand):
            out |= state.get(_register(reg))
        if "#" in operand or operand.startswith("="):
            out.add("page" if _PAGE_RE.search(operand) else "const")
    return frozenset(out)


def _transfer(state: _RegState, mnem: str, arg: str) -> tuple[_RegState, list[tuple[str, frozenset[str], frozenset[str]]]]:
    """The state after one instruction, and its register writes as (register, before, after)."""
    m = _ARITH_RE.match(mnem)
    ops = _operands(arg)
    if m is None:
        no_write = (control_flow(mnem, arg) is not None or _COMPARE_RE.match(mnem) or mnem.startswith(
            ("str", "stm", "mcr", "pld", "pli", "dsb", "dmb", "isb", "nop", "msr", "cps", "wf", "sev", "svc",
             "swi", "it", "bkpt", "setend", "udf", "clrex", "dbg", ".inst", "cmp", "cmn", "tst", "teq")))
        if no_write or not ops or not _REG_RE.fullmatch(ops[0].rstrip("!")):
            return state, []
        dest = _register(ops[0])  # an instruction not modelled: its result may come from anything
        value = _origins(ops, state) | _OTHER
        return state.set({dest: value}), [(dest, state.get(dest), value)]
    base, rest = m["base"], m["rest"]
    suffix = SUFFIX_RE.match(rest)
    conditional = bool(suffix and suffix["cc"] and suffix["cc"] != "al")
    writes: dict[str, frozenset[str]] = {}
    stack: object = _KEEP
    if base in ("push", "stm"):
        if base == "push" or (ops and ops[0].replace(" ", "").lower() in ("sp!", "r13!")):
            regs = _register_list(ops[-1] if ops else "")
            if state.stack is not None:
                stack = state.stack + (tuple(state.get(r) for r in regs),)
        return state.set({}, conditional, stack), []
    if base in ("pop", "ldm"):
        regs = _register_list(ops[-1] if ops else "")
        from_stack = base == "pop" or (ops and ops[0].replace(" ", "").lower() in ("sp!", "r13!"))
        if from_stack and state.stack and len(state.stack[-1]) == len(regs):
            writes = dict(zip(regs, state.stack[-1]))
            stack = state.stack[:-1]
        else:
            writes = {r: _OTHER for r in regs}
            if from_stack:
                stack = None
    elif base in ("mrc", "mrs"):
        dest = _mrc_dest(mnem, arg)
        if dest is None:
            return state, []
        writes = {dest: _OTHER}
    elif not ops or not _REG_RE.fullmatch(ops[0]):
        return state, []
    elif base in ("ldr", "ldrex"):
        source = ops[1] if len(ops) > 1 else ""
        writes = {_register(ops[0]): _origins([source], state) if source.startswith("=") else _OTHER}
    else:
        sources = ops[1:]
        if base in ("movt", "bfi", "bfc") or (len(ops) == 2 and base not in ("mov", "mvn", "neg", "movw", "clz",
                                                                             "rbit", "rev", "rev16", "uxtb",
                                                                             "uxth", "sxtb", "sxth")):
            sources = ops  # the destination is read too (two-operand Thumb forms, movt, bit fields)
        writes = {_register(ops[0]): _origins(sources, state)}
    changes = [(reg, state.get(reg), value) for reg, value in writes.items()]
    return state.set(writes, conditional, stack), changes


def _mrc_dest(mnem: str, arg: str) -> str | None:
    if mnem.startswith("mrc") and not mnem.startswith("mrrc"):
        m = MCR_RE.match(arg.strip())
        return _register(m["rt"]) if m and m["rt"] and _REG_RE.fullmatch(m["rt"].strip()) else None
    if mnem.startswith("mrs"):
        first = _operands(arg)[:1]
        return _register(first[0]) if first and _REG_RE.fullmatch(first[0]) else None
    return None


@dataclass(frozen=True)
class Coverage:
    """What each maintenance instruction reached from one symbol covers, from its arguments' flow."""

    extents: dict[tuple[str, int, str, str], str]  # (file, line, raw, op) -> extent (see above)
    # (where, page): "file:line: insn" that replaces the end or size in r1 by a value that does not
    # come from it (from the start and constants; `page` when one names the page size)
    discards: tuple[tuple[str, bool], ...] = ()
    notes: tuple[str, ...] = ()

    def extent_of(self, step: CacheOp) -> str:
        return self.extents.get((step.file, step.line, step.raw, step.op), "")


def _classify(bound: frozenset[str]) -> str:
    if "extent" in bound or "other" in bound or not bound:
        return "range"
    if "page" in bound:
        return "page"
    return "fixed"


def coverage_at(tree: AsmTree, symbol: str, fi: int, idx: int) -> Coverage:
    """The coverage of ``symbol``, whose code starts at item ``idx`` of ``tree.files[fi]``."""
    Key = tuple  # (call stack of return positions, file index, item index)
    start = _RegState(tuple(sorted(_ENTRY_ORIGINS.items())))
    states: dict[Key, _RegState] = {((), fi, idx): start}
    work = deque([((), fi, idx)])
    visits = 0
    notes: list[str] = []
    while work:
        visits += 1
        if visits > _MAX_VISITS:
            notes.append(f"{symbol}: register flow not settled after {_MAX_VISITS} steps; extents not read")
            return Coverage({}, (), tuple(notes))
        key = work.popleft()
        ctx, f, i = key
        state = states[key]
        for succ, after in _register_steps(tree, ctx, f, i, state):
            old = states.get(succ)
            new = after if old is None else old.join(after)
            if new != old:
                states[succ] = new
                work.append(succ)
    at: dict[tuple[int, int], _RegState] = {}
    for (_, f, i), state in states.items():
        at[(f, i)] = state if (f, i) not in at else at[(f, i)].join(state)
    extents: dict[tuple[str, int, str, str], str] = {}
    discards: list[tuple[str, bool]] = []
    for (f, i), state in sorted(at.items()):
        asm = tree.files[f]
        item = asm.items[i] if i < len(asm.items) else None
        if item is None or item.kind != "insn":
            continue
        for reg, before, after in _transfer(state, item.name, item.arg)[1]:
            if reg == "r1" and "extent" in before and "extent" not in after and "other" not in after:
                text = (f"{item.file}:{item.line}: {item.name} {item.arg}", "page" in after)
                if text not in discards:
                    discards.append(text)
        steps: list[CacheOp] = []
        tree.decode(item, asm, i, "", steps, [], tree.optable)
        for step in steps:
            extent = _extent(tree, step.op, f, i, item, state, at)
            if not extent:
                continue
            key4 = (step.file, step.line, step.raw, step.op)
            old = extents.get(key4)
            if old is None or _EXTENT_RANK.get(extent, 0) > _EXTENT_RANK.get(old, 0):
                extents[key4] = extent
    return Coverage(extents, tuple(discards), tuple(notes))


def _extent(tree: AsmTree, op: str, f: int, i: int, item: Item, state: _RegState,
            at: dict[tuple[int, int], _RegState]) -> str:
    side = "-d-" if "-d-" in op else "-i-" if "-i-" in op else ""
    if not side:
        return ""  # a barrier, a drain, branch-predictor maintenance, unknown
    if op.split(side, 1)[1].startswith("all"):
        return "whole"
    if op.endswith(_RANGE_OPS_SUFFIX):  # the Feroceon form: the instruction writes the top address
        m = MCR_RE.match(item.arg.strip())
        rt = m["rt"].strip() if m and m["rt"] else ""
        return _classify(state.get(_register(rt))) if _REG_RE.fullmatch(rt) else "range"
    latch = _latch(tree, f, i)
    if latch is None:
        return "line"
    compare = tree.files[f].items[latch]
    ops = _operands(compare.arg)
    if not _COMPARE_RE.match(compare.name):
        ops = ops[:1]  # subs r1, r1, #32 (or cbnz r1, 1b): the counter it leaves
    return _classify(_origins(ops, at.get((f, latch), _RegState(()))))


def _latch(tree: AsmTree, f: int, i: int) -> int | None:
    """The flag-setting instruction whose conditional branch closes the loop around item ``i``
    (a branch back to a label at or before it), or None when the item is in no loop."""
    asm = tree.files[f]
    flags = None
    for j in range(i + 1, len(asm.items)):
        item = asm.items[j]
        if item.kind != "insn":
            if item.kind in ("data", "section", "func", "endfunc"):
                return None
            continue
        if _COMPARE_RE.match(item.name) or _FLAG_SETTING_RE.match(item.name):
            flags = j
            continue
        flow = control_flow(item.name, item.arg)
        if flow is None or flow[0] == "call":
            continue
        what, target, conditional = flow
        if what == "branch" and conditional:
            dest = tree.target(f, j, target)
            if dest is not None and dest[0] == f and dest[1] <= i:
                return j if item.name in ("cbz", "cbnz") else flags  # cbnz r2, 1b: r2 is the count
            continue
        if not conditional:
            return None
    return None


def _register_steps(tree: AsmTree, ctx: tuple, f: int, i: int, state: _RegState):
    """(successor key, state there) for the item at (f, i) under the call stack ``ctx``."""
    asm = tree.files[f]
    if i >= len(asm.items):
        return
    item = asm.items[i]
    kind = item.kind
    if kind in ("label", "func", "endfunc", "global", "alias", "endif"):
        yield (ctx, f, i + 1), state
        return
    if kind in ("if", "else"):
        for s in block_successors(asm, i, item):
            yield (ctx, f, s), state
        return
    if kind != "insn":
        return  # data, a section change: the flow stops (the walk notes it)
    flow = control_flow(item.name, item.arg)
    after, _ = _transfer(state, item.name, item.arg)
    if flow is None:
        yield (ctx, f, i + 1), after
        return
    what, target, conditional = flow
    if conditional:
        yield (ctx, f, i + 1), after
    if what == "return":
        if ctx:
            yield (ctx[:-1], *ctx[-1]), after
        return
    if what == "indirect":
        return
    dest = tree.target(f, i, target)
    if what == "call":
        if dest is None or len(ctx) >= _MAX_CALL_DEPTH:  # a callee not followed: r0-r3 and ip clobbered
            yield (ctx, f, i + 1), after.set({r: _OTHER for r in ("r0", "r1", "r2", "r3", "r12")})
        else:
            yield (ctx + ((f, i + 1),), dest[0], dest[1]), after
        return
    if dest is not None:
        yield (ctx, dest[0], dest[1]), after
