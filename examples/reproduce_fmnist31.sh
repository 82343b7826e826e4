#!/usr/bin/env bash
# The Fashion-MNIST reproduction at the size issue 10 asks for (docs/results.md section 11): SimCLR, MoCo-v2 and
# SimSiam trained on all 10,000 embedded train images for 30 epochs (31 milestones with the untrained one),
# every milestone scored on all 10,000 embedded test images (kNN and probe fitted on the 10,000 train images)
# with the default 3 evaluation seeds. Run from the repository root after `make install`:
#
#     bash examples/reproduce_fmnist31.sh
#
# On the 2-core CPU without GPU (2026-12-03): training SimCLR 30 min (15-100 s per epoch, by load), MoCo-v2
# and SimSiam with one torch thread each; scoring about 36 s per milestone with one thread.
# Checkpoints go to $RUNS (default /tmp/fm31), never into git; results JSON and tables to docs/results/fmnist31/.
set -euo pipefail

SSLMON=${SSLMON:-.venv/bin/sslmon}
PY=${PY:-.venv/bin/python}
RUNS=${RUNS:-/tmp/fm31}
OUT=docs/results/fmnist31
ONE_THREAD=(env OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 NUMBA_NUM_THREADS=1)
mkdir -p "$RUNS" "$OUT"

for m in simclr moco simsiam; do
  "$SSLMON" train "$m" --out "$RUNS/$m" --epochs 30 --every 1 --batch-size 128 --seed 0 --half
  "${ONE_THREAD[@]}" "$SSLMON" score "$RUNS/$m" -f json -o "$OUT/$m.json" -q > /dev/null
done

NAMES=(--name SimCLR --name MoCo-v2 --name SimSiam)
FILES=("$OUT/simclr.json" "$OUT/moco.json" "$OUT/simsiam.json")
"$SSLMON" correlate "${FILES[@]}" --against lp_acc "${NAMES[@]}" -o "$OUT/table1.txt" > /dev/null
"$SSLMON" correlate "${FILES[@]}" --against lp_acc "${NAMES[@]}" -f json -o "$OUT/table1.json" > /dev/null
"$PY" scripts/correlate_markdown.py "$OUT/table1.json" > "$OUT/table1.md"
