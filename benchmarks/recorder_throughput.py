"""Recorder throughput: 3 cameras 640x480 at 30 Hz + 2 joint_states at 50 Hz, counted end to end.

Processes:
- cameras: this script with ``--child cameras``: the ALOHA description's three camera topics,
  rgb8 640x480 at 30 Hz (a gradient with noise and a moving bar, so JPEG has real work);
- joints: ``--child joints``: both follower arms' joint_states (9 joints with velocity and
  effort) at 50 Hz;
- this process: the episode recorder node (EpisodeRecorderNode in a SingleThreadedExecutor, as
  ``vla-adapter-record`` runs it; action_source 'none').

Each publisher waits until the recorder's subscription has matched, publishes for
``--duration_s`` and prints how many messages it sent. The episode runs from before the first
to after the last message, so every published message should be in the bag. Printed per mode
(as received, then JPEG-compressed on the fly): published vs recorded per stream, messages
the recorder dropped (its queue) and lost (never received: DDS), the bag's size per second of
recording and the recorder process's CPU use.

    source scripts/ros_env.sh
    python benchmarks/recorder_throughput.py [--duration_s 10] [--storage mcap]
        [--jpeg_quality 90] [--output_dir /tmp/recorder_benchmark]
"""

import argparse
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
ROBOT = 'aloha'
CAMERA_RATE_HZ, JOINT_RATE_HZ = 30.0, 50.0
HEIGHT, WIDTH = 480, 640
COUNTS_PREFIX = 'PUBLISHED_JSON '


def camera_frames(count: int = 8) -> list[bytes]:
    """Distinct rgb8 640x480 frames: a gradient, mild noise and a bar moving across."""
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH]
    base = np.stack([cols * 255 // WIDTH, rows * 255 // HEIGHT, (rows + cols) % 256], axis=-1)
    frames = []
    for index in range(count):
        frame = base + rng.integers(-8, 9, base.shape)
        frame[:, index * 60: index * 60 + 40] = [220, 30, 30]
        frames.append(np.clip(frame, 0, 255).astype(np.uint8).tobytes())
    return frames


def publisher_child(kind: str, duration_s: float) -> None:
    """Publish one kind of stream for ``duration_s`` once matched; print the counts."""
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image, JointState

    from vla_adapter_core.robot_description import load_robot_description

    robot = load_robot_description(ROBOT)
    rclpy.init()
    node = rclpy.create_node(f'benchmark_{kind}')
    if kind == 'cameras':
        frames = camera_frames()
        streams = [(node.create_publisher(Image, topic, qos_profile_sensor_data),
                    Image(height=HEIGHT, width=WIDTH, encoding='rgb8', step=WIDTH * 3))
                   for topic in robot.camera_topics()]
        period = 1.0 / CAMERA_RATE_HZ
    else:
        names = list(robot.arms[0].driver_joint_names)
        values = np.linspace(-0.5, 0.5, len(names)).tolist()
        streams = [(node.create_publisher(JointState, f'/{arm.namespace}/joint_states',
                                          qos_profile_sensor_data),
                    JointState(name=names, position=values, velocity=values, effort=values))
                   for arm in robot.arms]
        period = 1.0 / JOINT_RATE_HZ
    deadline = time.monotonic() + 30.0
    while any(p.get_subscription_count() == 0 for p, _ in streams):
        if time.monotonic() > deadline:
            raise SystemExit(f'{kind}: the recorder never subscribed')
        time.sleep(0.05)
    time.sleep(1.0)  # the recorder's side of the match settles too (else first frames are lost)
    counts = dict.fromkeys((p.topic_name for p, _ in streams), 0)
    start = time.monotonic()
    tick = 0
    while time.monotonic() - start < duration_s:
        stamp = node.get_clock().now().to_msg()
        for publisher, message in streams:
            message.header.stamp = stamp
            if kind == 'cameras':
                message.data = frames[tick % len(frames)]
            publisher.publish(message)
            counts[publisher.topic_name] += 1
        tick += 1
        time.sleep(max(0.0, start + tick * period - time.monotonic()))
    time.sleep(1.0)  # let the last messages arrive before the participant goes away
    print(COUNTS_PREFIX + json.dumps(counts), flush=True)
    node.destroy_node()
    rclpy.try_shutdown()


def run_mode(args: argparse.Namespace, jpeg_quality: int, output_dir: pathlib.Path) -> dict:
    """One recorded episode with both publishers; the counts, sizes and CPU use."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter

    from vla_adapter_ros.nodes.recorder_node import EpisodeRecorderNode
    from vla_adapter_ros.recording.bag_format import read_episode_metadata

    rclpy.init()
    node = EpisodeRecorderNode(parameter_overrides=[
        Parameter('robot_description', value=ROBOT), Parameter('output_dir', value=str(
            output_dir)), Parameter('storage', value=args.storage),
        Parameter('action_source', value='none'), Parameter('jpeg_quality', value=jpeg_quality),
        Parameter('instruction', value='benchmark'),
        Parameter('require_all_topics', value=False)])
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    bag = pathlib.Path(node.start_episode())
    cpu_start, wall_start = time.process_time(), time.monotonic()
    children = [subprocess.Popen(
        [sys.executable, __file__, '--child', kind, '--duration_s', str(args.duration_s)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for kind in ('cameras', 'joints')]
    outputs = [child.communicate(timeout=args.duration_s + 60)[0] for child in children]
    node.stop_episode('service')
    assert node.recorder.wait_until_written(60.0), 'the writer did not finish'
    cpu_s, wall_s = time.process_time() - cpu_start, time.monotonic() - wall_start
    executor.shutdown()
    node.shutdown_recorder()
    node.destroy_node()
    rclpy.try_shutdown()
    published = {}
    for output in outputs:
        lines = [line for line in output.splitlines() if line.startswith(COUNTS_PREFIX)]
        if not lines:
            raise SystemExit(f'a publisher failed:\n{output}')
        published.update(json.loads(lines[0][len(COUNTS_PREFIX):]))
    metadata = read_episode_metadata(bag)
    recorded = {info['source_topic']: info['messages'] for info in metadata['topics'].values()}
    size = sum(path.stat().st_size for path in bag.iterdir())
    return {'published': published, 'recorded': recorded,
            'dropped': metadata['dropped_messages'], 'bytes': size,
            'duration_s': metadata['duration_s'], 'cpu_percent': 100 * cpu_s / wall_s}


def report(name: str, result: dict, publish_s: float) -> None:
    published, recorded = result['published'], result['recorded']
    for topic, count in published.items():
        print(f'  {topic}: published {count}, recorded {recorded.get(topic, 0)}')
    total_published = sum(published.values())
    total_recorded = sum(recorded.get(topic, 0) for topic in published)
    lost = total_published - total_recorded - result['dropped']
    print(f'{name}: published {total_published}, recorded {total_recorded}, dropped by the '
          f"recorder {result['dropped']}, lost before it {lost}; bag "
          f"{result['bytes'] / 1e6:.1f} MB = {result['bytes'] / publish_s / 1e6:.2f} MB/s of "
          f"recording ({result['bytes'] / publish_s * 3600 / 1e9:.1f} GB/hour); recorder "
          f"process CPU {result['cpu_percent']:.0f} % of one core", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--duration_s', type=float, default=10.0)
    parser.add_argument('--storage', default='mcap', choices=['mcap', 'sqlite3'])
    parser.add_argument('--jpeg_quality', type=int, default=90)
    parser.add_argument('--output_dir', default=None,
                        help='where the bags go (default: a temporary folder, removed)')
    parser.add_argument('--child', default=None, choices=['cameras', 'joints'],
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        publisher_child(args.child, args.duration_s)
        return
    folder = pathlib.Path(args.output_dir or tempfile.mkdtemp(prefix='recorder_benchmark_'))
    try:
        for name, quality in (('as received (rgb8)', 0), (f'JPEG q{args.jpeg_quality}',
                                                          args.jpeg_quality)):
            result = run_mode(args, quality, folder / f'jpeg_{quality}')
            report(f'{name}, {args.storage}, {args.duration_s:g} s', result, args.duration_s)
    finally:
        if args.output_dir is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == '__main__':
    main()
