"""The cache-implementation audit: what every ``cpu_cache_fns`` of ``arch/arm/mm`` does.

``audit_tree`` reads the assembly (armalias.source.asmtree), Kconfig and Makefile
(armalias.source.kconfig) of a kernel tree and returns one CacheImpl per ``struct cpu_cache_fns``
instance, with the decoded operations of each member, the CPUs that use it and their cache type.
It never writes into the tree. ``to_json`` gives the ``audit --format json`` document (CONTRACT.md).

Each member's contract (rules/AA006-contract.toml: the promise of arch/arm/include/asm/cacheflush.h
as a small scenario) is replayed on the cache model for every implementation; where the model finds
stale data the result holds a ``Deviation`` (rule AA006) with the model's witness.  ``with_callers``
adds the C call sites, from a scan of the tree, of the kernel functions that reach the member.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from armalias import __version__
from armalias.cacheimpl import CACHE_MEMBERS, CacheFunction, CacheImpl
from armalias.errors import InputError
from armalias.model.cache import NO_DATA_OPS
from armalias.source.asmtree import AsmTree, CacheTable, TableEntry, read_mm, summarize
from armalias.source.kconfig import MmBuild, read_mm_build

WRITETHROUGH_OPTION = "CPU_DCACHE_WRITETHROUGH"
# What r1 holds for each ranged member (arch/arm/include/asm/cacheflush.h, struct cpu_cache_fns).
_EXTENT_ARGUMENT = {
    "flush_user_range": "end", "coherent_kern_range": "end", "coherent_user_range": "end",
    "dma_flush_range": "end", "flush_kern_dcache_area": "size", "dma_map_area": "size",
    "dma_unmap_area": "size",
}


@dataclass(frozen=True)
class Undecoded:
    """A maintenance instruction reached from a table member that the decoding table does not name."""

    implementation: str
    member: str
    file: str
    line: int
    text: str


@dataclass(frozen=True)
class Caller:
    """A C call site of a kernel function that reaches a cpu_cache_fns member."""

    file: str
    line: int
    function: str
    callee: str = ""  # what it calls (__cpuc_flush_dcache_area, flush_kernel_vmap_range, ...)


@dataclass(frozen=True)
class Deviation:
    """One way an implementation's member does less than the member's contract (rule AA006):
    the model found stale data after the contract's scenario (rules/AA006-contract.toml)."""

    implementation: str
    member: str
    rule: str
    message: str
    witness: tuple[str, ...]
    callers: tuple[Caller, ...] = ()
    symbol: str = ""
    file: str = ""  # where the member's code starts
    line: int = 0
    scope: str = ""  # the member's scope as decoded ("page": one page whatever the size)
    promise: str = ""  # the contract, in the kernel's words
    source: str = ""  # where that contract is written


@dataclass(frozen=True)
class AuditResult:
    root: Path
    implementations: tuple[CacheImpl, ...]
    undecoded: tuple[Undecoded, ...]
    skipped: tuple[tuple[str, str], ...]  # (relative file, reason)
    files: int = 0  # assembly files read
    fallthroughs: tuple[str, ...] = ()  # "a falls through into b" over every function of the tree
    notes: tuple[str, ...] = ()
    seconds: float = 0.0
    # (deviations, notes) of the contracts (rule AA006), computed when first asked for: the scan's
    # model reads the implementations only and never pays for the contracts' replays
    contracts: tuple[tuple[Deviation, ...], tuple[str, ...]] | None = field(default=None, compare=False)
    _defconfigs: dict[str, tuple[str, ...]] | None = field(default=None, compare=False, repr=False)

    def _contracts(self) -> tuple[tuple[Deviation, ...], tuple[str, ...]]:
        if self.contracts is None:
            deviations, notes = contract_deviations(self.implementations)
            object.__setattr__(self, "contracts", (tuple(deviations), tuple(notes)))
        return self.contracts  # type: ignore[return-value]

    @property
    def deviations(self) -> tuple[Deviation, ...]:
        """The contract deviations, sorted as the implementations are, then by member."""
        return self._contracts()[0]

    @property
    def contract_notes(self) -> tuple[str, ...]:
        return self._contracts()[1]

    @property
    def defconfigs(self) -> dict[str, tuple[str, ...]]:
        """arch/arm/configs/*_defconfig -> the implementations it builds (by the CPU configs its
        settings select through arch/arm's Kconfig files: armalias.model.builds)."""
        if self._defconfigs is None:
            from armalias.model.builds import Builds
            from armalias.source.files import read_regular
            from armalias.source.text import MAX_FILE_BYTES

            root = self.root.resolve()
            builds = Builds(lambda rel: read_regular(root / rel, MAX_FILE_BYTES, root)[0],
                            lambda rel: sorted(os.listdir(root / rel)))
            cpus = frozenset(c for i in self.implementations for c in i.configs)
            table = {name: tuple(i.name for i in self.implementations if set(i.configs) & on)
                     for name, on in builds.defconfigs(cpus).items()}
            object.__setattr__(self, "_defconfigs", table)
        return self._defconfigs  # type: ignore[return-value]


def _requires(condition: str, option: str) -> bool:
    """Whether a #if condition text holds only when CONFIG_<option> is set (a positive mention)."""
    for m in re.finditer(rf"\bCONFIG_{option}\b", condition):
        before = condition[: m.start()].rstrip()
        before = re.sub(r"defined\s*\(?\s*$", "", before).rstrip()
        if not before.endswith("!"):
            return True
    return False


def _choose(tree: AsmTree, entries: tuple[TableEntry, ...]) -> tuple[TableEntry, list[str]]:
    """The table entry to decode: the first whose symbol is defined in the assembly; notes on the rest."""
    notes: list[str] = []
    chosen = next((e for e in entries if tree.resolve(e.symbol) is not None), entries[0])
    for other in entries:
        if other is not chosen:
            where = f" when {other.condition}" if other.condition else ""
            notes.append(f"{other.symbol}{where} (alternative not decoded)")
    return chosen, notes


def _function(tree: AsmTree, table: CacheTable, member: str) -> tuple[CacheFunction, list[str]] | None:
    entries = table.members.get(member)
    if not entries:
        return None
    entry, notes = _choose(tree, entries)
    trace = tree.trace(entry.symbol)
    coverage = tree.coverage(entry.symbol)
    steps = tuple(replace(s, extent=coverage.extent_of(s)) for s in trace.steps)
    summary = summarize(steps)
    notes = list(trace.notes) + list(coverage.notes) + notes
    extents = {s.extent for s in steps}
    for where, page in coverage.discards:
        what = _EXTENT_ARGUMENT.get(member, "end or size")
        if page and "page" in extents:
            notes.append(f"the {what} given in r1 is replaced before use by a value from the start and the "
                         f"page size ({where}): one page from the start")
        elif "fixed" in extents:
            notes.append(f"the {what} given in r1 is replaced before use by a value from the start and "
                         f"constants ({where}): a fixed length from the start")
    if trace.alias_conditions:
        notes.append(f"{entry.symbol} is an alias of {trace.resolved} only when "
                     + " && ".join(trace.alias_conditions))  # fmt: skip
    ops, undecoded = summary.ops, trace.undecoded
    if not trace.resolved:  # defined outside the assembly (C, another directory): never dropped
        ops = ("unknown",)
        undecoded = (f"{entry.symbol}: not defined in the assembly of arch/arm/mm",)
    fn = CacheFunction(
        member=member, symbol=entry.symbol, d=summary.d, i=summary.i, scope=summary.scope, ops=ops,
        file=trace.file, line=trace.line, undecoded=tuple(undecoded), resolved=trace.resolved,
        d_scope=summary.d_scope, i_scope=summary.i_scope, steps=steps,
        via=trace.via, condition=entry.condition,
        notes=tuple(dict.fromkeys(list(trace.fallthroughs) + notes)),
    )  # fmt: skip
    return fn, notes


def _configs(tree: AsmTree, build: MmBuild, table: CacheTable, impl_file: str) -> tuple[tuple[str, ...], list[str], bool]:
    """CPU configs using the table, notes, and whether every user picks it only for a write-through D-cache."""
    notes: list[str] = []
    refs = [r for r in tree.references if r.name == table.name]
    configs: list[str] = []
    for ref in refs:
        for option in build.configs_of_file(ref.file):
            for cpu in build.cpus_for(option):
                if cpu not in configs:
                    configs.append(cpu)
        if ref.conditions:
            notes.append(f"used by {ref.file}:{ref.line} when {' && '.join(ref.conditions)}")
    write_through = bool(refs) and all(any(_requires(c, WRITETHROUGH_OPTION) for c in r.conditions) for r in refs)
    if not configs:
        # No processor table names it: fall back to what builds the table (or its code).
        options: list[str] = []
        m = re.fullmatch(r"(?:defined\s*\(\s*)?CONFIG_(\w+)\s*\)?", table.condition.strip())
        if m:
            options.append(m.group(1))
        options.extend(build.configs_of_file(table.file))
        if not options:
            options.extend(build.configs_of_file(impl_file))
        for option in options:
            for cpu in build.cpus_for(option):
                if cpu not in configs:
                    configs.append(cpu)
        if configs:
            notes.append("no processor table names it; configs from what builds the table")
    return tuple(sorted(configs)), notes, write_through


def _cache_type(build: MmBuild, configs: tuple[str, ...]) -> tuple[str, list[str]]:
    types = {cfg: build.kconfig.cache_type(cfg) for cfg in configs}
    found = {t for t in types.values() if t}
    notes = []
    if len(found) > 1:
        notes.append("CPUs of different cache types use it: " + ", ".join(f"{c}={t}" for c, t in sorted(types.items()) if t))
    untyped = sorted(c for c, t in types.items() if not t)
    if found and untyped:
        notes.append("select neither CPU_CACHE_VIVT nor CPU_CACHE_VIPT: " + ", ".join(untyped))
    if "VIVT" in found:  # the aliasing case is the one the analyzer must not miss
        return "VIVT", notes
    if "VIPT" in found:
        return "VIPT", notes
    return "unknown", notes


def _data_ops(fn: CacheFunction) -> list[str]:
    return [op for op in fn.ops if op not in NO_DATA_OPS]


def _what_the_code_says(functions: dict[str, CacheFunction]) -> tuple[str, bool, bool, list[str]]:
    """What the decoded table itself tells about the cache: ("none" or "", unified, write-through, notes).

    Only from fully decoded tables (every member resolved in the assembly, nothing undecoded), since an
    unknown instruction could be the clean or the I-side operation whose absence is the evidence:

    * no member touches a cache (nop_cache_fns): there is no cache to keep coherent;
    * coherent_kern_range does nothing while flush_kern_all maintains the cache: the code relies on
      instruction fetches seeing the data side, i.e. one unified cache (cache-v4.S, used by the
      ARM720T, whose proc file calls it an "IDC" cache);
    * some member invalidates the D-cache and none ever cleans it: dirty lines would be lost, so the
      D-cache is write-through (cache-v4.S, cache-v4wt.S).
    """
    if not functions or any(not fn.resolved or fn.undecoded for fn in functions.values()):
        return "", False, False, []
    if not any(_data_ops(fn) for fn in functions.values()):
        return "none", False, False, ["no member maintains a cache: modelled as no cache (every access reaches memory)"]
    notes = []
    coherent, flush_all = functions.get("coherent_kern_range"), functions.get("flush_kern_all")
    unified = False
    if coherent and flush_all and not _data_ops(coherent) and _data_ops(flush_all):
        unified = True
        notes.append(f"unified I/D cache: {coherent.symbol} does nothing while {flush_all.symbol} "
                     "maintains the cache, so instruction fetches must see the data side")
    ops = {op for fn in functions.values() for op in fn.ops}
    cleans = any(op.startswith(("clean-d", "clean+invalidate-d")) for op in ops)
    invalidates = any(op.startswith("invalidate-d") for op in ops)
    write_through = invalidates and not cleans
    if write_through:
        notes.append("write-through D-cache: members invalidate it but none ever cleans it")
    return "", unified, write_through, notes


def _mmu(build: MmBuild, configs: tuple[str, ...]) -> tuple[bool, list[str]]:
    """Whether every CPU using the table is built without an MMU (MPU only), with notes."""
    reasons = {cfg: build.kconfig.no_mmu_reason(cfg) for cfg in configs}
    without = [f"{cfg} ({why})" for cfg, why in sorted(reasons.items()) if why]
    if not without:
        return False, []
    if len(without) == len(configs):
        return True, ["no MMU on any CPU using it (MPU only, no virtual aliases): " + ", ".join(without)]
    return False, ["no MMU on " + ", ".join(without) + "; modelled as the CPUs with an MMU"]


def audit_tree(root: Path) -> AuditResult:
    """Audit ``root/arch/arm/mm``. Raises InputError when ``root`` is not a kernel tree."""
    started = time.perf_counter()
    root = Path(root)
    if not root.exists():
        raise InputError(f"{root}: no such file or directory")
    if not root.is_dir():
        raise InputError(f"{root}: not a directory (expected a kernel tree root)")
    mm_dir = root / "arch" / "arm" / "mm"
    if not mm_dir.is_dir():
        raise InputError(f"{root}: not an ARM kernel tree (no arch/arm/mm directory)")
    tree = read_mm(root, mm_dir)
    build = read_mm_build(mm_dir)
    skipped = list(tree.skipped) + [(f"arch/arm/mm/{name}", reason) for name, reason in build.problems]

    implementations: list[CacheImpl] = []
    undecoded: list[Undecoded] = []
    for table in tree.tables:
        functions: dict[str, CacheFunction] = {}
        impl_notes: list[str] = []
        for member in CACHE_MEMBERS:
            made = _function(tree, table, member)
            if made is None:
                impl_notes.append(f"{member}: not in the table")
                continue
            fn, _ = made
            functions[member] = fn
            for text in fn.undecoded:
                file, line = fn.file, fn.line
                m = re.match(r"^(.+?):(\d+): ", text)
                if m:
                    file, line = m.group(1), int(m.group(2))
                undecoded.append(Undecoded(table.name, member, file, line, text))
        anchor = functions.get("coherent_kern_range") or next((f for f in functions.values() if f.file), None)
        impl_file = anchor.file if anchor and anchor.file else table.file
        configs, config_notes, write_through = _configs(tree, build, table, impl_file)
        cache_type, type_notes = _cache_type(build, configs)
        no_cache, unified, code_wt, code_notes = _what_the_code_says(functions)
        mpu_only, mmu_notes = _mmu(build, configs)
        if no_cache:
            cache_type = no_cache
        elif mpu_only and cache_type == "unknown":
            cache_type = "PIPT"
            mmu_notes.append("cache type from Kconfig unknown; without an MMU every address is physical: PIPT")
        write_through = write_through or code_wt
        conditional_wt = any(
            _requires(c, WRITETHROUGH_OPTION) for fn in functions.values() for s in fn.steps for c in s.conditions
        )
        if conditional_wt and not write_through:
            impl_notes.append(f"write-through variant of its code under CONFIG_{WRITETHROUGH_OPTION}")
        implementations.append(
            CacheImpl(
                name=table.name, file=impl_file, cache_type=cache_type, write_through=write_through,
                configs=configs, functions=functions,
                notes=tuple(dict.fromkeys(config_notes + type_notes + code_notes + mmu_notes + impl_notes)),
                table_file=table.file, table_line=table.line, table_condition=table.condition,
                unified=unified, mpu_only=mpu_only,
            )  # fmt: skip
        )
    implementations.sort(key=lambda impl: (impl.file, impl.table_line, impl.name))
    undecoded.sort(key=lambda u: (u.file, u.line, u.implementation, u.member))

    fallthroughs: list[str] = []
    for fi, idx, name in tree.functions():
        for text in tree.trace_at(fi, idx, name).fallthroughs:
            if text.startswith(name + " ") and text not in fallthroughs:
                fallthroughs.append(text)
    notes = []
    if not tree.tables:
        notes.append("no struct cpu_cache_fns table found under arch/arm/mm")
    return AuditResult(
        root=root, implementations=tuple(implementations), undecoded=tuple(dict.fromkeys(undecoded)),
        skipped=tuple(sorted(skipped)), files=len(tree.files), fallthroughs=tuple(fallthroughs),
        notes=tuple(notes), seconds=time.perf_counter() - started,
    )  # fmt: skip


# -- the contracts (rule AA006) ------------------------------------------------------------------------


@dataclass(frozen=True)
class Contract:
    """What callers may rely on from one member, and the scenario that shows it (rules/AA006-contract.toml)."""

    member: str
    promise: str
    source: str
    scenario: Any  # armalias.model.Scenario


CONTRACT_RULE = "AA006"


def load_contracts() -> tuple[Contract, ...]:
    """The [[contract]] entries of the AA006 rule file, in file order."""
    import tomllib

    from armalias.model import scenario_from_dict
    from armalias.rules import load_rules, rules_dir

    spec = load_rules().get(CONTRACT_RULE)
    if spec is None:
        return ()
    with open(rules_dir() / spec.path, "rb") as fh:
        raw = tomllib.load(fh)
    return tuple(Contract(c["member"], c["promise"], c.get("source", ""), scenario_from_dict(c["scenario"]))
                 for c in raw.get("contract", ()))


def _reason(fn: CacheFunction, witness: tuple[str, ...]) -> str:
    """Why the member falls short: the decoded coverage when it says (a size discarded), else the
    stale consumer the model found."""
    for note in fn.notes:
        if "replaced before use" in note:
            return note
    stale = witness[-1] if witness else "the model finds stale data"
    return f"after it, {stale}"


def contract_deviations(impls: list[CacheImpl] | tuple[CacheImpl, ...]) -> tuple[list[Deviation], list[str]]:
    """Replay every contract on every implementation providing the member; a confirmed hazard is a
    deviation.  A hazard that involves an operation the reader could not decode is not reported as
    one (the unknown operation could be what keeps the contract): a note says so instead."""
    from armalias.model import default_config, replay
    from armalias.model.scenario import function_steps
    from armalias.rules import load_rules

    spec = load_rules().get(CONTRACT_RULE)
    contracts = load_contracts()
    out: list[Deviation] = []
    notes: list[str] = []
    # Implementations of one kind often run the very same operations for a member (arm920, arm926,
    # mohawk ...): one replay answers for all of them; a confirmed one is replayed again on its own
    # implementation for a witness in its names
    verdicts: dict[tuple, str] = {}
    for impl in impls:
        for number, contract in enumerate(contracts):
            fn = impl.functions.get(contract.member)
            if fn is None:
                continue
            key = (number, default_config(impl), impl.mpu_only, function_steps(fn, impl), bool(fn.undecoded))
            if key not in verdicts:
                verdicts[key] = replay(contract.scenario, impl).verdict
            if verdicts[key] != "confirmed":
                continue
            verdict = replay(contract.scenario, impl)
            if verdict.unknown_ops:
                notes.append(f"{impl.name}.{contract.member}: the {CONTRACT_RULE} contract ({contract.promise}) "
                             "is not shown to hold, but an operation the reader did not decode is involved")
                continue
            witness = (f"on {impl.name}:",) + verdict.witness
            message = spec.message.format(implementation=impl.name, member=contract.member, symbol=fn.symbol,
                                          promise=contract.promise, reason=_reason(fn, verdict.witness))
            out.append(Deviation(impl.name, contract.member, CONTRACT_RULE, message, witness, (), fn.symbol,
                                 fn.file, fn.line, fn.scope, contract.promise, contract.source))
    order = {impl.name: n for n, impl in enumerate(impls)}
    out.sort(key=lambda d: (order.get(d.implementation, 0), d.implementation, d.member))
    return out, notes


def entry_points(member: str) -> tuple[str, ...]:
    """The kernel functions and macros that call `member` (armalias.model.KERNEL_CALLS)."""
    from armalias.model import KERNEL_CALLS

    return tuple(sorted(name for name, (m, _) in KERNEL_CALLS.items() if m == member))


def with_callers(result: AuditResult, callsites: Any) -> AuditResult:
    """The result with each deviation's callers: the C call sites (`scan`'s call sites of the
    watched functions: CallSite with callee, caller, file, line, via) of a kernel function that
    reaches the member, directly or through the macros in `via`."""
    from dataclasses import replace as _replace

    deviations = []
    for d in result.deviations:
        names = set(entry_points(d.member))
        found = {}
        for site in callsites:
            if site.callee in names or names.intersection(getattr(site, "via", ())):
                key = (site.file, site.line, site.caller or "")
                found.setdefault(key, Caller(site.file, site.line, site.caller or "", site.callee))
        deviations.append(_replace(d, callers=tuple(found[k] for k in sorted(found))))
    return replace(result, contracts=(tuple(deviations), result.contract_notes))


def function_to_dict(fn: CacheFunction) -> dict[str, Any]:
    return {
        "d": fn.d, "i": fn.i, "scope": fn.scope, "ops": list(fn.ops),
        "symbol": fn.symbol, "resolved": fn.resolved, "file": fn.file, "line": fn.line,
        "d_scope": fn.d_scope, "i_scope": fn.i_scope,
        "condition": fn.condition, "via": list(fn.via), "undecoded": list(fn.undecoded),
        "steps": [
            {"op": s.op, "file": s.file, "line": s.line, "function": s.function, "raw": s.raw,
             "conditions": list(s.conditions), "conditional": s.conditional, "macros": list(s.macros),
             "extent": s.extent}
            for s in fn.steps
        ],
        "notes": list(fn.notes),
    }  # fmt: skip


def implementation_to_dict(impl: CacheImpl) -> dict[str, Any]:
    return {
        "name": impl.name, "file": impl.file, "cache_type": impl.cache_type,
        "write_through": impl.write_through, "unified": impl.unified, "mpu_only": impl.mpu_only,
        "configs": list(impl.configs),
        "table": {"file": impl.table_file, "line": impl.table_line, "condition": impl.table_condition},
        "functions": {member: function_to_dict(fn) for member, fn in impl.functions.items()},
        "notes": list(impl.notes),
    }  # fmt: skip


def to_json(result: AuditResult, root_arg: str) -> dict[str, Any]:
    """The ``audit --format json`` document (schema 1; the fields beyond CONTRACT.md are additions)."""
    return {
        "tool": "armalias", "version": __version__, "schema": 1, "root": root_arg,
        "stats": {"files": result.files, "implementations": len(result.implementations),
                  "undecoded": len(result.undecoded), "skipped": len(result.skipped),
                  "fallthroughs": len(result.fallthroughs), "deviations": len(result.deviations),
                  "seconds": round(result.seconds, 3)},
        "implementations": [implementation_to_dict(impl) for impl in result.implementations],
        "undecoded": [{"implementation": u.implementation, "member": u.member, "file": u.file,
                       "line": u.line, "text": u.text} for u in result.undecoded],
        "fallthroughs": list(result.fallthroughs),
        "deviations": [deviation_to_dict(d) for d in result.deviations],
        "defconfigs": {name: list(impls) for name, impls in result.defconfigs.items()},
        "skipped": [{"file": f, "reason": r} for f, r in result.skipped],
        "notes": list(result.notes) + list(result.contract_notes),
    }  # fmt: skip


def deviation_to_dict(d: Deviation) -> dict[str, Any]:
    """One `deviations[]` entry: the CONTRACT.md fields, then where the member is and what it promises."""
    return {
        "implementation": d.implementation, "member": d.member, "rule": d.rule, "message": d.message,
        "witness": list(d.witness),
        "callers": [{"file": c.file, "line": c.line, "function": c.function, "callee": c.callee} for c in d.callers],
        "symbol": d.symbol, "file": d.file, "line": d.line, "scope": d.scope,
        "promise": d.promise, "source": d.source,
    }  # fmt: skip
