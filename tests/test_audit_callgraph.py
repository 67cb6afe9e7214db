"""The call graph behind the confirmed findings, drawn as inline SVG in the audit's HTML page."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from armalias.audit import audit_tree
from armalias.report.audit import _layers, findings_graph, render_audit_html, render_call_graph_svg

ASM = Path(__file__).resolve().parent.parent / "fixtures" / "asm"
SVG = ""  # inline SVG in HTML needs no namespace declaration (and the page names no URL)


def fixture_findings() -> list[dict]:
    """Findings in the CONTRACT.md shape, on the old-style fixture tree's wt5, wb9 and wb9_range."""
    return [
        {"rule": "AA001", "category": "alias-write", "file": "arch/arm/kernel/patch.c", "line": 96,
         "function": "__patch_text_real", "chain": ["patch_text", "__patch_text", "__patch_text_real"],
         "maintenance": [{"call": "flush_icache_range", "line": 107, "target": "addr", "alias": "exec"}],
         "model": {"verdict": "confirmed",
                   "implementations": {"wb9": "confirmed", "wb9_range": "confirmed", "wt5": "refuted"}}},
        {"rule": "AA002", "category": "stale-exec-alias", "file": "arch/arm/kernel/fiq.c", "line": 104,
         "function": "set_fiq_handler", "chain": ["set_fiq_handler"],
         "maintenance": [{"call": "__cpuc_flush_dcache_area", "line": 101, "target": "base", "alias": "vectors"},
                         {"call": "flush_icache_range", "line": 104, "target": "0xffff0000", "alias": "exec"}],
         "model": {"verdict": "confirmed",
                   "implementations": {"wb9": "confirmed", "wb9_range": "refuted", "wt5": "refuted",
                                       "gone_from_this_tree": "confirmed"}}},
        {"rule": "AA004", "category": "missing-sync", "file": "arch/arm/kernel/other.c", "line": 5,
         "function": "innocent_poke", "chain": ["innocent_poke"],
         "maintenance": [{"call": "flush_dcache_page", "line": 6, "target": "page", "alias": "lowmem"}],
         "model": {"verdict": "refuted", "implementations": {"wb9": "refuted"}}},
    ]


@pytest.fixture(scope="module")
def result():
    return audit_tree(ASM / "old-style")


def test_graph_holds_chains_maintenance_and_the_code_of_confirming_implementations(result):
    g = findings_graph(result, fixture_findings())
    kinds = {name: node.kind for name, node in g.nodes.items()}
    assert kinds == {
        "patch_text": "caller", "__patch_text": "caller", "__patch_text_real": "function",
        "flush_icache_range": "maintenance", "__cpuc_flush_dcache_area": "maintenance",
        "set_fiq_handler": "function",
        "wb9_coherent_kern_range": "implementation", "wb9_range_coherent_kern_range": "implementation",
        "wb9_flush_kern_dcache_area": "implementation",
    }  # the refuted finding, the refuted wt5 and the implementation not in this tree are left out
    assert sorted(g.edges) == sorted([
        ("patch_text", "__patch_text"), ("__patch_text", "__patch_text_real"),
        ("__patch_text_real", "flush_icache_range"),
        ("flush_icache_range", "wb9_coherent_kern_range"), ("flush_icache_range", "wb9_range_coherent_kern_range"),
        ("set_fiq_handler", "__cpuc_flush_dcache_area"), ("set_fiq_handler", "flush_icache_range"),
        ("__cpuc_flush_dcache_area", "wb9_flush_kern_dcache_area"),
    ])
    ckr = g.nodes["wb9_coherent_kern_range"]
    assert (ckr.implementations, ckr.members, ckr.where) == (["wb9"], ["coherent_kern_range"], "arch/arm/mm/proc-wb9.S:51")
    assert ckr.findings == ["AA001 arch/arm/kernel/patch.c:96", "AA002 arch/arm/kernel/fiq.c:104"]


def test_extra_edges_and_a_cycle_are_drawn_and_layered(result):
    g = findings_graph(result, fixture_findings(),
                       graph=[("kprobe_handler", "patch_text"), ("__patch_text", "patch_text")])
    assert g.nodes["kprobe_handler"].kind == "caller"
    layer = _layers(g)
    last = max(layer.values())
    assert {layer[n] for n, node in g.nodes.items() if node.kind == "implementation"} == {last}
    assert {layer[n] for n, node in g.nodes.items() if node.kind == "maintenance"} == {last - 1}
    assert layer["__patch_text_real"] == layer["set_fiq_handler"] == last - 2
    assert layer["kprobe_handler"] < layer["patch_text"] < layer["__patch_text"] < layer["__patch_text_real"]


def test_svg_is_self_contained_and_every_box_has_its_place(result):
    g = findings_graph(result, fixture_findings())
    svg = render_call_graph_svg(g)
    root = ET.fromstring(svg)  # well-formed XML
    assert root.tag == SVG + "svg"
    assert "<script" not in svg and "href=" not in svg and "://" not in svg
    width, height = (float(v) for v in root.get("viewBox").split()[2:])
    nodes = root.findall(f".//{SVG}g[@class]")
    boxes = {}
    for node in nodes:
        if not node.get("class", "").startswith("node "):
            continue
        rect = node.find(SVG + "rect")
        x, y, w, h = (float(rect.get(k)) for k in ("x", "y", "width", "height"))
        assert 0 <= x and x + w <= width and 0 <= y and y + h <= height, node.get("data-name")
        label = node.find(SVG + "text").text
        assert label == node.get("data-name") and len(label) * 7.3 + 20 <= w + 0.1  # the label fits its box
        boxes[label] = (x, y, w, h)
    assert set(boxes) == set(g.nodes)
    for a, (ax, ay, aw, ah) in boxes.items():  # no two boxes overlap
        for b, (bx, by, bw, bh) in boxes.items():
            if a < b:
                assert ax + aw <= bx or bx + bw <= ax or ay + ah <= by or by + bh <= ay, (a, b)
    edges = root.findall(f".//{SVG}path[@class='edge']")
    assert sorted((p.get("data-from"), p.get("data-to")) for p in edges) == sorted(g.edges)
    for p in edges:  # each edge leaves its caller's right side for its callee's left side
        numbers = [float(n) for n in re.findall(r"-?\d+\.?\d*", p.get("d"))]
        fx, fy, fw, fh = boxes[p.get("data-from")]
        tx, ty, tw, th = boxes[p.get("data-to")]
        assert (numbers[0], numbers[1]) == (pytest.approx(fx + fw, abs=0.1), pytest.approx(fy + fh / 2, abs=0.1))
        assert (numbers[-2], numbers[-1]) == (pytest.approx(tx, abs=0.1), pytest.approx(ty + th / 2, abs=0.1))


def test_page_has_the_findings_section_only_with_findings(result):
    page = render_audit_html(result, fixture_findings())
    assert page.count("<tr class='finding'>") == 2 and page.count("<svg") == 1
    assert "2 of 3 findings confirmed by the cache model" in page
    assert "<svg" not in render_audit_html(result)
    none = render_audit_html(result, fixture_findings()[2:])
    assert "<svg" not in none and "None of the 1 findings is confirmed" in none
    assert "arch/arm/kernel/other.c" not in page.split("id='findings'")[1].split("<h2>Operations")[0]
