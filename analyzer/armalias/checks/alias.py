"""The Python behind the alias rules (AA001-AA005): flows in, findings out."""

from __future__ import annotations

import re
from collections import Counter

from armalias.callgraph import CallGraph
from armalias.checks.change import ChangeChecks
from armalias.findings import Finding, MaintenanceEvidence, WriteEvidence
from armalias.flow.alias import const_size
from armalias.flow.guards import guards_allow
from armalias.flow.sites import DISTINCT_KINDS, AliasVal, FunctionFlow, MaintSite, WriteSite
from armalias.checks.readback import ReadBack
from armalias.facts import CALLED
from armalias.flow.expr import call_parts, is_ident, number, root, split_top, strip
from armalias.flow.extent import Extent, Reader, starts_at_or_past
from armalias.rules import D_CLEANS, D_INVALIDATES, RuleSpec, Vocabulary


def _guard_text(m: MaintSite) -> str:
    return " && ".join(("" if g.holds else "!") + f"({g.cond})" for g in m.guards if g.cond != "<loop>")


def _evidence(m: MaintSite, covers: str = "") -> MaintenanceEvidence:
    kinds = sorted({a.kind for a in m.aliases}) or (["all"] if m.spec.whole else ["unknown"])
    # no start: the whole cache, or an address of a callee's own (flow.summary.ELSEWHERE)
    target = m.start or ("(whole cache)" if m.spec.whole else f"(an address of {m.via[-1] if m.via else m.call}'s own)")
    return MaintenanceEvidence(m.call, m.line, target, "|".join(kinds), _guard_text(m),
                               m.spec.member, "all" if m.spec.whole else covers)


def _ranks(defs) -> tuple[dict[tuple[str, str, int], int], dict[tuple[str, str], int]]:
    """Each definition's (a flow's or a body's) rank among those of its name in its file, by line,
    and how many there are."""
    ranks: dict[tuple[str, str, int], int] = {}
    count: Counter[tuple[str, str]] = Counter()
    for f in sorted(defs, key=lambda g: (g.file, g.name, g.line)):
        ranks[(f.file, f.name, f.line)] = count[(f.file, f.name)]
        count[(f.file, f.name)] += 1
    return ranks, dict(count)


def _covers(m: MaintSite, targets: set[AliasVal]) -> bool:
    if m.spec.whole:
        return True
    return any(a in targets for a in m.reaches)


def _cleaned(cov: list[MaintSite]) -> str:
    """What AA005 says of an object's cleans after its write: none, or only to the point of unification."""
    if not cov:
        return "never cleaned after the write"
    return f"cleaned only to the point of unification ({', '.join(f'{m.call} line {m.line}' for m in cov)})"


def _terms_key(terms: list[tuple[str, str]]) -> str:
    return "".join(sorted(sign + t.replace(" ", "") for sign, t in terms))


class AliasChecks(ChangeChecks):
    def __init__(self, rules: dict[str, RuleSpec], vocab: Vocabulary, graph: CallGraph | None,
                 read_by_asm: frozenset[str] = frozenset()):
        """`read_by_asm`: the objects the tree's assembly addresses the way code running with the MMU
        or the caches off does (armalias.source.asmrefs); `cleaned_by_tree` (set by the caller) those
        of them some function of the tree cleans to the point of coherency."""
        self.read_by_asm = read_by_asm
        self.cleaned_by_tree: frozenset[str] = frozenset()
        # (file, function) of generic definitions ARM overrides (pipeline.overridden_generics): they
        # never run there, so ARM's alias rules say nothing of them (set by the caller)
        self.overridden: frozenset[tuple[str, str]] = frozenset()
        # addresses handed on as where code runs and also read as data (checks.readback; set by the
        # caller): AA002's stale line at such an address is read back
        self.read_backs: list[ReadBack] = []
        # (file, function) -> the addresses the base of a check made runnable there, by the root of
        # the expression naming them, with where they run (runnable_places; set by the caller)
        self.ran_before: dict[tuple[str, str], dict[str, frozenset[AliasVal]]] = {}
        # (file, function) -> the objects the base of a check cleaned there to the point of
        # coherency after writing them (poc_objects; set by the caller)
        self.poc_before: dict[tuple[str, str], frozenset[str]] = {}
        self.poc_told_before: dict[tuple[str, str], set[str]] = {}  # what that check says of the base itself
        # (file, function, rank among that file's definitions of it) -> the base's flow; (file,
        # function) -> how many definitions (#ifdef branches) the base and the head have
        self.base_flows: dict[tuple[str, str, int], FunctionFlow] = {}
        self._base_count: dict[tuple[str, str], int] = {}
        self._rank: dict[tuple[str, str, int], int] = {}  # the head's (file, function, line) -> rank
        self._count: dict[tuple[str, str], int] = {}
        # (file, function, line) of a definition that runs once a check's change deletes another ->
        # the base's flow of the deleted one (ChangeChecks.check_replaced)
        self.stands_in: dict[tuple[str, str, int], FunctionFlow] = {}
        # the fingerprints of the findings run() made only with a check's base evidence: without it
        # the tree says none of them (its own findings are the rest)
        self.lent: set[str] = set()
        self.rules = rules
        self.vocab = vocab
        self.graph = graph
        self.vivt = vocab.cache_predicates.get("vivt", {})
        self.vipt_aliasing = vocab.cache_predicates.get("vipt_aliasing", {})
        self.pipt = vocab.cache_predicates.get("pipt", {})
        # the kinds of data cache a maintenance call's guards are judged on, by the name findings give
        self.kinds = (("VIVT", self.vivt), ("aliasing VIPT", self.vipt_aliasing), ("VIPT/PIPT", self.pipt))
        self._offsets: list[re.Pattern[str]] | None = None  # vocab.address_offsets, compiled
        # the value of a constant name as code of a file sees it (set by the caller: FlowAnalysis.constant)
        self.constant = lambda name, file: None
        # the aliases an expression of a function holds (set by the caller: FlowAnalysis.classify_in)
        self.classify = lambda text, f: frozenset()

    def chain(self, fn: str, file: str = "") -> tuple[str, ...]:
        """The longest of the shortest call paths from an execution entry point to fn (defined in
        file) that one build of the kernel can take (CallGraph.path_in_one_build): the graph's
        nodes are names, joined across files and, in a whole tree, across architectures."""
        best: list[str] = []
        if self.graph is not None:
            arch_of = self.vocab.arch_of
            for entry in sorted(self.vocab.exec_entries):
                p = self.graph.path(entry, fn)
                if p and not self.graph.one_build(p, file, arch_of):
                    p = self.graph.path_in_one_build(entry, fn, file, arch_of)
                if p and (not best or len(p) > len(best)):
                    best = p
        return tuple(best) if best else (fn,)

    def _role(self, m: MaintSite, written: set[AliasVal], targets: frozenset[AliasVal]) -> str:
        roles = []
        if _covers(m, written):
            roles.append("written")
        if self._covers_place(m, targets):
            roles.append("exec")
        return "+".join(roles)

    def finding(self, code: str, f: FunctionFlow, line: int, column: int, write: WriteSite | None,
                maint: list[MaintSite], key: tuple[str, ...], guard: str = "",
                places: tuple[set[AliasVal], frozenset[AliasVal]] | None = None, variant: str = "",
                **fmt: str) -> Finding:
        """`places`: (the aliases written, where the bytes run), which say what each maintenance
        call reaches; without them, a call reaches the write when it covers one of its aliases."""
        rule = self.rules[code]
        if places is None and write is not None:
            places = (set(write.aliases), frozenset())
        evidence = tuple(_evidence(m, self._role(m, *places) if places else "") for m in maint)
        return Finding(
            rule=code, category=rule.category, severity=rule.severity_of(variant), file=f.file, line=line, column=column,
            function=f.name, message=(dict(rule.variants)[variant] if variant else rule.message).format(**fmt),
            write=WriteEvidence(write.line, write.expr, "|".join(sorted({a.kind for a in write.aliases})) or "unknown")
            if write is not None else None,
            maintenance=evidence, chain=self.chain(f.name, f.file), guard=guard, key_exprs=key,
        )

    def run(self, flows: list[FunctionFlow]) -> list[Finding]:
        out: list[Finding] = []
        for f in flows:
            found = self.check_function(f)
            if not self.vocab.alias_rules_apply(f.file) or (f.file, f.name) in self.overridden:
                found = [x for x in found if x.rule not in self.vocab.alias_rules]
            out.extend(found)
        return sorted(out, key=Finding.sort_key)

    def check_function(self, f: FunctionFlow) -> list[Finding]:
        # where each write's bytes run, for the checks of code written (a member is data)
        runs = {w: self.runs_at(w, f) for w in f.writes if not w.data}
        out = self.check_writes(f, runs)
        out.extend(self.check_ranges(f))
        out.extend(self.check_extents(f, runs))
        out.extend(self.check_outside(f, runs))
        if (f.file, f.name) in self.ran_before:  # writes known to run only from the base's evidence
            lent = {(w.line, w.expr) for w, t in runs.items() if t and not self.runs_at(w, f, base=False)}
            self.lent.update(x.fingerprint for x in out if x.write is not None and (x.write.line, x.write.expr) in lent)
        out.extend(self.check_offsets(f))
        # a function that writes what runs, or what the base cleaned to PoC, is judged by its writes;
        # one that only maintains (on behalf of its callers) is judged against its base version
        before = self.base_of(f)
        lent: list[Finding] = []
        if before is not None:
            lines = {x.line for x in out if x.rule == "AA003"}
            lent.extend(x for x in self.check_shortened(before, f) if x.line not in lines)
            if not any(runs.values()) and (f.file, f.name) not in self.poc_before:
                lent.extend(self.check_dropped(before, f))
            if not lent:
                said = {(x.rule, x.line) for x in out}
                lent.extend(x for x in self.check_reaimed(before, f) if (x.rule, x.line) not in said)
        out.extend(lent)
        poc = self.check_poc(f)
        lent.extend(x for x in poc if x.key_exprs[:1] == ("before",))  # check_poc_before's
        self.lent.update(x.fingerprint for x in lent)
        return out + poc

    def read_back(self, f: FunctionFlow) -> list[ReadBack]:
        """The places (checks.readback) where an address that reaches f as where code runs is also
        read as data: handed to f itself, or to a function that calls f in one build."""
        out = []
        arch_of = self.vocab.arch_of
        for rb in self.read_backs:
            if rb.entry == f.name:
                out.append(rb)
            elif self.graph is not None and (p := self.graph.path(rb.entry, f.name)) and (
                    self.graph.one_build(p, f.file, arch_of) or self.graph.path_in_one_build(rb.entry, f.name, f.file, arch_of)):
                out.append(rb)
        return out

    def learn_head(self, bodies) -> None:
        """The head's versions of the functions a check's change alters: which base version each
        one is (base_of)."""
        self._rank, self._count = _ranks(bodies)

    def base_of(self, f: FunctionFlow) -> FunctionFlow | None:
        """The base's version of a head function the change alters: of the definitions of its name
        in its file that the change alters (#ifdef branches), the one of the same rank, when the
        base has as many."""
        key, at = (f.file, f.name), (f.file, f.name, f.line)
        if at in self.stands_in:
            return self.stands_in[at]
        if at not in self._rank or self._count.get(key) != self._base_count.get(key):
            return None
        return self.base_flows.get((*key, self._rank[at]))

    def _fill(self, w: WriteSite) -> bool:
        """A write by a sink that writes one repeated byte (memset): data, never code."""
        return w.expr.split("(", 1)[0] in self.vocab.fills

    # where written bytes run
    def _same_place(self, a: AliasVal, b: AliasVal) -> bool:
        """Whether two alias values name one address: equal, or both the high vectors (an address
        constant of the vocabulary, spelled as a number or a name)."""
        if a == b:
            return True
        return a.kind == b.kind == "exec" and self._vectors(a.origin) and self._vectors(b.origin)

    def _vectors(self, origin: str) -> bool:
        n = number(origin)
        return origin in self.vocab.alias_constants or (
            n is not None and any(number(c) == n for c in self.vocab.alias_constants))

    def runs_at(self, w: WriteSite, f: FunctionFlow, base: bool = True) -> frozenset[AliasVal]:
        """Where the bytes of a write run, found from the code: the function's execution parameter
        (rules/vocabulary.toml exec_entry), the address an alias of the write runs at (`runs_at` of a
        global such as vectors_page), the alias itself when it is executable memory (`runs = "here"`)
        or an execution address, and else the addresses the function invalidates in the I-cache."""
        targets: set[AliasVal] = set()
        if f.exec_param is not None:
            targets.add(AliasVal("exec", f.exec_param))
        # a pointer that may hold executable memory or another buffer (a module's text or its data,
        # one copy loop for both) writes code only when the function makes code runnable itself
        makes_runnable = any(m.spec.i == "invalidate" for m in f.maintenance)
        mixed = any(a.kind not in self.vocab.runs_here and a.kind not in ("exec", "param") for a in w.aliases)
        for a in w.aliases:
            if a.kind in self.vocab.runs_at:
                targets.add(AliasVal("exec", self.vocab.runs_at[a.kind]))
            if a.kind == "exec" or (a.kind in self.vocab.runs_here and (makes_runnable or not mixed)):
                targets.add(a)
        # the address written, by its expression and by what its aliases map
        named = {root(w.pointer)} | {a.origin.split("@", 1)[0] for a in w.aliases}
        if not targets:  # handed to a callee as where code runs (patch_text(addr, ...))
            for u in f.exec_uses:
                # called through a pointer here: what is written there after the call does not run
                # by it (the IRAM's old contents copied back once the suspend code returns)
                if root(u.arg) in named and not (u.call == CALLED and u.order < w.order):
                    targets |= u.aliases or {AliasVal("exec", root(u.arg))}
            if not targets and any(u.call == CALLED and u.order < w.order and root(u.arg) in named for u in f.exec_uses):
                return frozenset()  # written there once the code that ran there has returned
        if not targets and base and (before := self.ran_before.get((f.file, f.name))):
            # the base of a check made this address runnable (a change that deletes the invalidate
            # or the patch_text() there deletes the evidence with it): it holds code still
            for key in sorted(named & before.keys()):
                targets |= before[key]
        if not targets:
            # the I-cache invalidates of the function say where: the alias written itself (code copied
            # where it runs, as fncpy does), or another address when the write goes through a second
            # mapping (a fixmap, a kmap ...); a write through anything else is data
            ranged = [m for m in f.maintenance if m.spec.i == "invalidate" and not m.spec.whole]
            targets = {a for m in ranged for a in m.aliases}
            if not (targets & set(w.aliases)) and not any(a.kind in DISTINCT_KINDS for a in w.aliases):
                return frozenset()
            # a whole I-cache invalidate says code runs when the function itself makes it, not when a
            # callee does on some branch (flush_dcache_page's, for a page mapped executable); a ranged one
            # on an address of no known alias says it runs somewhere, but not one a callee makes on an
            # address of its own (flush_cache_page's of the page __replace_page unmaps)
            if not targets and (any(m.start for m in ranged) or any(m.spec.i == "invalidate" and not m.via for m in f.maintenance)) and any(
                    a.kind in DISTINCT_KINDS for a in w.aliases):
                targets = {AliasVal("exec", "")}  # runs somewhere the function invalidates as a whole
        return frozenset(targets)

    def runnable_places(self, flows: list[FunctionFlow]) -> dict[tuple[str, str], dict[str, frozenset[AliasVal]]]:
        """Per function, the addresses its flow makes runnable: where it invalidates the I-cache over
        a range, and what it writes that runs (runs_at), keyed by the root of the expression naming
        them (`addr`, `p->addr`), with the places they run at."""
        out: dict[tuple[str, str], dict[str, frozenset[AliasVal]]] = {}
        for f in flows:
            places: dict[str, set[AliasVal]] = {}
            for m in f.maintenance:
                if m.spec.i == "invalidate" and not m.spec.whole and m.start:
                    key = root(m.start)
                    places.setdefault(key, set()).update(m.aliases or {AliasVal("exec", key)})
            for u in f.exec_uses:
                key = root(u.arg)
                places.setdefault(key, set()).update(u.aliases or {AliasVal("exec", key)})
            for w in f.writes:
                if not w.data and not self._fill(w) and (targets := self.runs_at(w, f)):
                    places.setdefault(root(w.pointer), set()).update(targets)
            if places:
                mine = out.setdefault((f.file, f.name), {})
                for key, vals in places.items():
                    mine[key] = mine.get(key, frozenset()) | frozenset(vals)
        return out

    def _covers_place(self, m: MaintSite, targets: frozenset[AliasVal]) -> bool:
        """Whether a maintenance call reaches where the bytes run: the whole cache, an alias value of
        that place, or (an address known by its expression only) the same root expression."""
        if m.spec.whole or any(self._same_place(a, t) for a in m.aliases for t in targets):
            return True
        if m.start:
            return any(t.kind == "exec" and t.origin == root(m.start) for t in targets)
        # a callee's own address aimed by the caller's text (flush_icache_alias(pfn, vaddr, len)
        # maintains vaddr's colour): that place, where the bytes run, on a cache indexed by colour
        # or physically; on VIVT another address is other lines, so a call that can run there is not
        return (bool(m.aim) and not self._on_vivt(m)
                and any(t.kind == "exec" and t.origin == root(m.aim) for t in targets))

    def _on_vivt(self, m: MaintSite) -> bool:
        return guards_allow(m.guards, self.vivt)[0]

    def check_writes(self, f: FunctionFlow, runs: dict[WriteSite, frozenset[AliasVal]]) -> list[Finding]:
        """AA001, AA002 and AA004: for each write whose bytes run somewhere, the maintenance after it
        must write the written alias back (AA001), invalidate the I-cache at the execution address
        (AA004), and drop stale D-cache lines there when it only cleans (AA002, a note).  One finding
        per function, rule and alias: a second write through the same alias says nothing new."""
        out: list[Finding] = []
        reported: set[tuple[str, ...]] = set()
        reported_aliases: set[AliasVal] = set()

        def once(key: tuple[str, ...]) -> bool:
            if key in reported:
                return False
            reported.add(key)
            return True

        for w, targets in runs.items():
            if not targets or self._fill(w):
                continue  # a fill is data
            distinct = {a for a in w.aliases if a.kind in DISTINCT_KINDS and not any(self._same_place(a, t) for t in targets)}
            if targets <= {a for a in w.aliases if a.kind in self.vocab.runs_here}:
                distinct = set()  # the bytes run where written; other values are other buffers, not aliases
            written = distinct or set(w.aliases)  # what a call must reach to write the written alias back
            later = [m for m in f.maintenance if m.order > w.order]
            shown = ", ".join(sorted(str(t) for t in targets if t.origin)) or "another address"
            # every alias written must be written back: a clean of one fixmap slot says nothing of another
            uncleaned = {a for a in distinct
                         if not any(m.spec.d in D_CLEANS and _covers(m, {a}) and self._on_vivt(m) for m in later)}
            uncleaned -= reported_aliases  # each alias once: its first uncleaned write says it
            reported_aliases |= uncleaned
            if uncleaned:
                alias_key = tuple(sorted(str(a) for a in uncleaned))
                uncleaned_kinds = "|".join(sorted({a.kind for a in uncleaned}))
                cleaning = [m for m in later if m.spec.d in D_CLEANS and _covers(m, uncleaned)]
                if once(("AA001",) + alias_key):
                    if cleaning:
                        guard = guards_allow(cleaning[0].guards, self.vivt)[1]
                        why = f"the clean of that alias ({cleaning[0].call}, line {cleaning[0].line}) is skipped on VIVT caches by `{guard}`"
                    else:
                        guard = ""
                        covered = sorted({str(a) for m in later for a in m.aliases})
                        if covered:
                            why = f"the maintenance after the write covers only {', '.join(covered)}"
                        elif later:
                            why = f"the maintenance after the write is on an address of no known alias (`{later[0].start}`)"
                        else:
                            why = "no maintenance follows the write"
                    out.append(self.finding("AA001", f, w.line, w.column, w, later, (uncleaned_kinds,) + alias_key,
                                            guard, (uncleaned, targets), alias=uncleaned_kinds, expr=w.pointer, exec=shown,
                                            maintenance=why))
            syncing = [m for m in later if m.spec.i == "invalidate" and self._covers_place(m, targets)]
            # an I-cache of a VIPT data cache needs an invalidate that runs there at all: on one that
            # does not alias any alias of the page reaches the lines, and ARM's v6 ranged calls
            # invalidate the whole I-cache (the model tells the implementations apart)
            bare_vipt = any(not any(m.spec.i == "invalidate" and guards_allow(m.guards, preds)[0] for m in later)
                            for _, preds in self.kinds[1:])
            if not [m for m in syncing if self._on_vivt(m)] or bare_vipt:
                place = tuple(sorted(str(t) for t in targets))
                if once(("AA004",) + place):
                    alias = "|".join(sorted({a.kind for a in w.aliases})) or "unknown"
                    elsewhere = sorted({str(a) for m in later if m.spec.i == "invalidate" and self._on_vivt(m)
                                        for a in m.aliases})
                    if elsewhere:  # a witness of its own: invalidated at another alias, not nowhere
                        place += ("elsewhere",)
                    detail = (f" (the I-cache invalidates after it are at {', '.join(elsewhere)}: on a VIVT I-cache "
                              "another alias's lines)" if elsewhere else "")
                    if bare_vipt and [m for m in syncing if self._on_vivt(m)]:
                        place += ("vipt_aliasing",)  # the hazard reaches another kind of cache
                        detail = " on a VIPT cache: no I-cache invalidate that runs there follows the write"
                    elif bare_vipt and elsewhere:
                        place += ("vipt_aliasing",)
                        detail += ", and on a VIPT cache none at all"
                    out.append(self.finding("AA004", f, w.line, w.column, w, later, place, "",
                                            (written, targets), expr=w.pointer, alias=alias, exec=shown,
                                            detail=detail))
                continue
            if distinct:  # whether or not the written alias is written back (AA001 says that)
                kinds = "|".join(sorted({a.kind for a in distinct}))
                exec_m = [m for m in syncing if not m.spec.whole]
                invalidated = any(m.spec.d in D_INVALIDATES and self._covers_place(m, targets) for m in later)
                if exec_m and not invalidated and once(("AA002",)):
                    m0 = exec_m[0]
                    backs = self.read_back(f)
                    extra = {}
                    if backs:
                        rb = backs[0]
                        more = sorted({f"{b.read_at[0]}:{b.read_at[1]}" for b in backs[1:]} - {
                            f"{rb.read_at[0]}:{rb.read_at[1]}"})
                        extra = dict(variant="read_back", address=rb.address, entry=rb.entry, reader=rb.reader,
                                     run_at=f"{rb.run_at[0]}:{rb.run_at[1]}", read_at=f"{rb.read_at[0]}:{rb.read_at[1]}",
                                     more=f"; also read back at {', '.join(more)}" if more else "")
                    out.append(self.finding("AA002", f, m0.line, m0.column, w, later,
                                            (kinds, "|".join(sorted(str(a) for a in m0.aliases))), "",
                                            (written, targets), alias=kinds, expr=w.pointer, exec=m0.start,
                                            call=m0.call, **extra))
        return out

    # AA003
    def _linear(self, text: str, f: FunctionFlow, depth: int = 0) -> list[tuple[str, str]]:
        terms = []
        for sign, operand in split_top(strip(text)):
            o = strip(operand)
            # a local assigned once, under whatever condition (`phys_addr_t end = base + size;` in
            # the block that uses it), has that one value
            value = f.linear.get(o) or (f.once.get(o) if o in f.locals and o not in f.mutated else None)
            if depth < 4 and value:
                sub = self._linear(value, f, depth + 1)
                if sign == "-":
                    sub = [("-" if s == "+" else "+", t) for s, t in sub]
                terms.extend(sub)
            else:
                terms.append((sign, o))
        return terms

    def _bases(self, terms: list[tuple[str, str]], f: FunctionFlow) -> set[str]:
        """The roots of the added terms that are addresses (not lengths or offsets)."""
        return {root(t) for sign, t in terms if sign == "+" and self._aliases_of(t, f)}

    def check_ranges(self, f: FunctionFlow) -> list[Finding]:
        out = []
        for m in f.maintenance:
            if not m.end or not m.start:
                continue
            start_terms = self._linear(m.start, f)
            end_terms = self._linear(m.end, f)
            sb = self._bases(start_terms, f)
            eb = self._bases(end_terms, f)
            reason = ""
            changing = {root(t) for _, t in start_terms + end_terms} & f.mutated
            if changing:  # a variable that moves (dest++): its text says nothing about its value
                continue
            if sorted(start_terms) == sorted(end_terms):
                reason = f"end `{m.end}` equals start `{m.start}`: the range is empty"
            elif sb and not (sb & eb) and not (len(end_terms) == 1 and end_terms[0][1] not in f.env and root(end_terms[0][1]) not in f.params):
                reason = f"end `{m.end}` is not computed from the base `{', '.join(sorted(sb))}` of start `{m.start}`"
            if reason:
                key = (m.call, _terms_key(start_terms), _terms_key(end_terms))  # locals resolved: a rename keeps it
                out.append(self.finding("AA003", f, m.line, m.column, None, [m], key,
                                        call=m.call, reason=reason))
        return out

    def _length(self, m: MaintSite, f: FunctionFlow) -> str | None:
        """The bytes a ranged maintenance call covers, as text: its size, or its end less its start
        when both are the same base plus terms (locals assigned once resolved)."""
        if m.size:
            return strip(m.size)
        if not m.end or not m.start:
            return None
        start, end = self._linear(m.start, f), self._linear(m.end, f)
        rest = list(end)
        for term in start:
            if term not in rest:
                return None
            rest.remove(term)
        if len(rest) != 1 or rest[0][0] != "+":
            return None
        return strip(rest[0][1])

    _SHORTER = re.compile(r"^\(?\s*(?P<x>[A-Za-z_]\w*)\s*\)?\s*(?:/\s*\d+|>>\s*\d+|-\s*\d+)$")

    def _shorter(self, maintained: str, written: str) -> str | None:
        """Why `maintained` bytes are fewer than `written`, or None when that is not certain."""
        m, w = const_size(maintained), const_size(written)
        if m is not None and w is not None:
            return f"{m} bytes maintained, {w} written" if m < w else None
        if m is not None and w is None and written and is_ident(written) and m <= 8:
            return f"{m} bytes maintained, `{written}` written"
        part = self._SHORTER.match(maintained)
        if part and part.group("x") == written:
            return f"`{maintained}` bytes maintained, `{written}` written"
        return None

    def check_extents(self, f: FunctionFlow, runs: dict[WriteSite, frozenset[AliasVal]]) -> list[Finding]:
        """AA003: a call that maintains the bytes a write wrote, where they were written or where
        they run, over fewer bytes than were written."""
        out: list[Finding] = []
        for w, targets in runs.items():
            if not w.size or not targets:
                continue
            for m in f.maintenance:
                if m.order < w.order or m.spec.whole:
                    continue
                if not (_covers(m, set(w.aliases)) or self._covers_place(m, targets)):
                    continue
                length = self._length(m, f)
                reason = self._shorter(length, strip(w.size)) if length else None
                if reason:
                    out.append(self.finding("AA003", f, m.line, m.column, w, [m],
                                            (m.call, "|".join(sorted(str(a) for a in m.aliases)), "short"),
                                            call=m.call, reason=f"{reason} at line {w.line}"))
                    break
        return out

    def check_offsets(self, f: FunctionFlow) -> list[Finding]:
        """AA004: an offset within a page (`vaddr & ~PAGE_MASK`) handed on as the address code runs
        at, or as the start of an I-cache invalidate: the maintenance reaches another address."""
        if self._offsets is None:
            self._offsets = [re.compile(p) for p in self.vocab.address_offsets]
        out: list[Finding] = []
        given = [(u.call, u.arg, u.line, 0) for u in f.exec_uses]
        given += [(m.call, m.start, m.line, m.column) for m in f.maintenance
                  if m.start and not m.spec.whole and m.spec.i == "invalidate"]
        for call, arg, line, column in given:
            # the base of the address (`kaddr + (vaddr & ~PAGE_MASK)` is an address: its base is)
            parts = split_top(strip(arg))
            base = strip(parts[0][1]) if parts else arg
            if any(p.search(base) for p in self._offsets):
                out.append(self.finding("AA004", f, line, column, None, [], (call, "offset"), variant="offset",
                                        call=call, arg=arg))
                break
        return out

    def _extents(self, f: FunctionFlow) -> Reader:
        """The function's texts as symbolic extents: its addresses are the values the flow knows as
        aliases and the roots its writes and maintenance start from."""
        pointers = {root(w.pointer) for w in f.writes} | {root(m.start) for m in f.maintenance if m.start}
        return Reader(f.linear, f.mutated, lambda n: n in pointers or bool(self._aliases_of(n, f)),
                      lambda name: self.constant(name, f.file), self.vocab.at_least)

    @staticmethod
    def _written_at(w: WriteSite) -> str:
        """The address a write starts at: the element a subscript store writes, else its pointer."""
        m = re.match(r"^([A-Za-z_]\w*(?:\s*(?:->|\.)\s*[A-Za-z_]\w*)*)\s*\[(.*)\]$", w.expr.strip(), re.S)
        return f"&{w.expr.strip()}" if m and m.group(1).replace(" ", "") == w.pointer.replace(" ", "") else w.pointer

    def check_outside(self, f: FunctionFlow, runs: dict[WriteSite, frozenset[AliasVal]]) -> list[Finding]:
        """AA003: a write of code whose bytes start at or past the end of every range maintained
        after it on its base (`flush_icache_range(ptr, ptr + offset)` after a copy to `ptr + offset`,
        a range ending at `&code[K]` after a store to `code[K]`)."""
        out: list[Finding] = []
        reader = None
        for w, targets in runs.items():
            if not targets or self._fill(w):
                continue
            later = [m for m in f.maintenance if m.order > w.order]
            if any(m.spec.whole for m in later):
                continue
            reader = reader or self._extents(f)
            at = reader.address(self._written_at(w))
            if at is None:
                continue
            ends = []
            for m in later:
                start = reader.address(m.start) if m.start else None
                if start is None or start.base != at.base:
                    continue
                if m.end:
                    end = reader.address(m.end)
                else:
                    size = reader.length(m.size) if m.size else None
                    end = Extent(start.base, start.offset.add(size)) if size is not None else None
                ends.append((m, end))
            if ends and all(end is not None and starts_at_or_past(at, end) for _, end in ends):
                m = ends[-1][0]
                out.append(self.finding("AA003", f, m.line, m.column, w, [m for m, _ in ends],
                                        (m.call, "|".join(sorted(str(a) for a in m.aliases)), "outside"),
                                        call=m.call, reason=f"the write at line {w.line} (`{self._written_at(w)}`) "
                                        f"starts at or past the end of the range (`{m.end or m.size}`)"))
                break
        return out

    def _aliases_of(self, t: str, f: FunctionFlow):
        # pointer-like terms: a value the flow knows as an alias, or a parameter/local it tracks
        if t in f.env and f.env[t]:
            return f.env[t]
        r = root(t)
        if r in f.env and f.env[r]:
            return f.env[r]
        if r in self.vocab.alias_globals or r in self.vocab.alias_constants:
            return (r,)
        n = number(strip(t))
        if n is not None and any(number(c) == n for c in self.vocab.alias_constants):
            return (n,)
        if r in f.params and r == f.exec_param:
            return (r,)
        return ()

    # AA005
    def _object(self, text: str, f: FunctionFlow, depth: int = 0) -> str:
        """The C object an address expression lies in, through locals assigned once
        (`c = &mcpm_sync.clusters[n]`: mcpm_sync)."""
        r = root(text).split("->", 1)[0].split(".", 1)[0]
        if depth < 4 and r in f.linear and r not in f.params and r in f.locals:
            if call_parts(strip(f.linear[r])) is not None:
                return r  # what a call returned (phys_to_virt(...)): the local names it
            return self._object(f.linear[r], f, depth + 1)
        return r

    _PLACE = re.compile(r"^[A-Za-z_]\w*(?:\s*(?:->|\.)\s*[A-Za-z_]\w*|\s*\[[^\]]*\])*")

    def _place(self, text: str, f: FunctionFlow, depth: int = 0) -> str:
        """The part of an object an address names, members and elements spelled alike through
        locals assigned once: `&c->cluster` with `c = &mcpm_sync.clusters[n]` is
        `mcpm_sync.clusters[].cluster` (any element of an array is the same place)."""
        t = strip(text)
        while t.startswith(("&", "*")):
            t = strip(t[1:])
        m = self._PLACE.match(t)
        if not m:
            return t
        chain = re.sub(r"\s+", "", m.group(0))
        # an element named by a number is that element; one named by a variable may be any
        chain = re.sub(r"\[([^\]]*)\]", lambda e: f"[{number(e.group(1))}]" if number(e.group(1)) is not None else "[]",
                       chain.replace("->", "."))
        head, _, rest = chain.partition(".")
        head_name = head.split("[", 1)[0]
        if depth < 4 and head_name == head and head in f.linear and head not in f.params and head in f.locals:
            inner = self._place(f.linear[head], f, depth + 1)
            return inner + ("." + rest if rest else "")
        return chain

    @staticmethod
    def _within(part: str, whole: str) -> bool:
        """Whether the place `part` lies in the place `whole` (equal, or a member or element of it).
        An element named by a variable is not known to lie in one named by a number, nor the reverse."""
        return part == whole or (part.startswith(whole) and part[len(whole)] in ".[")

    def _file_scope(self, obj: str, f: FunctionFlow) -> bool:
        return bool(obj) and obj not in f.params and obj not in f.locals

    def _writes_to(self, f: FunctionFlow) -> list[tuple[WriteSite, str]]:
        """(write, the object it writes) for the function's writes through pointers and its stores to
        variables, in program order."""
        found = [(w, self._object(w.pointer, f)) for w in f.writes] + [(w, w.pointer) for w in f.stores]
        return sorted(found, key=lambda pair: pair[0].order)

    def _written_objects(self, f: FunctionFlow):
        """(write, the object of file scope it writes), in program order."""
        return [(w, obj) for w, obj in self._writes_to(f) if self._file_scope(obj, f)]

    def cleaned_to_poc(self, flows: list[FunctionFlow]) -> frozenset[str]:
        """The objects of file scope some function cleans to the point of coherency."""
        out = set()
        for f in flows:
            for m in f.maintenance:
                if m.start and m.spec.d in D_CLEANS and m.spec.point == "poc":
                    obj = self._object(m.start, f)
                    if self._file_scope(obj, f):
                        out.add(obj)
        return frozenset(out)

    def written_then_cleaned(self, flows: list[FunctionFlow]) -> frozenset[str]:
        """The objects of file scope written by a function that cleans the D-cache after: those that
        may be handed to a reader with the MMU off (the names worth looking up in the assembly)."""
        out = set()
        for f in flows:
            for w, obj in self._written_objects(f):
                if any(m.order > w.order and m.spec.d in D_CLEANS for m in f.maintenance):
                    out.add(obj)
        return frozenset(out)

    def check_mmu_off_readers(self, f: FunctionFlow) -> list[Finding]:
        """An object the tree's assembly reads, written here, must be cleaned to the point of
        coherency after the write: that assembly runs with the MMU or the caches off (secondary
        boot, resume, MCPM entry), and reads memory, not the inner caches."""
        out: list[Finding] = []
        seen: set[str] = set()
        for w, obj in self._written_objects(f):
            if self._fill(w):
                continue  # clearing an object after its reader is done with it
            if obj not in self.read_by_asm or obj in seen:
                continue
            later = [m for m in f.maintenance if m.order > w.order and m.spec.d in D_CLEANS]
            cov = [m for m in later if m.spec.whole or self._object(m.start, f) == obj]
            # the tree cleans the object to PoC somewhere, or this function cleans it itself (to PoU)
            if obj not in self.cleaned_by_tree and not cov:
                continue
            if any(m.spec.point == "poc" and self._on_vivt(m) for m in cov):
                continue
            seen.add(obj)
            out.append(self.finding("AA005", f, w.line, w.column, w, cov, ("asm", obj), variant="asm_reader",
                                    object=obj, maintenance=_cleaned(cov)))
        return out

    def learn_base(self, flows: list[FunctionFlow]) -> None:
        """What the base's versions of the functions a check's change alters say (runnable_places,
        poc_objects), and what the checks built on it say of the base itself: only what the change
        brings is the head's."""
        self.ran_before = self.runnable_places(flows)
        self.poc_before = self.poc_objects(flows)
        # the definitions of a name in a file (#ifdef branches) in their order
        ranks, self._base_count = _ranks(flows)
        self.base_flows = {(f.file, f.name, ranks[(f.file, f.name, f.line)]): f for f in flows}
        for f in flows:
            self.check_poc_before(f, told := set())
            self.poc_told_before.setdefault((f.file, f.name), set()).update(told)

    def poc_objects(self, flows: list[FunctionFlow]) -> dict[tuple[str, str], frozenset[str]]:
        """Per function, the objects it writes and then cleans to the point of coherency: the code's
        own word that a reader of memory, not of this CPU's caches, comes after."""
        out: dict[tuple[str, str], frozenset[str]] = {}
        for f in flows:
            found = self._writes_to(f)
            written = {obj for _, obj in found}
            cleaned = {self._object(m.start, f) for m in f.maintenance
                       if m.start and not m.spec.whole and m.spec.d in D_CLEANS and m.spec.point == "poc"}
            # an object handed on by its physical address (to firmware, another master) after a
            # clean of the whole cache to the point of coherency that follows its write
            for p in f.phys_uses:
                obj = self._object(p.arg, f)
                if any(o == obj and w.order < p.order and any(
                        m.spec.whole and m.spec.d in D_CLEANS and m.spec.point == "poc" and w.order < m.order < p.order
                        for m in f.maintenance) for w, o in found):
                    cleaned.add(obj)
            if written & cleaned:
                key = (f.file, f.name)
                out[key] = out.get(key, frozenset()) | frozenset(written & cleaned)
        return out

    def check_poc_before(self, f: FunctionFlow, told: set[str]) -> list[Finding]:
        """An object the base of a check cleaned to the point of coherency after writing it, which
        the head writes with no such clean after (none, or one to the point of unification only)."""
        before = self.poc_before.get((f.file, f.name))
        if not before:
            return []
        skip = told | self.poc_told_before.get((f.file, f.name), set())  # the base said so of itself
        out: list[Finding] = []
        for w, obj in self._writes_to(f):
            if obj not in before or obj in skip or self._fill(w):
                continue
            ran = self.ran_before.get((f.file, f.name), {})
            if w in f.writes and not w.data and (root(w.pointer) in ran or obj in ran) and self.runs_at(w, f):
                continue  # code in the base too: what its alias needs is AA001's and AA004's to say
            later = [m for m in f.maintenance if m.order > w.order and m.spec.d in D_CLEANS]
            place = self._place(w.pointer if w in f.stores else (w.expr if w.data else w.pointer), f)
            cov = [m for m in later if m.spec.whole or (m.start and (
                self._within(place, self._place(m.start, f)) or self._within(self._place(m.start, f), place)))]
            if any(m.spec.point == "poc" for m in cov):
                continue
            told.add(obj)
            skip.add(obj)
            out.append(self.finding("AA005", f, w.line, w.column, w, cov, ("before", obj), variant="was_poc",
                                    object=obj, maintenance=_cleaned(cov)))
        return out

    def check_poc(self, f: FunctionFlow) -> list[Finding]:
        out = self.check_mmu_off_readers(f)
        out.extend(self.check_poc_before(f, {x.key_exprs[1] for x in out}))
        for p in f.phys_uses:
            targets = {a for a in p.aliases if a.kind != "phys"}
            origins = {a.origin for a in targets} | {root(p.arg)}
            writes = [w for w in f.writes if w.order < p.order and ({a.origin for a in w.aliases} & origins or root(w.pointer) in origins)]
            if not writes:
                continue
            w = writes[-1]
            wt = set(w.aliases) or targets
            cov = [m for m in f.maintenance if m.order > w.order and m.spec.d in D_CLEANS and _covers(m, wt)]
            if cov and all(m.spec.point == "pou" for m in cov):
                out.append(self.finding("AA005", f, p.line, p.column, w, cov,
                                        (p.call, "|".join(sorted(str(a) for a in wt))),
                                        arg=p.arg, call=p.call, maintenance=", ".join(f"{m.call} line {m.line}" for m in cov)))
        return out
