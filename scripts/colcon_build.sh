#!/usr/bin/env bash
# colcon build of ros2_ws (worldscape_msgs, then worldscape_ros).
#   With a sourced ROS 2 (ROS_DISTRO set): a plain `colcon build` against it.
#   Otherwise against the Kilted wheels and colcon of the venv (`make setup`): the wheels' cmake files are
#   pointed at this venv's headers and the venv is made an underlay, so `source install/setup.bash` alone
#   gives a working environment (the venv in AMENT_PREFIX_PATH, its python first on PATH).
# Usage: scripts/colcon_build.sh [--base DIR] [extra colcon build arguments]
#   --base DIR: build/, install/ and log/ go under DIR (default: ros2_ws/).
# Variables: VENV (default .venv), PYTHON (the system interpreter, default python3).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ws="$root/ros2_ws"
base="$ws"
if [ "${1:-}" = "--base" ]; then
  base="$(mkdir -p "$2" && cd "$2" && pwd)"; shift 2
fi
args=(--base-paths "$ws/src" --build-base "$base/build" --install-base "$base/install")

# A sourced ROS 2 is one whose rclpy the system interpreter imports (as scripts/setup.sh decides).
if [ -n "${ROS_DISTRO:-}" ] && "${PYTHON:-python3}" -c "import rclpy" >/dev/null 2>&1; then
  echo "[colcon] building against the sourced ROS 2 $ROS_DISTRO"
  cd "$ws"
  exec colcon --log-base "$base/log" build "${args[@]}" "$@"
fi

venv="$(cd "${VENV:-$root/.venv}" && pwd)"
py="$venv/bin/python"
[ -x "$venv/bin/colcon" ] || { echo "[colcon] no colcon in $venv: run make setup" >&2; exit 1; }
# shellcheck source=scripts/ros_wheels.sh
. "$root/scripts/ros_wheels.sh"
fix_wheel_cmake_paths "$venv"
write_venv_prefix_hooks "$venv"
export VIRTUAL_ENV="$venv"
export PATH="$venv/bin:$PATH"
export AMENT_PREFIX_PATH="$venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export CMAKE_PREFIX_PATH="$venv${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
echo "[colcon] building against the ROS 2 wheels in $venv"
cd "$ws"
exec colcon --log-base "$base/log" build "${args[@]}" "$@" \
  --cmake-args -DBUILD_TESTING=OFF -DPython3_EXECUTABLE="$py"
