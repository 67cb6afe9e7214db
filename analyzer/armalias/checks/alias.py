"""The Python behind the alias rules (AA001-AA005): flows in, findings out."""

from __future__ import annotations

from armalias.callgraph import CallGraph
from armalias.findings import Finding, MaintenanceEvidence, WriteEvidence
from armalias.flow.alias import DISTINCT_KINDS, AliasVal, FunctionFlow, MaintSite, WriteSite, const_size, guards_allow
from armalias.flow.expr import number, root, split_top, strip
from armalias.rules import RuleSpec, Vocabulary

D_CLEANS = ("clean", "clean+invalidate")
D_INVALIDATES = ("invalidate", "clean+invalidate")


def _guard_text(m: MaintSite) -> str:
    return " && ".join(("" if g.holds else "!") + f"({g.cond})" for g in m.guards if g.cond != "<loop>")


def _evidence(m: MaintSite, covers: str = "") -> MaintenanceEvidence:
    kinds = sorted({a.kind for a in m.aliases}) or (["all"] if m.spec.whole else ["unknown"])
    return MaintenanceEvidence(m.call, m.line, m.start or "(whole cache)", "|".join(kinds), _guard_text(m),
                               m.spec.member, "all" if m.spec.whole else covers)


def _covers(m: MaintSite, targets: set[AliasVal]) -> bool:
    if m.spec.whole:
        return True
    return any(a in targets for a in m.aliases)


def _terms_key(terms: list[tuple[str, str]]) -> str:
    return "".join(sorted(sign + t.replace(" ", "") for sign, t in terms))


class AliasChecks:
    def __init__(self, rules: dict[str, RuleSpec], vocab: Vocabulary, graph: CallGraph | None):
        self.rules = rules
        self.vocab = vocab
        self.graph = graph
        self.vivt = vocab.cache_predicates.get("vivt", {})

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
                places: tuple[set[AliasVal], frozenset[AliasVal]] | None = None, **fmt: str) -> Finding:
        """`places`: (the aliases written, where the bytes run), which say what each maintenance
        call reaches; without them, a call reaches the write when it covers one of its aliases."""
        rule = self.rules[code]
        if places is None and write is not None:
            places = (set(write.aliases), frozenset())
        evidence = tuple(_evidence(m, self._role(m, *places) if places else "") for m in maint)
        return Finding(
            rule=code, category=rule.category, severity=rule.severity, file=f.file, line=line, column=column,
            function=f.name, message=rule.message.format(**fmt),
            write=WriteEvidence(write.line, write.expr, "|".join(sorted({a.kind for a in write.aliases})) or "unknown")
            if write is not None else None,
            maintenance=evidence, chain=self.chain(f.name, f.file), guard=guard, key_exprs=key,
        )

    def run(self, flows: list[FunctionFlow]) -> list[Finding]:
        out: list[Finding] = []
        for f in flows:
            found = self.check_function(f)
            if not self.vocab.alias_rules_apply(f.file):
                found = [x for x in found if x.rule not in self.vocab.alias_rules]
            out.extend(found)
        return sorted(out, key=Finding.sort_key)

    def check_function(self, f: FunctionFlow) -> list[Finding]:
        out = self.check_writes(f)
        out.extend(self.check_ranges(f))
        out.extend(self.check_poc(f))
        return out

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

    def runs_at(self, w: WriteSite, f: FunctionFlow) -> frozenset[AliasVal]:
        """Where the bytes of a write run, found from the code: the function's execution parameter
        (rules/vocabulary.toml exec_entry), the address an alias of the write runs at (`runs_at` of a
        global such as vectors_page), the alias itself when it is executable memory (`runs = "here"`)
        or an execution address, and else the addresses the function invalidates in the I-cache."""
        targets: set[AliasVal] = set()
        if f.exec_param is not None:
            targets.add(AliasVal("exec", f.exec_param))
        for a in w.aliases:
            if a.kind in self.vocab.runs_at:
                targets.add(AliasVal("exec", self.vocab.runs_at[a.kind]))
            if a.kind in self.vocab.runs_here or a.kind == "exec":
                targets.add(a)
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
            # on an address of no known alias says it runs somewhere
            if not targets and (ranged or any(m.spec.i == "invalidate" and not m.via for m in f.maintenance)) and any(
                    a.kind in DISTINCT_KINDS for a in w.aliases):
                targets = {AliasVal("exec", "")}  # runs somewhere the function invalidates as a whole
        return frozenset(targets)

    def _covers_place(self, m: MaintSite, targets: frozenset[AliasVal]) -> bool:
        return m.spec.whole or any(self._same_place(a, t) for a in m.aliases for t in targets)

    def _on_vivt(self, m: MaintSite) -> bool:
        return guards_allow(m.guards, self.vivt)[0]

    def check_writes(self, f: FunctionFlow) -> list[Finding]:
        """AA001, AA002 and AA004: for each write whose bytes run somewhere, the maintenance after it
        must write the written alias back (AA001), invalidate the I-cache at the execution address
        (AA004), and drop stale D-cache lines there when it only cleans (AA002, a note).  One finding
        per function, rule and alias: a second write through the same alias says nothing new."""
        out: list[Finding] = []
        reported: set[tuple[str, ...]] = set()

        def once(key: tuple[str, ...]) -> bool:
            if key in reported:
                return False
            reported.add(key)
            return True

        for w in f.writes:
            if w.expr.split("(", 1)[0] in self.vocab.fills:
                continue  # a fill is data
            targets = self.runs_at(w, f)
            if not targets:
                continue
            distinct = {a for a in w.aliases if a.kind in DISTINCT_KINDS and not any(self._same_place(a, t) for t in targets)}
            written = distinct or set(w.aliases)  # what a call must reach to write the written alias back
            later = [m for m in f.maintenance if m.order > w.order]
            shown = ", ".join(sorted(str(t) for t in targets if t.origin)) or "another address"
            alias_key = tuple(sorted(str(a) for a in distinct))
            kinds = "|".join(sorted({a.kind for a in distinct}))
            if distinct and later:  # with no maintenance at all, the finding is AA004's
                cleaning = [m for m in later if m.spec.d in D_CLEANS and _covers(m, distinct)]
                allowed = [m for m in cleaning if self._on_vivt(m)]
                if not allowed and once(("AA001",) + alias_key):
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
                    out.append(self.finding("AA001", f, w.line, w.column, w, later, (kinds,) + alias_key, guard,
                                            (written, targets), alias=kinds, expr=w.pointer, exec=shown,
                                            maintenance=why))
            syncing = [m for m in later if m.spec.i == "invalidate" and self._covers_place(m, targets)]
            if not [m for m in syncing if self._on_vivt(m)]:
                place = tuple(sorted(str(t) for t in targets))
                if once(("AA004",) + place):
                    alias = "|".join(sorted({a.kind for a in w.aliases})) or "unknown"
                    elsewhere = sorted({str(a) for m in later if m.spec.i == "invalidate" for a in m.aliases})
                    detail = (f" (the I-cache invalidates after it are at {', '.join(elsewhere)}: on a VIVT I-cache "
                              "another alias's lines)" if elsewhere else "")
                    out.append(self.finding("AA004", f, w.line, w.column, w, later, place, "",
                                            (written, targets), expr=w.pointer, alias=alias, exec=shown,
                                            detail=detail))
                continue
            if distinct:  # whether or not the written alias is written back (AA001 says that)
                exec_m = [m for m in syncing if not m.spec.whole]
                invalidated = any(m.spec.d in D_INVALIDATES and self._covers_place(m, targets) for m in later)
                if exec_m and not invalidated and once(("AA002",)):
                    m0 = exec_m[0]
                    out.append(self.finding("AA002", f, m0.line, m0.column, w, later,
                                            (kinds, "|".join(sorted(str(a) for a in m0.aliases))), "",
                                            (written, targets), alias=kinds, expr=w.pointer, exec=m0.start,
                                            call=m0.call))
        return out

    # AA003
    def _linear(self, text: str, f: FunctionFlow, depth: int = 0) -> list[tuple[str, str]]:
        terms = []
        for sign, operand in split_top(strip(text)):
            o = strip(operand)
            if depth < 4 and o in f.linear:
                sub = self._linear(f.linear[o], f, depth + 1)
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
        for w in f.writes:
            wsize = const_size(w.size) if w.size else None
            if wsize is None:
                continue
            for m in f.maintenance:
                if m.order < w.order or m.spec.whole or not m.size or not _covers(m, set(w.aliases) & {a for a in w.aliases if a.kind in DISTINCT_KINDS}):
                    continue
                msize = const_size(m.size)
                if msize is not None and msize < wsize:
                    out.append(self.finding("AA003", f, m.line, m.column, w, [m],
                                            (m.call, "|".join(sorted(str(a) for a in m.aliases)), str(msize), str(wsize)),
                                            call=m.call, reason=f"{msize} bytes maintained, {wsize} written at line {w.line}"))
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
    def check_poc(self, f: FunctionFlow) -> list[Finding]:
        out = []
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
