"""The line-based reader of arch/arm/mm/*.S, piece by piece, on small inline sources."""

from __future__ import annotations

from pathlib import Path

import pytest

from armalias.cacheimpl import CACHE_OPS
from armalias.source.asm import load_cache_ops, logical_lines, parse_encoding
from armalias.source.asmtree import AsmTree, member_order_from_header, read_c_cache_tables, squash, summarize


def tree_of(tmp_path: Path, files: dict[str, str]) -> AsmTree:
    mm = tmp_path / "arch" / "arm" / "mm"
    mm.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (mm / name).write_text(text)
    tree = AsmTree(root=tmp_path, optable=load_cache_ops())
    for path in sorted(mm.glob("*.S")):
        tree.read_file(path)
    tree.finish()
    return tree


def ops_of(tree: AsmTree, symbol: str) -> list[str]:
    return [s.op for s in tree.trace(symbol).steps]


def test_comments_continuations_and_statements():
    text = (
        "\tmov r0, #0 @ comment with ; and /* */\n"
        "/* block\n   comment */ mcr p15, 0, r0, c7, c5, 0 // trailing\n"
        "#if defined(CONFIG_A) && \\\n    !defined(CONFIG_B)\n"
        '\t.asciz "a @ b" ; add r1, r1, #1\n'
    )
    assert logical_lines(text) == [
        (1, "mov r0, #0"),
        (3, "mcr p15, 0, r0, c7, c5, 0"),
        (4, "#if defined(CONFIG_A) &&      !defined(CONFIG_B)"),
        (6, '.asciz "a @ b"'),
        (6, "add r1, r1, #1"),
    ]


def test_encoding_table_is_in_the_vocabulary_and_parses_kernel_operands():
    table = load_cache_ops()
    assert parse_encoding("p15, 0, r0, c7, c10, 1") == (15, 0, 7, 10, 1)
    assert parse_encoding("p15, 0, ip, c7, c7") == (15, 0, 7, 7, 0)  # opc2 defaults to 0
    assert table.mcr[(15, 0, 7, 10, 1)] == ("clean-d-line",)
    assert table.mcr[(15, 0, 7, 14, 1)] == ("clean+invalidate-d-line",)
    assert table.mcr[(15, 0, 7, 6, 1)] == ("invalidate-d-line",)
    assert table.mcr[(15, 0, 7, 11, 1)] == ("clean-d-line-pou",)
    assert table.mcr[(15, 0, 7, 5, 0)] == ("invalidate-i-all",)
    assert table.mcr[(15, 0, 7, 1, 0)] == ("invalidate-i-all-is",)
    assert table.mcr[(15, 5, 15, 15, 1)] == ("clean+invalidate-d-range",)
    assert table.mcr[(15, 5, 15, 15, 0)] == ()  # the range start is bookkeeping
    every = [op for t in (table.mcr, table.mrc, table.mnemonic, table.mmio) for ops in t.values() for op in ops]
    assert set(every) <= set(CACHE_OPS)


def test_bad_vocabulary_in_the_table_is_refused(tmp_path):
    bad = tmp_path / "ops.toml"
    bad.write_text('[[mcr]]\nencoding = "p15, 0, c7, c10, 1"\nops = ["scrub-d-line"]\n')
    with pytest.raises(ValueError, match="scrub-d-line"):
        load_cache_ops(bad)


def test_fallthrough_and_both_sides_of_else_returning(tmp_path):
    tree = tree_of(tmp_path, {"cache-t.S": """
ENTRY(t_coherent_kern_range)
	/* FALLTHROUGH */
ENTRY(t_coherent_user_range)
	mcr	p15, 0, r0, c7, c10, 1		@ clean D entry
#ifdef CONFIG_X
	mcr	p15, 0, r0, c7, c5, 0
	ret	lr
#else
	mcr	p15, 0, r0, c7, c5, 6
	mov	pc, lr
#endif
ENTRY(t_next)
	mcr	p15, 0, r0, c7, c6, 1
	ret	lr
"""})
    trace = tree.trace("t_coherent_kern_range")
    assert [s.op for s in trace.steps] == ["clean-d-line", "invalidate-i-all", "flush-btb"]
    assert trace.fallthroughs == ("t_coherent_kern_range falls through into t_coherent_user_range",)
    assert [s.conditions for s in trace.steps] == [(), ("CONFIG_X",), ("!CONFIG_X",)]
    assert tree.trace("t_coherent_user_range").fallthroughs == ()


def test_if_without_else_can_be_skipped_and_local_defines_are_static(tmp_path):
    tree = tree_of(tmp_path, {"cache-t.S": """
#define HAVE_IT
ENTRY(t_a)
#ifdef CONFIG_Y
	ret	lr
#endif
#ifndef HAVE_IT
	mcr	p15, 0, r0, c7, c7, 0
#endif
#if 0
	mcr	p15, 0, r0, c7, c6, 0
#elif defined(HAVE_IT)
	mcr	p15, 0, r0, c7, c10, 4
#endif
	ret	lr
"""})
    steps = tree.trace("t_a").steps
    assert [s.op for s in steps] == ["drain-wb"]
    assert steps[0].conditions == ()


def test_macros_expand_with_defaults_keywords_and_hidden_returns(tmp_path):
    tree = tree_of(tmp_path, {
        "proc-macros.S": """
	.macro	op_then_ret, reg, crm=c5, ret=1
	mcr	p15, 0, \\reg, c7, \\crm, 0
	.if \\ret
	ret	lr
	.endif
	.endm
.irp c,,ne
.macro inval\\c, rt
	mcr\\c	p15, 0, \\rt, c7, c6, 1
.endm
.endr
""",
        "cache-t.S": """
#include "proc-macros.S"
ENTRY(t_a)
	invalne	r0
	op_then_ret r0, crm=c6, ret=0
	op_then_ret r0
ENTRY(t_b)
	mcr	p15, 0, r0, c7, c10, 1
	ret	lr
""",
    })
    trace = tree.trace("t_a")
    assert [s.op for s in trace.steps] == ["invalidate-d-line", "invalidate-d-all", "invalidate-i-all"]
    assert trace.steps[0].conditional and trace.steps[0].macros == ("invalne",)
    assert trace.fallthroughs == ()  # the return inside the macro ends t_a
    assert trace.steps[2].file == "arch/arm/mm/cache-t.S" and trace.steps[2].line == 6


def test_aliases_branches_calls_and_numeric_labels(tmp_path):
    tree = tree_of(tmp_path, {"cache-t.S": """
helper:
	mcr	p15, 0, r0, c7, c14, 2
	ret	lr
SYM_TYPED_FUNC_START(t_all)
	stmfd	sp!, {r4, lr}
	bl	helper
1:	mcr	p15, 0, r0, c7, c5, 1
	subs	r1, r1, #1
	bne	1b
	ALT_SMP(mcr	p15, 0, r0, c7, c1, 0)
	ALT_UP(mcr	p15, 0, r0, c7, c5, 0)
	ldmfd	sp!, {r4, pc}
SYM_FUNC_END(t_all)
SYM_FUNC_ALIAS(t_alias, t_all)
	.globl	t_equ
	.equ	t_equ, t_alias
ENTRY(t_tail)
	b	t_equ
"""})
    assert ops_of(tree, "t_equ") == ["clean+invalidate-d-all", "invalidate-i-line", "invalidate-i-all-is",
                                     "invalidate-i-all"]  # fmt: skip
    trace = tree.trace("t_tail")
    assert trace.via == ("t_all", "helper")
    assert tree.trace("t_equ").resolved == "t_all"


def test_undecoded_encodings_and_unresolved_symbols_are_reported(tmp_path):
    tree = tree_of(tmp_path, {"cache-t.S": """
ENTRY(t_odd)
	mcr	p15, 0, r0, c7, c12, 3
	mrc	p15, 0, r1, c7, c9, 2
	mrc	p15, 0, r1, c0, c0, 1
	bl	somewhere_in_c
	frobnicate r0
	ret	lr
"""})
    trace = tree.trace("t_odd")
    assert [s.op for s in trace.steps] == ["unknown", "unknown", "unknown"]
    assert trace.undecoded[0].endswith("mcr p15, 0, r0, c7, c12, 3")
    assert any("somewhere_in_c" in u for u in trace.undecoded)
    assert any("frobnicate" in n for n in trace.notes)
    assert tree.trace("not_there").resolved == ""


def test_v7m_cache_register_stores_are_decoded(tmp_path):
    tree = tree_of(tmp_path, {"cache-t.S": """
.macro v7m_cacheop, rt, tmp, op, c = al
	movw\\c	\\tmp, #:lower16:BASEADDR_V7M_SCB + \\op
	movt\\c	\\tmp, #:upper16:BASEADDR_V7M_SCB + \\op
	str\\c	\\rt, [\\tmp]
.endm
ENTRY(t_m)
	v7m_cacheop r0, r3, V7M_SCB_DCCMVAU
	v7m_cacheop r0, r3, V7M_SCB_ICIMVAU, ne
	v7m_cacheop r0, r3, V7M_SCB_NEWTHING
	ret	lr
"""})
    steps = tree.trace("t_m").steps
    assert [s.op for s in steps] == ["clean-d-line-pou", "invalidate-i-line", "unknown"]
    assert steps[1].conditional


def test_c_tables_with_conditional_members():
    text = """
#ifdef CONFIG_CPU_CACHE_Q
/* a comment with { braces } */
struct cpu_cache_fns q_cache_fns __initconst = {
	.flush_icache_all = q_flush_icache_all,
#ifdef CONFIG_Q_RAC
	.flush_kern_all = q_rac_flush,
#else
	.flush_kern_all = q_flush_kern_cache_all,
#endif
	.coherent_kern_range = q_coherent_kern_range,
};
#endif
"""
    (table,) = read_c_cache_tables(text, "arch/arm/mm/cache.c")
    assert (table.name, table.line, table.condition) == ("q", 4, "CONFIG_CPU_CACHE_Q")
    assert [(e.symbol, e.condition) for e in table.members["flush_kern_all"]] == [
        ("q_rac_flush", "CONFIG_Q_RAC"), ("q_flush_kern_cache_all", "!CONFIG_Q_RAC")]
    assert table.members["coherent_kern_range"][0].symbol == "q_coherent_kern_range"


def test_member_order_from_the_header():
    header = "struct cpu_cache_fns {\n\tvoid (*b_first)(void);\n\tint  (*a_second)(unsigned long);\n};"
    assert member_order_from_header(header) == ("b_first", "a_second")


def test_squash_and_summary():
    assert squash(["a", "b", "a", "b", "c", "c", "c"]) == ("a", "b", "c")
    assert squash(["a", "b", "a"]) == ("a", "b", "a")
    from armalias.cacheimpl import CacheOp

    def steps(*ops):
        return [CacheOp(op, "", "f", 1) for op in ops]

    s = summarize(steps("clean-d-line", "invalidate-i-all", "drain-wb"))
    assert (s.d, s.i, s.scope, s.d_scope, s.i_scope) == ("clean", "invalidate", "range", "range", "whole")
    s = summarize(steps("clean-d-line-pou", "invalidate-d-range"))
    assert (s.d, s.i, s.scope) == ("clean+invalidate", "none", "range")
    s = summarize(steps("dsb", "isb"))
    assert (s.d, s.i, s.scope) == ("none", "none", "none")
