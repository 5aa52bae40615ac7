# Sourced (not run): puts a shell into the project's environment without building anything.
# Used by env.sh, the Makefile and setup_env.sh.
# The ROS setup scripts read unset variables: relax `set -u` while sourcing, restore it after.
case $- in *u*) _op_nounset=1; set +u ;; *) _op_nounset=0 ;; esac
_op_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
_op_venv=$(readlink -f "${VENV:-$_op_root/.venv}")
# shellcheck disable=SC1091
source "$_op_venv/bin/activate"
if [ -z "${ROS_DISTRO:-}" ]; then
  # ROS 2 from PyPI wheels: the ROS share/ and lib/ files live in the venv prefix.
  export AMENT_PREFIX_PATH="$_op_venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
  export CMAKE_PREFIX_PATH="$_op_venv${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
fi
if [ -f "$_op_root/install/setup.bash" ]; then
  # shellcheck disable=SC1091
  source "$_op_root/install/setup.bash"
fi
# Fast DDS: large shared-memory segments so images cross processes (config/fastdds.xml says why).
export FASTDDS_DEFAULT_PROFILES_FILE=${FASTDDS_DEFAULT_PROFILES_FILE:-$_op_root/config/fastdds.xml}
# DDS stays on this machine unless the caller chose otherwise (a robot keeps its own settings).
export ROS_AUTOMATIC_DISCOVERY_RANGE=${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}
export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-$(( ($$ % 100) + 101 ))}
[ "$_op_nounset" = 1 ] && set -u
unset _op_root _op_venv _op_nounset
