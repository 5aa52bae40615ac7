# Usage: `. ./env.sh` — enter the built environment (venv, sourced workspace, localhost DDS).
# Build it first with `make setup` (or `make test` / `make demo`).
if [ ! -d "$(dirname "${BASH_SOURCE[0]}")/.venv" ]; then
  echo "env.sh: no .venv yet — run 'make setup' first" >&2
  return 1 2>/dev/null || exit 1
fi
source "$(dirname "${BASH_SOURCE[0]}")/scripts/ros_env.sh"
