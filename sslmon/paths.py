"""Where sslmon keeps files between runs (a leaf module: imports nothing of sslmon).

The cache folder: ``$SSLMON_CACHE_DIR``, else ``$XDG_CACHE_HOME/sslmon``, else ``~/.cache/sslmon``. The results
cache (:mod:`sslmon.io.cache`) and umap-learn's compiled kernels (:mod:`sslmon.engine.jit`, under ``numba/``) live there.
"""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    """The cache folder: ``$SSLMON_CACHE_DIR``, else ``$XDG_CACHE_HOME/sslmon``, else ``~/.cache/sslmon``."""
    if os.environ.get("SSLMON_CACHE_DIR"):
        return Path(os.environ["SSLMON_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "sslmon"
