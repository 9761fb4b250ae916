#!/usr/bin/env bash
# The whole test suite from nothing: sets up .venv (idempotent, seconds when ready), then runs pytest with
# every ROS participant confined to loopback (DDS profile + LOCALHOST discovery + a random domain id, applied
# by test/conftest.py; as root also inside a private network namespace that has only `lo`).
# Extra arguments go to pytest, e.g. `scripts/test.sh -m "not slow"` or `scripts/test.sh test/test_model.py`.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 scripts/setup_env.py

export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$((RANDOM % 100 + 1))}"
pytest_cmd=(.venv/bin/python -m pytest "$@")
if [ "$(id -u)" = 0 ] && unshare -n true 2>/dev/null; then
  echo "[test] private network namespace (loopback only), ROS_DOMAIN_ID=$ROS_DOMAIN_ID"
  exec unshare -n bash -c 'ip link set lo up && exec "$@"' bash "${pytest_cmd[@]}"
fi
echo "[test] loopback-only DDS profile, ROS_DOMAIN_ID=$ROS_DOMAIN_ID (not root: no private namespace)"
exec "${pytest_cmd[@]}"
