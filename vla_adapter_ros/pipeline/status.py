"""The status vocabulary of the policy pipeline: state names and the reasons every reader matches.

The state numbers are vla_adapter_msgs/PolicyStatus's constants; their names and the fixed
reason texts live here once, and the executor, the inference node, sim-eval and the showcase
import them (a reason that carries a value is built by the function beside its constant).
"""

from vla_adapter_msgs.msg import PolicyStatus

STATE_NAMES = {PolicyStatus.STATE_IDLE: 'IDLE', PolicyStatus.STATE_STARTING: 'STARTING',
               PolicyStatus.STATE_RUNNING: 'RUNNING', PolicyStatus.STATE_PAUSED: 'PAUSED',
               PolicyStatus.STATE_HOLDING: 'HOLDING', PolicyStatus.STATE_FAULT: 'FAULT'}

# The executor's reasons (PolicyStatus.fault_reason).
WAITING_FOR_JOINT_STATES = 'waiting for joint_states'  # before the first tick
WAITING_FOR_FIRST_CHUNK = 'waiting for the first chunk'  # running, no chunk yet (after restart)
NO_CHUNK_COVERS_NOW = 'no chunk covers now'  # every scheduled chunk has been played
MOVING_TO_START_POSE = 'moving to the start pose'
PREFLIGHT_LISTENING = 'pre-flight check: listening to the inputs'  # its first window is open
SETTING_GRIPPER_MODE = 'setting the gripper operating mode'
RESTARTING = 'restarting'
CHUNK_DROPPED_STARTING = 'dropped: start-up not finished'  # ~/chunk_filed outcome
CHUNK_ACCEPTED = 'accepted'  # ~/chunk_filed outcome
CHUNK_NOT_EXECUTED = 'accepted, not executed: the operator is in control'  # ~/chunk_filed
MOVING_TO_LEADERS = "handing over: moving to the leaders' pose"
NO_LEADER_ARMS = 'the robot description has no leader arms'
TAKEOVER_NOT_CONFIGURED = 'this executor has no takeover'

# Who commands the followers (PolicyStatus.control_source, the executor's control_source topic,
# the recorder's sidecar intervals and training's correction segments).
CONTROL_POLICY = 'policy'  # the policy's chunks
CONTROL_HANDOVER = 'handover'  # a takeover was granted: moving to the leaders' pose
CONTROL_OPERATOR = 'operator'  # the followers follow the leader arms
CONTROL_HOLD = 'hold'  # a takeover was refused or aborted: the last command is held
CONTROL_SOURCES = (CONTROL_POLICY, CONTROL_HANDOVER, CONTROL_OPERATOR, CONTROL_HOLD)


def state_name(state: int) -> str:
    """'RUNNING' for PolicyStatus.STATE_RUNNING; the number as text for an unknown state."""
    return STATE_NAMES.get(state, str(state))


def waiting_for_joint_states(missing: list[str], last_error: str = '') -> str:
    """The executor's reason while some arms have not sent a valid joint_states yet."""
    text = f'waiting for joint_states of {missing}'
    return f'{text}; last error: {last_error}' if last_error else text


def preflight_failed(failures: str) -> str:
    """The executor's fault while its start-up pre-flight check fails (it holds, retries)."""
    return f'pre-flight failed: {failures}'


def stale_chunk(age_s: float) -> str:
    """The executor's reason when no chunk arrived within stale_chunk_s."""
    return f'stale chunk: none for {age_s:.2f} s'


def stale_observation(stale_arms: list[str]) -> str:
    """The executor's fault when arms sent no valid joint_states within stale_observation_s."""
    return f'stale observation: no valid joint_states from {", ".join(stale_arms)}'


def takeover_refused(problem: str) -> str:
    """The executor's reason when a takeover request cannot be granted."""
    return f'takeover refused: {problem}'


def takeover_aborted(problem: str) -> str:
    """The executor's fault when the leaders fail during a takeover (the arms hold)."""
    return f'takeover aborted: {problem}'
