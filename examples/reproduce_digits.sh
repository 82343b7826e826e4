#!/usr/bin/env bash
# Second dataset of docs/results.md: scikit-learn's bundled digits (1,797 8x8 grayscale images, no download),
# SimCLR, MoCo-v2 and SimSiam for 30 epochs (31 milestones with the untrained one), with training seeds 0 and 1,
# every milestone scored on the 600-image test split with 3 evaluation seeds, under the paper's Z3 k-means and
# the centred variant.
# Run from the repository root after `make install`:
#
#     bash examples/reproduce_digits.sh
#
# On a shared 2-core CPU without GPU (2026-12-03): training 55-423 s per method (1.8-14 s per epoch, depending
# on the load; 16x16 images, batch 64, 19 SGD steps per epoch), scoring 34-73 s per method and variant
# (31 milestones x 3 seeds, start-up included); about 30 minutes in all. Checkpoints and the npz file go to
# $RUNS (default /tmp/sslmon-digits), never into git; results JSON and tables go to docs/results/digits/.
set -euo pipefail

SSLMON=${SSLMON:-.venv/bin/sslmon}
PY=${PY:-.venv/bin/python}
RUNS=${RUNS:-/tmp/sslmon-digits}
DATA="$RUNS/digits16.npz"
OUTDIR=docs/results/digits
METHODS=(simclr moco simsiam)
NAMES=(--name SimCLR --name MoCo-v2 --name SimSiam)
ONE_THREAD=(env OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 NUMBA_NUM_THREADS=1)

mkdir -p "$RUNS"

# 1. The dataset: stratified 1,197 train / 600 test images, upsampled to 16x16 (bilinear), uint8 0..255.
"$PY" scripts/make_digits.py "$DATA" --size 16 --test 600 --seed 0

# 2-5 once per training seed: seed 0 into docs/results/digits/, seed 1 (a replicate: another random init,
# other augmentations and batch order) into docs/results/digits/train_seed1/.
for tseed in 0 1; do
  out="$OUTDIR"; runs="$RUNS/runs"
  if [ "$tseed" != 0 ]; then out="$OUTDIR/train_seed$tseed"; runs="$RUNS/runs-seed$tseed"; fi
  mkdir -p "$out/centred"

  # 2. Train: the untrained milestone and one after each of 30 epochs, on all 1,197 train images.
  for m in "${METHODS[@]}"; do
    nice -n 5 "$SSLMON" train "$m" --dataset "npz:$DATA" --arch convnet-small --epochs 30 --every 1 \
      --batch-size 64 --seed "$tseed" --half --out "$runs/$m" -q
  done

  # 3. Score all 31 milestones on the 600 test images (kNN and the probe fitted on the 1,197 train images),
  #    evaluation seeds 0, 1, 2 (the default), with the paper's Z3 k-means and with the centred variant.
  for m in "${METHODS[@]}"; do
    "${ONE_THREAD[@]}" nice -n 5 "$SSLMON" score "$runs/$m" --dataset "npz:$DATA" -f json -o "$out/$m.json" -q > /dev/null
    "${ONE_THREAD[@]}" nice -n 5 "$SSLMON" score "$runs/$m" --dataset "npz:$DATA" --z3-kmeans centred \
      -f json -o "$out/centred/$m.json" -q > /dev/null
  done

  # 4. Table I with the 95 % interval of r, and the selection table (regret, consensus, last milestone).
  for variant in "" centred/; do
    files=("$out/${variant}simclr.json" "$out/${variant}moco.json" "$out/${variant}simsiam.json")
    "$SSLMON" correlate "${files[@]}" --against lp_acc "${NAMES[@]}" -o "$out/${variant}table1.txt" > /dev/null
    "$SSLMON" correlate "${files[@]}" --against lp_acc "${NAMES[@]}" -f json -o "$out/${variant}table1.json" > /dev/null
    "$PY" scripts/correlate_markdown.py "$out/${variant}table1.json" > "$out/${variant}table1.md"
  done

  # 5. Paper vs centred Z3 k-means: seed spread, r and regret side by side.
  "$PY" scripts/z3_variant_study.py "$out" "$out/centred" > "$out/z3_variant.md"
done
echo "done: $OUTDIR/{,train_seed1/}{table1.md,centred/table1.md,z3_variant.md}"
