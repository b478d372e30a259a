# Helpers for building ROS 2 packages against the Kilted wheels in a venv; sourced by build_interfaces.sh and
# colcon_build.sh.

# The wheels' exported cmake files name the build farm's interpreter include dirs
# (/opt/python/cp3XY-cp3XY/...): point them at this venv's Python and NumPy headers.
fix_wheel_cmake_paths() {
  local venv="$1" py="$1/bin/python" py_inc np_inc
  py_inc="$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
  np_inc="$("$py" -c 'import numpy; print(numpy.get_include())')"
  { grep -rlE '/opt/python/cp3[0-9]+-cp3[0-9]+' "$venv/share" --include='*.cmake' 2>/dev/null || true; } \
    | while read -r f; do
      sed -i -E \
        -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/lib/python3\.[0-9]+/site-packages/numpy/_core/include#$np_inc#g" \
        -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/include/python3\.[0-9]+#$py_inc#g" "$f"
    done
}

# Make the venv an underlay colcon chains to, as /opt/ros/<distro> is: colcon records every AMENT_PREFIX_PATH
# entry holding local_setup.* files, and its install/setup.bash sources them first. Without this, sourcing
# install/setup.bash leaves the venv out of AMENT_PREFIX_PATH and ament_index finds none of the wheels' packages.
write_venv_prefix_hooks() {
  local venv="$1"
  cat > "$venv/local_setup.sh" <<HOOK
# Written by worldscape_ros scripts/ros_wheels.sh: this venv's ROS 2 wheels as an ament prefix.
case ":\${AMENT_PREFIX_PATH:-}:" in
  *":$venv:"*) ;;
  *) export AMENT_PREFIX_PATH="$venv\${AMENT_PREFIX_PATH:+:\$AMENT_PREFIX_PATH}" ;;
esac
case ":\${PATH:-}:" in
  *":$venv/bin:"*) ;;
  *) export PATH="$venv/bin\${PATH:+:\$PATH}" ;;
esac
HOOK
  for shell in bash zsh; do
    printf '# Written by worldscape_ros scripts/ros_wheels.sh\n. "%s/local_setup.sh"\n' "$venv" \
      > "$venv/local_setup.$shell"
  done
}
