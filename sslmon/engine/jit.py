"""Persist umap-learn's numba kernels between processes, under sslmon's cache folder.

umap-learn compiles its kernels (fuzzy graph, layout SGD) with numba on first use in every new
process, and most are declared without numba's on-disk cache. :func:`enable_numba_cache` turns the
cache on for every serial numba dispatcher of ``umap`` before they compile, with numba's cache folder set
to ``<sslmon cache>/numba``. A cache entry that cannot be read (corrupt, truncated, from another
numba) is dropped and the kernels recompile: see :func:`run_with_jit_cache`.
"""

from __future__ import annotations

import os
from pathlib import Path
import shutil
import sys
from typing import Callable, TypeVar

from sslmon.paths import default_cache_dir

T = TypeVar("T")
_enabled: Path | None = None


def cache_dir() -> Path:
    """Where the compiled kernels go: ``<cache folder>/numba`` (:func:`sslmon.paths.default_cache_dir`)."""
    return default_cache_dir() / "numba"


def enable_numba_cache(folder: Path | None = None) -> Path | None:
    """Turn on numba's on-disk cache for umap-learn's kernels; return the folder (None if not writable).

    Must run before umap's kernels are first called in this process to take effect for them; kernels
    compiled earlier in the process stay as they are. Idempotent.
    """
    global _enabled
    folder = folder or cache_dir()
    if _enabled == folder:
        return folder
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not os.access(folder, os.W_OK):
            return None
    except OSError:
        return None
    import numba
    from numba.core.dispatcher import Dispatcher

    numba.config.CACHE_DIR = str(folder)
    import umap  # noqa: F401  (imports the submodules whose kernels we want)

    for name, module in list(sys.modules.items()):
        if name == "umap" or name.startswith("umap."):
            for obj in list(vars(module).values()):
                # Not the parallel variants: numba's cache key ignores compile flags, so a parallel
                # (non-deterministic) build of a kernel could be loaded in place of its serial twin.
                if isinstance(obj, Dispatcher) and not obj.targetoptions.get("parallel"):
                    obj.enable_caching()
    _enabled = folder
    return folder


def run_with_jit_cache(fn: Callable[[], T], folder: Path | None = None) -> T:
    """Call ``fn`` with the kernel cache in ``folder`` (default :func:`cache_dir`) on; if reading a cache entry
    fails, clear the cache and retry once."""
    global _enabled
    folder = folder or cache_dir()
    try:
        enable_numba_cache(folder)
        return fn()
    except Exception as exc:
        if not _is_cache_error(exc):
            raise
    shutil.rmtree(folder, ignore_errors=True)
    _enabled = None
    enable_numba_cache(folder)
    return fn()


def _is_cache_error(exc: BaseException) -> bool:
    """True when the traceback passes through numba's caching module (a bad cache entry)."""
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.replace(os.sep, "/").endswith("numba/core/caching.py"):
            return True
        tb = tb.tb_next
    return False
