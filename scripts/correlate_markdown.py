"""Markdown tables of docs/results.md from a `sslmon correlate -f json` document.

Prints (1) the paper's Table I layout: per metric and method, Pearson r with lp_acc and its 95 % interval,
with / without the init milestone, next to the paper's CIFAR-10 values (scripts/table1.py); (2) the
selection table: per row (metric, consensus, last milestone) and method, the milestone picked, its regret
(points of the reference) and rank, and the fraction of evaluation seeds whose own pick differs; then the
mean regret over the methods.

    .venv/bin/python scripts/correlate_markdown.py docs/results/digits/table1.json > /tmp/tables.md
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from table1 import KEYS, PAPER_C10  # noqa: E402  (the paper's values and the row order live in scripts/table1.py)

from sslmon.metrics import METRICS  # noqa: E402

PAPER_NAMES = {"SimCLR": "simclr", "MoCo-v2": "moco", "SimSiam": "simsiam"}
VARIANTS = ("with_init", "without_init")


def r_cell(c: dict) -> str:
    if c["status"] != "ok":
        return c["status"]
    text = f"{c['pearson_r']:+.2f} [{c['pearson_ci_low']:+.2f}, {c['pearson_ci_high']:+.2f}]"
    return f"**{text}**" if c["pearson_p"] < 0.05 else text


def pick_cell(s: dict) -> str:
    if s["status"] != "ok":
        return s["status"]
    text = f"ep {s['pick_epoch']}: {s['regret']:.2f} (#{s['pick_rank']})"
    if s.get("seeds"):
        text += f", p≠ {s['seeds']['p_change']:.2f}"
    return text


def table1(doc: dict) -> None:
    runs = doc["runs"]
    head = " | ".join(f"{r['name']} w/ init | {r['name']} w/o init | {r['name']} paper C10" for r in runs)
    print(f"| metric | label-free | {head} |")
    print("|---|---|" + "---|---|---|" * len(runs))
    keys = [k for k in KEYS if any(k in r["correlations"] for r in runs)]
    keys += [k for k in runs[0]["correlations"] if k not in keys]
    for key in keys:
        cells = []
        for r in runs:
            c = r["correlations"].get(key)
            cells += [r_cell(c["with_init"]), r_cell(c["without_init"])] if c else ["-", "-"]
            paper = PAPER_C10.get(PAPER_NAMES.get(r["name"], r["name"]), {}).get(key)
            cells.append(f"{paper[0]:+.2f} / {paper[1]:+.2f}" if paper else "-")
        free = "no" if METRICS[key].needs_labels else "yes"
        symbol = METRICS[key].symbol.replace("|", "\\|")  # a Markdown cell cannot hold a bare |
        print(f"| {symbol} | {free} | " + " | ".join(cells) + " |")
    print("\nMilestones per run: " + ", ".join(f"{r['name']} {r['n_points']}" for r in runs)
          + f"; evaluation seeds: {runs[0]['n_seeds']}.")


def selection(doc: dict, variant: str) -> None:
    runs = doc["runs"]
    print("| picked by | " + " | ".join(r["name"] for r in runs) + " | mean regret |")
    print("|---|" + "---|" * len(runs) + "---|")
    for row, means in doc["mean_regret"].items():
        cells = [pick_cell(r["selection"][row][variant]) if row in r["selection"] else "-" for r in runs]
        mean = means[variant]
        label = f"`{row}`" if row in METRICS else row
        print(f"| {label} | " + " | ".join(cells) + f" | {'—' if mean is None else f'{mean:.2f}'} |")


def main(path: str) -> None:
    doc = json.loads(Path(path).read_text())
    print(f"#### Table I: Pearson r with {doc['against']} [95 % interval] (bold: p < 0.05)\n")
    table1(doc)
    for variant in VARIANTS:
        label = "with" if variant == "with_init" else "without"
        print(f"\n#### Selection judged by {doc['against']}, {label} init: milestone picked: regret in points (#rank), "
              "p≠ = fraction of seeds whose pick differs\n")
        selection(doc, variant)


if __name__ == "__main__":
    main(sys.argv[1])
