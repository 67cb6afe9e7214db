"""Call chains one build of the kernel can take.  The call graph's nodes are names: a whole tree
joins every architecture's definitions of a name, and every file's static function of that name.
The shortest path by names can run from ARM's code into another architecture's helper, or from one
driver's static `start` into another's.  A finding's chain must not (whole 6.1 tree: the chain of the
AA002 note in __patch_text_real ran `flush_icache_range > start > schedule > ...` through
parisc, um and a USB driver; it now reads `patch_text > patch_text_stop_machine > __patch_text >
__patch_text_real`)."""

from __future__ import annotations

from armalias.callgraph import CallGraph
from armalias.checks.alias import AliasChecks
from armalias.facts import Call, FileFacts, FunctionDef
from armalias.index import SymbolIndex
from armalias.rules import load_rules, load_vocabulary

ARCH_OF = load_vocabulary().arch_of


def _facts(spec: dict[str, list[tuple[str, bool, list[str]]]]) -> list[FileFacts]:
    """{file: [(function, static, [callees])]} -> facts, one line per function and call."""
    out = []
    for rel, fns in sorted(spec.items()):
        defs, calls, line = [], [], 1
        for name, static, callees in fns:
            start = line
            for callee in callees:
                line += 1
                calls.append(Call(callee, name, rel, line, 2))
            line += 1
            defs.append(FunctionDef(name, rel, start, line, (), static))
            line += 1
        out.append(FileFacts(rel, rel, functions=tuple(defs), calls=tuple(calls)))
    return out


def _graph(spec) -> CallGraph:
    return CallGraph(SymbolIndex(_facts(spec)), "cpu_cache_fns")


# generic code calls a hook every architecture defines; x86's hook reaches a name that ARM's
# target also has, by a shorter way than ARM's own
CROSS_ARCH = {
    "kernel/entry.c": [("patch_text", False, ["arch_hook"])],
    "arch/arm/kernel/hook.c": [("arch_hook", False, ["arm_mid"]), ("arm_mid", True, ["arm_low"])],
    "arch/arm/kernel/low.c": [("arm_low", False, ["__patch_text_real"])],
    "arch/arm/kernel/patch.c": [("__patch_text_real", False, [])],
    "arch/x86/kernel/hook.c": [("arch_hook", False, ["__patch_text_real"])],
    "arch/x86/kernel/patch.c": [("__patch_text_real", False, [])],
}

# one file's static `start` calls the target; another file's static `start` is what the entry reaches
STATIC_NAMES = {
    "drivers/a/a.c": [("patch_text", False, ["start", "a_helper"]), ("start", True, []),
                      ("a_helper", True, ["a_more"]), ("a_more", True, ["shared"])],
    "drivers/b/b.c": [("start", True, ["__patch_text_real"])],
    "lib/shared.c": [("shared", False, ["__patch_text_real"])],
    "arch/arm/kernel/patch.c": [("__patch_text_real", False, [])],
}


def test_the_shortest_path_by_names_crosses_architectures():
    g = _graph(CROSS_ARCH)
    short = g.path("patch_text", "__patch_text_real")
    assert short == ["patch_text", "arch_hook", "__patch_text_real"]
    assert g.one_build(short, "arch/x86/kernel/patch.c", ARCH_OF)  # x86's own call: one build
    assert not g.one_build(short, "arch/arm/kernel/patch.c", ARCH_OF)  # x86's hook, ARM's target
    assert g.path_in_one_build("patch_text", "__patch_text_real", "arch/arm/kernel/patch.c", ARCH_OF) == [
        "patch_text", "arch_hook", "arm_mid", "arm_low", "__patch_text_real"]


def test_a_static_function_is_its_own_file_s():
    g = _graph(STATIC_NAMES)
    short = g.path("patch_text", "__patch_text_real")
    assert short == ["patch_text", "start", "__patch_text_real"]  # a.c's start is not b.c's
    assert not g.one_build(short, "arch/arm/kernel/patch.c", ARCH_OF)
    assert g.path_in_one_build("patch_text", "__patch_text_real", "arch/arm/kernel/patch.c", ARCH_OF) == [
        "patch_text", "a_helper", "a_more", "shared", "__patch_text_real"]
    # a static function is reached only from its own file
    assert g.path_in_one_build("patch_text", "start", "drivers/b/b.c", ARCH_OF) == []
    assert g.path_in_one_build("patch_text", "start", "drivers/a/a.c", ARCH_OF) == ["patch_text", "start"]


def test_no_path_one_build_can_take():
    spec = {k: v for k, v in CROSS_ARCH.items() if k != "arch/arm/kernel/low.c"}
    g = _graph(spec)
    assert g.path("patch_text", "__patch_text_real")  # by names there is one
    assert g.path_in_one_build("patch_text", "__patch_text_real", "arch/arm/kernel/patch.c", ARCH_OF) == []


def test_a_finding_s_chain_is_one_build_s():
    rules, vocab = load_rules(), load_vocabulary()
    for spec, chain in ((CROSS_ARCH, ("patch_text", "arch_hook", "arm_mid", "arm_low", "__patch_text_real")),
                        (STATIC_NAMES, ("patch_text", "a_helper", "a_more", "shared", "__patch_text_real"))):
        checks = AliasChecks(rules, vocab, _graph(spec))
        assert checks.chain("__patch_text_real", "arch/arm/kernel/patch.c") == chain


def test_a_path_within_one_build_is_kept_as_networkx_found_it():
    g = _graph({"arch/arm/kernel/patch.c": [("patch_text", False, ["__patch_text", "other"]),
                                            ("__patch_text", False, ["__patch_text_real"]),
                                            ("other", False, ["__patch_text_real"]),
                                            ("__patch_text_real", False, [])]})
    short = g.path("patch_text", "__patch_text_real")
    assert g.one_build(short, "arch/arm/kernel/patch.c", ARCH_OF)
    checks = AliasChecks(load_rules(), load_vocabulary(), g)
    assert checks.chain("__patch_text_real", "arch/arm/kernel/patch.c") == tuple(short)
