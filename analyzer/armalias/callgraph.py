"""The call graph of the scanned tree: the only module that imports networkx.

Nodes are names: C functions, macros (function-like, and object-like aliases), struct members
(``.coherent_kern_range``) and assembly symbols.  Edges: caller -> callee for calls in code and in
macro bodies, caller -> fn for a function passed as a call argument (a callback), alias macro -> what it stands for, cache_fns member -> each implementation.
Node attribute ``kind``: function | macro | member | asm | unknown; ``defs``: "file:line" strings.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from armalias.index import SymbolIndex


@dataclass(frozen=True)
class Reach:
    """Who reaches a function: edges (caller, callee, "file:line") of the subgraph above it."""

    target: str
    nodes: tuple[tuple[str, str, tuple[str, ...]], ...]  # (name, kind, defs)
    edges: tuple[tuple[str, str, tuple[str, ...]], ...]  # (caller, callee, sites)


class CallGraph:
    def __init__(self, index: SymbolIndex, cache_fns_struct: str):
        g = nx.DiGraph()
        self.graph = g

        def node(name: str) -> None:
            if name in g:
                return
            if name.startswith("."):
                kind, defs = "member", ()
            elif name in index.functions:
                kind, defs = "function", tuple(f"{d.file}:{d.line}" for d in index.functions[name])
            elif name in index.macros:
                kind, defs = "macro", tuple(f"{d.file}:{d.line}" for d in index.macros[name])
            elif name in index.asm_symbols:
                kind, defs = "asm", tuple(f"{d.file}:{d.line}" for d in index.asm_symbols[name])
            else:
                kind, defs = "unknown", ()
            g.add_node(name, kind=kind, defs=defs)

        def edge(a: str, b: str, site: str) -> None:
            node(a)
            node(b)
            if g.has_edge(a, b):
                g[a][b]["sites"].append(site)
            else:
                g.add_edge(a, b, sites=[site])

        for name in index.functions:
            node(name)
        for c in index.code_calls:
            caller = c.caller or f"<file scope {c.file}>"
            edge(caller, c.callee, f"{c.file}:{c.line}")
            # A function handed to another as a callback (stop_machine(fn, ...)) runs on the
            # caller's behalf: an edge caller -> fn, so patch_text reaches __patch_text_real.
            for arg in c.args:
                name = arg[1:].strip() if arg.startswith("&") else arg
                if name in index.functions and name != c.caller:
                    edge(caller, name, f"{c.file}:{c.line}")
        for macro, calls in index.macro_calls.items():
            for c in calls:
                edge(macro, c.callee, f"{c.file}:{c.line}")
        for macro in index.macros:
            for target in index.alias_targets(macro):
                d = index.macros[macro][0]
                edge(macro, target, f"{d.file}:{d.line}")
        # Only struct cpu_cache_fns members (rules/watched.toml) are resolved to implementations:
        # other function-pointer members stay leaves rather than fanning out to every `*_init`.
        for member in sorted(index.members):
            for impl, where in index.member_implementations(member, cache_fns_struct):
                edge("." + member, impl, where)

    def __contains__(self, name: str) -> bool:
        return name in self.graph

    def callers_of(self, name: str) -> set[str]:
        if name not in self.graph:
            return set()
        return set(nx.ancestors(self.graph, name))

    def callers_stopping_at(self, name: str, stop: set[str] | frozenset[str]) -> set[str]:
        """Callers of name, transitively, without walking up through the names in stop."""
        if name not in self.graph:
            return set()
        seen: set[str] = set()
        stack = [name]
        while stack:
            cur = stack.pop()
            for pred in self.graph.predecessors(cur):
                if pred not in seen:
                    seen.add(pred)
                    if pred not in stop:
                        stack.append(pred)
        return seen

    def callees_of(self, name: str) -> set[str]:
        if name not in self.graph:
            return set()
        return set(nx.descendants(self.graph, name))

    def reach(self, target: str) -> Reach:
        """The subgraph of everything that reaches target, and target itself."""
        keep = self.callers_of(target) | ({target} if target in self.graph else set())
        sub = self.graph.subgraph(keep)
        nodes = tuple(sorted((n, sub.nodes[n]["kind"], tuple(sub.nodes[n]["defs"])) for n in sub.nodes))
        edges = tuple(sorted((a, b, tuple(sorted(set(sub[a][b]["sites"])))) for a, b in sub.edges))
        return Reach(target, nodes, edges)

    def path(self, source: str, target: str) -> list[str]:
        try:
            return nx.shortest_path(self.graph, source, target)
        except (nx.NetworkXNoPath, nx.NodeNotFound):
            return []


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
    g = nx.DiGraph()
    for name, kind, defs in reach.nodes:
        g.add_node(name, kind=kind, defs=" ".join(defs))
    for a, b, sites in reach.edges:
        g.add_edge(a, b, sites=" ".join(sites))
    return "\n".join(nx.generate_graphml(g)) + "\n"
