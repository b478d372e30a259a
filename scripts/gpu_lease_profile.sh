#!/usr/bin/env bash
# The shipped ws-tiny on a lent CUDA machine (torch only), in one call: where a live step's time goes
# (scripts/profile_step.py), the bench (one session, and batched sessions), and the eval's nav and revisit suites
# with the model on the GPU (its frames against the CPU's, and the live step's latency with true starts, where the
# surface repeats run). Figures go to $OUT as JSON, the eval's scenario files as a tarball.
#
# Carry .devkit/ (ignored through .git/info/exclude), prepared as scripts/gpu_lease_train.sh says (the MuJoCo
# wheels, the GL loaders: the eval renders its ground truth), and run `bash scripts/gpu_lease_profile.sh` there.
# SMOKE=1 runs the same steps on the CPU here, briefly, to check the wiring before a lease.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/profile-lease-out}; mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1
stamp() { echo "[$(date -u +%H:%M:%S) +${SECONDS}s] $*"; }
THREADS=${THREADS:-4}
if [[ ${SMOKE:-0} != 1 ]]; then
  stamp setup
  source scripts/gpu_lease_setup.sh
  PY=python3; DEVICE=cuda; CHUNKS=300; SESSION_CHUNKS=20; SUITES=nav,revisit
else
  PY=${PY:-.venv/bin/python}; DEVICE=cpu; CHUNKS=5; SESSION_CHUNKS=2; SUITES=nav; export PYTHONPATH=$PWD
fi
export PYTHONUNBUFFERED=1
B="$PY -m worldscape_ros.model.bench --checkpoint models/ws-tiny.safetensors --device $DEVICE --threads $THREADS"
stamp profile
timeout 150 $PY scripts/profile_step.py --device $DEVICE --threads $THREADS --json "$OUT/profile_$DEVICE.json" \
  || echo "profile failed or timed out"
stamp bench
timeout 90 $B --dtype float32 --chunks $CHUNKS --no-speedup --json "$OUT/bench_float32.json" || echo "bench failed"
timeout 120 $B --dtype float32 --sessions 1 8 32 --chunks $SESSION_CHUNKS --json "$OUT/bench_sessions.json" \
  || echo "sessions bench failed"
stamp eval
timeout 200 $PY -m worldscape_ros.cli eval --suite $SUITES --systems model --window 1 --device $DEVICE \
  --threads $THREADS --no-media --no-progress --out /tmp/eval_$DEVICE || echo "eval failed or timed out"
tar czf "$OUT/eval_$DEVICE.tar.gz" -C /tmp eval_$DEVICE/scenarios 2>/dev/null
stamp end
