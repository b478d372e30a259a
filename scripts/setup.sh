#!/usr/bin/env bash
# One-command, idempotent setup on a bare Debian machine with Python 3.11 (no ROS needed):
#   Debian packages (offscreen GL, cmake) -> .venv -> torch -> ROS 2 Kilted wheels (or a sourced ROS 2)
#   -> pinned dependencies -> this project (editable) -> interface package generated from msg/ and srv/.
# Variables: PYTHON (interpreter, default python3), VENV (default .venv),
#            TORCH_SPEC (default torch==2.13.0, the CPU wheel on disk; e.g. "torch==2.13.0" with
#            TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 for a CUDA build on a GPU machine).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
TORCH_INDEX_URL="${TORCH_INDEX_URL:-}"
stamp_dir="$VENV/.worldscape"

log() { printf '[setup] %s\n' "$*"; }
hash_of() { cat "$@" 2>/dev/null | sha256sum | cut -c1-16; }

# 1. Debian packages: offscreen GL for MuJoCo, a C++ toolchain and cmake for the interfaces.
need_apt=()
dpkg -s libosmesa6 >/dev/null 2>&1 || need_apt+=(libosmesa6)
dpkg -s libegl1 >/dev/null 2>&1 || need_apt+=(libegl1)
dpkg -s libgl1 >/dev/null 2>&1 || need_apt+=(libgl1)
command -v cmake >/dev/null 2>&1 || need_apt+=(cmake)
command -v g++ >/dev/null 2>&1 || need_apt+=(g++)
command -v make >/dev/null 2>&1 || need_apt+=(make)
# a headless Chromium for the web viewer's browser tests (tests/viewer)
command -v chromium-headless-shell >/dev/null 2>&1 || command -v chromium >/dev/null 2>&1 \
  || need_apt+=(chromium-headless-shell)
if [ "${#need_apt[@]}" -gt 0 ]; then
  log "installing Debian packages: ${need_apt[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need_apt[@]}"
fi

# 2. A sourced ROS 2 (ROS_DISTRO set and its rclpy importable) is used instead of the wheels.
system_ros=0
if [ -n "${ROS_DISTRO:-}" ] && "$PYTHON" -c "import rclpy" >/dev/null 2>&1; then
  system_ros=1
  log "using the sourced ROS 2 $ROS_DISTRO"
fi

if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  if [ "$system_ros" -eq 1 ]; then
    "$PYTHON" -m venv --system-site-packages "$VENV"
  else
    "$PYTHON" -m venv "$VENV"
  fi
fi
mkdir -p "$stamp_dir"
py="$VENV/bin/python"
pip_install() {
  # pip warns about every local index folder it cannot use: keep those lines out of the log.
  "$py" -m pip install --quiet --disable-pip-version-check "$@" 2> >(grep -v 'is ignored: it is neither' >&2)
}

# 3. Python packages, skipped when the pinned lists have not changed since the last run.
want="$(hash_of requirements.txt requirements-ros.txt setup.py setup.cfg)-$TORCH_SPEC-$system_ros"
if [ "$(cat "$stamp_dir/pip" 2>/dev/null)" != "$want" ]; then
  log "installing $TORCH_SPEC"
  if [ -n "$TORCH_INDEX_URL" ]; then
    pip_install "$TORCH_SPEC" --index-url "$TORCH_INDEX_URL"
  else
    pip_install "$TORCH_SPEC"
  fi
  if [ "$system_ros" -eq 0 ]; then
    log "installing ROS 2 Kilted wheels"
    pip_install -r requirements-ros.txt
  fi
  log "installing pinned dependencies and the project"
  pip_install -r requirements.txt
  pip_install --no-deps --no-build-isolation -e .
  echo "$want" > "$stamp_dir/pip"
else
  log "Python packages up to date"
fi

# 4. Interface packages generated into the venv (only for the wheel path: colcon builds them on a real ROS).
if [ "$system_ros" -eq 0 ]; then
  VENV_ABS="$(cd "$VENV" && pwd)"
  bash scripts/build_interfaces.sh "$VENV_ABS" ros2_ws/src/worldscape_msgs worldscape_msgs
  if ! "$py" -c "import tf2_msgs.msg" >/dev/null 2>&1 \
     || [ -f "$stamp_dir/tf2_msgs.fallback" ]; then
    bash scripts/build_interfaces.sh "$VENV_ABS" ros2_ws/fallback/tf2_msgs tf2_msgs
    touch "$stamp_dir/tf2_msgs.fallback"
  fi
fi

"$py" -c "import torch, rclpy, worldscape_msgs.msg, tf2_msgs.msg, mujoco; print('[setup] ok: torch', torch.__version__)"
log "done: $(du -sh "$VENV" | cut -f1) in $VENV"
