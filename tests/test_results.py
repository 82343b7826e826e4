"""Init handling (--exclude-init), the consensus ranking and lp_acc ± its standard error in the table."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from typer.testing import CliRunner

from sslmon.cli import app
from sslmon.conditions import judge, parse_condition
from sslmon.report import render_table
from sslmon.results import Result, Run

SAMPLES = Path(__file__).resolve().parents[1] / "sample_checkpoints"


def make_run(exclude_init: bool) -> Run:
    results = [
        Result("init", None, {"rankme": 90.0, "l2_std": 0.01, "lp_acc": 0.70, "lp_acc_se": 0.0102}, epoch=0),
        Result("e1", None, {"rankme": 40.0, "l2_std": 0.05, "lp_acc": 0.8123, "lp_acc_se": 0.0061}, epoch=1),
        Result("e2", None, {"rankme": 50.0, "l2_std": 0.04, "lp_acc": 0.80, "lp_acc_se": 0.0063}, epoch=2),
    ]
    return Run(config={}, results=results, exclude_init=exclude_init)


def test_exclude_init_unranks_the_init_milestone_but_keeps_it():
    assert [r.name for r in make_run(False).ranked("rankme")] == ["init", "e2", "e1"]
    run = make_run(True)
    assert [r.name for r in run.ranked("rankme")] == ["e2", "e1", "init"]
    doc = run.to_dict("rankme")
    assert [(r["name"], r["rank"]) for r in doc["results"]] == [("e2", 1), ("e1", 2), ("init", None)]
    assert [r.name for r in run.gated().results] == ["e1", "e2"]


def test_consensus_ranking_is_the_mean_rank_by_hand():
    # the consensus metrics present are rankme and l2_std (others are missing and drop out).
    # with init: rankme ranks init 1, e2 2, e1 3; l2_std ranks e1 1, e2 2, init 3 -> means 2, 2, 2: a tie, input order
    assert [r.name for r in make_run(False).ranked("consensus")] == ["init", "e1", "e2"]
    # without init: rankme e2 1, e1 2; l2_std e1 1, e2 2 -> 1.5 each: input order, init unranked
    run = make_run(True)
    assert [key for _, key in run.ranking("consensus")] == [1.5, 1.5, None]


def test_fail_if_skips_the_excluded_init():
    cond = [parse_condition("lp_acc<0.75")]
    assert len(judge(make_run(False), cond, "each", "rankme")) == 1  # init trips it
    assert judge(make_run(True).gated(), cond, "each", "rankme") == []
    assert len(judge(make_run(False), cond, "best", "rankme")) == 1  # best by rankme is init
    assert judge(make_run(True).gated(), cond, "best", "rankme") == []


def test_table_marks_init_and_shows_lp_acc_with_its_standard_error():
    console = Console(record=True, width=250)
    render_table(make_run(True), "rankme", console)
    text = console.export_text()
    assert "0.812 ± 0.006" in text and "0.700 ± 0.010" in text
    assert "0 (init)" in text and "init milestone not ranked" in " ".join(text.split())  # the title may wrap
    assert "lp_acc_se" not in text.replace("lp_acc ± its binomial standard error", "")  # no column of its own


def test_score_defaults_are_the_consensus_and_excluding_init():
    helptext = CliRunner().invoke(app, ["score", "--help"], env={"COLUMNS": "250", "NO_COLOR": "1"})
    text = " ".join(helptext.stdout.replace("│", " ").split())
    assert "Default: consensus (score, watch), rankme (compare)" in text and "[default: exclude-init]" in text
    from sslmon.api import Options

    assert Options().resolve("checkpoints").rank_by == "consensus" and Options().resolve("models").rank_by == "rankme"


def test_exclude_init_changes_the_sample_checkpoint_ranking(tmp_path, monkeypatch):
    """alpha-ReQ of the untrained sample milestone is the closest to 1, so it ranks first unless excluded."""
    monkeypatch.setenv("SSLMON_CACHE_DIR", str(tmp_path / "cache"))
    base = ["score", str(SAMPLES), "--limit", "300", "--metrics", "alpha_req", "--rank-by", "alpha_req", "-f", "json", "-q"]
    runner = CliRunner()
    included = runner.invoke(app, [*base, "--include-init", "--fail-if", "alpha_req<2.3", "--judge", "best"])
    assert included.exit_code == 1, included.output  # the gate judges the init milestone (alpha-ReQ ~2.1)
    doc = json.loads(included.stdout)
    assert doc["results"][0]["epoch"] == 0 and doc["results"][0]["rank"] == 1
    alpha = {r["epoch"]: r["metrics"]["alpha_req"] for r in doc["results"]}
    assert min(alpha, key=lambda e: abs(alpha[e] - 1)) == 0
    excluded = runner.invoke(app, [*base, "--fail-if", "alpha_req<2.3", "--judge", "best"])  # the default
    assert excluded.exit_code == 0, excluded.output
    doc = json.loads(excluded.stdout)
    assert doc["config"]["exclude_init"] is True
    ranked = [r["epoch"] for r in doc["results"] if r["rank"] is not None]
    assert ranked == sorted((e for e in alpha if e != 0), key=lambda e: abs(alpha[e] - 1))
    assert doc["results"][-1]["epoch"] == 0 and doc["results"][-1]["rank"] is None  # still reported
