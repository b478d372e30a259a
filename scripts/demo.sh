#!/usr/bin/env bash
# The demo (make demo / make demo-manip; `make setup` has run first): starts the simulator node with the shipped
# model in its own process, drives a scripted tour in lock step, records the bag and writes runs/demo/ (or
# runs/demo-manip/) with the bag, an MP4 and a contact sheet. Usage: scripts/demo.sh [nav|manip] [demo options]
set -euo pipefail
cd "$(dirname "$0")/.."
export MUJOCO_GL="${MUJOCO_GL:-osmesa}"
kind="${1:-nav}"
shift || true
exec .venv/bin/python -m worldscape_ros.ros.demo "$kind" "$@"
