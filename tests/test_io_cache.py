"""sslmon.io.cache: the key (evaluation settings and input digests only), get/put, damaged entries ignored."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from sslmon.io.cache import ResultCache
from sslmon.results import Result


def _entry(rankme: float = 3.0) -> Result:
    return Result("a.pt", "a.pt", {"rankme": rankme}, timings={"embed": 0.1}, epoch=1, n_samples=10, dim=4, k=2)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "binary", "foreign", "wrong-schema", "nan", "directory", "fifo"])
def test_damaged_cache_entries_are_ignored_and_rewritten(tmp_path, damage):
    cache = ResultCache(tmp_path)
    cache.put("k1", _entry())
    cache.put("k2", _entry(7.0))
    path = tmp_path / "k1.json"
    good = json.loads(path.read_text())
    if damage == "truncated":
        path.write_text(path.read_text()[:40])
    elif damage == "garbage":
        path.write_text("{not json")
    elif damage == "binary":
        path.write_bytes(b"\xff\xfe\x00garbage")
    elif damage == "foreign":  # another key's entry under this key's name
        shutil.copy(tmp_path / "k2.json", path)
    elif damage == "wrong-schema":
        path.write_text(json.dumps({**good, "result": {**good["result"], "metrics": "many"}}))
    elif damage == "nan":
        path.write_text(path.read_text().replace("3.0", "NaN"))
    elif damage == "directory":
        path.unlink()
        path.mkdir()
    else:
        path.unlink()
        os.mkfifo(path)
    assert cache.get("k1") is None
    if damage in ("directory", "fifo"):
        return  # not a file: nothing the cache may replace
    cache.put("k1", _entry(5.0))
    assert cache.get("k1").metrics == {"rankme": 5.0}
    assert cache.get("k2").metrics == {"rankme": 7.0}


def test_cache_entries_are_never_read_half_written(tmp_path):
    """A writer that keeps replacing an entry while a reader reads it: the reader sees a whole entry or nothing."""
    import threading

    cache = ResultCache(tmp_path)
    cache.put("k", _entry(1.0))
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            cache.put("k", _entry(float(i % 50 + 1)))

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        seen = [cache.get("k") for _ in range(2000)]
    finally:
        stop.set()
        thread.join()
    assert all(r is not None and 1.0 <= r.metrics["rankme"] <= 50.0 for r in seen)
    assert not list(tmp_path.glob(".tmp-*"))
