"""Runs kept apart (issue 20 item 2) and a table that fits (item 1): each result's `run`, ranks, alarms and
recommendations per run, a run column; the table within COLUMNS, label-free metrics before label-based ones,
--columns and --wide."""

from __future__ import annotations

import json

import numpy as np
import pytest
from rich.console import Console
from scipy import stats

from helpers import write_milestones
from schema_check import check_csv, check_document
from sslmon.api import checkpoint_sources
from sslmon.cli import app
from sslmon.metrics import METRICS
from sslmon.report import render, render_table
from sslmon.recommend import document
from sslmon.results import Result, Run
from sslmon.selection import CONSENSUS, DEFAULT_CONSENSUS

# Two runs of four milestones, the six consensus metrics per milestone (rows: epochs 1..4).
RUN_A = np.array([[0.30, 0.10, 5.0, 20.0, 1.5, 0.05],
                  [0.40, 0.12, 4.8, 25.0, 1.2, 0.06],
                  [0.35, 0.20, 4.9, 22.0, 1.1, 0.07],
                  [0.50, 0.15, 4.7, 21.0, 1.3, 0.04]])
RUN_B = np.array([[0.316, 0.110, 5.09, 19.279, 1.406, 0.052],
                  [0.329, 0.203, 5.00, 24.035, 1.006, 0.070],
                  [0.420, 0.112, 4.693, 22.814, 1.254, 0.055]])


def _results(values: np.ndarray, run: str) -> list[Result]:
    return [Result(f"epoch_{e:04d}.pt", f"{run}/epoch_{e:04d}.pt", dict(zip(DEFAULT_CONSENSUS, map(float, row))),
                    epoch=e, n_samples=500, dim=64, run=run) for e, row in enumerate(values, start=1)]


def _consensus_order(values: np.ndarray) -> list[int]:
    """Row indices best first by the mean rank over DEFAULT_CONSENSUS, by hand: higher is better except entropy_z3
    (lower) and alpha_req (closest to 1)."""
    columns = []
    for j, key in enumerate(DEFAULT_CONSENSUS):
        v = values[:, j]
        key_values = {"entropy_z3": v, "alpha_req": np.abs(v - 1.0)}.get(key, -v)
        columns.append(stats.rankdata(key_values))
    return list(np.argsort(np.mean(columns, axis=0), kind="stable"))


def _ranks(doc: dict, run: str) -> dict[str, int]:
    return {r["name"]: r["rank"] for r in doc["results"] if r["run"] == run}


def test_adding_a_run_leaves_the_other_runs_ranks_as_they_were():
    alone = document(Run({}, _results(RUN_A, "runs/a")), CONSENSUS)
    both = document(Run({}, _results(RUN_A, "runs/a") + _results(RUN_B, "runs/b")), CONSENSUS)
    check_document(both)
    expected_a = {f"epoch_{i + 1:04d}.pt": rank for rank, i in enumerate(_consensus_order(RUN_A), start=1)}
    expected_b = {f"epoch_{i + 1:04d}.pt": rank for rank, i in enumerate(_consensus_order(RUN_B), start=1)}
    assert _ranks(alone, "runs/a") == expected_a == _ranks(both, "runs/a")
    assert _ranks(both, "runs/b") == expected_b  # its own ranks 1..3
    pooled = _consensus_order(np.vstack([RUN_A, RUN_B]))  # what pooling would give: a different order for run a
    assert [i for i in pooled if i < len(RUN_A)] != _consensus_order(RUN_A)
    assert [r["run"] for r in both["results"]] == ["runs/a"] * 4 + ["runs/b"] * 3  # grouped by run
    assert both["recommendation"] is None
    assert [(c["run"], c["name"]) for c in both["recommendations"]] == [
        ("runs/a", f"epoch_{_consensus_order(RUN_A)[0] + 1:04d}.pt"), ("runs/b", f"epoch_{_consensus_order(RUN_B)[0] + 1:04d}.pt")]
    assert [(r["run"], r["name"]) for r in both["results"] if r["recommended"]] == [
        (c["run"], c["name"]) for c in both["recommendations"]]
    assert "recommendations" not in alone and alone["recommendation"]["run"] == "runs/a"
    again = document(Run.from_dict(json.loads(json.dumps(both))), CONSENSUS)  # read back: the runs stay apart
    assert [(r["run"], r["name"], r["rank"]) for r in again["results"]] == [(r["run"], r["name"], r["rank"]) for r in both["results"]]
    assert [r["run"] for r in check_csv(render(Run({}, _results(RUN_A, "a") + _results(RUN_B, "b")), CONSENSUS, "csv"))] \
        == ["a"] * 4 + ["b"] * 3


def test_each_run_has_its_own_last_milestone_and_alarm_sequence():
    run = Run({}, _results(RUN_A, "a") + _results(RUN_B, "b"))
    doc = document(run, "epoch")
    assert [(r["run"], r["epoch"], r["rank"]) for r in doc["results"]] == [
        ("a", 4, 1), ("a", 3, 2), ("a", 2, 3), ("a", 1, 4), ("b", 3, 1), ("b", 2, 2), ("b", 1, 3)]  # newest first
    assert [(c["run"], c["epoch"]) for c in doc["recommendations"]] == [("a", 4), ("b", 3)]


def test_the_table_shows_a_run_column_and_one_recommendation_per_run():
    console = Console(record=True, width=250)
    render_table(Run({}, _results(RUN_A, "runs/a") + _results(RUN_B, "runs/b")), "epoch", console)
    text = console.export_text()
    header = next(line for line in text.splitlines() if "name" in line)
    assert "run" in header.split("name")[0]
    rows = [line for line in text.splitlines() if "epoch_" in line and not line.startswith("recommended")]
    assert [row.split()[1] for row in rows] == ["1✓", "2", "3", "4", "1✓", "2", "3"]  # ranks per run
    assert [row.split()[3] for row in rows] == ["runs/a"] * 4 + ["runs/b"] * 3
    assert "recommended in runs/a: epoch_0004.pt" in text and "recommended in runs/b: epoch_0003.pt" in text
    single = Console(record=True, width=250)
    render_table(Run({}, _results(RUN_A, "runs/a")), "epoch", single)
    assert "runs/a" not in single.export_text().split("recommended")[0]  # one run: no run column


def test_a_checkpoint_names_its_folder_as_its_run(tmp_path):
    write_milestones(tmp_path / "a", (0, 1))
    write_milestones(tmp_path / "b", (3,))
    sources = checkpoint_sources([tmp_path / "a", tmp_path / "b" / "ckpt_0003.pt", f"{tmp_path / 'a'}/"])
    assert [(s.name, s.run) for s in sources] == [("ckpt_0000.pt", str(tmp_path / "a")), ("ckpt_0001.pt", str(tmp_path / "a")),
                                                  ("ckpt_0003.pt", str(tmp_path / "b")), ("ckpt_0000.pt", str(tmp_path / "a")),
                                                  ("ckpt_0001.pt", str(tmp_path / "a"))]


def test_score_of_two_runs_ranks_each_on_its_own(tmp_path, tiny_data, cache_dir, runner):
    write_milestones(tmp_path / "a", (0, 1, 2))
    write_milestones(tmp_path / "b", (0, 5))
    args = ["score", str(tmp_path / "a"), str(tmp_path / "b"), "--dataset", tiny_data, "--arch", "convnet-small",
            "--metrics", "rankme,l2_std", "-q"]
    result = runner.invoke(app, [*args, "-f", "json"])
    assert result.exit_code == 0, result.output
    doc = check_document(json.loads(result.stdout))
    assert [(r["run"], r["epoch"], r["rank"]) for r in doc["results"]] == [
        (str(tmp_path / "a"), 2, 1), (str(tmp_path / "a"), 1, 2), (str(tmp_path / "a"), 0, None),
        (str(tmp_path / "b"), 5, 1), (str(tmp_path / "b"), 0, None)]
    table = runner.invoke(app, args, env={"COLUMNS": "100"})
    assert table.exit_code == 0, table.output
    assert "recommended in " + str(tmp_path / "a") in " ".join(table.stdout.split())


ALL = {m: 0.123456 * (i + 1) for i, m in enumerate(METRICS) if not METRICS[m].uncertainty_of}


def _wide_run() -> Run:
    """Six milestones with every metric (lp_acc with its standard error, two seeds: cells as mean±std)."""
    return Run({"seeds": [0, 1]}, [Result(f"epoch_{e:04d}.pt", None, {**ALL, "lp_acc": 0.8123, "lp_acc_se": 0.0061},
                                          epoch=e, metrics_std={m: 0.0123 for m in ALL}) for e in range(6)])


@pytest.mark.parametrize("width", [80, 100])
def test_the_table_fits_the_width_without_ellipses_label_free_first(width):
    console = Console(record=True, width=width)  # not a terminal: as piped with COLUMNS
    render_table(_wide_run(), "epoch", console, fit=True)
    text = console.export_text()
    assert max(map(len, text.splitlines())) <= width and "…" not in text
    headers = "\n".join(text.splitlines()[:6])
    caption = " ".join(text.split("left out at this width:")[1].split()).split(" (-f json")[0].split(", ")
    assert caption and set(caption) <= set(ALL)  # what does not fit is named
    kept = [m for m in ALL if m not in caption]
    assert kept and len(kept) + len(caption) == len(ALL)
    if any(METRICS[m].needs_labels for m in kept) and any(not METRICS[m].needs_labels for m in kept):
        assert headers.index("label-free") < headers.index("label-based")


def test_label_free_columns_come_before_label_based_ones_under_group_headers():
    console = Console(record=True, width=1000)
    render_table(_wide_run(), "epoch", console, fit=False)
    text = console.export_text()
    assert "left out" not in text and "…" not in text
    group_line, head_line = text.splitlines()[2:4]
    assert group_line.index("label-free") < group_line.index("label-based")
    heads = head_line.split()
    free = [h for h in heads if h in {"silhouette", "entropy", "rankme", "alpha", "l2"}]
    based = [h for h in heads if h in {"knn", "lp"}]
    assert free and based and max(heads.index(h) for h in free) < min(heads.index(h) for h in based)


def test_columns_and_wide_on_the_command_line(tmp_path, tiny_data, cache_dir, runner):
    write_milestones(tmp_path / "a", (0, 1))
    args = ["score", str(tmp_path / "a"), "--dataset", tiny_data, "--arch", "convnet-small", "-q",
            "--metrics", "rankme,alpha_req,l2_std,nesum,stable_rank,self_clustering,coherence,knn_acc,lp_acc"]
    for width in (80, 100):
        fitted = runner.invoke(app, args, env={"COLUMNS": str(width)})
        assert fitted.exit_code == 0, fitted.output
        assert max(map(len, fitted.stdout.splitlines())) <= width and "…" not in fitted.stdout
    wide = runner.invoke(app, [*args, "--wide"], env={"COLUMNS": "80"})
    assert max(map(len, wide.stdout.splitlines())) > 80 and "left out" not in wide.stdout
    picked = runner.invoke(app, [*args, "--columns", "knn_acc,rankme"], env={"COLUMNS": "80"})
    assert picked.exit_code == 0, picked.output
    head = "\n".join(picked.stdout.splitlines()[:6])
    assert "knn" in head and "rankme" in head and "nesum" not in head and "coherence" not in head
    assert head.index("rankme") < head.index("knn")  # label-free first
    bad = runner.invoke(app, [*args, "--columns", "nope"])
    assert bad.exit_code == 2 and "nope" in bad.output
