"""Worker processes for the scan's parallel parts (the prefilter, extraction, function bodies)."""

from __future__ import annotations

import gc
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def frozen_gc() -> Iterator[None]:
    """Workers forked meanwhile share the parent's objects instead of copying the pages the
    collector would touch."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@contextmanager
def worker_pool(jobs: int) -> Iterator[ProcessPoolExecutor]:
    with frozen_gc(), ProcessPoolExecutor(max_workers=jobs) as pool:
        yield pool
