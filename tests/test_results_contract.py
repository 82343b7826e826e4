"""The results contract (docs/results-format.md): JSON, JSON Lines and CSV of one run validate against
sslmon/schema/results.schema.json, carry the schema version, and mean the same thing field by field; JSON Lines
starts with a header whose config load_run returns; files of earlier versions are still read."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from jsonschema import ValidationError
from sklearn.datasets import load_digits
from typer.testing import CliRunner

from schema_check import check_csv, check_document, check_jsonl
from sslmon.cli import app
from sslmon.io.runfile import ResultsFileError, load_run
from sslmon.results import SCHEMA_VERSION

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> dict[str, Path]:
    """Three digit "checkpoints" and one broken file scored once (two seeds) and written as JSON, JSON Lines and CSV
    (the second and third from the results cache: the same numbers)."""
    folder = tmp_path_factory.mktemp("contract")
    X, y = load_digits(return_X_y=True)
    X, y = X[:300] / 16.0, y[:300]
    rng = np.random.default_rng(0)
    paths = []
    for i, noise in enumerate((1.0, 0.5, 0.1)):
        np.savez(folder / f"epoch_{i}.npz", embeddings=X + rng.normal(0, noise, X.shape), labels=y)
        paths.append(str(folder / f"epoch_{i}.npz"))
    (folder / "broken.npz").write_bytes(b"not a zip")
    paths.append(str(folder / "broken.npz"))
    written = {}
    for fmt in ("json", "jsonl", "csv"):
        written[fmt] = folder / f"run.{fmt}"
        res = CliRunner().invoke(app, ["score", *paths, "-o", str(written[fmt]), "--seeds", "0,1", "--umap-epochs", "20", "-q"],
                                 env={"SSLMON_CACHE_DIR": str(folder / "cache")})
        assert res.exit_code == 2, res.output  # the broken file: exit 2, the others still written
    return written


def test_json_document_validates_and_carries_the_schema_version(outputs):
    doc = check_document(json.loads(outputs["json"].read_text()))
    assert doc["schema_version"] == SCHEMA_VERSION == 2
    assert len(doc["results"]) == 3 and len(doc["failures"]) == 1
    assert load_run(outputs["json"]).config == doc["config"]


def test_jsonl_header_config_and_times(outputs):
    doc = json.loads(outputs["json"].read_text())
    records = check_jsonl(outputs["jsonl"].read_text())
    header, rest = records[0], records[1:]
    assert header["schema_version"] == SCHEMA_VERSION and header["config"] == doc["config"]
    assert all(r["time"] >= header["started"] for r in rest)  # ISO 8601 in UTC: string order is time order
    assert [r["name"] for r in rest if not r.get("failed")] == [r["name"] for r in doc["results"]]
    assert [r["path"] for r in rest if r.get("failed")] == [f["path"] for f in doc["failures"]]
    run = load_run(outputs["jsonl"])
    assert run.config == doc["config"] and run.config["rank_by"] == "input"  # embedding files: different models, not ranked
    for got, want in zip(run.results, doc["results"]):
        assert got.metrics == want["metrics"] and got.metrics_std == want["metrics_std"]


def test_csv_columns_mean_what_the_json_fields_mean(outputs):
    doc = json.loads(outputs["json"].read_text())
    rows = check_csv(outputs["csv"])
    assert len(rows) == 3 and all(r["schema_version"] == SCHEMA_VERSION for r in rows)
    columns = list(rows[0])
    assert "l2_std_std" not in columns and "metrics.l2_std" in columns and "metrics_std.l2_std" in columns
    for row, record in zip(rows, doc["results"]):
        assert (row["name"], row["rank"], row["epoch"], row["n_samples"]) == (record["name"], record["rank"], record["epoch"], record["n_samples"])
        for column, value in row.items():
            field, _, key = column.partition(".")
            if key:  # metrics.KEY / metrics_std.KEY: the JSON record's field, exactly (repr round trip)
                assert value == record[field].get(key), column


def test_the_schema_refuses_what_breaks_the_contract(outputs):
    doc = json.loads(outputs["json"].read_text())
    for broken in ({**doc, "schema_version": "2"}, {k: v for k, v in doc.items() if k != "schema_version"},
                   {**doc, "results": [{**doc["results"][0], "metrics": {"rankme": "high"}}]},
                   {**doc, "results": [{**doc["results"][0], "surprise": 1}]}):
        with pytest.raises(ValidationError):
            check_document(broken)
    with pytest.raises(ValidationError):
        check_jsonl(json.dumps({**doc["results"][0]}) + "\n", header=False)  # a JSON Lines result without its time


def test_files_of_earlier_versions_are_still_read(outputs, tmp_path):
    doc = json.loads(outputs["json"].read_text())
    old = tmp_path / "old.json"
    old.write_text(json.dumps({k: v for k, v in doc.items() if k != "schema_version"}))
    assert [r.name for r in load_run(old).results] == [r["name"] for r in doc["results"]]
    old_lines = tmp_path / "old.jsonl"  # sslmon < 0.5: no header, no time
    old_lines.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "time"}) + "\n"
                                 for r in check_jsonl(outputs["jsonl"].read_text())[1:]))
    run = load_run(old_lines)
    assert run.config == {} and len(run.results) == 3 and len(run.failures) == 1


def test_a_newer_schema_version_is_one_line_naming_the_file(outputs, tmp_path):
    doc = json.loads(outputs["json"].read_text())
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps({**doc, "schema_version": 99}))
    with pytest.raises(ResultsFileError, match=r"newer.json: 'schema_version' is 99: written by a newer sslmon"):
        load_run(newer)
    lines = outputs["jsonl"].read_text().splitlines()
    header = json.loads(lines[0])
    newer_lines = tmp_path / "newer.jsonl"
    newer_lines.write_text("\n".join([json.dumps({**header, "schema_version": 99}), *lines[1:]]) + "\n")
    with pytest.raises(ResultsFileError, match=r"newer.jsonl: line 1: 'schema_version' is 99"):
        load_run(newer_lines)


def test_the_schema_ships_as_package_data():
    text = (ROOT / "pyproject.toml").read_text()
    assert '"schema/*.json"' in text and (ROOT / "sslmon" / "schema" / "results.schema.json").is_file()
