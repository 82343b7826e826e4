#!/usr/bin/env bash
# Issue 17's evidence study (docs/evidence/protocol.md): train, score and probe every run of the grid, then rebuild
# the tables. Run from the repository root after `make install`:
#
#     bash examples/reproduce_evidence.sh          # D1 (digits, 36 runs), then D2 (Fashion-MNIST, 9 runs)
#
# Each run: `sslmon train` (convnet-small; checkpoints under $RUNS, default /tmp/sslmon-evidence, never in git),
# `sslmon score` of every milestone at the default, paper-faithful settings (3 evaluation seeds) into
# docs/evidence/runs/<d1|d2>/<run>.json, and the label-based references (probe on test halves A and B, 10-label probe)
# into <run>.probes.json. Finished runs are skipped, so the script resumes after an interruption. Every command runs
# under `nice -n 10` on one thread. Wall time on this 2-core CPU shared with other work (2026-12-06/07, load 1.6-7.5):
# D1 median 2.8 minutes per run (convnet-small 1.5-4 min, resnet18-cifar 15 min), D2 median 11 minutes (7-22 min);
# all 45 runs about 4.5 hours one after another.
set -euo pipefail
PY=${PY:-.venv/bin/python}
for dataset in d1 d2; do
  "$PY" scripts/evidence_study.py --dataset "$dataset"
  "$PY" scripts/evidence_tables.py "docs/evidence/runs/$dataset" > "docs/evidence/tables_$dataset.md"
done
echo "done: docs/evidence/tables_d1.md docs/evidence/tables_d2.md"
