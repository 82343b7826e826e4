"""Results files (sslmon.io.runfile): `sslmon score -f json` -> load_run -> correlate gives scipy's numbers on the
values read straight from the JSON; Run.to_dict/from_dict and JSON Lines round trips; bad files are one line naming
the file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from sklearn.datasets import load_digits
from typer.testing import CliRunner

from sslmon.cli import app
from sslmon.io import runfile
from sslmon.io.runfile import ResultsFileError, jsonl_line, load_run, to_json, to_jsonl
from sslmon.meta.correlate import NamedRun, correlate_run
from sslmon.recommend import document
from sslmon.results import Failure, Result, Run
from sslmon.watch import read_held

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def scored(tmp_path_factory) -> tuple[Path, dict]:
    """Four "checkpoints" of digits, the class structure blurred more and more, scored by the CLI with two seeds."""
    folder = tmp_path_factory.mktemp("roundtrip")
    X, y = load_digits(return_X_y=True)
    X, y = X[:600] / 16.0, y[:600]
    rng = np.random.default_rng(0)
    paths = []
    for i, noise in enumerate((2.0, 1.0, 0.5, 0.1)):
        path = folder / f"ckpt_{i}.npz"
        np.savez(path, embeddings=X + rng.normal(0, noise, X.shape), labels=y)
        paths.append(str(path))
    out = folder / "run.json"
    res = CliRunner().invoke(app, ["score", *paths, "-f", "json", "-o", str(out), "--seeds", "0,1", "--umap-epochs", "20",
                                   "--no-cache"], env={"SSLMON_CACHE_DIR": str(folder / "cache")})
    assert res.exit_code == 0, res.output
    return out, json.loads(out.read_text())


def test_score_json_to_correlate_gives_scipy_on_the_values_in_the_file(scored):
    path, doc = scored
    run = load_run(path)
    table = correlate_run(NamedRun("run", str(path), run), "lp_acc")
    lp = [r["metrics"]["lp_acc"] for r in doc["results"]]
    compared = [k for k in doc["results"][0]["metrics"] if k not in ("lp_acc", "lp_acc_se")]
    assert set(table.correlations) == set(compared) and len(compared) >= 9
    for key in compared:
        values = [r["metrics"][key] for r in doc["results"]]
        got = table.correlations[key]["with_init"]
        if np.ptp(values) == 0:
            assert got.status == "constant"
            continue
        assert (got.status, got.n) == ("ok", 4)
        assert got.pearson_r == pytest.approx(stats.pearsonr(values, lp).statistic, abs=1e-12), key
        assert got.pearson_p == pytest.approx(stats.pearsonr(values, lp).pvalue, rel=1e-9), key
        assert got.spearman_rho == pytest.approx(stats.spearmanr(values, lp).statistic, abs=1e-12), key
        assert table.correlations[key]["without_init"].status == "no init milestone"  # embedding files carry no epoch
    assert table.n_seeds == 2  # the per-seed values travelled through the file
    # the document read back and written again is the same document
    assert document(Run.from_dict(doc), doc["config"]["rank_by"]) == doc


def test_run_to_dict_from_dict_is_the_identity():
    run = Run({"seeds": [0, 1], "dataset": "x", "exclude_init": True}, [
        Result("b", "/b.pt", {"rankme": 3.5, "lp_acc": None}, {"lp_acc": "no labels"}, {"umap": 0.25}, epoch=3,
               n_samples=10, dim=4, k=2, reference="split", source={"arch": "resnet18", "normalization": {"mean": [0.5]}},
               metrics_std={"rankme": 0.1, "lp_acc": None}, per_seed=[{"rankme": 3.4}, {"rankme": 3.6}]),
        Result("a", None, {"rankme": 2.0, "lp_acc": None}, epoch=0),
        Result("c", None, {"rankme": 1.0, "lp_acc": None}),
    ], [Failure("/bad.pt", "/bad.pt: not a checkpoint")], exclude_init=True)
    back = Run.from_dict(json.loads(to_json(run, "rankme")))
    assert back.results == run.ranked("rankme") == [run.results[i] for i in (0, 2, 1)]  # init excluded: last
    assert (back.config, back.failures, back.exclude_init) == (run.config, run.failures, True)


def test_json_lines_with_failures_and_extra_keys_are_read_back(tmp_path):
    results = [Result(f"epoch_{e:04d}", None, {"rankme": float(e)}, epoch=e) for e in range(3)]
    failure = Failure("/run/epoch_0003.pt", "/run/epoch_0003.pt: truncated")
    run = Run({}, results, [failure])
    path = tmp_path / "r.jsonl"
    # what `score -f jsonl` writes, then what `watch -o` and the Lightning callback append (no rank; a failure's digest)
    path.write_text(to_jsonl(run, "rankme") + jsonl_line(Result("late", None, {"rankme": 9.0}, epoch=4))
                    + jsonl_line(Failure("/run/x.pt", "/run/x.pt: bad"), digest="ab" * 32))
    back = load_run(path)
    assert back.results == [*results[::-1], Result("late", None, {"rankme": 9.0}, epoch=4)]
    assert back.failures == [failure, Failure("/run/x.pt", "/run/x.pt: bad")]
    assert back.config == {}
    # a single record is JSON Lines too; watch resumes from the same parser (with the failure's digest)
    single = tmp_path / "one.jsonl"
    single.write_text(jsonl_line(failure, digest="cd" * 32))
    assert load_run(single).failures == [failure] and load_run(single).results == []
    held = read_held(path, lambda msg: None)
    assert held.results == back.results and held.failures == back.failures
    assert ("ab" * 32, "x.pt") in held.keys


def test_a_document_of_sslmon_0_1_0_without_per_seed_values_is_read(tmp_path):
    path = ROOT / "docs" / "results" / "simclr.json"
    doc = json.loads(path.read_text())
    assert "per_seed" not in doc["results"][0]
    run = load_run(path)
    assert run.values("lp_acc") == [r["metrics"]["lp_acc"] for r in doc["results"]]
    assert all(r.per_seed == [] and r.metrics_std == {} for r in run.results)


def _one_line_naming(exc: pytest.ExceptionInfo, path: Path, *parts: str) -> None:
    message = str(exc.value)
    assert "\n" not in message and message.startswith(f"{path}: "), message
    for part in parts:
        assert part in message, message


def test_bad_results_files_are_one_line_naming_the_file(tmp_path, monkeypatch):
    good = to_json(Run({}, [Result("a", None, {"rankme": 1.0}, epoch=1)]), "rankme")
    cases = {
        "truncated.json": (good[: len(good) // 2], ["not valid JSON"]),
        "epoch.json": (good.replace('"epoch": 1', '"epoch": "1"'), ["results[0]", "'epoch' has the wrong type (str)"]),
        "nan.json": (good.replace('"rankme": 1.0', '"rankme": NaN'), ["results[0]", "'metrics.rankme' is not a finite number"]),
        "inf.json": (good.replace('"rankme": 1.0', '"rankme": 1e999'), ["'metrics.rankme' is not a finite number"]),
        "extra.json": (good.replace('"epoch": 1', '"epoch": 1, "mood": "good"'), ["results[0]", "'mood'"]),
        "rank.json": (good.replace('"rank": 1', '"rank": 0'), ["'rank' is 0"]),
        "list.json": ("[1, 2]", ["not an sslmon results document"]),
        "empty.json": ("\n", ["empty"]),
        "deep.json": ("[" * 100_000, ["nested too deeply"]),
        "lines.jsonl": (jsonl_line(Result("a", None, {"rankme": 1.0})) + '{"rank": null, "name": 3}\n', ["line 2"]),
        "cut.jsonl": (jsonl_line(Result("a", None, {}), rank=1) + '{"rank": null, "na', ["line 2", "unfinished last line"]),
        "failure.jsonl": ('{"failed": true, "path": "x"}\n{"failed": true, "path": "x", "error": "e"}', ["line 1", "'error'"]),
    }
    for name, (text, parts) in cases.items():
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(ResultsFileError) as exc:
            load_run(path)
        _one_line_naming(exc, path, *parts)
    binary = tmp_path / "figure.png"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(ResultsFileError) as exc:
        load_run(binary)
    _one_line_naming(exc, binary, "not a text file")
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    with pytest.raises(ResultsFileError) as exc:  # no writer: a blocking open would hang here
        load_run(fifo)
    _one_line_naming(exc, fifo, "not a regular file")
    big = tmp_path / "big.json"
    big.write_text(good)
    monkeypatch.setattr(runfile, "MAX_RESULTS_BYTES", len(good) - 1)
    with pytest.raises(ResultsFileError) as exc:
        load_run(big)
    _one_line_naming(exc, big, "larger than")
