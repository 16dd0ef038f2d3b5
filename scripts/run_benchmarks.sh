#!/usr/bin/env bash
# `make benchmarks`: every script in benchmarks/ in turn; each prints its own numbers.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build_test_interfaces.sh >/dev/null
set +u  # colcon's setup scripts read unset variables
# shellcheck disable=SC1091
source scripts/ros_env.sh
set -u
for script in benchmarks/*.py; do
  echo "=== $script"
  python "$script"
done
