#!/usr/bin/env bash
# Builds the test-only interbotix_xs_msgs (test/interfaces/, COLCON_IGNOREd so that a robot
# workspace never builds it beside the real package) into build/test_interfaces/install.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
venv=${VENV:-$repo/.venv}
base=$repo/build/test_interfaces
mkdir -p "$base/src"
rm -rf "$base/src/interbotix_xs_msgs"
cp -r test/interfaces/interbotix_xs_msgs "$base/src/"
rm "$base/src/interbotix_xs_msgs/COLCON_IGNORE"
export VIRTUAL_ENV=$venv PATH=$venv/bin:$PATH AMENT_PREFIX_PATH=$venv
# shellcheck disable=SC1091
set +u  # colcon's setup scripts read unset variables
source "$repo/install/setup.bash"
set -u
colcon --log-base "$base/log" build --base-paths "$base/src" --build-base "$base/build" \
  --install-base "$base/install" --merge-install \
  --cmake-args -DPython3_EXECUTABLE="$venv/bin/python" -DBUILD_TESTING=OFF \
  --event-handlers console_cohesion- summary+ status- 2>&1 \
  | { grep -v "doesn't contain any 'local_setup" || true; }
