// Two rules comparable to armalias AA001 (alias-write) and AA003 (range), written for the
// speed comparison in bench/run.py.  Each hit is printed as "RULE<TAB>file:line" by the
// script rules at the end; bench/run.py counts those lines.
virtual report

// --- alias-write-flush-other: a write through the result of an alias source (fixmap,
// kmap, vmap, ...), then flush_icache_range() on a pointer other than the one written,
// with no flush_kernel_vmap_range()/__cpuc_flush_dcache_area() of the written pointer
// in between.
@alias_write_flush_other exists@
expression W, X, V;
type T;
identifier src =~ "^(patch_map|__set_fixmap_offset|set_fixmap_offset|fix_to_virt|__fix_to_virt|kmap|kmap_atomic|kmap_local_page|vmap|vmalloc|module_alloc|execmem_alloc|__arm_ioremap_exec)$";
position p;
@@
W = src(...);
... when != W = X
(
 *W = V;
|
 *(T *)W = V;
|
memcpy(W, ...);
)
... when != flush_kernel_vmap_range(W, ...)
    when != __cpuc_flush_dcache_area(W, ...)
(
flush_icache_range(W, ...);
|
flush_icache_range@p(X, ...);
)

// --- range-end-not-start-plus: flush_icache_range(start, end) whose end is not written
// as start + something.
@range_end_not_start_plus@
expression S, N, E;
position q;
@@
(
flush_icache_range(S, S + N)
|
flush_icache_range@q(S, E)
)

@script:python depends on alias_write_flush_other@
p << alias_write_flush_other.p;
@@
print("alias-write-flush-other\t%s:%s" % (p[0].file, p[0].line))

@script:python depends on range_end_not_start_plus@
q << range_end_not_start_plus.q;
@@
print("range-end-not-start-plus\t%s:%s" % (q[0].file, q[0].line))
