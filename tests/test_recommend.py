"""sslmon.recommend: the default rankings and the recommendation, on hand-made runs; the evidence count."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import ROOT
from sslmon.io.runfile import load_run, to_json
from sslmon.recommend import EVIDENCE_ACROSS, EVIDENCE_RUNS, MODELS_DEFAULT, STUDY_RUNS, default_rank_by, document, recommend
from sslmon.results import Result, Run
from sslmon.selection import EPOCH, INPUT

HEALTHY = {"l2_std": 0.04, "rankme": 20.0, "entropy_z3": 4.3}
COLLAPSED = {"l2_std": 0.0, "rankme": 1.0, "entropy_z3": 2.0}  # l2_std*sqrt(d) = 0 < 0.05


def _run(specs: list[tuple[str, int | None, dict]], exclude_init: bool = True) -> Run:
    results = [Result(name, f"/ck/{name}", dict(m), epoch=e, n_samples=500, dim=128, k=10) for name, e, m in specs]
    return Run(config={}, results=results, exclude_init=exclude_init)


def test_a_run_is_ranked_newest_first_and_the_last_milestone_recommended():
    run = _run([("e0", 0, HEALTHY), ("e1", 1, {**HEALTHY, "entropy_z3": 3.0}), ("e2", 2, HEALTHY)])
    assert default_rank_by(run.results) == EPOCH
    assert [r.name for r in run.ranked(EPOCH)] == ["e2", "e1", "e0"]  # the init milestone unranked, last
    choice = recommend(run, EPOCH)
    assert (choice.name, choice.epoch, choice.rule, choice.excluded) == ("e2", 2, "last milestone", [])
    assert choice.line().startswith("recommended: e2, the last milestone; no label-free ranking beat it")
    doc = json.loads(to_json(run, EPOCH))
    assert [(r["name"], r["rank"], r["recommended"]) for r in doc["results"]] == [("e2", 1, True), ("e1", 2, False), ("e0", None, False)]
    assert doc["recommendation"]["name"] == "e2" and "result" not in doc["recommendation"]


def test_a_collapsed_last_milestone_is_never_recommended(tmp_path: Path):
    run = _run([("e0", 0, HEALTHY), ("e1", 1, HEALTHY), ("e2", 2, COLLAPSED)])
    choice = recommend(run, EPOCH)
    assert choice.name == "e1" and choice.excluded[0]["name"] == "e2" and "collapse" in choice.excluded[0]["why"]
    assert choice.reason.startswith("the latest milestone not flagged collapse")
    assert recommend(run, "entropy_z3").name == "e1"  # lowest H(Z3) is the collapsed one: passed over too
    doc = json.loads(to_json(run, EPOCH))
    flagged = {r["name"]: [f["code"] for f in r["flags"]] for r in doc["results"]}
    assert "collapse" in flagged["e2"] and "collapse" not in flagged["e1"]
    path = tmp_path / "run.json"
    path.write_text(to_json(run, EPOCH))
    back = load_run(path)  # derived fields (rank, flags, recommended, recommendation) are read back and dropped
    assert [r.name for r in back.results] == ["e2", "e1", "e0"]


def test_nothing_to_recommend_says_why():
    only_init = recommend(_run([("e0", 0, HEALTHY)]), EPOCH)
    assert only_init.name is None and "untrained" in only_init.reason
    all_collapsed = recommend(_run([("e1", 1, COLLAPSED)]), EPOCH)
    assert all_collapsed.name is None and "collapse" in all_collapsed.reason


MODELS = [("resnet18", None, {**HEALTHY, "entropy_z3": 5.1}), ("vgg11", None, {**HEALTHY, "entropy_z3": 3.9}),
          ("resnet50", None, {**HEALTHY, "entropy_z3": 4.2})]


def test_models_are_not_ranked_by_default_and_nothing_is_recommended():
    """Issue 17's decision: no label-free rule beat a random pick across runs or architectures, so different
    models keep their input order, unranked, and the line under the table says why."""
    run = _run(MODELS)
    assert default_rank_by(run.results) == MODELS_DEFAULT == INPUT == "input"
    choice = recommend(run, MODELS_DEFAULT)
    assert (choice.name, choice.path, choice.result, choice.excluded) == (None, None, None, [])
    assert "random pick" in choice.reason and choice.evidence == EVIDENCE_ACROSS and "docs/evidence/README.md" in choice.evidence
    assert choice.line().startswith("no recommendation: no label-free ranking beat a random pick")
    assert choice.line().endswith("--rank-by KEY ranks by a metric")
    doc = document(run, MODELS_DEFAULT)
    assert [(r["name"], r["rank"], r["recommended"]) for r in doc["results"]] == [
        ("resnet18", None, False), ("vgg11", None, False), ("resnet50", None, False)]  # input order
    assert doc["recommendation"]["name"] is None


def test_models_ranked_by_entropy_when_asked():
    run = _run(MODELS)
    by_hand = [name for name, _, m in sorted(MODELS, key=lambda spec: spec[2]["entropy_z3"])]  # lower is better
    assert by_hand == ["vgg11", "resnet50", "resnet18"]
    doc = document(run, "entropy_z3")
    assert [(r["name"], r["rank"]) for r in doc["results"]] == list(zip(by_hand, [1, 2, 3]))
    assert [r["name"] for r in doc["results"] if r["recommended"]] == ["vgg11"]
    choice = recommend(run, "entropy_z3")
    assert choice.name == "vgg11" and choice.rule == "rank 1 by entropy_z3 (lower)" and "Table II" in choice.evidence


def test_the_evidence_count_is_the_training_runs_in_docs_results():
    """Every results file of a training run in docs/results, one per training (the seed1/, seed2/ and centred/
    folders re-evaluate the same trainings)."""
    reevaluations = {"seed1", "seed2", "centred"}
    runs = [p for p in (ROOT / "docs/results").rglob("*.json")
            if not p.name.startswith("table1") and not reevaluations & set(p.relative_to(ROOT / "docs/results").parts)]
    assert all(len(load_run(p).results) >= 11 for p in runs)
    assert len(runs) == EVIDENCE_RUNS == 12
    # issue 17's study: one results file per training run (and its probes), every milestone scored
    study = [p for p in (ROOT / "docs/evidence/runs").rglob("*.json") if not p.name.endswith(".probes.json")]
    assert all(p.with_suffix(".probes.json").exists() and len(load_run(p).results) >= 11 for p in study)
    assert len(study) == STUDY_RUNS


def test_untrained_models_are_models_not_a_run():
    """Randomly initialised torchvision models all have epoch 0: compare treats them as models (no init exclusion;
    unranked by default, ranked by H(Z3) when asked), and they get no noise flags against each other."""
    from sslmon.alarms import run_flags
    from sslmon.api import Options

    assert Options().resolve("models").exclude_init is False and Options().resolve("checkpoints").exclude_init is True
    std = {"entropy_z3": 0.5}
    run = _run([("squeezenet", 0, {**HEALTHY, "entropy_z3": 2.7}), ("resnet18", 0, {**HEALTHY, "entropy_z3": 3.1})],
               exclude_init=False)
    for r in run.results:
        r.metrics_std = dict(std)
    assert default_rank_by(run.results) == MODELS_DEFAULT
    assert recommend(run, MODELS_DEFAULT).name is None and run_flags(run.results) == [[], []]
    assert recommend(run, "entropy_z3").name == "squeezenet"  # 2.7 < 3.1
