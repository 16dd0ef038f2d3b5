"""The split deployment over emulated links: what crosses the network, and what the robot does.

Per link profile and camera transport (raw rgb8 or JPEG), one run of test/support/two_host_run.py:
the robot side (``role:=robot use_sim:=true``: kinematic ALOHA, executor, and with JPEG the
image compressor) in one network namespace, the policy side (``role:=policy``: the inference
node, a tiny CPU policy) in another, joined by a veth pair shaped with tc, over real DDS with
config/fastdds_two_hosts.xml. Each run: start, settle, a 2 s outage, recovery, one too-late
chunk. Printed per run: the chunk's age on arrival at the executor before the outage
(observation stamp -> arrival; includes sensing, inference and the link) p50/p99, the chunks
that arrived after the outage older than their horizon (in flight during it; the executor
refuses them), images per second received on the policy
side (per camera, before the outage), the executor's tick error p50 / p99 (its /diagnostics),
the holds and faults raised (in order), commands outside the joint limits and steps beyond the
speed limit (both must be 0), the time to run again after the outage, and what became of the
too-late chunk. Needs root and network namespaces (as the test; skipped with the reason otherwise);
asserts nothing.

    sudo .venv/bin/python benchmarks/two_hosts.py [--profiles unshaped,lossy,wan,cap5]
        [--transports raw,jpeg] [--image_hw 240x320] [--camera_rate_hz 15]
"""

from __future__ import annotations

import argparse
import collections
from pathlib import Path
import signal
import sys
import tempfile

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / 'test' / 'support'))

from inference_harness import statistics_around_the_start_pose, tiny_policy_for  # noqa: E402
from netns_link import LinkProfile, namespaces_unavailable  # noqa: E402
from two_host_run import RunPlan, run_two_hosts, summarise  # noqa: E402

from vla_adapter_core.robot_description import load_robot_description  # noqa: E402

PROFILES = {
    'unshaped': LinkProfile('unshaped'),
    'lossy': LinkProfile('lossy', loss_pct=1.0, rate_mbit=20.0),
    'loss5': LinkProfile('loss5', loss_pct=5.0, rate_mbit=20.0),
    'cap5': LinkProfile('cap5', rate_mbit=5.0),
    'wan': LinkProfile('wan', delay_ms=20.0, jitter_ms=5.0, loss_pct=1.0, rate_mbit=50.0),
}


def _cell(value: float, digits: int = 0) -> str:
    return 'n/a' if value != value else f'{value:.{digits}f}'  # NaN: nothing measured


def row(name: str, transport: str, summary: dict) -> str:
    counts = collections.Counter(summary['faults'])
    faults = ', '.join(f'{kind} x{n}' if n > 1 else kind for kind, n in counts.items()) or '-'
    late = summary['late_chunk_outcomes']
    late_text = ('refused' if late and all(o.startswith('rejected') for o in late)
                 else 'PLAYED' if late else 'not received')
    return (f"| {name} | {transport} | {_cell(summary['chunk_age_p50_ms'])} / "
            f"{_cell(summary['chunk_age_p99_ms'])} | {summary['images_per_s']:.1f} | "
            f"{_cell(summary['tick_error_p50_ms'], 1)} / {_cell(summary['tick_error_p99_ms'], 1)}"
            f" | {faults} | {summary['commands_out_of_limits']} / {summary['jumps']} | "
            f"{_cell(summary.get('recovered_after_s', float('nan')), 1)} | "
            f"{summary['late_chunks_after_outage']} | {late_text} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--profiles', default='unshaped,lossy,wan,cap5')
    parser.add_argument('--transports', default='raw,jpeg')
    parser.add_argument('--image_hw', default='240x320', help='HEIGHTxWIDTH of the cameras')
    parser.add_argument('--camera_rate_hz', type=float, default=15.0)
    parser.add_argument('--jpeg_quality', type=int, default=80)
    args = parser.parse_args()
    # Started in the background SIGINT may be ignored; both signals end the runs cleanly (the
    # harness stops the nodes and deletes the namespaces on the way out).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit('two_hosts.py: terminated'))
    unavailable = namespaces_unavailable()
    if unavailable:  # `make benchmarks` goes on with the next script
        print(f'two_hosts.py: skipped: network namespaces unavailable: {unavailable}')
        return
    height, width = (int(side) for side in args.image_hw.split('x'))
    robot = load_robot_description('aloha')
    print(f'aloha: {len(robot.cameras)} cameras {height}x{width} at {args.camera_rate_hz:g} Hz '
          f'(raw {len(robot.cameras) * height * width * 3 * args.camera_rate_hz * 8 / 1e6:.0f} '
          f'Mbit/s), JPEG quality {args.jpeg_quality}; tiny CPU policy, chunk 50 x 0.02 s; '
          'a 2 s outage per run')
    print('| link | images | chunk age p50 / p99 ms | images/s per camera | tick error p50 / '
          'p99 ms | holds and faults | out of limits / jumps | back after outage s | '
          'late chunks after outage | 3 s old chunk |')
    print('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |')
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = Path(folder) / 'policy'
        tiny_policy_for(robot, chunk_size=50, head_kind='dual_arm', seed=6,
                        statistics=statistics_around_the_start_pose(robot)).save_pretrained(
                            checkpoint)
        for name in args.profiles.split(','):
            profile = PROFILES[name]
            for transport in args.transports.split(','):
                plan = RunPlan(profile, compress_images=transport == 'jpeg',
                               jpeg_quality=args.jpeg_quality, image_hw=(height, width),
                               camera_rate_hz=args.camera_rate_hz, start_timeout_s=90.0)
                try:
                    result = run_two_hosts(Path(folder) / f'{name}_{transport}', checkpoint,
                                           plan)
                except RuntimeError as error:  # e.g. a delay profile without sch_netem
                    print(f'| {profile.describe()} | {transport} | skipped: {error} |')
                    continue
                name_cell = profile.describe()
                if not result['events'].get('running'):  # no usable chunk within 90 s
                    name_cell += ' (never ran)'
                print(row(name_cell, transport, summarise(result)), flush=True)


if __name__ == '__main__':
    main()
