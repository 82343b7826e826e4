"""Paper vs centred Z3 k-means (EvalConfig.z3_kmeans) on the same milestones: seed spread, r with lp_acc, regret.

Takes two folders of `sslmon score -f json` results, one per variant, holding the same file stems (one per
method) scored with the same evaluation seeds. For the metrics the variant changes (those of the C1/C2
clusters) it prints Markdown tables of:

- seed spread: the sample std over the evaluation seeds (``metrics_std``), averaged over the milestones, and
  that mean std as a percentage of the metric's range (of the seed-mean values) over the trained milestones;
- Pearson r with ``lp_acc`` and its 95 % interval, with and without the init milestone, and the regret (points)
  of the metric's pick, with the fraction of seeds whose own pick differs (``sslmon.meta.correlate``).

    .venv/bin/python scripts/z3_variant_study.py docs/results/digits docs/results/digits/centred \\
        > docs/results/digits/z3_variant.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from sslmon.io.runfile import load_run
from sslmon.meta.correlate import VARIANTS, NamedRun, correlate_run
from sslmon.metrics import METRICS
from sslmon.results import Run

AGAINST = "lp_acc"
CHANGED = ("ami_c1_c2", "silhouette_c1", "ami_c1_gt")  # the metrics computed from C1/C2
NAMES = {"simclr": "SimCLR", "moco": "MoCo-v2", "simsiam": "SimSiam"}


def seed_spread(run: Run, key: str) -> tuple[float, float]:
    """(mean over milestones of the std over seeds, that as % of the range of the seed means over trained milestones)."""
    stds = [r.metrics_std.get(key) for r in run.results]
    stds = [s for s in stds if s is not None]
    trained = [r.metrics[key] for r in run.results if r.epoch != 0 and r.metrics.get(key) is not None]
    mean_std = float(np.mean(stds)) if stds else float("nan")
    span = float(np.ptp(trained)) if trained else float("nan")
    return mean_std, 100.0 * mean_std / span if span > 0 else float("nan")


def lower_spread(a: Run, b: Run, key: str) -> tuple[int, int]:
    """(milestones where run a's seed std of ``key`` is below run b's, milestones compared), matched by epoch."""
    stds_b = {r.epoch: r.metrics_std.get(key) for r in b.results}
    pairs = [(r.metrics_std.get(key), stds_b.get(r.epoch)) for r in a.results]
    pairs = [(x, y) for x, y in pairs if x is not None and y is not None]
    return sum(x < y for x, y in pairs), len(pairs)


def r_cell(c) -> str:
    if c.pearson_r is None:
        return c.status
    cell = f"{c.pearson_r:+.2f} [{c.pearson_ci_low:+.2f}, {c.pearson_ci_high:+.2f}]"
    return f"**{cell}**" if c.significant else cell


def regret_cell(s) -> str:
    if s.regret is None:
        return s.status
    text = f"ep {s.pick_epoch}: {s.regret:.2f}"
    if s.seeds is not None:
        text += f" (p≠ {s.seeds.p_change:.2f})"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paper", type=Path, help="folder of results scored with --z3-kmeans paper")
    parser.add_argument("centred", type=Path, help="folder of results scored with --z3-kmeans centred")
    parser.add_argument("--methods", default="simclr,moco,simsiam", help="file stems, comma-separated")
    args = parser.parse_args()
    methods = args.methods.split(",")
    folders = {"paper": args.paper, "centred": args.centred}
    runs = {(v, m): load_run(folder / f"{m}.json") for v, folder in folders.items() for m in methods}
    for (v, m), run in runs.items():
        found = run.config.get("z3_kmeans", "paper")
        if found != v:
            raise SystemExit(f"{folders[v] / (m + '.json')}: scored with z3_kmeans={found!r}, expected {v!r}")
    corr = {key: correlate_run(NamedRun(m, str(folders[key[0]]), run), AGAINST) for key, run in runs.items()}

    print("### Seed spread: mean std over the evaluation seeds (% of the range over trained milestones)\n")
    print("| metric | variant | " + " | ".join(NAMES.get(m, m) for m in methods) + " |")
    print("|---|---|" + "---|" * len(methods))
    for key in CHANGED:
        for v in folders:
            cells = [seed_spread(runs[(v, m)], key) for m in methods]
            print(f"| {METRICS[key].symbol} | {v} | " + " | ".join(f"{s:.4f} ({p:.0f} %)" for s, p in cells) + " |")
        cells = [lower_spread(runs[("centred", m)], runs[("paper", m)], key) for m in methods]
        print(f"| {METRICS[key].symbol} | milestones where centred's std is lower | "
              + " | ".join(f"{lower} of {n}" for lower, n in cells) + " |")

    for variant in VARIANTS:
        label = "with" if variant == "with_init" else "without"
        print(f"\n### Pearson r with {AGAINST} [95 % interval] and regret of the pick (LP points), {label} init\n")
        print("| metric | variant | " + " | ".join(f"{NAMES.get(m, m)} r | {NAMES.get(m, m)} regret" for m in methods) + " |")
        print("|---|---|" + "---|---|" * len(methods))
        for key in CHANGED:
            for v in folders:
                cells = []
                for m in methods:
                    rc = corr[(v, m)]
                    cells += [r_cell(rc.correlations[key][variant]), regret_cell(rc.selection[key][variant])]
                print(f"| {METRICS[key].symbol} | {v} | " + " | ".join(cells) + " |")
        for v in folders:
            cells = []
            for m in methods:
                cells += ["", regret_cell(corr[(v, m)].selection["consensus"][variant])]
            print(f"| consensus (default set) | {v} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
