"""Loads the data in rules/: kernel vocabulary tables and (later) one TOML file per rule.

The rules directory is found next to the package in a source checkout, or installed with it as
package data; ARMALIAS_RULES overrides both (tests point it at fixture rule sets).
"""

from __future__ import annotations

import hashlib
import os
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path


def rules_dir() -> Path:
    env = os.environ.get("ARMALIAS_RULES")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent
    for candidate in (here.parent.parent / "rules", here / "_rules"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("armalias: the rules/ directory is missing from this installation")


def _load(name: str) -> dict:
    with open(rules_dir() / name, "rb") as fh:
        return tomllib.load(fh)


@dataclass(frozen=True)
class NeutralizeSpec:
    annotations: tuple[str, ...]
    annotations_with_args: tuple[str, ...]
    statement_macros: tuple[str, ...]
    loop_macro_patterns: tuple[str, ...]


@lru_cache(maxsize=None)
def load_neutralize() -> NeutralizeSpec:
    raw = _load("neutralize.toml")
    return NeutralizeSpec(
        annotations=tuple(raw.get("annotations", ())),
        annotations_with_args=tuple(raw.get("annotations_with_args", ())),
        statement_macros=tuple(raw.get("statement_macros", ())),
        loop_macro_patterns=tuple(raw.get("loop_macro_patterns", ())),
    )


@dataclass(frozen=True)
class WatchedSpec:
    names: tuple[str, ...]
    cache_fns_struct: str
    cache_fns_members: tuple[str, ...]


@lru_cache(maxsize=None)
def load_watched() -> WatchedSpec:
    raw = _load("watched.toml")
    fns = raw.get("cache_fns", {})
    return WatchedSpec(
        names=tuple(raw["watched"]["names"]),
        cache_fns_struct=fns.get("struct", "cpu_cache_fns"),
        cache_fns_members=tuple(fns.get("members", ())),
    )


@lru_cache(maxsize=None)
def rules_digest() -> str:
    """A hash of every data file in rules/: part of the content-cache key."""
    h = hashlib.sha256()
    for path in sorted(rules_dir().glob("*.toml")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]
