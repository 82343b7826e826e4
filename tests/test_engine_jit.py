"""sslmon.engine.jit: umap-learn's numba kernels cached under the sslmon cache folder, a corrupt entry recompiled,
parallel kernels never cached."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

CACHE_SCRIPT = """
import numpy as np
from sklearn.datasets import make_blobs
from sslmon.engine.neighbors import knn_graph
from sslmon.engine.layout import fuzzy_graph, umap_layout
X, _ = make_blobs(n_samples=200, n_features=8, centers=3, random_state=0)
Z3 = umap_layout(X, fuzzy_graph(knn_graph(X, 10)), 0, n_epochs=20)
np.save(__import__("sys").argv[1], Z3)
"""


def _run_layout(cache: Path, out: Path) -> np.ndarray:
    env = {**os.environ, "SSLMON_CACHE_DIR": str(cache)}
    subprocess.run([sys.executable, "-c", CACHE_SCRIPT, str(out)], env=env, check=True, timeout=600)
    return np.load(out)


@pytest.mark.slow
def test_numba_kernels_cached_under_sslmon_cache_and_a_corrupt_entry_is_recompiled(tmp_path):
    cache = tmp_path / "cache"
    first = _run_layout(cache, tmp_path / "a.npy")
    entries = list((cache / "numba").rglob("*.nbi"))
    layout_entries = [p for p in entries if "optimize_layout_euclidean" in p.name]
    assert layout_entries, "the layout kernel was not cached under $SSLMON_CACHE_DIR/numba"
    for p in (cache / "numba").rglob("*.nb*"):
        p.write_bytes(b"\x80\x04 not a pickle")
    again = _run_layout(cache, tmp_path / "b.npy")  # must recompile, not crash
    assert np.array_equal(first, again)
    assert any("optimize_layout_euclidean" in p.name for p in (cache / "numba").rglob("*.nbi"))


def test_parallel_umap_kernels_are_never_cached(tmp_path):
    """numba's cache key ignores compile flags: a parallel build must not stand in for the serial kernel."""
    import umap.layouts

    from sslmon.engine.jit import enable_numba_cache

    enable_numba_cache(tmp_path / "numba")
    assert umap.layouts._nb_optimize_layout_euclidean_single_epoch._cache.__class__.__name__ == "FunctionCache"
    assert umap.layouts._nb_optimize_layout_euclidean_single_epoch_parallel._cache.__class__.__name__ == "NullCache"
