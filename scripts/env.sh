# Enter the ocean_ros environment built by scripts/setup_env.py:  source scripts/env.sh
# (bash or zsh; sourcing it twice changes nothing). It
#   - activates .venv (PATH, VIRTUAL_ENV, the prompt), whose ROS 2 wheels set their own library path;
#   - puts the venv first in AMENT_PREFIX_PATH, so that ros2 launch / ros2 run / the ament index find ocean_ros;
#   - sets the DDS variables the README recommends for camera images, each only where it is not set already:
#     RMW_IMPLEMENTATION=rmw_fastrtps_cpp, FASTDDS_DEFAULT_PROFILES_FILE=config/fastdds_loopback.xml (16 MiB
#     shared-memory segments; confined to loopback) and ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST to match it.
#     To talk across machines, set your own profile and discovery range before sourcing this.
# Nothing else: ROS_DOMAIN_ID and your other variables are left as they are.

if [ -n "${BASH_VERSION:-}" ]; then
  _ocean_env_source="${BASH_SOURCE[0]}"
elif [ -n "${ZSH_VERSION:-}" ]; then
  _ocean_env_source="${(%):-%x}"
else
  _ocean_env_source="${OCEAN_ROS_ROOT:-.}/scripts/env.sh"  # plain sh cannot tell: run from the repository root
fi
_ocean_env_root="$(cd "$(dirname "$_ocean_env_source")/.." && pwd)"
unset _ocean_env_source

if [ ! -f "$_ocean_env_root/.venv/bin/activate" ] || [ ! -d "$_ocean_env_root/.venv/lib/ocean_ros" ]; then
  echo "ocean_ros: $_ocean_env_root/.venv is not set up; run: python3 $_ocean_env_root/scripts/setup_env.py" >&2
  unset _ocean_env_root
  return 1 2>/dev/null || exit 1
fi

# shellcheck disable=SC1091
. "$_ocean_env_root/.venv/bin/activate"

case ":${AMENT_PREFIX_PATH:-}:" in
  *":$VIRTUAL_ENV:"*) ;;
  *) export AMENT_PREFIX_PATH="$VIRTUAL_ENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}" ;;
esac
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
export FASTDDS_DEFAULT_PROFILES_FILE="${FASTDDS_DEFAULT_PROFILES_FILE:-$_ocean_env_root/config/fastdds_loopback.xml}"
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
unset _ocean_env_root
