"""The call graph of the scanned tree: the only module that imports networkx.

Nodes are names: C functions, macros (function-like, and object-like aliases), struct members
(``.coherent_kern_range``) and assembly symbols.  Edges: caller -> callee for calls in code and in
macro bodies, caller -> fn for a function passed as a call argument (a callback), alias macro -> what it stands for, cache_fns member -> each implementation.
Node attribute ``kind``: function | macro | member | asm | unknown; ``defs``: "file:line" strings.

The graph is held as plain dicts (``succ``, ``pred``), cheap to build for the whole tree; a node's
kind and defs are read from the index when first asked for.  ``graph``, the same graph as a networkx
DiGraph, is built on first use only, and networkx imported then.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from itertools import islice
from typing import TYPE_CHECKING, Union

from armalias.facts import Call
from armalias.index import SymbolIndex

if TYPE_CHECKING:
    import networkx as nx


@dataclass(frozen=True)
class Reach:
    """Who reaches a function: edges (caller, callee, "file:line") of the subgraph above it."""

    target: str
    nodes: tuple[tuple[str, str, tuple[str, ...]], ...]  # (name, kind, defs)
    edges: tuple[tuple[str, str, tuple[str, ...]], ...]  # (caller, callee, sites)


Site = Union[Call, str]  # a call in code or in a macro body, or "file:line" (an alias, an implementation)


def site_text(site: Site) -> str:
    return site if isinstance(site, str) else f"{site.file}:{site.line}"


def site_file(site: Site) -> str:
    return site.rsplit(":", 1)[0] if isinstance(site, str) else site.file


def _site_list(found: Site | list[Site]) -> list[Site]:
    """An edge's sites as stored (one Site, or a list of them when there are several), as a list."""
    return found if isinstance(found, list) else [found]


_NO = object()  # no build takes this step


def _step(ctx: str | None, arch: str | None):
    """The architecture a path is in after code of `arch` (None: generic), or _NO."""
    if arch is None or arch == ctx:
        return ctx
    return arch if ctx is None else _NO


def _edges(index: SymbolIndex, cache_fns_struct: str) -> Iterator[tuple[str, str, Site]]:
    """Every edge (caller, callee, site) once per site, in the order the graph is built.  A site is
    the Call itself where there is one: the graph of a whole tree holds a million edges, and a
    "file:line" string for each is made only when asked for (site_text)."""
    functions = index.functions
    names = functions.keys()
    for c in index.code_calls:
        caller = c.caller or f"<file scope {c.file}>"
        site = c
        yield caller, c.callee, site
        # A function handed to another as a callback (stop_machine(fn, ...)) runs on the
        # caller's behalf: an edge caller -> fn, so patch_text reaches __patch_text_real.  Such an
        # argument names a function, or `&` one: most calls have none (3,687 of 150,000 on whole 6.12)
        args = c.args
        if not args or (names.isdisjoint(args) and "&" not in "".join(args)):
            continue
        for arg in args:
            name = arg[1:].strip() if arg.startswith("&") else arg
            if name in functions and name != c.caller:
                yield caller, name, site
    for macro, calls in index.macro_calls.items():
        for c in calls:
            yield macro, c.callee, c
    for macro in index.macros:
        for target in index.alias_targets(macro):
            d = index.macros[macro][0]
            yield macro, target, f"{d.file}:{d.line}"
    # Only struct cpu_cache_fns members (rules/watched.toml) are resolved to implementations:
    # other function-pointer members stay leaves rather than fanning out to every `*_init`.
    for member in sorted(index.members):
        for impl, where in index.member_implementations(member, cache_fns_struct):
            yield "." + member, impl, where


class CallGraph:
    """succ: caller -> callee -> the edge's sites (one Site, or a list of them in the order found,
    when there are several: sites() gives them as "file:line"); pred: callee -> caller -> the same.
    The nodes: the index's functions (keys of succ, edges or not) and the ends of every edge."""

    def __init__(self, index: SymbolIndex, cache_fns_struct: str):
        self._index = index
        self._cache_fns_struct = cache_fns_struct
        self._attrs: dict[str, tuple[str, tuple[str, ...]]] = {}
        self._visible: dict[str, frozenset[str] | None] = {}
        self._statics: dict[str, frozenset[str]] = {}  # name -> the .c files with a static definition
        self._homes: dict[str, frozenset[str]] = {}  # name -> the files with a definition (_defined_in)
        succ: dict[str, dict[str, Site | list[Site]]] = {name: {} for name in index.functions}
        self._functions = len(succ)  # the first keys of succ
        pred: dict[str, dict[str, Site | list[Site]]] = {}
        for a, b, site in _edges(index, cache_fns_struct):
            out = succ.get(a)
            if out is None:
                out = succ[a] = {}
            sites = out.get(b)
            if sites is None:
                out[b] = site
                into = pred.get(b)
                if into is None:
                    pred[b] = {a: site}
                else:
                    into[a] = site
            elif isinstance(sites, list):
                sites.append(site)
            else:  # a second site: both directions share one list from now on
                out[b] = pred[b][a] = [sites, site]
        self.succ = succ
        self.pred = pred

    def sites(self, a: str, b: str) -> list[str]:
        """The sites of the edge a -> b as "file:line", in the order found."""
        return [site_text(s) for s in self._sites_of(a, b)]

    def node(self, name: str) -> tuple[str, tuple[str, ...]]:
        """(kind, defs) of a node, read from the index once."""
        hit = self._attrs.get(name)
        if hit is not None:
            return hit
        index = self._index
        # .get, and an empty list counts as absent: the index's defaultdicts may have grown keys since.
        if name.startswith("."):
            kind, defs = "member", ()
        elif found := index.functions.get(name):
            kind, defs = "function", tuple(f"{d.file}:{d.line}" for d in found)
        elif found := index.macros.get(name):
            kind, defs = "macro", tuple(f"{d.file}:{d.line}" for d in found)
        elif found := index.asm_symbols.get(name):
            kind, defs = "asm", tuple(f"{d.file}:{d.line}" for d in found)
        else:
            kind, defs = "unknown", ()
        self._attrs[name] = hit = (kind, defs)
        return hit

    @cached_property
    def graph(self) -> nx.DiGraph:
        """The graph as a networkx DiGraph (node attributes kind and defs, edge attribute sites),
        built on first use, its nodes and edges added in the order they were first seen."""
        import networkx as nx

        g = nx.DiGraph()

        def node(name: str) -> None:
            if name not in g:
                kind, defs = self.node(name)
                g.add_node(name, kind=kind, defs=defs)

        for name in islice(self.succ, self._functions):
            node(name)
        for a, b, _ in _edges(self._index, self._cache_fns_struct):
            if not g.has_edge(a, b):
                node(a)
                node(b)
                g.add_edge(a, b, sites=self.sites(a, b))
        return g

    def __contains__(self, name: str) -> bool:
        return name in self.succ or name in self.pred

    def _walk(self, adj: dict[str, dict[str, list[str]]], name: str, stop: set[str] | frozenset[str] = frozenset()
              ) -> set[str]:
        """Every node reached from name over adj (name itself only through a cycle), not going on
        from the names in stop."""
        seen: set[str] = set()
        stack = [name]
        while stack:
            for nxt in adj.get(stack.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    if nxt not in stop:
                        stack.append(nxt)
        return seen

    def callers_of(self, name: str) -> set[str]:
        if name not in self:
            return set()
        return self._walk(self.pred, name) - {name}

    def code_callers(self, name: str) -> set[str]:
        """The functions whose code calls name itself: not at file scope, nor in a macro body, nor
        by handing name to another function as an argument."""
        out = set()
        for caller, sites in self.pred.get(name, {}).items():
            for s in _site_list(sites):
                if isinstance(s, Call) and s.callee == name and s.caller and not s.in_macro:
                    out.add(caller)
                    break
        return out

    def callers_stopping_at(self, name: str, stop: set[str] | frozenset[str]) -> set[str]:
        """Callers of name, transitively, without walking up through the names in stop."""
        if name not in self:
            return set()
        return self._walk(self.pred, name, stop)

    def callees_of(self, name: str) -> set[str]:
        if name not in self:
            return set()
        return self._walk(self.succ, name) - {name}

    def reach(self, target: str) -> Reach:
        """The subgraph of everything that reaches target, and target itself."""
        keep = self.callers_of(target) | ({target} if target in self else set())
        nodes = tuple(sorted((n, *self.node(n)) for n in keep))
        edges = tuple(sorted((a, b, tuple(sorted(set(self.sites(a, b)))))
                             for a in keep for b in self.succ.get(a, {}) if b in keep))
        return Reach(target, nodes, edges)

    def path(self, source: str, target: str) -> list[str]:
        """A shortest call path source -> ... -> target, [] if there is none: the one networkx's
        bidirectional_shortest_path finds (the same search, over the same neighbour orders)."""
        if source not in self or target not in self:
            return []
        if source == target:
            return [source]
        found = self._meet(source, target)
        if found is None:
            return []
        forward, backward, w = found
        path: list[str] = []
        cur: str | None = w
        while cur is not None:
            path.append(cur)
            cur = forward[cur]
        path.reverse()
        cur = backward[w]
        while cur is not None:
            path.append(cur)
            cur = backward[cur]
        return path

    def _sites_of(self, a: str, b: str) -> list[Site]:
        return _site_list(self.succ[a][b])

    def _visible_files(self, name: str) -> frozenset[str] | None:
        """The files whose calls are name's own code when it is called from another file: those of
        its definitions that are not static, or are in headers, and of its macro definitions.
        None: any (a member, an assembly symbol, a name defined nowhere)."""
        hit = self._visible.get(name)
        if hit is None and name not in self._visible:
            defs = self._index.functions.get(name) or ()
            macros = self._index.macros.get(name) or ()
            if not defs and not macros:
                hit = None
            else:
                hit = frozenset(d.file for d in defs if not d.static or d.file.endswith(".h")) | {m.file for m in macros}
            self._visible[name] = hit
        return hit

    def _defined_in(self, name: str) -> frozenset[str]:
        """The files with a definition of name: a function, a macro or an assembly symbol."""
        files = self._homes.get(name)
        if files is None:
            index = self._index
            files = self._homes[name] = frozenset(
                d.file for defs in (index.functions.get(name), index.macros.get(name), index.asm_symbols.get(name))
                for d in defs or ())
        return files

    def _static_in(self, name: str, file: str) -> bool:
        """Whether name has a static definition in file (a .c file: a header's is every includer's)."""
        files = self._statics.get(name)
        if files is None:
            files = self._statics[name] = frozenset(
                d.file for d in self._index.functions.get(name) or () if d.static and not d.file.endswith(".h"))
        return file in files

    def _steps(self, state: tuple, w: str, arch_of: Callable[[str], str | None]) -> Iterator[tuple]:
        """The states one call v -> w leads to from state (v, architecture, file): the file is the
        one whose static v the path is in ("*": the start, any), or None (v's visible definitions).
        A call made in architecture X's code fixes the build to X from there on (generic code keeps
        whichever it has); a call of a name with a static definition in the calling file is a call
        of that definition."""
        v, ctx, here = state
        allowed = None if here == "*" else ({here} if here is not None else self._visible_files(v))
        for x in self._sites_of(v, w):
            f = site_file(x)
            if allowed is not None and f not in allowed:
                continue
            n = _step(ctx, arch_of(f))
            if n is _NO:
                continue
            yield (w, n, f if self._static_in(w, f) else None)

    def _ends(self, state: tuple, end_file: str, arch_of: Callable[[str], str | None]) -> bool:
        target, ctx, here = state
        if _step(ctx, arch_of(end_file)) is _NO:
            return False
        if here == "*" or not end_file:
            return True
        if here is not None:
            return here == end_file
        visible = self._visible_files(target)
        return visible is None or end_file in visible

    def one_build(self, path: list[str], end_file: str, arch_of: Callable[[str], str | None]) -> bool:
        """Whether one build of the kernel can take this call path (see path_in_one_build)."""
        states = {(path[0], None, "*")}
        for w in path[1:]:
            states = {n for st in states for n in self._steps(st, w, arch_of)}
            if not states:
                return False
        return any(self._ends(st, end_file, arch_of) for st in states)

    def path_in_one_build(self, source: str, target: str, end_file: str,
                          arch_of: Callable[[str], str | None]) -> list[str]:
        """A shortest call path source -> ... -> target (defined in end_file) that one build of the
        kernel can take, [] if none.  Nodes are names, shared by every definition: a whole tree
        joins them across architectures (another architecture's flush_icache_range calls its own
        helpers) and across files (a static `start` here and one in a driver).  Breadth-first over
        (name, architecture, file of the static definition the path is in), see _steps."""
        if source not in self or target not in self:
            return []
        start = (source, None, "*")
        parent: dict[tuple, tuple | None] = {start: None}
        fringe = [start]
        while fringe:
            nxt = []
            for state in fringe:
                if state[0] == target and self._ends(state, end_file, arch_of):
                    out = []
                    cur: tuple | None = state
                    while cur is not None:
                        out.append(cur[0])
                        cur = parent[cur]
                    return out[::-1]
                for w in self.succ.get(state[0], {}):
                    for n in self._steps(state, w, arch_of):
                        if n not in parent:
                            parent[n] = state
                            nxt.append(n)
            fringe = nxt
        return []

    def reaching_in_one_build(self, roots, stop: frozenset[str], arch_of: Callable[[str], str | None],
                              depth: int | None = None) -> dict[str, set[str | None]]:
        """Every name that calls one of roots, transitively, in some build of the kernel, not walking
        up through the names in stop: name -> the architectures of those builds (None: generic code,
        every build).  The walk up is path_in_one_build's, reversed: a call made in architecture
        X's code only counts in X's build, and a caller in a file with its own static definition of
        a name calls that one (a name's nodes are shared by every architecture and every file).
        `depth`: only callers at most that many files away, a call counting one when it is made in
        a file with no definition of what it calls and none when it is made in one that has (a
        static helper's exported wrapper is as near as the helper).  Breadth-first, nearest first
        (a call of the same file goes to the front of the queue)."""
        dist: dict[tuple, int] = {}
        queue: deque[tuple[int, tuple]] = deque()
        for r in roots:
            if r in self:
                dist[(r, None, "*")] = 0
                queue.append((0, (r, None, "*")))
        while queue:
            d, state = queue.popleft()
            if d > dist[state]:  # reached nearer since it was queued
                continue
            w, ctx, here = state
            if w in stop and here != "*":
                continue
            home = self._defined_in(w)
            for c, sites in self.pred.get(w, {}).items():
                for x in _site_list(sites):
                    f = site_file(x)
                    static_here = self._static_in(w, f)
                    if not (here == "*" or (here == f and static_here) or (here is None and not static_here)):
                        continue
                    n = _step(ctx, arch_of(f))
                    if n is _NO:
                        continue
                    nd = d if f in home else d + 1
                    if depth is not None and nd > depth:
                        continue
                    nxt = (c, n, f if self._static_in(c, f) else None)
                    if nd < dist.get(nxt, nd + 1):
                        dist[nxt] = nd
                        if nd == d:
                            queue.appendleft((nd, nxt))
                        else:
                            queue.append((nd, nxt))
        found: dict[str, set[str | None]] = {}
        for c, n, here in dist:
            if here != "*":  # a root is found when it calls another
                found.setdefault(c, set()).add(n)
        return found

    def _meet(self, source: str, target: str
              ) -> tuple[dict[str, str | None], dict[str, str | None], str] | None:
        """Breadth-first from both ends, always growing the smaller fringe (networkx's
        _bidirectional_pred_succ): the parents on each side and the node where they met."""
        succ, pred = self.succ, self.pred
        forward: dict[str, str | None] = {source: None}
        backward: dict[str, str | None] = {target: None}
        forward_fringe = [source]
        reverse_fringe = [target]
        while forward_fringe and reverse_fringe:
            if len(forward_fringe) <= len(reverse_fringe):
                this_level, forward_fringe = forward_fringe, []
                for v in this_level:
                    for w in succ.get(v, ()):
                        if w not in forward:
                            forward_fringe.append(w)
                            forward[w] = v
                        if w in backward:
                            return forward, backward, w
            else:
                this_level, reverse_fringe = reverse_fringe, []
                for v in this_level:
                    for w in pred.get(v, ()):
                        if w not in backward:
                            backward[w] = v
                            reverse_fringe.append(w)
                        if w in forward:
                            return forward, backward, w
        return None


def reach_to_dot(reach: Reach) -> str:
    lines = [f'digraph "{reach.target}" {{', "  rankdir=LR;", "  node [shape=box, fontname=monospace];"]
    for name, kind, _ in reach.nodes:
        shape = {"macro": "ellipse", "member": "diamond", "asm": "hexagon"}.get(kind, "box")
        style = ', style=bold' if name == reach.target else ""
        lines.append(f'  "{name}" [shape={shape}{style}];')
    for a, b, sites in reach.edges:
        lines.append(f'  "{a}" -> "{b}" [tooltip="{", ".join(sites[:5])}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def reach_to_graphml(reach: Reach) -> str:
    import networkx as nx

    g = nx.DiGraph()
    for name, kind, defs in reach.nodes:
        g.add_node(name, kind=kind, defs=" ".join(defs))
    for a, b, sites in reach.edges:
        g.add_edge(a, b, sites=" ".join(sites))
    return "\n".join(nx.generate_graphml(g)) + "\n"
