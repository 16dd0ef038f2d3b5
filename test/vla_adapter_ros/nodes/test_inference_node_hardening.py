"""The inference node against hostile input and a hostile host, over real DDS and its real CLI.

No message ends the node (a PNG header claiming 20000x20000 pixels, an exception nobody
foresaw), stamps ahead of the node clock are a named fault, a missing CUDA device or a corrupt
checkpoint is one line and exit status 1, a start prints no tokenizer warning, and the node's
health is on /diagnostics like any driver's.
"""

import pathlib
import subprocess
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
import pytest
from ros_test_utils import SUPPORT_DIR, start_python_process, stop_process

from vla_adapter_msgs.msg import PolicyStatus
from vla_adapter_ros.nodes.inference_node import TIMING_RECORDS
from vla_adapter_ros.pipeline import conversions

HERE = pathlib.Path(__file__).resolve().parent
from inference_harness import ALOHA, CAMERAS, running_pipeline, tiny_policy_for  # noqa: E402

CHUNK = 8
NO_CHUNK_WINDOW_S = 1.0
DIAGNOSTICS_NAME = 'vla_inference: policy inference'


@pytest.fixture(scope='module')
def policy():
    return tiny_policy_for(ALOHA, chunk_size=CHUNK, head_kind='dual_arm', seed=1)


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory, policy):
    directory = tmp_path_factory.mktemp('checkpoint')
    policy.save_pretrained(directory)
    return directory


def _running(pipeline) -> bool:
    statuses = pipeline.probe.statuses
    return bool(statuses) and statuses[-1].state == PolicyStatus.STATE_RUNNING


def test_a_png_header_claiming_20000x20000_is_a_fault_and_the_node_recovers(policy):
    """Pillow raises DecompressionBombError on such a header; the node reports it and goes on."""
    topics = [f'/{c}/camera/color/image_rect_raw/compressed' for c in CAMERAS]
    sensors = ('--compressed', '--fault', 'bomb', '--fault-camera', 'cam_left_wrist',
               '--fault-s', '5')
    with running_pipeline(policy, sensors, camera_topics=topics) as pipeline:
        reason = pipeline.wait_for_fault(
            'camera cam_left_wrist (/cam_left_wrist/camera/color/image_rect_raw/compressed)',
            'DecompressionBombError', '400000000 pixels')
        assert not pipeline.probe.chunks, 'a chunk was published without the bombed camera'
        assert pipeline.spin_until(lambda: len(pipeline.probe.chunks) >= 2, 20.0), reason
        assert pipeline.spin_until(lambda: _running(pipeline), 5.0)
        assert pipeline.node.context.ok() and pipeline.node._worker.is_alive()


def test_stamps_an_hour_ahead_are_a_fault_and_never_a_chunk(policy):
    diagnostics = []
    with running_pipeline(policy, ('--stamp-offset-s', '3600')) as pipeline:
        pipeline.probe.node.create_subscription(DiagnosticArray, '/diagnostics',
                                                diagnostics.append, 10)
        reason = pipeline.wait_for_fault(
            '/follower_left/joint_states: header.stamp is 3',
            's ahead of the node clock (max_future_stamp_s=0.5)', 'camera cam_high')
        pipeline.spin_for(NO_CHUNK_WINDOW_S)
        assert not pipeline.probe.chunks and not pipeline.probe.arm_chunks['left'], reason
        states = [s.state for s in pipeline.probe.statuses]
        first_fault = states.index(PolicyStatus.STATE_FAULT)
        assert set(states[first_fault:]) == {PolicyStatus.STATE_FAULT}, states

        def errors() -> list:
            return [status for array in diagnostics for status in array.status
                    if status.name == DIAGNOSTICS_NAME
                    and status.level == DiagnosticStatus.ERROR]
        assert pipeline.spin_until(lambda: bool(errors()), 5.0)
    values = {item.key: item.value for item in errors()[-1].values}
    assert values['state'] == 'FAULT' and 'ahead of the node clock' in errors()[-1].message
    assert values['chunks_published'] == '0'


def test_an_unexpected_exception_in_a_callback_is_a_fault_not_a_crash(policy, monkeypatch):
    """A conversion bug (injected: real inputs no longer reach one) must not end the node."""
    real = conversions.arm_state_from_joint_state

    def broken(message, arm, source):
        if arm.namespace == 'follower_right':
            raise RuntimeError('conversion bug')
        return real(message, arm, source)

    monkeypatch.setattr(conversions, 'arm_state_from_joint_state', broken)
    with running_pipeline(policy) as pipeline:
        pipeline.wait_for_fault('/follower_right/joint_states: message not handled: '
                                'RuntimeError: conversion bug')
        pipeline.spin_for(NO_CHUNK_WINDOW_S)
        assert not pipeline.probe.chunks
        monkeypatch.undo()
        assert pipeline.spin_until(lambda: len(pipeline.probe.chunks) >= 2)
        assert pipeline.spin_until(lambda: _running(pipeline), 5.0)


def test_diagnostics_report_state_rates_and_latency(policy):
    diagnostics = []
    with running_pipeline(policy) as pipeline:
        pipeline.probe.node.create_subscription(DiagnosticArray, '/diagnostics',
                                                diagnostics.append, 10)

        def running() -> list:
            return [status for array in diagnostics for status in array.status
                    if status.name == DIAGNOSTICS_NAME and status.level == DiagnosticStatus.OK
                    and {i.key: i.value for i in status.values}.get('state') == 'RUNNING'
                    and float({i.key: i.value for i in status.values}['latency_p50_ms']) > 0]
        assert pipeline.spin_until(lambda: len(running()) >= 2, 30.0), diagnostics[-1:]
        status = running()[-1]
        node = pipeline.node
    values = {item.key: item.value for item in status.values}
    assert status.hardware_id == 'vla_adapter_ros' and status.message == 'RUNNING'
    assert set(values) == {'state', 'fault_reason', 'observation_rate_hz', 'last_inference_ms',
                           'latency_p50_ms', 'latency_p99_ms', 'chunks_published',
                           'dropped_observations'}
    assert values['fault_reason'] == ''
    assert 5.0 <= float(values['observation_rate_hz']) <= 40.0  # cameras at 20 Hz
    assert 0.0 < float(values['last_inference_ms']) < 5000.0
    assert 0.0 < float(values['latency_p50_ms']) <= float(values['latency_p99_ms']) < 5000.0
    assert int(values['chunks_published']) >= 1 and int(values['dropped_observations']) >= 0
    assert node.timings.maxlen == TIMING_RECORDS <= 2048  # bounded: no growth over a long run


def _run_entry_point(*parameters: str, until: str = '', timeout_s: float = 120.0):
    """Start ``vla-adapter-inference``; stop it once ``until`` is printed; (status, output)."""
    arguments = ['vla-adapter-inference', '--ros-args']
    for parameter in parameters:
        arguments += ['-p', parameter]
    process = start_python_process(SUPPORT_DIR / 'run_node.py', *arguments)
    lines, seen = [], threading.Event()

    def read() -> None:
        for line in process.stdout:
            lines.append(line)
            if until and until in line:
                seen.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout_s
    try:
        while process.poll() is None and not seen.is_set() and time.monotonic() < deadline:
            time.sleep(0.1)
        if process.poll() is None:
            process.terminate()
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
    reader.join(timeout=10)
    stop_process(process)
    return process.returncode, ''.join(lines)


def test_a_missing_cuda_device_is_one_line_and_exit_status_1(checkpoint):
    import torch

    if torch.cuda.is_available():
        pytest.skip('this machine has a CUDA device')
    status, output = _run_entry_point(f'checkpoint:={checkpoint}', 'device:=cuda')
    assert status == 1, output
    assert 'Traceback' not in output, output
    lines = [line for line in output.splitlines() if 'cannot start' in line]
    assert len(lines) == 1, output
    assert "cannot start: parameter device='cuda': no CUDA device is available" in lines[0]
    assert len(output.strip().splitlines()) <= 2, output


def _corrupt(weights: pathlib.Path, how: str) -> None:
    if how == 'garbage':
        weights.write_bytes(b'\x00' * 64)
        return
    from safetensors.torch import load_file, save_file
    import torch

    state = load_file(weights)
    name = next(name for name, tensor in state.items() if tensor.ndim == 2)
    state[name] = torch.zeros(3, state[name].shape[1])  # loading reports a multi-line error
    save_file(state, weights)


@pytest.mark.parametrize(('how', 'fragment'), [
    ('garbage', 'model.safetensors'), ('wrong_shape', 'size mismatch for ')])
def test_a_corrupt_checkpoint_is_one_line_and_exit_status_1(tmp_path, checkpoint, how,
                                                            fragment):
    corrupt = tmp_path / 'corrupt'
    corrupt.mkdir()
    for path in checkpoint.iterdir():
        (corrupt / path.name).write_bytes(path.read_bytes())
    _corrupt(corrupt / 'model.safetensors', how)
    status, output = _run_entry_point(f'checkpoint:={corrupt}', 'device:=cpu')
    assert status == 1, output
    assert 'Traceback' not in output, output
    assert len(output.strip().splitlines()) == 1, output
    assert 'cannot start: ' in output and str(corrupt) in output and fragment in output, output


def test_a_start_prints_no_tokenizer_warning(checkpoint):
    """Transformers took our config.json for an old Mistral one and warned about its regex."""
    status, output = _run_entry_point(f'checkpoint:={checkpoint}', 'device:=cpu',
                                      "instruction:='pick up the cube'",
                                      until='no message received yet')  # spinning: no sensors
    assert 'ready: robot' in output, output
    assert 'regex' not in output and 'fix_mistral_regex' not in output, output
    assert 'Traceback' not in output, output
    warnings = [line for line in output.splitlines() if 'WARN' in line]
    assert len(warnings) == 1 and 'fault: no message received yet' in warnings[0], output
