"""`sslmon select`, the recommendation and alarms end to end: a collapsed (constant-output) checkpoint is flagged,
never recommended or selected, and gates on it; gates that judge nothing exit 2; `watch --exit-on collapse` exits 3."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import SAMPLES

FAST = ["--limit", "120", "--seeds", "1", "--metrics", "l2_std,rankme", "-q"]


def constant_checkpoint(source: Path, target: Path, epoch: int) -> Path:
    """``source`` with the last batch-norm's scale set to 0: every image then gives the same embedding (its bias)."""
    ck = torch.load(source, weights_only=True)
    ck["state_dict"]["features.10.weight"].zero_()
    ck["epoch"] = epoch
    torch.save(ck, target)
    return target


@pytest.fixture()
def run_with_collapse(tmp_path: Path) -> Path:
    """epoch_0000.pt and epoch_0001.pt of the samples, and a constant-output epoch_0002.pt."""
    folder = tmp_path / "run"
    folder.mkdir()
    for e in (0, 1):
        shutil.copy(SAMPLES / f"epoch_{e:04d}.pt", folder / f"epoch_{e:04d}.pt")
    constant_checkpoint(SAMPLES / "epoch_0005.pt", folder / "epoch_0002.pt", 2)
    return folder


def test_a_constant_encoder_is_flagged_never_recommended_and_gated(cache_dir, cli, run_with_collapse):
    code, out, err = cli("score", str(run_with_collapse), *FAST, "-f", "json")
    assert code == 0, err
    doc = json.loads(out)
    by_name = {r["name"]: r for r in doc["results"]}
    collapsed = by_name["epoch_0002.pt"]
    assert collapsed["spread"] < 1e-4 and [f["code"] for f in collapsed["flags"]] == ["collapse"]
    assert not collapsed["recommended"] and collapsed["rank"] == 1  # newest first, but passed over
    assert by_name["epoch_0001.pt"]["recommended"] and doc["recommendation"]["name"] == "epoch_0001.pt"
    assert doc["recommendation"]["excluded"][0]["name"] == "epoch_0002.pt"
    # the reference: Gaussian noise of the same n x d, its RankMe computed here by hand (seed 0, float32)
    (noise,) = doc["reference_values"]["noise"]
    Z = np.random.default_rng(0).standard_normal((noise["n"], noise["d"])).astype(np.float32)
    s = np.linalg.svd(Z.astype(np.float64), compute_uv=False)
    p = s / s.sum() + 1e-7
    assert noise["metrics"]["rankme"] == pytest.approx(math.exp(-(p * np.log(p)).sum()), rel=1e-4)
    assert doc["reference_values"]["init"]["name"] == "epoch_0000.pt"
    code, _, err = cli("score", str(run_with_collapse), *FAST, "--no-reference", "--fail-if", "collapse")
    assert code == 1 and "fail-if: epoch_0002.pt: flagged collapse" in err  # judges the latest milestone
    code, out, err = cli("score", str(run_with_collapse), *FAST, "--no-reference")
    assert code == 0 and "recommended: epoch_0001.pt, the latest milestone not flagged collapse" in out
    assert "collapse" in out  # the alarms column


def test_select_prints_only_the_path(cache_dir, cli, run_with_collapse):
    code, out, err = cli("select", str(run_with_collapse), *FAST, "--no-reference")
    assert code == 0, err
    assert out == f"{run_with_collapse / 'epoch_0001.pt'}\n"
    code, out, _ = cli("select", str(run_with_collapse), *FAST, "--no-reference", "-f", "json")
    doc = json.loads(out)
    assert doc["name"] == "epoch_0001.pt" and doc["rule"] == "last milestone"
    assert doc["excluded"][0]["name"] == "epoch_0002.pt" and doc["candidates"][0]["flags"] == []
    (run_with_collapse / "epoch_0003.pt").write_bytes(b"not a checkpoint")  # the newest file cannot be read
    code, out, err = cli("select", str(run_with_collapse), *FAST, "--no-reference")
    assert code == 2 and out == f"{run_with_collapse / 'epoch_0001.pt'}\n" and "error:" in err and "epoch_0003.pt" in err


def test_select_among_runs_chooses_only_by_an_asked_metric(cache_dir, cli, tmp_path):
    """Issue 17: no label-free rule beat a random pick among runs, so without --rank-by nothing is chosen (the
    candidates are listed, one line says why, exit 2); --rank-by entropy_z3 chooses the lowest H(Z3)."""
    runs = []
    for name, epochs in (("a", (0, 1)), ("b", (0, 5))):
        runs.append(tmp_path / name)
        runs[-1].mkdir()
        for e in epochs:
            shutil.copy(SAMPLES / f"epoch_{e:04d}.pt", runs[-1] / f"epoch_{e:04d}.pt")
    code, out, err = cli("select", *map(str, runs), *FAST, "--no-reference", "--umap-epochs", "10")
    assert code == 2 and out == "" and err.strip().splitlines() == [
        "no choice among 2 runs: no label-free ranking beat a random pick among training runs or architectures in "
        "sslmon's study; --rank-by KEY chooses by a metric"]
    code, out, err = cli("select", *map(str, runs), *FAST, "--no-reference", "--umap-epochs", "10", "-f", "json")
    assert code == 2 and "no choice among 2 runs" in err
    doc = json.loads(out)
    assert (doc["path"], doc["name"], doc["run"]) == (None, None, None) and "docs/evidence/README.md" in doc["evidence"]
    assert [(c["run"], c["name"]) for c in doc["candidates"]] == [(str(runs[0]), "epoch_0001.pt"), (str(runs[1]), "epoch_0005.pt")]
    assert all("value" not in c for c in doc["candidates"])
    code, out, err = cli("select", *map(str, runs), *FAST, "--no-reference", "--umap-epochs", "10", "--rank-by",
                         "entropy_z3", "-f", "json")
    assert code == 0, err
    doc = json.loads(out)
    values = {c["run"]: c["value"] for c in doc["candidates"]}
    assert values[str(runs[0])] != values[str(runs[1])]
    best = min(values, key=values.get)  # lower H(Z3) is better
    assert doc["run"] == best and doc["path"] == str(Path(best) / doc["name"]) and "as asked" in doc["note"]
    assert "as asked (--rank-by entropy_z3)" in doc["evidence"]


def test_nothing_to_choose_or_judge_exits_2_with_one_line(cache_dir, cli, tmp_path):
    only_init = tmp_path / "init"
    only_init.mkdir()
    shutil.copy(SAMPLES / "epoch_0000.pt", only_init / "epoch_0000.pt")
    code, out, err = cli("select", str(only_init), *FAST, "--no-reference")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "nothing to select" in err
    code, _, err = cli("score", str(only_init), *FAST, "--no-reference", "--fail-if", "rankme<1000")
    assert code == 2 and "error: --fail-if judges nothing: the only result is the untrained" in err
    np.save(tmp_path / "z.npy", np.random.default_rng(0).normal(size=(80, 6)).astype(np.float32))  # no labels
    code, _, err = cli("score", str(tmp_path / "z.npy"), "--k", "2", *FAST, "--no-reference", "--fail-if", "knn_acc<0.5")
    assert code == 2 and "knn_acc is undefined on this data" in err


def test_watch_prints_the_alarm_and_exits_3_on_collapse(cache_dir, cli, run_with_collapse):
    code, out, err = cli("watch", str(run_with_collapse), *FAST[:-1], "--no-reference", "--poll", "0.05",
                         "--until-idle", "30", "--exit-on", "collapse")
    assert code == 3, err
    assert "alarm: epoch_0002.pt: collapse: every embedding is the same vector" in err
    assert "exit-on: alarm: epoch_0002.pt: collapse" in err


def test_select_scores_only_the_newest_milestones_it_needs(cache_dir, cli, tmp_path):
    code, out, err = cli("select", str(SAMPLES), *FAST, "--no-reference", "-f", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["path"] == str(SAMPLES / "epoch_0005.pt")
    assert doc["candidates"][0]["scored"] == "5 of 6 milestones: the first and the newest 4"
    code, out, _ = cli("select", str(SAMPLES), *FAST, "--no-reference")
    assert code == 0 and out == f"{SAMPLES / 'epoch_0005.pt'}\n"  # the done-when of issue 19
    run = tmp_path / "run"  # epochs 0-5 healthy, 6-9 collapsed: the first window holds no candidate
    run.mkdir()
    for e in range(6):
        shutil.copy(SAMPLES / f"epoch_{e:04d}.pt", run / f"epoch_{e:04d}.pt")
    for e in range(6, 10):
        constant_checkpoint(SAMPLES / "epoch_0005.pt", run / f"epoch_{e:04d}.pt", e)
    code, out, err = cli("select", str(run), *FAST, "--no-reference", "-f", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["name"] == "epoch_0005.pt" and doc["candidates"][0]["scored"] == "9 of 10 milestones: the first and the newest 8"
    assert sorted(e["name"] for e in doc["excluded"]) == [f"epoch_{e:04d}.pt" for e in range(6, 10)]


def test_score_on_the_sample_checkpoints_recommends_the_last_with_its_evidence(cache_dir, cli):
    code, out, err = cli("score", str(SAMPLES), *FAST, "--no-reference")
    assert code == 0, err
    assert ("recommended: epoch_0005.pt, the last milestone; no label-free ranking beat it on average over the 12 "
            "training runs of docs/results.md") in out
    rows = [line.split("│")[1:4] for line in out.splitlines() if line.startswith("│")]
    assert [name.strip() for _, name, _ in rows] == [f"epoch_{e:04d}.pt" for e in (5, 4, 3, 2, 1, 0)]  # newest first
    assert rows[0][0].strip() == "1✓" and rows[-1][0].strip() == "—"  # the init milestone is not ranked


def test_select_among_embedding_files_each_file_is_a_run(cli, tmp_path):
    """Each embedding file is a run of one input (its candidate); among them only an asked metric chooses: RankMe,
    higher is better, computed here by hand (exp of the entropy of the normalised singular values)."""
    rng = np.random.default_rng(0)
    files = {"flat": rng.normal(size=(80, 1)) @ rng.normal(size=(1, 6)) + 0.1 * rng.normal(size=(80, 6)),
             "round": rng.normal(size=(80, 6))}
    for name, z in files.items():
        np.save(tmp_path / f"{name}.npy", z.astype(np.float32))
    args = ["select", *(str(tmp_path / f"{n}.npy") for n in files), "--k", "2", "--seeds", "1",
            "--metrics", "rankme,l2_std", "--no-reference", "-q"]
    code, out, err = cli(*args, "-f", "json")
    assert code == 2 and "no choice among 2 runs" in err
    assert [c["name"] for c in json.loads(out)["candidates"]] == list(files)

    def rankme(z: np.ndarray) -> float:
        s = np.linalg.svd(z.astype(np.float64), compute_uv=False)
        p = s / s.sum() + 1e-7
        return float(np.exp(-(p * np.log(p)).sum()))

    code, out, err = cli(*args, "--rank-by", "rankme")
    assert code == 0, err
    assert out == f"{tmp_path / (max(files, key=lambda n: rankme(files[n])) + '.npy')}\n" == f"{tmp_path / 'round.npy'}\n"
