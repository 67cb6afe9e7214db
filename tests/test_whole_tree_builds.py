"""A whole-tree scan holds every architecture's code, and names are shared across them: ARM's
flush_icache_range macro and m68k's, ARM's paging_init and powerpc's.  What it finds must be what some
build of the kernel does: call sites through the macro definitions the calling code gets, and callers
of callers selected only where a build can make that call.  And a macro that is only another spelling
of a watched call (ARM's gic_flush_dcache_to_poc) brings the files calling it, whether or not they
name a word of the rules."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from armalias.callgraph import CallGraph
from armalias.facts import Call, FileFacts, FunctionDef
from armalias.index import SymbolIndex
from armalias.rules import load_vocabulary
from armalias.scan import ScanOptions, scan

WHOLE = ScanOptions(jobs=1, use_cache=False, whole_tree=True)


def _tree(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def _sites(result) -> set[tuple[str, str, tuple[str, ...], tuple[str, ...]]]:
    return {(c.file, c.callee, c.via, c.args) for c in result.callsites}


def test_a_call_expands_through_its_own_architecture_s_macros(tmp_path: Path):
    _tree(tmp_path, {
        "arch/arm/include/asm/cacheflush.h": "#define flush_icache_range(s,e) __cpuc_coherent_kern_range(s,e)\n",
        "arch/m68k/include/asm/cacheflush.h": "#define flush_icache_range(start, len) __flush_icache_all()\n",
        "arch/arm/kernel/a.c": "void a(unsigned long x)\n{\n\tflush_icache_range(x, x + 4);\n}\n",
        "arch/m68k/kernel/b.c": "void b(unsigned long p)\n{\n\tflush_icache_range(p, 4);\n}\n",
        "kernel/c.c": "void c(unsigned long q)\n{\n\tflush_icache_range(q, q + 8);\n}\n",
    })
    sites = _sites(scan([tmp_path], WHOLE))
    assert sites == {
        ("arch/arm/kernel/a.c", "flush_icache_range", (), ("x", "x + 4")),
        ("arch/arm/kernel/a.c", "__cpuc_coherent_kern_range", ("flush_icache_range",), ("x", "x + 4")),
        ("arch/m68k/kernel/b.c", "flush_icache_range", (), ("p", "4")),
        ("arch/m68k/kernel/b.c", "__flush_icache_all", ("flush_icache_range",), ()),
        # generic code gets the vocabulary's architecture's definition (rules/vocabulary.toml [scope])
        ("kernel/c.c", "flush_icache_range", (), ("q", "q + 8")),
        ("kernel/c.c", "__cpuc_coherent_kern_range", ("flush_icache_range",), ("q", "q + 8")),
    }


def test_a_macro_spelling_a_watched_call_brings_its_callers(tmp_path: Path):
    _tree(tmp_path, {
        "arch/arm/include/asm/arch_gicv3.h":
            "#define gic_flush_dcache_to_poc(a,l)\t__cpuc_flush_dcache_area((a), (l))\n",
        "drivers/irqchip/its.c": "static void its_flush_cmd(void *cmd)\n{\n\tgic_flush_dcache_to_poc(cmd, 32);\n}\n",
    })
    result = scan([tmp_path], WHOLE)
    assert "drivers/irqchip/its.c" in {f.file for f in result.facts}
    assert ("drivers/irqchip/its.c", "__cpuc_flush_dcache_area", ("gic_flush_dcache_to_poc",),
            ("(cmd)", "(32)")) in _sites(result)


def test_callers_are_selected_where_a_build_can_make_the_call(tmp_path: Path):
    _tree(tmp_path, {
        # ARM's hook reaches flush_icache_range in ARM's code only; lib_sync in generic code
        "arch/arm/kernel/hook.c": "void text_hook(unsigned long p)\n{\n\tflush_icache_range(p, p + 4);\n}\n",
        "lib/sync.c": "void lib_sync(unsigned long p)\n{\n\tflush_icache_range(p, p + 4);\n}\n",
        "arch/arm/kernel/user.c": "void arm_user(void)\n{\n\ttext_hook(0);\n}\n",
        "kernel/user.c": "void generic_user(void)\n{\n\ttext_hook(0);\n}\n",
        # x86 has a text_hook of its own: calling it reaches nothing in any build
        "arch/x86/kernel/user.c": "void x86_user(void)\n{\n\ttext_hook(0);\n}\n",
        "arch/x86/kernel/lib_user.c": "void x86_lib_user(void)\n{\n\tlib_sync(0);\n}\n",
    })
    parsed = {f.file for f in scan([tmp_path], WHOLE).facts}
    assert parsed == {"arch/arm/kernel/hook.c", "lib/sync.c", "arch/arm/kernel/user.c", "kernel/user.c",
                      "arch/x86/kernel/lib_user.c"}


def test_the_second_round_searches_only_for_the_callers_of_the_roots(tmp_path: Path):
    """6.1's ia64 shape: every file of the chain names a rule word (a comment will do), so the first
    round holds callers many calls above flush_icache_range, up to vmalloc().  The second round's
    words are the names one file from a root (rules/watched.toml [prefilter] levels): its files
    hold the callers of callers, never a file calling vmalloc (1,482 files of 6.1 were)."""
    _tree(tmp_path, {
        "arch/ia64/mm/init.c": "void ia64_sync(unsigned long a)\n{\n\tflush_icache_range(a, a + 4);\n}\n",
        "arch/ia64/include/asm/pgtable.h": "/* flush_icache_range() for the module loader */\n"
                                           "static inline void set_pte(unsigned long *p, unsigned long v)\n"
                                           "{\n\tia64_sync(v);\n\t*p = v;\n}\n",
        "mm/vmalloc.c": "static void map_one(unsigned long *p)\n{\n\tset_pte(p, 0);\n}\n"
                        "void *vmalloc(unsigned long n)\n{\n\tmap_one(0);\n\tflush_cache_vmap(0, n);\n\treturn 0;\n}\n",
        "kernel/near.c": "void near_user(void)\n{\n\tia64_sync(0);\n}\n",  # a caller of a caller
        "drivers/far/user.c": "void far_probe(void)\n{\n\tvmalloc(4);\n}\n",  # four files up
        "arch/ia64/kernel/pte.c": "void pte_user(void)\n{\n\tset_pte(0, 0);\n}\n",  # two files up
    })
    parsed = {f.file for f in scan([tmp_path], WHOLE).facts}
    assert parsed == {"arch/ia64/mm/init.c", "arch/ia64/include/asm/pgtable.h", "mm/vmalloc.c", "kernel/near.c"}


def _graph(spec: dict[str, list[tuple[str, bool, list[str]]]]) -> CallGraph:
    facts = []
    for rel, fns in sorted(spec.items()):
        defs, calls = [], []
        for i, (name, static, callees) in enumerate(fns):
            defs.append(FunctionDef(name, rel, 10 * i + 1, 10 * i + 9, (), static))
            calls.extend(Call(c, name, rel, 10 * i + 2 + j, 2) for j, c in enumerate(callees))
        facts.append(FileFacts(rel, rel, functions=tuple(defs), calls=tuple(calls)))
    return CallGraph(SymbolIndex(facts), "cpu_cache_fns")


def test_reaching_callers_in_one_build():
    g = _graph({
        "arch/arm/kernel/a.c": [("arm_hook", False, ["flush_icache_range"]), ("start", True, ["arm_hook"]),
                                ("a_user", False, ["start"])],
        "drivers/b.c": [("start", True, []), ("b_user", False, ["start"])],  # b.c's own start
        "arch/x86/kernel/c.c": [("x86_user", False, ["arm_hook"])],
        "kernel/d.c": [("generic_user", False, ["arm_hook"]), ("generic_top", False, ["generic_user"])],
        "arch/x86/kernel/e.c": [("x86_top", False, ["generic_user"])],
    })
    reach = g.reaching_in_one_build(["flush_icache_range"], frozenset(), load_vocabulary().arch_of)
    assert reach == {"arm_hook": {"arm"}, "start": {"arm"}, "a_user": {"arm"},
                     "generic_user": {"arm"}, "generic_top": {"arm"}}
    # b_user calls b.c's start, not a.c's; x86 code calls x86's arm_hook and generic_user in x86's build


def test_callers_within_a_depth_count_the_files_crossed():
    """reaching_in_one_build's depth: a call counts one file when it is made in a file with no
    definition of what it calls, none when made in one that has (wrap calls hook, both lib/a.c's)."""
    g = _graph({
        "lib/a.c": [("hook", False, ["flush_icache_range"]), ("wrap", False, ["hook"])],
        "kernel/b.c": [("user", False, ["wrap"]), ("user2", False, ["user"])],
        "mm/c.c": [("top", False, ["user2"])],
    })
    arch_of = load_vocabulary().arch_of
    reach = lambda depth: set(g.reaching_in_one_build(["flush_icache_range"], frozenset(), arch_of, depth))  # noqa: E731
    assert reach(0) == set()
    assert reach(1) == {"hook", "wrap"}
    assert reach(2) == {"hook", "wrap", "user", "user2"}
    assert reach(3) == reach(None) == {"hook", "wrap", "user", "user2", "top"}


def test_an_architecture_s_own_definition_over_the_generic_fallback(tmp_path: Path):
    """asm-generic/cacheflush.h: `#ifndef flush_icache_user_range` / `#define flush_icache_user_range
    flush_icache_range`.  ARM defines its own (__cpuc_coherent_user_range); code built for ARM, and
    generic code (which gets ARM's), never sees the fallback.  An architecture without one does."""
    _tree(tmp_path, {
        "include/asm-generic/cacheflush.h":
            "#ifndef flush_icache_user_range\n#define flush_icache_user_range flush_icache_range\n#endif\n",
        "arch/arm/include/asm/cacheflush.h":
            "#define flush_icache_user_range(s,e)\t__cpuc_coherent_user_range(s,e)\n",
        "arch/arm/kernel/traps.c": "int op(unsigned long s)\n{\n\treturn flush_icache_user_range(s, s + 4);\n}\n",
        "fs/exec.c": "void run(unsigned long a)\n{\n\tflush_icache_user_range(a, a + 8);\n}\n",
        "arch/m68k/kernel/cache.c": "void m(unsigned long a)\n{\n\tflush_icache_user_range(a, a + 2);\n}\n",
    })
    sites = {(f, callee, via) for f, callee, via, _ in _sites(scan([tmp_path], WHOLE))}
    for f in ("arch/arm/kernel/traps.c", "fs/exec.c"):
        assert (f, "__cpuc_coherent_user_range", ("flush_icache_user_range",)) in sites
        assert (f, "flush_icache_range", ("flush_icache_user_range",)) not in sites
    assert ("arch/m68k/kernel/cache.c", "flush_icache_range", ("flush_icache_user_range",)) in sites
    assert ("arch/m68k/kernel/cache.c", "__cpuc_coherent_user_range", ("flush_icache_user_range",)) not in sites


def test_a_static_inline_function_of_a_header_is_every_includer_s():
    """A static definition in a header is compiled into every file including it: its callers
    anywhere reach what it calls (CallGraph._static_in holds only for .c files)."""
    g = _graph({
        "include/linux/sync.h": [("hflush", True, ["flush_icache_range"]), ("hwrap", True, ["hflush"])],
        "drivers/x.c": [("x_user", False, ["hwrap"])],
        "drivers/y.c": [("hflush", True, []), ("y_user", False, ["hflush"])],  # y.c's own hflush
    })
    reach = g.reaching_in_one_build(["flush_icache_range"], frozenset(), load_vocabulary().arch_of)
    assert set(reach) == {"hflush", "hwrap", "x_user"}


FILES = ("lib/a.c", "lib/b.c", "arch/arm/kernel/c.c", "arch/x86/kernel/d.c", "include/linux/e.h")
NAMES = ("flush_icache_range", "f0", "f1", "f2", "f3", "f4", "f5")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(FILES), st.sampled_from(NAMES[1:]), st.booleans(),
                          st.lists(st.sampled_from(NAMES), max_size=3)), max_size=12))
def test_callers_within_a_depth_are_those_of_every_depth_cut_short(defs):
    """On any small graph (cycles, statics, names defined in several files and architectures):
    depth None finds the names from which one build can take a path down to the root; each depth
    finds a subset of the next, and a depth past the number of files finds everything."""
    spec: dict[str, list] = {}
    for rel, name, static, callees in defs:
        if all(n != name for n, _, _ in spec.get(rel, [])):
            spec.setdefault(rel, []).append((name, static, callees))
    g = _graph(spec)
    arch_of = load_vocabulary().arch_of
    roots, stop = ["flush_icache_range"], frozenset({"f5"})
    everything = g.reaching_in_one_build(roots, stop, arch_of)
    # the walk up is path_in_one_build's, reversed: a name reaches the root in some build exactly
    # when one build can take a path from it down to the root
    walked = set(g.reaching_in_one_build(roots, frozenset(), arch_of)) - {"flush_icache_range"}
    assert walked == {n for n in NAMES[1:] if n in g and g.path_in_one_build(n, "flush_icache_range", "", arch_of)}
    previous: dict = {}
    for depth in range(len(FILES) + 2):
        now = g.reaching_in_one_build(roots, stop, arch_of, depth)
        assert all(now.get(n, set()) >= archs for n, archs in previous.items())  # grows with the depth
        assert all(archs <= everything.get(n, set()) for n, archs in now.items())
        previous = now
    assert previous == everything
