"""The assembly of one arch/arm/mm directory: its files read and indexed, symbols across files, the walk.

From a ``cpu_cache_fns`` member symbol `AsmTree` follows the code as the CPU would (fall-through into
the next function, branches to local labels and to other functions, calls, returns) and decodes each
cache maintenance instruction with the table in ``rules/cache-ops.toml``. Whatever it cannot decode
becomes op ``unknown`` with its raw text; whatever flow it cannot follow becomes a note. A data flow of
the member's arguments over the same code (``AsmTree.coverage``, source/asmregs.py) tells what each
instruction covers: the range it was given, one page from the start, one line, the whole cache.

The ``struct cpu_cache_fns`` tables are read both as ``.long`` lists after a ``NAME_cache_fns`` label
(older kernels, built by ``define_cache_functions``) and as C designated initializers (newer kernels'
``arch/arm/mm/cache.c``).  `summarize` tells what a function's steps amount to.
"""

from __future__ import annotations

import heapq
import re
from dataclasses import dataclass, field
from pathlib import Path

from armalias.cacheimpl import CACHE_MEMBERS, CacheOp
from armalias.source.asm import (
    IDENT_RE,
    AsmFile,
    CacheOpTable,
    Item,
    load_cache_ops,
    logical_lines,
    negate,
    parse_encoding,
    parse_mcrr,
    read_items,
    read_text,
)
from armalias.source.asmflow import MNEMONIC_RE, block_successors, control_flow, has_condition, index
from armalias.source.asmregs import Coverage, coverage_at

# ---------------------------------------------------------------------------------------------------
# Tables


@dataclass(frozen=True)
class TableEntry:
    symbol: str
    condition: str = ""  # the #if condition under which this symbol is the member's value
    line: int = 0


@dataclass(frozen=True)
class CacheTable:
    """One ``struct cpu_cache_fns`` instance: member -> candidate symbols (more than one under #if)."""

    name: str  # implementation name: "v7" for v7_cache_fns
    file: str
    line: int
    condition: str  # #if around the whole table ("" when unconditional)
    members: dict[str, tuple[TableEntry, ...]]


@dataclass(frozen=True)
class TableReference:
    """A processor table (``proc_info``) naming ``NAME_cache_fns``."""

    name: str
    file: str
    line: int
    conditions: tuple[str, ...]


_C_TABLE_RE = re.compile(r"\bstruct\s+cpu_cache_fns\s+(\w+)_cache_fns\b[^;={]*=\s*\{")
_C_MEMBER_RE = re.compile(r"\.\s*(\w+)\s*=\s*&?\s*(\w+)")


def read_c_cache_tables(text: str, rel: str) -> list[CacheTable]:
    """``struct cpu_cache_fns NAME_cache_fns ... = { .member = symbol, ... };`` with #if tracking."""
    tables: list[CacheTable] = []
    stack: list[tuple[list[str], list[str]]] = []  # per open #if: (conditions tested, branch texts)
    current: dict | None = None
    for lineno, stmt in logical_lines(text, at_comments=False):
        if stmt.startswith("#"):
            parts = stmt[1:].strip().split(None, 1)
            kind, rest = (parts[0] if parts else ""), " ".join(parts[1].split()) if len(parts) > 1 else ""
            if kind in ("if", "ifdef", "ifndef"):
                cond = "!" + rest if kind == "ifndef" else rest
                stack.append(([cond], [cond]))
            elif kind in ("elif", "else") and stack:
                tested, branches = stack[-1]
                negated = " && ".join(negate(c) for c in tested)
                branches.append(f"{negated} && {rest}" if kind == "elif" else negated)
                if kind == "elif":
                    tested.append(rest)
            elif kind == "endif" and stack:
                stack.pop()
            continue
        conds = [branches[-1] for _, branches in stack]
        if current is None:
            m = _C_TABLE_RE.search(stmt)
            if m:
                current = {"name": m.group(1), "line": lineno, "depth": len(stack),
                           "cond": " && ".join(conds), "members": {}}  # fmt: skip
                stmt = stmt[m.end():]
            else:
                continue
        inner = " && ".join(conds[current["depth"]:])
        for mm in _C_MEMBER_RE.finditer(stmt):
            current["members"].setdefault(mm.group(1), []).append(TableEntry(mm.group(2), inner, lineno))
        if "}" in stmt:
            tables.append(CacheTable(current["name"], rel, current["line"], current["cond"],
                                     {k: tuple(v) for k, v in current["members"].items()}))  # fmt: skip
            current = None
    return tables


# ---------------------------------------------------------------------------------------------------
# The tree: every .S of arch/arm/mm, symbols across files, and the walk


@dataclass(frozen=True)
class Trace:
    """What running one symbol does to the caches (every path, loops once)."""

    symbol: str
    resolved: str  # the code label reached through aliases ("" when unresolved)
    file: str
    line: int
    steps: tuple[CacheOp, ...]
    undecoded: tuple[str, ...]
    via: tuple[str, ...]
    notes: tuple[str, ...]
    alias_conditions: tuple[str, ...] = ()
    fallthroughs: tuple[str, ...] = ()  # "a falls through into b", in the order met


@dataclass
class AsmTree:
    """All assembly files of one ``arch/arm/mm`` directory, read and indexed."""

    root: Path  # the kernel tree root; relative paths are from here
    optable: CacheOpTable
    files: list[AsmFile] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    tables: list[CacheTable] = field(default_factory=list)
    references: list[TableReference] = field(default_factory=list)
    member_order: tuple[str, ...] = CACHE_MEMBERS
    _cid: int = 0
    _lines: dict[Path, list[tuple[int, str]] | None] = field(default_factory=dict)
    _globals: dict[str, list[tuple[int, int, tuple[str, ...]]]] = field(default_factory=dict)
    _global_aliases: dict[str, list[tuple[int, str, tuple[str, ...]]]] = field(default_factory=dict)
    _traces: dict[str, Trace] = field(default_factory=dict)
    _coverages: dict[tuple[int, int], "Coverage"] = field(default_factory=dict)

    def next_cid(self) -> int:
        self._cid += 1
        return self._cid

    def rel(self, path: Path) -> str:
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return path.as_posix()

    def lines_of(self, path: Path) -> list[tuple[int, str]] | None:
        if path not in self._lines:
            text = read_text(path, self.root)
            self._lines[path] = None if isinstance(text, tuple) else logical_lines(text)
        return self._lines[path]

    # -- reading -------------------------------------------------------------------------------------
    def read_file(self, path: Path) -> AsmFile | None:
        rel = self.rel(path)
        text = read_text(path, self.root)
        if isinstance(text, tuple):
            self.skipped.append((rel, text[1]))
            return None
        lines = logical_lines(text)
        self._lines[path] = lines
        asm = read_items(self, rel, lines, path.parent)
        index(asm)
        self.files.append(asm)
        return asm

    def finish(self) -> None:
        """Build the cross-file symbol tables and find the cache tables and their references."""
        for fi, asm in enumerate(self.files):
            for name in asm.globals:
                if name in asm.labels:
                    idx = asm.labels[name]
                    self._globals.setdefault(name, []).append((fi, idx, asm.items[idx].conds))
                for target, conds in asm.aliases.get(name, ()):
                    self._global_aliases.setdefault(name, []).append((fi, target, conds))
            self._find_tables(asm)

    def _find_tables(self, asm: AsmFile) -> None:
        items = asm.items
        for idx, item in enumerate(items):
            if item.kind == "label" and item.name.endswith("_cache_fns"):
                entries: list[Item] = []
                j = idx + 1
                while j < len(items) and items[j].kind in ("data", "global", "func", "label", "if", "else", "endif"):
                    if items[j].kind == "data" and items[j].name in (".long", ".word", ".4byte", ".int"):
                        entries.append(items[j])
                    elif items[j].kind == "label" and items[j].name != item.name:
                        break
                    j += 1
                if not entries:
                    continue
                members: dict[str, list[TableEntry]] = {}
                values = [(e, v.strip()) for e in entries for v in e.arg.split(",")]
                for member, (entry, value) in zip(self.member_order, values):
                    extra = tuple(c for c in entry.conds if c not in item.conds)
                    members.setdefault(member, []).append(TableEntry(value, " && ".join(extra), entry.line))
                self.tables.append(CacheTable(item.name[: -len("_cache_fns")], item.file, item.line,
                                              " && ".join(item.conds),
                                              {k: tuple(v) for k, v in members.items()}))  # fmt: skip
            elif item.kind == "data" and item.name in (".long", ".word", ".4byte", ".int"):
                for value in item.arg.split(","):
                    value = value.strip()
                    if value.endswith("_cache_fns") and IDENT_RE.match(value):
                        self.references.append(
                            TableReference(value[: -len("_cache_fns")], item.file, item.line, item.conds)
                        )

    # -- symbols -------------------------------------------------------------------------------------
    def resolve(self, name: str, from_file: int | None = None) -> tuple[int, int, str, tuple[str, ...], list[str]] | None:
        """(file index, item index, label, alias conditions, notes) of the code ``name`` runs."""
        conds: list[str] = []
        notes: list[str] = []
        seen: set[str] = set()
        while name not in seen:
            seen.add(name)
            if from_file is not None and name in self.files[from_file].labels:
                return from_file, self.files[from_file].labels[name], name, tuple(conds), notes
            defs = self._globals.get(name)
            if defs:
                if len(defs) > 1:
                    notes.append(f"{name} is defined {len(defs)} times; the first definition is used")
                fi, idx, _ = defs[0]
                return fi, idx, name, tuple(conds), notes
            if from_file is not None and name in self.files[from_file].aliases:
                alias = self.files[from_file].aliases[name]
                target, aconds = alias[0]
                conds.extend(aconds)
                name = target
                continue
            aliases = self._global_aliases.get(name)
            if aliases:
                fi, target, aconds = aliases[0]
                if len(aliases) > 1:
                    notes.append(f"{name} is aliased {len(aliases)} times; the first alias is used")
                conds.extend(aconds)
                from_file, name = fi, target
                continue
            if from_file is None:
                for fi, asm in enumerate(self.files):
                    if name in asm.labels:
                        notes.append(f"{name} resolves to a file-local label of {asm.rel}")
                        return fi, asm.labels[name], name, tuple(conds), notes
            return None
        notes.append(f"alias loop through {name}")
        return None

    def target(self, fi: int, idx: int, label: str) -> tuple[int, int] | None:
        asm = self.files[fi]
        m = re.match(r"^(\d+)([bf])$", label)
        if m:
            positions = asm.numeric.get(m.group(1), [])
            if m.group(2) == "b":
                before = [p for p in positions if p <= idx]
                return (fi, before[-1]) if before else None
            after = [p for p in positions if p > idx]
            return (fi, after[0]) if after else None
        found = self.resolve(label, fi)
        return (found[0], found[1]) if found else None

    # -- the walk ------------------------------------------------------------------------------------
    def trace(self, symbol: str) -> Trace:
        if symbol in self._traces:
            return self._traces[symbol]
        self._traces[symbol] = Trace(symbol, "", "", 0, (), (), (), (f"recursive call of {symbol}",))
        found = self.resolve(symbol)
        if found is None:
            trace = Trace(symbol, "", "", 0, (), (), (),
                          (f"{symbol} is not defined in the assembly of arch/arm/mm",))  # fmt: skip
        else:
            fi, idx, label, aconds, notes = found
            trace = self._walk(symbol, fi, idx, label, aconds, notes)
            self._traces[f"@{fi}:{idx}"] = trace
        self._traces[symbol] = trace
        return trace

    def functions(self) -> list[tuple[int, int, str]]:
        """(file index, item index, name) of every function start (ENTRY, SYM_*_START) in the tree.

        ENTRY() also opens data objects (``NAME_cache_fns``, ``NAME_processor_functions``): a start
        whose first item after its label is data is not a function.
        """
        found = []
        for fi, asm in enumerate(self.files):
            for idx, item in enumerate(asm.items):
                if item.kind != "func":
                    continue
                j = idx + 1
                while j < len(asm.items) and asm.items[j].kind in ("label", "global", "if", "else", "endif"):
                    j += 1
                if j < len(asm.items) and asm.items[j].kind == "data":
                    continue
                found.append((fi, idx, item.name))
        return found

    def trace_at(self, fi: int, idx: int, label: str) -> Trace:
        key = f"@{fi}:{idx}"
        if key not in self._traces:
            self._traces[key] = Trace(label, label, "", 0, (), (), (), (f"recursive call of {label}",))
            self._traces[key] = self._walk(label, fi, idx, label, (), [])
        return self._traces[key]

    def _walk(self, symbol: str, fi: int, idx: int, label: str, aconds: tuple[str, ...],
              notes: list[str]) -> Trace:  # fmt: skip
        start_asm = self.files[fi]
        steps: list[CacheOp] = []
        undecoded: list[str] = []
        via: list[str] = []
        notes = list(notes)
        entry_owner = start_asm.owner[idx] if idx < len(start_asm.owner) else label
        visited: set[tuple[int, int]] = set()
        # A worklist ordered by position (the entry's file first): both arms of a conditional are
        # visited before the code after it, so steps come out in program order; loops appear once.
        heap: list[tuple[int, int, int]] = [(0, fi, idx)]
        optable = self.optable
        start_fi = fi

        class _Push:
            @staticmethod
            def append(pos: tuple[int, int]) -> None:
                heapq.heappush(heap, (0 if pos[0] == start_fi else 1, pos[0], pos[1]))

        stack = _Push()
        fallthroughs: list[str] = []

        def sequential(f: int, i: int) -> None:
            """Continue at the next item; crossing into another function's code is a fall-through."""
            owners = self.files[f].owner
            if i + 1 < len(owners) and owners[i + 1] != owners[i] and owners[i + 1]:
                text = f"{owners[i] or '?'} falls through into {owners[i + 1]}"
                if text not in fallthroughs:
                    fallthroughs.append(text)
            stack.append((f, i + 1))

        def note(text: str) -> None:
            if text not in notes:
                notes.append(text)

        while heap:
            _, pf, pi = heapq.heappop(heap)
            pos = (pf, pi)
            if pos in visited:
                continue
            visited.add(pos)
            f, i = pos
            asm = self.files[f]
            if i >= len(asm.items):
                note(f"flow runs off the end of {asm.rel}")
                continue
            item = asm.items[i]
            owner = asm.owner[i]
            if owner and owner != entry_owner and owner != label and owner not in via:
                via.append(owner)
            kind = item.kind
            if kind in ("label", "func", "endfunc", "global", "alias"):
                sequential(f, i)
                continue
            if kind == "data":
                note(f"flow runs into data ({item.name}) at {item.file}:{item.line}")
                continue
            if kind == "section":
                note(f"flow reaches a section change ({item.name}) at {item.file}:{item.line}")
                continue
            if kind in ("if", "else"):
                for s in reversed(block_successors(asm, i, item)):
                    stack.append((f, s))
                continue
            if kind == "endif":
                sequential(f, i)
                continue
            # an instruction
            mnem, ops_text = item.name, item.arg
            self.decode(item, asm, i, owner, steps, undecoded, optable)
            flow = control_flow(mnem, ops_text)
            if flow is None:
                if not MNEMONIC_RE.match(mnem) and mnem not in optable.quiet_macros:
                    note(f"unrecognised instruction or macro '{mnem}' at {item.file}:{item.line}")
                sequential(f, i)
                continue
            what, target, conditional = flow
            if what == "return":
                if conditional:
                    sequential(f, i)
                continue
            if what == "indirect":
                note(f"indirect branch '{mnem} {ops_text}' at {item.file}:{item.line} not followed")
                if conditional:
                    sequential(f, i)
                continue
            if what == "call":
                dest = self.target(f, i, target)
                if dest is None:
                    note(f"call to {target} at {item.file}:{item.line}: not defined in the assembly")
                    steps.append(CacheOp("unknown", f"{mnem} {ops_text}", item.file, item.line, owner,
                                         item.conds, conditional, item.macros))  # fmt: skip
                    undecoded.append(f"{item.file}:{item.line}: {mnem} {ops_text} (callee not found)")
                else:
                    callee = self.trace_at(dest[0], dest[1], target)
                    steps.extend(callee.steps)
                    undecoded.extend(u for u in callee.undecoded if u not in undecoded)
                    for v in (callee.resolved or target, *callee.via):
                        if v and v not in via:
                            via.append(v)
                    for n in callee.notes:
                        note(n)
                sequential(f, i)
                continue
            # branch
            dest = self.target(f, i, target)
            if conditional:
                sequential(f, i)
            if dest is None:
                note(f"branch to {target} at {item.file}:{item.line}: target not found")
            else:
                stack.append(dest)
        return Trace(symbol, label, start_asm.items[idx].file, start_asm.items[idx].line, tuple(steps),
                     tuple(undecoded), tuple(via), tuple(notes), aconds, tuple(fallthroughs))  # fmt: skip

    # -- what each operation covers ------------------------------------------------------------------
    def coverage(self, symbol: str) -> Coverage:
        """What the maintenance instructions ``symbol`` runs cover, from the flow of its arguments
        (see source/asmregs.py): an extent for every decoded step of ``trace(symbol)``."""
        found = self.resolve(symbol)
        if found is None:
            return Coverage({})
        fi, idx = found[0], found[1]
        if (fi, idx) not in self._coverages:  # symbols of several tables alias one label
            self._coverages[(fi, idx)] = coverage_at(self, symbol, fi, idx)
        return self._coverages[(fi, idx)]

    def decode(self, item: Item, asm: AsmFile, i: int, owner: str, steps: list[CacheOp],
               undecoded: list[str], optable: CacheOpTable) -> None:  # fmt: skip
        mnem = item.name
        conditional = has_condition(mnem)
        raw = f"{mnem} {item.arg}".strip()

        def add(ops: tuple[str, ...], why: str = "") -> None:
            for op in ops:
                steps.append(CacheOp(op, raw, item.file, item.line, owner, item.conds, conditional, item.macros))
                if op == "unknown":
                    undecoded.append(f"{item.file}:{item.line}: {raw}{why}")

        if mnem.startswith("mcrr"):
            parsed = parse_mcrr(item.arg)
            ops = optable.mcrr.get(parsed[0]) if parsed else None
            add(ops if ops is not None else ("unknown",))
        elif mnem == ".inst" or mnem.startswith(".inst."):
            add(("unknown",))
        elif mnem.startswith("mcr"):
            key = parse_encoding(item.arg)
            ops = optable.mcr.get(key) if key else None
            add(ops if ops is not None else ("unknown",))
        elif mnem.startswith("mrc") and not mnem.startswith("mrrc"):
            key = parse_encoding(item.arg)
            ops = optable.mrc.get(key) if key else None
            if ops is not None:
                add(ops)
            elif key is None or key[2] == 7:  # a read of the cache-operation space we cannot name
                add(("unknown",))
        elif mnem.split(".")[0] in optable.mnemonic:
            add(optable.mnemonic[mnem.split(".")[0]])
        elif mnem.startswith("ldr") and "=" in item.arg:
            sym = item.arg.split("=", 1)[1].strip()
            if sym in optable.displacement:
                add(optable.displacement[sym])
        elif mnem.startswith("str"):
            # v7-M: str Rt, [Rx] after movw Rx, #:lower16:BASEADDR_V7M_SCB + REG
            sm = re.match(r"^\s*\w+\s*,\s*\[\s*(\w+)\s*\]\s*$", item.arg)
            if not sm:
                return
            reg = sm.group(1)
            for back in range(i - 1, max(i - 4, -1), -1):
                prev = asm.items[back]
                if prev.kind != "insn":
                    break
                pm = re.match(rf"^\s*{reg}\s*,\s*#:lower16:\s*BASEADDR_V7M_SCB\s*\+\s*(\w+)", prev.arg)
                if prev.name.startswith("movw") and pm:
                    ops = optable.mmio.get(pm.group(1))
                    add(ops if ops is not None else ("unknown",), f" ({pm.group(1)})")
                    return



_C_STRUCT_RE = re.compile(r"struct\s+cpu_cache_fns\s*\{(?P<body>.*?)\}", re.S)
_C_FNPTR_RE = re.compile(r"\(\s*\*\s*(\w+)\s*\)")


def member_order_from_header(text: str) -> tuple[str, ...] | None:
    """The member order of ``struct cpu_cache_fns`` from asm/cacheflush.h (what ``.long`` lists follow)."""
    m = _C_STRUCT_RE.search(text)
    if not m:
        return None
    names = tuple(_C_FNPTR_RE.findall(m.group("body")))
    return names or None


def read_mm(root: Path, mm_dir: Path, optable: CacheOpTable | None = None) -> AsmTree:
    """Read every ``*.S`` (and the C ``cpu_cache_fns`` tables) of ``mm_dir``; paths relative to ``root``."""
    tree = AsmTree(root=root, optable=optable or load_cache_ops())
    header = root / "arch/arm/include/asm/cacheflush.h"
    if header.is_file():
        text = read_text(header, root)
        if isinstance(text, str):
            order = member_order_from_header(text)
            if order:
                tree.member_order = order
    for path in sorted(mm_dir.glob("*.S")):
        tree.read_file(path)
    for path in sorted(mm_dir.glob("*.c")):
        text = read_text(path, root)
        if isinstance(text, tuple):
            tree.skipped.append((tree.rel(path), text[1]))
            continue
        if "cpu_cache_fns" in text:
            tree.tables.extend(read_c_cache_tables(text, tree.rel(path)))
    tree.finish()
    return tree


# ---------------------------------------------------------------------------------------------------
# Summaries


@dataclass(frozen=True)
class Summary:
    """The effect of a list of steps: what CacheFunction records besides the steps themselves."""

    d: str
    i: str
    scope: str
    d_scope: str
    i_scope: str
    ops: tuple[str, ...]


def squash(ops: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Collapse immediate repetitions (``x x x`` -> ``x``, ``x y x y`` -> ``x y``): unrolled loops."""
    seq = list(ops)
    changed = True
    while changed:
        changed = False
        for period in range(1, len(seq) // 2 + 1):
            i = 0
            while i + 2 * period <= len(seq):
                if seq[i : i + period] == seq[i + period : i + 2 * period]:
                    del seq[i + period : i + 2 * period]
                    changed = True
                else:
                    i += 1
    return tuple(seq)


def _extent(rest: str, extent: str) -> str:
    """The scope one step gives its side: whole-cache forms "whole"; a ranged form its `extent`
    ("page" stays "page"; "range", "fixed", "line" and not analysed read as "range")."""
    if rest.startswith("all"):
        return "whole"
    return "page" if extent == "page" else "range"


def summarize(steps: tuple[CacheOp, ...] | list[CacheOp]) -> Summary:
    """D effect (union of every path), I effect, and scopes of a function's decoded steps.

    A side's scope is "range" when some ranged operation of it covers the range given, else "page"
    when one covers only the page from the start, else "whole" or "none"; the function's scope is
    "page" when either side's is (it does not cover a range longer than a page), else as before."""
    d_effects: set[str] = set()
    d_scopes: set[str] = set()
    i_scopes: set[str] = set()
    for step in steps:
        op = step.op
        if "-d-" in op:
            effect, rest = op.split("-d-", 1)
            d_effects.update(effect.split("+"))
            d_scopes.add(_extent(rest, step.extent))
        elif "-i-" in op:
            i_scopes.add(_extent(op.split("-i-", 1)[1], step.extent))
    if {"clean", "invalidate"} <= d_effects:
        d = "clean+invalidate"
    else:
        d = next(iter(d_effects), "none")

    def scope_of(scopes: set[str]) -> str:
        for scope in ("range", "page", "whole"):
            if scope in scopes:
                return scope
        return "none"

    d_scope, i_scope = scope_of(d_scopes), scope_of(i_scopes)
    scope = "page" if "page" in (d_scope, i_scope) else scope_of(d_scopes | i_scopes)
    return Summary(d, "invalidate" if i_scopes else "none", scope, d_scope, i_scope,
                   squash([s.op for s in steps]))  # fmt: skip
