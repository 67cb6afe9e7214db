"""The C front end on kernel shapes: annotations, statement macros, macro bodies, tables, lines."""

import sys
from pathlib import Path

import pytest

from armalias.scan import ScanOptions, scan
from armalias.source.extract import extract_bytes
from armalias.source.text import blank_comments, neutralize


def facts_of(code: str, rel: str = "arch/arm/kernel/x.c"):
    data = code.encode()
    return extract_bytes(rel, data, "0")


def names_lines(facts):
    return [(f.name, f.line) for f in facts.functions]


def test_neutralize_keeps_length_and_lines():
    src = b"static int __kprobes __must_check foo(void __iomem *p) __acquires(x)\n{\n\treturn 0;\n}\n"
    out = neutralize(src)
    assert len(out) == len(src)
    assert out.count(b"\n") == src.count(b"\n")
    assert b"__kprobes" not in out and b"__acquires" not in out and b"(x)" not in out


def test_annotations_do_not_change_function_names():
    f = facts_of(
        "static void __maybe_unused notrace foo(void) { bar(); }\n"
        "int __must_check baz(int a) __releases(lock)\n{\n\treturn qux(a);\n}\n"
        "static inline u32 __attribute_const__ quux(u32 x) { return x; }\n"
    )
    assert names_lines(f) == [("foo", 1), ("baz", 2), ("quux", 6)]
    assert {(c.callee, c.caller) for c in f.calls} == {("bar", "foo"), ("qux", "baz")}


def test_nokprobe_symbol_without_semicolon_before_function():
    f = facts_of(
        "static void cb(void *r)\n{\n\tfirst(r);\n}\nNOKPROBE_SYMBOL(cb)\n\n"
        "int prep(void *code)\n{\n\tflush_icache_range((unsigned long)code, 4);\n\treturn 0;\n}\n"
    )
    assert names_lines(f) == [("cb", 1), ("prep", 7)]
    calls = {(c.callee, c.caller, c.line) for c in f.calls}
    assert ("flush_icache_range", "prep", 9) in calls
    assert not any(c.caller == "NOKPROBE_SYMBOL" for c in f.calls)


def test_loop_macros_are_loops_not_functions():
    f = facts_of(
        "void walk(void)\n{\n\tint cpu;\n\tfor_each_online_cpu(cpu) {\n\t\tpoke(cpu);\n\t}\n"
        "\tdo { } while_each_thread(g, t);\n\tafter();\n}\nvoid next_fn(void) { x(); }\n"
    )
    assert names_lines(f) == [("walk", 1), ("next_fn", 10)]
    assert {(c.callee, c.caller) for c in f.calls} == {("poke", "walk"), ("after", "walk"), ("x", "next_fn")}


def test_define_with_comment_and_continuations_is_one_macro():
    src = (
        "#define copy_and_flush(d, s, n) ({\t\\\n"
        "\t/* a comment that spans\t\\\n"
        "\t * continuation lines */\t\\\n"
        "\tmemcpy(d, s, n);\t\t\\\n"
        "\tflush_icache_range((unsigned long)(d), (unsigned long)(d) + (n));\t\\\n"
        "})\n"
        "void user(void) { copy_and_flush(a, b, 4); }\n"
    )
    f = facts_of(src, "arch/arm/include/asm/y.h")
    (m,) = [m for m in f.macros if m.name == "copy_and_flush"]
    assert m.params == ("d", "s", "n") and (m.line, m.end_line) == (1, 6)
    body_calls = {(c.callee, c.line, c.args) for c in f.calls if c.in_macro}
    assert ("flush_icache_range", 5, ("(unsigned long)(d)", "(unsigned long)(d) + (n)")) in body_calls
    # the body is not parsed as code: no call of flush_icache_range outside a function
    assert not [c for c in f.calls if not c.in_macro and c.callee == "flush_icache_range"]
    assert names_lines(f) == [("user", 7)]


def test_designated_initializers_of_cache_fns():
    f = facts_of("struct cpu_cache_fns v9_cache_fns __initconst = {\n\t.coherent_kern_range = v9_coherent_kern_range,\n};\n")
    assert [(i.struct, i.variable, i.member, i.value, i.line) for i in f.initializers] == [
        ("cpu_cache_fns", "v9_cache_fns", "coherent_kern_range", "v9_coherent_kern_range", 2)
    ]


def test_comment_blanking_keeps_strings_and_lines():
    src = b'a = "/* not a comment */"; // gone\n/* x\n y */ b;\n'
    out = blank_comments(src)
    assert b'"/* not a comment */"' in out and b"gone" not in out and out.count(b"\n") == 3


def test_demo_tree_callsites_through_macros(demo_tree: Path):
    r = scan([demo_tree], ScanOptions(jobs=1))
    sites = {(s.callee, s.caller, s.file, s.line, s.via) for s in r.callsites}
    assert ("flush_icache_range", "demo_sram_init", "arch/arm/mach-demo/sram.c", 15, ("fncpy",)) in sites
    assert ("fncpy", "demo_sram_init", "arch/arm/mach-demo/sram.c", 15, ()) in sites
    assert ("flush_icache_range", "demo_prepare_optimized", "arch/arm/probes/kprobes/opt.c", 22, ("flush_insns",)) in sites
    assert ("__cpuc_coherent_kern_range", "__patch_text_real", "arch/arm/kernel/patch.c", 37, ("flush_icache_range",)) in sites
    # static inline function in a header
    assert ("__patch_text_real", "__patch_text", "arch/arm/include/asm/patch.h", 8, ()) in sites
    # the #define of flush_icache_range itself is not a call site
    assert not [s for s in r.callsites if s.file.endswith("cacheflush.h") and s.callee == "__cpuc_coherent_kern_range"]


def test_call_graph_links_cache_fns_member_to_implementations(demo_tree: Path):
    r = scan([demo_tree], ScanOptions(jobs=1))
    g = r.graph
    assert "demo_v4wb_coherent_kern_range" in g.callees_of("flush_icache_range")
    assert "set_fiq_handler" in g.callers_of("demo_v4wb_coherent_kern_range")
    assert g.path("patch_text", "flush_icache_range") == [
        "patch_text", "patch_text_stop_machine", "__patch_text", "__patch_text_real", "flush_icache_range"]


@pytest.mark.parametrize("jobs", [1, 2])
def test_output_identical_for_any_jobs(demo_tree: Path, jobs: int):
    base = scan([demo_tree], ScanOptions(jobs=1, use_cache=False))
    other = scan([demo_tree], ScanOptions(jobs=jobs, use_cache=False))
    assert other.callsites == base.callsites
    assert sorted(f.file for f in other.facts) == sorted(f.file for f in base.facts)


def test_cache_round_trip_and_corrupt_entries(demo_tree: Path, tmp_path: Path):
    from armalias.cache import FactsCache
    from armalias.source.extract import extractor_key

    opts = ScanOptions(jobs=1, cache_dir=tmp_path / "c")
    cold = scan([demo_tree], opts)
    warm = scan([demo_tree], opts)
    assert warm.facts == cold.facts and warm.callsites == cold.callsites
    entries = sorted((tmp_path / "c").rglob("*.marshal"))
    assert len(entries) == cold.parsed
    # one directory for all the entries: a directory made per entry cost a cold scan 12 % (JsonEntries)
    assert {e.parent for e in entries} == {tmp_path / "c"}
    # the path is in an entry once, not in each of its rows (marshal refers back to the one string)
    many = max(cold.facts, key=lambda f: len(f.calls))
    assert len(many.calls) > 3
    held = [e.read_bytes() for e in entries if many.file.encode() in e.read_bytes()]
    assert len(held) == 1 and held[0].count(many.file.encode()) == 1
    # loaded, the names are one interned string each: a function's calls share their caller
    loaded = next(f for f in warm.facts if f.file == many.file)
    callers = [c.caller for c in loaded.calls if c.caller]
    assert len(callers) > 1 and all(sys.intern(c) is c for c in callers)
    assert {id(c.file) for c in loaded.calls} == {id(loaded.file)}
    entries[0].write_bytes(b"{not an entry")
    body = entries[1].read_bytes()
    entries[1].write_bytes(body[:-1] + bytes([body[-1] ^ 1]))  # one bit flipped: the digest no longer holds
    entries[2].write_bytes(body[:len(body) // 2])  # cut short
    import hashlib
    import marshal

    wrong = marshal.dumps({"key": "wrong", "facts": {}})
    entries[3].write_bytes(hashlib.blake2b(wrong, digest_size=16).digest() + wrong)
    cache = FactsCache(tmp_path / "c", extractor_key())
    again = scan([demo_tree], opts)
    assert again.facts == cold.facts  # the bad entries were discarded and recomputed, never trusted
    assert all(e.exists() and e.read_bytes() != b"{not an entry" for e in entries[:4])
    assert cache.directory.exists()


def test_functions_named_for_each_stay_functions_and_calls():
    f = facts_of(
        "int clkdm_for_each(int (*fn)(void *c, void *u),\n\t\t   void *user)\n{\n\treturn walk(fn, user);\n}\n"
        "void user_fn(void)\n{\n\tclkdm_for_each(cb, NULL);\n\tlist_for_each_entry(p, h, node)\n\t\tpoke(p);\n}\n"
    )
    assert names_lines(f) == [("clkdm_for_each", 1), ("user_fn", 6)]
    assert {(c.callee, c.caller) for c in f.calls} == {("walk", "clkdm_for_each"), ("clkdm_for_each", "user_fn"),
                                                      ("poke", "user_fn")}


def test_if0_code_is_not_code():
    f = facts_of("#if 0\nvoid dead(void) { flush_icache_range(0, 1); }\n#else\nvoid live(void) { }\n#endif\n"
                 "#if 0\n#ifdef X\nvoid deeper(void) { }\n#endif\n#endif\nvoid after(void) { }\n")
    assert names_lines(f) == [("live", 4), ("after", 11)]
    assert not f.calls


def test_syscall_define_is_a_function_named_after_its_first_argument():
    """SYSCALL_DEFINE3(cacheflush, ...) { ... } (arch/csky/mm/syscache.c, mm/mmap.c, kernel/fork.c and
    ~35 other files of 6.12): a function sys_cacheflush, its calls attributed to it, and no other
    function hiding it; the file is extracted, not skipped."""
    from armalias.source.extract import extract_bytes

    src = (b"#include <linux/syscalls.h>\n\n"
           b"static int helper(int x)\n{\n\treturn x;\n}\n\n"
           b"SYSCALL_DEFINE3(cacheflush,\n\t\tvoid __user *, addr,\n\t\tunsigned long, bytes,\n\t\tint, cache)\n"
           b"{\n\tflush_icache_range((unsigned long)addr, (unsigned long)addr + bytes);\n\treturn helper(cache);\n}\n")
    facts = extract_bytes("arch/csky/mm/syscache.c", src, "d")
    assert [(f.name, f.line, f.end_line) for f in facts.functions] == [("helper", 3, 6), ("sys_cacheflush", 8, 15)]
    assert {(c.callee, c.caller) for c in facts.calls} == {("flush_icache_range", "sys_cacheflush"),
                                                           ("helper", "sys_cacheflush")}


def test_self_referential_macros_do_not_recurse_forever(tmp_path):
    """`#define f(x) f(x)` and macros that expand to each other, used where the alias analysis
    classifies a value (a shape met in the whole 6.1 tree): expanded once, as the preprocessor does,
    and the scan goes on (it used to end in a RecursionError)."""
    from armalias.scan import ScanOptions, scan

    (tmp_path / "recur.c").write_text(
        "#define self_ref(x) self_ref(x)\n#define ping(x) pong(x)\n#define pong(x) ping(x)\n"
        "void f(void *addr)\n{\n\tvoid *p = self_ref(addr);\n\tvoid *q = ping(p);\n"
        "\tflush_icache_range((unsigned long)q, (unsigned long)q + 4);\n}\n")
    result = scan([tmp_path], ScanOptions(jobs=1, use_cache=False))
    assert [(c.callee, c.caller, c.line) for c in result.callsites] == [("flush_icache_range", "f", 8)]


def test_facts_and_bodies_pickle_as_their_fields_in_order():
    """What the worker processes send back (facts, skipped files, function bodies) is pickled as
    the class and its fields, and comes back equal."""
    import pickle
    from dataclasses import fields

    from armalias.facts import Skipped
    from armalias.source.cflow import function_bodies
    from armalias.source.extract import extract_bytes

    src = (b"#define W(x) flush_icache_range(x, x + 4)\n"
           b"static void f(char *p) { if (p) memcpy(p, q, 4); W((unsigned long)p); }\n"
           b"struct cpu_cache_fns t = { .coherent_kern_range = v4_coherent_kern_range };\n")
    facts = extract_bytes("a.c", src, "d")
    bodies = function_bodies("a.c", src, {"f"})
    objs = [facts, Skipped("b.c", "empty file"), *facts.functions, *facts.calls, *facts.macros,
            *facts.initializers, *bodies, *bodies[0].events, *[g for e in bodies[0].events for g in e.guards]]
    assert facts.calls and facts.macros and facts.initializers and any(e.guards for e in bodies[0].events)
    for obj in objs:
        if isinstance(obj, tuple):  # a named tuple (facts.Call): pickled as its fields, by its own means
            assert obj.__getnewargs__() == tuple(getattr(obj, name) for name in obj._fields)
            continue
        cls, args = obj.__reduce__()
        assert cls is type(obj) and args == tuple(getattr(obj, f.name) for f in fields(obj))
    assert pickle.loads(pickle.dumps(objs)) == objs
    assert [type(x) for x in pickle.loads(pickle.dumps(objs))] == [type(x) for x in objs]


def test_function_bodies_come_from_their_cache_the_second_time(demo_tree: Path, tmp_path: Path, monkeypatch):
    """The flow's function bodies are cached by content: a second scan (not answered from its
    remembered state) parses none, and finds the same."""
    import armalias.source.cflow as cflow

    opts = ScanOptions(jobs=1, cache_dir=tmp_path / "c" / "facts", reuse=False)
    cold = scan([demo_tree], opts)
    assert cold.findings and sorted((tmp_path / "c" / "bodies").rglob("*.marshal"))

    def no_parse(*args, **kwargs):
        raise AssertionError("parsed for bodies again")

    monkeypatch.setattr(cflow, "function_bodies", no_parse)
    warm = scan([demo_tree], opts)
    assert [f.fingerprint for f in warm.findings] == [f.fingerprint for f in cold.findings]


def _scan_for_test(args: tuple[str, str]) -> tuple[list[str], int]:
    root, cache = args
    result = scan([Path(root)], ScanOptions(jobs=1, cache_dir=Path(cache)))
    return sorted(f.fingerprint for f in result.findings), result.parsed


def test_concurrent_scans_share_one_cache(demo_tree: Path, tmp_path: Path):
    """Runs at once over one cache directory: each entry is written under a name of its own and
    renamed into place, so every run gets the same answer and every entry left is whole."""
    import json
    from concurrent.futures import ProcessPoolExecutor

    from armalias.cache import MarshalEntries

    cache = tmp_path / "c" / "facts"
    with ProcessPoolExecutor(4) as pool:
        results = list(pool.map(_scan_for_test, [(str(demo_tree), str(cache))] * 8))
    assert results[0][0] and all(r == results[0] for r in results)
    entries = list((tmp_path / "c").rglob("*.json"))
    packed = list((tmp_path / "c").rglob("*.marshal"))
    assert entries and packed and not list((tmp_path / "c").rglob(".tmp-*"))
    for e in entries:
        json.loads(e.read_text())
    for e in packed:  # whole: the digest in front holds, and the entry decodes
        assert MarshalEntries._loads(e.read_bytes())["key"] == e.stem
    assert _scan_for_test((str(demo_tree), str(cache))) == results[0]


def test_the_flow_takes_the_bodies_the_facts_carry(demo_tree: Path, tmp_path: Path, monkeypatch):
    """A function body read with the facts (FileFacts.bodies) is not parsed again for the flow."""
    import armalias.pipeline as pipeline

    asked: list[tuple[str, set[str]]] = []
    real = pipeline.bodies_one
    monkeypatch.setattr(pipeline, "bodies_one", lambda args: asked.append((args[0], set(args[2]))) or real(args))
    result = scan([demo_tree], ScanOptions(jobs=1, use_cache=False))
    carried = {(f.file, b.name) for f in result.facts for b in f.bodies}
    assert carried and result.findings
    assert not any((rel, name) in carried for rel, names in asked for name in names)


def test_a_cache_directory_removed_during_a_run_is_made_again(tmp_path: Path):
    """Entries are written into directories this process made once; one removed since is made
    again, not left unwritten."""
    import shutil

    from armalias.cache import JsonEntries

    cache = JsonEntries(tmp_path / "c")
    assert cache.write(("a",), {"x": 1}) and cache.read(("a",), lambda raw: raw["x"]) == 1
    shutil.rmtree(tmp_path / "c")
    assert cache.write(("a",), {"x": 2}) and cache.read(("a",), lambda raw: raw["x"]) == 2
