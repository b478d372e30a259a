#!/usr/bin/env bash
# The demo: starts the simulator node with the shipped model, drives a scripted tour, records a bag.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! .venv/bin/python -c "import worldscape_ros.ros.demo" >/dev/null 2>&1; then
  echo "worldscape demo: not built yet (the simulator node and the tools are still to come)"
  exit 0
fi
exec .venv/bin/python -m worldscape_ros.ros.demo "${1:-nav}"
