#!/usr/bin/env bash
# Reproduce docs/results.md: Table I of Xu, Lowe & Trappenberg (2024) on Fashion-MNIST with a
# small CNN, on CPU. Run from the repository root after `make install`:
#
#     bash examples/reproduce_table1.sh
#
# On a shared 2-core CPU without GPU (2026-11-23): training 26 min (780 + 417 + 339 s),
# scoring 15-40 s per milestone (1-3 min when the CPU is saturated) plus ~30 s start-up per call,
# 33 milestones per evaluation seed: ~4 min per method and seed on a quiet machine.
# Checkpoints go to $RUNS (default /tmp/sslmon-runs), never into git; the small artefacts
# (results JSON, correlation tables, PNG figures) go to docs/.
set -euo pipefail

SSLMON=${SSLMON:-.venv/bin/sslmon}
PY=${PY:-.venv/bin/python}
RUNS=${RUNS:-/tmp/sslmon-runs}
METHODS=(simclr moco simsiam)
RESULTS=(docs/results/simclr.json docs/results/moco.json docs/results/simsiam.json)
NAMES=(--name SimCLR --name MoCo-v2 --name SimSiam)

# One BLAS/OpenMP thread for scoring, as docs/results.md was made (lp_acc now limits itself to one
# BLAS thread; the variables also keep UMAP's numba single-threaded). Training keeps torch's threads.
ONE_THREAD=(env OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 NUMBA_NUM_THREADS=1)

mkdir -p "$RUNS" docs/results/seed1 docs/results/seed2 docs/figures

# 1. Train: milestone 0 (untrained) and one after each of 10 epochs, on a stratified 3,000-image
#    subset of the embedded Fashion-MNIST train split; paper hyper-parameters per method.
for m in "${METHODS[@]}"; do
  "$SSLMON" train "$m" --out "$RUNS/$m" --train-limit 3000 --epochs 10 --every 1 \
    --batch-size 128 --seed 0 --half
done

# 2. Score every milestone on 2,000 test images (probe and kNN fitted on 4,000 train images),
#    then again with evaluation seeds 1 and 2 (other image subsets, UMAP and k-means seeds).
for m in "${METHODS[@]}"; do
  "${ONE_THREAD[@]}" "$SSLMON" score "$RUNS/$m" --limit 2000 --train-limit 4000 --seeds 0, --umap-epochs 500 \
    --format json -o "docs/results/$m.json" --save-z3 "$RUNS/z3/$m" -q > /dev/null
done
for seed in 1 2; do
  for m in "${METHODS[@]}"; do
    # --seed: the image subset; --seeds "$seed,": the one UMAP/k-means seed (sslmon 0.1 tied both to --seed)
    "${ONE_THREAD[@]}" "$SSLMON" score "$RUNS/$m" --seed $seed --seeds "$seed," --umap-epochs 500 --limit 2000 --train-limit 4000 \
      --format json -o "docs/results/seed$seed/$m.json" --save-z3 "$RUNS/z3-seed$seed/$m" -q > /dev/null
  done
done

# 3. Table I: Pearson r (p) of each metric against lp_acc, with and without the init milestone,
#    with sslmon correlate and, as an independent check, scipy.stats.pearsonr (scripts/table1.py).
"$SSLMON" correlate "${RESULTS[@]}" --against lp_acc "${NAMES[@]}" -o docs/results/table1.txt
"$SSLMON" correlate "${RESULTS[@]}" --against lp_acc "${NAMES[@]}" --format json \
  -o docs/results/table1.json > /dev/null
"$PY" scripts/table1.py "${RESULTS[@]}" --json docs/results/table1_scipy.json > docs/results/table1.md
"$SSLMON" correlate docs/results/seed1/simclr.json docs/results/seed1/moco.json \
  docs/results/seed1/simsiam.json --against lp_acc "${NAMES[@]}" -o docs/results/seed1/table1.txt
"$PY" scripts/table1.py docs/results/seed1/simclr.json docs/results/seed1/moco.json \
  docs/results/seed1/simsiam.json --json docs/results/seed1/table1_scipy.json > docs/results/seed1/table1.md
"$PY" scripts/seeds.py docs/results docs/results/seed1 docs/results/seed2 > docs/results/seeds.md

# 4. Figures (need matplotlib: the `plot` extra).
"$PY" -c "import matplotlib" 2>/dev/null || "$PY" -m pip install -q -e ".[plot]"
#    All drawn by sslmon.meta.plots: the metric grids, the three paper metrics against LP, a Z3 panel per method.
"$PY" scripts/figures.py "${RESULTS[@]}" "${NAMES[@]}" --out docs/figures --z3 "$RUNS/z3" --epochs 0,1,5,10 > /dev/null
echo "done: docs/results/table1.md, docs/results/seeds.md, docs/figures/"
