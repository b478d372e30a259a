#!/usr/bin/env bash
# Generate a ROS 2 interface package (ament_cmake + rosidl) into a venv that holds the Kilted wheels,
# with plain cmake. Usage: build_interfaces.sh VENV_ABS PACKAGE_DIR PACKAGE_NAME
# Skips the build when the package's sources are unchanged and its Python module imports.
set -euo pipefail
venv="$1"; pkg_dir="$2"; name="$3"
py="$venv/bin/python"
stamp="$venv/.worldscape/$name.interfaces"
src_hash="$(cd "$pkg_dir" && cat CMakeLists.txt package.xml $(find -L . -name '*.msg' -o -name '*.srv' | sort) | sha256sum | cut -c1-16)"

if [ "$(cat "$stamp" 2>/dev/null)" = "$src_hash" ] && "$py" -c "import $name.msg" >/dev/null 2>&1; then
  echo "[setup] $name interfaces up to date"
  exit 0
fi
echo "[setup] generating $name interfaces"

# shellcheck source=scripts/ros_wheels.sh
. "$(dirname "${BASH_SOURCE[0]}")/ros_wheels.sh"
fix_wheel_cmake_paths "$venv"
pyver="$("$py" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"

build="$(mktemp -d)"
trap 'rm -rf "$build"' EXIT
export AMENT_PREFIX_PATH="$venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export CMAKE_PREFIX_PATH="$venv${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
export PATH="$venv/bin:$PATH"
cmake -S "$pkg_dir" -B "$build" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
  -DCMAKE_INSTALL_PREFIX="$venv" -DCMAKE_PREFIX_PATH="$venv" \
  -DPython3_EXECUTABLE="$py" -DPYTHON_EXECUTABLE="$py" -DPYTHON_INSTALL_DIR="lib/python$pyver/site-packages" \
  >"$build/configure.log" 2>&1 || { tail -40 "$build/configure.log"; exit 1; }
cmake --build "$build" -j "$(nproc)" >"$build/build.log" 2>&1 || { tail -40 "$build/build.log"; exit 1; }
cmake --install "$build" >"$build/install.log" 2>&1 || { tail -40 "$build/install.log"; exit 1; }
"$py" -c "import $name.msg" || { echo "[setup] $name built but does not import"; exit 1; }
mkdir -p "$(dirname "$stamp")"
echo "$src_hash" > "$stamp"
