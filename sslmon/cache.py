"""Results cache: a checkpoint already scored with the same file content, dataset
and settings is read back instead of recomputed.

Location: ``$SSLMON_CACHE_DIR``, else ``$XDG_CACHE_HOME/sslmon``, else
``~/.cache/sslmon``. One JSON file per key (``<sha256>.json``), written to a
temporary file in the same folder and moved into place with ``os.replace``, so
a reader never sees a half-written entry.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
import tempfile
from typing import Any

import numpy as np
import torch

from sslmon import __version__
from sslmon.results import Result


def default_cache_dir() -> Path:
    """The cache folder (see module docstring)."""
    if os.environ.get("SSLMON_CACHE_DIR"):
        return Path(os.environ["SSLMON_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "sslmon"


def file_digest(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes, hex."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def array_digest(*arrays: Any) -> str:
    """SHA-256 over the shapes, dtypes and bytes of arrays/tensors (None allowed), hex."""
    h = hashlib.sha256()
    for a in arrays:
        if a is None:
            h.update(b"none")
            continue
        a = a.numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
        a = np.ascontiguousarray(a)
        h.update(f"{a.shape}{a.dtype}".encode())
        h.update(a.data)
    return h.hexdigest()


class ResultCache:
    """Maps (content digest, dataset digest, settings) to a stored :class:`Result`."""

    def __init__(self, folder: str | Path | None = None) -> None:
        self.folder = Path(folder) if folder is not None else default_cache_dir()
        self.hits = 0

    @staticmethod
    def key(content: str, dataset: str, settings: dict[str, Any]) -> str:
        payload = json.dumps({"content": content, "dataset": dataset, "settings": settings, "sslmon": __version__}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()

    def get(self, key: str) -> Result | None:
        path = self.folder / f"{key}.json"
        try:
            result = Result(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None  # absent or unreadable: recompute
        self.hits += 1
        return result

    def put(self, key: str, result: Result) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(result.to_dict(), f)
            os.replace(tmp, self.folder / f"{key}.json")
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
