"""Finding the files to scan under the paths given, safely.

Symlinks are followed only when they stay inside the scanned root, and never into a directory already
visited (symlink loops).  Nothing here writes anywhere.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from armalias.facts import Skipped

C_SUFFIXES = (".c", ".h")
ASM_SUFFIXES = (".S",)
# Directories that are never source: VCS metadata, build outputs of common layouts.
IGNORED_DIRS = frozenset({".git", ".hg", ".svn", "__pycache__", ".pc"})


@dataclass
class Discovery:
    root: Path  # the scanned root; every reported path is relative to it
    files: list[str] = field(default_factory=list)  # relative paths, '/'-separated, sorted
    skipped: list[Skipped] = field(default_factory=list)


def rel_of(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def walk(root: Path, start: Path, suffixes: tuple[str, ...], out: Discovery) -> None:
    """Add files with the suffixes under start (a directory or a file inside root) to out."""
    real_root = root.resolve()
    seen_dirs: set[tuple[int, int]] = set()
    stack = [start]
    while stack:
        here = stack.pop()
        try:
            st = here.stat()
        except OSError as exc:
            rel = rel_of(root, here) if here.is_relative_to(root) else str(here)
            reason = "symlink loop" if getattr(exc, "errno", 0) == 40 else f"cannot stat: {exc.strerror}"
            if here.is_symlink() and not os.path.exists(here):
                reason = "broken or looping symlink"
            out.skipped.append(Skipped(rel, reason))
            continue
        if here.is_symlink():
            target = here.resolve()
            if not target.is_relative_to(real_root):
                out.skipped.append(Skipped(rel_of(root, here), "symlink pointing outside the scanned tree (not followed)"))
                continue
        if here.is_dir():
            key = (st.st_dev, st.st_ino)
            if key in seen_dirs:
                out.skipped.append(Skipped(rel_of(root, here), "symlink loop (directory already visited)"))
                continue
            seen_dirs.add(key)
            try:
                entries = sorted(os.scandir(here), key=lambda e: e.name, reverse=True)
            except OSError as exc:
                out.skipped.append(Skipped(rel_of(root, here), f"cannot list: {exc.strerror}"))
                continue
            for entry in entries:
                if entry.name in IGNORED_DIRS:
                    continue
                stack.append(Path(entry.path))
        elif here.name.endswith(suffixes):
            out.files.append(rel_of(root, here))
