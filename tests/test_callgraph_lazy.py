"""The call graph held as plain dicts answers exactly as the networkx graph it replaced: the same
nodes, kinds, defs, edges and sites (in the same orders), the same callers, callees and reaches, and
the same shortest path networkx picks among paths of equal length.  The networkx graph itself is
built only when asked for."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest

from armalias.callgraph import CallGraph
from armalias.facts import AsmSymbol, Call, FileFacts, FunctionDef, Initializer, MacroDef
from armalias.index import SymbolIndex
from armalias.scan import ScanOptions, scan

STRUCT = "cpu_cache_fns"
MEMBERS = ("coherent_kern_range", "flush_kern_all")


def reference_graph(index: SymbolIndex, cache_fns_struct: str) -> nx.DiGraph:
    """The graph as CallGraph built it before it kept plain dicts (networkx, edge by edge)."""
    g = nx.DiGraph()

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
    for member in sorted(index.members):
        for impl, where in index.member_implementations(member, cache_fns_struct):
            edge("." + member, impl, where)
    return g


def reference_reach(g: nx.DiGraph, target: str) -> tuple:
    keep = (set(nx.ancestors(g, target)) | {target}) if target in g else set()
    sub = g.subgraph(keep)
    nodes = tuple(sorted((n, sub.nodes[n]["kind"], tuple(sub.nodes[n]["defs"])) for n in sub.nodes))
    edges = tuple(sorted((a, b, tuple(sorted(set(sub[a][b]["sites"])))) for a, b in sub.edges))
    return nodes, edges


def reference_path(g: nx.DiGraph, source: str, target: str) -> list[str]:
    try:
        return nx.shortest_path(g, source, target)
    except (nx.NetworkXNoPath, nx.NodeNotFound):
        return []


def reference_stopping(g: nx.DiGraph, name: str, stop: set[str]) -> set[str]:
    if name not in g:
        return set()
    seen: set[str] = set()
    stack = [name]
    while stack:
        for p in g.predecessors(stack.pop()):
            if p not in seen:
                seen.add(p)
                if p not in stop:
                    stack.append(p)
    return seen


def random_facts(seed: int) -> list[FileFacts]:
    """A few files of functions, calls (some passing a function as a callback, some at file scope),
    macros (aliases and bodies with calls), asm symbols and cache_fns initializers over a small pool
    of names: many cycles, self-calls, repeated sites and paths of equal length."""
    rnd = random.Random(seed)
    pool = [f"f{i}" for i in range(rnd.randint(4, 40))]
    macro_names = [f"M{i}" for i in range(rnd.randint(0, 8))]
    asm = [f"a_{m}" for m in MEMBERS] + ["asm_entry"]
    names = pool + macro_names + asm + ["." + m for m in MEMBERS] + ["unknown_x"]
    facts = []
    for k in range(rnd.randint(1, 4)):
        file = f"arch/arm/f{k}.c"
        fns = rnd.sample(pool, rnd.randint(0, len(pool)))
        functions = tuple(FunctionDef(n, file, 10 * i + 1, 10 * i + 5) for i, n in enumerate(fns))
        calls = []
        for _ in range(rnd.randint(0, 6 * len(pool))):
            caller = rnd.choice(fns + [""]) if fns else ""
            args = tuple(rnd.choice(pool + ["&" + rnd.choice(pool), "& " + rnd.choice(pool), "0", caller or "x"])
                         for _ in range(rnd.randint(0, 2)))
            calls.append(Call(rnd.choice(names), caller, file, rnd.randint(1, 30), 1, args))
        macros = []
        for i, m in enumerate(rnd.sample(macro_names, rnd.randint(0, len(macro_names)))):
            if rnd.random() < 0.5:
                body = rnd.choice(names[:-1] + [f"cpu_cache.{MEMBERS[0]}", f"__glue(_CACHE,_{MEMBERS[1]})"])
                macros.append(MacroDef(m, file, 100 + i, 100 + i, None, body))
            else:
                macros.append(MacroDef(m, file, 100 + i, 100 + i, ("x",), "y(x)"))
                for _ in range(rnd.randint(1, 3)):
                    calls.append(Call(rnd.choice(names), m, file, 100 + i, 1, (), in_macro=True))
        inits = tuple(Initializer(STRUCT, "v", rnd.choice(MEMBERS), rnd.choice(pool), file, 200 + i)
                      for i in range(rnd.randint(0, 3)))
        syms = tuple(AsmSymbol(s, file, 300 + i) for i, s in enumerate(rnd.sample(asm, rnd.randint(0, len(asm)))))
        facts.append(FileFacts(file, str(k), functions, tuple(calls), tuple(macros), inits, syms))
    return facts


def assert_same(index: SymbolIndex, all_pairs: bool = True) -> None:
    ref = reference_graph(index, STRUCT)
    cg = CallGraph(index, STRUCT)
    names = list(ref.nodes) + ["not_a_node"]
    for name in names:
        assert (name in cg) == (name in ref)
        assert cg.callers_of(name) == (set(nx.ancestors(ref, name)) if name in ref else set())
        assert cg.callees_of(name) == (set(nx.descendants(ref, name)) if name in ref else set())
        stop = set(names[::3])
        assert cg.callers_stopping_at(name, stop) == reference_stopping(ref, name, stop)
        r = cg.reach(name)
        assert (r.target, r.nodes, r.edges) == (name, *reference_reach(ref, name))
    pairs = [(a, b) for a in names for b in names] if all_pairs else \
        [(random.Random(len(names)).choice(names), b) for b in names]
    for a, b in pairs:
        assert cg.path(a, b) == reference_path(ref, a, b), (a, b)
    assert "graph" not in vars(cg)  # nothing above built the networkx graph
    g = cg.graph
    assert list(g.nodes(data=True)) == list(ref.nodes(data=True))
    assert list(g.edges(data=True)) == list(ref.edges(data=True))
    assert [list(g.pred[n]) for n in g] == [list(ref.pred[n]) for n in ref]
    assert cg.graph is g


@pytest.mark.parametrize("seed", range(60))
def test_random_graphs_answer_as_networkx_did(seed: int):
    assert_same(SymbolIndex(random_facts(seed), MEMBERS))


def test_demo_tree_answers_as_networkx_did(demo_tree: Path):
    r = scan([demo_tree], ScanOptions(jobs=1))
    assert_same(r.index)


def test_ties_between_equal_length_paths_broken_as_networkx_does():
    # Two paths s -> t of length 3: a breadth-first search from s alone would take b (called first);
    # networkx grows the smaller fringe, so meets the search from t at a (its first caller).
    calls = [("s", "b"), ("s", "a"), ("a", "t"), ("b", "t"), ("x", "t"), ("y", "t"), ("s", "c"), ("c", "d")]
    facts = [FileFacts("f.c", "0", tuple(FunctionDef(n, "f.c", 1, 2) for n in "sabtcdxy"),
                       tuple(Call(b, a, "f.c", i, 1) for i, (a, b) in enumerate(calls)))]
    index = SymbolIndex(facts)
    ref = reference_graph(index, STRUCT)
    cg = CallGraph(index, STRUCT)
    assert cg.path("s", "t") == nx.shortest_path(ref, "s", "t") == ["s", "a", "t"]
    assert cg.path("t", "s") == [] and cg.path("s", "s") == ["s"] and cg.path("nope", "nope") == []


def test_sites_kept_in_order_found_and_nodes_with_kinds():
    facts = [FileFacts("f.c", "0", (FunctionDef("f", "f.c", 1, 9), FunctionDef("lonely", "f.c", 20, 21)),
                       (Call("g", "f", "f.c", 5, 1), Call("g", "f", "f.c", 3, 1), Call("g", "f", "f.c", 5, 1),
                        Call("f", "", "f.c", 30, 1)),
                       (MacroDef("g", "f.c", 40, 40, None, "lonely"),))]
    cg = CallGraph(SymbolIndex(facts), STRUCT)
    assert list(cg.succ["f"]) == ["g"] and list(cg.pred["g"]) == ["f"]
    assert cg.sites("f", "g") == ["f.c:5", "f.c:3", "f.c:5"]
    assert cg.succ["f"]["g"] is cg.pred["g"]["f"]  # one list for both directions
    assert "lonely" in cg and cg.node("lonely") == ("function", ("f.c:20",))
    assert cg.node("g") == ("macro", ("f.c:40",)) and cg.node("<file scope f.c>") == ("unknown", ())
    assert cg.reach("g").edges == (("<file scope f.c>", "f", ("f.c:30",)), ("f", "g", ("f.c:3", "f.c:5")))



def test_building_and_asking_the_graph_does_not_import_networkx():
    code = """
import sys
from armalias.callgraph import CallGraph
from armalias.facts import Call, FileFacts, FunctionDef
from armalias.index import SymbolIndex
facts = [FileFacts("f.c", "0", (FunctionDef("f", "f.c", 1, 2),), (Call("g", "f", "f.c", 1, 1),))]
cg = CallGraph(SymbolIndex(facts), "cpu_cache_fns")
assert cg.path("f", "g") == ["f", "g"] and cg.callers_of("g") == {"f"} and cg.reach("g").edges
assert "networkx" not in sys.modules
assert list(cg.graph.edges) == [("f", "g")] and "networkx" in sys.modules
"""
    subprocess.run([sys.executable, "-c", code], check=True)


def _implementations_by_definition(index: SymbolIndex, member: str, struct: str) -> list[tuple[str, str]]:
    """member_implementations as its docstring defines it, one pass over everything per member."""
    found: dict[str, str] = {}
    for init in index.initializers:
        if init.member == member and (init.struct == struct or not init.struct) and init.value.isidentifier():
            found.setdefault(init.value, f"{init.file}:{init.line}")
    for table in (index.asm_symbols, index.functions):
        for sym, defs in table.items():
            if sym.endswith("_" + member):
                found.setdefault(sym, f"{defs[0].file}:{defs[0].line}")
    return sorted(found.items())


@pytest.mark.parametrize("seed", range(30))
def test_member_implementations_found_in_one_pass_are_those_of_the_definition(seed: int):
    """The symbols named *_member are found for all the members in one pass over the names
    (SymbolIndex._named_after_members): the same symbols, and the same first definition of each, as
    a search per member, for names that end in two members, hold a member in their middle, are a
    member themselves or end in one after several `_`."""
    rng = random.Random(seed)
    parts = ["flush", "kern", "all", "coherent", "range", "v4wb", "arm926", "", "x", "_"]
    names = ["_".join(rng.choice(parts) for _ in range(rng.randint(1, 6))) for _ in range(200)]
    names += [f"{rng.choice(parts)}_{m}" for m in MEMBERS for _ in range(5)] + list(MEMBERS)
    facts = []
    for i in range(6):
        file = f"arch/arm/mm/f{i}.{'S' if i % 2 else 'c'}"
        chosen = rng.sample(names, 40)
        facts.append(FileFacts(
            file, str(i),
            functions=tuple(FunctionDef(n, file, j + 1, j + 2) for j, n in enumerate(chosen[:20])),
            asm_symbols=tuple(AsmSymbol(n, file, j + 1) for j, n in enumerate(chosen[20:])),
            initializers=tuple(Initializer(rng.choice([STRUCT, "", "other"]), "v", rng.choice(MEMBERS + ("probe",)),
                                           rng.choice(names + ["0", "a->b"]), file, j + 1) for j in range(8))))
    index = SymbolIndex(facts, MEMBERS)
    for struct in (STRUCT, ""):
        for member in MEMBERS + ("probe", "kern_all"):  # the last two: not members, searched the long way
            assert index.member_implementations(member, struct) == _implementations_by_definition(index, member, struct)


@pytest.mark.parametrize("seed", range(40))
def test_code_callers_are_the_callers_in_code(seed: int):
    """code_callers(name): the functions with a call of name in their code, as the index holds the
    calls (callbacks, macro bodies and file scope excluded), read off the graph's edges."""
    index = SymbolIndex(random_facts(seed), MEMBERS)
    cg = CallGraph(index, STRUCT)
    by_definition: dict[str, set[str]] = {}
    for c in index.code_calls:
        if c.caller:
            by_definition.setdefault(c.callee, set()).add(c.caller)
    names = set(cg.succ) | set(cg.pred) | {"not_a_node"}
    assert any(by_definition.values())
    for name in names:
        assert cg.code_callers(name) == by_definition.get(name, set()), name
    # a function only handed over as an argument, or only called from a macro body, has none
    facts = [FileFacts("f.c", "0", (FunctionDef("f", "f.c", 1, 9), FunctionDef("cb", "f.c", 10, 12)),
                       (Call("run", "f", "f.c", 3, 1, ("cb",)), Call("g", "M", "f.c", 20, 1, (), True),
                        Call("g", "", "f.c", 30, 1)),
                       (MacroDef("M", "f.c", 20, 20, ("x",), "g(x)"),))]
    cg = CallGraph(SymbolIndex(facts), STRUCT)
    assert cg.callers_of("cb") == {"f"} and cg.code_callers("cb") == set()
    assert cg.callers_of("g") == {"M", "<file scope f.c>"} and cg.code_callers("g") == set()
    assert cg.code_callers("run") == {"f"}
