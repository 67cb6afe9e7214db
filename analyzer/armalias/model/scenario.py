"""Scenarios: the plain-data programs the alias analysis hands to the cache model, and their replay.

A `Scenario` is a tuple of steps:

    Map(alias, page)                      point a virtual alias at a physical page (set_fixmap, kmap ...)
    Unmap(alias)                          remove it (clear_fixmap: a local TLB flush, no cache maintenance)
    Write(alias, offset, size, value)     a store through the alias (value: the encoding, for the witness)
    Read(alias, offset, size)             a data load through the alias          \
    Fetch(alias, offset, size)            an instruction fetch through the alias  } consumers: checked
    ExternalRead(alias, offset, size)     a point-of-coherency consumer (MMU off,/ against the last write
                                          another bus master) of the page the alias maps
    Maintain(call, alias, offset, length, a cpu_cache_fns member (or a kernel wrapper of one, see
             next_aliases)                `KERNEL_CALLS`), expanded per implementation into its ops
    Op(op, alias, offset, length)         one vocabulary operation directly (inline assembly)

An alias maps one page: offsets and ranges stay within it (a `ScenarioError` otherwise), so a write
or a read that crosses into the next page is two steps on two aliases (e.g. "exec" and "exec1", as the
kernel's two-page Thumb-2 patch uses FIX_TEXT_POKE0 and FIX_TEXT_POKE1).  A `Maintain` step is one
call however long its range: `next_aliases` names the aliases of the pages that follow the alias's
page, in order, and a `length` beyond the end of the first page continues at offset 0 of the next
one (`Maintain("__cpuc_flush_dcache_area", "lowmem", 0, 8192, next_aliases=("lowmem1",))` flushes two
pages); a range running past the last page named is a `ScenarioError`.

How far each operation of the call reaches is the implementation's, as the audit read it from the
assembly (`CacheOp.extent`): a ranged operation covers [offset, offset + length) across the pages
named; one of extent "page" covers one page from the start whatever the length (Feroceon's
flush_kern_dcache_area on the range-operation CPUs: `add r1, r0, #PAGE_SZ - CACHE_DLINESIZE`), so
the rest of a longer range keeps its dirty lines; a whole-cache operation covers everything.  Bytes
on pages the scenario does not name are never observed, so a page-wide operation stops at the last
page named.

Every step has `only_on`: the cache kinds (`vivt`, `vipt-aliasing`, `vipt-nonaliasing`, `pipt`) on
which it runs, empty for all; `flush_kernel_vmap_range` carries its own (`vivt`, `vipt-aliasing`), as
its C body tests `cache_is_vivt() || cache_is_vipt_aliasing()`.

`replay(scenario, impl)` builds the machine for the implementation (`default_config`), compiles the
steps into the implementation's ops and explores them (`armalias.model.explore`); `replay_all` does it
for several implementations and `summarize` gives the CONTRACT.md `findings[].model` field.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

from armalias.cacheimpl import CacheFunction, CacheImpl, CacheOp
from armalias.model.cache import (
    CACHE_KINDS,
    DEFAULT_VA,
    LINE_OPS,
    NO_DATA_OPS,
    WHOLE_OPS,
    CacheGeometry,
    Machine,
    ModelConfig,
    ScenarioError,
    data_label,
)
from armalias.model.explore import DEFAULT_BOUND, ProgramStep, Verdict, explore

DEFAULT_EXECUTABLE = ("exec", "vectors", "user", "sram")

# Kernel entry points that are a cpu_cache_fns member on ARM, with the cache kinds they run on.
KERNEL_CALLS: dict[str, tuple[str, tuple[str, ...]]] = {
    "flush_icache_range": ("coherent_kern_range", ()),
    "__cpuc_coherent_kern_range": ("coherent_kern_range", ()),
    "__cpuc_coherent_user_range": ("coherent_user_range", ()),
    "__cpuc_flush_dcache_area": ("flush_kern_dcache_area", ()),
    "__cpuc_flush_icache_all": ("flush_icache_all", ()),
    "__cpuc_flush_kern_all": ("flush_kern_all", ()),
    "__cpuc_flush_user_all": ("flush_user_all", ()),
    "flush_kernel_vmap_range": ("flush_kern_dcache_area", ("vivt", "vipt-aliasing")),
    "invalidate_kernel_vmap_range": ("flush_kern_dcache_area", ("vivt", "vipt-aliasing")),
}


@dataclass(frozen=True)
class Map:
    alias: str
    page: str
    only_on: tuple[str, ...] = ()


@dataclass(frozen=True)
class Unmap:
    alias: str
    only_on: tuple[str, ...] = ()


@dataclass(frozen=True)
class Write:
    alias: str
    offset: int = 0
    size: int = 4
    value: int | None = None
    only_on: tuple[str, ...] = ()
    at: str = ""  # file:line of the code the step stands for, shown in the witness ("" none)


@dataclass(frozen=True)
class Read:
    alias: str
    offset: int = 0
    size: int = 4
    only_on: tuple[str, ...] = ()
    at: str = ""


@dataclass(frozen=True)
class Fetch:
    alias: str
    offset: int = 0
    size: int = 4
    only_on: tuple[str, ...] = ()
    at: str = ""


@dataclass(frozen=True)
class ExternalRead:
    alias: str
    offset: int = 0
    size: int = 4
    only_on: tuple[str, ...] = ()
    at: str = ""


@dataclass(frozen=True)
class Maintain:
    call: str
    alias: str | None = None
    offset: int = 0
    length: int = 0  # from alias+offset, continuing into next_aliases past the end of the page
    only_on: tuple[str, ...] = ()
    next_aliases: tuple[str, ...] = ()  # the aliases of the pages after alias's, in order
    at: str = ""


@dataclass(frozen=True)
class Op:
    op: str
    alias: str | None = None
    offset: int = 0
    length: int = 0
    only_on: tuple[str, ...] = ()
    at: str = ""


Step = Map | Unmap | Write | Read | Fetch | ExternalRead | Maintain | Op
_STEP_KINDS: dict[str, type] = {
    "map": Map, "unmap": Unmap, "write": Write, "read": Read, "fetch": Fetch,
    "external-read": ExternalRead, "maintain": Maintain, "op": Op,
}
_KIND_OF = {cls: kind for kind, cls in _STEP_KINDS.items()}


@dataclass(frozen=True)
class Scenario:
    name: str
    steps: tuple[Step, ...]
    va: tuple[tuple[str, int], ...] = ()  # virtual base overrides, (alias, address)
    executable: tuple[str, ...] = DEFAULT_EXECUTABLE  # aliases the environment may prefetch through

    def to_dict(self) -> dict:
        steps = []
        for step in self.steps:
            entry: dict = {"step": _KIND_OF[type(step)]}
            for name, value in vars(step).items():
                if value is None or value == ():
                    continue
                entry[name] = list(value) if isinstance(value, tuple) else value
            steps.append(entry)
        out: dict = {"name": self.name, "steps": steps}
        if self.va:
            out["va"] = dict(self.va)
        if self.executable != DEFAULT_EXECUTABLE:
            out["executable"] = list(self.executable)
        return out


def scenario_from_dict(data: Mapping) -> Scenario:
    """The inverse of `Scenario.to_dict` (also the fixture format, read from TOML or JSON)."""
    steps = []
    for number, entry in enumerate(data.get("steps", ()), 1):
        fields = dict(entry)
        kind = fields.pop("step", None)
        if kind not in _STEP_KINDS:
            raise ScenarioError(f"step {number}: unknown step kind {kind!r}")
        if "only_on" in fields:
            bad = set(fields["only_on"]) - set(CACHE_KINDS)
            if bad:
                raise ScenarioError(f"step {number}: unknown cache kind(s) {sorted(bad)}")
            fields["only_on"] = tuple(fields["only_on"])
        if "next_aliases" in fields:
            fields["next_aliases"] = tuple(fields["next_aliases"])
        try:
            steps.append(_STEP_KINDS[kind](**fields))
        except TypeError as error:
            raise ScenarioError(f"step {number} ({kind}): {error}") from None
    va = tuple(sorted((str(k), int(v)) for k, v in dict(data.get("va", {})).items()))
    executable = tuple(data.get("executable", DEFAULT_EXECUTABLE))
    return Scenario(str(data.get("name", "")), tuple(steps), va, executable)


def load_fixture(path: str | Path) -> tuple[Scenario, dict[str, str]]:
    """Read a scenario fixture (.toml or .json) and its `expect` table {implementation: verdict}."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    return scenario_from_dict(data), dict(data.get("expect", {}))


def impl_from_dict(data: Mapping) -> CacheImpl:
    """A CacheImpl from one `implementations[]` entry of `audit --format json` (CONTRACT.md), with the
    reader's extensions when present: `steps` above all, which decide the operations the model
    replays (implementation_ops), so an implementation read back from the audit cache replays
    exactly what the freshly decoded one does."""
    functions = {}
    for member, fn in dict(data.get("functions", {})).items():
        steps = tuple(CacheOp(op=st["op"], raw=st.get("raw", ""), file=st.get("file", ""), line=int(st.get("line", 0)),
                              function=st.get("function", ""), conditions=tuple(st.get("conditions", ())),
                              conditional=bool(st.get("conditional", False)), macros=tuple(st.get("macros", ())),
                              extent=st.get("extent", ""))
                      for st in fn.get("steps", ()))
        functions[member] = CacheFunction(
            member=member, symbol=fn.get("symbol", f"{data['name']}_{member}"), d=fn.get("d", "none"),
            i=fn.get("i", "none"), scope=fn.get("scope", "none"), ops=tuple(fn.get("ops", ())),
            file=fn.get("file", data.get("file", "")), line=int(fn.get("line", 0)),
            undecoded=tuple(fn.get("undecoded", ())), resolved=fn.get("resolved", ""),
            d_scope=fn.get("d_scope", "none"), i_scope=fn.get("i_scope", "none"), steps=steps,
            via=tuple(fn.get("via", ())), condition=fn.get("condition", ""), notes=tuple(fn.get("notes", ())))
    table = dict(data.get("table", {}))
    return CacheImpl(name=data["name"], file=data.get("file", ""), cache_type=data.get("cache_type", "unknown"),
                     write_through=bool(data.get("write_through", False)),
                     configs=tuple(data.get("configs", ())), functions=functions,
                     notes=tuple(data.get("notes", ())), table_file=table.get("file", ""),
                     table_line=int(table.get("line", 0)), table_condition=table.get("condition", ""),
                     unified=bool(data.get("unified", False)), mpu_only=bool(data.get("mpu_only", False)))


def _uses_pou(impl: CacheImpl) -> bool:
    return any(op.endswith("-pou") for fn in impl.functions.values() for op in fn.ops)


def default_config(impl: CacheImpl, vipt_aliasing: bool = False) -> ModelConfig:
    """The machine an implementation runs on, on a tiny cache (4 sets x 2 ways, 32-byte lines).

    * VIVT (ARMv4/v5), and `unknown` (the most aliasing choice): VIVT D and I, write-back unless
      `impl.write_through`, no write-allocate (ARM926 and most v5 L1s allocate on read misses only),
      no outer level (these implementations have no PoU operations).
    * VIPT: v7-style non-aliasing (a PIPT-like D and I) with write-allocate, unless `vipt_aliasing`
      (some ARMv6): VIPT-aliasing D and I with two colours, no write-allocate.
    * PIPT: PIPT D and I with write-allocate.
    * none (`nop_cache_fns`): no cache at all; kind `uncached`.
    An outer level between PoU and PoC is present when the implementation uses PoU operations.
    `impl.unified` gives one cache for instructions and data (the D geometry); `impl.mpu_only` changes
    nothing here (`replay` merges the aliases of a page first, and one alias per page behaves alike on
    any indexing).
    """
    if impl.cache_type == "none":
        return ModelConfig(d=CacheGeometry(indexing="PIPT"), i=CacheGeometry(indexing="PIPT"),
                           kind="uncached", organization="none")
    outer = _uses_pou(impl)
    organization = "unified" if impl.unified else "harvard"
    if impl.cache_type in ("VIVT", "unknown"):
        d = CacheGeometry(indexing="VIVT", write_back=not impl.write_through)
        return ModelConfig(d=d, i=CacheGeometry(indexing="VIVT"), outer=outer, kind="vivt",
                           organization=organization)
    if impl.cache_type == "VIPT" and vipt_aliasing:
        d = CacheGeometry(indexing="VIPT-aliasing", write_back=not impl.write_through)
        return ModelConfig(d=d, i=CacheGeometry(indexing="VIPT-aliasing"), outer=outer, kind="vipt-aliasing",
                           organization=organization)
    d = CacheGeometry(indexing="PIPT", write_back=not impl.write_through, write_allocate=True)
    kind = "vipt-nonaliasing" if impl.cache_type == "VIPT" else "pipt"
    return ModelConfig(d=d, i=CacheGeometry(indexing="PIPT"), outer=outer, kind=kind, organization=organization)


# -- compiling a scenario for one implementation ----------------------------------------------------


def _where(alias: str | None, offset: int, length: int) -> str:
    if alias is None:
        return ""
    return f"{alias}+{offset:#x}..+{length:#x}"


def _consumer(step: Read | Fetch | ExternalRead, verb: str) -> ProgramStep:
    label = f"{verb} {step.alias}+{step.offset:#x}"

    def apply(machine: Machine, trace: list[str] | None) -> bool:
        if isinstance(step, Fetch):
            got, source = machine.fetch(step.alias, step.offset, step.size, trace)
        elif isinstance(step, Read):
            got, source = machine.read(step.alias, step.offset, step.size, trace)
        else:
            got, source = machine.external_read(step.alias, step.offset, step.size)
        want = machine.expected(step.alias, step.offset, step.size)
        stale = got != want
        if trace is not None:
            outcome = (f"{data_label(got, machine.labels)}; last written "
                       f"{data_label(want, machine.labels)}: STALE" if stale
                       else f"{data_label(got, machine.labels)} (current)")
            trace.append(f"{label} -> {source}: {outcome}")
        return stale

    return ProgramStep(label, apply, at=step.at)


@dataclass(frozen=True)
class _Range:
    """Where a call's operations act: alias+offset, length bytes on, through the pages of
    next_aliases (see the module docstring)."""

    alias: str | None
    offset: int = 0
    length: int = 0
    next_aliases: tuple[str, ...] = ()

    def spans(self, length: int, page_size: int, clip: bool = False) -> list[tuple[str | None, int, int]]:
        """(alias, offset, length) per page for `length` bytes from the start.  Without next_aliases
        the one span is the range itself (the machine refuses one leaving the page); `clip` stops at
        the last page named instead of refusing."""
        if not self.next_aliases and not clip:
            return [(self.alias, self.offset, length)]
        names = (self.alias, *self.next_aliases)
        out: list[tuple[str | None, int, int]] = []
        position, remaining = self.offset, length
        for name in names:
            if remaining <= 0:
                break
            n = min(remaining, page_size - position)
            out.append((name, position, n))
            remaining -= n
            position = 0
        if remaining > 0 and not clip:
            raise ScenarioError(f"{self.alias}+{self.offset:#x} length {length:#x} runs past the page of "
                                f"{names[-1]}: name the next page's alias in next_aliases")
        return out or [(self.alias, self.offset, 0)]


def _ops_steps(label: str, ops: Iterable[str | tuple[str, str]], where: _Range,
               unknown: tuple[str, ...], header_notes: tuple[str, ...] = (), at: str = "") -> list[ProgramStep]:
    """One program step per operation that changes data (barriers ride along with the operation
    before them), so the environment can act between two operations of one call, e.g. prefetch
    between an I invalidate and a later D clean. All share `label` as their group, and the witness
    shows consecutive ones on one line. An operation is its name, or (name, extent) as the audit read
    it (`CacheOp.extent`)."""
    chunks: list[list[tuple[str, str]]] = []
    for entry in ops:
        op, extent = (entry, "") if isinstance(entry, str) else entry
        if chunks and op in NO_DATA_OPS:
            chunks[-1].append((op, extent))
        else:
            chunks.append([(op, extent)])
    if not chunks:
        chunks.append([])
    steps = []
    for number, chunk in enumerate(chunks):
        notes = header_notes if number == 0 else ()
        steps.append(ProgramStep(label, _op_runner(tuple(chunk), where, notes),
                                 unknown if number == 0 else (), group=label, at=at))
    return steps


def _op_runner(ops: tuple[tuple[str, str], ...], where: _Range, notes: tuple[str, ...]):
    def apply(machine: Machine, trace: list[str] | None) -> bool:
        parts: list[str] | None = [] if trace is not None else None
        page_size = machine.config.page_size
        for op, extent in ops:
            if where.alias is None or op in NO_DATA_OPS or op in WHOLE_OPS:
                machine.maintain(op, where.alias, where.offset, where.length, parts)
                continue
            if extent == "page":  # one page from the start, whatever the length (the audit's "page")
                if parts is not None:
                    parts.append(f"{op} covers one page from {where.alias}+{where.offset:#x}, "
                                 f"not the {where.length:#x} bytes asked")
                spans = where.spans(page_size, page_size, clip=True)
            else:
                spans = where.spans(where.length, page_size)
            for alias, offset, length in spans:
                machine.maintain(op, alias, offset, length, parts)
        if trace is not None:
            trace.append("; ".join([*notes, *(parts or [])]) or "no operations")
        return False
    return apply


def _op_unknown(op: str, alias: str | None) -> str | None:
    if op == "unknown":
        return "unknown op"
    if op in NO_DATA_OPS or op in WHOLE_OPS:
        return None
    if op in LINE_OPS:
        return None if alias is not None else f"{op} without an address range"
    return f"unrecognised op {op!r}"


def _maintain_steps(step: Maintain, impl: CacheImpl) -> list[ProgramStep]:
    member = KERNEL_CALLS.get(step.call, (step.call, ()))[0]
    where = _where(step.alias, step.offset, step.length)
    if step.next_aliases:
        where += " then " + ", ".join(step.next_aliases)
    fn = impl.functions.get(member)
    if fn is None:
        note = f"{member} not provided by {impl.name}: treated as doing nothing"
        return _ops_steps(f"{step.call}({where})", (), _Range(None), (f"{step.call}: {note}",), (note,), step.at)
    label = f"{step.call}({where})"
    if member != step.call:
        label += f" = {member}"
    label += f" [{fn.symbol}]"
    ops = function_steps(fn, impl)
    unknown = [f"{fn.symbol}: {u}" for u in (_op_unknown(op, step.alias) for op, _ in ops) if u]
    unknown += [f"{fn.symbol}: undecoded {text!r}" for text in fn.undecoded]
    notes = tuple(f"undecoded {text!r} treated as doing nothing" for text in fn.undecoded)
    return _ops_steps(label, ops, _Range(step.alias, step.offset, step.length, step.next_aliases),
                      tuple(unknown), notes, step.at)


def _write_through_condition(condition: str) -> bool | None:
    """True/False when a preprocessor condition selects the write-through / write-back build."""
    if "CPU_DCACHE_WRITETHROUGH" not in condition:
        return None
    text = condition.replace(" ", "")
    negated = text.startswith("!") or "ifndef" in text or "!defined" in text or "!CONFIG" in text
    return not negated


def function_ops(fn: CacheFunction, impl: CacheImpl) -> tuple[str, ...]:
    """The ops one implementation runs for a member, in program order.

    When the reader recorded the unsquashed `steps`, the branches of `#ifdef
    CONFIG_CPU_DCACHE_WRITETHROUGH` not matching `impl.write_through` are left out (arm926 and
    friends invalidate the whole D-cache in the write-through build and clean+invalidate it otherwise;
    running both would discard dirty data that the real kernel writes back). Every other condition
    (ALT_SMP/ALT_UP, errata, condition codes such as the `mcrne` under VM_EXEC) is taken as true:
    the alternatives the kernel picks between do the same to the data, or only add barriers.
    Without `steps`, `ops` is used as it is.
    """
    return tuple(op for op, _ in function_steps(fn, impl))


def function_steps(fn: CacheFunction, impl: CacheImpl) -> tuple[tuple[str, str], ...]:
    """`function_ops` with each operation's extent: what the model applies, and how far.  From
    `steps` when the reader recorded them (`CacheOp.extent`); without them (a hand-built table,
    `audit --format json` reduced to the CONTRACT.md fields), a ranged operation is "page" when its
    side's scope is (`d_scope`/`i_scope`, or `scope` when those are not given)."""
    if not fn.steps:
        def extent(op: str) -> str:
            side = fn.d_scope if "-d-" in op else fn.i_scope if "-i-" in op else ""
            return "page" if (side if side not in ("", "none") else fn.scope) == "page" and op in LINE_OPS else ""
        return tuple((_level(fn, op), extent(op)) for op in fn.ops)
    kept = []
    for step in fn.steps:
        selects = [s for s in map(_write_through_condition, step.conditions) if s is not None]
        if all(s == impl.write_through for s in selects):
            kept.append((_level(fn, step.op), step.extent))
    return tuple(kept)


# Members whose whole-cache loops stop at the point of unification (cacheflush.h: flush_kern_louis,
# "the levels of cache up to the Level of Unification Inner Shareable"): the same set/way instructions
# as flush_kern_all, over fewer levels, so an outer level keeps what they write back.
POU_MEMBERS = frozenset({"flush_kern_louis"})


def _level(fn: CacheFunction, op: str) -> str:
    if fn.member in POU_MEMBERS and op in ("clean-d-all", "clean+invalidate-d-all"):
        return op + "-pou"
    return op


def _runs_on(step: Step, kind: str) -> bool:
    only_on = step.only_on
    if isinstance(step, Maintain):
        only_on = only_on or KERNEL_CALLS.get(step.call, ("", ()))[1]
    return not only_on or kind in only_on


def compile_scenario(scenario: Scenario, impl: CacheImpl, config: ModelConfig
                     ) -> tuple[list[ProgramStep], Machine, set[tuple[str, int]], set[str]]:
    """The program steps for one implementation, a fresh machine, the (page, line offset) pairs the
    scenario touches and the aliases the environment may prefetch through."""
    pages: dict[str, int] = {}
    for step in scenario.steps:
        if isinstance(step, Map):
            pages.setdefault(step.page, len(pages))
    va = dict(DEFAULT_VA)
    va.update(dict(scenario.va))
    named = {a for s in scenario.steps if (a := getattr(s, "alias", None)) is not None}
    named.update(a for s in scenario.steps if isinstance(s, Maintain) for a in s.next_aliases)
    aliases = sorted(named - set(va))
    for n, alias in enumerate(aliases):
        va[alias] = 0x40000000 + n * config.page_size
    labels: dict[int, str] = {}
    steps: list[ProgramStep] = []
    interest: set[tuple[str, int]] = set()
    executable = set(scenario.executable)
    mapping: dict[str, str] = {}
    line = config.d.line_size
    for step in scenario.steps:
        if not _runs_on(step, config.kind):
            what = getattr(step, "call", None) or _KIND_OF[type(step)]
            note = f"skipped {what}: runs only on {', '.join(step.only_on or KERNEL_CALLS[step.call][1])}" \
                   f" (this cache is {config.kind})"
            steps.extend(_ops_steps(note, (), _Range(None), ()))
            continue
        alias = getattr(step, "alias", None)
        if alias is not None and alias in mapping and isinstance(step, (Write, Read, Fetch, ExternalRead)):
            # the lines the program accesses (the environment reads and prefetches there); a
            # maintained range adds none: a line nothing writes or reads holds the old data whatever
            # the environment does there
            first = step.offset - step.offset % line
            interest.update((mapping[alias], o) for o in range(first, step.offset + max(step.size, 1), line))
        if isinstance(step, Map):
            mapping[step.alias] = step.page
            steps.append(ProgramStep(f"map {step.alias} -> page {step.page}",
                                     _mapper(step.alias, step.page)))
        elif isinstance(step, Unmap):
            mapping.pop(step.alias, None)
            steps.append(ProgramStep(f"unmap {step.alias}", _mapper(step.alias, None)))
        elif isinstance(step, Write):
            version = len(labels) + 1
            labels[version] = (f"{step.value:#0{2 + 2 * step.size}x}" if step.value is not None
                               else f"write#{version}")
            steps.append(ProgramStep(f"write {step.alias}+{step.offset:#x}", _writer(step, version), at=step.at))
        elif isinstance(step, Read):
            steps.append(_consumer(step, "read"))
        elif isinstance(step, Fetch):
            executable.add(step.alias)
            steps.append(_consumer(step, "fetch"))
        elif isinstance(step, ExternalRead):
            steps.append(_consumer(step, "external read (PoC)"))
        elif isinstance(step, Maintain):
            steps.extend(_maintain_steps(step, impl))
        else:
            unknown = _op_unknown(step.op, step.alias)
            steps.extend(_ops_steps(_KIND_OF[Op], (step.op,), _Range(step.alias, step.offset, step.length),
                                    (unknown,) if unknown else (), at=step.at))
    machine = Machine(config, va, pages, labels)
    return steps, machine, interest, executable


def _mapper(alias: str, page: str | None):
    def apply(machine: Machine, trace: list[str] | None) -> bool:
        if page is None:
            machine.unmap(alias)
            if trace is not None:
                trace.append(f"unmap {alias} (TLB entry gone; its cache lines stay)")
        else:
            machine.map(alias, page)
            if trace is not None:
                trace.append(f"map {alias} -> page {page}")
        return False
    return apply


def _writer(step: Write, version: int):
    def apply(machine: Machine, trace: list[str] | None) -> bool:
        machine.write(step.alias, step.offset, step.size, version, trace)
        return False
    return apply


# -- replay -------------------------------------------------------------------------------------------


def aliases_sharing_a_page(scenario: Scenario) -> dict[str, tuple[str, ...]]:
    """{page: aliases} for every physical page the scenario maps under two or more virtual aliases."""
    by_page: dict[str, list[str]] = {}
    for step in scenario.steps:
        if isinstance(step, Map) and step.alias not in by_page.setdefault(step.page, []):
            by_page[step.page].append(step.alias)
    return {page: tuple(aliases) for page, aliases in by_page.items() if len(aliases) > 1}


def without_mmu(scenario: Scenario) -> Scenario:
    """The scenario as a CPU without an MMU runs it: an address names one byte of memory, so every
    alias of a page is that page's one address, and unmapping changes nothing.

    Each page gets one alias name (the first alias mapped onto it; `alias@page` if that name already
    stands for another page); an access through an alias goes to the page that alias last mapped;
    Map steps after a page's first and every Unmap step are dropped. A page is executable when any of
    its aliases was.
    """
    canonical: dict[str, str] = {}  # page -> its one alias name
    current: dict[str, str] = {}  # alias -> the page it last mapped
    steps: list[Step] = []
    for step in scenario.steps:
        if isinstance(step, Unmap):
            continue
        if isinstance(step, Map):
            current[step.alias] = step.page
            if step.page in canonical:
                continue
            name = step.alias if step.alias not in canonical.values() else f"{step.alias}@{step.page}"
            canonical[step.page] = name
            steps.append(Map(name, step.page, step.only_on))
            continue
        alias = getattr(step, "alias", None)
        if alias is not None and alias in current:
            step = replace(step, alias=canonical[current[alias]])
        if isinstance(step, Maintain) and step.next_aliases:
            step = replace(step, next_aliases=tuple(canonical[current[a]] if a in current else a
                                                    for a in step.next_aliases))
        steps.append(step)
    executable = set(scenario.executable)
    for alias, page in current.items():
        if alias in scenario.executable:
            executable.add(canonical[page])
    va = tuple((a, v) for a, v in scenario.va if a in canonical.values())
    return Scenario(scenario.name, tuple(steps), va, tuple(sorted(executable)))


def as_run_on(scenario: Scenario, impl: CacheImpl) -> tuple[Scenario, tuple[str, ...]]:
    """The scenario an implementation really runs, with notes: on an MPU-only implementation the
    aliases of one page merge into one address (`without_mmu`), so a hazard that needed two virtual
    aliases is gone, while one that a single address has too remains."""
    if not impl.mpu_only:
        return scenario, ()
    merged = without_mmu(scenario)
    shared = aliases_sharing_a_page(scenario)
    if not shared:
        return merged, ()
    cpus = ", ".join(impl.configs) or impl.name
    pages = "; ".join(f"{' and '.join(aliases)} of page {page}" for page, aliases in sorted(shared.items()))
    return merged, (f"no MMU ({cpus}: MPU only): the virtual aliases {pages} cannot exist apart; "
                    "replayed as one physical address",)


def _caveats(impl: CacheImpl, config: ModelConfig) -> tuple[str, ...]:
    notes = []
    if impl.cache_type == "unknown":
        notes.append("cache type unknown: modelled as VIVT")
    if config.organization == "unified":
        notes.append("unified I/D cache: fetches see the data lines")
    elif config.organization == "none":
        notes.append("no cache: every access reaches memory")
    return tuple(notes)


def replay(scenario: Scenario, impl: CacheImpl, geometry: ModelConfig | None = None,
           bound: int = DEFAULT_BOUND) -> Verdict:
    """Explore the scenario on one implementation; `geometry` overrides `default_config(impl)`.
    On an MPU-only implementation the aliases of a page are one address (`as_run_on`)."""
    scenario, merged = as_run_on(scenario, impl)
    config = geometry or default_config(impl)
    steps, machine, interest, executable = compile_scenario(scenario, impl, config)
    verdict = explore(steps, machine, interest, executable, bound)
    caveats = merged + _caveats(impl, config)
    if caveats:
        verdict = Verdict(verdict.verdict, verdict.witness, verdict.bound, verdict.unknown_ops,
                          verdict.notes + caveats, verdict.states, verdict.env_actions)
    return verdict


def replay_all(scenario: Scenario, impls: Iterable[CacheImpl], bound: int = DEFAULT_BOUND,
               geometry: Callable[[CacheImpl], ModelConfig] | None = None) -> dict[str, Verdict]:
    """`replay` on every implementation, keyed (and ordered) by implementation name; `geometry`
    picks each implementation's machine (default `default_config`; e.g. `lambda impl:
    default_config(impl, vipt_aliasing=True)` for ARMv6 aliasing caches)."""
    by_name = {impl.name: impl for impl in impls}
    pick = geometry or default_config
    return {name: replay(scenario, by_name[name], pick(by_name[name]), bound) for name in sorted(by_name)}


ALIASING = "/aliasing"  # the suffix of a verdict on an implementation's aliasing VIPT machine


@lru_cache(maxsize=1)
def aliasing_configs() -> frozenset[str]:
    """The CPU configs that can run with an aliasing VIPT cache (rules/cache-kinds.toml)."""
    from armalias.rules import rules_dir

    with open(rules_dir() / "cache-kinds.toml", "rb") as fh:
        return frozenset(tomllib.load(fh).get("vipt_aliasing", {}).get("configs", ()))


def machines(impl: CacheImpl) -> list[tuple[str, ModelConfig]]:
    """The machines an implementation runs on, named as its verdicts are: its default one, and for a
    VIPT implementation of processors that can alias (ARMv6) the aliasing VIPT one as well."""
    out = [(impl.name, default_config(impl))]
    if impl.cache_type == "VIPT" and not aliasing_configs().isdisjoint(impl.configs):
        out.append((impl.name + ALIASING, default_config(impl, vipt_aliasing=True)))
    return out


def replay_shared(scenario: Scenario, impls: Iterable[CacheImpl], bound: int = DEFAULT_BOUND) -> dict[str, Verdict]:
    """`replay_all` on every machine of each implementation (`machines`), where those that run the
    scenario alike share one replay: the same machine and the same operations for every member the
    scenario calls (arm920, arm922 and arm926, say).  Each group is replayed on its first
    implementation in name order, so the first implementation that confirms (whose witness
    `summarize` shows) is always replayed itself."""
    members = sorted({KERNEL_CALLS.get(s.call, (s.call, ()))[0] for s in scenario.steps if isinstance(s, Maintain)})
    done: dict[tuple, Verdict] = {}
    out: dict[str, Verdict] = {}
    for impl in sorted(impls, key=lambda i: i.name):
        for name, config in machines(impl):
            key = (config, impl.mpu_only, impl.cache_type,
                   tuple((m, function_steps(impl.functions[m], impl), impl.functions[m].undecoded)
                         if m in impl.functions else (m,) for m in members))
            if key not in done:
                done[key] = replay(scenario, impl, config, bound)
            out[name] = done[key]
    return out


def overall(verdicts: Mapping[str, Verdict]) -> str:
    """confirmed on any implementation -> confirmed; none -> not-run; else refuted."""
    if not verdicts:
        return "not-run"
    if any(v.verdict == "confirmed" for v in verdicts.values()):
        return "confirmed"
    return "refuted"


@dataclass(frozen=True)
class ModelSummary:
    """The CONTRACT.md `findings[].model` field."""

    verdict: str
    implementations: tuple[tuple[str, str], ...]
    witness: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"verdict": self.verdict, "implementations": dict(self.implementations),
                "witness": list(self.witness)}


def summarize(verdicts: Mapping[str, Verdict]) -> ModelSummary:
    """Overall verdict, per-implementation verdicts, and the witness of the first confirmed
    implementation in name order."""
    names = sorted(verdicts)
    witness: tuple[str, ...] = ()
    for name in names:
        if verdicts[name].verdict == "confirmed":
            witness = (f"on {name}:",) + verdicts[name].witness
            break
    return ModelSummary(overall(verdicts), tuple((n, verdicts[n].verdict) for n in names), witness)
