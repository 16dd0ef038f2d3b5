#!/usr/bin/env bash
# `make demo`: the simulated ALOHA on MuJoCo with the demo checkpoint shipped in
# checkpoints/aloha_sim_transfer_cube, closed loop through the real nodes (inference, executor,
# MuJoCo ALOHA) for a few TransferCube episodes; prints the success rate, reward and latency
# beside the two baselines and writes the report, plots and the top-camera strip / GIF to
# build/demo. Set-up has already run.
#   EPISODES=n (default 10: consecutive seeds from SEED, the interval printed)  SEED=s (first seed, default 1000)  CHECKPOINT=DIR  DEVICE=cuda
#   SIM=kinematic: the kinematic stand-in instead (any ROBOT=name|path, DURATION=seconds; a
#   tiny random policy unless CHECKPOINT is set).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build_test_interfaces.sh >/dev/null
# shellcheck disable=SC1091
source scripts/ros_env.sh
if [ "${SIM:-mujoco}" = kinematic ]; then
  args=(--robot "${ROBOT:-aloha}" --duration "${DURATION:-15}" --device "${DEVICE:-cpu}"
        --work_dir build/demo_kinematic)
  if [ -n "${CHECKPOINT:-}" ]; then args+=(--checkpoint "$CHECKPOINT"); fi
  exec python -m vla_adapter_ros.tools.showcase "${args[@]}"
fi
export MUJOCO_GL=${MUJOCO_GL:-egl}
exec python -m vla_adapter_ros.tools.sim_eval \
  --checkpoint "${CHECKPOINT:-checkpoints/aloha_sim_transfer_cube}" \
  --episodes "${EPISODES:-10}" --seed "${SEED:-1000}" --device "${DEVICE:-cpu}" \
  --output_dir build/demo
