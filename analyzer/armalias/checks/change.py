"""The checks of a change (`armalias check`): a function's head version judged against its base.

A function that only maintains the cache for its callers (a copypage helper, __flush_dcache_folio, a
module's I-cache flush) writes nothing that runs, so the checks of writes say nothing of it; its base
version is its contract.  These checks compare the maintenance of the two versions, by effect and
kind of cache rather than by the names of locals, so renaming, reordering or extracting a helper
says nothing: a call dropped, a range shortened, a call aimed elsewhere.

`ChangeChecks` is a part of `AliasChecks` (armalias.checks.alias), whose `finding`, `kinds`,
`_extents`, `_place` and `classify` it uses.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from itertools import product

from armalias.findings import Finding
from armalias.flow.guards import eval_guard, guards_allow
from armalias.source.cflow import LOOP
from armalias.flow.expr import strip
from armalias.flow.extent import Reader
from armalias.flow.sites import FunctionFlow, MaintSite, params_of
from armalias.rules import D_CLEANS, D_INVALIDATES


def _doing(g: FunctionFlow, effect, preds: dict[str, bool]) -> list[MaintSite]:
    """g's maintenance calls that have the effect and run on the kind of cache `preds` describes."""
    return [m for m in g.maintenance if effect(m.spec) and guards_allow(m.guards, preds)[0]]


class ChangeChecks:
    # what a maintenance call does, by the rule that says its loss: (rule, effect, whether a call has it)
    _EFFECTS = (("AA004", "invalidated the I-cache", lambda spec: spec.i == "invalidate"),
                ("AA005", "cleaned the D-cache to the point of coherency",
                 lambda spec: spec.d in D_CLEANS and spec.point == "poc"),
                ("AA001", "cleaned the D-cache", lambda spec: spec.d in D_CLEANS),
                ("AA002", "invalidated the D-cache", lambda spec: spec.d in D_INVALIDATES))

    @staticmethod
    def _length_of(m: MaintSite, reader: Reader):
        """The bytes a ranged call maintains, as a polynomial (Reader.span / length), or None."""
        if m.spec.whole or not m.start:
            return None
        if m.end:
            return reader.span(m.start, m.end)
        return reader.length(m.size) if m.size else None

    def check_shortened(self, before: FunctionFlow, f: FunctionFlow) -> list[Finding]:
        """AA003 in a check: a call the change keeps (same call, same place) that now maintains fewer
        bytes than before, by a sum of non-negative terms (an offset, a length: `va + len` for
        `to + len` with `to = va + offset`)."""
        out: list[Finding] = []
        olds = {}
        old_reader, reader = self._extents(before), self._extents(f)
        for mb in before.maintenance:
            if (n := self._length_of(mb, old_reader)) is not None:
                olds.setdefault((mb.call, self._place(mb.start, before)), []).append(n)
        for m in f.maintenance:
            new = self._length_of(m, reader)
            if new is None:
                continue
            for old in olds.get((m.call, self._place(m.start, f)), ()):
                diff = new.add(old, -1)
                if diff.terms and all(c < 0 for _, c in diff.terms):
                    less = " + ".join(("*".join(mono) or "1") if -c == 1 else f"{-c}*{'*'.join(mono) or '1'}"
                                      for mono, c in diff.terms)
                    out.append(self.finding("AA003", f, m.line, m.column, None, [m], (m.call, "shortened"),
                                            call=m.call, reason=f"the range is shorter than before this change, by {less}"))
                    break
        return out

    def check_dropped(self, before: FunctionFlow, f: FunctionFlow) -> list[Finding]:
        """A check's change that leaves a function without a kind of maintenance its base version
        did: an effect (I-cache invalidate, D-cache clean, to PoC) on a kind of cache (by the calls'
        guards) that nothing in the head does on it any more, anywhere.  Maintenance helpers
        (__sync_icache_dcache, __flush_dcache_folio, a module's I-cache flush) write nothing
        themselves: the base is their contract.  Where the call is aimed is left to the checks of
        writes: a place named by a local's name would not survive renaming the local."""
        kinds = self.kinds

        def does(g: FunctionFlow, effect) -> set[str]:
            return {name for name, preds in kinds if _doing(g, effect, preds)}

        for rule, what, effect in self._EFFECTS:  # the strongest effect lost says it
            lost = does(before, effect) - does(f, effect)
            if not lost:
                continue
            mb = next(m for m in before.maintenance if effect(m.spec) and any(
                guards_allow(m.guards, preds)[0] for name, preds in kinds if name in lost))
            shown = ("over the whole cache" if mb.spec.whole else f"at `{mb.start}`" if mb.start
                     else f"({mb.call})")
            return [self.finding(rule, f, f.line, 0, None, [m for m in f.maintenance if effect(m.spec)],
                                 ("dropped", *sorted(lost)), guard=self._kinds_guard(lost), variant="dropped",
                                 call=mb.via[0] if mb.via else mb.call, effect=what, place=shown,
                                 kinds=", ".join(k for k, _ in kinds if k in lost))]
        return self._dropped_one(before, f)

    def _dropped_one(self, before: FunctionFlow, f: FunctionFlow) -> list[Finding]:
        """check_dropped where the effect is still done on every kind of cache, but by fewer calls than
        before and by none over the whole cache: one of the places it was done is left out (the
        discard of the kernel alias before a copy through a colour alias, with the source page's
        flush still there).  Calls are counted, not named, so moving one into a helper keeps them."""
        for rule, what, effect in self._EFFECTS:
            if rule == "AA005":  # a reader of memory is told by check_poc_before, not by a count
                continue
            fewer = []
            for name, preds in self.kinds:
                old, new = _doing(before, effect, preds), _doing(f, effect, preds)
                if len(new) < len(old) and not any(m.spec.whole for m in new):
                    fewer.append(name)
            if not fewer:
                continue
            preds = dict(self.kinds)[fewer[0]]
            calls = Counter((m.via[0] if m.via else m.call) for m in _doing(f, effect, preds))
            had = _doing(before, effect, preds)
            mb = None
            for m in had:  # the first call of which the head has fewer
                key = m.via[0] if m.via else m.call
                if calls[key] > 0:
                    calls[key] -= 1
                elif mb is None:
                    mb = m
            mb = mb or had[0]
            call = mb.via[0] if mb.via else mb.call
            shown = f"at `{mb.start}`" if mb.start else f"({mb.call})" if mb.via else "over its own range"
            return [self.finding(rule, f, f.line, 0, None, [m for m in f.maintenance if effect(m.spec)],
                                 ("dropped-one", *sorted(fewer)), guard=self._kinds_guard(set(fewer)),
                                 variant="dropped_one", call=call, effect=what, place=shown,
                                 kinds=", ".join(k for k, _ in self.kinds if k in fewer))]
        return []

    # the kernel's test for each kind of D-cache (cachetype.h), as the guard of a finding about some
    _KIND_TESTS = {"VIVT": "cache_is_vivt()", "aliasing VIPT": "cache_is_vipt_aliasing()",
                   "VIPT/PIPT": "cache_is_vipt_nonaliasing()"}

    def _kinds_guard(self, kinds: set[str]) -> str:
        """The condition under which a finding about these kinds of cache holds ("" for all of them):
        the model replays its consumer only there (model.validate.scenario_for)."""
        if len(kinds) >= len(self.kinds):
            return ""
        return " || ".join(self._KIND_TESTS[k] for k, _ in self.kinds if k in kinds)

    def check_reaimed(self, before: FunctionFlow, f: FunctionFlow) -> list[Finding]:
        """A maintenance call the change keeps (the n-th call of that name here, or through that
        helper) that it aims elsewhere: at another alias or parameter than before (`uaddr` for
        `kaddr`: the kernel's colour flushed, not the user's), or at an address that no longer
        depends on a parameter it did (`vm_start` for `vm_start + offset`).  Names of locals do not
        count: locals assigned once are read through, and an alias is compared by its kind."""
        def grouped(g: FunctionFlow) -> dict[tuple[str, str], list[MaintSite]]:
            out: dict[tuple[str, str], list[MaintSite]] = {}
            for m in g.maintenance:
                if m.aimed_at:
                    out.setdefault((m.via[0] if m.via else m.call, m.call), []).append(m)
            return out

        # the calls of one name pair up with a base call aimed at the same place first (two calls
        # swapped are no call aimed elsewhere), the rest in their order
        pairs = []
        old = grouped(before)
        for key, sites in grouped(f).items():
            left = list(old.get(key, ()))
            rest = []
            for m in sites:
                same = next((mb for mb in left if not self._moved(mb.aimed_at, before, m.aimed_at, f)), None)
                if same is not None:
                    left.remove(same)
                else:
                    rest.append(m)
            pairs.extend((key, m, mb) for m, mb in zip(rest, left))
        found: dict[str, list[tuple[tuple[str, str], MaintSite, MaintSite, str, set[str]]]] = {}
        for key, m, mb in pairs:
            if strip(mb.aimed_at) == strip(m.aimed_at):
                continue  # the call's own text is unchanged
            why = self._moved(mb.aimed_at, before, m.aimed_at, f)
            rule = "AA004" if m.spec.i == "invalidate" else "AA002" if m.spec.d in D_INVALIDATES else \
                "AA001" if m.spec.d in D_CLEANS else ""
            kinds = {name for name, preds in self.kinds if guards_allow(m.guards, preds)[0]}
            if why and rule and kinds:
                found.setdefault(rule, []).append((key, m, mb, why, kinds))
        for rule in ("AA004", "AA002", "AA001"):  # the strongest effect moved says it, on every kind it moved on
            if rule not in found:
                continue
            key, m, mb, why, _ = found[rule][0]
            kinds = set().union(*(k for *_, k in found[rule]))
            return [self.finding(rule, f, m.line, m.column, None, [x[1] for x in found[rule]],
                                 ("reaimed", key[0]), guard=self._kinds_guard(kinds), variant="reaimed",
                                 call=key[0], new=" ".join(m.aimed_at.split()), old=" ".join(mb.aimed_at.split()),
                                 why=why, kinds=", ".join(k for k, _ in self.kinds if k in kinds))]
        return []

    def _moved(self, old: str, before: FunctionFlow, new: str, f: FunctionFlow) -> str:
        """Why the address `new` (in f) is not where `old` (in before) was, or "" when nothing says so."""
        def aliases(text: str, g: FunctionFlow) -> set[tuple[str, str]]:
            return {(a.kind, f"${g.params.index(a.origin)}" if a.origin in g.params else "")
                    for a in self.classify(text, g)}

        was, now = aliases(old, before), aliases(new, f)
        if was and now and not was & now:
            show = lambda vals, g: " or ".join(sorted(  # noqa: E731
                f"the parameter {g.params[int(o[1:])]}" if k in ("param", "exec") and o else f"the {k} alias"
                for k, o in vals))
            return f"{show(now, f)} instead of {show(was, before)}"
        # parameters by position: a renamed one is the same
        had = {before.params.index(p) for p in params_of(old, before, before.once)}
        has = {f.params.index(p) for p in params_of(new, f, f.once)}
        if had - has and has <= had:
            return "it no longer depends on " + ", ".join(f"`{before.params[i]}`" for i in sorted(had - has))
        return ""

    def check_replaced(self, before: FunctionFlow, now: FunctionFlow, at: int) -> list[Finding]:
        """What the definition that runs once a change deletes `before` (ARM's override of a __weak
        generic function: check.replaced) does wrong, judged as the head's version of the deleted
        one, and said at `at`, where the change deletes it: that is the line to fix.  Beside the
        checks of its writes, an effect the deleted one had on a kind of cache whatever else held
        (an I-cache invalidate under `cache_is_vivt()` only) that the other has there only under
        conditions the kind of cache does not decide (flush_dcache_page's `mapping`), or not at all."""
        self.stands_in[(now.file, now.name, now.line)] = before
        there = f"{now.file}:{now.line}"
        said = ("once this definition of {name}() is deleted, the one at {there} runs instead, and there "
                .format(name=now.name, there=there))
        found = [x for x in self.check_function(now)
                 if self.vocab.alias_rules_apply(now.file) or x.rule not in self.vocab.alias_rules]
        out = [replace(x, message=said + x.message) for x in found]
        for rule, what, effect in self._EFFECTS:  # the strongest effect no longer sure says it
            if any(x.rule == rule for x in found):
                break  # the checks of its writes say it already
            lost = [name for name, preds in self.kinds if _sure(before, effect, preds) and not _sure(now, effect, preds)]
            if not lost:
                continue
            kept = [m for m in now.maintenance if effect(m.spec)]
            # the conditions the calls wait on, those of their own branches before early returns
            undecided = {(g.exit, g.cond if g.holds else f"!({g.cond})") for m in kept for g in m.guards
                         if g.cond != LOOP and all(eval_guard(g.cond, preds) is None
                                                   for name, preds in self.kinds if name in lost)}
            conds = [c for _, c in sorted(undecided)][:3]
            how = (f"only under conditions the kind of cache does not decide ({', '.join(f'`{c}`' for c in conds)})"
                   if kept else "nowhere")
            out.append(self.finding(rule, now, now.line, 0, None, [], ("replaced", *lost), guard=self._kinds_guard(set(lost)),
                                    variant="replaced", name=now.name, there=there, effect=what, how=how,
                                    kinds=", ".join(lost)))
            break
        # said at the override's place; the evidence keeps the lines of the definition it comes from
        out = [replace(x, file=before.file, line=at, column=1, key_exprs=("replaced", now.file, *x.key_exprs),
                       write=replace(x.write, file=now.file) if x.write is not None else None,
                       maintenance=tuple(replace(m, file=now.file) for m in x.maintenance))
               for x in out]
        self.lent.update(x.fingerprint for x in out)
        return out


# conditions a set of calls is judged over at most (2 ** this assignments): more says nothing
MAX_UNDECIDED = 8


def _sure(g: FunctionFlow, effect, preds: dict[str, bool]) -> bool:
    """Whether g's calls with the effect run on this kind of cache whatever the conditions it does
    not decide: for every value of those conditions, one of the calls has all its guards hold (a
    call under `if (c)` and one under its `else` together are sure).  More than MAX_UNDECIDED
    conditions: taken as sure."""
    calls = _doing(g, effect, preds)
    literals = []
    for m in calls:
        lits = tuple((c.cond, c.holds) for c in m.guards if c.cond != LOOP and eval_guard(c.cond, preds) is None)
        if not lits:
            return True
        literals.append(lits)
    atoms = sorted({cond for lits in literals for cond, _ in lits})
    if not literals:
        return False
    if len(atoms) > MAX_UNDECIDED:
        return True
    for values in product((False, True), repeat=len(atoms)):
        value = dict(zip(atoms, values))
        if not any(all(value[c] == h for c, h in lits) for lits in literals):
            return False
    return True
