"""sslmon.io.cache: the key (evaluation settings and input digests only), get/put, damaged entries ignored."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from sslmon.api import Options, cache_settings
from sslmon.io.cache import ResultCache, array_digest, cache_key, default_cache_dir
from sslmon.io.output import file_digest
from sslmon.results import Result

CONTENT = "ab" * 32 + " name=epoch_0001.pt arch=auto trust=False"  # a checkpoint's identity
IMAGES = array_digest(np.arange(12, dtype=np.uint8).reshape(3, 4), np.array([0, 1, 0]), None, None)


def key_of(options: Options, content: str = CONTENT, images: str = IMAGES, k: int = 3, device: str = "cpu") -> str:
    """The cache key of a result scored with ``options``, as the Scorer computes it."""
    return cache_key(content, images, cache_settings(options.eval_config(k, device), options, device))


def test_key_ignores_informational_fields():
    base = Options(seeds=(0,), metrics=("rankme", "l2_std"))
    same = [dataclasses.replace(base, **change) for change in (
        {"batch_size": 32}, {"save_z3": Path("z3")}, {"exclude_init": False}, {"rank_by": "rankme"}, {"cache": False},
        {"executor": "ray"}, {"cpus_per_task": 4.0}, {"offline": True}, {"dataset": "npz:other.npz"}, {"limit": 10},
    )]  # the dataset and limit enter through the images' digest, not the settings
    assert {key_of(o) for o in same} == {key_of(base)}
    assert key_of(Options(seeds=(0,), metrics=("l2_std", "rankme"))) == key_of(base)  # the order metrics are asked in


def test_key_changes_with_what_changes_a_result():
    base = Options(seeds=(0,), metrics=("rankme",))
    changed = [dataclasses.replace(base, **change) for change in (
        {"seeds": (0, 1)}, {"seeds": (1,)}, {"metrics": ("rankme", "l2_std")}, {"metrics": None}, {"precision": "bf16"},
        {"umap_epochs": 50}, {"preset": "fast"}, {"bin_factor": 0.8}, {"seed": 3},
    )]
    keys = [key_of(base), *map(key_of, changed), key_of(base, content="cd" * 32), key_of(base, images="ef" * 32),
            key_of(base, k=4), key_of(base, device="cuda")]
    assert len(set(keys)) == len(keys)
    assert all(len(k) == 64 and int(k, 16) >= 0 for k in keys)  # SHA-256, hex


def test_digests_are_sha256_of_the_bytes(tmp_path):
    import hashlib

    (tmp_path / "f.pt").write_bytes(b"weights" * 1000)
    assert file_digest(tmp_path / "f.pt", chunk=100) == hashlib.sha256(b"weights" * 1000).hexdigest()
    a = np.arange(6, dtype=np.int64)
    assert array_digest(a) == array_digest(a.copy()) != array_digest(a.astype(np.int32)) != array_digest(a.reshape(2, 3))


def test_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SSLMON_CACHE_DIR", str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine" and ResultCache().folder == tmp_path / "mine"
    monkeypatch.delenv("SSLMON_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "sslmon"


def test_put_get_round_trip(tmp_path):
    result = Result("epoch_0003.pt", "/run/epoch_0003.pt", {"rankme": 12.5, "lp_acc": None}, {"lp_acc": "no labels given"},
                    {"embed": 0.25}, epoch=3, n_samples=300, dim=16, k=10, reference="split",
                    source={"arch": "convnet-small", "notes": ["stripped key prefix 'model.'"]},
                    metrics_std={"rankme": 0.5, "lp_acc": None}, per_seed=[{"rankme": 12.0}, {"rankme": 13.0}])
    cache = ResultCache(tmp_path)
    assert cache.get("k" * 64) is None and cache.hits == 0
    cache.put("k" * 64, result)
    assert cache.get("k" * 64) == result and cache.hits == 1
    assert [p.name for p in tmp_path.iterdir()] == ["k" * 64 + ".json"]  # one file per key, no temporary left
    entry = json.loads((tmp_path / ("k" * 64 + ".json")).read_text())
    assert entry["key"] == "k" * 64 and entry["result"]["metrics"] == {"rankme": 12.5, "lp_acc": None}


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


def test_file_digest_refuses_fifos_and_devices_before_reading(tmp_path):
    import hashlib
    import threading

    (tmp_path / "w.pt").write_bytes(b"weights" * 1000)
    assert file_digest(tmp_path / "w.pt") == hashlib.sha256(b"weights" * 1000).hexdigest()
    os.mkfifo(tmp_path / "pipe.pt")  # opened for reading, it would wait for a writer forever
    (tmp_path / "zero.pt").symlink_to("/dev/zero")  # read, it never ends
    outcome: dict[str, str] = {}

    def digest_all() -> None:
        for name in ("pipe.pt", "zero.pt"):
            try:
                file_digest(tmp_path / name)
            except OSError as exc:
                outcome[name] = exc.strerror
    worker = threading.Thread(target=digest_all, daemon=True)
    worker.start()
    worker.join(timeout=60)  # a regression hangs here: the test then fails instead of stalling
    assert not worker.is_alive() and outcome == {"pipe.pt": "not a regular file", "zero.pt": "not a regular file"}
