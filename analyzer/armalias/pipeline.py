"""The analysis of a scanned tree, after extraction, in three stages: the flow analysis of its
functions (armalias.flow), the alias checks over their flows (armalias.checks), and the replay of
the checks' findings on the cache model (armalias.model.validate).  Beside them, the call sites of the
watched functions."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable

from armalias.facts import Skipped
from armalias.rules import WatchedSpec, load_vocabulary
from armalias.scan import CallSite, ScanResult
from armalias.source.text import Unreadable
from armalias.source.tree import TreeSource, blob_id

if TYPE_CHECKING:
    from armalias.index import SymbolIndex


def find_alias_bugs(result: ScanResult, vocab=None) -> list:
    """The alias analysis and its rules over a scanned tree (findings as plain data, before the
    cache model: the scan and the check replay on it what they report).  `vocab`: a Vocabulary
    extended by a tree's .armalias.toml (armalias.config.merge_vocabulary); None: rules/."""
    from armalias.checks.alias import AliasChecks
    from armalias.checks.readback import read_backs
    from armalias.flow.alias import FlowAnalysis
    from armalias.rules import load_rules

    from armalias.source.asmrefs import asm_objects, functions_naming

    vocab = load_vocabulary() if vocab is None else vocab
    read = lambda rel: result.sources[rel].read(rel)  # noqa: E731
    analysis = FlowAnalysis(result.index, vocab, bodies_reader(result, read, result.jobs), result.graph)
    flows = analysis.run()
    result.summarized = frozenset(analysis.summaries)
    checks = AliasChecks(load_rules(), vocab, result.graph)
    checks.overridden = overridden_generics(result.index, vocab)
    checks.read_backs = read_backs(result.index.code_calls, _runs(result.index, analysis, vocab), vocab.data_reads,
                                   vocab.alias_rules_apply)
    checks.constant = analysis.constant
    checks.classify = analysis.classify_in
    # what the base's versions of the functions a check's change alters made runnable, read with
    # the head's summaries; those functions are analysed in the head even when they no longer call
    # anything the vocabulary knows (a plain memcpy where patch_text() was)
    before = [analysis.analyse(b) for b in result.base_functions]
    checks.learn_base(before)
    checks.learn_head(result.head_functions)
    told = checks.ran_before.keys() | checks.poc_before.keys() | {k[:2] for k, f in checks.base_flows.items() if f.maintenance}
    # the head's versions, read with the summaries the base's were (the last round's)
    flows = analysis.with_final_summaries(flows, [b for b in result.head_functions if (b.file, b.name) in told])
    # Objects read by code running with the MMU off: the tree's assembly addresses them the way such
    # code does, and the tree cleans them to the point of coherency somewhere.  Every function that
    # writes one is analysed (it may call nothing the vocabulary knows) and checked by AA005.
    # arch/arm is listed for its assembly whatever the prefilter chose, so every scan of a tree (a
    # check's head taking the base's rounds too) reads the same files
    listed = []
    for s in {id(s): s for s in result.sources.values()}.values():
        files = result.asm_listed.get(id(s))
        if files is None and s.is_dir("arch/arm"):
            files = [rel for rel in s.discover("arch/arm").files if rel.endswith(".S")]
        listed.extend((s, rel) for rel in files or ())
    cleaned = checks.cleaned_to_poc(flows) | result.mmu_off_evidence
    index = result.index
    objects = frozenset(n for n in cleaned | checks.written_then_cleaned(flows)  # data, not functions or macros
                        if n.isidentifier() and n not in index.functions and n not in index.macros)
    checks.read_by_asm = read_by_asm = asm_objects(listed, objects)
    mmu_off = cleaned & read_by_asm
    checks.cleaned_by_tree = mmu_off
    spans: dict[str, list[tuple[int, int, str]]] = {}
    for name, defs in result.index.functions.items():
        for d in defs:
            if d.file in result.sources and not d.file.endswith(".S"):
                spans.setdefault(d.file, []).append((d.line, d.end_line, name))
    flows = flows + analysis.analyse_more(functions_naming(mmu_off, spans, read))
    # what runs once a check's change deletes a function (check.replaced): said where it was deleted,
    # not again where it is defined (a whole tree's scan reads that file too)
    checks.overridden |= {(r.body.file, r.body.name) for r in result.replacements}
    found = checks.run(flows)
    base_flow = {(b.file, b.name, b.line): b for b in before}
    for r in result.replacements:
        gone = base_flow.get((r.deleted.file, r.deleted.name, r.deleted.line))
        if gone is not None:
            found.extend(checks.check_replaced(gone, analysis.analyse_apart(r.body, r.helpers), r.at))
    result.lent = frozenset(checks.lent)
    return found


def _runs(index: SymbolIndex, analysis, vocab) -> Callable[[str], tuple[int, ...]]:
    """The argument positions a call of a name hands on as where code runs: the execution entry
    point's parameter (rules/vocabulary.toml), and those its summary says run; worked out once per
    name, as every call of the tree asks."""
    known: dict[str, tuple[int, ...]] = {}

    def runs(name: str) -> tuple[int, ...]:
        hit = known.get(name)
        if hit is None:
            out = set(analysis.summaries[name].runs) if name in analysis.summaries else set()
            param = vocab.exec_entries.get(name)
            if param:
                out.update(d.params.index(param) for d in index.functions.get(name, ()) if param in d.params)
            hit = known[name] = tuple(sorted(out))
        return hit

    return runs


def overridden_generics(index: SymbolIndex, vocab) -> frozenset[tuple[str, str]]:
    """(file, name) of the definitions in generic code that never run on ARM: arch/arm defines the
    same name with external linkage, an override of a __weak generic definition (a tree has only
    one external definition of a name per build, so the generic one is the weak one)."""
    out = set()
    for name, defs in index.functions.items():
        if len(defs) > 1 and any(not d.static and d.file.startswith(vocab.native_prefixes) for d in defs):
            out.update((d.file, name) for d in defs if not d.static and vocab.arch_of(d.file) is None)
    return frozenset(out)


def replay_on_model(findings: list, impls, read: Callable[[str], bytes], tree: TreeSource,
                    config_options: tuple[tuple[str, bool], ...]) -> list:
    """The findings replayed on the cache model's implementations `impls`, each on those of the CPU
    configs that can build its code (armalias.model.builds): `read` gives a file of the tree, `tree`
    lists its directories; `config_options`: a kernel .config's settings (ScanOptions)."""
    from armalias.model.builds import Builds, lister
    from armalias.model.validate import validate

    return validate(findings, impls, Builds(read, lister(tree), dict(config_options) or None))


# -- call sites ---------------------------------------------------------------------------------
def watched_callsites(index: SymbolIndex, watched: WatchedSpec) -> list[CallSite]:
    """Every call in code of a watched name, directly or through macros (``via``): the macro
    definitions that hold for the calling code (Vocabulary.macro_definitions)."""
    names = frozenset(watched.names)
    definitions = load_vocabulary().macro_definitions
    out: set[CallSite] = set()
    for c in index.code_calls:
        if c.callee in names:
            out.add(CallSite(c.callee, c.caller, c.file, c.line, c.column, (), c.args))
        if c.callee in index.macros and not names.isdisjoint(index.reachable_names(c.callee)):
            for e in index.expand(c.callee, c.args, lambda defs, here=c.file: definitions(here, defs)):
                if e.name in names:
                    out.add(CallSite(e.name, c.caller, c.file, c.line, c.column, e.via, e.args))
    return sorted(out, key=lambda s: (s.file, s.line, s.column, s.callee, s.via))


# -- function bodies ----------------------------------------------------------------------------
def bodies_reader(result: ScanResult, read: Callable[[str], bytes], jobs: int):
    """Function bodies file by file: from the content cache (armalias.cache.BodiesCache) when it is
    on, the misses parsed in worker processes when there are enough of them."""
    from armalias.cache import BodiesCache, code_digest
    from armalias.extraction import IN_PROCESS_BYTES
    from armalias.source.extract import extractor_key

    cache = None
    key = extractor_key() + code_digest("source/cflow.py")
    if result.cache_dir is not None:
        cache = BodiesCache(result.cache_dir, key)
    by_file = {f.file: f for f in result.facts}

    def bodies(items: list[tuple[str, set[str]]]):
        from armalias.source.cflow import body_ranges

        out: list = [None] * len(items)
        work = []
        for i, (rel, names) in enumerate(items):
            facts = by_file.get(rel)
            # the bodies read with the facts, from the same tree (FileFacts.bodies); the rest parsed
            known = [b for b in facts.bodies if b.name in names] if facts is not None else []
            if known:
                names = names - {b.name for b in known}
                out[i] = known
                if not names:
                    continue
            digest = facts.digest if facts is not None else None
            hit = cache.get(rel, digest, sorted(names)) if cache is not None and digest else None
            if hit is not None:
                out[i] = known + hit
                continue
            try:
                data = read(rel)
            except (OSError, Unreadable):
                continue
            # only the lines of the functions asked for are parsed, when the file's facts (of these
            # very bytes) say where they are and that no parse error is near (cflow.body_ranges):
            # the same bodies, checked on random choices of functions in every file of the whole
            # 6.1 and 6.12 trees
            ranges = None
            bid = blob_id(data)
            if facts is not None and bid == facts.digest:
                ranges = body_ranges(facts.functions, names, facts.error_lines)
            work.append((i, (rel, data, names, ranges, bid, (result.cache_dir, key) if cache is not None else None)))
        args = [w for _, w in work]
        if jobs > 1 and len(args) >= 16 and sum(len(a[1]) for a in args) >= IN_PROCESS_BYTES:
            from armalias.workers import worker_pool

            with worker_pool(jobs) as pool:
                found = list(pool.map(bodies_one, args, chunksize=max(1, min(16, len(args) // (jobs * 4)))))
        else:
            found = [bodies_one(a) for a in args]
        for (i, w), (f, why) in zip(work, found):
            out[i] = (out[i] or []) + f
            if why:  # the file's facts were read, its functions' bodies could not be
                result.skipped.append(Skipped(w[0], why))
        return out

    return bodies


def bodies_one(args: tuple[str, bytes, set[str], list[tuple[int, int]] | None, str, tuple[Path, str] | None]):
    """One file's bodies of the functions named, written to the bodies cache (directory, key) by
    the process that parsed them, as extraction does; with the reason they could not be read
    ("" when they were)."""
    from armalias.cache import BodiesCache
    from armalias.source.cflow import function_bodies, keep_lines

    rel, data, names, ranges, bid, cache = args
    try:
        found = function_bodies(rel, data, names, keep=True) if ranges is None else \
            function_bodies(rel, keep_lines(data, ranges), names)
    except RecursionError:  # expressions nested past what the walk of a body can follow
        return [], "expressions nested too deep: its functions' bodies are not read"
    if cache is not None:
        BodiesCache(*cache).put(rel, bid, sorted(names), found)
    return found, ""
