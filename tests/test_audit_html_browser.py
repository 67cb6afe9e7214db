"""The audit's HTML page in a real headless browser (Debian's chromium; .ci/run installs it).

The page is rendered twice: --dump-dom gives the DOM the browser built (the table rows and the SVG
nodes must be there), --screenshot a PNG that must show the page, the graph's coloured boxes included.
Skipped, saying why, when no chromium is installed.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest

from armalias.audit import audit_tree
from armalias.report.audit import findings_graph, render_audit_html
from test_audit_callgraph import ASM, fixture_findings

pytestmark = pytest.mark.browser

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
WINDOW = (1400, 2000)
# Fills of the graph's boxes (report/audit.py _CSS): implementation code, the function holding the write.
IMPLEMENTATION_FILL = (0xFB, 0xD9, 0xD9)
FUNCTION_FILL = (0xFF, 0xE1, 0xB3)


def browser() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no headless browser: install Debian's chromium (apt-get install -y chromium; .ci/run does)")


def run_browser(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    command = [browser(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=180, cwd=tmp_path)


class DomSummary(HTMLParser):
    """The parts of the browser's DOM the test checks."""

    def __init__(self) -> None:
        super().__init__()
        self.implementation_rows: list[str] = []  # first cell's text of table.implementations body rows
        self.finding_rows = 0
        self.svg_nodes: dict[str, str] = {}  # data-name -> data-kind
        self.svg_edges: list[tuple[str, str]] = []
        self.scripts = 0
        self._table = ""
        self._in_body = False
        self._want_cell = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if tag == "table":
            self._table = classes[0] if classes else ""
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body and self._table == "implementations":
            self.implementation_rows.append("")
            self._want_cell = True
        elif tag == "tr" and "finding" in classes:
            self.finding_rows += 1
        elif tag == "g" and "node" in classes:
            self.svg_nodes[a.get("data-name") or ""] = a.get("data-kind") or ""
        elif tag == "path" and "edge" in classes:
            self.svg_edges.append((a.get("data-from") or "", a.get("data-to") or ""))
        elif tag == "script":
            self.scripts += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "tbody":
            self._in_body = False
        elif tag == "td":
            self._want_cell = False

    def handle_data(self, data: str) -> None:
        if self._want_cell and self.implementation_rows:
            self.implementation_rows[-1] += data.strip()


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGB(A) bytes) of an 8-bit, non-interlaced RGB or RGBA PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    assert header is not None
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0, header
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            up, corner = prev[i], (prev[i - bpp] if i >= bpp else 0)
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        rows.append(bytes(line) if bpp == 3 else bytes(b for k, b in enumerate(line) if k % 4 != 3))
        prev = line
    return width, height, rows


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    result = audit_tree(ASM / "old-style")
    findings = fixture_findings()
    out = tmp_path_factory.mktemp("html")
    path = out / "audit.html"
    path.write_text(render_audit_html(result, findings), encoding="utf-8")
    return result, findings, path


def test_browser_dom_has_the_table_rows_and_the_svg_nodes(page, tmp_path):
    result, findings, path = page
    proc = run_browser(tmp_path, "--dump-dom", path.as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = DomSummary()
    dom.feed(proc.stdout)
    assert dom.implementation_rows == [impl.name for impl in result.implementations]
    assert dom.finding_rows == 2
    graph = findings_graph(result, findings)
    assert dom.svg_nodes == {name: node.kind for name, node in graph.nodes.items()}
    assert sorted(dom.svg_edges) == sorted(graph.edges)
    assert dom.scripts == 0


def test_browser_screenshot_shows_the_page_and_the_graph(page, tmp_path):
    _, _, path = page
    shot = tmp_path / "audit.png"
    proc = run_browser(tmp_path, f"--screenshot={shot}", f"--window-size={WINDOW[0]},{WINDOW[1]}", path.as_uri())
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    width, height, rows = png_pixels(shot.read_bytes())
    assert (width, height) == WINDOW
    pixels = [rows[y][x:x + 3] for y in range(0, height, 2) for x in range(0, width * 3, 6)]
    white = bytes((255, 255, 255))
    inked = sum(1 for p in pixels if p != white) / len(pixels)
    assert inked > 0.02, f"only {inked:.1%} of the screenshot is not white"
    colours = set(pixels)
    assert len(colours) > 20  # text, table rules, box fills: not a flat page
    assert bytes(IMPLEMENTATION_FILL) in colours and bytes(FUNCTION_FILL) in colours, "graph boxes not drawn"
