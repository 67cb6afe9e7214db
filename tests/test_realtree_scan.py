"""Acceptance of `armalias scan` on arch/arm of real kernel trees (Debian linux-source 6.1 and 6.12).

Both figures are measured against an independent ground truth (tests/groundtruth.py: a careful text
search and universal-ctags; nothing of armalias's front end is imported there):

1. call sites: every call, in code, of a name in rules/watched.toml, direct or through a macro whose
   #define body calls it (expected at each expansion site, `via` naming the macros crossed), with
   the right enclosing function.  Recall >= 0.99 in arch/arm, and in the headers outside arch/arm
   that arch/arm includes (the scan's contract scope).
2. functions: the function definitions universal-ctags lists for arch/arm `.c` files, found by
   armalias with the same name and line.  Recall >= 0.99.

Run with `pytest -s -m realtree tests/test_realtree_scan.py` to see the figures and every miss.
Needs: universal-ctags (apt: universal-ctags) and the trees (.ci/fetch-kernel: linux-source-6.1,
linux-source-6.12, xz-utils to extract them).
"""

from __future__ import annotations

import json
import tomllib
from collections import defaultdict
from dataclasses import dataclass, field

import pytest

import groundtruth as gt
from realtree import REPO, kernel_tree

pytestmark = pytest.mark.realtree

VERSIONS = ["6.1", "6.12"]
TARGET = 0.99


def watched_names() -> set[str]:
    with open(REPO / "rules" / "watched.toml", "rb") as fh:
        return set(tomllib.load(fh)["watched"]["names"])


@dataclass
class Figure:
    label: str
    expected: int = 0
    found: int = 0
    misses: list[str] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return self.found / self.expected if self.expected else 1.0

    def line(self) -> str:
        return f"{self.label}: {self.found}/{self.expected} = {self.recall:.4f}"


def is_trap(s: gt.Site) -> bool:
    """Sites in the shapes the issue names, which must all be right (the 1% slack is not for them):
    expansion sites of a macro whose body calls a watched name (fncpy, flush_insns), the function
    after `NOKPROBE_SYMBOL(f)` with no ';' (probes/kprobes/opt-arm.c), static inline functions in
    headers."""
    return (bool(s.via) and s.via[0] in ("fncpy", "flush_insns")) \
        or s.file.endswith("probes/kprobes/opt-arm.c") or (s.file.endswith(".h") and bool(s.caller))


@dataclass
class Measured:
    version: str
    calls_arch: Figure
    calls_headers: Figure
    traps: Figure
    extras: list[str]
    ctags_disagreements: list[str]
    functions: Figure
    functions_plain: Figure
    function_extras: list[str]

    def report(self) -> str:
        out = [f"== linux-source-{self.version}", self.calls_arch.line(), self.calls_headers.line(),
               self.traps.line()]
        out += [f"  MISS {m}" for m in self.calls_arch.misses + self.calls_headers.misses]
        out.append(f"call sites armalias lists that the ground truth has not: {len(self.extras)}")
        out += [f"  EXTRA {e}" for e in self.extras]
        if self.ctags_disagreements:
            out.append("enclosing function: brace matching and ctags disagree at")
            out += [f"  {d}" for d in self.ctags_disagreements]
        out.append(self.functions.line())
        out += [f"  MISS {m}" for m in self.functions.misses]
        out.append(self.functions_plain.line() + "  (informative: plain ctags' own mistakes count here)")
        out.append(f"functions armalias lists that ctags has not: {len(self.function_extras)}")
        out += [f"  EXTRA {e}" for e in self.function_extras]
        return "\n".join(out)


def _site_key(file: str, line: int, column: int, callee: str) -> tuple[str, int, int, str]:
    return (file, line, column, callee)


def compare_callsites(truth: gt.Truth, tool: list[dict], version: str) -> tuple[Figure, Figure, Figure, list[str]]:
    by_key: dict[tuple, list[dict]] = defaultdict(list)
    for c in tool:
        by_key[_site_key(c["file"], c["line"], c["column"], c["callee"])].append(c)
    arch = Figure(f"{version} call sites in arch/arm")
    headers = Figure(f"{version} call sites in included headers outside arch/arm")
    traps = Figure(f"{version} call sites in the named trap shapes (all must be right)")
    for s in truth.sites:
        fig = arch if s.file.startswith("arch/arm/") else headers
        fig.expected += 1
        traps.expected += is_trap(s)
        where = f"{s.file}:{s.line}:{s.column} {s.callee} in {s.caller or '(file scope)'}" + (
            f" via {'>'.join(s.via)}" if s.via else "")
        got = by_key.get(_site_key(s.file, s.line, s.column, s.callee), [])
        miss = None
        if not got:
            miss = f"{where}: not listed"
        elif not any(c["caller"] == s.caller for c in got):
            miss = f"{where}: listed with caller {sorted({c['caller'] for c in got})}"
        elif not any(c["caller"] == s.caller and tuple(c["via"]) == s.via for c in got):
            miss = f"{where}: listed with via {[c['via'] for c in got]}"
        if miss is None:
            fig.found += 1
            traps.found += is_trap(s)
        else:
            fig.misses.append(miss)
            if is_trap(s):
                traps.misses.append(miss)
    expected = {_site_key(s.file, s.line, s.column, s.callee) for s in truth.sites}
    scope = set(truth.files)
    extras = [f"{c['file']}:{c['line']}:{c['column']} {c['callee']} in {c['caller']} via {c['via']}"
              for c in tool if c["file"] in scope
              and _site_key(c["file"], c["line"], c["column"], c["callee"]) not in expected]
    return arch, headers, traps, extras


def compare_functions(version: str, tool: dict[str, set[tuple[str, int]]], ctags: list[gt.CtagsFunc],
                      label: str) -> Figure:
    fig = Figure(f"{version} {label}")
    for c in ctags:
        fig.expected += 1
        if (c.name, c.line) in tool.get(c.file, set()):
            fig.found += 1
            continue
        near = sorted(f"{n}@{ln}" for n, ln in tool.get(c.file, ()) if n == c.name or abs(ln - c.line) <= 2)
        fig.misses.append(f"{c.file}:{c.line} {c.name}: armalias has {near or 'nothing near'}")
    return fig


@pytest.fixture(scope="module", params=VERSIONS)
def measured(request) -> Measured:
    version = request.param
    tree = kernel_tree(version)
    why = gt.ctags_available()
    if why:
        pytest.skip(f"the ground truth needs universal-ctags: {why}")
    from armalias.report.jsonout import scan_to_dict
    from armalias.scan import ScanOptions, scan

    result = scan([tree], ScanOptions(use_cache=False))  # the scan users get (prefiltered)
    # every arch/arm file parsed: the front end's function recall, prefilter aside
    every = scan([tree], ScanOptions(use_cache=False, prefilter=False, model=False))
    # call sites as `armalias scan --format json` prints them (schema 1)
    data = json.loads(json.dumps(scan_to_dict(result, list(getattr(result, "findings", [])))))
    truth = gt.watched_calls(tree, watched_names())
    arch, headers, traps, extras = compare_callsites(truth, data["callsites"], version)

    tool_functions: dict[str, set[tuple[str, int]]] = defaultdict(set)
    for f in every.facts:
        if f.file.startswith("arch/arm/") and f.file.endswith(".c"):
            tool_functions[f.file].update((fn.name, fn.line) for fn in f.functions)
    c_files = gt.arch_files(tree, (".c",))
    tuned = gt.ctags_functions(tree, c_files, tuned=True)
    plain = gt.ctags_functions(tree, c_files, tuned=False)
    functions = compare_functions(version, tool_functions, tuned, "functions (ctags, kernel-tuned options)")
    functions_plain = compare_functions(version, tool_functions, plain, "functions (plain ctags)")
    listed = {(c.file, c.name, c.line) for c in tuned}
    function_extras = sorted(f"{file}:{line} {name}" for file, fns in tool_functions.items()
                             for name, line in fns if (file, name, line) not in listed)
    m = Measured(version, arch, headers, traps, extras, truth.ctags_disagreements, functions, functions_plain,
                 function_extras)
    print("\n" + m.report())
    return m


def test_watched_callsites_recall(measured: Measured):
    assert measured.calls_arch.expected > 0, "the ground truth found no call site in arch/arm"
    for fig in (measured.calls_arch, measured.calls_headers):
        assert fig.recall >= TARGET, fig.line() + "\n" + "\n".join(fig.misses)


def test_watched_callsites_in_trap_shapes(measured: Measured):
    fig = measured.traps
    assert fig.expected >= 10, f"only {fig.expected} trap-shape sites in the ground truth"
    assert not fig.misses, fig.line() + "\n" + "\n".join(fig.misses)


def test_ground_truth_enclosing_functions_agree_with_ctags(measured: Measured):
    """The ground truth's own check: brace matching and ctags agree on every site's function."""
    assert not measured.ctags_disagreements, "\n".join(measured.ctags_disagreements)


def test_function_recall_against_ctags(measured: Measured):
    fig = measured.functions
    assert fig.expected > 1000, f"ctags listed only {fig.expected} functions"
    assert fig.recall >= TARGET, fig.line() + "\n" + "\n".join(fig.misses)
