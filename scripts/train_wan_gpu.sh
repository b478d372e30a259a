#!/usr/bin/env bash
# Start the world model from Wan2.1-T2V-1.3B and train it on GPUs:
#   import (worldscape import-wan: Wan's transformer into ws-wan-1.3b, its VAE as the codec)
#   -> 3D-aware bidirectional teacher (models/train/03_teacher_wan.yaml)
#   -> causal model by clean-context teacher forcing (models/train/02_causal_wan.yaml)
#   -> few-step causal student by DMD through the rolling window (models/train/04_distill_wan.yaml)
# Each training stage runs under torchrun with FSDP2, bf16 and activation checkpointing, bounded by wall time
# (--max-minutes saves a resumable state: run the script again with RESUME=1 to continue every stage).
#
# usage: WAN=/path/to/Wan2.1-T2V-1.3B-Diffusers DATA=/path/to/episodes scripts/train_wan_gpu.sh
#        WAN=random ...                 a random full-size Wan2.1 (worldscape wan-reference): speed and memory only
#        SMOKE=1 DEVICE=cpu scripts/train_wan_gpu.sh   every step for 2 training steps on the tiny random
#                                       reference and a few synthetic episodes (wiring only; CPU is enough)
# DATA: episodes at the model's resolution (832x480), e.g. RealEstate10K-format clips or imported rosbags
#       (docs/episode_format.md); unset: synthetic episodes rendered by worldscape datagen at 832x480.
# environment: PY (python), DEVICE (cuda), NPROC (GPUs, default: all visible), OUT (runs/ws-wan-1.3b),
#              TEACHER_MIN, CAUSAL_MIN, DISTILL_MIN (wall-time budgets), TEXT_EMBEDDING (see import-wan --help),
#              RESUME=1, BENCH_CHUNKS=N (stream N chunks of the imported model first: frames/s, memory)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
stamp() { echo "[$(date -u +%H:%M:%S)] $*"; }
ws() { "$PY" -m worldscape_ros.cli "$@"; }

if [[ ${SMOKE:-0} == 1 ]]; then
    OUT=${OUT:-runs/ws-wan-smoke}; BASE=ws-wan-tiny; MODEL=models/ws-wan-tiny.yaml; SIZE=64x64; NPROC=${NPROC:-1}
    WAN=${WAN:-random}; REFERENCE=tiny; LIMIT=(--steps 2 --batch-size 1 --no-progress); BENCH_DTYPE=float32
    EPISODES=(2 1); FRAMES=24
else
    OUT=${OUT:-runs/ws-wan-1.3b}; BASE=ws-1.3b; MODEL=models/ws-wan-1.3b.yaml; SIZE=832x480
    NPROC=${NPROC:-$("$PY" -c 'import torch; print(max(torch.cuda.device_count(), 1))')}
    WAN=${WAN:?set WAN to a Wan2.1-T2V-1.3B diffusers folder, or WAN=random}; REFERENCE=1.3b; LIMIT=(--no-progress)
    BENCH_DTYPE=bfloat16
    EPISODES=(${NAV_EPISODES:-200} ${MANIP_EPISODES:-50}); FRAMES=48
fi
mkdir -p "$OUT/configs"
if ! "$PY" -c 'import diffusers' 2>/dev/null; then
    echo "train_wan_gpu.sh: diffusers is not installed for $PY (the Wan VAE runs on it). Offline: 'pip download" \
         "diffusers==0.42.1 huggingface_hub regex importlib_metadata -d wheels' where a registry is reachable," \
         "then 'pip install --no-index --find-links wheels diffusers' here." >&2
    exit 2
fi

if [[ -z ${DATA:-} ]]; then
    DATA=$OUT/data
    if [[ ! -d $DATA/nav ]]; then
        stamp "datagen: ${EPISODES[0]} nav + ${EPISODES[1]} manip synthetic episodes at $SIZE -> $DATA"
        ws datagen --kind nav --episodes "${EPISODES[0]}" --frames "$FRAMES" --size "$SIZE" --seed 1000 --out "$DATA/nav"
        ws datagen --kind manip --episodes "${EPISODES[1]}" --frames "$FRAMES" --size "$SIZE" --seed 2000 \
            --out "$DATA/manip"
    fi
fi

if [[ $WAN == random ]]; then
    WAN=$OUT/wan-reference
    if [[ ! -f $WAN/transformer/config.json ]]; then
        stamp "wan-reference: a random $REFERENCE Wan2.1 -> $WAN"
        ws wan-reference --size "$REFERENCE" --out "$WAN"
    fi
fi

IMPORTED=$OUT/imported.safetensors
if [[ ! -f $IMPORTED ]]; then
    stamp "import-wan: $WAN -> $IMPORTED"
    ws import-wan "$WAN" --config "$BASE" --out "$IMPORTED" ${TEXT_EMBEDDING:+--text-embedding "$TEXT_EMBEDDING"}
fi

train() {  # train VERB NAME CONFIG MINUTES [args]: one stage, on NPROC processes
    local verb=$1 name=$2 config=$3 minutes=$4
    shift 4
    # an overlay of the stage's config: this run's model config (the tiny reference for SMOKE, loading in-process)
    printf 'base: %s\nmodel: %s\n' "$(realpath "$config")" "$MODEL" > "$OUT/configs/$name.yaml"
    if [[ -n ${SMOKE:-} ]]; then echo 'data: {num_workers: 0}' >> "$OUT/configs/$name.yaml"; fi
    local launch=("$PY" -m worldscape_ros.cli)
    if (( NPROC > 1 )); then launch=("$PY" -m torch.distributed.run --standalone --nproc_per_node "$NPROC"
                                     -m worldscape_ros.cli); fi
    stamp "$name: $config on $NPROC process(es) for ${minutes} min"
    "${launch[@]}" "$verb" --config "$OUT/configs/$name.yaml" --data "$DATA" --out "$OUT/$name" --device "$DEVICE" \
        --max-minutes "$minutes" ${RESUME:+--resume} "${LIMIT[@]}" "$@"
}
if (( ${BENCH_CHUNKS:-0} > 0 )); then  # streaming speed of the imported model: frames/s, latency, cache bytes
    stamp "bench: $BENCH_CHUNKS chunks of the imported model on $DEVICE"
    ws bench --config "$MODEL" --checkpoint "$IMPORTED" --device "$DEVICE" --chunks "$BENCH_CHUNKS" --no-speedup \
        --dtype "$BENCH_DTYPE" --json "$OUT/bench.json"
fi
train train teacher models/train/03_teacher_wan.yaml "${TEACHER_MIN:-240}" --init "$IMPORTED"
train train causal models/train/02_causal_wan.yaml "${CAUSAL_MIN:-120}" --init "$IMPORTED"
train distill distill models/train/04_distill_wan.yaml "${DISTILL_MIN:-240}" --init "$OUT/causal/final.safetensors" \
    --teacher "$OUT/teacher/final.safetensors"
stamp "done: the student is $OUT/distill/final.safetensors"
