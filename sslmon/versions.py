"""The versions of the libraries that determine sslmon's numbers (a leaf module: it imports none of sslmon)."""

from __future__ import annotations

from functools import cache
from importlib import metadata

# The libraries whose release can change the numbers (recorded in config, and so in the results cache key).
VERSIONED = ("umap-learn", "pynndescent", "scikit-learn", "numba", "torch", "numpy", "scipy")


def library_versions() -> dict[str, str | None]:
    """The installed version of each of :data:`VERSIONED` (None when not installed), read from package metadata
    (nothing is imported); read once per process (every config and cache key asks)."""
    return dict(_installed())


@cache
def _installed() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions
