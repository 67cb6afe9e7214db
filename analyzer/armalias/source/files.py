"""Finding the files to scan under the paths given, safely.

Symlinks are followed only when they stay inside the scanned root, and never into a directory already
visited (symlink loops).  Nothing here writes anywhere.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
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
    dirs: list[str] = field(default_factory=list)  # the directories listed, relative ("" for the root)


def rel_of(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


# Paths of at most this many characters (4 bytes each at most) stay below PATH_MAX (4096 bytes), so stat on them
# cannot fail with ENAMETOOLONG; longer ones go through the full checks.
FAST_PATH_CHARS = 1000


def check_path(root: Path, real_root: Path, here: Path, suffixes: tuple[str, ...], out: Discovery) -> os.stat_result | None:
    """The full checks for one path (the start, a symlink, an entry whose type is in doubt): skip it with its reason,
    add it as a file, or return its stat when it is a directory to list."""
    try:
        st = here.stat()
    except OSError as exc:
        rel = rel_of(root, here) if here.is_relative_to(root) else str(here)
        reason = "symlink loop" if getattr(exc, "errno", 0) == 40 else f"cannot stat: {exc.strerror}"
        if here.is_symlink() and not os.path.exists(here):
            reason = "broken or looping symlink"
        out.skipped.append(Skipped(rel, reason))
        return None
    if here.is_symlink():
        target = here.resolve()
        if not target.is_relative_to(real_root):
            out.skipped.append(Skipped(rel_of(root, here), "symlink pointing outside the scanned tree (not followed)"))
            return None
    if here.is_dir():
        return st
    if here.name.endswith(suffixes):
        out.files.append(rel_of(root, here))
    return None


def walk(root: Path, start: Path, suffixes: tuple[str, ...], out: Discovery) -> None:
    """Add files with the suffixes under start (a directory or a file inside root) to out, depth first in name order.

    Plain files and directories are told apart by the type the directory listing gives (no stat per file); a
    directory is stat'ed for loop detection, and its "." once to know a stat of its entries would succeed.  Symlinks,
    and the entries of a directory that cannot be searched or have very long paths, get the full checks of
    check_path, so the files and skipped entries are those a stat of every path would give.
    """
    real_root = root.resolve()
    seen_dirs: set[tuple[int, int]] = set()
    files, skipped = out.files, out.skipped
    # one frame per directory being listed: its remaining entries, its path relative to root ('.' for root itself;
    # None when it is not below root by name, so the entries' paths are worked out, and refused, as rel_of does),
    # and whether its entries can be trusted to stat without error
    stack: list[tuple[Iterator[os.DirEntry[str]], str | None, bool]] = []

    def open_dir(path: str, rel: str | None, st: os.stat_result) -> bool:
        key = (st.st_dev, st.st_ino)
        if key in seen_dirs:
            skipped.append(Skipped(rel_of(root, Path(path)) if rel is None else rel, "symlink loop (directory already visited)"))
            return False
        seen_dirs.add(key)
        if rel is not None:
            out.dirs.append("" if rel == "." else rel)
        try:
            entries = sorted(os.scandir(path), key=lambda e: e.name)
        except OSError as exc:
            skipped.append(Skipped(rel_of(root, Path(path)) if rel is None else rel, f"cannot list: {exc.strerror}"))
            return False
        try:
            os.stat(os.path.join(path, "."))  # searchable: a stat of any entry will succeed
            searchable = True
        except OSError:
            searchable = False
        stack.append((iter(entries), rel, searchable))
        return True

    st = check_path(root, real_root, start, suffixes, out)
    if st is not None:
        open_dir(os.fspath(start), rel_of(root, start) if start.is_relative_to(root) else None, st)
    while stack:
        entries, prel, searchable = stack[-1]
        for entry in entries:
            name = entry.name
            if name in IGNORED_DIRS:
                continue
            path = entry.path
            kind = 0  # 0: full checks, 1: plain directory, 2: anything else that is not a symlink
            if searchable and len(path) <= FAST_PATH_CHARS:
                try:
                    if not entry.is_symlink():
                        kind = 1 if entry.is_dir(follow_symlinks=False) else 2
                except OSError:
                    pass
            if kind == 2:
                if name.endswith(suffixes):
                    files.append(rel_of(root, Path(path)) if prel is None else name if prel == "." else f"{prel}/{name}")
                continue
            rel = None if prel is None else name if prel == "." else f"{prel}/{name}"
            if kind == 1:
                try:
                    st = os.stat(path)
                except OSError:
                    st = check_path(root, real_root, Path(path), suffixes, out)
            else:
                st = check_path(root, real_root, Path(path), suffixes, out)
            if st is not None and open_dir(path, rel, st):
                break  # go down into it; this directory's remaining entries wait on the stack
        else:
            stack.pop()


class NotRegular(OSError):
    """A path that is not a regular file (a FIFO, a device, a socket, a directory), or a symbolic link that
    leads out of the root it must stay in: never opened for reading, so nothing blocks on it."""


def within(path: str | os.PathLike, root: str | os.PathLike) -> bool:
    """Whether `path` names `root` or something below it, by name (no link is resolved here)."""
    p, r = os.path.abspath(path), os.path.abspath(root)
    return os.path.commonpath([p, r]) == r


@lru_cache(maxsize=4096)
def _real_dir(directory: str) -> str:
    return os.path.realpath(directory)


def _open_regular(path: str, root: str | None) -> int:
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    # O_NOFOLLOW guards the last component only: a directory on the way that is a link out of the
    # tree (`include/linux -> /elsewhere`) is refused here (each directory resolved once)
    if root is not None and not within(_real_dir(os.path.dirname(os.path.abspath(path))), _real_dir(os.path.abspath(root))):
        raise NotRegular(40, "in a directory that leads outside the tree (a symbolic link, not followed)", path)
    try:
        return os.open(path, flags)
    except OSError as exc:
        if exc.errno != 40:  # ELOOP: the last component is a symbolic link
            raise
    if root is None:
        raise NotRegular(40, "a symbolic link (not followed)", path)
    real = os.path.realpath(path)
    if not within(real, os.path.realpath(root)):
        raise NotRegular(40, "a symbolic link leading outside the tree (not followed)", path)
    return os.open(real, flags)


def read_regular(path: str | os.PathLike, limit: int, root: str | os.PathLike | None = None) -> tuple[bytes, os.stat_result]:
    """The bytes of a regular file of at most `limit` bytes, and its stat, from one descriptor.

    The open never blocks (O_NONBLOCK: a FIFO gives no writer a chance to hold it), the descriptor is
    checked to be a regular file before anything is read, and at most `limit` + 1 bytes are read, so a
    file that grows past its stat, or lies about its size (/proc, a device behind a link), is refused
    rather than read to its end.  A symbolic link as the last component is followed only when `root`
    is given and the link resolves inside it.  Raises NotRegular, FileTooLarge or OSError."""
    fd = _open_regular(os.fspath(path), None if root is None else os.fspath(root))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegular(0, f"not a regular file ({_kind(st.st_mode)})", os.fspath(path))
        if st.st_size > limit:
            raise FileTooLarge(st.st_size, limit)
        parts = []
        got = 0
        want = min(st.st_size, limit) + 1  # the size the stat gives, and one byte to see the end
        while got <= limit:
            asked = min(want, limit + 1 - got)
            chunk = os.read(fd, asked)
            parts.append(chunk)
            got += len(chunk)
            if len(chunk) < asked:  # a short read of a regular file: its end
                break
            want = 1 << 16
        if got > limit:
            raise FileTooLarge(got, limit)
        return b"".join(parts), st
    finally:
        os.close(fd)


class FileTooLarge(OSError):
    def __init__(self, size: int, limit: int):
        super().__init__(27, f"too large ({size} bytes > {limit})")
        self.size = size
        self.limit = limit


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory")):
        if test(mode):
            return name
    return "not a plain file"


def read_input(path: str | os.PathLike, limit: int) -> bytes:
    """The bytes of an input named on the command line (a patch, '-' for standard input): a regular
    file, or a pipe (`--patch <(git diff)`), read to its end but never past `limit` + 1 bytes.  A
    device, a socket or a directory is refused (NotRegular), as is anything larger (FileTooLarge)."""
    if os.fspath(path) == "-":
        import sys

        data = sys.stdin.buffer.read(limit + 1)
        if len(data) > limit:
            raise FileTooLarge(len(data), limit)
        return data
    fd = os.open(os.fspath(path), os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISFIFO(st.st_mode)):
            raise NotRegular(0, f"not a regular file or a pipe ({_kind(st.st_mode)})", os.fspath(path))
        if stat.S_ISFIFO(st.st_mode):
            os.set_blocking(fd, True)  # a pipe's writer may still be writing: wait for its end
        parts, got = [], 0
        while got <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - got))
            if not chunk:
                break
            parts.append(chunk)
            got += len(chunk)
        if got > limit:
            raise FileTooLarge(got, limit)
        return b"".join(parts)
    finally:
        os.close(fd)


def read_named(path: str | os.PathLike, limit: int, what: str) -> bytes:
    """The bytes of a file the user named by a flag (a baseline, a kernel .config), a link followed (the
    user named it); a missing or unreadable one is an InputError that says `what` it was to be."""
    from armalias.errors import InputError

    try:
        return read_regular(os.path.realpath(path), limit)[0]
    except FileNotFoundError:
        raise InputError(f"{path}: no such {what}") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read the {what}: {exc.strerror or exc}") from None
