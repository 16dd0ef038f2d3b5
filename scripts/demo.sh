#!/usr/bin/env bash
# `make demo`: the pipeline on the simulated ALOHA (see README). Set-up has already run.
# CHECKPOINT=DIR uses your policy; DURATION=seconds after the first chunk (default 15);
# DEVICE=cuda for a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build_test_interfaces.sh >/dev/null
# shellcheck disable=SC1091
source scripts/ros_env.sh
args=(--duration "${DURATION:-15}" --device "${DEVICE:-cpu}" --work-dir build/demo)
if [ -n "${CHECKPOINT:-}" ]; then args+=(--checkpoint "$CHECKPOINT"); fi
exec python -m vla_adapter_ros.demo "${args[@]}"
