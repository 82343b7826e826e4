"""sslmon.api, the one door: Options validation and domain defaults, evaluate, score_model, score and compare with
their callbacks, each against an independent computation."""

from __future__ import annotations

from dataclasses import replace
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from sklearn.datasets import make_blobs
from torch import nn

from helpers import SAMPLE_NAMES, SAMPLES, rankme_by_hand
from sslmon.api import Options, compare, evaluate, score, score_model
from sslmon.errors import OptionsError, SslmonError
from sslmon.evaluation import EvalConfig, evaluate_embeddings
from sslmon.io.datasets import load_dataset
from sslmon.models.embed import preprocess
from sslmon.recommend import document
from sslmon.selection import DEFAULT_CONSENSUS

# --------------------------------------------------------------------------- Options


@pytest.mark.parametrize(("values", "param"), [
    ({"seeds": ()}, "seeds"),
    ({"seeds": (1, 1)}, "seeds"), ({"seeds": (-1,)}, "seeds"),
    ({"limit": 0}, "limit"), ({"train_limit": 0}, "train_limit"), ({"umap_epochs": 0}, "umap_epochs"),
    ({"batch_size": 0}, "batch_size"), ({"k": 1}, "k"), ({"bin_factor": 0.0}, "bin_factor"),
    ({"metrics": ("rankme", "bogus")}, "metrics"), ({"metrics": ()}, "metrics"), ({"rank_by": "nonsense"}, "rank_by"),
    ({"preset": "quick"}, "preset"), ({"preset": "fast", "umap_epochs": 30}, "preset"),
    ({"precision": "fp16"}, "precision"), ({"weights": "imagenet"}, "weights"), ({"executor": "dask"}, "executor"),
], ids=lambda v: "-".join(f"{k}={v[k]}" for k in v) if isinstance(v, dict) else v)
def test_options_errors_name_the_parameter(values, param):
    with pytest.raises(OptionsError) as info:
        Options(**values)
    assert info.value.param == param
    assert isinstance(info.value, SslmonError) and isinstance(info.value, ValueError)
    message = str(info.value)
    assert message.startswith(f"{param}: ") and "\n" not in message and "--" not in message  # speaks of parameters, not flags


def test_the_layout_preset_is_the_papers_unless_asked():
    """paper: umap-learn's own epochs (None in EvalConfig); fast: 100; an explicit umap_epochs is custom. Only a
    setting other than the paper's gets the note."""
    from sslmon.evaluation import layout_note

    cases = {Options(): (None, "paper"), Options(preset="fast"): (100, "fast"), Options(umap_epochs=100): (100, "fast"),
             Options(preset="fast", umap_epochs=100): (100, "fast"), Options(umap_epochs=40): (40, "custom")}
    for opts, (epochs, preset) in cases.items():
        config = opts.resolve("checkpoints").eval_config(10, "cpu")
        assert (config.umap_epochs, config.as_dict()["preset"]) == (epochs, preset)
        assert (layout_note(config.umap_epochs) is None) == (preset == "paper")


def test_options_from_mapping_ignores_foreign_keys_and_none():
    opts = Options.from_mapping({"limit": 50, "k": None, "format": "json", "seeds": [3, 4]}, umap_epochs=7)
    assert (opts.limit, opts.k, opts.seeds, opts.umap_epochs) == (50, None, (3, 4), 7)


def test_resolve_gives_the_domain_defaults():
    # a run's milestones: epoch order (the last recommended); different models and embedding files: not ranked
    for kind, rank_by in (("checkpoints", "epoch"), ("embeddings", "input")):  # SSL encoders and their embeddings
        opts = Options().resolve(kind)
        assert (opts.bin_factor, opts.batch_size, opts.rank_by, opts.train_limit) == (0.4, 256, rank_by, None)
    models = Options().resolve("models")  # supervised ImageNet models, at 224 px and more
    assert (models.bin_factor, models.batch_size, models.rank_by) == (0.8, 64, "input")
    assert Options(limit=500).resolve("checkpoints").train_limit == 500  # train_limit follows limit
    assert Options(limit=500, train_limit=100).resolve("checkpoints").train_limit == 100
    given = Options(bin_factor=0.6, batch_size=32, rank_by="l2_std").resolve("models")  # what is given stays
    assert (given.bin_factor, given.batch_size, given.rank_by) == (0.6, 32, "l2_std")
    assert Options().resolve("models").eval_config(3, "cpu").bin_factor == 0.8


def test_resolve_adds_the_metrics_rank_by_needs():
    assert Options().resolve("checkpoints").metrics is None  # None: every metric the data allows
    consensus = Options(metrics=("knn_acc", "l2_std"), rank_by="consensus").resolve("checkpoints").metrics
    assert consensus[:2] == ("knn_acc", "l2_std")  # asked for first, in the given order
    assert set(consensus) == {"l2_std", "knn_acc", "rankme", *DEFAULT_CONSENSUS} and len(consensus) == len(set(consensus))
    # epoch order needs no metric; the collapse alarm's l2_std and rankme are always added
    assert Options(metrics=("knn_acc",)).resolve("checkpoints").metrics == ("knn_acc", "l2_std", "rankme")
    assert Options(metrics=("rankme",), rank_by="alpha_req").resolve("models").metrics == ("rankme", "alpha_req", "l2_std")
    assert Options(metrics=("rankme",)).resolve("models").metrics == ("rankme", "l2_std")  # models: no ranking, no metric
    assert Options(metrics=("rankme",), rank_by="input").resolve("checkpoints").metrics == ("rankme", "l2_std")
    with pytest.raises(OptionsError, match="neither 'epoch', 'consensus', 'input' nor a metric"):
        Options(rank_by="inputs")


# --------------------------------------------------------------------------- arrays and models


@pytest.fixture(scope="module")
def labelled() -> tuple[np.ndarray, np.ndarray]:
    X, y = make_blobs(n_samples=240, n_features=10, centers=3, cluster_std=2.0, random_state=5)
    return X, y


def test_evaluate_equals_evaluate_embeddings(labelled):
    X, y = labelled
    cfg = EvalConfig(seeds=(0, 1), umap_epochs=20)
    wanted = ["rankme", "l2_std", "entropy_z3", "knn_acc", "lp_acc"]
    got = evaluate(X[:160], y[:160], config=cfg, metrics=wanted, train_embeddings=X[160:], train_labels=y[160:])
    ref = evaluate_embeddings(X[:160], y[:160], X[160:], y[160:], cfg, wanted)
    assert got.metrics == ref.metrics and got.errors == ref.errors
    assert got.metrics_std == ref.metrics_std and got.per_seed == ref.per_seed
    assert got.reference == ref.reference == "train arrays"
    np.testing.assert_array_equal(got.Z3, ref.Z3)
    unlabelled = evaluate(X, config=EvalConfig(k=3, seeds=(0,)), metrics=["rankme", "knn_acc"])
    assert unlabelled.metrics == evaluate_embeddings(X, config=EvalConfig(k=3, seeds=(0,)), metrics=["rankme", "knn_acc"]).metrics
    assert unlabelled.metrics["knn_acc"] is None


class TinyEncoder(nn.Module):
    """A conv, BatchNorm and dropout (so train and eval mode give different outputs) to a 6-d embedding."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(3, 6, 3), nn.BatchNorm2d(6), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.drop = nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.body(x))


def test_score_model_restores_train_mode_and_equals_evaluate_on_embeddings_by_hand():
    rng = np.random.default_rng(0)
    labels = np.arange(48) % 3
    images = torch.from_numpy((rng.integers(0, 90, (48, 1, 12, 12)) + 70 * labels[:, None, None, None]).astype(np.uint8))
    model = TinyEncoder().train()
    model.body[1].eval()  # mixed modes: each submodule's own flag must come back
    modes = [m.training for m in model.modules()]
    mean, std = (0.4, 0.4, 0.4), (0.3, 0.3, 0.3)
    cfg = EvalConfig(seeds=(0,))
    progress: list[tuple[str, int, int]] = []
    result = score_model(model, images, labels, config=cfg, metrics=["rankme", "l2_std", "silhouette_gt"], mean=mean,
                         std=std, batch_size=20, device="cpu", name="tiny", on_progress=lambda *a: progress.append(a))
    assert [m.training for m in model.modules()] == modes
    # the embeddings by hand: /255, grayscale to 3 channels, (x - mean) / std, eval mode, no gradients
    x = (images.float() / 255).expand(-1, 3, -1, -1)
    x = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    reference = TinyEncoder().eval()
    reference.load_state_dict(model.state_dict())
    with torch.no_grad():
        Z = reference(x).numpy()
    expected = evaluate(Z, labels, config=cfg, metrics=["rankme", "l2_std", "silhouette_gt"])
    assert result.metrics == pytest.approx(expected.metrics, rel=1e-5)
    assert result.metrics["rankme"] == pytest.approx(rankme_by_hand(Z), rel=1e-5)
    assert (result.name, result.n_samples, result.dim, result.k) == ("tiny", 48, 6, 3)
    assert progress == [("embedding tiny", 20, 48), ("embedding tiny", 40, 48), ("embedding tiny", 48, 48)]


# --------------------------------------------------------------------------- score and compare


def test_score_sample_checkpoints_in_epoch_order_with_a_failure_and_callbacks(tmp_path, cache_dir):
    folder = tmp_path / "run"
    folder.mkdir()
    for name in reversed(SAMPLE_NAMES):  # written newest first: the order must come from the epochs
        shutil.copy(SAMPLES / name, folder / name)
    (folder / "broken.pt").write_bytes(b"\x80\x02 not a checkpoint")
    lines: list[str] = []
    progress: list[tuple[str, int, int]] = []
    records: list[str] = []
    options = Options(limit=300, seeds=(0,), umap_epochs=20, metrics=("rankme", "l2_std"), rank_by="consensus")
    run = score([folder], options=options, log=lines.append, on_progress=lambda *a: progress.append(a),
                on_result=lambda run, record: records.append(getattr(record, "name", None) or record.path))
    assert [r.epoch for r in run.results] == [0, 1, 2, 3, 4, 5]
    assert [r.name for r in run.results] == SAMPLE_NAMES
    (failure,) = run.failures
    assert failure.path == str(folder / "broken.pt")
    assert failure.error.startswith(f"{folder / 'broken.pt'}: ") and "\n" not in failure.error
    assert [line for line in lines if line.startswith("error:")] == [f"error: {failure.error}"]
    for r in run.results:  # the consensus that ranks the run needs its metrics: added to the two asked for
        assert set(r.metrics) == {"rankme", "l2_std", *DEFAULT_CONSENSUS} and r.n_samples == 300
    assert run.config["n_samples"] == 300 and run.config["rank_by"] == "consensus" and run.config["seeds"] == [0]
    assert sorted(records) == sorted([*SAMPLE_NAMES, str(folder / "broken.pt")])
    encoders = [(done, total) for task, done, total in progress if task == "encoders"]
    assert encoders == [(i, 7) for i in range(1, 8)]
    for name in SAMPLE_NAMES:  # each checkpoint's embedding progress reaches the 300 images
        steps = [(done, total) for task, done, total in progress if task == f"embedding {name}"]
        assert steps[-1] == (300, 300) and [d for d, _ in steps] == sorted(d for d, _ in steps)


def test_score_rejects_mixed_inputs_and_an_empty_folder(tmp_path):
    (tmp_path / "z.npy").write_bytes(b"")
    with pytest.raises(OptionsError) as info:
        score([tmp_path / "z.npy", SAMPLES / SAMPLE_NAMES[0]])
    assert info.value.param == "paths"
    (tmp_path / "empty").mkdir()
    with pytest.raises(OptionsError, match="no checkpoint files") as info:
        score([tmp_path / "empty"])
    assert info.value.param == "paths"


@pytest.mark.slow  # a full resnet18 forward over 100 images at 224 px
def test_compare_random_resnet18_equals_its_embeddings_by_hand(cache_dir):
    options = Options(weights="none", limit=100, metrics=("rankme",), seed=0)
    run = compare(["resnet18"], options=options)
    (result,) = run.results
    assert (result.name, result.dim, result.n_samples) == ("resnet18", 512, 100)
    assert run.config["entropy_bin_factor"] == 0.8 and run.config["rank_by"] == "input"  # the models defaults
    # by hand: the same seeded random init, head removed, ImageNet normalisation at 224 px
    torch.manual_seed(0)
    model = torchvision.models.resnet18()
    model.fc = nn.Identity()
    data = load_dataset(None, limit=100, seed=0)
    x = preprocess(data.images, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 224)
    with torch.no_grad():
        Z = model.eval()(x).numpy()
    assert result.metrics["rankme"] == pytest.approx(rankme_by_hand(Z), rel=1e-4)


def test_compare_unknown_name_is_an_options_error():
    with pytest.raises(OptionsError, match="did you mean resnet18") as info:
        compare(["resnet19"], options=Options(weights="none"))
    assert info.value.param == "names"


def test_score_embedding_files(tmp_path: Path, cache_dir):
    rng = np.random.default_rng(1)
    Z = rng.normal(size=(50, 5))
    np.savez(tmp_path / "a.npz", embeddings=Z, labels=np.arange(50) % 2)
    (tmp_path / "bad.npz").write_bytes(b"junk")
    run = score([tmp_path / "a.npz", tmp_path / "bad.npz"], options=Options(metrics=("rankme",), rank_by="rankme"))
    (result,) = run.results
    assert result.name == "a" and result.k == 2 and result.metrics["rankme"] == pytest.approx(rankme_by_hand(Z), rel=1e-9)
    assert [f.path for f in run.failures] == [str(tmp_path / "bad.npz")]


def test_embedding_files_go_through_the_scorer_cache_and_executor(tmp_path: Path, cache_dir, monkeypatch):
    import sys

    from sslmon.executors import ExecutorError

    rng = np.random.default_rng(2)
    Z, y = rng.normal(size=(60, 5)), np.arange(60) % 3
    path = tmp_path / "e.npz"
    np.savez(path, embeddings=Z, labels=y)
    opts = Options(metrics=("rankme",), rank_by="rankme")
    said: list[str] = []
    first = score([path], options=opts, log=said.append)
    assert not [line for line in said if line.startswith("cached:")]
    said.clear()
    again = score([path], options=opts, log=said.append)  # the same content and settings: from the cache
    assert [line for line in said if line.startswith("cached:")] == [
        "cached: e (same content, images and settings; `cache=False` recomputes)"]
    assert again.results[0].metrics["rankme"] == first.results[0].metrics["rankme"] == pytest.approx(rankme_by_hand(Z), rel=1e-9)
    assert (again.results[0].name, again.results[0].path) == ("e", str(path))
    said.clear()
    score([path], options=replace(opts, cache=False), log=said.append)
    assert not [line for line in said if line.startswith("cached:")]
    Z2 = rng.normal(size=(60, 5))
    np.savez(path, embeddings=Z2, labels=y)  # new content under the same name: scored again
    said.clear()
    new = score([path], options=opts, log=said.append)
    assert not [line for line in said if line.startswith("cached:")]
    assert new.results[0].metrics["rankme"] == pytest.approx(rankme_by_hand(Z2), rel=1e-9)
    monkeypatch.setitem(sys.modules, "ray", None)  # ray not installed: the executor asked for is built, and refused
    with pytest.raises(ExecutorError, match="sslmon\\[ray\\]"):
        score([path], options=replace(opts, executor="ray"))


def test_save_z3_writes_the_z3_file_of_embedding_files(tmp_path: Path, cache_dir):
    from sslmon.io.z3file import read_z3

    rng = np.random.default_rng(3)
    Z, y = rng.normal(size=(60, 5)), np.arange(60) % 3
    np.savez(tmp_path / "e.npz", embeddings=Z, labels=y)
    opts = Options(metrics=("entropy_z3",), rank_by="entropy_z3", preset="fast", seeds=(0,), save_z3=tmp_path / "z3")
    said: list[str] = []
    (result,) = score([tmp_path / "e.npz"], options=opts, log=said.append).results
    assert not [line for line in said if line.startswith("note:") and "save_z3" in line]  # no "writes nothing" note
    saved = read_z3(tmp_path / "z3" / "e.z3.npz")
    # the layout of the same evaluation, computed directly from the array
    ev = evaluate(Z, y, config=opts.resolve("embeddings").eval_config(3, "cpu"), metrics=["entropy_z3"])
    np.testing.assert_allclose(saved.z3, ev.Z3, rtol=1e-6)
    np.testing.assert_array_equal(saved.labels, y)
    assert saved.epoch is None  # an embedding file has no epoch
    assert result.metrics["entropy_z3"] == pytest.approx(ev.metrics["entropy_z3"], rel=1e-9)


@pytest.mark.slow
def test_embedding_files_on_ray_give_the_local_results(ray_session, tmp_path: Path):
    rng = np.random.default_rng(4)
    paths = []
    for i in range(2):
        paths.append(tmp_path / f"e{i}.npz")
        np.savez(paths[-1], embeddings=rng.normal(size=(60, 4)), labels=np.arange(60) % 2)
    (tmp_path / "bad.npz").write_bytes(b"junk")
    opts = Options(metrics=("rankme", "knn_acc"), rank_by="rankme", cache=False)
    local = score([*paths, tmp_path / "bad.npz"], options=opts)
    remote = score([*paths, tmp_path / "bad.npz"], options=replace(opts, executor="ray"))

    def comparable(run):
        doc = document(run, "rankme")
        for record in doc["results"]:
            record.pop("timings")
        return doc

    assert [r.name for r in remote.results] == ["e0", "e1"] and [f.path for f in remote.failures] == [str(tmp_path / "bad.npz")]
    assert comparable(remote) == comparable(local)
