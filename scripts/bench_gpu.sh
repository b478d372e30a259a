#!/usr/bin/env bash
# GPU throughput, each config at its own size, on a machine with torch and the torch-only core's dependencies
# (numpy, einops, pyyaml, safetensors, opencv-python-headless; no ROS):
#   ws-tiny (the shipped weights, 128x96) stepped live, and N = 1, 8, 64 batched sessions;
#   ws-small (256x192) and ws-1.3b (the Wan2.1-1.3B shape, 832x480), random weights: speed does not depend on them.
# All in bfloat16; attention goes through flash-attn where it is installed (model/attention.py), else SDPA.
#   bash scripts/bench_gpu.sh [OUT_DIR]        (under 10 minutes: each run has its own time limit)
#   DEVICE=cpu QUICK=1 CONFIGS="ws-tiny ws-small" bash scripts/bench_gpu.sh   (a dry run of the script on a CPU)
# Writes OUT_DIR/*.json (default $OUT or runs/bench_gpu) and prints one line per run.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-runs/bench_gpu}}"
device="${DEVICE:-cuda}"
configs="${CONFIGS:-ws-tiny ws-small ws-1.3b}"
quick="${QUICK:-0}"
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else '')"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv 2>/dev/null || true
chunks() { if [ "$quick" = 1 ]; then echo 3; else echo "$1"; fi; }
bench() {  # name, timeout s, then worldscape bench's arguments
  local name="$1" limit="$2"
  shift 2
  local extra=()
  if [ "$quick" = 1 ] && [[ "$name" != *_sessions ]]; then extra=(--no-speedup); fi  # the speedup streams 64 chunks
  timeout "$limit" python -m worldscape_ros.model.bench --device "$device" --dtype bfloat16 --json "$out/$name.json" \
    "$@" "${extra[@]}" || echo "bench $name failed or timed out"
}
for cfg in $configs; do
  case "$cfg" in
    ws-tiny)
      bench ws-tiny 120 --checkpoint models/ws-tiny.safetensors --chunks "$(chunks 500)"
      bench ws-tiny_sessions 150 --checkpoint models/ws-tiny.safetensors --sessions 1 8 64 --chunks "$(chunks 30)"
      ;;
    ws-small) bench ws-small 120 --config ws-small --chunks "$(chunks 200)" ;;
    ws-1.3b) bench ws-1.3b 200 --config ws-1.3b --chunks "$(chunks 40)" --no-speedup ;;  # 64 chunks recomputed: too long
    *) echo "unknown config $cfg" ;;
  esac
done
python - "$out" <<'PY'
import json, pathlib, sys
for p in sorted(pathlib.Path(sys.argv[1]).glob('*.json')):
    r = json.loads(p.read_text())
    head = f"{r['config']:>8} {r['size']} {r['dtype']}"
    if 'runs' in r:  # batched sessions
        for run in r['runs']:
            print(f"{head}, {run['sessions']:>2} sessions: {run['fps']:.1f} fps aggregate, "
                  f"p50 {run['latency_ms_p50']:.1f} ms/step")
    else:
        print(f"{head}: {r['fps']:.1f} fps, p50 {r['latency_ms_p50']:.1f} ms/chunk, "
              f"speedup@64 {r.get('streaming_speedup_at_64', float('nan')):.1f}x")
PY
