"""One parametrized test over every annotated fixture: the exact set of (line, code) findings.

Expectations are C comments on the diagnosed line: `/* expect: AA001 */` must fire there,
`/* ok: AA001 */` must not; `@+N` / `@-N` after the code shifts the line.  Missing and noisy findings
are reported separately.
"""

import re
from pathlib import Path

import pytest

from armalias.rules import load_rules
from armalias.scan import ScanOptions, scan
from conftest import expectations

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "rules"
FIXTURE_FILES = sorted(FIXTURES.glob("*.c"))
# Rules of the audit (category "contract", AA006) judge the cache implementations of arch/arm/mm,
# never C code: `scan` does not raise them, so their expectations sit on the assembly of the audit's
# fixture trees, on the line where a member's code starts (tests/test_audit_contract.py checks them).
AUDIT_CATEGORIES = ("contract",)
AUDIT_FIXTURE_FILES = sorted(FIXTURES.parent.glob("asm/*/arch/arm/mm/*.S"))


def test_fixtures_were_collected():
    assert FIXTURE_FILES, f"no annotated fixtures under {FIXTURES}"


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: p.name)
def test_fixture_findings_exact(path: Path):
    exp = expectations(path)
    assert exp["expect"] or exp["ok"], f"{path.name} states no expectation"
    found = {(f.line, f.rule) for f in scan([path], ScanOptions(jobs=1, use_cache=False)).findings}
    missing = (exp["expect"] | exp["todo-ok"]) - found - exp["todo-expect"]
    noisy = found - exp["expect"] - exp["todo-ok"]
    promoted = (exp["todo-expect"] & found) | (exp["todo-ok"] - found)
    assert not missing, f"missing findings in {path.name}: {sorted(missing)}"
    assert not noisy, f"noisy findings in {path.name}: {sorted(noisy)}"
    assert not (exp["ok"] & found), f"ok lines that fired in {path.name}: {sorted(exp['ok'] & found)}"
    assert not promoted, f"todo expectations that now pass in {path.name}, promote them: {sorted(promoted)}"


def test_every_rule_has_spec_docs_and_fixtures():
    rules = load_rules()
    assert rules, "no rule files in rules/"
    for code, spec in rules.items():
        docs = dict(spec.docs)
        assert {"what", "why", "bad", "good", "references"} <= set(docs), f"{code}: incomplete docs"
        assert spec.category in ("alias-write", "stale-exec-alias", "range", "missing-sync", "poc", *AUDIT_CATEGORIES)
        files = AUDIT_FIXTURE_FILES if spec.category in AUDIT_CATEGORIES else FIXTURE_FILES
        tags = {p: expectations(p) for p in files}
        assert any(c == code for t in tags.values() for _, c in t["expect"]), f"{code}: no expect fixture"
        assert any(c == code for t in tags.values() for _, c in t["ok"]), f"{code}: no ok fixture"


def test_alias_rules_only_where_arms_vocabulary_holds():
    tree = FIXTURES.parent / "scope"
    found = {(f.file, f.rule) for f in scan([tree], ScanOptions(jobs=1, use_cache=False)).findings}
    assert found == {("arch/arm/kernel/patching.c", "AA001"), ("arch/arm/kernel/patching.c", "AA002"),
                     ("arch/arm/kernel/patching.c", "AA003"),
                     ("arch/arm64/kernel/patching.c", "AA003")}


def test_alias_write_message_says_what_the_maintenance_missed(tmp_path: Path):
    """AA001's reason, in three shapes: maintenance of another alias, maintenance of an address of no
    known alias (kernel/kexec_core.c:883 in 6.1: a kmap write, then a flush of `page_addr`), none."""
    (tmp_path / "w.c").write_text(
        "void other(struct page *page, void *addr, unsigned int insn)\n{\n"
        "\tvoid *p = kmap_local_page(page);\n\t*(u32 *)p = insn;\n"
        "\tflush_icache_range((unsigned long)addr, (unsigned long)addr + 4);\n}\n"
        "void unknown(struct page *page, unsigned int insn)\n{\n"
        "\tvoid *p = kmap_local_page(page);\n\tunsigned long page_addr = page_to_something(page);\n"
        "\t*(u32 *)p = insn;\n\tflush_icache_range(page_addr, page_addr + 4);\n}\n")
    found = {f.function: f.message for f in scan([tmp_path], ScanOptions(jobs=1, use_cache=False)).findings
             if f.rule == "AA001"}
    assert set(found) == {"other", "unknown"}
    assert "covers only" in found["other"] and "nothing" not in found["other"]
    assert found["unknown"].endswith("is on an address of no known alias (`page_addr`)")


@pytest.mark.parametrize("arch,fires", [("ia64", False), ("arm", True)])
def test_generic_code_expands_arm_and_generic_macro_definitions_only(tmp_path: Path, arch: str, fires: bool):
    """A whole-tree scan holds every architecture's definition of a macro.  Generic code
    (kernel/kexec_core.c in 6.1) gets ARM's or the generic one, never ia64's: there
    kexec_flush_icache_page() is a flush_icache_range(), on ARM it is empty."""
    (tmp_path / f"arch/{arch}/include/asm").mkdir(parents=True)
    (tmp_path / f"arch/{arch}/include/asm/kexec.h").write_text(
        "#define kexec_flush_icache_page(page) do { unsigned long page_addr = (unsigned long)page_address(page); "
        "flush_icache_range(page_addr, page_addr + PAGE_SIZE); } while(0)\n")
    (tmp_path / "include/linux").mkdir(parents=True)
    (tmp_path / "include/linux/kexec.h").write_text("#ifndef kexec_flush_icache_page\n"
                                                    "#define kexec_flush_icache_page(page)\n#endif\n")
    (tmp_path / "kernel").mkdir()
    (tmp_path / "kernel/kexec_core.c").write_text(
        "void load_segment(struct page *page, const void *src, int n)\n{\n\tchar *ptr = kmap_local_page(page);\n"
        "\tmemcpy(ptr, src, n);\n\tkexec_flush_icache_page(page);\n\tkunmap_local(ptr);\n}\n")
    found = [f for f in scan([tmp_path], ScanOptions(jobs=1, use_cache=False, whole_tree=True)).findings
             if f.rule == "AA001"]
    assert [f.function for f in found] == (["load_segment"] if fires else [])


def test_each_architecture_s_code_expands_its_own_macro_definitions_in_one_scan(tmp_path: Path):
    """The flow keeps a macro's definitions per architecture (FlowAnalysis._defs): ia64's code, analysed
    first (its files sort first), gets ia64's kexec_flush_icache_page, a flush_icache_range();
    generic code after it still gets the generic, empty one."""
    (tmp_path / "arch/ia64/include/asm").mkdir(parents=True)
    (tmp_path / "arch/ia64/include/asm/kexec.h").write_text(
        "#define kexec_flush_icache_page(page) do { unsigned long page_addr = (unsigned long)page_address(page); "
        "flush_icache_range(page_addr, page_addr + PAGE_SIZE); } while(0)\n")
    (tmp_path / "include/linux").mkdir(parents=True)
    (tmp_path / "include/linux/kexec.h").write_text("#ifndef kexec_flush_icache_page\n"
                                                    "#define kexec_flush_icache_page(page)\n#endif\n")
    body = ("(struct page *page, const void *src, int n)\n{\n\tchar *ptr = kmap_local_page(page);\n"
            "\tmemcpy(ptr, src, n);\n\tkexec_flush_icache_page(page);\n\tkunmap_local(ptr);\n}\n")
    (tmp_path / "arch/ia64/kernel").mkdir(parents=True)
    (tmp_path / "arch/ia64/kernel/machine_kexec.c").write_text("void ia64_load" + body)
    (tmp_path / "kernel").mkdir()
    (tmp_path / "kernel/kexec_core.c").write_text("void load_segment" + body)
    result = scan([tmp_path], ScanOptions(jobs=1, use_cache=False, whole_tree=True))
    sites = {(c.file, c.callee) for c in result.callsites}
    assert ("arch/ia64/kernel/machine_kexec.c", "flush_icache_range") in sites  # ia64's code was analysed
    assert [f for f in result.findings if f.file == "kernel/kexec_core.c"] == []


def _emitted() -> list[tuple[str, str, str]]:
    """(rule code, variant, where) of every finding the checks build (`self.finding("AA001", ...,
    variant="...")`) and the audit raises.  A code held in a name stands for the rule codes written
    in the function around the call or, when it has none, in its class's attributes (`_EFFECTS`)."""
    import ast

    def codes_in(nodes) -> list[str]:
        return sorted({n.value for node in nodes for n in ast.walk(node) if isinstance(n, ast.Constant)
                       and isinstance(n.value, str) and re.fullmatch(r"AA\d{3}", n.value)})

    package = Path(__file__).resolve().parent.parent / "analyzer" / "armalias"
    out = []
    for path in sorted((package / "checks").glob("*.py")) + [package / "audit.py"]:
        tree = ast.parse(path.read_text())
        for cls in [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)] or [tree]:
            attrs = [n for n in cls.body if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
            for fn in [n for n in cls.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]:
                for node in ast.walk(fn):
                    if not (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "finding" and node.args):
                        continue
                    variant = next((k.value.value for k in node.keywords if k.arg == "variant"
                                    and isinstance(k.value, ast.Constant)), "")
                    first = node.args[0]
                    codes = ([first.value] if isinstance(first, ast.Constant)
                             else codes_in([fn]) or codes_in(attrs))
                    out.extend((code, variant, f"{path.name}:{node.lineno}") for code in codes)
        out.extend((code, "", path.name) for code in codes_in([tree]))
    return out


def test_rules_and_their_implementations_match_one_to_one():
    """Every rule file's code is raised by some check, every code a check raises has a rule file, and
    every message variant a check asks for is in that rule's [variants]: a missing one would be a
    KeyError at the first finding of that shape."""
    rules = load_rules()
    emitted = _emitted()
    assert {code for code, _, _ in emitted} == set(rules)
    for code, variant, where in emitted:
        if variant:
            assert variant in dict(rules[code].variants), f"{where}: {code} has no variant {variant!r}"
    for code, spec in rules.items():  # a variant's severity names a variant the rule has
        assert set(dict(spec.variant_severity)) <= set(dict(spec.variants)), code
