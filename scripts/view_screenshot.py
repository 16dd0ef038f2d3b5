"""The README's picture of the live view: a demo recording, Rerun's web viewer, headless Chromium.

    python scripts/view_screenshot.py [--output docs/images/live_view.png]

1. Writes a recording through the live view's own logging (view/rerun_view.py) for the ALOHA
   description: the kinematic stand-in's arms (sim/kinematic_robot.py) following a scripted
   reach, their camera images, and every 0.2 s a predicted chunk of 25 steps that aims at the
   script's targets with a growing error, as a policy's plan would.
2. Serves it with Rerun's own viewer (`rerun --serve-web`), bound to 127.0.0.1 only.
3. Takes a screenshot with headless Chromium (apt package chromium-headless-shell; software
   WebGL), also on 127.0.0.1 only: every other address goes to a closed loopback port (the
   viewer's welcome page would fetch its examples from the internet), and Rerun's usage
   reporting is off (CI=1 here; scripts/setup.sh disables it for good).
"""

import argparse
import os
from pathlib import Path
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from vla_adapter_core.robot_description import load_robot_description  # noqa: E402
from vla_adapter_ros.sim.kinematic_robot import SceneRenderer, SimArm  # noqa: E402
from vla_adapter_ros.view.rerun_view import RobotView  # noqa: E402

T0 = 1_780_000_000_000_000_000  # ns
SECONDS, JOINT_HZ, CAMERA_HZ, CHUNK_EVERY_S, CHUNK_STEPS = 6.0, 50, 10, 0.2, 25


def script_target(robot, t: float) -> np.ndarray:
    """The scripted reach (policy units): shoulder and elbow swing, grippers close mid-way."""
    start = np.concatenate([arm.start_pose for arm in robot.arms])
    target = start.copy()
    for part in robot.arm_slices():
        target[part.start + 1] += 0.4 * np.sin(0.9 * t)  # shoulder
        target[part.start + 2] -= 0.3 * np.sin(0.9 * t)  # elbow
        target[part.stop - 1] = 1.0 if t < 3.0 else 0.2  # gripper
    return target


def write_recording(path: Path) -> None:
    import rerun as rr

    robot = load_robot_description('aloha')
    recording = rr.RecordingStream('vla_adapter_view')
    recording.save(str(path))
    view = RobotView(robot, recording)
    arms = [SimArm(arm) for arm in robot.arms]
    renderer = SceneRenderer(240, 320)
    dt = 1.0 / JOINT_HZ
    for step in range(int(SECONDS * JOINT_HZ)):
        t, stamp = step * dt, T0 + round(step * dt * 1e9)
        target = robot.policy_to_joint_angles(script_target(robot, t))
        for sim, part in zip(arms, robot.split(target)):
            sim.command_arm(part[:-1])
            sim.command_gripper(part[-1])
            sim.step(dt)
        for index, (sim, arm) in enumerate(zip(arms, robot.arms)):
            view.joints('measured', index, stamp, arm.action_from_joint_angles(sim.position))
            view.joints('commanded', index, stamp, script_target(robot, t)[robot.arm_slices()[
                index]])
        if step % (JOINT_HZ // CAMERA_HZ) == 0:
            for camera_index, name in enumerate(robot.cameras):
                view.camera(name, stamp, renderer.render(camera_index,
                                                         [sim.position for sim in arms]))
        if step % round(CHUNK_EVERY_S * JOINT_HZ) == 0:
            offsets = np.arange(CHUNK_STEPS) * dt
            plan = np.stack([script_target(robot, t + k) for k in offsets])  # (C, A)
            moving = script_target(robot, 1.0) != script_target(robot, 0.0)  # (A,)
            plan += np.linspace(0, 0.08, CHUNK_STEPS)[:, None] * np.sin(3 * t) * moving
            view.chunk(step // round(CHUNK_EVERY_S * JOINT_HZ), stamp, offsets, plan, 48.0)
        view.status('executor', stamp, 'RUNNING', '')
    view.flush()
    recording.flush()
    recording.disconnect()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


def screenshot(recording: Path, output: Path) -> None:
    chromium = shutil.which('chromium-headless-shell') or shutil.which('chromium')
    if chromium is None:
        raise SystemExit('view_screenshot: no Chromium (apt-get install chromium-headless-shell)')
    grpc_port, web_port, closed_port = free_port(), free_port(), free_port()
    rerun = shutil.which('rerun', path=str(Path(sys.executable).parent))
    quiet = {**os.environ, 'CI': '1'}  # no usage reports from this viewer
    server = subprocess.Popen([rerun, '--serve-web', '--bind', '127.0.0.1', '--port',
                               str(grpc_port), '--web-viewer-port', str(web_port),
                               '--hide-welcome-screen', str(recording)], env=quiet,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(5.0)
        url = (f'http://127.0.0.1:{web_port}/?url=rerun%2Bhttp%3A%2F%2F127.0.0.1%3A{grpc_port}'
               '%2Fproxy')
        subprocess.run([chromium, '--headless', '--no-sandbox', '--hide-scrollbars',
                        f'--proxy-server=http://127.0.0.1:{closed_port}',
                        '--proxy-bypass-list=127.0.0.1', '--host-resolver-rules='
                        'MAP * ~NOTFOUND, EXCLUDE 127.0.0.1', '--disable-background-networking',
                        '--use-angle=swiftshader', '--enable-unsafe-swiftshader',
                        '--window-size=1600,1000', '--virtual-time-budget=30000',
                        f'--screenshot={output}', url], check=True, timeout=180,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    finally:
        server.terminate()
        server.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--output', type=Path, default=REPO / 'docs' / 'images' / 'live_view.png')
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        recording = Path(folder) / 'demo.rrd'
        write_recording(recording)
        screenshot(recording, args.output.resolve())
    print(f'view_screenshot: {args.output}')


if __name__ == '__main__':
    main()
