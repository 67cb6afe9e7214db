"""Every finding becomes a scenario for the cache model and is replayed on every implementation.

The scenario is built from the finding's evidence only (its write, the maintenance considered with
the guards it runs under, the consumer its category implies), so the model checks what the rule
claims.  Implementations come from the scanned tree's arch/arm/mm (the audit reader), or, when the
tree has none, from the reference table rules/reference-impls.toml.  A finding refuted on every
implementation is demoted to a note, never dropped.
"""

from __future__ import annotations

import tomllib
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

from armalias.cacheimpl import CacheImpl
from armalias.findings import Finding, MaintenanceEvidence, ModelResult
from armalias.flow.guards import eval_guard
from armalias.model import ExternalRead, Fetch, Maintain, Map, Op, Read, Scenario, Unmap, Write, impl_from_dict
from armalias.model import summarize
from armalias.model.builds import Builds
from armalias.model.scenario import ALIASING, replay_shared
from armalias.rules import load_vocabulary, rules_dir
from armalias.source.files import read_regular
from armalias.source.text import MAX_FILE_BYTES

OP_MEMBER = "op:"  # rules/vocabulary.toml: the member of inline assembly's maintenance, one operation

# vocabulary cache kinds -> the model's cache kinds
_KINDS = {"vivt": ("vivt",), "vipt_aliasing": ("vipt-aliasing",), "pipt": ("vipt-nonaliasing", "pipt")}


@lru_cache(maxsize=1)
def reference_implementations() -> tuple[CacheImpl, ...]:
    with open(rules_dir() / "reference-impls.toml", "rb") as fh:
        raw = tomllib.load(fh)
    return tuple(impl_from_dict(d) for d in raw.get("implementations", ()))


def implementations_for(source, cache_dir: Path | None) -> tuple[CacheImpl, ...]:
    """The implementations of the tree a source reads: its directory, a git repository's work tree
    (cache implementations seldom change in one patch), or the reference table."""
    from armalias.source.tree import GitSource, OverlaySource

    while isinstance(source, OverlaySource):
        source = source.base
    if isinstance(source, GitSource):
        return tree_implementations(source.repo, cache_dir)
    local = source.local_path("")
    return tree_implementations(local, cache_dir) if local is not None else reference_implementations()


def _mm_key(mm: Path) -> str:
    """A digest of what the audit reads (arch/arm/mm and the armalias code and rules behind it)."""
    import hashlib

    from armalias.state import analysis_digest

    # all of armalias's code and rules/: the decoding crosses several modules (asm, kconfig, audit,
    # model), and a list of only some of them would let an entry outlive a change to another
    h = hashlib.sha256(analysis_digest().encode())
    for path in sorted(mm.iterdir()):
        if path.is_file():
            h.update(path.name.encode())
            try:  # what the audit reads: a FIFO, a device or a link out of the tree is not read there either
                h.update(read_regular(path, MAX_FILE_BYTES, mm)[0])
            except OSError as exc:
                h.update(f"unreadable: {exc.strerror}".encode())
    return h.hexdigest()


def tree_implementations(root: Path, cache_dir: Path | None) -> tuple[CacheImpl, ...]:
    """The tree's implementations, from the audit reader, cached by the content of arch/arm/mm in
    `audit/` beside the facts cache `cache_dir` (None: no cache, --no-cache)."""
    from armalias.cache import JsonEntries

    mm = root / "arch" / "arm" / "mm"
    if not mm.is_dir():
        return reference_implementations()
    entries = key = None
    if cache_dir is not None:
        try:
            key = _mm_key(mm)
        except OSError:
            pass
        else:
            entries = JsonEntries(cache_dir.parent / "audit")
            hit = entries.read((key,), lambda raw: tuple(impl_from_dict(d) for d in raw["implementations"]))
            if hit is not None:
                return _usable(hit)
    from armalias.audit import audit_tree, implementation_to_dict
    from armalias.state import in_tree

    try:
        result = audit_tree(root)
        impls = result.implementations
    except Exception:  # an unreadable mm/ falls back to the reference table; the note says so
        return reference_implementations()
    if entries is not None and not in_tree(entries.directory, root.resolve()):
        # the implementations only: the whole audit document would work out the defconfig table and
        # the contract deviations, which the model does not replay
        entries.write((key,), {"implementations": [implementation_to_dict(i) for i in impls]})
    return _usable(impls)


def _usable(impls: tuple[CacheImpl, ...]) -> tuple[CacheImpl, ...]:
    """The implementations the model can replay (they have coherent_kern_range), else the reference
    table: the same whether they were just decoded or read back from the audit cache."""
    usable = tuple(i for i in impls if "coherent_kern_range" in i.functions)
    return usable or reference_implementations()


def _only_on(m: MaintenanceEvidence | Finding) -> tuple[str, ...]:
    """The model cache kinds on which the maintenance runs, or a finding holds, from its guard (""
    everywhere)."""
    if not m.guard:
        return ()
    preds = load_vocabulary().cache_predicates
    kinds: list[str] = []
    for kind, values in preds.items():
        v = eval_guard(m.guard, values)
        if v is not False:
            kinds.extend(_KINDS.get(kind, ()))
    return tuple(kinds) if kinds else ("none",)


def _step(member: str, alias: str | None, length: int, only_on: tuple[str, ...], at: str = "") -> Maintain | Op:
    """A call of a cpu_cache_fns member, or one operation of inline assembly (member `op:<operation>`,
    the same on every implementation); `at`: the file:line of the call."""
    if member.startswith(OP_MEMBER):
        return Op(member[len(OP_MEMBER):], alias, 0, length, only_on, at)
    return Maintain(member, alias, 0, length, only_on, at=at)


def _maintain(m: MaintenanceEvidence, written: str, by_role: bool, file: str) -> Maintain | Op | None:
    """The model step of one maintenance call: on the alias written, where the bytes run, or the whole
    cache, as the evidence says it reaches (`covers`); a call that reaches neither is left out."""
    if not m.member:
        return None
    at = f"{m.file or file}:{m.line}"
    if m.covers == "all" or m.target == "(whole cache)":
        return _step(m.member, None, 0, _only_on(m), at)
    if m.covers:
        roles = m.covers.split("+")
        alias = written if "written" in roles else "exec"
        return _step(m.member, alias, 4, _only_on(m), at)
    if by_role:  # the evidence says what each call reaches: this one reaches neither
        return None
    kinds = set(m.alias.split("|"))  # evidence of a finding that names no write (AA003's)
    alias = written if written in kinds else ("exec" if "exec" in kinds else None)
    if alias is None:
        return None
    return _step(m.member, alias, 4, _only_on(m), at)


def scenario_for(f: Finding) -> Scenario | None:
    """The steps the finding's evidence states, and nothing else: the write, each maintenance call
    that reaches the written alias or the execution address (with the cache kinds its guard lets it
    run on), the written alias unmapped, and the consumer its category implies."""
    vocab = load_vocabulary()
    written = "exec"
    if f.write is not None:
        kinds = [k for k in f.write.alias.split("|") if k not in ("exec", "param", "unknown", "phys")]
        if kinds and kinds[0] not in vocab.runs_here:
            written = kinds[0]
        elif "param" in f.write.alias.split("|") and any(
                m.covers and "written" in m.covers.split("+") and "exec" not in m.covers.split("+")
                for m in f.maintenance):
            # a pointer the caller passed, which the analysis tells apart from where the bytes run
            # (maintenance reaches the one and not the other): a second mapping of the page
            written = "param"
    elif f.category == "stale-exec-alias":
        # no write named (a check's dropped D-cache invalidate): the bytes come through another mapping
        written = "param"
    steps: list = [Map("exec", "text")]
    if written != "exec":
        steps.append(Map(written, "text"))
    if f.category == "stale-exec-alias":
        steps.append(Read("exec", 0, 4, at="the rule's premise: the old bytes read as data there before"))
    # the write where the finding's evidence says it is; a finding that names none (a check's
    # dropped call) stands for a write somewhere before the function's maintenance
    steps.append(Write(written, 0, 4, at=f"{f.write.file or f.file}:{f.write.line}" if f.write is not None else ""))
    by_role = f.write is not None
    maint = [m for m in (_maintain(m, written, by_role, f.file) for m in f.maintenance) if m is not None]
    if f.category == "range":
        maint = [replace(m, length=0) for m in maint]  # covers none of the write
    steps.extend(maint)
    if written != "exec":
        steps.append(Unmap(written))
    consumer = {"stale-exec-alias": Read("exec", 0, 4, at="the rule's consumer: read back as data"),
                "poc": ExternalRead("exec", 0, 4, at="the rule's consumer: read with the MMU or caches off")}.get(
        f.category, Fetch("exec", 0, 4, at="the rule's consumer: run where the bytes run"))
    steps.append(replace(consumer, only_on=_only_on(f)))  # a finding about some kinds of cache only
    return Scenario(f"{f.rule} {f.function}", tuple(steps))


def validate(findings: list[Finding], impls: tuple[CacheImpl, ...], builds: Builds | None = None) -> list[Finding]:
    """Each finding replayed on the implementations its code can be built for (`builds`: the tree's
    #if blocks, Makefiles and Kconfig; None: on every one)."""
    out = []
    for f in findings:
        scenario = scenario_for(f)
        if scenario is None or not impls:
            out.append(f)
            continue
        configured = builds.configured(impls) if builds is not None else impls
        mine, under = builds.implementations(f.file, f.line, impls) if builds is not None else (impls, None)
        summary = summarize(replay_shared(scenario, mine))
        confirming = {name.removesuffix(ALIASING) for name, verdict in summary.implementations
                      if verdict == "confirmed"}
        configs = tuple(sorted({c for impl in mine if impl.name in confirming for c in impl.configs}))
        built = () if under is None else tuple(sorted(under.required)) + tuple(f"!{x}" for x in sorted(under.excluded))
        defconfigs = ()
        if builds is not None and configs:
            defconfigs = tuple(sorted(builds.defconfigs(frozenset(configs))))
        model = ModelResult(summary.verdict, summary.implementations, summary.witness, configs,
                            built if len(mine) < len(configured) else (), defconfigs)
        if summary.verdict == "refuted" and f.severity != "note":
            where = (f"every implementation it is built for ({' && '.join(built)})" if len(mine) < len(configured)
                     else "every implementation the --config builds" if len(configured) < len(impls)
                     else "every implementation")
            f = replace(f, severity="note", message=f.message + f" (refuted by the cache model on {where})")
        out.append(replace(f, model=model))
    return out
