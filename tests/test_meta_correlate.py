"""`sslmon correlate`: Pearson/Spearman against hand computations, edge cases, CLI shape and exit codes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from typer.testing import CliRunner

from sslmon.cli import app
from sslmon.meta.correlate import Correlation, NamedRun, correlate_run, correlation
from sslmon.results import Result, Run
from sslmon.io.runfile import load_run, to_json

runner = CliRunner()

EPOCHS = [0, 20, 40, 60, 80, 100]
LP = [0.10, 0.42, 0.55, 0.61, 0.66, 0.68]
ENTROPY = [3.1, 5.9, 5.4, 5.5, 5.0, 4.9]  # the paper's shape: low at init, then falling while LP rises
AMI = [0.02, 0.30, 0.29, 0.41, 0.40, 0.52]


def write_results(path: Path, metrics: dict[str, list[float | None]], epochs: list[int | None] = EPOCHS,
                  per_seed: list[list[dict[str, float]]] | None = None) -> Path:
    """A results document written by sslmon's own writer (`sslmon score -f json`), one result per epoch."""
    results = [Result(f"epoch_{e}.pt", None, {key: values[i] for key, values in metrics.items()}, epoch=e,
                      per_seed=per_seed[i] if per_seed else []) for i, e in enumerate(epochs)]
    path.write_text(to_json(Run({}, results), "lp_acc"))
    return path


def named(path: Path) -> NamedRun:
    """The run of a results file under its file stem, as `sslmon correlate` names it."""
    return NamedRun(path.stem, str(path), load_run(path))


def pearson_by_hand(x: list[float], y: list[float]) -> tuple[float, float]:
    """r = cov(x, y) / (s_x s_y); two-sided p = 2 P(T > |t|), t = r sqrt((n-2)/(1-r^2)), n-2 dof."""
    x, y = np.asarray(x), np.asarray(y)
    n = len(x)
    cov = ((x - x.mean()) * (y - y.mean())).sum() / (n - 1)
    r = cov / (x.std(ddof=1) * y.std(ddof=1))
    t = r * math.sqrt((n - 2) / (1 - r**2))
    return r, 2 * stats.t.sf(abs(t), n - 2)


def ranks_by_hand(values: list[float]) -> list[float]:
    """Rank 1 = smallest; tied values share their mean rank."""
    ordered = sorted(values)
    return [ordered.index(v) + (ordered.count(v) + 1) / 2 for v in values]


@pytest.fixture()
def run_file(tmp_path: Path) -> Path:
    return write_results(tmp_path / "simclr.json", {"lp_acc": LP, "entropy_z3": ENTROPY, "ami_c1_c2": AMI})


def test_pearson_and_p_match_the_formula_with_and_without_init(run_file):
    result = correlate_run(named(run_file), "lp_acc")
    assert set(result.correlations) == {"entropy_z3", "ami_c1_c2"}
    with_init = result.correlations["entropy_z3"]["with_init"]
    without_init = result.correlations["entropy_z3"]["without_init"]
    r, p = pearson_by_hand(ENTROPY, LP)
    assert (with_init.status, with_init.n) == ("ok", 6)
    assert with_init.pearson_r == pytest.approx(r, abs=1e-12)
    assert with_init.pearson_p == pytest.approx(p, rel=1e-9)
    r, p = pearson_by_hand(ENTROPY[1:], LP[1:])
    assert (without_init.status, without_init.n) == ("ok", 5)
    assert without_init.pearson_r == pytest.approx(r, abs=1e-12)
    assert without_init.pearson_p == pytest.approx(p, rel=1e-9)
    # dropping the init milestone flips the sign, as in the paper's Table I
    assert with_init.pearson_r > 0 > without_init.pearson_r
    assert result.n_points == 6


def test_interval_of_r_equals_scipy_and_the_fisher_formula(run_file):
    c = correlate_run(named(run_file), "lp_acc").correlations["ami_c1_c2"]["with_init"]
    ci = stats.pearsonr(AMI, LP).confidence_interval(confidence_level=0.95)
    assert (c.pearson_ci_low, c.pearson_ci_high) == pytest.approx((ci.low, ci.high), abs=1e-12)
    r, _ = pearson_by_hand(AMI, LP)
    half = stats.norm.ppf(0.975) / math.sqrt(len(AMI) - 3)  # Fisher z: tanh(atanh(r) -+ z_0.975 / sqrt(n - 3))
    assert (c.pearson_ci_low, c.pearson_ci_high) == pytest.approx((math.tanh(math.atanh(r) - half), math.tanh(math.atanh(r) + half)))
    assert c.pearson_ci_low < c.pearson_r < c.pearson_ci_high


def test_spearman_is_pearson_of_the_ranks():
    x = [1.0, 2.0, 2.0, 5.0, 4.0, 9.0]  # a tie: mean ranks
    y = [0.3, 0.1, 0.4, 0.5, 0.9, 0.7]
    c = correlation(x, y)
    rho, _ = pearson_by_hand(ranks_by_hand(x), ranks_by_hand(y))
    assert ranks_by_hand(x) == [1, 2.5, 2.5, 5, 4, 6]
    assert c.spearman_rho == pytest.approx(rho, abs=1e-12)
    assert 0 < c.spearman_p < 1


def test_nulls_are_skipped_and_fewer_than_three_points_is_not_enough_data(tmp_path):
    path = write_results(tmp_path / "r.json", {"lp_acc": [0.1, 0.2, None, 0.4, 0.5, 0.6],
                                               "rankme": [None, 2.0, 3.0, None, None, 7.0],
                                               "alpha_req": [1.0, None, 1.3, 0.9, 1.5, 1.1]})
    result = correlate_run(named(path), "lp_acc")
    rankme = result.correlations["rankme"]
    assert rankme["with_init"] == Correlation(None, None, None, None, 2, "not enough data")
    alpha = result.correlations["alpha_req"]["with_init"]
    r, _ = pearson_by_hand([1.0, 0.9, 1.5, 1.1], [0.1, 0.4, 0.5, 0.6])
    assert (alpha.n, alpha.pearson_r) == (4, pytest.approx(r))
    assert result.correlations["alpha_req"]["without_init"].n == 3
    assert result.n_points == 5


def test_constant_metric_or_reference_gives_a_status_not_nan():
    assert correlation([0.5] * 5, [1, 2, 3, 4, 5]).status == "constant"
    assert correlation([1, 2, 3, 4, 5], [7.0] * 5).status == "constant"
    assert correlation([1, 2, 3, 4, 5], [7.0] * 5).pearson_r is None


def test_without_init_is_not_applicable_when_there_is_no_epoch_zero(tmp_path):
    path = write_results(tmp_path / "late.json", {"lp_acc": LP, "ami_c1_c2": AMI}, epochs=[20, 40, 60, 80, 100, None])
    c = correlate_run(named(path), "lp_acc").correlations["ami_c1_c2"]
    assert c["with_init"].status == "ok"
    assert (c["without_init"].status, c["without_init"].pearson_r) == ("no init milestone", None)


def test_cli_json_has_one_run_per_file_and_every_field(run_file, tmp_path):
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


def test_cli_table_has_a_column_group_per_run_and_names(run_file, tmp_path):
    other = write_results(tmp_path / "moco.json", {"lp_acc": LP, "entropy_z3": ENTROPY})
    res = runner.invoke(app, ["correlate", str(run_file), str(other), "--name", "SimCLR", "--name", "MoCo-v2",
                              "--against", "lp_acc", "--output", str(tmp_path / "table.json")])
    assert res.exit_code == 0, res.output
    for header in ("SimCLR", "MoCo-v2", "w/ init (n=6)", "w/o init (n=5)"):
        assert header in res.stdout
    r, _ = pearson_by_hand(ENTROPY, LP)
    assert f"{r:+.2f}" in res.stdout
    assert json.loads((tmp_path / "table.json").read_text())["runs"][1]["name"] == "MoCo-v2"


def test_cli_errors(run_file, tmp_path):
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
