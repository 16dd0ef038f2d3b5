#!/usr/bin/env bash
# `make demo-checkpoint`: how checkpoints/aloha_sim_transfer_cube was made, end to end.
# 1. scripted demonstrations recorded as rosbag2 episodes: seeds 0-49 clean, seeds 50-79 with
#    smooth 0.04 rad pushes of the arm joints (only the episodes that still transfer the cube
#    are kept: they show the way back to the demonstration);
# 2. vla-adapter-train with recipe H, config/demo/transfer_cube_pos_train.yaml (the table crop of
#    cam_high, the auxiliary cube loss from the demos' aux_targets.json, towers trained from
#    2-D sine-cosine positions) for 5000 steps;
# 3. vla-adapter-compact-checkpoint --tensors all (bfloat16, under 50 MB).
# HEAD=dual_arm (default, the shipped checkpoint) or l1; OUT=folder (default build/demo_checkpoint).
# CONFIG=training YAML (default recipe H; the earlier recipes of issue 19 are beside it in
# config/demo: transfer_cube_train.yaml (the previous demo checkpoint, 5000 steps), ..._crop_,
# ..._vision_, ..._gate_, ..._aux_train.yaml (recipe G)), STEPS=optimiser steps (5000).
# About 70 min on a 2-core CPU (one thread, 1.2-1.4 steps/s); a GPU: DEVICE=cuda.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build_test_interfaces.sh >/dev/null  # the Interbotix messages the recorder writes
# shellcheck disable=SC1091
source scripts/ros_env.sh
export MUJOCO_GL=${MUJOCO_GL:-egl}
out=${OUT:-build/demo_checkpoint}
head=${HEAD:-dual_arm}
if [ ! -f "$out/demos_clean/demos_summary.yaml" ]; then
  rm -rf "$out/demos_clean"
  python -m vla_adapter_ros.tools.scripted_demos --output "$out/demos_clean" --episodes 50 --first_seed 0
fi
if [ ! -f "$out/demos_disturbed/demos_summary.yaml" ]; then
  rm -rf "$out/demos_disturbed"
  python -m vla_adapter_ros.tools.scripted_demos --output "$out/demos_disturbed" --episodes 30 \
    --first_seed 50 --disturbance_std 0.04
fi
config=${CONFIG:-config/demo/transfer_cube_pos_train.yaml}
aux=()  # a recipe with the auxiliary cube loss (recipe G) reads the demos' aux_targets.json
if grep -q '^aux_weight:' "$config"; then
  for demos in "$out/demos_clean" "$out/demos_disturbed"; do
    [ -f "$demos/aux_targets.json" ] || python -c "import sys, pathlib, yaml
from vla_adapter_ros.tools.scripted_demos import write_cube_targets
folder = pathlib.Path(sys.argv[1])  # demos recorded before sim-demos wrote the targets
write_cube_targets(folder, yaml.safe_load((folder / 'demos_summary.yaml').read_text())['per_episode'])" "$demos"
    aux+=("$demos/aux_targets.json")
  done
  aux=(--aux_targets "${aux[@]}")
fi
python -m training.finetune --config "$config" "${aux[@]}" \
  --data "$out/demos_clean" "$out/demos_disturbed" --head_kind "$head" \
  --max_steps "${STEPS:-5000}" \
  --device "${DEVICE:-auto}" --output_dir "$out/run_$head" --cache_dir "$out/cache_$head"
# 3. every tensor stored in bfloat16 (as upstream ships), the shipped form: under 50 MB.
rm -rf "$out/compact_$head"
python -m training.compact_checkpoint --checkpoint "$out/run_$head/final" --tensors all \
  --output_dir "$out/compact_$head"
echo "checkpoint: $out/run_$head/final (compact copy: $out/compact_$head)"
