"""The regret study of docs/selection.md: which milestone each metric would pick, and at what cost.

Reads results JSONs of `sslmon score` (one folder per evaluation seed, one file per method), judges
every metric, several consensus sets and the last-milestone baseline by `lp_acc` with the functions
of `sslmon.meta.correlate` / `sslmon.selection`, and prints Markdown.

    .venv/bin/python scripts/selection_study.py docs/results docs/results/seed1 docs/results/seed2 \\
        --methods simclr,moco,simsiam > /tmp/study.md
    .venv/bin/python scripts/selection_study.py docs/selection/samples_seed0 docs/selection/samples_seed1 \\
        docs/selection/samples_seed2 --methods sample_checkpoints

Seeds of one method are also merged into one run (mean values, ``per_seed`` lists, matched by epoch)
to measure how often the pick changes with the evaluation seed.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np

from sslmon import selection as sel
from sslmon.meta.correlate import BASELINE, CONSENSUS, select_run
from sslmon.metrics import LABEL_FREE, METRICS, MetricSpec
from sslmon.results import Result, Run
from sslmon.io.runfile import load_run
from sslmon.selection import DEFAULT_CONSENSUS

AGAINST = "lp_acc"
CONSENSUS_SETS = {  # declared before the study was run
    "all label-free": ["ami_c1_c2", "silhouette_c1", "entropy_z3", "rankme", "alpha_req", "l2_std"],
    "paper (AMI C1;C2, S1, H)": ["ami_c1_c2", "silhouette_c1", "entropy_z3"],
    "spectral (RankMe, alpha-ReQ, l2_std)": ["rankme", "alpha_req", "l2_std"],
    "RankMe + AMI(C1;C2)": ["rankme", "ami_c1_c2"],
}
ALPHA_DIRECTIONS = {
    "closest to 1 (the alpha-ReQ paper)": replace(METRICS["alpha_req"], better="target", target=1.0),
    "higher is better": replace(METRICS["alpha_req"], better="higher"),
    "lower is better": replace(METRICS["alpha_req"], better="lower"),
}
VARIANTS = ("with_init", "without_init")
DEFAULT_ROW = next(f"consensus: {label}" for label, members in CONSENSUS_SETS.items() if tuple(members) == DEFAULT_CONSENSUS)


def merge_seeds(runs: list[Run]) -> Run:
    """One run whose results hold the mean over the seeds' values and the seeds' values in ``per_seed``."""
    by_epoch = [{r.epoch: r.metrics for r in run.results} for run in runs]
    epochs = sorted(set.intersection(*(set(b) for b in by_epoch)))
    results = []
    for e in epochs:
        seeds = [b[e] for b in by_epoch]
        keys = set.intersection(*(set(s) for s in seeds))
        mean = {k: float(np.mean([s[k] for s in seeds])) if all(s[k] is not None for s in seeds) else None for k in keys}
        results.append(Result(f"epoch {e}", None, mean, epoch=e, per_seed=seeds))
    return Run({}, results)


def study_rows(run: Run) -> dict[str, dict[str, sel.Selection]]:
    """Every metric's, every consensus set's and the baseline's selection in one run."""
    rows = select_run(run, AGAINST, [])
    rows.pop(CONSENSUS)
    for label, members in CONSENSUS_SETS.items():
        rows[f"consensus: {label}"] = select_run(run, AGAINST, members)[CONSENSUS]
    return rows


def alpha_sets() -> dict[str, list[tuple[str, MetricSpec]]]:
    """alpha-ReQ alone and inside two consensus sets, under each candidate direction."""
    out = {}
    for label, spec in ALPHA_DIRECTIONS.items():
        out[f"alpha_req, {label}"] = [("alpha_req", spec)]
    for set_label in ("all label-free", "spectral (RankMe, alpha-ReQ, l2_std)"):
        for label, spec in ALPHA_DIRECTIONS.items():
            members = [(k, spec if k == "alpha_req" else METRICS[k]) for k in CONSENSUS_SETS[set_label]]
            out[f"consensus: {set_label}, alpha {label}"] = members
    return out


def spec_rows(run: Run, sets: dict[str, list[tuple[str, MetricSpec]]]) -> dict[str, dict[str, sel.Selection]]:
    """The selection of the mean rank of each set of (metric, direction) pairs (one pair: the metric's own pick)."""
    ref_spec, reference = METRICS[AGAINST], run.values(AGAINST)
    out: dict[str, dict[str, sel.Selection]] = {}
    for label, members in sets.items():
        out[label] = {}
        for variant in VARIANTS:
            keep = [variant == "with_init" or e != 0 for e in run.epochs()]

            def sub(xs: list) -> list:
                return [x for x, k in zip(xs, keep) if k]

            keys = sel.consensus_keys([sel.metric_keys(sub(run.values(k)), spec) for k, spec in members])
            out[label][variant] = sel.select(keys, sel.metric_keys(sub(reference), ref_spec), sub(reference),
                                             sub(run.epochs()), sub([r.name for r in run.results]))
    out[BASELINE] = select_run(run, AGAINST, [])[BASELINE]
    return out


def fmt(x: float | None, digits: int = 2) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def summary_table(per_run: list[dict[str, dict[str, sel.Selection]]]) -> None:
    """Mean/worst regret, pick rank, tau, wins over the baseline and init picks over the runs."""
    n_runs = len(per_run)
    print(f"| picked by | mean regret w/ init | mean regret w/o init | worst w/o init | mean rank w/o init "
          f"| mean τ w/o init | beats last (of {n_runs}, w/o init) | picks init (of {n_runs}) |")
    print("|---|---|---|---|---|---|---|---|")
    for row in per_run[0]:
        cells = []
        for variant in VARIANTS:
            regrets = [r[row][variant].regret for r in per_run if r[row][variant].regret is not None]
            cells.append(fmt(float(np.mean(regrets))) if regrets else "—")
        wo = [r[row]["without_init"] for r in per_run if r[row]["without_init"].status == sel.OK]
        taus = [s.kendall_tau for s in wo if s.kendall_tau is not None]
        wins = sum(r[row]["without_init"].regret < r[BASELINE]["without_init"].regret for r in per_run
                   if r[row]["without_init"].status == sel.OK and r[BASELINE]["without_init"].status == sel.OK)
        init_picks = sum(r[row]["with_init"].pick_epoch == 0 for r in per_run)
        label = row if row.startswith("consensus") or row == BASELINE else f"`{row}`"
        print(f"| {label} | {cells[0]} | {cells[1]} | {fmt(max((s.regret for s in wo), default=None))} "
              f"| {fmt(float(np.mean([s.pick_rank for s in wo])) if wo else None, 1)} "
              f"| {fmt(float(np.mean(taus)) if taus else None)} | {wins if row != BASELINE else '—'} | {init_picks} |")


def per_method_table(merged: dict[str, dict[str, dict[str, sel.Selection]]], variant: str) -> None:
    """Per method (seeds merged): the mean-values pick, its regret, and the seeds' pick changes."""
    names = list(merged)
    print("| picked by | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for row in merged[names[0]]:
        cells = []
        for name in names:
            s = merged[name][row][variant]
            if s.status != sel.OK:
                cells.append(s.status)
                continue
            text = f"ep {s.pick_epoch}: {s.regret:.2f}"
            if s.seeds is not None:
                text += (f"; seeds pick {'/'.join(str(e) for e in s.seeds.picked_epochs)}, "
                         f"p≠ {s.seeds.p_change:.2f}, regret {s.seeds.regret_mean:.2f}")
            cells.append(text)
        print(f"| {row} | " + " | ".join(cells) + " |")


def paired_table(per_run: list[dict[str, dict[str, sel.Selection]]], row: str) -> None:
    """In how many runs ``row`` has a lower / equal / higher regret than each label-free metric."""
    print(f"| against | {row} better / equal / worse, w/ init | w/o init |")
    print("|---|---|---|")
    for other in [k for k in per_run[0] if k in LABEL_FREE] + [BASELINE]:
        cells = []
        for variant in VARIANTS:
            pairs = [(r[row][variant].regret, r[other][variant].regret) for r in per_run
                     if r[row][variant].regret is not None and r[other][variant].regret is not None]
            cells.append(f"{sum(a < b for a, b in pairs)} / {sum(a == b for a, b in pairs)} / {sum(a > b for a, b in pairs)}")
        print(f"| `{other}` | {cells[0]} | {cells[1]} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, help="one folder of results JSONs per evaluation seed")
    parser.add_argument("--methods", default="simclr,moco,simsiam", help="file stems, comma-separated")
    args = parser.parse_args()
    methods = args.methods.split(",")
    runs = {m: [load_run(f / f"{m}.json") for f in args.folders] for m in methods}
    single = [study_rows(run) for m in methods for run in runs[m]]
    merged = {m: study_rows(merge_seeds(runs[m])) for m in methods}
    alpha_single = [spec_rows(run, alpha_sets()) for m in methods for run in runs[m]]
    best_is_init = sum(max(run.results, key=lambda r: r.metrics[AGAINST]).epoch == 0 for m in methods for run in runs[m])
    print(f"Runs: {len(single)} ({len(methods)} method(s) x {len(args.folders)} evaluation seed(s)); "
          f"the init milestone has the best {AGAINST} in {best_is_init} of them.\n")
    print("### Every metric, consensus and the baseline, over the single-seed runs\n")
    summary_table(single)
    for variant, label in (("with_init", "with"), ("without_init", "without")):
        print(f"\n### Per method, seeds merged (mean values; seed picks from `per_seed`), {label} init\n")
        per_method_table(merged, variant)
    print("\n### alpha-ReQ: which direction? (alone and inside two consensus sets)\n")
    summary_table(alpha_single)
    print(f"\n### Paired: the consensus of {DEFAULT_CONSENSUS} against each label-free metric, run by run\n")
    paired_table(single, DEFAULT_ROW)


if __name__ == "__main__":
    main()
