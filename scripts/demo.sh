#!/usr/bin/env bash
# `make demo`: the pipeline on a simulated robot (see README). Set-up has already run.
# ROBOT=name|path picks the robot description (default aloha; e.g. ROBOT=wx250 for a 5-joint
# arm); CHECKPOINT=DIR uses your policy; DURATION=seconds after the first chunk (default 15);
# DEVICE=cuda for a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build_test_interfaces.sh >/dev/null
# shellcheck disable=SC1091
source scripts/ros_env.sh
args=(--robot "${ROBOT:-aloha}" --duration "${DURATION:-15}" --device "${DEVICE:-cpu}"
      --work_dir build/demo)
if [ -n "${CHECKPOINT:-}" ]; then args+=(--checkpoint "$CHECKPOINT"); fi
exec python -m vla_adapter_ros.demo "${args[@]}"
