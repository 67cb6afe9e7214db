"""Which virtual alias each write goes through and which alias each maintenance call covers.

Per function, in statement order: assignments (re-assignment, conditional assignment, copies, casts,
pointer arithmetic), stores through pointers, write sinks (memcpy, ...), maintenance calls and the
guards they run under.  Across functions through summaries: a function that returns an alias, and a
function that does maintenance on a parameter (with the guard it does it under).  Macros are expanded
at their call site from their body's calls.  The vocabulary is rules/vocabulary.toml.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections import defaultdict
from dataclasses import replace
from itertools import accumulate
from operator import attrgetter
from typing import Callable

from armalias.callgraph import CallGraph
from armalias.index import SymbolIndex, substitute
from armalias.rules import IDENTIFIER, MaintenanceSpec, Vocabulary, load_watched
from armalias.facts import CALLED
from armalias.source.cflow import DECLARATION, FIELD_STORE, Event, FunctionBody, Guard
from armalias.flow.constants import const_eval
from armalias.flow.guards import conditional
from armalias.flow.expr import call_parts, is_ident, number, root, split_top, strip
from armalias.flow.sites import (DISTINCT_KINDS, AliasVal, Aliases, ExecUse, FunctionFlow, MaintSite, PhysUse,
                                 WriteSite, params_of)
from armalias.flow.summary import (AT, ELSEWHERE, PARAM_REF, Summary, merged, on_params, operand, putter, range_on_params,
                                   summary_from, text_on_params)

MAX_MACRO_DEPTH = 6
SUMMARY_ROUNDS = 4

__all__ = ["DISTINCT_KINDS", "AliasVal", "Aliases", "ExecUse", "FlowAnalysis", "FunctionFlow", "MaintSite", "PhysUse",
           "Summary", "WriteSite", "const_size"]


def _naming(calls: list, words: frozenset[str]) -> list:
    """The calls whose arguments name one of the words as a whole identifier.  The arguments of all
    the calls are joined into one text, searched for each word in turn (str.find), and only a call
    holding a hit is confirmed by the words' pattern on its own arguments: few calls name a word (11
    of 147,000 on whole 6.12), so the pattern is not run over every call's arguments."""
    if not words:
        return []
    pattern = re.compile(r"\b(?:" + "|".join(map(re.escape, sorted(words))) + r")\b")
    # each call's arguments joined by a byte no identifier holds, the calls by another
    texts = list(map("\0".join, map(attrgetter("args"), calls)))
    ends = list(accumulate(len(t) + 1 for t in texts))  # where each call's text ends, past its separator
    joined = "\1".join(texts)
    hits: set[int] = set()
    for w in words:
        at = joined.find(w)
        while at != -1:
            hits.add(bisect_right(ends, at))
            at = joined.find(w, at + len(w))
    return [calls[i] for i in sorted(hits) if pattern.search(texts[i])]


# -- per-function analysis --------------------------------------------------------------------
class FlowAnalysis:
    def __init__(self, index: SymbolIndex, vocab: Vocabulary,
                 bodies: Callable[[list[tuple[str, set[str]]]], list[list[FunctionBody] | None]],
                 graph: CallGraph | None = None):
        # [(relative path, names)] -> those functions' bodies, file by file (None: unreadable);
        # armalias.pipeline reads them through its content cache
        self.bodies = bodies
        self.index = index
        # the scan's call graph of the index (who calls a name): built here when not given
        self.graph = graph if graph is not None else CallGraph(index, load_watched().cache_fns_struct)
        self.vocab = vocab
        self.summaries: dict[str, Summary] = {}  # what any definition of a name does
        self._parts: dict[str, list[tuple[str, Summary]]] = {}  # name -> (file, summary) per definition
        self._summary_for: dict[tuple, Summary | None] = {}  # _summary's answers, per round
        self.flows: dict[tuple[str, str, int], FunctionFlow] = {}
        self._bodies: dict[str, list[FunctionBody]] = {}
        self._asked: dict[str, set[str]] = defaultdict(set)  # file -> the names its bodies were read for
        self._expansions: dict[tuple, list[tuple[str, tuple[str, ...]]]] = {}
        self._expanding: set[str] = set()  # macros being expanded in classify (never re-entered)
        self._arch: str | None = None  # the architecture of the function being analysed (None: generic)
        self._file = ""  # the file of the function being analysed
        self._macro_defs: dict[tuple[str, str | None], list] = {}  # (macro, architecture) -> _defs
        self._depends: dict[tuple[str, str, int], frozenset[str]] = {}  # body -> _depends_on
        self._called_by: dict[str, set[str]] = {}  # callee -> the functions whose code calls it (_callers)
        self._fixed_interest: set[str] = set()
        self._macro_callees: list[str] | None = None  # the macros called anywhere
        self._called_names: frozenset[str] | None = None  # variables and members code calls (_handed_to_a_call)
        self._local_callees: dict[tuple[str, str], set[str]] = {}
        # names whose macro expansion is worth following inside a function
        self._interesting = frozenset(vocab.maintenance) | frozenset(vocab.write_sinks) | frozenset(vocab.alias_sources)

    # which functions to look at
    def _direct_interest(self) -> set[str]:
        v = self.vocab
        # Functions doing maintenance (directly, through macros or summarized wrappers), execution
        # entry points and users of alias globals: the only places a rule can fire.
        # a function whose summary holds only whole-cache maintenance (a flush_cache_all on some
        # branch) does not make its callers worth analysing: what they write, they write elsewhere
        names = set(v.maintenance) | {n for n, s in self.summaries.items()
                                      if s.returns or s.runs or any(not kind for _, _, kind in s.writes)
                                      or any(m[0] >= 0 for m in s.maintains)}
        if self._macro_callees is None:  # what does not change from one round of summaries to the next
            self._fixed_interest = {c.caller for c in _naming(self.index.code_calls, v.alias_words()) if c.caller}
            self._fixed_interest |= {f for f in v.exec_entries if f in self.index.functions}
            # code copied into executable memory needs no maintenance call to matter
            executable = {n for n, (kind, _) in v.alias_sources.items() if kind in v.runs_here}
            self._fixed_interest |= {c.caller for c in self.index.code_calls if c.callee in executable and c.caller}
            self._macro_callees = [m for m in self.graph.pred if m in self.index.macros]
            # caller -> the helpers of its own file that copy into memory (call a write sink): what
            # they write, they may write for it
            copiers = {c.caller for c in self.index.code_calls if c.callee in v.write_sinks and c.caller}
            # code copied somewhere and called through a pointer there, or copied into memory the
            # function maps itself (SRAM, an ioremap) and handed on, with no maintenance call at all
            mapping = {c.caller for c in self.index.code_calls
                       if c.caller and c.callee in v.alias_sources and v.alias_sources[c.callee][0] in v.copied_kinds}
            self._fixed_interest |= {c.caller for c in self.index.code_calls
                                     if c.callee == CALLED and c.caller in copiers} | (copiers & mapping)
            self._local_callees = defaultdict(set)
            for c in self.index.code_calls:
                if c.caller and c.callee in copiers and any(d.file == c.file for d in self.index.functions.get(c.callee, ())):
                    self._local_callees[(c.caller, c.file)].add(c.callee)
        wanted = set(self._fixed_interest) | self._handing_on_a_page()
        for n in names:
            wanted |= self._callers(n)
        for m in self._macro_callees:
            if not names.isdisjoint(self.index.reachable_names(m)):
                wanted |= self._callers(m)
        # a static helper of a function of interest may write through its parameters for it (its
        # summary says so): the helpers of the same file are analysed too
        for name in list(wanted):
            for d in self.index.functions.get(name, ()):
                wanted |= self._local_callees.get((name, d.file), set())
        return wanted

    def _handing_on_a_page(self) -> set[str]:
        """The callers of a function that maintains a mapping of a page it is given (AT:
        `folio_address(folio)`) that hand it a page of their own parameters (`page_folio(page)`):
        wrappers (flush_dcache_folio, flush_dcache_page) whose summaries carry it on.  A caller
        passing a page of its own (most of mm/) maintains it there and then: nothing to carry."""
        at: dict[str, set[int]] = {}
        for n, s in self.summaries.items():
            for m in s.maintains:
                if m[0] == AT:
                    at.setdefault(n, set()).update(int(i) for i in PARAM_REF.findall(m[8]))
        out = set()
        for c in self.index.code_calls:
            if c.callee not in at or not c.caller:
                continue
            params = {p for d in self.index.functions.get(c.caller, ()) if d.file == c.file for p in d.params}
            if any(i < len(c.args) and self._origin_of(c.args[i], _NO_FLOW) in params for i in at[c.callee]):
                out.add(c.caller)
        return out

    def _callers(self, name: str) -> set[str]:
        hit = self._called_by.get(name)
        if hit is None:
            hit = self._called_by[name] = self.graph.code_callers(name)
        return hit

    def _bodies_of(self, names: set[str]) -> list[FunctionBody]:
        by_file: dict[str, set[str]] = defaultdict(set)
        for n in names:
            for d in self.index.functions.get(n, ()):
                by_file[d.file].add(n)
        todo = []
        for rel, wanted in sorted(by_file.items()):
            # only those not asked for before (one the index places here that has no body here, a
            # function recovered from a parse error, is not asked for again each round): a
            # function's body does not depend on which others are parsed
            missing = wanted - self._asked[rel]
            if missing:
                todo.append((rel, missing))
        for (rel, names), found in zip(todo, self.bodies(todo)):
            if found is not None:  # None: the file could not be read
                self._bodies[rel] = self._bodies.get(rel, []) + found
                self._asked[rel] |= names
        out = []
        for rel, wanted in sorted(by_file.items()):
            out.extend(b for b in self._bodies.get(rel, ()) if b.name in wanted)
        return out

    def run(self) -> list[FunctionFlow]:
        """Analyse, summarize, and again with the new summaries, until nothing changes.  A function
        analysed in the round before is analysed again only when a name it depends on (_depends_on)
        got a new or different summary: its analysis reads the summaries (and the names worth
        expanding a macro for, which grow with them) only there, so its flow would be the same."""
        analysed: set[str] = set()
        changed: set[str] | None = None  # names whose summary the last round made or changed
        for _ in range(SUMMARY_ROUNDS):
            wanted = self._direct_interest()
            before = dict(self.summaries)
            last, self.flows = self.flows, {}
            for body in self._bodies_of(wanted):
                key = (body.file, body.name, body.line)
                flow = last.get(key) if changed is not None else None
                if flow is None or not changed.isdisjoint(self._depends_on(body)):
                    flow = self.analyse(body)
                self.flows[key] = flow
            self._summarize()
            self._interesting = self._interesting | frozenset(self.summaries)
            changed = {n for n, summary in self.summaries.items() if before.get(n) != summary}
            if self.summaries == before and wanted == analysed:
                break
            analysed = wanted
        return sorted(self.flows.values(), key=lambda f: (f.file, f.line))

    def analyse_more(self, names: set[str]) -> list[FunctionFlow]:
        """The flows of functions `run` did not look at, with the summaries it made."""
        done = {f.name for f in self.flows.values()}
        return self.analyse_bodies(self._bodies_of({n for n in names if n not in done}))

    def analyse_bodies(self, bodies) -> list[FunctionFlow]:
        """The flows of these bodies, with the summaries `run` made; each recorded, so that it is
        analysed once whoever asks next (a function `run` analysed already is left out)."""
        done = {(f.file, f.name) for f in self.flows.values()}
        out = [self.analyse(body) for body in bodies if (body.file, body.name) not in done]
        for f in out:
            self.flows[(f.file, f.name, f.line)] = f
        return sorted(out, key=lambda f: (f.file, f.line))

    def analyse_apart(self, body: FunctionBody, helpers) -> FunctionFlow:
        """The flow of a function of a file the scan may not have read (what runs once a check's
        change deletes ARM's override of it), with the summaries of the helpers of its file it
        calls, made as run() makes them, until they hold; run()'s flows are left as they are."""
        kept = dict(self.flows)
        for _ in range(SUMMARY_ROUNDS):
            before = dict(self.summaries)
            for h in helpers:
                flow = self.analyse(h)
                self.flows[(flow.file, flow.name, flow.line)] = flow
            self._summarize()
            if self.summaries == before:
                break
        flow = self.analyse(body)
        self.flows = kept
        return flow

    def with_final_summaries(self, flows: list[FunctionFlow], bodies) -> list[FunctionFlow]:
        """`flows` (run()'s) with the functions of `bodies` analysed once more, with the summaries
        run() ended with: each replaces run()'s flow of it, or is added (and recorded) when run()
        analysed no definition of its name in its file, as a function the prefilter passed over.  A
        function SUMMARY_ROUNDS calls above a maintenance instruction is analysed in run() before
        its callee's summary is complete; a check's head must read as its base does."""
        ran = {(f.file, f.name) for f in self.flows.values()}
        fresh = {(f.file, f.name, f.line): f for f in map(self.analyse, bodies)}
        added = sorted((f for f in fresh.values() if (f.file, f.name) not in ran), key=lambda f: (f.file, f.line))
        for f in added:
            self.flows[(f.file, f.name, f.line)] = f
        return [fresh.get((f.file, f.name, f.line), f) for f in flows] + added

    def _depends_on(self, body: FunctionBody) -> frozenset[str]:
        """Every name whose summary the analysis of the body can read: the identifiers of its events
        (callees, expressions, arguments, guards), and what the macros among them reach
        (SymbolIndex.reachable_names: the calls and aliases in their bodies, transitively)."""
        key = (body.file, body.name, body.line)
        hit = self._depends.get(key)
        if hit is None:
            text = "\0".join(part for ev in body.events
                              for part in (ev.target, ev.expr, *ev.args, *(g.cond for g in ev.guards)))
            names = set(IDENTIFIER.findall(text))
            macros = self.index.macros
            for name in [n for n in names if n in macros]:
                names |= self.index.reachable_names(name)
            hit = self._depends[key] = frozenset(names)
        return hit

    def _summarize(self) -> None:
        by_name: dict[str, list[FunctionFlow]] = defaultdict(list)
        for f in self.flows.values():
            by_name[f.name].append(f)
        self._summary_for.clear()
        for name, flows in by_name.items():
            parts = [(f.file, self._summary_of(f)) for f in flows]
            self._parts[name] = [(file, summ) for file, summ in parts if summ is not None]
            whole = merged([summ for _, summ in self._parts[name]])  # what any definition does
            if whole is not None:
                self.summaries[name] = whole

    def _summary(self, name: str) -> Summary | None:
        """The summary of the definitions of `name` that code of the function being analysed gets
        (Vocabulary.sees): its architecture's and generic code's, and of those its architecture's own
        over generic code's, as an arch override replaces a __weak generic definition.  A whole
        tree holds every architecture's patch_text; ARM's jump labels call ARM's."""
        parts = self._parts.get(name)
        if not parts:
            return None
        if len(parts) == 1 and self.vocab.arch_of(parts[0][0]) is None:
            return parts[0][1]
        key = (name, self._arch, self._file.startswith(self.vocab.native_prefixes))
        if key not in self._summary_for:
            seen = [(file, s) for file, s in parts if self.vocab.sees(self._file, file)]
            own = [(file, s) for file, s in seen if self.vocab.arch_of(file) is not None]
            self._summary_for[key] = merged([s for _, s in own or seen])
        return self._summary_for[key]

    def _summary_of(self, f: FunctionFlow) -> Summary | None:
        """What calls of one definition do, stated on its parameters."""
        returns, maintains, writes, runs = set(), set(), set(), set()
        # whether f calls no function of the tree but the vocabulary's: what it does is known from
        # its body alone, the same in every round (a helper that maintains nothing now may be found
        # to in a later round, and a write said for its callers would be taken back)
        leaf = not f.maintenance and not any(
            c in self.index.functions and c not in self.vocab.alias_sources and c not in self.vocab.write_sinks
            for c in f.callees)
        if f.exec_param in f.params:
            runs.add(f.params.index(f.exec_param))
        for u in f.exec_uses:
            at = self._param_origin(f, root(u.arg))
            if at in f.params:
                runs.add(f.params.index(at))
        for w in f.writes:
            if w.data:
                continue
            # a store or a copy through a parameter writes the caller's memory: the caller's
            # argument says through which alias (a parameter the function moves, dest++, still
            # starts where the caller's memory does)
            dest = self._param_origin(f, root(w.pointer))
            size = strip(w.size)
            size_idx = f.params.index(size) if size in f.params and size not in f.mutated else -1
            if dest in f.params:
                writes.add((f.params.index(dest), size_idx, ""))
            elif leaf:
                # a helper that writes through a mapping it makes of a parameter's page
                # (kmap_atomic(page) + offset) and calls nothing else of the tree (copy_to_page): the
                # caller's page is written through that kind of alias, and the caller maintains it
                for a in w.aliases:
                    page = a.origin.split("@", 1)[0]
                    if a.kind in DISTINCT_KINDS and page in f.params and page not in f.mutated:
                        writes.add((f.params.index(page), size_idx, a.kind))
        for a in f.returns:
            if a.kind in DISTINCT_KINDS or a.kind == "phys":
                idx = f.params.index(a.origin) if a.origin in f.params else -1
                returns.add((a.kind, idx))
        for m in f.maintenance:
            guards = on_params(m.guards, f.params)
            if m.spec.whole:  # the whole cache: the same for every caller, whatever it passed
                maintains.add((-1, -1, -1, m.spec, guards, m.call, "", "", ""))
                continue
            start_root = root(m.start)
            start_root = self._param_origin(f, start_root)
            at = text_on_params(f, m.start) if start_root not in f.params else None
            if at is not None and any(a.kind in DISTINCT_KINDS and a.origin.split("@", 1)[0] in f.params
                                      for a in m.aliases):
                # at a mapping of a parameter's page (folio_address(folio)): the caller's page, as
                # the text over the parameters says (the size likewise, when it can be said so)
                maintains.add((AT, -1, -1, m.spec, guards, m.call, "", text_on_params(f, m.size) or "", at))
                continue
            if start_root not in f.params:
                # at an address of the callee's own (flush_pfn_alias's colour slot): a caller cannot
                # say where, but it is maintenance the call does (a check counts it, check_dropped),
                # and the one parameter the address is computed from says where it is aimed (in the
                # end's place)
                maintains.add((ELSEWHERE, self._aim_param(f, m.aimed_at), -1, m.spec, guards, m.call, "", "", ""))
                continue
            # an end or size carries over to callers only when it is a parameter itself
            end_idx = f.params.index(strip(m.end)) if strip(m.end) in f.params else -1
            size_idx = f.params.index(strip(m.size)) if strip(m.size) in f.params else -1
            # an end that is the start plus a parameter (`addr + len`): that parameter is the size
            end_terms = split_top(strip(m.end)) if m.end else []
            if (size_idx < 0 and len(end_terms) == 2 and end_terms[1][0] == "+"
                    and strip(end_terms[0][1]) == strip(m.start) and strip(end_terms[1][1]) in f.params):
                size_idx = f.params.index(strip(end_terms[1][1]))
            # a parameter the function changes (dest++) is not what the caller passed
            if end_idx >= 0 and (f.params[end_idx] in f.mutated or end_idx == f.params.index(start_root)):
                end_idx = -1
            if size_idx >= 0 and f.params[size_idx] in f.mutated:
                size_idx = -1
            offset, length = range_on_params(f, m, start_root)
            maintains.add((f.params.index(start_root), end_idx, size_idx, m.spec, guards, m.call, offset, length, ""))
            if m.spec.i == "invalidate":
                runs.add(f.params.index(start_root))
        return summary_from(returns, maintains, writes, runs)

    @staticmethod
    def _aim_param(f: FunctionFlow, text: str) -> int:
        """The index of the one parameter an address is computed from, through locals assigned once
        (`to = FLUSH_ALIAS_START + (CACHE_COLOUR(vaddr) << PAGE_SHIFT)`: vaddr), or -1 (none, several,
        or one the function changes: not what the caller passed)."""
        used = params_of(text, f, f.linear)
        return f.params.index(used.pop()) if len(used) == 1 and not used & f.mutated else -1

    @staticmethod
    def _param_origin(f: FunctionFlow, name: str) -> str:
        vals = f.env.get(name)
        if vals and len(vals) == 1:
            (v,) = tuple(vals)
            if v.kind in ("param", "exec") and v.origin in f.params:
                return v.origin
        return name

    # expressions
    def classify(self, text: str, f: FunctionFlow) -> Aliases:
        t = strip(text)
        if not t:
            return frozenset()
        if t.startswith("&"):
            return self.classify(t[1:], f)
        sub = re.match(r"^([A-Za-z_]\w*)\s*\[", t)
        if sub:
            return self.classify(sub.group(1), f)
        parts = split_top(t)
        if len(parts) > 1:
            return self.classify(parts[0][1], f) if parts[0][0] == "+" else frozenset()
        m = re.match(r"^(.*?)\s*\?\s*(.*?)\s*:\s*(.*)$", t)
        if m and "(" not in m.group(1):
            return self.classify(m.group(2), f) | self.classify(m.group(3), f)
        call = call_parts(t)
        if call is not None:
            name, args = call
            return self._call_aliases(name, args, f)
        if not is_ident(t) and f.env and _member_key(t) in f.env:
            return f.env[_member_key(t)]
        if is_ident(t):
            if t in f.env:
                return f.env[t]
            if t in f.params:  # a parameter shadows a global or a macro of the same name (vectors_base)
                return frozenset({AliasVal("exec" if t == f.exec_param else "param", t)})
            if t in self.vocab.alias_globals:
                return frozenset({AliasVal(self.vocab.alias_globals[t], t)})
            if t in self.vocab.alias_constants:
                return frozenset({AliasVal(self.vocab.alias_constants[t], t)})
            return frozenset()
        n = number(t)
        if n is not None:
            for text_c, kind in self.vocab.alias_constants.items():
                if number(text_c) == n:
                    return frozenset({AliasVal(kind, hex(n))})
        return frozenset()

    def _origin_of(self, arg: str, f: FunctionFlow) -> str:
        t = strip(arg)
        call = call_parts(t)
        while call is not None and call[0] in self.vocab.same_page and call[1]:  # page_folio(page): page
            t = strip(call[1][0])
            call = call_parts(t)
        r = root(t)
        vals = f.env.get(r)
        if vals:
            for v in sorted(vals):
                if v.kind in ("exec", "param"):
                    return v.origin
        return r

    def _call_aliases(self, name: str, args: list[str], f: FunctionFlow) -> Aliases:
        src = self.vocab.alias_sources.get(name)
        if src is not None:
            kind, origin = src
            o = self._origin_of(args[origin], f) if 0 <= origin < len(args) else name
            slot = self.vocab.alias_slots.get(name, -1)
            if 0 <= slot < len(args):
                o = f"{o}@{strip(args[slot])}"
            return frozenset({AliasVal(kind, o)})
        summ = self._summary(name)
        if summ is not None and summ.returns:
            out = set()
            for kind, idx in summ.returns:
                o = self._origin_of(args[idx], f) if 0 <= idx < len(args) else name
                out.add(AliasVal(kind, o))
            return frozenset(out)
        if name in self.index.macros and name not in self.vocab.maintenance and name not in self._expanding:
            for m in self._defs(name):
                if m.params is not None and m.body:
                    body = substitute(m.body, dict(zip(m.params, args)))
                    if body.count("(") < 8:
                        # as in the preprocessor, a macro is not expanded again inside its own
                        # expansion (`#define f(x) f(x)`, or a call of it in its arguments)
                        self._expanding.add(name)
                        try:
                            return self.classify(body, f)
                        finally:
                            self._expanding.discard(name)
        return frozenset()

    # which definitions of a macro hold where the function is
    def _defs(self, name: str) -> list:
        """The definitions of a macro that hold for the function being analysed
        (Vocabulary.macro_definitions), which depend on the function's file only through its
        architecture: kept per (name, architecture), since the lookup is asked again for every use
        of the macro."""
        key = (name, self._arch)
        found = self._macro_defs.get(key)
        if found is None:
            found = self._macro_defs[key] = self.vocab.macro_definitions(self._file, self.index.macros.get(name) or [])
        return found

    def _def_files(self, name: str) -> frozenset[str]:
        return frozenset(m.file for m in self._defs(name))

    # the walk
    def analyse(self, body: FunctionBody) -> FunctionFlow:
        self._arch = self.vocab.arch_of(body.file)
        self._file = body.file
        exec_param = self.vocab.exec_entries.get(body.name) if self.vocab.alias_rules_apply(body.file) else None
        f = FunctionFlow(body.name, body.file, body.line, body.params, exec_param or None)
        assigned: dict[str, int] = defaultdict(int)
        order = 0
        for ev in body.events:
            order += 1
            if ev.kind == "assign":
                vals = self.classify(ev.expr, f)
                if conditional(ev.guards) and ev.target in f.env:
                    f.env[ev.target] = f.env[ev.target] | vals
                elif conditional(ev.guards) and ev.target in f.params:
                    f.env[ev.target] = self.classify(ev.target, f) | vals
                else:
                    f.env[ev.target] = vals
                assigned[ev.target] += 1
                if assigned[ev.target] > 1 or ev.target in f.params:
                    f.mutated.add(ev.target)
                if assigned[ev.target] == 1 and not conditional(ev.guards):
                    f.linear[ev.target] = ev.expr
                else:
                    f.linear.pop(ev.target, None)
                if assigned[ev.target] == 1:
                    f.once[ev.target] = ev.expr
                else:
                    f.once.pop(ev.target, None)
                if ev.width == DECLARATION:
                    f.locals.add(ev.target)
                if ev.target not in f.params and ev.target not in f.locals:  # a variable of file scope
                    f.stores.append(WriteSite(order, ev.line, ev.column, ev.target, ev.target, frozenset(), "",
                                              ev.guards, (), True))
                    self._handed_to_a_call(ev.target, ev.expr, ev, f, order)
            elif ev.kind == "store":
                if ev.width == FIELD_STORE and ev.args:  # a member holds an alias (p->slot = get_insn_slot())
                    f.env[_member_key(ev.target)] = self.classify(ev.args[0], f)
                    self._handed_to_a_call("." + re.split(r"->|\.", ev.target)[-1].strip(), ev.args[0], ev, f, order)
                f.writes.append(WriteSite(order, ev.line, ev.column, ev.target, ev.expr, self.classify(ev.expr, f),
                                          _width_size(ev.width), ev.guards, (), ev.width == FIELD_STORE))
            elif ev.kind == "declare":
                f.locals.add(ev.target)
            elif ev.kind == "return":
                f.returns |= set(self.classify(ev.expr, f))
            elif ev.kind == "call":
                f.callees.add(ev.target)
                self._called(ev, f, order)
                order = self._call(ev.target, ev.args, ev, f, order, (), 0)
        return f

    def _called(self, ev: Event, f: FunctionFlow, order: int) -> None:
        """A call through an expression or a function-pointer variable of f's (`fn(x)`,
        `((void (*)(void))sram)()`): code runs at the address it holds, as at an execution entry
        point's parameter."""
        t = ev.target
        if t == CALLED:
            value = _pointer_value(ev.expr)
        elif (t in f.locals or t in f.params or t in f.once) and t not in self.index.functions:
            # a variable of the function, or one of file scope it assigned before, through the
            # locals it was assigned from (`ptr = iram; ... ptr()` with `iram = (void *)AREA`)
            value = _pointer_value(f.once.get(t, t))
            for _ in range(4):
                if value not in f.once or value in f.params or value == t:
                    break
                t, value = value, _pointer_value(f.once[value])
        else:
            return
        if value:
            f.exec_uses.append(ExecUse(order, ev.line, CALLED, value, self.classify(value, f)))

    def _handed_to_a_call(self, target: str, value: str, ev: Event, f: FunctionFlow, order: int) -> None:
        """An address of memory the function maps (SRAM, an ioremap, executable memory) stored in a
        variable or member that code of the tree calls (`sram_suspend = sram`, `ops->enter = sram`,
        with `sram_suspend()` or `ops->enter()` elsewhere): it runs.  A member name is called in many
        structures; a pointer to anything else stored in one is no evidence."""
        if self._called_names is None:
            fns, macros = self.index.functions, self.index.macros
            self._called_names = frozenset(c.callee for c in self.index.code_calls
                                           if c.callee != CALLED and c.callee not in fns and c.callee not in macros)
        if target in self._called_names and (v := _pointer_value(value)):
            held = self.classify(v, f)
            if any(a.kind in DISTINCT_KINDS or a.kind in self.vocab.runs_here for a in held):
                f.exec_uses.append(ExecUse(order, ev.line, target, v, held))

    def _call(self, callee: str, args: tuple[str, ...], ev: Event, f: FunctionFlow, order: int,
              via: tuple[str, ...], depth: int) -> int:
        v = self.vocab
        order += 1
        if callee in v.write_sinks:
            d, s = v.write_sinks[callee]
            if d < len(args):
                f.writes.append(WriteSite(order, ev.line, ev.column, f"{callee}({', '.join(args)})", args[d],
                                          self.classify(args[d], f), args[s] if 0 <= s < len(args) else "",
                                          ev.guards, via))
            return order
        spec = v.maintenance.get(callee)
        if spec is not None:
            f.maintenance.append(self._maint(callee, spec, list(args), ev, f, order, ev.guards, via))
            return order
        src = v.alias_sources.get(callee)
        if src is not None and src[0] == "phys" and args:
            f.phys_uses.append(PhysUse(order, ev.line, ev.column, callee, args[0], self.classify(args[0], f)))
            return order
        summ = self._summary(callee)
        if summ is not None:
            for idx in summ.runs:
                if idx < len(args):
                    f.exec_uses.append(ExecUse(order, ev.line, callee, args[idx], self.classify(args[idx], f)))
        if summ is not None and (summ.maintains or summ.writes):
            for dp, zp, kind in summ.writes:  # the callee's writes come before its maintenance
                if dp < len(args):
                    written = (frozenset({AliasVal(kind, self._origin_of(args[dp], f))}) if kind
                               else self.classify(args[dp], f))
                    f.writes.append(WriteSite(order, ev.line, ev.column, f"{callee}({', '.join(args)})", args[dp],
                                              written, args[zp] if 0 <= zp < len(args) else "",
                                              ev.guards, via + (callee,)))
            if summ.writes:
                order += 1  # what the callee maintains, it maintains after writing
            for sp, ep, zp, mspec, inner, call, offset, length, at in summ.maintains:
                if sp >= len(args):
                    continue
                inner = self._at_call(inner, args, f)
                if inner is None:
                    continue  # a guard the caller's arguments make false: not done on this call
                if sp == AT:  # at a mapping of a page the caller names
                    put = putter(args)
                    start, size = put(at), put(length)
                    if "$" not in start:
                        f.maintenance.append(self._maint(call, mspec, [], ev, f, order, ev.guards + inner,
                                                         via + (callee,), start=start, end="",
                                                         size=size if "$" not in size else ""))
                    continue
                if sp < 0:  # the whole cache, or an address of the callee's own: nowhere the caller names
                    site = self._maint(call, mspec, [], ev, f, order, ev.guards + inner, via + (callee,),
                                       start="", end="", size="")
                    if sp == ELSEWHERE and 0 <= ep < len(args):
                        site = replace(site, aim=args[ep])
                    f.maintenance.append(site)
                    continue
                start = args[sp]
                end = args[ep] if 0 <= ep < len(args) else ""
                size = args[zp] if 0 <= zp < len(args) else ""
                if length and "$" not in (put := putter(args))(offset + length):
                    # the range in the callee's parameters, with the caller's arguments put in
                    off = put(offset)
                    start = f"{operand(start)} + {operand(off)}" if offset and number(off) != 0 else start
                    end, size = "", put(length)
                site = self._maint(call, mspec, [], ev, f, order, ev.guards + inner, via + (callee,),
                                   start=start, end=end, size=size)
                f.maintenance.append(site)
            return order
        if depth < MAX_MACRO_DEPTH and callee in self.index.macros and not self._interesting.isdisjoint(
                self.index.reachable_names(callee)):
            macro = next((m for m in self._defs(callee) if m.params is not None), None)
            if macro is not None:
                for name, sub_args in self._expansion(callee, macro.params, args):
                    order = self._call(name, sub_args, ev, f, order, via + (callee,), depth + 1)
            else:
                for target in self.index.alias_targets(callee, self._def_files(callee).__contains__):
                    order = self._call(target, args, ev, f, order, via + (callee,), depth + 1)
        return order

    def _at_call(self, guards: tuple[Guard, ...], args: tuple[str, ...], f: FunctionFlow) -> tuple[Guard, ...] | None:
        """A callee's guards (on its parameters, `$i`) in the caller's terms: the arguments put in,
        and a guard whose value the caller's constants decide (`flags & FLAG_PA_IS_EXEC` with
        flags a constant) dropped when it holds; None when one is false."""
        out = []
        put = putter(args, lambda a: f"({a})")
        for g in guards:
            cond = put(g.cond)
            value = self._constant(cond, f)
            if value is None:
                out.append(Guard(cond, g.holds, g.exit) if cond != g.cond else g)
            elif bool(value) != g.holds:
                return None
        return tuple(out)

    def classify_in(self, text: str, f: FunctionFlow) -> Aliases:
        """`classify` of a text of f's, as f's file sees the summaries (for the checks)."""
        self._arch, self._file = self.vocab.arch_of(f.file), f.file
        return self.classify(text, f)

    def constant(self, name: str, file: str) -> int | None:
        """The value of an object-like macro as code in `file` sees it (PAGE_SIZE), or None."""
        self._arch, self._file = self.vocab.arch_of(file), file
        return self._constant(name, FunctionFlow("", file, 0, (), None)) if IDENTIFIER.fullmatch(name) else None

    def _constant(self, text: str, f: FunctionFlow, depth: int = 0) -> int | None:
        """The value of an integer expression of numbers, object-like macros and the caller's locals
        assigned once, or None."""
        if "$" in text or depth > 4:
            return None

        def value(name: str) -> int | None:
            if name in self.vocab.constants and self.vocab.alias_rules_apply(f.file):
                return self.vocab.constants[name]
            if name in f.linear and name not in f.mutated and name not in f.params:
                return self._constant(f.linear[name], f, depth + 1)
            # the definitions code of this file can see: its own, and headers' (a macro of another
            # .c file is not; trace_stack.c's fallback MCOUNT_INSN_SIZE 0 is no one else's); one value
            # only when they all agree
            values = {self._constant(m.body, f, depth + 1) for m in self._defs(name)
                      if m.params is None and m.body.strip() and (m.file == f.file or m.file.endswith(".h"))}
            return values.pop() if len(values) == 1 else None

        return const_eval(text, value)

    def _expansion(self, macro: str, params: tuple[str, ...], args: tuple[str, ...]
                   ) -> list[tuple[str, tuple[str, ...]]]:
        """The calls in a macro's body that can matter, with the arguments substituted (memoized)."""
        key = (macro, args, len(self._interesting), self._arch)
        hit = self._expansions.get(key)
        if hit is not None:
            return hit
        bindings = {p: a for p, a in zip(params, args) if p != "..."}
        out = []
        files = self._def_files(macro)
        for c in self.index.macro_calls.get(macro, ()):
            if c.file not in files:
                continue
            name = c.callee
            if name in self._interesting or (name in self.index.macros and not self._interesting.isdisjoint(
                    self.index.reachable_names(name))):
                out.append((name, tuple(substitute(a, bindings) for a in c.args)))
        self._expansions[key] = out
        return out

    _NE = re.compile(r"^\(?\s*([A-Za-z_]\w*)\s*(!=|==)\s*(.+?)\s*\)?$")

    def _refine(self, start: str, aliases: Aliases, guards: tuple[Guard, ...], f: FunctionFlow) -> Aliases:
        """Under `if (waddr != addr)`, waddr is not what addr is: drop those values."""
        base = root(start)
        for g in guards:
            m = self._NE.match(g.cond)
            if not m or m.group(1) != base:
                continue
            differs = (m.group(2) == "!=") == g.holds
            if differs:
                other = self.classify(m.group(3), f)
                if aliases - other:
                    aliases = aliases - other
        return aliases

    def _maint(self, call: str, spec: MaintenanceSpec, args: list[str], ev: Event, f: FunctionFlow, order: int,
               guards: tuple[Guard, ...], via: tuple[str, ...], start: str | None = None, end: str | None = None,
               size: str | None = None) -> MaintSite:
        if start is None:
            start = args[spec.start] if not spec.whole and spec.start < len(args) else ""
            end = args[spec.end] if 0 <= spec.end < len(args) else ""
            size = args[spec.size] if 0 <= spec.size < len(args) else ""
        aliases = self.classify(start, f) if start else frozenset()
        aliases = self._refine(start, aliases, guards, f)
        same = self.vocab.same_place
        reaches = aliases | {AliasVal(k, a.origin) for a in aliases for k in same.get(a.kind, ())}
        return MaintSite(order, ev.line, ev.column, call, spec, start, end or "", size or "", aliases, guards, via,
                         reaches=reaches)


_NO_FLOW = FunctionFlow("", "", 0, (), None)  # _origin_of a text alone, with no function's values

_FUNCTION_CAST = re.compile(r"^\(\s*[\w\s]+\(\s*\*\s*\)\s*\([^()]*\)\s*\)\s*")


def _pointer_value(text: str) -> str:
    """The address a called expression holds: `((void (*)(void))sram)` and `(*fn)` name sram and fn."""
    t = strip(text)
    for _ in range(4):
        t = _FUNCTION_CAST.sub("", t).strip()
        if t.startswith("*"):
            t = t[1:].strip()
        t2 = strip(t)
        if t2 == t:
            break
        t = t2
    return t


def _member_key(text: str) -> str:
    """A member access as the flow keeps its value: `p -> ainsn . insn` and `p->ainsn.insn` alike."""
    return re.sub(r"\s+", "", text)


_WIDTHS = {"u8": 1, "s8": 1, "char": 1, "u16": 2, "s16": 2, "short": 2, "__le16": 2, "u32": 4, "s32": 4,
           "int": 4, "unsigned int": 4, "__le32": 4, "long": 4, "unsigned long": 4, "u64": 8, "s64": 8}


def _width_size(width: str) -> str:
    w = width.replace("const", "").replace("volatile", "").strip()
    return str(_WIDTHS[w]) if w in _WIDTHS else ""


def const_size(text: str) -> int | None:
    """Bytes, when the text states them: a number, sizeof(u32), ..."""
    t = strip(text)
    n = number(t)
    if n is not None:
        return n
    m = re.match(r"^sizeof\s*\(\s*([\w ]+?)\s*\)$", t)
    if m and m.group(1) in _WIDTHS:
        return _WIDTHS[m.group(1)]
    return None
