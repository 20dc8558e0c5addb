#!/bin/bash
# Whole `palette-dask run`s of two versions, interleaved, 3 rounds: BEFORE is a worktree of an
# earlier commit (git worktree add /tmp/old REV; or BEFORE=folder), AFTER this checkout; same inputs, same numbers
# expected. Inputs: a 16 MP PNG mosaic of four photos, the same pixels as a zarr array read tile by
# tile, and 600 photo crops (PNG and JPEG) in /tmp/ab (made by benchmarks/before_after_inputs.py).
# Usage: benchmarks/before_after.sh   (from the repository root, after make install)
ROOT=$(pwd)
BEFORE=${BEFORE:-/tmp/old}
cd /tmp/ab
for rep in 1 2 3; do
  for version in before after; do
    for input in /tmp/ab/mosaic16.png /tmp/ab/mosaic16.zarr /tmp/ab/crops; do
      if [ $version = before ]; then export PYTHONPATH=$BEFORE; else unset PYTHONPATH; fi
      start=$(date +%s.%N)
      $ROOT/.venv/bin/palette-dask run $input -k 5 --json -q > /tmp/ab/out.json 2>/dev/null
      end=$(date +%s.%N)
      echo "$version $(basename $input) $(echo "$end - $start" | bc) lab_error=$(python3 -c "import json;print(round(json.load(open('/tmp/ab/out.json'))['lab_error'],3))")"
    done
  done
done
