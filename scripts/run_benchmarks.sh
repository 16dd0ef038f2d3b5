#!/usr/bin/env bash
# `make benchmarks`: every script in benchmarks/ in turn; each prints its own numbers.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build_test_interfaces.sh >/dev/null
# shellcheck disable=SC1091
source scripts/ros_env.sh
for script in benchmarks/*.py; do
  echo "=== $script"
  python "$script"
done
