#!/usr/bin/env bash
# One idempotent set-up: venv with pinned dependencies, repaired ROS 2 wheel cmake files, colcon
# build of vla_adapter_msgs and vla_adapter_ros. Re-running skips what is already up to date.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
venv=${VENV:-$repo/.venv}
python=${PYTHON:-python3}
stamp=$venv/.requirements.sha256

want=$(cat requirements/*.txt | sha256sum | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ]; then
  echo "[setup] creating virtual environment $venv"
  "$python" -m venv "$venv"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[setup] installing pinned dependencies (torch first; a few minutes on a fresh machine)"
  # Some machines' pip configuration lists local mirrors that do not exist; hide that noise
  # (pipefail still reports a failing pip).
  "$venv/bin/python" -m pip install --quiet -r requirements/torch.txt -r requirements/core.txt \
    -r requirements/ros.txt -r requirements/dev.txt -r requirements/sim.txt 2>&1 \
    | { grep -v 'is ignored: it is neither' || true; }
  # The tests' lerobot oracle: --no-deps, so its own pins never move ours.
  "$venv/bin/python" -m pip install --quiet --no-deps -r requirements/lerobot_oracle.txt 2>&1 \
    | { grep -v 'is ignored: it is neither' || true; }
  "$venv/bin/python" -c 'import torch, torchvision, timm, transformers, rclpy, rosbags, h5py, mujoco, dm_control, gym_aloha, av, pyarrow, lerobot.datasets.lerobot_dataset' \
    || { echo '[setup] dependency installation failed' >&2; exit 1; }
  echo "$want" > "$stamp"
fi
"$venv/bin/python" scripts/repair_ros_wheel_cmake.py "$venv"
# Rerun (the live view) sends anonymous usage data from its viewer and SDK unless told not to:
# nothing here talks to the internet. CI=1 keeps this one command from reporting itself.
CI=1 "$venv/bin/rerun" analytics disable >/dev/null

echo '[setup] colcon build: vla_adapter_msgs, vla_adapter_ros'
export VIRTUAL_ENV=$venv PATH=$venv/bin:$PATH AMENT_PREFIX_PATH=$venv
colcon --log-base log build --symlink-install --base-paths . vla_adapter_msgs \
  --cmake-args -DPython3_EXECUTABLE="$venv/bin/python" -DBUILD_TESTING=OFF \
  --event-handlers console_cohesion- summary+ status- 2>&1 \
  | grep -v "doesn't contain any 'local_setup" | grep -v 'Unknown distribution option' \
  | grep -v 'warnings.warn(msg)' | grep -v '^--- stderr\|^---$'
test "${PIPESTATUS[0]}" -eq 0
echo '[setup] done'
