"""sslmon.report: the table, CSV and JSON Lines renderings of a run; names made printable and CSV cells defused."""

from __future__ import annotations

import csv
import io
import json

from rich.console import Console

from helpers import init_run
from schema_check import check_jsonl
from sslmon.report import csv_cell, printable, render, render_table
from sslmon.results import Failure, Result, Run


def test_csv_defuses_formula_names_and_keeps_the_numbers():
    run = Run({}, [Result('=HYPERLINK("http://x")', "@evil/=a.pt", {"rankme": 2.5, "l2_std": 0.125}, epoch=1),
                   Result("+plus", None, {"rankme": 1.0 / 3.0, "l2_std": None}, epoch=2),
                   Result("plain", "/run/plain.pt", {"rankme": 7.0, "l2_std": 0.5}, epoch=3)])
    rows = list(csv.DictReader(io.StringIO(render(run, "rankme", "csv"))))
    assert [r["name"] for r in rows] == ["plain", "'=HYPERLINK(\"http://x\")", "'+plus"]  # ranked by rankme
    assert [r["path"] for r in rows] == ["/run/plain.pt", "'@evil/=a.pt", ""]
    assert [r["rank"] for r in rows] == ["1", "2", "3"]
    assert [float(r["metrics.rankme"]) for r in rows] == [7.0, 2.5, 1.0 / 3.0]  # full precision (repr)
    assert rows[2]["metrics.l2_std"] == "" and rows[1]["metrics.l2_std"] == "0.125"


def test_jsonl_has_the_results_in_rank_order_then_each_failure_marked_failed():
    failures = [Failure("/run/bad.pt", "/run/bad.pt: truncated"), Failure("/run/x.pt", "/run/x.pt: not a checkpoint")]
    run = Run({}, [Result("a", None, {"rankme": 1.0}, epoch=1), Result("b", None, {"rankme": 3.0}, epoch=2)], failures)
    header, *records = check_jsonl(render(run, "rankme", "jsonl"))
    assert header["config"] == {}
    assert [(r.get("name"), r.get("rank")) for r in records[:2]] == [("b", 1), ("a", 2)]
    assert [(r["failed"], r["path"], r["error"]) for r in records[2:]] == [(True, f.path, f.error) for f in failures]
    assert not any("failed" in r for r in records[:2])
    doc = json.loads(render(run, "rankme", "json"))  # the JSON document lists them apart
    assert [(f["path"], f["error"]) for f in doc["failures"]] == [(f.path, f.error) for f in failures]


def test_table_marks_init_and_shows_lp_acc_with_its_standard_error():
    console = Console(record=True, width=250)
    render_table(init_run(True), "rankme", console)
    text = console.export_text()
    assert "0.812 ± 0.006" in text and "0.700 ± 0.010" in text
    assert "0 (init)" in text and "init milestone not ranked" in " ".join(text.split())  # the title may wrap
    assert "lp_acc_se" not in text.replace("lp_acc ± its binomial standard error", "")  # no column of its own


def test_printable_and_csv_cell():
    assert printable("a\nb\x1b[31mc\u202ed\te") == "a\\nb\\x1b[31mc\\u202ed\\te"
    assert printable("épreuve [red]x[/red]") == "épreuve [red]x[/red]"  # markup is not a control character
    assert [csv_cell(t) for t in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx", "ok", "a=b")] == \
        ["'=1+1", "'+1", "'-1", "'@SUM(A1)", "'\tx", "'\rx", "ok", "a=b"]


def test_a_narrow_terminal_keeps_the_identity_columns_and_names_the_metrics_left_out():
    metrics = {"ami_c1_c2": 0.7642, "silhouette_c1": 0.1785, "entropy_z3": 4.343, "rankme": 22.55, "alpha_req": 2.47,
               "l2_std": 0.04184, "nesum": 2.078, "stable_rank": 1.326, "coherence": 2.757, "twonn_id": 6.839}
    run = Run({}, [Result(f"epoch_{e:04d}.pt", None, dict(metrics), epoch=e, n_samples=500, dim=128) for e in range(4)])
    wide = Console(record=True, width=250, force_terminal=True)
    render_table(run, "epoch", wide)
    assert "left out" not in wide.export_text()
    narrow = Console(record=True, width=80, force_terminal=True)
    render_table(run, "epoch", narrow)
    text = narrow.export_text()
    table = text.split("recommended:")[0]
    assert all(len(line) <= 80 for line in table.splitlines())
    assert "epoch_0003.pt" in table and "1✓" in table and "…" not in table  # nothing squeezed to an ellipsis
    left_out = " ".join(table.split("left out at this width:")[1].split()).split(" (-f json")[0].split(", ")
    shown = [m for m in metrics if m not in left_out]
    assert left_out and shown and set(left_out) | set(shown) == set(metrics)
    assert "recommended: epoch_0003.pt, the last milestone" in text
