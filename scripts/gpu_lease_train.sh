#!/usr/bin/env bash
# The GPU lease wrapper: on a bare CUDA machine that has torch but not MuJoCo, install the
# carried wheels and GL loaders, smoke-test every training stage, run scripts/train_ws_tiny_gpu.sh, benchmark,
# and pack the student (split into 15 MiB parts) and the logs into $OUT.
# Prepare the carried folder .devkit/ (ignored through .git/info/exclude) on a machine with pip and apt:
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 -d .devkit/whl \
#     mujoco==4.0.0 mujoco-core==4.0.0 glfw pyopengl
#   (cd .devkit/gl && apt-get download libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
#   cp scripts/gpu_lease_train.sh .devkit/run.sh
# then run `bash .devkit/run.sh` there with .devkit carried.
set -uo pipefail
exec > >(tee "$OUT/log.txt") 2>&1
stamp() { echo "[$(date -u +%H:%M:%S) +${SECONDS}s] $*"; }
stamp setup
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .devkit/whl/*.whl || exit 3
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 MUJOCO_GL=egl
for f in .devkit/gl/*.deb; do dpkg -x "$f" /; done; ldconfig
v=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json; [[ -f $v ]] && export __EGL_VENDOR_LIBRARY_FILENAMES=$v
nvidia-smi -L
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
python3 -c "import mujoco; c = mujoco.GLContext(64, 64); c.make_current(); print('mujoco egl ok', mujoco.__version__)" || exit 5
ws() { python3 -m worldscape_ros.cli "$@"; }
# the full data in the background (the script's own datagen then skips the episodes already written)
( ws datagen --kind nav --episodes ${NAV_EPISODES:-1000} --frames 32 --size 128x96 --seed 1000 --out data/gpu/nav --workers 10 \
  && ws datagen --kind manip --episodes ${MANIP_EPISODES:-250} --frames 32 --size 128x96 --seed 2000 --out data/gpu/manip --workers 10 ) > /tmp/datagen.log 2>&1 &
datagen_pid=$!
stamp smoke
SMOKE=1 WORKERS=2 scripts/train_ws_tiny_gpu.sh || { stamp "SMOKE FAILED"; exit 4; }
stamp "smoke ok; waiting for datagen"
wait "$datagen_pid"; tail -c 600 /tmp/datagen.log  # a bare wait also waits for the tee above: forever
stamp run
scripts/train_ws_tiny_gpu.sh; rc=$?
stamp "chain rc=$rc"
S=runs/ws-tiny-gpu/distill/final.safetensors
mkdir -p /tmp/pack/bench
if [[ -f $S ]]; then
  for a in "float32 1" "bfloat16 1" "bfloat16 2"; do set -- $a
    (( SECONDS < ${BENCH_UNTIL:-505} )) && timeout 40 python3 -m worldscape_ros.model.bench --checkpoint $S --device cuda \
      --dtype $1 --window $2 --chunks 300 --no-speedup --json /tmp/pack/bench/tiny_$1_w$2.json
  done
  (( SECONDS < ${BENCH_UNTIL:-505} )) && timeout 60 python3 -m worldscape_ros.model.bench --config ws-1.3b --device cuda \
      --dtype bfloat16 --chunks 30 --no-speedup --json /tmp/pack/bench/ws13b_bf16_w1.json
  split -b 15m $S "$OUT/student.part-"
fi
T=runs/ws-tiny-gpu/teacher/final.safetensors
[[ -f $T ]] && python3 - "$T" <<'PY'
import sys, torch
from safetensors import safe_open
from safetensors.torch import save_file
with safe_open(sys.argv[1], 'pt') as f:
    meta = f.metadata(); t = {k: f.get_tensor(k) for k in f.keys()}
save_file({k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in t.items()}, '/tmp/teacher_bf16.safetensors', metadata=meta)
PY
[[ -f /tmp/teacher_bf16.safetensors ]] && split -b 15m /tmp/teacher_bf16.safetensors "$OUT/teacher_bf16.part-"
for s in codec causal teacher distill; do mkdir -p /tmp/pack/$s; cp runs/ws-tiny-gpu/$s/metrics.csv /tmp/pack/$s/ 2>/dev/null; done
cp data/gpu/nav/nav_000003.episode.npz data/gpu/nav/datagen.json /tmp/pack/ 2>/dev/null; cp /tmp/datagen.log /tmp/pack/
tar czf "$OUT/pack.tar.gz" -C /tmp/pack .
sha256sum runs/ws-tiny-gpu/*/final.safetensors
stamp end
