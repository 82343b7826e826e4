"""Every table of issue 17's study, rebuilt from docs/evidence/runs/ (the statistics of docs/evidence/protocol.md).

Reads each run's sslmon results file (``NAME.json``, through ``sslmon.load_run``) and its label-based references
(``NAME.probes.json``, from scripts/evidence_study.py), and prints Markdown: Q0 (milestone of one run), Q1 (run
among runs: each method, all convnet-small runs, the architectures = Q4), Q2 (collapse alarms) and Q3 (plateau
stops), each rule next to the baselines, on test halves A and B, with 95 % bootstrap intervals over runs.

Usage: python scripts/evidence_tables.py [docs/evidence/runs/d1] > docs/evidence/tables_d1.md
"""

from __future__ import annotations

from dataclasses import dataclass, field
import json
import math
from pathlib import Path
import sys
from typing import Callable

import numpy as np
from scipy.stats import kendalltau

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from evidence_study import DATASETS  # noqa: E402  (each data set's grid, in the protocol's order)

from sslmon.alarms import PLATEAU_WINDOW, collapse_flag, plateau_flag  # noqa: E402
from sslmon.io.runfile import load_run  # noqa: E402
from sslmon.results import Result  # noqa: E402
from sslmon.metrics import METRICS  # noqa: E402

HALVES = ("a", "b")
BOOT, BOOT_SEED = 2000, 0
# The protocol's single-metric rules (direction from the registry at the protocol's commit) and consensuses.
SINGLE = {"ami_c1_c2": 1, "silhouette_c1": 1, "entropy_z3": -1, "rankme": 1, "alpha_req": 0, "l2_std": 1, "nesum": 1,
          "stable_rank": 1, "self_clustering": -1, "coherence": -1, "cluster_learnability": 1, "dse": None}
CONSENSUS = {"C6": ("ami_c1_c2", "silhouette_c1", "entropy_z3", "rankme", "alpha_req", "l2_std"),
             "C4": ("entropy_z3", "l2_std", "nesum", "coherence"), "C3": ("entropy_z3", "rankme", "l2_std")}
TRIVIAL_MOCO_QUEUE = 4096


@dataclass
class Milestone:
    epoch: int
    metrics: dict[str, float | None]
    std: dict[str, float | None]
    n: int
    d: int
    lp: float  # sslmon's probe on the whole test split (the collapse ground truth)
    probe: dict[str, float]  # lp_acc_a/b, lp10_acc_a/b, train_loss, heldout_loss
    result: Result | None = None  # sslmon's record (for the shipped flags)


@dataclass
class RunData:
    name: str
    index: int  # position in the protocol's grid
    method: str
    args: list[str]
    milestones: list[Milestone] = field(default_factory=list)

    @property
    def last(self) -> Milestone:
        return self.milestones[-1]

    @property
    def batch(self) -> int:
        return int(self.args[self.args.index("--batch-size") + 1]) if "--batch-size" in self.args else 64


def load(folder: Path) -> list[RunData]:
    runs = []
    for index, (name, (method, args)) in enumerate(DATASETS[folder.name][0].items()):
        results, probes = folder / f"{name}.json", folder / f"{name}.probes.json"
        if not (results.exists() and probes.exists()):
            continue
        by_epoch = {m["epoch"]: m for m in json.loads(probes.read_text())["milestones"]}
        run = RunData(name, index, method, args)
        for r in sorted(load_run(results).results, key=lambda r: r.epoch):
            run.milestones.append(Milestone(r.epoch, r.metrics, r.metrics_std, r.n_samples, r.dim,
                                            r.metrics.get("lp_acc"), by_epoch[r.epoch], r))
        runs.append(run)
    return runs


# --------------------------------------------------------------------------- rules: a score per candidate, higher better


def metric_score(name: str, direction: int | None) -> Callable[[Milestone], float | None]:
    spec = METRICS.get(name)
    if direction is None:  # as registered
        direction = 0 if spec.target is not None else (1 if spec.better == "higher" else -1)
    target = spec.target if spec.target is not None else 1.0

    def score(m: Milestone) -> float | None:
        v = m.metrics.get(name)
        if v is None or not math.isfinite(v):
            return None
        return -abs(v - target) if direction == 0 else direction * v

    return score


def ranks(values: list[float | None]) -> np.ndarray:
    """Rank 1 = best (highest); ties share the mean rank; missing values rank last."""
    x = np.array([-np.inf if v is None else v for v in values], dtype=float)
    order = (-x).argsort(kind="stable")
    r = np.empty(len(x))
    r[order] = np.arange(1, len(x) + 1)
    for v in np.unique(x):
        r[x == v] = r[x == v].mean()
    return r


def rules() -> dict[str, Callable[[list[Milestone]], np.ndarray]]:
    """Each rule maps candidates to scores (higher = pick)."""
    out: dict[str, Callable[[list[Milestone]], np.ndarray]] = {}
    for name, direction in SINGLE.items():
        f = metric_score(name, direction)
        out[name] = lambda c, f=f: np.array([-np.inf if f(m) is None else f(m) for m in c])
    out["twonn_id (higher)"] = lambda c: np.array([m.metrics.get("twonn_id") or -np.inf for m in c], dtype=float)
    out["twonn_id (lower)"] = lambda c: np.array([-(m.metrics.get("twonn_id") or np.inf) for m in c], dtype=float)
    for cname, members in CONSENSUS.items():
        fs = [metric_score(m, SINGLE[m]) for m in members]
        out[cname] = lambda c, fs=fs: -np.mean([ranks([f(m) for m in c]) for f in fs], axis=0)
    for loss in ("heldout_loss", "train_loss"):
        out[f"{loss} (baseline)"] = lambda c, loss=loss: np.array([-c_.probe.get(loss, np.inf) for c_ in c], dtype=float)
    return out


def pick(scores: np.ndarray) -> int:
    """The best candidate; ties go to the later one (the later milestone, the later run in grid order)."""
    best = np.flatnonzero(scores == scores.max())
    return int(best[-1])


# --------------------------------------------------------------------------- statistics


def boot_mean(values: np.ndarray, rng: np.random.Generator) -> tuple[float, float, float]:
    """Mean and 95 % percentile bootstrap interval over the first axis (runs)."""
    idx = rng.integers(0, len(values), (BOOT, len(values)))
    means = values[idx].mean(axis=1)
    return float(values.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def fmt(mean: float, lo: float, hi: float) -> str:
    return f"{mean:.2f} [{lo:.2f}, {hi:.2f}]"


def acc(m: Milestone, half: str, key: str = "lp_acc") -> float:
    return 100 * m.probe[f"{key}_{half}"]


def other(half: str) -> str:
    return "b" if half == "a" else "a"


# --------------------------------------------------------------------------- Q0: milestone of one run


def q0(runs: list[RunData]) -> str:
    rng = np.random.default_rng(BOOT_SEED)
    table = {name: {h: [] for h in HALVES} for name in [*rules(), "last milestone (baseline)", "random (baseline)", "10-label probe (baseline)"]}
    for run in runs:
        cands = [m for m in run.milestones if m.epoch > 0]
        for h in HALVES:
            a = np.array([acc(m, h) for m in cands])
            best = a.max()
            for name, rule in rules().items():
                table[name][h].append(best - a[pick(rule(cands))])
            table["last milestone (baseline)"][h].append(best - a[-1])
            table["random (baseline)"][h].append(best - a.mean())
            few = np.array([acc(m, other(h), "lp10_acc") for m in cands])  # chosen on the other half's labels
            table["10-label probe (baseline)"][h].append(best - a[pick(few)])
    lines = [f"### Q0: which milestone of one run ({len(runs)} runs, every milestone after the untrained one)", "",
             "Regret in probe points (best milestone - picked), mean over runs [95 % bootstrap interval]; "
             "paired difference against \"last milestone\" (negative = the rule is better).", "",
             "| rule | regret, half A | regret, half B | rule - last, half A | rule - last, half B |", "|---|---|---|---|---|"]
    last = {h: np.array(table["last milestone (baseline)"][h]) for h in HALVES}
    for name, vals in table.items():
        cells = [fmt(*boot_mean(np.array(vals[h]), rng)) for h in HALVES]
        diffs = [fmt(*boot_mean(np.array(vals[h]) - last[h], rng)) for h in HALVES]
        lines.append(f"| {name} | {cells[0]} | {cells[1]} | {diffs[0]} | {diffs[1]} |")
    means = {h: {n: float(np.mean(v[h])) for n, v in table.items() if "baseline" not in n} for h in HALVES}
    for h in HALVES:
        chosen = min(means[h], key=means[h].get)
        lines.append("")
        lines.append(f"Best label-free rule chosen on half {h.upper()}: **{chosen}** ({means[h][chosen]:.2f}); its regret on "
                     f"half {other(h).upper()}: {np.mean(table[chosen][other(h)]):.2f} (last milestone: "
                     f"{np.mean(table['last milestone (baseline)'][other(h)]):.2f}).")
    return "\n".join(lines)


# --------------------------------------------------------------------------- Q1/Q4: run among runs


def groups(runs: list[RunData]) -> dict[str, list[RunData]]:
    conv = [r for r in runs if not r.name.startswith("arch_")]
    out = {f"{m} runs": [r for r in conv if r.method.startswith(m)] for m in ("simclr", "moco", "simsiam")}
    out["all convnet-small runs (3 methods)"] = conv
    out["architectures (Q4; SimCLR)"] = [r for r in runs if r.name.startswith("arch_") or r.name == "simclr_s0"]
    return {k: v for k, v in out.items() if len(v) >= 3}


def q1(runs: list[RunData]) -> str:
    rng = np.random.default_rng(BOOT_SEED)
    lines = ["### Q1 and Q4: which run among runs (each run by its last milestone)", ""]
    for gname, group in groups(runs).items():
        lasts = [r.last for r in group]
        default = next((i for i, r in enumerate(group) if r.name.endswith("_s0")), None)
        within_method = len({r.method.split("-")[0] for r in group}) == 1
        lines += [f"#### {gname}: {len(group)} runs", "",
                  "| rule | regret A | regret B | Kendall tau A | P(regret > 1 pt) B | worst B (bootstrap) | rule - random, B [95 %] |",
                  "|---|---|---|---|---|---|---|"]
        acc_h = {h: np.array([acc(m, h) for m in lasts]) for h in HALVES}
        scorers = dict(rules())
        if not within_method:
            scorers = {k: v for k, v in scorers.items() if "loss" not in k}  # losses of different methods do not compare
        rows = []
        for name, rule in scorers.items():
            s = rule(lasts)
            regret = {h: acc_h[h].max() - acc_h[h][pick(s)] for h in HALVES}
            finite = np.isfinite(s)
            tau = kendalltau(s[finite], acc_h["a"][finite]).statistic if finite.sum() >= 3 else float("nan")
            idx = rng.integers(0, len(group), (BOOT, len(group)))
            boot = np.array([acc_h["b"][i].max() - acc_h["b"][i][pick(s[i])] for i in idx])
            paired = boot - np.array([acc_h["b"][i].max() - acc_h["b"][i].mean() for i in idx])  # against the random pick
            diff = fmt(regret["b"] - (acc_h["b"].max() - acc_h["b"].mean()), float(np.percentile(paired, 2.5)), float(np.percentile(paired, 97.5)))
            rows.append((name, regret, tau, float((boot > 1).mean()), float(boot.max()), diff))
        rand = {h: acc_h[h].max() - acc_h[h].mean() for h in HALVES}
        few = {h: acc_h[h].max() - acc_h[h][pick(np.array([acc(m, other(h), "lp10_acc") for m in lasts]))] for h in HALVES}
        for name, regret, tau, p1, worst, diff in rows:
            lines.append(f"| {name} | {regret['a']:.2f} | {regret['b']:.2f} | {tau:+.2f} | {p1:.2f} | {worst:.2f} | {diff} |")
        lines.append(f"| random pick (baseline) | {rand['a']:.2f} | {rand['b']:.2f} | | | | |")
        lines.append(f"| 10-label probe (baseline) | {few['a']:.2f} | {few['b']:.2f} | | | | |")
        if default is not None:
            dflt = {h: acc_h[h].max() - acc_h[h][default] for h in HALVES}
            lines.append(f"| default configuration {group[default].name} (baseline) | {dflt['a']:.2f} | {dflt['b']:.2f} | | | | |")
        free = [row for row in rows if "loss" not in row[0]]
        for h in HALVES:  # no winner's curse: the rule with the least regret on one half, judged on the other
            best = min(free, key=lambda row: (row[1][h], -row[2] if math.isfinite(row[2]) else 0))
            lines += ["", f"Best label-free rule on half {h.upper()}: **{best[0]}** ({best[1][h]:.2f}); on half "
                      f"{other(h).upper()}: {best[1][other(h)]:.2f} (random pick {rand[other(h)]:.2f})."]
        lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------- Q2: collapse


def trivial_loss(run: RunData) -> float:
    if run.method.startswith("simsiam"):
        return -1.0
    return math.log(TRIVIAL_MOCO_QUEUE + 1) if run.method == "moco" else math.log(2 * run.batch - 1)


def alarms() -> dict[str, Callable[[RunData, int], bool]]:
    out: dict[str, Callable[[RunData, int], bool]] = {}
    for t in (0.1, 0.2, 0.3):
        out[f"l2_std < {t}/sqrt(d)"] = lambda r, i, t=t: _lt(r.milestones[i].metrics.get("l2_std"), t / math.sqrt(r.milestones[i].d))
    for q in (0.01, 0.02, 0.05):
        out[f"rankme/min(n,d) < {q}"] = lambda r, i, q=q: _lt(r.milestones[i].metrics.get("rankme"), q * min(r.milestones[i].n, r.milestones[i].d))
    for s in (0.3, 0.5):
        out[f"self_clustering > {s}"] = lambda r, i, s=s: _lt(-(r.milestones[i].metrics.get("self_clustering") or -np.inf), -s)
    out["rankme drop > 50 %"] = lambda r, i: i > 0 and _lt(r.milestones[i].metrics.get("rankme"), 0.5 * (r.milestones[i - 1].metrics.get("rankme") or 0))

    def loss_alarm(r: RunData, i: int) -> bool:
        v = r.milestones[i].probe.get("heldout_loss")
        return v is None or not math.isfinite(v) or abs(v - trivial_loss(r)) <= 0.01 * abs(trivial_loss(r))

    out["sslmon's collapse flag (as shipped)"] = lambda r, i: collapse_flag(r.milestones[i].result) is not None
    out["held-out loss trivial (baseline)"] = loss_alarm
    return out


def _lt(v: float | None, bound: float) -> bool:
    return v is not None and math.isfinite(v) and v < bound


def q2(runs: list[RunData]) -> str:
    def collapsed(r: RunData) -> list[bool]:
        init = r.milestones[0].lp
        return [m.epoch > 0 and m.lp is not None and m.lp <= init - 0.10 for m in r.milestones]

    lines = ["### Q2: collapse alarms", "",
             "Collapsed milestone: sslmon's probe accuracy (whole test split) at least 10 points below the run's untrained "
             "milestone. Thresholds chosen on the even-index runs of the grid (selection), judged on the odd-index runs.", ""]
    n_coll = sum(any(collapsed(r)) for r in runs)
    lines.append(f"Runs with a collapsed milestone: {n_coll} of {len(runs)} "
                 f"({', '.join(r.name for r in runs if any(collapsed(r)))}).")
    lines += ["", "| alarm | part | collapsed runs caught | mean delay (milestones) | false alarms / healthy milestones | runs with a false alarm |",
              "|---|---|---|---|---|---|"]
    for name, alarm in alarms().items():
        for part, subset in (("selection", [r for r in runs if r.index % 2 == 0]), ("judged", [r for r in runs if r.index % 2 == 1])):
            caught, delays, false, healthy, false_runs, coll = 0, [], 0, 0, 0, 0
            for r in subset:
                c = collapsed(r)
                raised = [alarm(r, i) for i in range(len(r.milestones))]
                fa = [raised[i] and not c[i] for i in range(1, len(c))]
                false += sum(fa)
                healthy += sum(not x for x in c[1:])
                false_runs += any(fa)
                if any(c):
                    coll += 1
                    first = c.index(True)
                    after = [i for i in range(first, len(c)) if raised[i]]
                    if after:
                        caught += 1
                        delays.append(after[0] - first)
            delay = f"{np.mean(delays):.1f}" if delays else "-"
            lines.append(f"| {name} | {part} | {caught}/{coll} | {delay} | {false}/{healthy} | {false_runs}/{len(subset)} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- Q3: plateau


def q3(runs: list[RunData]) -> str:
    rng = np.random.default_rng(BOOT_SEED)

    def stop_metric(r: RunData, key: str) -> int:
        ms = r.milestones
        for t in range(3, len(ms)):
            a, b = ms[t].metrics.get(key), ms[t - 2].metrics.get(key)
            sa, sb = ms[t].std.get(key) or 0.0, ms[t - 2].std.get(key) or 0.0
            if a is not None and b is not None and abs(a - b) <= 2 * (sa + sb) / 2:
                return t
        return len(ms) - 1

    def stop_loss(r: RunData) -> int:
        ms = r.milestones
        for t in range(3, len(ms)):
            a, b = ms[t].probe.get("heldout_loss"), ms[t - 2].probe.get("heldout_loss")
            if a is not None and b is not None and b != 0 and abs(a - b) / abs(b) < 0.01:
                return t
        return len(ms) - 1

    stops: dict[str, Callable[[RunData], int]] = {k: (lambda r, k=k: stop_metric(r, k)) for k in SINGLE if k != "dse"}
    def stop_flag(r: RunData) -> int:
        """The first milestone where sslmon's own ``plateau`` flag (sslmon.alarms) would fire."""
        ms = r.milestones
        for t in range(1 + PLATEAU_WINDOW, len(ms) + 1):
            if plateau_flag([m.result for m in ms[t - PLATEAU_WINDOW:t]]) is not None:
                return t - 1
        return len(ms) - 1

    stops["sslmon's plateau flag (as shipped)"] = stop_flag
    stops["held-out loss plateau (baseline)"] = stop_loss
    stops["fixed 50 % (baseline)"] = lambda r: min(range(len(r.milestones)), key=lambda i: abs(r.milestones[i].epoch - r.last.epoch / 2))
    stops["fixed 100 % (baseline)"] = lambda r: len(r.milestones) - 1
    lines = ["### Q3: stopping at the plateau", "",
             "Saved = 1 - stop epoch / last epoch; lost = accuracy of the last (or of the best) milestone - accuracy at "
             "the stop, in points, half B; mean over runs [95 % bootstrap interval].", "",
             "| stop rule | saved (%) | lost vs last | lost vs best |", "|---|---|---|---|"]
    for name, rule in stops.items():
        saved, lost_last, lost_best = [], [], []
        for r in runs:
            t = rule(r)
            a = np.array([acc(m, "b") for m in r.milestones])
            saved.append(100 * (1 - r.milestones[t].epoch / r.last.epoch))
            lost_last.append(a[-1] - a[t])
            lost_best.append(a[1:].max() - a[t])
        lines.append(f"| {name} | {fmt(*boot_mean(np.array(saved), rng))} | {fmt(*boot_mean(np.array(lost_last), rng))} | "
                     f"{fmt(*boot_mean(np.array(lost_best), rng))} |")
    return "\n".join(lines)


def overview(runs: list[RunData]) -> str:
    lines = ["### Runs", "", "| # | run | method | args | milestones | probe half B: init -> best -> last | n x d |", "|---|---|---|---|---|---|---|"]
    for r in runs:
        a = [acc(m, "b") for m in r.milestones]
        lines.append(f"| {r.index} | {r.name} | {r.method} | {' '.join(r.args)} | {len(r.milestones)} | "
                     f"{a[0]:.1f} -> {max(a[1:]):.1f} -> {a[-1]:.1f} | {r.last.n} x {r.last.d} |")
    return "\n".join(lines)


def main() -> None:
    folder = (Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "evidence" / "runs" / "d1").resolve()
    runs = load(folder)
    if not runs:
        sys.exit(f"no finished runs in {folder}")
    print(f"## Evidence tables: {folder.name} ({len(runs)} runs)\n\nGenerated by scripts/evidence_tables.py from docs/evidence/runs/{folder.name}; "
          "do not edit by hand.\n")
    for part in (overview, q0, q1, q2, q3):
        print(part(runs) + "\n")


if __name__ == "__main__":
    main()
