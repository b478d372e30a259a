#!/usr/bin/env bash
# The refiner on a lent CUDA machine (torch only), in one call: render episodes on its cores (MuJoCo through EGL),
# trace the engine on them as live (one CPU process a core), then fit refiner variants side by side on the GPU, and
# put each fitted scene refiner (refiner.* tensors, 2.3 MB) and its metrics.csv into $OUT.
#
# The engine traced is the base config's model with the smooth fill faded into the scene's observed colour
# (refiner.fill_fade_px = FADE), the anchor off and the refiner's residual zeroed: what it commits is that fill, and
# each fit learns a residual over it (--warm-start --fresh-residual) under the base config with the fade added.
# A fitted refiner goes into a checkpoint with `worldscape export CKPT --config FIT.yaml --refiner-from FILE`
# (FIT.yaml is the fit's config, in $OUT too).
#
# Carry .devkit/ (ignored through .git/info/exclude), prepared as scripts/gpu_lease_train.sh says (the MuJoCo
# wheels, the GL loaders), and run `bash scripts/gpu_lease_refiner.sh` there.
# SMOKE=1 runs the same steps on the CPU here with the sizes below set small (NAV=3 HELD=1 MANIP=1 TRACERS=3
# FIT_MIN=0.2 STEPS=60 DEVICE=cpu WORKERS=2), to check the wiring before a lease.
# environment: NAV, HELD, MANIP (episodes), WORKERS (datagen), TRACERS (trace processes), TRACE_S (their wall
#              limit), FIT_MIN, STEPS, DEVICE, FADE, BASE (config), D (work folder), OUT
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/refiner-lease-out}; mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1
stamp() { echo "[$(date -u +%H:%M:%S) +${SECONDS}s] $*"; }
NAV=${NAV:-800}; HELD=${HELD:-40}; MANIP=${MANIP:-100}; WORKERS=${WORKERS:-14}; TRACERS=${TRACERS:-15}
TRACE_S=${TRACE_S:-180}; FIT_MIN=${FIT_MIN:-3}; STEPS=${STEPS:-12000}; DEVICE=${DEVICE:-cuda}; FADE=${FADE:-16}
BASE=${BASE:-models/ws-tiny.yaml}; D=${D:-/tmp/refiner-lease}
if [[ ${SMOKE:-0} != 1 ]]; then
  stamp setup
  source scripts/gpu_lease_setup.sh
  PY=python3
else
  PY=${PY:-.venv/bin/python}
fi
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
ws() { $PY -m worldscape_ros.cli "$@"; }
mkdir -p "$D"
stamp configs
$PY - "$BASE" "$FADE" "$D" <<'PYEOF' || exit 6
import sys
import yaml
base, fade, d = sys.argv[1], float(sys.argv[2]), sys.argv[3]
cfg = yaml.safe_load(open(base))
cfg['refiner'] = {**cfg['refiner'], 'fill_fade_px': fade}
yaml.safe_dump(cfg, open(f'{d}/fit.yaml', 'w'))
cfg['refiner'] = {**cfg['refiner'], 'anchor_sigma': 0.0, 'anchor_reach_px': 0.0, 'anchor_prior': 0.0,
                  'detail_reach_px': 0.0}
yaml.safe_dump(cfg, open(f'{d}/trace.yaml', 'w'))
PYEOF
stamp datagen
ws datagen --kind nav --episodes $NAV --frames 32 --size 128x96 --seed 1000 --out $D/nav --workers $WORKERS --no-progress || exit 7
ws datagen --kind nav --episodes $HELD --frames 32 --size 128x96 --seed 7000 --out $D/held --workers $WORKERS --no-progress || exit 7
ws datagen --kind manip --episodes $MANIP --frames 32 --size 128x96 --seed 2000 --out $D/manip --workers $WORKERS --no-progress || exit 7
stamp "zero-residual engine"
$PY - "$D" <<'PYEOF' || exit 8
import sys
from pathlib import Path
from worldscape_ros.model.checkpoint import save_checkpoint
from worldscape_ros.model.engine import WorldEngine
d = sys.argv[1]
model = WorldEngine.from_pretrained(None, f'{d}/trace.yaml').model
model.refiner.zero_residual()
save_checkpoint(Path(f'{d}/zero.safetensors'), model, {'refiner': {'zero_residual': True}})
PYEOF
stamp trace  # one process on the held-out episodes, one on the manipulation ones, the rest share the nav ones
per=$(( (NAV + TRACERS - 3) / (TRACERS - 2) ))
trace() { timeout $TRACE_S $PY -m worldscape_ros.cli refiner-trace --checkpoint $D/zero.safetensors --threads 1 "$@"; }
pids=()
trace --data $D/held --out $D/tr/held > $D/trace_held.log 2>&1 & pids+=($!)
trace --data $D/manip --out $D/tr/manip > $D/trace_manip.log 2>&1 & pids+=($!)
for i in $(seq 0 $((TRACERS - 3))); do
  trace --data $D/nav --skip $(( i * per )) --episodes $per --out $D/tr/nav > $D/trace_$i.log 2>&1 & pids+=($!)
done
for p in "${pids[@]}"; do wait $p; done
for t in held nav manip; do echo "$t shards: $(ls $D/tr/$t 2>/dev/null | wc -l)"; done
stamp fit
fit() {  # fit NAME [args]
  local name=$1; shift
  timeout $(( ${FIT_MIN%.*} * 60 + 120 )) $PY -m worldscape_ros.cli refiner-fit --config $D/fit.yaml \
    --checkpoint $D/zero.safetensors --warm-start --fresh-residual --traces $D/tr/nav $D/tr/manip --held-out $D/tr/held \
    --out $D/fit_$name --device $DEVICE --max-minutes $FIT_MIN --steps $STEPS --lr 5e-4 "$@" > $D/fit_$name.log 2>&1
}
fit l1 --batch-size 64 --pixel-loss l1 & a=$!
fit l2 --batch-size 64 --pixel-loss l2 --gradient-weight 0 & b=$!
fit l2full --batch-size 32 --pixel-loss l2 --gradient-weight 0 --full-frames & c=$!
wait $a; wait $b; wait $c
stamp pack
for name in l1 l2 l2full; do
  tail -n 3 $D/fit_$name.log
  [[ -f $D/fit_$name/final.safetensors ]] || continue
  $PY - "$D/fit_$name/final.safetensors" "$OUT/refiner_$name.safetensors" <<'PYEOF'
import sys
from safetensors import safe_open
from safetensors.torch import save_file
with safe_open(sys.argv[1], 'pt') as f:
    save_file({k: f.get_tensor(k) for k in f.keys() if k.startswith('refiner.')}, sys.argv[2])
PYEOF
  cp $D/fit_$name/metrics.csv $OUT/metrics_$name.csv
done
cp $D/fit.yaml $OUT/
tar czf $OUT/logs.tar.gz -C $D $(cd $D && ls *.log)
stamp end
