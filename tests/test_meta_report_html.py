"""`sslmon report`: one self-contained HTML page (nothing fetched) holding the values of the results files, one
figure per metric over epochs, the selection table, the Z3 scatters; figures also as files; bad input is one line."""

from __future__ import annotations

import base64
import json
import re
import shutil
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pytest

from helpers import ROOT
from sslmon.io.runfile import load_run, to_jsonl
from sslmon.io.z3file import write_z3
from sslmon.meta.correlate import NamedRun
from sslmon.meta.report_html import Annotations, results_table

pytest.importorskip("matplotlib")
RESULTS = ROOT / "docs" / "results"
SOURCES = [RESULTS / "fmnist31" / "simclr.json", RESULTS / "simclr.json"]  # 31 milestones x 3 seeds (0.3.0); 11 (0.1.0)
EXTERNAL = re.compile(r"""(?:src|href|action|srcset)\s*=\s*["']?\s*(?:[a-z][a-z0-9+.-]*:)?//|@import|url\(\s*["']?(?:https?:)?//""", re.I)


def fmt(value: float) -> str:
    """The page's number format, as the docs state it: 4 significant digits (scientific below 1e-3)."""
    return f"{value:.4g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> tuple[Path, str, Path]:
    """The report of two real runs of docs/results (one as JSON Lines with its header, one a JSON document of sslmon
    0.1.0) and a Z3 folder of three snapshots, with the figures also written as SVG."""
    from typer.testing import CliRunner

    from sslmon.cli import app

    tmp = tmp_path_factory.mktemp("report")
    (tmp / "fmnist31.jsonl").write_text(to_jsonl(load_run(SOURCES[0]), "consensus"))
    shutil.copy(SOURCES[1], tmp / "old.json")
    rng = np.random.default_rng(0)
    for epoch in (0, 5, 10):
        write_z3(tmp / "z3" / f"epoch_{epoch:04d}.z3.npz", rng.normal(size=(150, 3)), epoch=epoch, labels=np.arange(150) % 3)
    out = tmp / "report.html"
    res = CliRunner().invoke(app, ["report", str(tmp / "fmnist31.jsonl"), str(tmp / "old.json"), "-o", str(out), "--z3", str(tmp / "z3"),
                                   "--figures", str(tmp / "figs"), "--figure-format", "svg", "-q"])
    assert res.exit_code == 0, res.output
    return out, out.read_text(), tmp


def test_nothing_is_fetched(page):
    _, text, _ = page
    assert not EXTERNAL.findall(text)
    assert "<script" not in text and "<link" not in text
    for data in re.findall(r'src="data:image/png;base64,([^"]+)"', text):
        assert base64.b64decode(data).startswith(b"\x89PNG\r\n\x1a\n")


def test_the_table_holds_the_values_of_the_files(page):
    _, text, _ = page
    for source in SOURCES:
        for record in json.loads(source.read_text())["results"]:
            assert f">{record['name']}<" in text
            for key in ("rankme", "entropy_z3", "l2_std"):
                value, std = record["metrics"][key], record.get("metrics_std", {}).get(key)
                cell = fmt(value) if not std else f"{fmt(value)} ± {std:.2g}"
                assert f">{cell}<" in text, (source, record["name"], key, cell)
            if record["metrics"].get("lp_acc_se") is not None:  # the probe with its standard error
                assert f">{fmt(record['metrics']['lp_acc'])} ± {record['metrics']['lp_acc_se']:.2g}<" in text


def test_one_figure_per_metric_and_the_z3_panel(page):
    _, text, tmp = page
    keys = set()
    for source in SOURCES:
        for record in json.loads(source.read_text())["results"]:
            if record["epoch"] is not None:
                keys |= {k for k, v in record["metrics"].items() if v is not None and k != "lp_acc_se"}
    ids = re.findall(r'<figure id="fig-([a-z0-9_]+)">', text)
    assert sorted(ids) == sorted(keys | {"z3"})
    assert len(re.findall(r"<img ", text)) == len(keys) + 1
    written = sorted(p.name for p in (tmp / "figs").iterdir())
    assert written == sorted([f"metric_{k}.svg" for k in keys] + ["z3_panel.svg"])
    for path in (tmp / "figs").iterdir():
        assert ElementTree.parse(path).getroot().tag.endswith("svg")


def test_the_selection_table_when_the_runs_have_labels(page):
    _, text, _ = page
    assert text.count("Checkpoint selection judged by lp_acc") == 2
    assert "last milestone" in text and "consensus (" in text


def test_jsonl_with_its_header_and_annotations_of_newer_records(tmp_path):
    doc = json.loads((RESULTS / "simclr.json").read_text())
    run = load_run(RESULTS / "simclr.json")
    first = doc["results"][0]
    notes = Annotations({"name": first["name"]}, {(first["name"], first["path"]): {
        "rank": 1, "recommended": True, "flags": [{"code": "collapse", "message": "l2_std <b>low</b>"}]}})
    table = results_table(NamedRun("simclr", "simclr.json", run), notes)
    assert "1 ✓" in table and ">collapse<" in table and "&lt;b&gt;low&lt;/b&gt;" in table  # escaped, never markup


def test_bad_inputs_are_one_line_and_exit_2(tmp_path, cli):
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    code, out, err = cli("report", str(bad), "-o", str(tmp_path / "r.html"))
    assert code == 2 and err.startswith(f"error: {bad}: ") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r.html").exists()
    code, out, err = cli("report", str(RESULTS / "simclr.json"), "-o", str(tmp_path / "r.html"), "--z3", str(tmp_path / "none"))
    assert code == 2 and "no such folder" in err and len(err.strip().splitlines()) == 1
    code, out, err = cli("report", str(RESULTS / "simclr.json"), "-o", str(tmp_path))
    assert code == 2 and "is a directory" in err
