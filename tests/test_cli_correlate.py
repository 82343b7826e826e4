"""`sslmon correlate` end to end: JSON and table shape, checkpoint selection, exit codes."""

from __future__ import annotations

import json

import pytest

from helpers import ENTROPY, LP, SELECTION_LP, pearson_by_hand, write_results, write_run
from sslmon.cli import app


def test_cli_json_has_one_run_per_file_and_every_field(run_file, tmp_path, runner):
    other = write_results(tmp_path / "moco.json", {"lp_acc": LP[::-1], "entropy_z3": ENTROPY, "ami_c1_c2": [0.1] * 6})
    res = runner.invoke(app, ["correlate", str(run_file), str(other), "--format", "json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["against"] == "lp_acc"
    assert [run["name"] for run in doc["runs"]] == ["simclr", "moco"]
    assert set(doc["runs"][0]) == {"name", "path", "n_points", "correlations", "selection", "consensus_metrics", "n_seeds"}
    cell = doc["runs"][0]["correlations"]["ami_c1_c2"]
    assert set(cell) == {"with_init", "without_init"}
    assert set(cell["with_init"]) == {"pearson_r", "pearson_p", "spearman_rho", "spearman_p", "n", "status",
                                      "pearson_ci_low", "pearson_ci_high"}
    assert set(doc["runs"][0]["selection"]) == {"entropy_z3", "ami_c1_c2", "consensus", "last_milestone"}
    assert doc["runs"][1]["correlations"]["ami_c1_c2"]["with_init"]["status"] == "constant"
    assert "NaN" not in res.stdout


def test_cli_table_has_a_column_group_per_run_and_names(run_file, tmp_path, runner):
    other = write_results(tmp_path / "moco.json", {"lp_acc": LP, "entropy_z3": ENTROPY})
    res = runner.invoke(app, ["correlate", str(run_file), str(other), "--name", "SimCLR", "--name", "MoCo-v2",
                              "--against", "lp_acc", "--output", str(tmp_path / "table.json")])
    assert res.exit_code == 0, res.output
    for header in ("SimCLR", "MoCo-v2", "w/ init (n=6)", "w/o init (n=5)"):
        assert header in res.stdout
    r, _ = pearson_by_hand(ENTROPY, LP)
    assert f"{r:+.2f}" in res.stdout
    assert json.loads((tmp_path / "table.json").read_text())["runs"][1]["name"] == "MoCo-v2"


def test_cli_errors(run_file, tmp_path, runner):
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text('{"results": [')
    res = runner.invoke(app, ["correlate", str(run_file), str(corrupt)])
    assert res.exit_code == 2
    assert res.stderr.count("\n") == 1 and str(corrupt) in res.stderr
    not_results = tmp_path / "list.json"
    not_results.write_text("[1, 2]")
    res = runner.invoke(app, ["correlate", str(not_results)])
    assert res.exit_code == 2 and "not an sslmon results document" in res.stderr
    binary = tmp_path / "figure.png"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    res = runner.invoke(app, ["correlate", str(binary)])
    assert res.exit_code == 2 and f"{binary}: not a text file" in res.stderr
    res = runner.invoke(app, ["correlate", str(tmp_path / "missing.json")])
    assert res.exit_code == 2 and "missing.json: cannot read (No such file or directory)" in res.stderr
    assert runner.invoke(app, ["correlate", str(run_file), "--against", "accuracy"]).exit_code == 2
    assert runner.invoke(app, ["correlate", str(run_file), "--name", "a", "--name", "b"]).exit_code == 2


def test_cli_selection_table_and_json(tmp_path, runner):
    path = write_run(tmp_path / "r.json", {"lp_acc": SELECTION_LP, "rankme": [9.0, 2.0, 3.0, 2.5, 4.0], "l2_std": [0.1, 0.2, 0.5, 0.3, 0.4]})
    result = runner.invoke(app, ["correlate", str(path), "--consensus", "rankme,l2_std", "-f", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    run = doc["runs"][0]
    assert run["consensus_metrics"] == ["rankme", "l2_std"]
    assert run["selection"]["rankme"]["with_init"]["regret"] == pytest.approx(30.0)
    assert doc["mean_regret"]["l2_std"]["with_init"] == pytest.approx(0.0)
    table = runner.invoke(app, ["correlate", str(path), "--consensus", "rankme,l2_std"])
    assert table.exit_code == 0
    assert "consensus (rankme, l2_std)" in table.stdout and "last milestone" in table.stdout
    assert "ep 0 30.00pt #5" in table.stdout
    bad = runner.invoke(app, ["correlate", str(path), "--consensus", "rankme,nope"])
    assert bad.exit_code == 2 and "nope" in bad.output
