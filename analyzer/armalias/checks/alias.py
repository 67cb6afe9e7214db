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


def _evidence(m: MaintSite) -> MaintenanceEvidence:
    kinds = sorted({a.kind for a in m.aliases}) or (["all"] if m.spec.whole else ["unknown"])
    return MaintenanceEvidence(m.call, m.line, m.start or "(whole cache)", "|".join(kinds), _guard_text(m),
                               m.spec.member)


def _covers(m: MaintSite, targets: set[AliasVal]) -> bool:
    if m.spec.whole:
        return True
    return any(a in targets for a in m.aliases)


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

    def finding(self, code: str, f: FunctionFlow, line: int, column: int, write: WriteSite | None,
                maint: list[MaintSite], key: tuple[str, ...], guard: str = "", **fmt: str) -> Finding:
        rule = self.rules[code]
        return Finding(
            rule=code, category=rule.category, severity=rule.severity, file=f.file, line=line, column=column,
            function=f.name, message=rule.message.format(**fmt),
            write=WriteEvidence(write.line, write.expr, "|".join(sorted({a.kind for a in write.aliases})) or "unknown")
            if write is not None else None,
            maintenance=tuple(_evidence(m) for m in maint), chain=self.chain(f.name, f.file), guard=guard, key_exprs=key,
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
        out: list[Finding] = []
        isync = [m for m in f.maintenance if m.spec.i == "invalidate"]
        executed = bool(isync) or f.exec_param is not None
        exec_of = lambda w: sorted({str(a) for a in w.aliases if a.kind == "exec"})  # noqa: E731
        stale_reported = False
        uncleaned: set[tuple[str, ...]] = set()  # one AA001 per function and uncleaned alias
        for w in f.writes:
            distinct = {a for a in w.aliases if a.kind in DISTINCT_KINDS}
            later = [m for m in f.maintenance if m.order > w.order]
            runs_at = ", ".join(exec_of(w)) or ", ".join(sorted({str(a) for m in isync for a in m.aliases if a.kind == "exec"})) or "another address"
            if executed and distinct:
                cleaning = [m for m in later if m.spec.d in D_CLEANS and _covers(m, distinct)]
                allowed = [m for m in cleaning if guards_allow(m.guards, self.vivt)[0]]
                alias_key = tuple(sorted(str(a) for a in distinct))
                if not allowed and alias_key in uncleaned:
                    continue
                if not allowed:
                    uncleaned.add(alias_key)
                    kinds = "|".join(sorted({a.kind for a in distinct}))
                    if cleaning:
                        guard = guards_allow(cleaning[0].guards, self.vivt)[1]
                        why = f"the clean of that alias ({cleaning[0].call}, line {cleaning[0].line}) is skipped on VIVT caches by `{guard}`"
                    else:
                        covered = sorted({str(a) for m in later for a in m.aliases})
                        if covered:
                            why = f"the maintenance after the write covers only {', '.join(covered)}"
                        elif later:
                            why = ("the maintenance after the write is on an address of no known alias "
                                   f"(`{later[0].start}`)")
                        else:
                            why = "no maintenance follows the write"
                        guard = ""
                    out.append(self.finding("AA001", f, w.line, w.column, w, later, (kinds,) + alias_key, guard,
                                            alias=kinds, expr=w.pointer, exec=runs_at, maintenance=why))
                elif not stale_reported:
                    exec_targets = {a for m in isync for a in m.aliases if a.kind == "exec"}
                    exec_m = [m for m in later if m.spec.i == "invalidate" and any(a.kind == "exec" for a in m.aliases)]
                    invalidated = any(m.spec.d in D_INVALIDATES and _covers(m, exec_targets) for m in later)
                    if exec_m and not invalidated:
                        m0 = exec_m[0]
                        stale_reported = True
                        out.append(self.finding("AA002", f, m0.line, m0.column, w, later, (w.expr, m0.start),
                                                alias="|".join(sorted({a.kind for a in distinct})), expr=w.pointer,
                                                exec=m0.start, call=m0.call))
            if f.exec_param is not None or any(a.kind == "vectors" for a in w.aliases):
                targets = set(w.aliases)
                relevant = any(a.kind == "exec" or a.kind in DISTINCT_KINDS for a in w.aliases)
                if relevant and not any(m.spec.i == "invalidate" for m in later):
                    out.append(self.finding("AA004", f, w.line, w.column, w, later, (w.expr,),
                                            expr=w.pointer, alias="|".join(sorted({a.kind for a in targets})),
                                            exec=runs_at))
        out.extend(self.check_ranges(f))
        out.extend(self.check_poc(f))
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
                out.append(self.finding("AA003", f, m.line, m.column, None, [m], (m.call, m.start, m.end),
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
                    out.append(self.finding("AA003", f, m.line, m.column, w, [m], (m.call, m.start, m.size),
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
                out.append(self.finding("AA005", f, p.line, p.column, w, cov, (p.call, p.arg, w.expr),
                                        arg=p.arg, call=p.call, maintenance=", ".join(f"{m.call} line {m.line}" for m in cov)))
        return out
