#!/usr/bin/env bash
# Train ws-tiny's four stages on one CUDA GPU, each stage bounded by wall time:
#   codec (models/train/01_codec_gpu.yaml) -> causal DiT (02_causal_gpu.yaml)
#   -> bidirectional teacher (03_teacher_gpu.yaml) -> DMD student through the rolling window (04_distill_gpu.yaml)
# The episodes are rendered first (data/gpu; MUJOCO_GL=egl renders on the GPU). The student is
# runs/ws-tiny-gpu/distill/final.safetensors.
#
# usage: scripts/train_ws_tiny_gpu.sh            (the run: about 8 minutes on one H100/H200)
#        SMOKE=1 scripts/train_ws_tiny_gpu.sh    (every stage for 2 steps on a few episodes: wiring only)
# environment: PY (python), DEVICE (cuda), NAV_EPISODES, MANIP_EPISODES, WORKERS, CODEC_MIN, CAUSAL_MIN,
#              TEACHER_MIN, DISTILL_MIN
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
WORKERS=${WORKERS:-12}
ws() { "$PY" -m worldscape_ros.cli "$@"; }
stamp() { echo "[$(date -u +%H:%M:%S)] $*"; }

if [[ ${SMOKE:-0} == 1 ]]; then
    NAV=4; MANIP=2; DATA=data/gpu-smoke; OUTS=runs/ws-tiny-gpu-smoke; LIMIT=(--steps 2 --batch-size 2)
else
    NAV=${NAV_EPISODES:-1000}; MANIP=${MANIP_EPISODES:-250}; DATA=data/gpu; OUTS=runs/ws-tiny-gpu; LIMIT=()
fi

stamp "datagen: $NAV nav + $MANIP manip episodes -> $DATA"
ws datagen --kind nav --episodes "$NAV" --frames 32 --size 128x96 --seed 1000 --out "$DATA/nav" --workers "$WORKERS"
ws datagen --kind manip --episodes "$MANIP" --frames 32 --size 128x96 --seed 2000 --out "$DATA/manip" \
    --workers "$WORKERS"

# Each stage reads the one before it from $OUTS (the configs name runs/ws-tiny-gpu; --init/--out override).
stage() {  # stage NAME VERB CONFIG MINUTES [extra args]
    local name=$1 verb=$2 config=$3 minutes=$4
    shift 4
    stamp "$name: $config for ${minutes} min"
    ws "$verb" --config "$config" --data "$DATA" --out "$OUTS/$name" --device "$DEVICE" --max-minutes "$minutes" \
        --no-progress "${LIMIT[@]}" "$@"
}
stage codec train models/train/01_codec_gpu.yaml "${CODEC_MIN:-1.25}"
stage causal train models/train/02_causal_gpu.yaml "${CAUSAL_MIN:-1.5}" --init-codec "$OUTS/codec/final.safetensors"
stage teacher train models/train/03_teacher_gpu.yaml "${TEACHER_MIN:-1.25}" --init "$OUTS/causal/final.safetensors"
stage distill distill models/train/04_distill_gpu.yaml "${DISTILL_MIN:-2.25}" --init "$OUTS/causal/final.safetensors" \
    --teacher "$OUTS/teacher/final.safetensors"
stamp "done: $OUTS/distill/final.safetensors"
