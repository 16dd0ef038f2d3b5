#!/usr/bin/env bash
# The README test command's body: set-up, test interfaces, then colcon test (pytest incl. ruff)
# over vla_adapter_msgs and vla_adapter_ros, inside a private network namespace when possible.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" != '--inside' ]; then
  scripts/setup.sh
  scripts/build_test_interfaces.sh
  # A network namespace of our own with only `lo` up: no DDS packet can leave this host.
  if unshare -n true 2>/dev/null; then
    echo '[test] running inside a private network namespace (loopback only)'
    exec unshare -n bash -c 'ip link set lo up && exec "$0" --inside' "$0"
  fi
  echo '[test] no network namespace available: loopback-only discovery and Fast DDS profile'
fi

# shellcheck disable=SC1091
source scripts/ros_env.sh
# PYTEST_ARGS (optional, e.g. "-k fixture") narrows the run.
# shellcheck disable=SC2086
echo "[test] ROS_DOMAIN_ID=$ROS_DOMAIN_ID ROS_LOG_DIR=$ROS_LOG_DIR"
status=0
colcon --log-base log test --base-paths . vla_adapter_msgs --return-code-on-test-failure \
  --event-handlers console_direct+ summary+ status- \
  --pytest-args -p no:cacheprovider ${PYTEST_ARGS:-} || status=$?
colcon test-result --verbose --test-result-base build || true
exit "$status"
