#!/usr/bin/env bash
# GPU throughput of ws-tiny, ws-small and ws-1.3b at 832x480 on a machine with only torch (no install):
#   bash scripts/bench_gpu.sh [OUT_DIR]      (about 5 to 7 minutes on one H100)
# Writes OUT_DIR/bench_<config>.json (default $OUT or runs/bench_gpu) and prints one line per config.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-runs/bench_gpu}}"
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else '')"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv 2>/dev/null || true
# chunk counts sized so the three runs fit in 8 minutes; 1.3b makes 12 frames per chunk
run() {
  local cfg="$1" chunks="$2" dtype="$3"
  timeout 240 python -m worldscape_ros.model.bench --config "$cfg" --device cuda --dtype "$dtype" \
    --size 832x480 --chunks "$chunks" --json "$out/bench_${cfg}_${dtype}.json" || echo "bench $cfg failed or timed out"
}
run ws-tiny 200 bfloat16
run ws-small 200 bfloat16
run ws-1.3b 40 bfloat16
python - "$out" <<'PY'
import json, pathlib, sys
for p in sorted(pathlib.Path(sys.argv[1]).glob('bench_*.json')):
    r = json.loads(p.read_text())
    print(f"{r['config']:>8} {r['size']} {r['dtype']}: {r['fps']:.1f} fps, p50 {r['latency_ms_p50']:.1f} ms/chunk, "
          f"{r['pixels_per_s'] / 1e6:.1f} Mpx/s, speedup@64 {r.get('streaming_speedup_at_64', float('nan')):.1f}x")
PY
