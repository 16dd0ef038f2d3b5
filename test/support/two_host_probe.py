"""Child process: the observer of one side of the two-host test, run inside that namespace.

    two_host_probe.py robot --seconds S --out FILE [--robot aloha] [--mark TEXT]
    two_host_probe.py policy --seconds S --out FILE --cameras a,b [--raw_images]
        [--late_chunk_file PATH]

robot side (beside the executor): every executor status, every ``~/chunk_filed`` outcome, the
arrival of every ActionChunk (its stamp against this clock: the chunk's age on arrival; both
namespaces share the machine's clock), every joint command of every arm, and the executor's
/diagnostics (tick error); ``--mark`` is printed once the executor first runs on a chunk.
policy side (beside the inference node): the camera frames received per camera (compressed,
or with ``--raw_images`` the raw Images),
and, with ``--late_chunk_file``, one ActionChunk stamped 3 s in the past, published across the
link once that file exists (the executor must never play it). ``--mark`` is printed once this
participant has discovered the robot side: a camera publisher and, with ``--late_chunk_file``,
the executor's chunk subscription (a probe that has not discovered the link measures nothing).

Times are time.monotonic() seconds. The record is written as JSON to ``--out`` when the time is
up or on SIGINT / SIGTERM.
"""

import argparse
import json
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

LATE_CHUNK_AGE_S = 3.0  # older than any chunk's last step: the executor must refuse it


def robot_side(node, robot, record: dict, mark: str) -> None:
    """Subscriptions of the robot side (see the module docstring)."""
    from diagnostic_msgs.msg import DiagnosticArray
    from interbotix_xs_msgs.msg import JointGroupCommand, JointSingleCommand
    from std_msgs.msg import Header

    from vla_adapter_msgs.msg import ActionChunk, PolicyStatus
    from vla_adapter_ros.pipeline.conversions import stamp_to_nanoseconds

    def now_ns() -> int:
        return node.get_clock().now().nanoseconds

    record.update(statuses=[], filed=[], chunks=[], commands=[], diagnostics=[])

    def on_status(message) -> None:
        record['statuses'].append([time.monotonic(), int(message.state), message.fault_reason])
        if message.state == PolicyStatus.STATE_RUNNING and mark and not record.get('marked'):
            record['marked'] = True
            print(mark, flush=True)

    node.create_subscription(PolicyStatus, 'executor_status', on_status, 50)
    node.create_subscription(Header, '/chunk_executor/chunk_filed', lambda m: record[
        'filed'].append([time.monotonic(), stamp_to_nanoseconds(m.stamp), m.frame_id]), 50)

    def on_chunk(message) -> None:
        steps = message.left.points
        duration_s = (steps[-1].time_from_start.sec + steps[-1].time_from_start.nanosec * 1e-9
                      if steps else 0.0)
        record['chunks'].append([time.monotonic(), now_ns(),
                                 stamp_to_nanoseconds(message.header.stamp),
                                 int(message.sequence), duration_s])

    node.create_subscription(ActionChunk, 'action_chunk', on_chunk, 50)
    for index, arm in enumerate(robot.arms):
        node.create_subscription(
            JointGroupCommand, f'/{arm.namespace}/commands/joint_group',
            lambda m, i=index: record['commands'].append([time.monotonic(), i, 'group',
                                                          list(m.cmd)]), 100)
        node.create_subscription(
            JointSingleCommand, f'/{arm.namespace}/commands/joint_single',
            lambda m, i=index: record['commands'].append([time.monotonic(), i, 'single',
                                                          [float(m.cmd)]]), 100)

    def on_diagnostics(message) -> None:
        for entry in message.status:
            if 'chunk executor' in entry.name:
                values = {item.key: item.value for item in entry.values}
                record['diagnostics'].append([time.monotonic(), values])

    node.create_subscription(DiagnosticArray, '/diagnostics', on_diagnostics, 50)


def policy_side(node, robot, record: dict, cameras: list[str], raw_images: bool,
                late_chunk_file: str, mark: str) -> None:
    """Subscriptions (and the late chunk) of the policy side."""
    import numpy as np
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CompressedImage, Image

    from vla_adapter_msgs.msg import ActionChunk
    from vla_adapter_ros.pipeline.conversions import action_chunk_message

    record.update(images={camera: [] for camera in cameras}, late_chunk_stamp_ns=0,
                  discovery=[])
    message_type, suffix = (Image, '') if raw_images else (CompressedImage, '/compressed')
    topics = [robot.camera_topic.format(camera=camera) + suffix for camera in cameras]
    for camera, topic in zip(cameras, topics):
        node.create_subscription(message_type, topic, lambda m, c=camera: record['images'][
            c].append(time.monotonic()), qos_profile_sensor_data)

    publisher = node.create_publisher(ActionChunk, 'action_chunk', 10) if late_chunk_file else None

    def note_discovery() -> None:  # what this participant has discovered, twice a second
        cameras_seen = node.count_publishers(topics[0])
        executors_seen = sum(info.node_name == 'chunk_executor' for info in
                             node.get_subscriptions_info_by_topic(publisher.topic_name)
                             ) if publisher else 1
        record['discovery'].append([time.monotonic(), cameras_seen, executors_seen])
        if cameras_seen and executors_seen and mark and not record.get('marked'):
            record['marked'] = True
            print(mark, flush=True)

    node.create_timer(0.5, note_discovery)
    if not late_chunk_file:
        return

    def publish_late_chunk() -> None:
        if record['late_chunk_stamp_ns'] or not pathlib.Path(late_chunk_file).exists():
            return
        stamp_ns = node.get_clock().now().nanoseconds - int(LATE_CHUNK_AGE_S * 1e9)
        angles = np.tile(robot.start_joint_angles(), (50, 1))  # (50, J) rad, within limits
        chunk, _ = action_chunk_message(stamp_ns, robot, angles, 0.02, 'late_chunk_probe')
        chunk.sequence = 999999
        publisher.publish(chunk)
        record['late_chunk_stamp_ns'] = stamp_ns

    node.create_timer(0.1, publish_late_chunk)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('side', choices=('robot', 'policy'))
    parser.add_argument('--seconds', type=float, required=True)
    parser.add_argument('--out', required=True)
    parser.add_argument('--robot', default='aloha')
    parser.add_argument('--cameras', default='')
    parser.add_argument('--mark', default='')
    parser.add_argument('--raw_images', action='store_true')
    parser.add_argument('--late_chunk_file', default='')
    args = parser.parse_args()

    import rclpy
    from ros_test_utils import run_child_node

    from vla_adapter_core.robot_description import load_robot_description

    robot = load_robot_description(args.robot)
    rclpy.init()
    node = rclpy.create_node(f'two_host_probe_{args.side}')
    record: dict = {'side': args.side, 'started': time.monotonic()}
    if args.side == 'robot':
        robot_side(node, robot, record, args.mark)
    else:
        cameras = [c for c in args.cameras.split(',') if c] or list(robot.cameras)
        policy_side(node, robot, record, cameras, args.raw_images, args.late_chunk_file,
                    args.mark)
    try:
        run_child_node(node, time.monotonic() + args.seconds)
    finally:
        record['ended'] = time.monotonic()
        pathlib.Path(args.out).write_text(json.dumps(record))


if __name__ == '__main__':
    main()
