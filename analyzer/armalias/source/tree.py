"""Where source bytes come from: a directory on disk, a git revision, or either with changes laid on
top (a patch applied in memory).  The scan reads only through these, so `check` can analyse two
revisions of a kernel tree without checking anything out and without writing into the user's tree.

Every file has a digest, the git blob id of its bytes (sha1 of "blob <len>\\0" + bytes), so a git
revision gives the digests of all its files without reading them, and the extraction cache is shared
between a directory and a revision holding the same bytes.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from armalias.check.git import run_git, start_git
from armalias.errors import InputError
from armalias.source.files import ASM_SUFFIXES, C_SUFFIXES, Discovery, FileTooLarge, NotRegular, read_regular, walk
from armalias.source.text import MAX_FILE_BYTES, Unreadable, check_text

SOURCE_SUFFIXES = C_SUFFIXES + ASM_SUFFIXES


def too_large(size: int) -> Unreadable:
    return Unreadable(f"too large ({size} bytes > {MAX_FILE_BYTES})")


def read_file(path: str, root: str | None = None) -> tuple[bytes, list[int]]:
    """A file's bytes and [size, mtime_ns, ctime_ns, inode], from one descriptor (files.read_regular:
    regular files only, never blocking, never more than MAX_FILE_BYTES + 1 bytes read).  Raises
    OSError, or Unreadable for a file over MAX_FILE_BYTES (never parsed) or one that is no regular file."""
    try:
        data, st = read_regular(path, MAX_FILE_BYTES, root)
    except FileTooLarge as exc:
        raise too_large(exc.size) from None
    except NotRegular as exc:
        raise Unreadable(exc.strerror) from None
    return data, [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]  # armalias.state.stamp_of


def blob_id(data: bytes) -> str:
    h = hashlib.sha1(b"blob %d\0" % len(data))
    h.update(data)
    return h.hexdigest()


class TreeSource:
    """A tree of source files, addressed by '/'-separated paths relative to its root."""

    label: str

    def discover(self, under: str = "") -> Discovery:  # files with SOURCE_SUFFIXES below `under`
        raise NotImplementedError

    def read(self, rel: str) -> bytes:  # raises Unreadable
        raise NotImplementedError

    def digest(self, rel: str) -> str | None:  # known without reading, or None
        return None

    def is_file(self, rel: str) -> bool:
        raise NotImplementedError

    def is_dir(self, rel: str) -> bool:
        raise NotImplementedError

    def local_path(self, rel: str) -> Path | None:  # a file on disk with these bytes, if any
        return None

    def held_in_memory(self) -> frozenset[str]:  # files whose bytes differ from the disk's (a patch's)
        return frozenset()


class DirectorySource(TreeSource):
    def __init__(self, root: Path, label: str | None = None):
        self.root = root
        self.label = label if label is not None else str(root)
        self._listing: dict[str, frozenset[str]] = {}

    def discover(self, under: str = "") -> Discovery:
        d = Discovery(self.root)
        start = self.root / under if under else self.root
        if start.is_dir():
            walk(self.root, start, SOURCE_SUFFIXES, d)
        d.files.sort()
        return d

    def read(self, rel: str) -> bytes:
        try:
            return read_file(os.path.join(self.root, rel), os.fspath(self.root))[0]
        except OSError as exc:
            raise Unreadable(f"cannot read: {exc.strerror or exc}") from None

    def _names(self, directory: str) -> frozenset[str]:
        """The names in a directory, listed once.  A directory its parent's listing does not name
        is not listed: of the 975 directories arch/arm's includes probed, 826 did not exist (an
        `#include <linux/x.h>` looked for next to its includer, in .../linux)."""
        names = self._listing.get(directory)
        if names is None:
            parent, _, base = directory.rpartition("/")
            if directory and base not in self._names(parent):
                names = frozenset()
            else:
                try:
                    names = frozenset(os.listdir(os.path.join(self.root, directory)))
                except OSError:
                    names = frozenset()
            self._listing[directory] = names
        return names

    def is_file(self, rel: str) -> bool:
        directory, _, name = rel.rpartition("/")
        if name not in self._names(directory):  # one listing per directory instead of a stat per probe
            return False
        return os.path.isfile(os.path.join(self.root, rel))

    def is_dir(self, rel: str) -> bool:
        return os.path.isdir(os.path.join(self.root, rel))

    def local_path(self, rel: str) -> Path | None:
        return self.root / rel


class GitSource(TreeSource):
    """The files of one git revision, read with `git cat-file --batch` (nothing is checked out)."""

    def __init__(self, repo: Path, rev: str, label: str | None = None):
        self.repo = repo
        self.rev = rev
        self.label = label if label is not None else str(repo)
        try:
            res = run_git(repo, "ls-tree", "-r", "-z", "--full-tree", "-l", rev, check=False)
        except InputError as exc:
            raise InputError(f"{repo}: cannot list revision {rev}: {exc}") from None
        if res.returncode != 0:
            msg = res.stderr.decode(errors="replace").strip() or f"exit {res.returncode}"
            raise InputError(f"{repo}: cannot list revision {rev}: {msg}")
        out = res.stdout
        self.blobs: dict[str, tuple[str, int]] = {}
        self.dirs: set[str] = {""}
        for entry in out.split(b"\0"):
            if not entry:
                continue
            meta, _, path = entry.partition(b"\t")
            mode, kind, sha, size = meta.split()
            if kind != b"blob" or mode == b"120000":  # symlinks are not followed
                continue
            rel = path.decode("utf-8", "surrogateescape")
            self.blobs[rel] = (sha.decode(), int(size) if size != b"-" else 0)
            parts = rel.split("/")
            for i in range(1, len(parts)):
                self.dirs.add("/".join(parts[:i]))
        self._batch: subprocess.Popen | None = None

    def discover(self, under: str = "") -> Discovery:
        d = Discovery(Path(self.label))
        prefix = under.rstrip("/") + "/" if under else ""
        d.files = sorted(r for r in self.blobs if r.startswith(prefix) and r.endswith(SOURCE_SUFFIXES))
        return d

    def digest(self, rel: str) -> str | None:
        b = self.blobs.get(rel)
        return b[0] if b else None

    def is_file(self, rel: str) -> bool:
        return rel in self.blobs

    def is_dir(self, rel: str) -> bool:
        return rel.rstrip("/") in self.dirs

    def read(self, rel: str) -> bytes:
        b = self.blobs.get(rel)
        if b is None:
            raise Unreadable("not in the revision")
        if b[1] > MAX_FILE_BYTES:
            raise too_large(b[1])
        if self._batch is None:
            self._batch = start_git(self.repo, "cat-file", "--batch")
        assert self._batch.stdin is not None and self._batch.stdout is not None
        self._batch.stdin.write(b[0].encode() + b"\n")
        self._batch.stdin.flush()
        header = self._batch.stdout.readline().split()
        if len(header) < 3 or header[1] != b"blob":
            raise Unreadable("cannot read the blob from git")
        data = self._batch.stdout.read(int(header[2]))
        self._batch.stdout.read(1)
        return data

    def close(self) -> None:
        if self._batch is not None:
            try:
                self._batch.stdin.close()  # type: ignore[union-attr]
                self._batch.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self._batch.kill()
            self._batch = None

    def __del__(self) -> None:
        self.close()


@dataclass
class OverlaySource(TreeSource):
    """A base tree with some files replaced (bytes) or deleted (None): a patch applied in memory."""

    base: TreeSource
    changes: dict[str, bytes | None] = field(default_factory=dict)
    label: str = ""

    def __post_init__(self) -> None:
        if not self.label:
            self.label = self.base.label

    def discover(self, under: str = "") -> Discovery:
        d = self.base.discover(under)
        prefix = under.rstrip("/") + "/" if under else ""
        files = set(d.files)
        for rel, data in self.changes.items():
            if not rel.startswith(prefix) or not rel.endswith(SOURCE_SUFFIXES):
                continue
            if data is None:
                files.discard(rel)
            else:
                files.add(rel)
        d.files = sorted(files)
        return d

    def read(self, rel: str) -> bytes:
        if rel in self.changes:
            data = self.changes[rel]
            if data is None:
                raise Unreadable("deleted by the change")
            return data
        return self.base.read(rel)

    def digest(self, rel: str) -> str | None:
        if rel in self.changes:
            data = self.changes[rel]
            return blob_id(data) if data is not None else None
        return self.base.digest(rel)

    def is_file(self, rel: str) -> bool:
        if rel in self.changes:
            return self.changes[rel] is not None
        return self.base.is_file(rel)

    def is_dir(self, rel: str) -> bool:
        return self.base.is_dir(rel) or any(r.startswith(rel.rstrip("/") + "/") for r, d in self.changes.items() if d is not None)

    def local_path(self, rel: str) -> Path | None:
        return None if rel in self.changes else self.base.local_path(rel)

    def held_in_memory(self) -> frozenset[str]:
        return frozenset(self.changes) | self.base.held_in_memory()


def read_checked(source: TreeSource, rel: str) -> tuple[bytes, str]:
    """Bytes and digest of a file fit for analysis, or Unreadable with the reason."""
    data = source.read(rel)
    check_text(data)
    return data, source.digest(rel) or blob_id(data)


def tree_identity(source: TreeSource) -> str | None:
    """A digest of every file's path and blob id, when the source knows them without reading any file
    (a git revision, or one with changes held in memory over it); None otherwise."""
    overlays = []
    while isinstance(source, OverlaySource):
        overlays.append(source)
        source = source.base
    if not isinstance(source, GitSource):
        return None
    files = {rel: sha for rel, (sha, _) in source.blobs.items()}
    for overlay in reversed(overlays):  # the innermost changes first
        for rel, data in overlay.changes.items():
            if data is None:
                files.pop(rel, None)
            else:
                files[rel] = blob_id(data)
    h = hashlib.sha256()
    for rel in sorted(files):
        h.update(rel.encode("utf-8", "surrogateescape") + b"\0" + files[rel].encode() + b"\n")
    return h.hexdigest()
