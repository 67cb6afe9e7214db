"""A source's files extracted (armalias.source.extract) through the content cache, the misses in
worker processes: the Extractor a scan's rounds share."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable

from armalias.cache import FactsCache
from armalias.facts import FileFacts, Skipped
from armalias.scan import TOO_SLOW, available_cpus, facts_cache_dir
from armalias.source.text import Unreadable
from armalias.source.tree import TreeSource, read_checked

if TYPE_CHECKING:
    from armalias.scan import Progress, ScanOptions

IN_PROCESS_BYTES = 1_000_000  # less than this to parse: starting worker processes costs more than parsing it

# in a worker process: the cache entries of the files it extracted, encoded but not written yet
# (Extractor.finish): (where, the bytes)
_DEFERRED: list[tuple[Path, bytes]] = []


def extract_one(args: tuple[str, bytes, str, str | None, str, float | None, bool]) -> FileFacts | Skipped:
    from armalias.source.cparse import TooSlow, monotonic
    from armalias.source.extract import TooDeep, extract_bytes

    rel, data, digest, cache_dir, key, seconds, defer = args
    try:
        facts = extract_bytes(rel, data, digest, monotonic() + seconds if seconds else None)
    except TooSlow:
        return Skipped(rel, f"{TOO_SLOW} {seconds:g} s to parse (--file-timeout)")
    except TooDeep as exc:
        return Skipped(rel, str(exc))
    except RecursionError:
        return Skipped(rel, "too deeply nested to parse")
    except Exception as exc:  # one bad file never stops the scan; the reason is shown
        return Skipped(rel, f"internal error while extracting: {type(exc).__name__}: {exc}")
    if cache_dir:
        if defer:
            if not _DEFERRED:  # whatever is left when the worker exits is written then
                from multiprocessing.util import Finalize

                Finalize(None, _write_deferred, exitpriority=0)
            _DEFERRED.append(FactsCache(Path(cache_dir), key).entry(facts))
        else:
            FactsCache(Path(cache_dir), key).put(facts)
    return facts


def _write_deferred(_: object = None) -> None:
    from armalias.cache import write_atomic

    while _DEFERRED:
        write_atomic(*_DEFERRED.pop())


class Extractor:
    """Extracts files of one source through the cache, misses in worker processes."""

    def __init__(self, source: TreeSource, options: ScanOptions):
        from armalias.source.extract import extractor_key

        self.source = source
        self.options = options
        self.key = extractor_key()
        self.cache: FactsCache | None = None
        cdir = facts_cache_dir(source, options)  # never one inside the scanned tree
        if cdir is not None:
            self.cache = FactsCache(cdir, self.key)
        self.jobs = options.jobs or available_cpus()
        self.directory = self.cache.directory if self.cache is not None else None
        self._pool = None

    def _workers(self):
        """One pool of worker processes for all of a scan's rounds: starting a pool is paid once."""
        if self._pool is None:
            from concurrent.futures import ProcessPoolExecutor

            self._pool = ProcessPoolExecutor(max_workers=self.jobs)
        return self._pool

    def finish(self) -> None:
        """No more files to extract: the worker processes write the cache entries they held back
        while the caller goes on (the scan's flow, on the CPUs extraction leaves idle).  Creating
        a file costs more system time than encoding the entry; held back, the files are off the
        rounds' path.  The entries are held encoded, which takes far less memory than the facts
        they encode.  `close` waits for the writes."""
        if self._pool is not None and self.cache is not None:
            for _ in range(self.jobs):  # one each, as a rule; a worker exiting writes what it still holds
                self._pool.submit(_write_deferred)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def run(self, rels: list[str], progress: Progress | None = None) -> tuple[list[FileFacts], list[Skipped]]:
        return self.start(rels, progress)()

    def start(self, rels: list[str], progress: Progress | None = None
              ) -> Callable[[], tuple[list[FileFacts], list[Skipped]]]:
        """Start extracting `rels`: cache hits and reading now, the misses handed to the worker
        processes; returns what waits for them (the caller may work meanwhile).  Files are
        extracted in this process when starting workers is not worth it (few, small files) and none
        are running yet."""
        facts: list[FileFacts] = []
        skipped: list[Skipped] = []
        work = []
        for rel in rels:
            digest = self.source.digest(rel)
            hit = self.cache.get(rel, digest) if (self.cache is not None and digest) else None
            if hit is not None:
                facts.append(hit)
                continue
            try:
                data, digest = read_checked(self.source, rel)
            except Unreadable as exc:
                skipped.append(Skipped(rel, str(exc)))
                continue
            hit = self.cache.get(rel, digest) if self.cache is not None else None
            if hit is not None:
                facts.append(hit)
                continue
            work.append((rel, data, digest, str(self.cache.directory) if self.cache else None, self.key,
                         self.options.file_timeout))
        total = len(work)
        if progress:
            progress(0, total)

        def done(results) -> tuple[list[FileFacts], list[Skipped]]:
            for r in results:
                (facts if isinstance(r, FileFacts) else skipped).append(r)
            return facts, skipped

        worth = total >= 16 and sum(len(w[1]) for w in work) >= IN_PROCESS_BYTES
        if self.jobs <= 1 or total < 2 or not (worth or self._pool is not None):
            def here() -> tuple[list[FileFacts], list[Skipped]]:
                results = []
                for i, w in enumerate(work):
                    results.append(extract_one((*w, False)))
                    if progress:
                        progress(i + 1, total)
                return done(results)

            return here
        from armalias.workers import frozen_gc

        # the largest files first, in small chunks: no worker is left with a big file at the end; the
        # workers write the cache entries when asked (finish, True), not on the way
        order = sorted(range(total), key=lambda i: -len(work[i][1]))
        chunk = max(1, min(8, total // (self.jobs * 16)))
        with frozen_gc():  # the pool forks its workers on the first map, which submits every chunk now
            results = self._workers().map(extract_one, [(*work[j], True) for j in order], chunksize=chunk)

        def wait() -> tuple[list[FileFacts], list[Skipped]]:
            placed: list[FileFacts | Skipped | None] = [None] * total
            for i, (at, r) in enumerate(zip(order, results)):
                placed[at] = r
                if progress and (i % 16 == 0 or i + 1 == total):
                    progress(i + 1, total)
            return done(placed)

        return wait
