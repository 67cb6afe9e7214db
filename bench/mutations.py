#!/usr/bin/env python3
"""Detection power as users meet it: small edits of real kernel code, each run through
`armalias check --patch` on a real tree, each expected caught or quiet.

    python bench/mutations.py [--tree 6.12=PATH] [--only NAME] [--json FILE] [-v]

The corpus is bench/mutations/*.toml, one `[[mutation]]` table per edit:

    name     = "patch-text-drop-vmap-flush"     # unique
    tree     = "6.12"                           # or "6.1", or "both"
    file     = "arch/arm/kernel/patch.c"        # relative to the kernel root
    function = "__patch_text_real"
    kind     = "deleted-maintenance"            # what kind of edit (see KINDS)
    expect   = "caught"                         # "caught": a bug edit; "quiet": behaviour kept
    old      = "..."                            # text that occurs exactly once in the file
    new      = "..."                            # what replaces it
    why      = "..."                            # why the edit is a bug, or why it changes nothing

A bug edit counts as caught when `check` reports a new finding of severity warning or error in the
edited file.  A benign edit counts as quiet when `check` reports no new and no fixed finding at all.
The trees come from `.ci/fetch-kernel` (or `--tree VERSION=PATH`); edits whose tree cannot be had are
counted apart, never as caught or quiet.  Nothing is written into a tree: each edit is a patch file in a
temporary directory, applied in memory by `armalias check`.  Files outside arch/arm are checked with
`--whole-tree`.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import subprocess
import sys
import tempfile
import tomllib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
CORPUS = BENCH / "mutations"
FETCH = REPO / ".ci" / "fetch-kernel"

BUG_KINDS = ("deleted-maintenance", "wrong-alias", "wrong-buffer", "short-range", "plain-copy",
             "deleted-override", "pou-for-poc", "write-after-maintenance")
BENIGN_KINDS = ("rename", "reorder", "extract-helper", "inline-helper", "through-local", "macro-wrap",
                "equivalent-expression", "kmap-flavour", "move-code")
KINDS = BUG_KINDS + BENIGN_KINDS
RANK = {"note": 0, "warning": 1, "error": 2}


@dataclass(frozen=True)
class Mutation:
    name: str
    tree: str
    file: str
    function: str
    kind: str
    expect: str
    old: str
    new: str
    why: str
    source: str  # the corpus file it came from


def load_corpus(directory: Path = CORPUS) -> list[Mutation]:
    out: list[Mutation] = []
    seen: set[str] = set()
    for path in sorted(directory.glob("*.toml")):
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
        for entry in data.get("mutation", ()):
            m = Mutation(**{k: entry.get(k, "") for k in ("name", "tree", "file", "function", "kind", "expect",
                                                         "old", "new", "why")}, source=path.name)
            problems = []
            if m.name in seen:
                problems.append("name used twice")
            if m.kind not in KINDS:
                problems.append(f"unknown kind {m.kind!r}")
            if m.expect not in ("caught", "quiet") or (m.expect == "caught") != (m.kind in BUG_KINDS):
                problems.append(f"expect {m.expect!r} does not fit kind {m.kind!r}")
            if m.tree not in ("6.1", "6.12", "both"):
                problems.append(f"unknown tree {m.tree!r}")
            if not m.old or m.old == m.new:
                problems.append("empty or unchanged edit")
            if problems:
                raise SystemExit(f"{path.name}: {m.name or '(no name)'}: {'; '.join(problems)}")
            seen.add(m.name)
            out.append(m)
    return out


def fetch_tree(version: str) -> tuple[Path | None, str]:
    try:
        res = subprocess.run([str(FETCH), version], capture_output=True, text=True, timeout=1800)
    except (OSError, subprocess.SubprocessError) as exc:
        return None, str(exc)
    for line in res.stdout.splitlines():
        head, _, rest = line.partition(" ")
        if head == version:
            if rest.startswith("unavailable"):
                return None, rest
            return Path(rest.strip()), ""
    return None, "fetch-kernel printed nothing for it"


def make_patch(tree: Path, m: Mutation) -> str:
    """The edit as a unified diff against the tree's file; ValueError when `old` is not there once."""
    text = (tree / m.file).read_text(encoding="utf-8", errors="surrogateescape")
    count = text.count(m.old)
    if count != 1:
        raise ValueError(f"`old` occurs {count} times in {m.file}")
    after = text.replace(m.old, m.new)
    lines = difflib.unified_diff(text.splitlines(keepends=True), after.splitlines(keepends=True),
                                 f"a/{m.file}", f"b/{m.file}", n=3)
    return "".join(lines)


def run_one(tree: Path, m: Mutation, workdir: Path, cache: Path) -> dict:
    try:
        diff = make_patch(tree, m)
    except (OSError, ValueError) as exc:
        return {"outcome": "error", "detail": str(exc)}
    patch = workdir / f"{m.name}.patch"
    patch.write_text(diff, encoding="utf-8", errors="surrogateescape")
    cmd = [sys.executable, "-m", "armalias", "check", "--tree", str(tree), "--patch", str(patch),
           "--format", "json", "--fail-on", "error"]
    if not m.file.startswith("arch/arm/"):
        cmd.append("--whole-tree")
    env = dict(os.environ, ARMALIAS_CACHE_DIR=str(cache))
    res = subprocess.run(cmd, capture_output=True, env=env, timeout=600)
    if res.returncode not in (0, 1):
        return {"outcome": "error", "detail": res.stderr.decode(errors="replace").strip()[-400:]}
    data = json.loads(res.stdout)
    new = data.get("new", [])
    fixed = data.get("fixed", [])
    serious = [f for f in new if f["file"] == m.file and RANK.get(f["severity"], 0) >= RANK["warning"]]
    if m.expect == "caught":
        outcome = "caught" if serious else "missed"
    else:
        outcome = "quiet" if not new and not fixed else "noisy"
    return {"outcome": outcome, "new": [(f["rule"], f["severity"], f["line"], f["function"]) for f in new],
            "fixed": [(f["rule"], f["severity"], f["line"], f["function"]) for f in fixed]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tree", action="append", default=[], metavar="VERSION=PATH")
    ap.add_argument("--only", action="append", default=[], metavar="NAME", help="run only these mutations")
    ap.add_argument("--json", type=Path, help="write every outcome here")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every mutation's outcome")
    args = ap.parse_args(argv)
    corpus = load_corpus()
    if args.only:
        corpus = [m for m in corpus if m.name in args.only]
    trees: dict[str, Path | None] = {}
    why: dict[str, str] = {}
    for spec in args.tree:
        version, _, path = spec.partition("=")
        trees[version] = Path(path)
    for version in ("6.1", "6.12"):
        if version not in trees:
            trees[version], why[version] = fetch_tree(version)
    results = []
    with tempfile.TemporaryDirectory(prefix="armalias-mutations-") as tmp:
        workdir = Path(tmp)
        for m in corpus:
            for version in (("6.1", "6.12") if m.tree == "both" else (m.tree,)):
                tree = trees.get(version)
                if tree is None:
                    r = {"outcome": "no-tree", "detail": why.get(version, "")}
                else:
                    r = run_one(tree, m, workdir, workdir / f"cache-{version}")
                r.update(name=m.name, tree=version, kind=m.kind, expect=m.expect, file=m.file, function=m.function)
                results.append(r)
                if args.verbose:
                    print(f"{r['outcome']:8} {version:5} {m.kind:24} {m.name}  {r.get('new') or ''}"
                          f"{' fixed ' + str(r['fixed']) if r.get('fixed') else ''}{r.get('detail', '')}")
    table: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in results:
        table[r["kind"]][r["outcome"]] += 1
    print(f"{'kind':26} {'expect':7} {'good':>5} {'bad':>5} {'other':>6}  rate")
    totals = {"caught": [0, 0], "quiet": [0, 0]}
    for kind in KINDS:
        if kind not in table:
            continue
        row = table[kind]
        expect = "caught" if kind in BUG_KINDS else "quiet"
        good = row[expect]
        bad = row["missed" if expect == "caught" else "noisy"]
        other = sum(row.values()) - good - bad
        totals[expect][0] += good
        totals[expect][1] += good + bad
        rate = f"{good / (good + bad):.0%}" if good + bad else "n/a"
        print(f"{kind:26} {expect:7} {good:5} {bad:5} {other:6}  {rate}")
    functions = {(r["file"], r["function"]) for r in results}
    for expect, (good, total) in totals.items():
        print(f"{'bug edits caught' if expect == 'caught' else 'benign edits quiet'}: {good}/{total}"
              + (f" = {good / total:.0%}" if total else ""))
    print(f"edits run: {len(results)} over {len(functions)} functions; "
          f"not run (no tree or a stale edit): {sum(r['outcome'] in ('no-tree', 'error') for r in results)}")
    for r in results:
        if r["outcome"] == "error":
            print(f"error: {r['name']} ({r['tree']}): {r['detail']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
