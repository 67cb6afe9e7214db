"""The flow parses only the lines of the functions it asks for (cflow.keep_lines, body_ranges): the
same function bodies as parsing the whole file, or the whole file when the facts cannot promise it.
And a comment begun on a #define line carries the directive on to the line it ends on, as in the
compiler (6.1's drivers/spi/spi-xilinx.c: `#define XSPI_INTR_SLAVE_MODE_FAULT 0x02 /* Selected as
slave while` / `* disabled */` left `* disabled */` to be parsed as code)."""

from __future__ import annotations

import random
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from armalias.source.cflow import body_ranges, function_bodies, keep_lines
from armalias.source.extract import extract_bytes
from armalias.source.text import at_line_start, neutralize

FILE = b"""#include <linux/kernel.h>
#define FAULT\t0x02\t/* Selected as slave while
\t\t\t * disabled */
#define WIDE(a, b) \\
\tdo { foo(a); } while (0)

static inline unsigned long
helper(unsigned long x)
{
\treturn x + 1;
}

#ifdef CONFIG_X
static void noisy(void *p)
{
\tmemcpy(p, "{", 1);  /* a brace { in a string and a comment */
}
#else
static void noisy(void *p)
{
}
#endif

void writer(void *dst, const void *src, int n)
{
\tmemcpy(dst, src, n);
\tflush_icache_range((unsigned long)dst, (unsigned long)dst + n);
}

/* a comment over
 * lines } { */
int reader(int *p)
{
\treturn *p + FAULT;
}
"""


def test_a_comment_on_a_define_line_is_part_of_the_directive():
    neutral = neutralize(FILE)
    assert b"disabled" not in neutral  # the directive, comment and all, is no code
    facts = extract_bytes("drivers/x.c", FILE, "d")
    assert not facts.has_error and facts.error_lines == ()
    assert [f.name for f in facts.functions] == ["helper", "noisy", "noisy", "writer", "reader"]


def test_the_lines_kept_give_the_same_bodies():
    facts = extract_bytes("drivers/x.c", FILE, "d")
    for wanted in ({"writer"}, {"reader"}, {"helper", "reader"}, {"writer", "reader", "helper"}):
        ranges = body_ranges(facts.functions, wanted, facts.error_lines)
        assert ranges is not None
        sliced = keep_lines(FILE, ranges)
        assert len(sliced) == len(FILE) and sliced.count(b"\n") == FILE.count(b"\n")
        assert function_bodies("drivers/x.c", sliced, wanted) == function_bodies("drivers/x.c", FILE, wanted)
    ranges = body_ranges(facts.functions, {"writer"}, facts.error_lines)
    sliced = keep_lines(FILE, ranges)
    assert b"return x + 1" not in sliced and b"return *p" not in sliced  # other functions are blanked
    assert b"#ifdef CONFIG_X" in sliced and b"#endif" in sliced and b"do { foo(a); }" in sliced
    assert b"lines } { */" in sliced  # a comment is kept whole


def test_when_the_facts_cannot_promise_the_whole_file_is_parsed():
    facts = extract_bytes("drivers/x.c", FILE, "d")
    assert body_ranges(facts.functions, {"noisy"}, facts.error_lines) is None  # defined twice
    assert body_ranges(facts.functions, {"reader"}, [(30, 31)]) is None  # a parse error among the lines kept
    assert body_ranges(facts.functions, {"reader"}, [(1, 2)]) is not None  # one far from them
    broken = FILE.replace(b"\treturn x + 1;", b"\treturn x + ;;) 1;")
    facts = extract_bytes("drivers/x.c", broken, "d")
    assert [f.name for f in facts.functions if f.has_error] == ["helper"] and facts.error_lines == ((7, 11),)
    assert body_ranges(facts.functions, {"helper"}, facts.error_lines) is None  # asked for, and in error
    assert body_ranges(facts.functions, {"noisy"}, ()) is None  # defined twice, anyway
    # writer follows `noisy`, which parsed cleanly: helper's error is not among its lines
    assert body_ranges(facts.functions, {"writer"}, facts.error_lines) == [(22, 28)]


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_random_choices_of_functions(seed: int):
    rnd = random.Random(seed)
    facts = extract_bytes("drivers/x.c", FILE, "d")
    names = sorted({f.name for f in facts.functions})
    wanted = set(rnd.sample(names, rnd.randint(1, len(names))))
    ranges = body_ranges(facts.functions, wanted, facts.error_lines)
    if ranges is not None:
        assert function_bodies("drivers/x.c", keep_lines(FILE, ranges), wanted) == \
            function_bodies("drivers/x.c", FILE, wanted)


_PIECES = [b"#", b"# ", b"#define", b"define", b" ", b"\t", b"\n", b"\\\n", b"x", b"(a,b)", b"include",
           b"<a.h>", b'"b.h"', b"##", b"/* c */", b"\"#\""]


@given(st.lists(st.sampled_from(_PIECES), max_size=40).map(b"".join))
def test_directives_found_as_the_line_anchored_patterns_find_them(data: bytes):
    """at_line_start (a search for `#`, kept where only blanks precede it on its line) finds what
    the `(?m)^[ \\t]*` patterns it replaced found, which try every line start and are five times
    slower on kernel C."""
    from armalias.source import directives
    from armalias.source.text import directive_spans

    anchored = re.compile(rb"(?m)^[ \t]*#(?:[^\n]*\\\n)*[^\n]*")
    assert directive_spans(data) == [(m.start(), m.end()) for m in anchored.finditer(data)]
    for new, old in ((directives._DEFINE, rb"(?m)^[ \t]*#[ \t]*define[ \t]+([A-Za-z_]\w*)(\([^)]*\))?((?:[^\n]*\\\n)*[^\n]*)"),
                     (directives._INCLUDE, rb'(?m)^[ \t]*#[ \t]*include[ \t]*[<"]([^>"\n]+)[>"]')):
        assert [(line, m.groups()) for line, m in at_line_start(new, data)] == \
            [(m.start(), m.groups()) for m in re.finditer(old, data)]


_LOOP_PIECES = [b"list_for_each_entry", b"for_each", b"hlist_for_each", b"while_each_thread", b"for_x_in",
                b"for_", b"_in", b"wait_for_completion", b"x", b"_", b"0", b" ", b"\n", b"(", b")", b";", b"{"]


@given(st.lists(st.sampled_from(_LOOP_PIECES), max_size=30).map(b"".join),
       st.sampled_from([None, (r"^\w*for_each|x\w*$",), (r"^\x66or_\w*$",), (r"^\w*_f+or_each$", r"^for_\w+_in\w*$"),
                        (r"^\d*for_\w*$", r"^\bwhile_each_\w+$")]))
def test_loop_macros_found_as_the_word_pattern_finds_them(data: bytes, other):
    """The loop macros (rules/neutralize.toml loop_macro_patterns) looked for by a literal part of
    each pattern are the identifiers `\\b(?:patterns)\\b(?=\\s*\\()` finds; a pattern with no literal
    part this can read is searched for with that expression."""
    from armalias.rules import load_neutralize
    from armalias.source.text import _loop_macros

    patterns = load_neutralize().loop_macro_patterns if other is None else other
    alts = b"|".join(p.strip("^$").encode() for p in patterns)
    slow = re.compile(rb"\b(?:" + alts + rb")\b(?=\s*\()")
    assert _loop_macros(tuple(patterns))(data) == [m.span() for m in slow.finditer(data)]


def test_the_flow_asks_a_file_again_only_for_the_bodies_it_lacks():
    """A later summary round that wants another function of a file parses that function alone and
    keeps the bodies it has: the same bodies as parsing the file again for all of them."""
    from armalias.flow.alias import FlowAnalysis
    from armalias.index import SymbolIndex
    from armalias.rules import load_vocabulary

    src = b"static int f(char *p) { return p[0]; }\nstatic int g(char *q) { q[1] = 2; return 0; }\n"
    facts = extract_bytes("a.c", src, "d")
    asked: list[tuple[str, set[str]]] = []

    def bodies(items):
        asked.extend(items)
        return [function_bodies(rel, src, names) for rel, names in items]

    flow = FlowAnalysis(SymbolIndex([facts], ()), load_vocabulary(), bodies)
    assert [b.name for b in flow._bodies_of({"f"})] == ["f"]
    both = flow._bodies_of({"f", "g"})
    assert asked == [("a.c", {"f"}), ("a.c", {"g"})]
    assert sorted(both, key=lambda b: b.name) == sorted(function_bodies("a.c", src, {"f", "g"}), key=lambda b: b.name)
    flow._bodies_of({"g"})
    assert len(asked) == 2


def test_facts_carry_the_bodies_of_the_functions_calling_a_rule_word():
    """Extraction reads, from the tree it parsed, the bodies of the functions that call a word of
    the prefilter's first round directly: the same bodies function_bodies gives."""
    src = (b"static void w(char *p)\n{\n\t*p = 1;\n\tif (p)\n\t\tflush_icache_range((unsigned long)p, (unsigned long)p + 4);\n}\n"
           b"static int other(int x) { return x + 1; }\n"
           b"static void m(struct cpu_cache_fns *c) { c->coherent_kern_range(1, 2); }\n")
    facts = extract_bytes("arch/arm/kernel/w.c", src, "d")
    assert sorted(b.name for b in facts.bodies) == ["m", "w"]
    assert sorted(facts.bodies, key=lambda b: b.name) == sorted(
        function_bodies("arch/arm/kernel/w.c", src, {"w", "m"}), key=lambda b: b.name)
    assert any(e.guards for e in facts.bodies[[b.name for b in facts.bodies].index("w")].events)


def test_the_flow_does_not_ask_again_for_a_body_the_file_did_not_give():
    """A name the index places in a file whose parse gives no body for it (a function recovered
    from a parse error) is asked for once, not in every summary round."""
    from armalias.flow.alias import FlowAnalysis
    from armalias.index import SymbolIndex
    from armalias.rules import load_vocabulary

    src = b"static int f(char *p) { return p[0]; }\nstatic int g(char *q) { q[1] = 2; return 0; }\n"
    asked: list[tuple[str, set[str]]] = []

    def bodies(items):
        asked.extend(items)
        return [[b for b in function_bodies(rel, src, names) if b.name != "g"] for rel, names in items]

    flow = FlowAnalysis(SymbolIndex([extract_bytes("a.c", src, "d")], ()), load_vocabulary(), bodies)
    assert flow._bodies_of({"g"}) == [] and flow._bodies_of({"g"}) == []
    assert asked == [("a.c", {"g"})]


def _keep_lines_by_line(data: bytes, ranges: list[tuple[int, int]]) -> bytes:
    """keep_lines's contract, line by line: a line inside a range stays; so does a preprocessor line
    (`#` after what bytes.lstrip() strips) and every line a backslash at the end (carriage returns
    aside) carries it on to; on any other line every byte but those of comments becomes a space."""
    from armalias.source.text import comment_spans

    in_comment = bytearray(len(data))
    for a, b in comment_spans(data):
        in_comment[a:b] = b"\1" * (b - a)
    out = bytearray()
    pos, continued = 0, False
    for number, line in enumerate(data.split(b"\n"), 1):
        directive = continued or line.lstrip().startswith(b"#")
        if directive or any(a <= number <= b for a, b in ranges):
            out += line
        else:
            out += bytes(c if in_comment[pos + i] else 0x20 for i, c in enumerate(line))
        out += b"\n"
        continued = directive and line.rstrip(b"\r").endswith(b"\\")
        pos += len(line) + 1
    return bytes(out[:len(data)])


_SLICE_PIECES = [b"#", b" #", b"\x0c#", b"\r", b"x", b"if (a) {", b"}", b"\n", b"\\\n", b"\\\r\n", b"\\ \n",
                 b"/* c", b"*/", b"/* c */", b"// c", b'"/*"', b"'\"'", b"#if X", b"#endif"]


@given(st.lists(st.sampled_from(_SLICE_PIECES), max_size=40).map(b"".join),
       st.lists(st.tuples(st.integers(0, 14), st.integers(0, 14)), max_size=4))
def test_keep_lines_keeps_what_its_contract_says(data: bytes, ranges):
    """keep_lines blanks the gaps between the spans it keeps in one go (not line by line, 0.22 s of
    the flow's 0.58 s on the whole tree); it keeps the same bytes: directives and their
    continuations (CRLF ones too), comments, and the lines asked for, past the end of the file or not."""
    assert keep_lines(data, ranges) == _keep_lines_by_line(data, ranges)


def test_a_whole_file_parsed_for_one_round_is_not_parsed_again_for_the_next():
    """The flow asks a file parsed whole for more functions in a later round (the callers that
    round's summaries made interesting): its tree is kept (cflow._kept), the bodies are those of a
    fresh parse, and a changed text is parsed anew, never taken for the one kept."""
    from armalias.source import cflow

    cflow._kept.cache_clear()
    first = function_bodies("a.c", FILE, {"helper"}, keep=True)
    again = function_bodies("a.c", bytes(FILE), {"noisy", "helper"}, keep=True)  # equal bytes, another object
    assert cflow._kept.cache_info().hits == 1
    assert first == function_bodies("a.c", FILE, {"helper"}) and first
    assert again == function_bodies("a.c", FILE, {"noisy", "helper"}) and len(again) == 3
    changed = FILE.replace(b"return x + 1;", b"return x + 2; memcpy(x, y, 4);")
    assert function_bodies("a.c", changed, {"helper"}, keep=True) == function_bodies("a.c", changed, {"helper"})
    assert cflow._kept.cache_info().misses == 2
    assert function_bodies("a.c", changed, {"helper"}) != first
